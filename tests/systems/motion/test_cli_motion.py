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


def _frames(path) -> list[np.ndarray]:
    import av

    with av.open(str(path)) as c:
        assert c.streams.video[0].codec_context.name == "h264"
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def test_render_at_a_non_integer_rate_keeps_one_clock(tmp_path, capsys):
    from genlab.systems.motion import fit_program, make_sequence
    from tests.helpers import run_cli_inprocess

    seq = make_sequence("squat", 2, count=3)
    T = len(seq.keypoints)
    np.save(tmp_path / "k.npy", seq.keypoints)
    (tmp_path / "p.txt").write_text(fit_program(seq.keypoints).to_text())
    code, out, err = run_cli_inprocess(["motion", "render", str(tmp_path / "p.txt"), "--rate", "1.5",
                                        "--keypoints", str(tmp_path / "k.npy"), "-o", str(tmp_path / "r.mp4")], capsys)
    assert code == 0, err
    frames = _frames(tmp_path / "r.mp4")
    assert len(frames) == round(T * 1.5)
    # the last frame shows the last input pose: the same picture as a rate-1 render's last frame
    code, _, err = run_cli_inprocess(["motion", "render", str(tmp_path / "p.txt"), "--keypoints", str(tmp_path / "k.npy"),
                                      "-o", str(tmp_path / "r1.mp4")], capsys)
    assert code == 0, err
    last1 = _frames(tmp_path / "r1.mp4")[-1][:-24].astype(int)  # (the bottom strip holds the frame number)
    assert np.abs(frames[-1][:-24].astype(int) - last1).mean() < 1.0
    assert np.abs(frames[len(frames) // 2][:-24].astype(int) - last1).mean() > 1.0  # (not a still video)


def test_fill_interpolate_predict_write_files_the_loaders_read(tmp_path, capsys):
    from genlab.systems.motion import make_sequence
    from genlab.systems.motion.io import load_keypoints
    from tests.helpers import run_cli_inprocess

    seq = make_sequence("jumping_jack", 4, count=5)
    kp = seq.keypoints.copy()
    kp[50:56] = np.nan  # bridged
    kp[90:110] = np.nan  # longer than max_gap
    np.save(tmp_path / "k.npy", kp)
    T = len(kp)
    for cmd, out, extra in (("fill", "f.npz", []), ("interpolate", "i.trc", []), ("predict", "p.npy", ["--horizon", "12"])):
        code, _, err = run_cli_inprocess(["motion", cmd, str(tmp_path / "k.npy"), *extra, "-o", str(tmp_path / out)], capsys)
        assert code == 0, (cmd, err)
    filled = load_keypoints(tmp_path / "f.npz")
    assert filled.xy.shape == kp.shape and np.isfinite(filled.xy[50:56]).all() and np.isnan(filled.xy[90:110]).all()
    assert (filled.conf[50:56] == 0).all()  # filled points say they were not observed
    inter = load_keypoints(tmp_path / "i.trc")
    assert inter.xy.shape == kp.shape and np.isfinite(inter.xy).all()
    assert np.linalg.norm(inter.xy[90:110] - seq.clean[90:110], axis=-1).mean() < 0.1 * seq.program.scale
    pred = load_keypoints(tmp_path / "p.npy")
    assert pred.xy.shape == (12, 17, 2) and np.isfinite(pred.xy).all()
    del T


def test_fit_picks_the_preset_from_the_input_and_draws_over_the_video(tmp_path, capsys):
    from genlab.systems.motion import make_sequence
    from genlab.systems.motion.render import write_video
    from tests.helpers import run_cli_inprocess

    seq = make_sequence("jumping_jack", 6, count=3)
    T = len(seq.keypoints)
    dets = [{"image_id": f"frame_{t:04d}.png", "keypoints": np.concatenate([f, np.full((17, 1), 0.9)], 1).ravel().tolist(),
             "box": [0, 0, 10, 10], "idx": 1} for t, f in enumerate(seq.keypoints) if not 20 <= t < 25]
    (tmp_path / "ap.json").write_text(json.dumps(dets))
    write_video(np.full((T, 120, 160, 3), 40, np.uint8), tmp_path / "v.mp4", fps=30)  # a dark source video
    code, out, err = run_cli_inprocess(["motion", "fit", str(tmp_path / "ap.json"), "--video", str(tmp_path / "v.mp4"),
                                        "-o", str(tmp_path / "o"), "--min-reps", "2"], capsys)
    assert code == 0, err
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["preset"] == "video" and summary["input"]["kind"] == "detector"
    assert summary["bridged_frames"] == 5 and summary["lost_frames"] == 5 and summary["missing_frames"] == 0
    assert abs(summary["mean_confidence"] - 0.9) < 1e-6
    assert "5 bridged" in out
    frames = _frames(tmp_path / "o" / "overlay.mp4")
    assert len(frames) == T and frames[0].shape[:2] == (120, 160)
    assert max(f.max() for f in frames) > 150  # the skeleton is drawn over the dark frames
    np.save(tmp_path / "plain.npy", seq.keypoints)
    code, _, err = run_cli_inprocess(["motion", "fit", str(tmp_path / "plain.npy"), "--no-video", "-o", str(tmp_path / "q")],
                                     capsys)
    assert code == 0, err
    assert json.loads((tmp_path / "q" / "summary.json").read_text())["preset"] == "default"


def test_help_documents_presets_and_quiet(capsys):
    from tests.helpers import run_cli_inprocess

    code, out, _ = run_cli_inprocess(["motion", "fit", "--help"], capsys)
    assert code == 0 and "'video': a pose detector" in " ".join(out.split()) and "--person" in out
    for argv in (["motion", "extract", "--help"], ["motion", "eval", "--help"], ["motion", "concepts", "fit", "--help"],
                 ["motion", "concepts", "demo", "--help"]):
        code, out, _ = run_cli_inprocess(argv, capsys)
        assert code == 0 and "--quiet" in out, argv
