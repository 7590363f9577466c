import numpy as np
import pytest

from genlab.errors import GenlabError
from genlab.systems.motion import FitConfig, SynthConfig, fit_program, make_sequence, set_loop_count
from genlab.systems.motion.acceptance import interpolation_errors, prediction_errors
from genlab.systems.motion.apps import predict, reconstruction_error
from genlab.systems.motion.evaluate import repetition_scores
from genlab.systems.motion.synthetic import synthetic_set


def test_reconstruction_error_is_small():
    seq = make_sequence("squat", 4)
    prog = fit_program(seq.keypoints)
    err = reconstruction_error(prog, seq.clean)
    assert err < 0.01 * seq.program.scale  # well under the 1% noise


def test_interpolation_beats_spline_and_prediction_beats_constant_velocity():
    seqs = [make_sequence(m, 21, SynthConfig(count=(6, 6))) for m in ("jumping_jack", "walk")]
    r = interpolation_errors(seqs, gap=12)
    assert r["n"] == 2 and r["program"] < r["spline"]
    p = prediction_errors(seqs, horizon=15)
    assert p["n"] == 2 and p["program"] < p["constant_velocity"]


def test_predict_validates_horizon():
    seq = make_sequence("walk", 1)
    with pytest.raises(GenlabError):
        predict(seq.keypoints, 0)


def test_repetition_scores():
    s = repetition_scores([(0, 100, 5), (200, 240, 3)], [(5, 100, 5)])
    assert s["precision"] == 0.5 and s["recall"] == 1.0 and s["count_mae"] == 0.0
    assert repetition_scores([], [(0, 10, 3)])["recall"] == 0.0


def test_loop_edit_changes_executed_length():
    seq = make_sequence("arm_circle", 2, count=4)
    prog = fit_program(seq.keypoints)
    longer = set_loop_count(prog, 0, prog.loops[0].count + 2)
    assert longer.num_frames > prog.num_frames


@pytest.mark.slow
def test_acceptance_fit_on_50_sequences():
    from genlab.systems.motion.acceptance import fit_scores

    s = fit_scores(synthetic_set(50, seed=0))
    print("fit acceptance (50 seq):", s)
    assert s["type_acc"] >= 0.95
    assert s["boundary_recall"] >= 0.90
    assert s["count_exact"] >= 0.90


@pytest.mark.slow
def test_acceptance_fit_with_gaps_dropped_frames_and_low_confidence(tmp_path):
    """The same 50 sequences as real trackers hand them over: a gap of 10 / 30 / 60 frames at the
    start / middle / end (its frames dropped from an AlphaPose file with frame ids) and 10% of the
    joints thrown off with confidence 0.1. Judged on frames at least 5 from the gap, against the
    clean fit judged the same way."""
    from genlab.systems.motion.acceptance import gap_scores

    r = gap_scores(synthetic_set(50, seed=0), tmp_path)
    print("gaps (50 seq):", r)
    assert r["long_gaps"]["n"] > 0 and r["long_gaps"]["primitive_in_long_gap"] == 0.0
    for k in ("type_acc", "boundary_recall", "boundary_precision"):
        assert r["gapped"][k] >= r["clean"][k] - 0.03, k
    assert r["gapped"]["loop_count"] >= r["clean"]["loop_count"] - 0.03


@pytest.mark.slow
def test_acceptance_interpolation_and_prediction():
    seqs = synthetic_set(16, seed=1, cfg=SynthConfig(count=(5, 8)))
    for gap in (10, 20, 30):
        r = interpolation_errors(seqs, gap)
        print(f"gap {gap}: {r}")
        assert r["program"] < r["spline"]
    for h in (15, 30):
        r = prediction_errors(seqs, h)
        print(f"horizon {h}: {r}")
        assert r["program"] < r["constant_velocity"]


@pytest.mark.slow
def test_1000_frames_fit_time():
    import time

    kp = make_sequence("jumping_jack", 7, count=60).keypoints[:1000]
    t, c = time.perf_counter(), time.process_time()
    fit_program(kp, FitConfig())
    dt, cpu = time.perf_counter() - t, time.process_time() - c
    print(f"1000 frames: {dt:.2f} s wall, {cpu:.2f} s cpu")
    # goal: 5 s on 2 cores. The test machine is shared (wall time says little), so bound CPU time;
    # the fit is single-threaded numpy, so CPU seconds ~ wall seconds on an idle core.
    assert cpu < 5.0


def test_missing_frames_get_weight_zero():
    seq = make_sequence("jumping_jack", 8)
    kp = seq.keypoints.copy()
    miss = np.zeros(len(kp), bool)
    miss[40:44] = True
    kp[miss] += 500.0  # garbage in the flagged frames must not move the fit
    prog = fit_program(kp, missing=miss)
    assert reconstruction_error(prog, seq.clean) < 0.015 * seq.program.scale
