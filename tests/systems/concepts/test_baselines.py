import numpy as np

from genlab.systems.motion.concepts.baselines import DTWTemplates, batched_dtw
from genlab.systems.motion.concepts.config import tiny


def test_batched_dtw_is_zero_on_warped_copies_and_matches_offsets():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(1, 8, 4))
    warped = a[:, [0, 0, 1, 2, 3, 4, 5, 6]]  # a lagged copy: DTW should absorb the lag mostly
    d = batched_dtw(np.concatenate([a, a + np.array([0.3, 0.4, 0.3, 0.4])]), np.concatenate([a, warped]))
    assert d.shape == (2, 2)
    assert d[0, 0] < 1e-6
    assert d[0, 1] < 0.5 * d[1, 0]
    # offset (0.3, 0.4) on both joints: rms per-joint distance 0.5 on the 8-step diagonal, / (2P - 1)
    assert np.isclose(d[1, 0], 0.5 * 8 / 15)


def test_dtw_baseline_describes_something(small_model, small_val):
    _, examples, _ = small_model
    base = DTWTemplates.fit(examples[::2], tiny())
    desc = base.describe(small_val[0].keypoints[:200])
    assert desc.n_frames == 200
    assert all(a.concept in base.names for a in desc.actions)
