"""The toy world and the pair builder: geometry the metrics rely on, mask mix, flips, modes, shards."""

from __future__ import annotations

import numpy as np
import pytest

from genlab.errors import GenlabError
from genlab.systems.insertion import metrics, pairs, toy


def test_clip_is_deterministic_and_poses_follow_the_scene():
    a = toy.sample_clip(toy.clip_rng(3, 5), size=64, n_frames=4)
    b = toy.sample_clip(toy.clip_rng(3, 5), size=64, n_frames=4)
    for fa, fb in zip(a.frames, b.frames):
        np.testing.assert_array_equal(fa.image, fb.image)
    for k in range(40):
        clip = toy.sample_clip(toy.clip_rng(0, k), size=64, n_frames=3)
        room, h = clip.room, clip.identity.height * 64
        for fr in clip.frames:
            kp = fr.keypoints
            feet_y = kp[[toy.KP["l_foot"], toy.KP["r_foot"]], 1]
            if fr.state == "sit":
                assert abs(kp[toy.KP["hip"], 1] - room.bench[2] * 64) < 0.1 * h
                np.testing.assert_allclose(feet_y, room.floor_y * 64, atol=0.5)
            else:
                ground = room.step[2] if fr.state == "step" else room.floor_y
                np.testing.assert_allclose(feet_y, ground * 64, atol=0.5)
            # every keypoint lies on the rendered person
            ij = np.clip(np.round(kp - 0.5).astype(int), 0, 63)
            assert (fr.mask[ij[:, 1], ij[:, 0]] > 0.3).all()


def test_ground_truth_targets_score_full_affordance_and_paste_does_not():
    from genlab.systems.insertion.evaluate import paste_baseline

    cfg = pairs.PairConfig(size=64)
    drawn = pairs.eval_pairs(60, cfg)
    kp = np.asarray([p.meta["keypoints"] for p in drawn])
    assert metrics.affordance_accuracy(kp, [p.meta for p in drawn]) == 1.0
    absent = np.arange(60) % 3 == 0  # a sample with no person never counts, whatever the keypoints say
    hits = metrics.affordance_hits(kp, [p.meta for p in drawn], present=~absent)
    assert hits.tolist() == (~absent).tolist()
    # the reference's own pose (from another frame) placed at the target: the metric must tell
    ref_states = [p.meta["ref_state"] for p in drawn]
    states = [p.meta["state"] for p in drawn]
    assert any(r != s for r, s in zip(ref_states, states))
    paste = paste_baseline(drawn[0], cfg)
    assert paste.shape == (64, 64, 3)


def test_mask_mix_dilation_and_grey_scene():
    cfg = pairs.PairConfig(size=32, ref_size=16)
    drawn = [pairs.make_pair(11, k, cfg) for k in range(300)]
    kinds = [p.meta["mask_kind"] for p in drawn]
    for kind, prob in zip(pairs.MASK_TYPES, pairs.MASK_PROBS):
        assert abs(kinds.count(kind) / len(kinds) - prob) < 0.08, (kind, kinds.count(kind))
    assert max(p.meta["dilation"] for p in drawn) <= cfg.px(20)
    assert pairs.PairConfig(size=64).px(20) == 5 and pairs.PairConfig(size=256).px(10) == 10
    for p in drawn[:50]:
        m = p.mask[..., None]
        np.testing.assert_allclose(p.scene * (1 - m), p.target * (1 - m), atol=1e-6)
        np.testing.assert_allclose(p.scene * m, np.broadcast_to(toy.GREY * m, p.scene.shape), atol=1e-6)
        # the mask hides the whole person: re-render the person coverage through the frame
        clip = toy.sample_clip(toy.clip_rng(11, p.meta["index"]), size=32, n_frames=2)
        person = clip.frames[p.meta["frames"][0]].mask
        if p.meta["flip"]:
            person = person[:, ::-1]
        assert (p.mask[person > 0.05] == 1).all()


def test_one_flip_for_scene_target_mask_and_reference():
    on, off = pairs.PairConfig(size=32, ref_size=16, augment=False), pairs.PairConfig(size=32, ref_size=16, augment=False,
                                                                              flip=False)
    flipped = [k for k in range(20) if pairs.make_pair(2, k, on).meta["flip"]]
    assert flipped
    k = flipped[0]
    a, b = pairs.make_pair(2, k, on), pairs.make_pair(2, k, off)
    for x, y in ((a.target, b.target), (a.scene, b.scene), (a.mask, b.mask), (a.reference, b.reference)):
        np.testing.assert_allclose(x, y[:, ::-1], atol=1e-6)


def test_modes_same_swap_half():
    cfg = pairs.PairConfig(size=32, ref_size=16, augment=False)
    same, swap, half = (pairs.make_pair(4, 1, cfg, mode=m) for m in ("same", "swap", "half"))
    assert same.meta["colours"] == same.meta["ref_colours"]
    assert swap.meta["colours"] != swap.meta["ref_colours"]
    # half box: part of the person stays visible in the scene
    clip = toy.sample_clip(toy.clip_rng(4, 1), size=32, n_frames=2)
    person = clip.frames[half.meta["frames"][0]].mask
    if half.meta["flip"]:
        person = person[:, ::-1]
    visible = (person > 0.5) & (half.mask < 0.5)
    assert visible.sum() > 5 and ((person > 0.5) & (half.mask > 0.5)).sum() > 5
    # the reference is centred on grey
    ref = same.reference
    fg = np.abs(ref - toy.GREY).max(-1) > 0.05
    ys, xs = np.nonzero(fg)
    assert abs(xs.mean() - 7.5) < 3 and abs((ys.min() + ys.max()) / 2 - 7.5) < 3
    with pytest.raises(GenlabError, match="mode"):
        pairs.make_pair(0, 0, cfg, mode="bogus")


def test_shards_are_seeded_and_resumable(tmp_path):
    cfg = pairs.PairConfig(size=32, ref_size=16)
    pairs.write_shards(tmp_path, seed=5, n_pairs=6, shard_size=4, cfg=cfg, progress=False)
    first = (tmp_path / "shard-00001.npz").read_bytes()
    (tmp_path / "shard-00001.npz").unlink()
    pairs.write_shards(tmp_path, seed=5, n_pairs=6, shard_size=4, cfg=cfg, progress=False)
    assert (tmp_path / "shard-00001.npz").read_bytes() == first
    back = pairs.read_shard(tmp_path / "shard-00000.npz")
    ref = pairs.make_pair(5, 2, cfg)
    np.testing.assert_allclose(back[2].target, ref.target, atol=1 / 255)
    assert back[2].meta["state"] == ref.meta["state"]
    with pytest.raises(GenlabError, match="other settings"):
        pairs.write_shards(tmp_path, seed=6, n_pairs=6, shard_size=4, cfg=cfg, progress=False)
    assert not list(tmp_path.glob("*.tmp"))


def test_eval_set_is_fixed_by_seed_and_checksum():
    cfg = pairs.PairConfig(size=32, ref_size=16)
    a, b = pairs.eval_pairs(8, cfg), pairs.eval_pairs(8, cfg)
    assert pairs.checksum(a) == pairs.checksum(b)
    assert all(p.meta["mask_kind"] == "box" and p.meta["dilation"] == cfg.px(10) for p in a)
    # guidance is chosen on a second held-out set: other clips, never the test pairs
    from genlab.systems.insertion.evaluate import VALIDATION_SEED

    assert pairs.checksum(pairs.eval_pairs(8, cfg, seed=VALIDATION_SEED)) != pairs.checksum(a)
