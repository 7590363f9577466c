"""Metrics (analytic checks) and the person-segmentation interface."""

from __future__ import annotations

import numpy as np
import pytest

from genlab.core.pose import masks
from genlab.errors import GenlabError
from genlab.systems.insertion import metrics, toy


def _gt(n=5, seed=0):
    clips = [toy.sample_clip(toy.clip_rng(seed, k), size=64, n_frames=1) for k in range(n)]
    return np.stack([c.frames[0].keypoints for c in clips]).astype(np.float64)


def test_pck_is_left_right_invariant_and_thresholded():
    gt = _gt()
    swapped = metrics._swap(metrics._swap(gt, metrics.LEG_CHAINS), metrics.ARM_CHAINS)
    ref = np.full(len(gt), 10.0)
    assert metrics.pck(swapped, gt, ref, 0.05) == 1.0
    shifted = gt + np.array([0.6, 0.0])
    assert metrics.pck(shifted, gt, ref, 0.05) == 0.0  # 0.6 px > 0.5 px
    assert metrics.pck(shifted, gt, ref, 0.07) == 1.0
    # PCKh: head segment nose -> neck; MediaPipe: nose -> shoulder midpoint
    assert metrics.pckh(gt, gt) == 1.0
    mp = np.zeros((1, 33, 2))
    mp[0, 11], mp[0, 12] = (-1, 4), (1, 4)  # shoulders; nose at 0 -> head length 4
    pred = mp.copy()
    pred[0, 20] += (1.9, 0)
    assert metrics.pckh(pred, mp, layout="mediapipe33") == 1.0
    pred[0, 20] += (0.2, 0)
    assert metrics.pckh(pred, mp, layout="mediapipe33") == pytest.approx(32 / 33)


def test_frechet_distance_analytic():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4000, 3))
    b = rng.normal(size=(4000, 3)) * 2 + 1
    assert metrics.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    # N(0, I) vs N(1, 4I): |mu|^2 = 3, trace term 3 * (1 + 4 - 2 * 2) = 3
    assert metrics.frechet_distance(a, b) == pytest.approx(6.0, rel=0.1)


def test_identity_error_zero_on_truth_and_large_for_another_person():
    clip = toy.sample_clip(toy.clip_rng(1, 1), size=64, n_frames=1)
    other = toy.sample_clip(toy.clip_rng(1, 2), size=64, n_frames=1)
    fr = clip.frames[0]
    meta = {"ref_colours": [list(c) for c in clip.identity.colours]}
    wrong = {"ref_colours": [list(c) for c in other.identity.colours]}
    own = metrics.identity_error(fr.image[None], fr.keypoints[None], [meta])
    assert own < 0.03
    assert metrics.identity_error(fr.image[None], fr.keypoints[None], [wrong]) > own + 0.1


def test_affordance_rules():
    meta = {"height_px": 30.0, "state": "sit", "floor_y": 60.0, "bench": [10, 40, 50.0], "step": None}
    kp = np.zeros((toy.K, 2))
    kp[toy.KP["hip"]] = (20, 49)
    kp[toy.KP["l_foot"]] = kp[toy.KP["r_foot"]] = (28, 60)
    assert metrics.affordance_ok(kp, meta)
    kp[toy.KP["hip"]] = (20, 40)  # hips 10 px (1/3 body height) above the seat: not sitting
    assert not metrics.affordance_ok(kp, meta)
    walk = {**meta, "state": "walk"}
    kp[toy.KP["hip"]] = (20, 60 - 15)
    assert metrics.affordance_ok(kp, walk)
    kp[toy.KP["l_foot"]] = (28, 54)  # a foot 6 px above the floor: floating
    assert not metrics.affordance_ok(kp, walk)


def test_colour_segmenter_recovers_the_toy_person():
    clip = toy.sample_clip(toy.clip_rng(2, 3), size=64, n_frames=1)
    bg = toy.render_room(clip.room, 64)
    fr = clip.frames[0]
    seg = masks.ColourSegmenter(bg, threshold=0.05)
    pred = seg(fr.image) > 0.5
    truth = fr.mask > 0.5
    iou = (pred & truth).sum() / (pred | truth).sum()
    assert iou > 0.75  # anti-aliased edges differ
    assert masks.bbox(fr.mask) is not None and masks.bbox(np.zeros((4, 4))) is None
    given = masks.GivenMasks([fr.mask])
    np.testing.assert_array_equal(given(fr.image), fr.mask)
    with pytest.raises(GenlabError, match="out of range"):
        given.at(3)
    with pytest.raises(GenlabError, match="RGB"):
        seg(np.zeros((64, 64)))


def test_mediapipe_selfie_segmentation_finds_the_walker(shared_data):
    pytest.importorskip("mediapipe")
    from PIL import Image

    img = np.asarray(Image.open(shared_data / "images" / "sports2d_frame100_884x497.png").convert("RGB"))
    crop = img[240:496, 385:641]  # a square around the walker (the selfie model wants a person-sized view)
    with masks.MediaPipeSelfieSegmenter() as seg:
        m = seg(crop)
    assert m.shape == crop.shape[:2] and m.dtype == np.float32
    comps = masks.largest_components(m)
    assert comps and 0.05 < comps[0].mean() < 0.3
    ys, xs = np.nonzero(comps[0])
    assert 60 < xs.mean() < 200 and ys.max() > 180  # the walker, feet near the bottom of the crop
