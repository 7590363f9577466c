import json

import numpy as np
import pytest

from tests.helpers import run_genlab


def test_fit_then_render(tmp_path):
    """`genlab motion fit` and `render` end to end (synth and edit through the API to keep it quick)."""
    from genlab.systems.motion import make_sequence

    seq = make_sequence("jumping_jack", 3, count=4)
    np.save(tmp_path / "k.npy", seq.keypoints)
    r = run_genlab("motion", "fit", str(tmp_path / "k.npy"), "-o", str(tmp_path / "f"), "--no-video")
    assert r.returncode == 0, r.stderr
    summary = json.loads((tmp_path / "f" / "summary.json").read_text())
    assert summary["loops"] and summary["loops"][0]["count"] == 4
    assert summary["reconstruction_error_px"] < 10
    assert (tmp_path / "f" / "plot.png").stat().st_size > 1000
    r = run_genlab("motion", "render", str(tmp_path / "f" / "program.txt"), "--rate", "2", "-o", str(tmp_path / "r.gif"))
    assert r.returncode == 0, r.stderr
    from PIL import Image

    assert Image.open(tmp_path / "r.gif").n_frames == 2 * seq.keypoints.shape[0]


def test_edit_and_synth_commands_in_process(tmp_path, capsys):
    from genlab.cli import main

    assert main(["motion", "synth", "squat", "--seed", "1", "--count", "3", "-o", str(tmp_path / "s")]) == 0
    text = (tmp_path / "s" / "program_true.txt").read_text()
    assert "loop 3" in text
    assert main(["motion", "edit", str(tmp_path / "s" / "program_true.txt"), "--loop-count", "0=5",
                 "-o", str(tmp_path / "e.txt")]) == 0
    assert "loop 5" in (tmp_path / "e.txt").read_text()
    assert main(["motion", "edit", str(tmp_path / "e.txt"), "--loop-count", "0=x", "-o", str(tmp_path / "z.txt")]) == 2
    assert capsys.readouterr().err.strip().startswith("genlab: error:")


@pytest.mark.parametrize("args", [("motion", "fit", "/nonexistent.npy"), ("motion", "extract", "x.mp4", "--roi", "1,2")])
def test_bad_input_exits_2_with_one_line(args, tmp_path):
    r = run_genlab(*args, "-o", str(tmp_path / "o"))
    assert r.returncode == 2
    assert r.stderr.strip().startswith("genlab: error:") and len(r.stderr.strip().splitlines()) == 1
