"""Concepts on any input the motion system reads: AlphaPose, OpenPose, .trc; gaps; too-short input."""

import json

import numpy as np
import pytest

from genlab.core.pose.skeletons import OPENPOSE25
from tests.helpers import run_cli_inprocess
from tests.systems.concepts.conftest import SMALL


def _sequence():
    from genlab.systems.motion.concepts import dataset

    return dataset.make_sequence(np.random.default_rng([77, 1]), names=SMALL)


def test_describe_reads_alphapose_openpose_and_trc(small_model, tmp_path, capsys):
    from genlab.systems.motion.io import write_trc

    model, _, _ = small_model
    model.save(tmp_path / "m.json")
    s = _sequence()
    kp = s.keypoints
    np.save(tmp_path / "k.npy", kp)
    dets = [{"image_id": f"{t}.jpg", "keypoints": np.concatenate([f, np.full((17, 1), 0.9)], 1).ravel().tolist(),
             "box": [0, 0, 1, 1], "idx": 1} for t, f in enumerate(kp)]
    (tmp_path / "ap.json").write_text(json.dumps(dets))
    (tmp_path / "op").mkdir()
    for t, f in enumerate(kp):
        body = np.zeros((25, 3))
        body[list(OPENPOSE25.coco17_index), :2], body[list(OPENPOSE25.coco17_index), 2] = f, 0.9
        (tmp_path / "op" / f"c_{t:06d}_keypoints.json").write_text(json.dumps({"people": [{"pose_keypoints_2d": body.ravel().tolist()}]}))
    write_trc(tmp_path / "k.trc", kp, 30.0, units="px")
    outs = []
    for name in ("k.npy", "ap.json", "op", "k.trc"):
        code, out, err = run_cli_inprocess(["motion", "concepts", "describe", str(tmp_path / "m.json"),
                                            str(tmp_path / name)], capsys)
        assert code == 0, (name, err)
        outs.append([ln.split("[")[0].strip() for ln in out.splitlines()[1:]])
    assert outs[0] and all(o == outs[0] for o in outs), outs


def test_no_concept_over_missing_frames_and_short_gaps_filled(small_model, tmp_path):
    from genlab.systems.motion.concepts.inputs import describe_input, load_input

    model, _, _ = small_model
    kp = _sequence().keypoints.copy()
    T = len(kp)
    kp[20:25] = np.nan  # short: filled from the program
    kp[T // 2 : T // 2 + 40] = np.nan  # long: stays missing
    np.save(tmp_path / "gappy.npy", kp)
    inp = load_input(tmp_path / "gappy.npy")
    assert np.isfinite(inp.keypoints[20:25]).all() and not inp.observed[T // 2 : T // 2 + 40].any()
    desc = describe_input(model, inp, "gappy")
    assert desc.n_frames == T and desc.actions
    for a in desc.actions:
        assert a.end <= T // 2 or a.start >= T // 2 + 40, a


def test_too_short_input_warns_and_gives_an_empty_description(small_model, tmp_path, capsys):
    model, _, _ = small_model
    model.save(tmp_path / "m.json")
    np.save(tmp_path / "short.npy", _sequence().keypoints[:5])
    code, out, err = run_cli_inprocess(["motion", "concepts", "describe", str(tmp_path / "m.json"),
                                        str(tmp_path / "short.npy")], capsys)
    assert code == 0 and "warning" in err and "shortest concept" in err
    assert out.strip() == "description frames=5 version=1"


@pytest.mark.slow
def test_real_jumping_jacks_from_a_five_example_model(shared_data, tmp_path, capsys):
    """The Sports2D clip, frames 0-68 (two jumping jacks, as fixed for the motion programs):
    MediaPipe keypoints from `genlab motion extract`, described by a model fitted on 5 examples
    per concept."""
    from genlab.systems.motion.concepts import dataset
    from genlab.systems.motion.concepts.config import ConceptConfig
    from genlab.systems.motion.concepts.learn import learn

    code, _, err = run_cli_inprocess(["motion", "extract", str(shared_data / "video" / "sports2d_demo.mp4"), "--roi",
                                      "300,0,700,520", "--end", "68", "--min-reps", "2", "--no-video", "--quiet",
                                      "-o", str(tmp_path / "x")], capsys)
    assert code == 0, err
    model, _ = learn(dataset.few_shot(5), ConceptConfig())
    model.save(tmp_path / "m.json")
    code, out, err = run_cli_inprocess(["motion", "concepts", "describe", str(tmp_path / "m.json"),
                                        str(tmp_path / "x" / "keypoints_coco17.npy")], capsys)
    assert code == 0, err
    print("sports2d 0-68:", out)
    lines = out.splitlines()[1:]
    assert len(lines) == 1 and lines[0].strip().startswith("jumping_jack[") and "range(2)" in lines[0]
    # the video itself is an input too (MediaPipe inside); the whole clip starts with the jumping jacks
    code, out, err = run_cli_inprocess(["motion", "concepts", "describe", str(tmp_path / "m.json"),
                                        str(shared_data / "video" / "sports2d_demo.mp4"), "--roi", "300,0,700,520",
                                        "--quiet"], capsys)
    assert code == 0, err
    print("sports2d video:", out)
    assert out.splitlines()[1].strip().startswith("jumping_jack[")
