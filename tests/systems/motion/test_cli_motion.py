import json

import numpy as np
import pytest

from tests.helpers import run_genlab


def test_synth_fit_render_edit(tmp_path):
    r = run_genlab("motion", "synth", "jumping_jack", "--seed", "3", "--count", "4", "-o", str(tmp_path / "s"))
    assert r.returncode == 0, r.stderr
    r = run_genlab("motion", "fit", str(tmp_path / "s" / "keypoints.npy"), "-o", str(tmp_path / "f"), "--no-video")
    assert r.returncode == 0, r.stderr
    summary = json.loads((tmp_path / "f" / "summary.json").read_text())
    assert summary["loops"] and summary["loops"][0]["count"] == 4
    assert summary["reconstruction_error_px"] < 10
    assert (tmp_path / "f" / "plot.png").stat().st_size > 1000
    r = run_genlab("motion", "render", str(tmp_path / "f" / "program.txt"), "--rate", "2", "-o", str(tmp_path / "r.gif"))
    assert r.returncode == 0, r.stderr
    from PIL import Image

    im = Image.open(tmp_path / "r.gif")
    assert im.n_frames == 2 * np.load(tmp_path / "s" / "keypoints.npy").shape[0]
    r = run_genlab("motion", "edit", str(tmp_path / "f" / "program.txt"), "--loop-count", "0=6", "-o", str(tmp_path / "e.txt"))
    assert r.returncode == 0, r.stderr
    assert "loop 6" in (tmp_path / "e.txt").read_text()


@pytest.mark.parametrize("args", [("motion", "fit", "/nonexistent.npy"), ("motion", "render", "/nonexistent.txt"),
                                  ("motion", "synth", "no_such_motion"), ("motion", "extract", "x.mp4", "--roi", "1,2")])
def test_bad_input_exits_2_with_one_line(args, tmp_path):
    r = run_genlab(*args, "-o", str(tmp_path / "o"))
    assert r.returncode == 2
    assert r.stderr.strip().startswith("genlab: error:") and len(r.stderr.strip().splitlines()) == 1
