"""Teaching a concept of your own from example files: a side lunge with an arm raise, an exercise
the built-ins do not have."""

import json

import numpy as np
import pytest

from genlab.systems.motion.synthetic import (
    MOTIONS,
    MotionSpec,
    MotionStyle,
    arc_about,
    move,
    register_motion,
    rest_pose,
)
from tests.helpers import run_cli_inprocess

NEW = "side_lunge_raise"


def _side_lunge_raise(s: MotionStyle):
    """Step the left foot out sideways, the body drops over the bent left knee, the right arm rises
    overhead; back."""
    from genlab.systems.motion.synthetic import end_pose, line_to

    p = rest_pose("front")
    a = s.amplitude
    low = dict(p)
    for j in ("nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
              "left_elbow", "left_wrist", "left_hip", "right_hip"):
        low[j] = (p[j][0] + 0.08 * a, p[j][1] + 0.12 * a)
    low["left_knee"] = (p["left_knee"][0] + 0.2 * a, p["left_knee"][1] + 0.04 * a)
    low["left_ankle"] = (p["left_ankle"][0] + 0.28 * a, p["left_ankle"][1])
    moves = {j: line_to(p[j], low[j], s.accel) for j in low if low[j] != p[j]}
    moves["right_wrist"] = arc_about(p["right_shoulder"], p["right_wrist"], -2.6 * a, s.accel)
    moves["right_elbow"] = arc_about(p["right_shoulder"], p["right_elbow"], -2.6 * a, s.accel)
    down = move(s.frames(15), p, moves)
    q = end_pose(down)
    back = {j: line_to(q[j], p[j], -s.accel) for j in q if q[j] != p[j]}
    back["right_wrist"] = arc_about(p["right_shoulder"], q["right_wrist"], 2.6 * a, -s.accel)
    back["right_elbow"] = arc_about(p["right_shoulder"], q["right_elbow"], 2.6 * a, -s.accel)
    from genlab.systems.motion.synthetic import hold

    return down, hold(s.frames(6), q), move(s.frames(15), q, back)


def _register():
    if NEW not in MOTIONS:
        register_motion(MotionSpec(NEW, _side_lunge_raise, "side lunge with the opposite arm raised"))


def _write_examples(folder, k=5, seed=0):
    from genlab.systems.motion.concepts import dataset

    _register()
    (folder / NEW).mkdir(parents=True)
    rng = np.random.default_rng([31, seed])
    for i in range(k):
        np.save(folder / NEW / f"{i}.npy", dataset.make_example(rng, NEW).keypoints)


def test_fit_from_your_own_example_files_then_describe(tmp_path, capsys):
    from genlab.systems.motion.concepts import dataset

    _write_examples(tmp_path / "ex", k=3)
    code, out, err = run_cli_inprocess(["motion", "concepts", "fit", "--examples", str(tmp_path / "ex"), "--builtin",
                                        "jumping_jack,squat", "--k", "2", "--quiet", "--out", str(tmp_path / "m.json")], capsys)
    assert code == 0, err
    assert f"{NEW}: 0.npy" in out and "3 concepts" in out
    s = dataset.make_sequence(np.random.default_rng([5, 2]), names=("jumping_jack", "squat", NEW))
    np.save(tmp_path / "s.npy", s.keypoints)
    code, out, err = run_cli_inprocess(["motion", "concepts", "describe", str(tmp_path / "m.json"), str(tmp_path / "s.npy")],
                                       capsys)
    assert code == 0, err
    said = [ln.split("[")[0].strip() for ln in out.splitlines()[1:]]
    assert NEW in s.description.concepts and said == s.description.concepts, (said, s.description.concepts)


def test_examples_from_a_jsonl_with_spans_and_counts(tmp_path):
    from genlab.systems.motion.concepts import dataset
    from genlab.systems.motion.concepts.inputs import load_examples

    _register()
    ex = dataset.make_example(np.random.default_rng(3), NEW)
    padded = np.concatenate([np.repeat(ex.keypoints[:1], 10, 0), ex.keypoints])
    np.save(tmp_path / "long.npy", padded)
    (tmp_path / "ex.jsonl").write_text(json.dumps({"file": "long.npy", "label": NEW, "start": 10, "count": ex.count}) + "\n")
    (got,), notes = load_examples(tmp_path / "ex.jsonl")
    assert got.concept == NEW and got.count == ex.count and len(got.keypoints) == len(ex.keypoints)
    assert "estimated" not in notes[0]


@pytest.mark.parametrize("layout,needle", [("empty_dir", "a folder per concept label"), ("bad.txt", "folder"),
                                           ("bad.jsonl", "line 1")])
def test_an_unknown_example_layout_is_one_clear_line(tmp_path, capsys, layout, needle):
    from tests.helpers import assert_user_error

    path = tmp_path / layout
    if layout == "empty_dir":
        path.mkdir()
    else:
        path.write_text("{not json\n")
    code, _, err = run_cli_inprocess(["motion", "concepts", "fit", "--examples", str(path), "--out", str(tmp_path / "m.json")],
                                     capsys)
    assert_user_error(code, err, needle)


@pytest.mark.slow
def test_acceptance_a_new_exercise_from_5_example_files(tmp_path, capsys):
    """50 fixed seeded sequences mixing the new exercise with the seven built-ins; the model learns
    the built-ins from 5 synthetic examples each and the new one from 5 example files."""
    from genlab.systems.motion.concepts import dataset, metrics
    from genlab.systems.motion.concepts.inputs import describe_input, load_input
    from genlab.systems.motion.concepts.model import ConceptModel

    _write_examples(tmp_path / "ex", k=5)
    code, out, err = run_cli_inprocess(["motion", "concepts", "fit", "--examples", str(tmp_path / "ex"), "--builtin", "all",
                                        "--k", "5", "--quiet", "--out", str(tmp_path / "m.json")], capsys)
    assert code == 0, err
    model = ConceptModel.load(tmp_path / "m.json")
    names = dataset.NAMES + (NEW,)
    seqs = [dataset.make_sequence(np.random.default_rng([2718, i]), names=names) for i in range(50)]
    assert sum(NEW in s.description.concepts for s in seqs) >= 20
    preds = []
    for i, s in enumerate(seqs):
        np.save(tmp_path / f"s{i}.npy", s.keypoints)
        preds.append(describe_input(model, load_input(tmp_path / f"s{i}.npy"), f"s{i}"))
    trues = [s.description for s in seqs]
    ned, mae = metrics.mean_norm_ed(preds, trues), metrics.count_mae(preds, trues)
    ap = metrics.detection_map(preds, trues)
    print(f"new exercise from 5 files: NormED {ned:.3f}, count MAE {mae:.3f}, mAP@0.5 {ap['mAP@0.5']:.3f}")
    assert ned <= 0.05 and mae <= 0.2 and ap["mAP@0.5"] >= 0.9


def test_synthesise_and_edit_a_taught_concept_from_the_cli(tmp_path, capsys):
    import av

    _write_examples(tmp_path / "ex", k=2)
    code, _, err = run_cli_inprocess(["motion", "concepts", "fit", "--examples", str(tmp_path / "ex"), "--builtin", "squat",
                                      "--k", "2", "--quiet", "--out", str(tmp_path / "m.json")], capsys)
    assert code == 0, err
    (tmp_path / "d.txt").write_text(f"description frames=200 version=1\n  {NEW}[10:80]: for _ in range(2)\n"
                                    "  squat[100:150]: for _ in range(1)\n")
    code, _, err = run_cli_inprocess(["motion", "concepts", "synthesise", str(tmp_path / "m.json"), str(tmp_path / "d.txt"),
                                      "--out", str(tmp_path / "k.npy"), "--video", str(tmp_path / "k.mp4")], capsys)
    assert code == 0, err
    code, out, err = run_cli_inprocess(["motion", "concepts", "edit", str(tmp_path / "m.json"), str(tmp_path / "d.txt"),
                                        "recount", "0", "--count", "3", "--out", str(tmp_path / "e.npy"),
                                        "--video", str(tmp_path / "e.mp4"), "--program", str(tmp_path / "e.txt")], capsys)
    assert code == 0, err
    from genlab.systems.motion.program import Program

    assert Program.from_text((tmp_path / "e.txt").read_text()).num_frames == len(np.load(tmp_path / "e.npy"))
    text = (tmp_path / "e.description.txt").read_text()
    assert f"{NEW}[" in text and "range(3)" in text and "squat[" in text
    assert np.load(tmp_path / "e.npy").shape[1:] == (17, 2)
    for video in ("k.mp4", "e.mp4"):
        with av.open(str(tmp_path / video)) as c:
            assert c.streams.video[0].codec_context.name == "h264"


def test_example_counts_are_estimated_from_the_period():
    from genlab.systems.motion.concepts import dataset
    from genlab.systems.motion.concepts.inputs import estimate_count

    _register()
    rng = np.random.default_rng(5)
    for name in ("jumping_jack", "high_knees", NEW):
        for count in (1, 2, 5):
            ex = dataset.make_example(rng, name, dataset.Difficulty(count=(count, count)))
            assert estimate_count(ex.keypoints) == count, (name, count)


def test_lists_jsonl_pairs_any_keypoint_file_with_its_action_list(tmp_path):
    from genlab.systems.motion.concepts import dataset
    from genlab.systems.motion.concepts.cli import list_sequences

    s = dataset.make_sequence(np.random.default_rng([5, 3]), names=("jumping_jack", "squat"))
    np.save(tmp_path / "take1.npy", s.keypoints)
    (tmp_path / "lists.jsonl").write_text(json.dumps({"file": "take1.npy", "actions": s.description.concepts}) + "\n")
    (seq,) = list_sequences([str(tmp_path / "lists.jsonl")])
    assert seq.actions == tuple(s.description.concepts) and seq.keypoints.shape == s.keypoints.shape
