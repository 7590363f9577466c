"""Real pairs from the Sports2D video: MediaPipe Pose + selfie segmentation, one-person frames."""

from __future__ import annotations

import numpy as np
import pytest

from genlab.errors import GenlabError
from genlab.systems.insertion import metrics, pairs, real


@pytest.fixture(scope="module")
def extraction(shared_data):
    pytest.importorskip("mediapipe")
    return real.extract(shared_data / "video" / "sports2d_demo.mp4", size=64, max_frames=96, stride=4, clip_len=8)


def test_real_frames_have_a_person_mask_and_keypoints_on_it(extraction):
    c = extraction.counts
    assert c["frames"] == 24
    assert c["usable"] >= 8, c
    # every usable frame is in a kept clip or in a skipped (< 2 frames) one
    assert sum(len(clip) for clip in extraction.clips) + c["clips_skipped_lt2"] >= c["usable"] - c["clips_skipped_lt2"]
    assert all(len(clip) >= 2 for clip in extraction.clips)
    for clip in extraction.clips:
        for fr in clip:
            assert fr.image.shape == (64, 64, 3) and fr.mask.shape == (64, 64)
            hips = fr.keypoints[list(real.HIPS)].mean(0).round().astype(int)
            y, x = np.clip(hips[1], 2, 61), np.clip(hips[0], 2, 61)
            assert fr.mask[y - 2:y + 3, x - 2:x + 3].max() > 0.5  # the hips are on (or by) the person
    # self-supervised pairs: scene hides the target person, reference comes from another frame
    rng = np.random.default_rng(0)
    cfg = pairs.PairConfig(size=64, augment=False)
    pair = real.make_real_pair(extraction.clips[0], rng, cfg)
    assert pair.meta["frames"][0] != pair.meta["frames"][1]
    assert (pair.mask[real.extraction_mask(extraction.clips[0], pair) > 0.05] == 1).all()
    # PCKh of the ground truth against itself, MediaPipe layout (head = nose to shoulder midpoint)
    kp = np.asarray(pair.meta["keypoints"])[None]
    assert metrics.pckh(kp, kp, layout="mediapipe33") == 1.0


def test_clip_with_fewer_than_two_frames_is_an_error():
    fr = real.RealFrame(0, np.zeros((8, 8, 3), np.float32), np.ones((8, 8), np.float32), np.zeros((33, 2)), np.ones(33))
    with pytest.raises(GenlabError, match=">= 2 usable frames"):
        real.make_real_pair([fr], np.random.default_rng(0), pairs.PairConfig(size=8))


def test_missing_video_is_one_clear_error(tmp_path):
    with pytest.raises(GenlabError, match="not found"):
        real.extract(tmp_path / "nope.mp4")
