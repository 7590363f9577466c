"""Real pose tracks: gaps kept with their frame ids, lost pose not turned into motion, confidences
weighting the fit, a preset chosen from the input, left/right swaps, loops over comparable
iterations, .trc files."""

import json

import numpy as np
import pytest

from genlab.core.pose.skeletons import MEDIAPIPE33
from genlab.systems.motion import FitConfig, execute, fit_program, make_sequence
from genlab.systems.motion.config import video
from genlab.systems.motion.io import load_alphapose, load_keypoints, load_trc, write_keypoints, write_trc
from genlab.systems.motion.loops import loop_similarity
from genlab.systems.motion.program import Loop, Missing, Program
from genlab.systems.motion.repair import repair_swaps


def _alphapose(kp: np.ndarray, drop=(), conf: float = 0.9) -> list[dict]:
    """One detection per frame with `image_id` '<t>.jpg' and track id 1; frames in `drop` have none."""
    dets = []
    for t, frame in enumerate(kp):
        if t in drop:
            continue
        flat = np.concatenate([frame, np.full((17, 1), conf)], 1).reshape(-1).tolist()
        dets.append({"image_id": f"{t}.jpg", "keypoints": flat, "box": [0, 0, 100, 200], "idx": 1})
    return dets


def test_alphapose_frames_without_detections_stay_as_lost_rows(tmp_path):
    seq = make_sequence("jumping_jack", 3, count=4)
    kp = seq.keypoints[:100]
    path = tmp_path / "ap.json"
    path.write_text(json.dumps(_alphapose(kp, drop=range(30, 40))))
    track = load_alphapose(path)
    assert track.xy.shape[0] == 100  # not 90: the rows are frame numbers
    np.testing.assert_array_equal(np.flatnonzero(track.lost), np.arange(30, 40))
    np.testing.assert_array_equal(track.frame_ids, np.arange(100))
    np.testing.assert_allclose(track.coco17().xy[40:], kp[40:])


def test_alphapose_gap_keeps_the_loop_at_the_true_frames(tmp_path):
    seq = make_sequence("jumping_jack", 5, count=6)
    path = tmp_path / "ap.json"
    T = len(seq.keypoints)
    path.write_text(json.dumps(_alphapose(seq.keypoints, drop=range(T - 50, T - 40))))
    track = load_alphapose(path).coco17()
    prog = fit_program(track.xy, FitConfig(), conf=track.conf, missing=track.lost)
    (a, b, n), = prog.loop_spans()
    (ta, tb, tn), = seq.loop_spans
    assert prog.num_frames == T and prog.meta["bridged_frames"] == 10
    assert abs(a - ta) <= 3 and abs(b - tb) <= 3 and n == tn  # the true frames, across the bridged gap


def test_person_by_id_and_longest_by_default(tmp_path):
    kp = make_sequence("squat", 1, count=3).keypoints
    dets = _alphapose(kp)
    for t in range(0, len(kp), 2):  # a second person in every other frame
        flat = np.concatenate([kp[t] + 400, np.full((17, 1), 0.8)], 1).reshape(-1).tolist()
        dets.append({"image_id": f"{t}.jpg", "keypoints": flat, "box": [0, 0, 100, 200], "idx": 7})
    path = tmp_path / "two.json"
    path.write_text(json.dumps(dets))
    main = load_alphapose(path)
    assert main.people == 2 and main.person.startswith("1") and not main.lost.any()
    other = load_keypoints(path, person="7")
    np.testing.assert_allclose(other.xy[0], kp[0] + 400)
    assert other.lost[1::2].all()


def test_lost_pose_at_the_end_is_missing_not_motion():
    seq = make_sequence("jumping_jack", 2, count=4)
    kp = seq.keypoints.copy()
    kp[-40:] = np.nan  # the person walked out of view
    prog = fit_program(kp, FitConfig())
    assert isinstance(prog.statements[-1], Missing) and prog.statements[-1].duration == 40
    assert prog.num_frames == len(kp)
    rec = execute(prog, pixels=True)
    assert np.isnan(rec[-40:]).all() and np.isfinite(rec[:-40]).all()
    assert prog.meta["missing_frames"] == 40 and prog.meta["bridged_frames"] == 0
    back = Program.from_text(prog.to_text())
    assert "missing 40" in prog.to_text() and back.missing_spans() == [(len(kp) - 40.0, float(len(kp)))]


def test_no_primitive_spans_a_long_gap_and_short_gaps_are_bridged():
    seq = make_sequence("arm_circle", 4, count=6)
    kp = seq.keypoints.copy()
    kp[40:70] = np.nan  # 30 frames: longer than max_gap
    kp[120:126] = np.nan  # 6 frames: bridged
    prog = fit_program(kp, FitConfig())
    assert prog.missing_spans() == [(40.0, 70.0)]
    assert prog.meta["bridged_frames"] == 6 and prog.meta["missing_frames"] == 30
    assert np.isfinite(execute(prog)[120:126]).all()
    # a circle never turns more than the motion does: no primitive over the gap
    for seg in prog.segments():
        for p in seg.primitives:
            if p.kind == "circle":
                assert abs(p.theta1 - p.theta0) < 2 * np.pi


def test_confidences_weight_the_fit():
    seq = make_sequence("jumping_jack", 7, count=4)
    rng = np.random.default_rng(0)
    kp = seq.keypoints.copy()
    conf = np.full(kp.shape[:2], 0.9)
    bad = rng.random(conf.shape) < 0.1  # 10% of joints: far off, and the detector says so
    kp[bad] += rng.normal(0, 0.3 * seq.program.scale, (bad.sum(), 2))
    conf[bad] = 0.1
    weighted = execute(fit_program(kp, FitConfig(), conf=conf), pixels=True)
    ignored = execute(fit_program(kp, FitConfig()), pixels=True)
    err_w = np.linalg.norm(weighted - seq.clean, axis=-1).mean() / seq.program.scale
    err_i = np.linalg.norm(ignored - seq.clean, axis=-1).mean() / seq.program.scale
    assert err_w < 0.02 < err_i


def test_loops_need_comparable_iterations():
    a = make_sequence("jumping_jack", 1, count=3).program.loops[0]
    b = make_sequence("walk", 1, count=3).program.loops[0]
    assert loop_similarity(a) > 0.8
    mixed = Loop((a.iterations[0], b.iterations[0], a.iterations[1]))
    assert loop_similarity(mixed) < FitConfig().loop.min_similarity


def _mediapipe(kp: np.ndarray) -> np.ndarray:
    mp = np.full((len(kp), 33, 2), np.nan)
    mp[:, list(MEDIAPIPE33.coco17_index)] = kp
    return mp


def test_left_right_swaps_are_repaired():
    rng = np.random.default_rng(1)
    fixed = total = kept = others = 0
    for motion in ("jumping_jack", "walk", "squat", "arm_circle"):
        seq = make_sequence(motion, 11, count=5)
        truth = _mediapipe(seq.keypoints)
        swapped = rng.random(len(truth)) < 0.05
        bad = truth.copy()
        bad[swapped] = bad[swapped][:, list(MEDIAPIPE33.mirror_index)]
        rep, _, _ = repair_swaps(bad, "mediapipe33")
        err = np.nan_to_num(np.linalg.norm(rep - truth, axis=-1)).max(1) / seq.program.scale
        ok = err <= 0.03  # a joint within 3% of body height of its true place
        fixed, total = fixed + (ok & swapped).sum(), total + swapped.sum()
        kept, others = kept + (ok & ~swapped).sum(), others + (~swapped).sum()
    assert total >= 20 and fixed / total >= 0.95
    assert kept / others >= 0.97


def test_a_consistently_mirrored_track_is_left_alone():
    kp = _mediapipe(make_sequence("jumping_jack", 2, count=3).keypoints)
    mirrored = kp[:, list(MEDIAPIPE33.mirror_index)]
    rep, _, fixed = repair_swaps(mirrored, "mediapipe33")
    assert not fixed.any()
    np.testing.assert_array_equal(rep, mirrored)


def test_trc_round_trip_gives_the_same_program(tmp_path):
    seq = make_sequence("squat", 3, count=3)
    kp = seq.keypoints.copy()
    kp[50:55, 9] = np.nan  # a missing marker is an empty cell
    write_trc(tmp_path / "k.trc", kp, 30.0, units="px")
    track = load_trc(tmp_path / "k.trc")
    assert track.fps == 30.0 and track.kind == "detector"
    np.testing.assert_allclose(track.xy, kp, atol=1e-5)
    a, b = fit_program(kp, video()), fit_program(track.xy, video())
    np.testing.assert_allclose(a.boundaries(), b.boundaries())
    assert a.loop_spans() == b.loop_spans() and [s.kinds for s in a.segments()] == [s.kinds for s in b.segments()]
    np.testing.assert_allclose(execute(a, pixels=True), execute(b, pixels=True), atol=1e-3)
    write_trc(tmp_path / "mm.trc", kp / 1000.0, 30.0, units="mm")  # metres on disk as millimetres
    np.testing.assert_allclose(load_trc(tmp_path / "mm.trc").xy, kp / 1000.0, atol=1e-8)


def test_trc_with_sports2d_marker_names(tmp_path):
    kp = make_sequence("walk", 0, count=2).keypoints
    names = ["Hip", "RHip", "RKnee", "RAnkle", "LHip", "LKnee", "LAnkle", "Neck", "Head", "Nose",
             "RShoulder", "RElbow", "RWrist", "LShoulder", "LElbow", "LWrist"]
    coco = {"Nose": 0, "RHip": 12, "RKnee": 14, "RAnkle": 16, "LHip": 11, "LKnee": 13, "LAnkle": 15,
            "RShoulder": 6, "RElbow": 8, "RWrist": 10, "LShoulder": 5, "LElbow": 7, "LWrist": 9, "Head": 1}
    rows = []
    for t, f in enumerate(kp):
        cells = [str(t + 1), f"{t / 30:.4f}"]
        for n in names:
            p = f[coco[n]] if n in coco else f[[11, 12]].mean(0) if n == "Hip" else f[[5, 6]].mean(0)
            cells += [f"{p[0] / 1000:.6f}", f"{-p[1] / 1000:.6f}", "0"]
        rows.append("\t".join(cells))
    head = ["PathFileType\t4\t(X/Y/Z)\tdemo.trc",
            "DataRate\tCameraRate\tNumFrames\tNumMarkers\tUnits\tOrigDataRate\tOrigDataStartFrame\tOrigNumFrames",
            f"60\t60\t{len(kp)}\t{len(names)}\tm\t60\t1\t{len(kp)}",
            "Frame#\tTime\t" + "\t\t\t".join(names), "\t\t" + "\t".join(f"X{i}\tY{i}\tZ{i}" for i in range(1, 17)), ""]
    (tmp_path / "s.trc").write_text("\n".join(head + rows) + "\n")
    track = load_keypoints(tmp_path / "s.trc")
    assert track.fps == 60.0
    np.testing.assert_allclose(track.xy[:, 9], kp[:, 9] / 1000, atol=1e-6)  # left wrist
    np.testing.assert_allclose(track.xy[:, 1], kp[:, 1] / 1000, atol=1e-6)  # left eye <- Head


def test_npz_keeps_confidences_and_frame_ids(tmp_path):
    kp = make_sequence("squat", 0, count=3).keypoints
    conf = np.linspace(0, 1, kp.shape[0] * 17).reshape(kp.shape[:2])
    write_keypoints(tmp_path / "k.npz", kp, conf, fps=25.0, frame_ids=np.arange(100, 100 + len(kp)))
    track = load_keypoints(tmp_path / "k.npz")
    assert track.fps == 25.0 and track.frame_ids[0] == 100 and track.kind == "detector"
    np.testing.assert_allclose(track.conf, conf)
    np.save(tmp_path / "plain.npy", kp)
    assert load_keypoints(tmp_path / "plain.npy").kind == "synthetic"


@pytest.mark.parametrize("bad,needle", [("oops", "PathFileType"), ("PathFileType\t4\nUnits\nfeet\nx\ny\n\n", "Units")])
def test_trc_errors_are_one_line(tmp_path, bad, needle):
    from genlab.errors import GenlabError

    (tmp_path / "b.trc").write_text(bad)
    with pytest.raises(GenlabError, match=needle):
        load_trc(tmp_path / "b.trc")


def test_openpose_rows_are_the_frame_numbers_of_the_files(tmp_path):
    from genlab.core.pose.skeletons import OPENPOSE25

    kp = make_sequence("squat", 2, count=3).keypoints[:40]
    for t, f in enumerate(kp):
        if 10 <= t < 15:
            continue  # no file for these frames
        body = np.zeros((25, 3))
        body[list(OPENPOSE25.coco17_index), :2], body[list(OPENPOSE25.coco17_index), 2] = f, 0.9
        (tmp_path / f"clip_{t + 100:012d}_keypoints.json").write_text(json.dumps({"people": [{"pose_keypoints_2d": body.ravel().tolist()}]}))
    track = load_keypoints(tmp_path)
    assert track.xy.shape[0] == 40 and track.frame_ids[0] == 100
    np.testing.assert_array_equal(np.flatnonzero(track.lost), np.arange(10, 15))
