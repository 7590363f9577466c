import math

import numpy as np
import pytest

from genlab.errors import GenlabError
from genlab.systems.motion import FitConfig, fit_program, make_sequence
from genlab.systems.motion.config import FitConfig as _FC
from genlab.systems.motion.evaluate import score_fit
from genlab.systems.motion.fit import CIRC, LINE, STAT, Moments, fit_windows


def _fit_one(track: np.ndarray, cfg=None):
    X = track[:, None, :]
    mom = Moments(X, np.ones(len(X)))
    return fit_windows(mom, np.array([0]), len(X), cfg or _FC())


def test_closed_form_fits_are_exact():
    u = np.arange(20) / 20
    line = np.stack([0.1 + 0.5 * (u + 0.4 * u * (u - 1)), 0.2 - 0.3 * (u + 0.4 * u * (u - 1))], -1)
    f = _fit_one(line)
    assert f["kind"][0, 0] == LINE and f["err_line"][0, 0] < 1e-8
    th = 0.3 + 2.0 * (u - 0.5 * u * (u - 1))
    circ = np.stack([0.5 + 0.3 * np.cos(th), -0.2 + 0.3 * np.sin(th)], -1)
    f = _fit_one(circ)
    assert f["kind"][0, 0] == CIRC and f["err_circ"][0, 0] < 1e-8
    np.testing.assert_allclose(f["center"][0, 0], [0.5, -0.2], atol=1e-9)
    assert f["radius"][0, 0] == pytest.approx(0.3)
    still = np.full((20, 2), 0.3) + 0.002 * np.random.default_rng(0).standard_normal((20, 2))
    assert _fit_one(still)["kind"][0, 0] == STAT


def test_short_line_not_allowed():
    u = np.arange(20) / 20
    tiny = np.stack([0.02 * u, 0 * u], -1)  # travels 0.02 < min_span and stays inside the box
    assert _fit_one(tiny, _FC(stat_box=0.0, stat_dev=0.0))["kind"][0, 0] == STAT


@pytest.mark.parametrize("motion", ["jumping_jack", "arm_circle", "walk"])
def test_synthetic_end_to_end(motion):
    seq = make_sequence(motion, 11)
    prog = fit_program(seq.keypoints, FitConfig())
    sc = score_fit(prog, seq)
    assert sc["type_acc"] > 0.85
    assert sc["boundary_recall"] > 0.8
    assert prog.loops and prog.loops[0].count == seq.loop_counts[0]


@pytest.mark.parametrize("bad", [np.zeros((0, 17, 2)), np.zeros((1, 17, 2)), np.full((40, 17, 2), np.nan),
                                 np.zeros((40, 12, 2)), np.zeros((40, 17)), "abc"])
def test_bad_input_is_one_clear_error(bad):
    with pytest.raises(GenlabError):
        fit_program(bad)


def test_nan_frames_are_filled_and_flagged():
    seq = make_sequence("jumping_jack", 5)
    kp = seq.keypoints.copy()
    kp[30:34] = np.nan
    prog = fit_program(kp)
    assert prog.meta["missing"][30:34].all() and prog.meta["missing"].sum() == 4
    assert math.isfinite(prog.duration)


def test_local_penalty_adapts_to_local_noise():
    from genlab.systems.motion.fit import local_noise_var

    rng = np.random.default_rng(0)
    X = np.zeros((200, 3, 2))
    X[100:] += 0.05 * rng.standard_normal((100, 3, 2))  # quiet first half, noisy second half
    X[:100] += 0.005 * rng.standard_normal((100, 3, 2))
    v = local_noise_var(X, np.ones(200), 31)
    assert v[150] / v[50] > 30  # (0.05 / 0.005)^2 = 100, robustly above 30
    seq = make_sequence("jumping_jack", 11)
    prog = fit_program(seq.keypoints, FitConfig(penalty_local=True))
    sc = score_fit(prog, seq)
    assert sc["boundary_recall"] > 0.8 and prog.loops


def test_fit_segments_at_given_boundaries():
    from genlab.systems.motion import Circle, Line, fit_segments

    u = np.arange(20) / 20
    line = np.stack([0.1 + 0.5 * u, 0.2 - 0.3 * u], -1)
    th = 0.3 + 2.0 * u
    circ = np.stack([0.5 + 0.3 * np.cos(th), -0.2 + 0.3 * np.sin(th)], -1)
    X = np.concatenate([line, circ])[:, None, :]
    segs = fit_segments(X, [0, 20, 40])
    assert [s.duration for s in segs] == [20.0, 20.0]
    assert isinstance(segs[0].primitives[0], Line) and isinstance(segs[1].primitives[0], Circle)
    np.testing.assert_allclose(segs[0].primitives[0].start, [0.1, 0.2], atol=1e-9)
    assert segs[1].primitives[0].radius == pytest.approx(0.3)
    # same as the internal window fit
    ref = fit_windows(Moments(X, np.ones(40)), np.array([20]), 20, _FC())
    assert ref["kind"][0, 0] == CIRC
    for bad in ([0], [0, 20, 20], [0, 41], [-1, 10]):
        with pytest.raises(GenlabError, match="boundaries"):
            fit_segments(X, bad)
