"""The benchmark's neural peers: tiny training runs (fast tier) and their decoding logic."""

import numpy as np
import pytest

from genlab.core.pose.skeletons import COCO17
from genlab.systems.motion.concepts.config import tiny
from genlab.systems.motion.concepts.peers import ActorVAE, CTCBaseline, train_budgeted


def test_train_budgeted_stops_on_steps_and_on_cpu_budget():
    assert train_budgeted(lambda: None, None, 7) == 7
    n = train_budgeted(lambda: sum(range(20000)), 0.05, 10**9)
    assert 0 < n < 10**9


def test_coco17_mirror_is_an_involution_that_flips_x():
    x = np.random.default_rng(0).normal(size=(5, 17, 2))
    np.testing.assert_allclose(COCO17.mirror(COCO17.mirror(x)), x)
    m = COCO17.mirror(x)
    np.testing.assert_allclose(m[:, 0, 0], -x[:, 0, 0])  # nose maps to itself, x flipped
    np.testing.assert_allclose(m[:, 5], x[:, 6] * [-1, 1])  # left shoulder <- right shoulder


def test_ctc_decoding_turns_peaks_into_cells_and_counts():
    import torch

    class Fixed(torch.nn.Module):  # logits (1, C+1, T/4): blank, then peaks of class 1, 2, 1
        def forward(self, x):
            T = x.shape[-1] // 4
            lg = torch.zeros(1, 3, T)
            lg[0, 0] = 5.0
            for c, t in ((1, 10), (2, 30), (1, 50)):
                lg[0, c, t] = 10.0
            return lg

    base = CTCBaseline(Fixed(), ["a", "b"], tiny(), {"a": 20.0, "b": 40.0})
    kp = np.zeros((240, 17, 2))
    kp[:, :, 1] = -np.linspace(0, 1, 17)  # a standing stick (body height 1)
    kp[:, 15:17, 1] = 0.0
    d = base.describe(kp)
    assert list(d.concepts) == ["a", "b", "a"]
    # peaks at frames 42, 122, 202 (T/4 grid, cell centres): cells split at the midpoints
    assert [(a.start, a.end) for a in d.actions] == [(0, 82), (82, 162), (162, 240)]
    assert [a.count for a in d.actions] == [4, 2, 4]


def test_peers_train_a_little(small_model):
    _, examples, _ = small_model
    ctc = CTCBaseline.fit(examples, cfg=tiny(), max_steps=15)
    assert ctc.steps == 15 and np.mean(ctc.losses[-4:]) < np.mean(ctc.losses[:4])
    assert all(a.concept in ctc.names for a in ctc.describe(examples[0].keypoints).actions)
    vae = ActorVAE.fit(examples[:2], cfg=tiny(), max_steps=15, batch=2)
    assert np.mean(vae.losses[-4:]) < np.mean(vae.losses[:4])
    x = vae.sample(examples[0].concept, 37, seed=1)
    assert x.shape == (37, 17, 2) and np.isfinite(x).all()
    np.testing.assert_array_equal(x, vae.sample(examples[0].concept, 37, seed=1))
    with pytest.raises(ValueError):
        vae.sample("no_such_concept", 10)


def test_mstcn_peer_trains_with_two_stages(small_model):
    from genlab.systems.motion.concepts.baselines import TCNBaseline

    _, examples, _ = small_model
    tcn = TCNBaseline.fit(examples, cfg=tiny(), steps=12)
    assert tcn.steps == 12 and len(tcn.net.stages) == 2
    assert np.mean(tcn.losses[-4:]) < np.mean(tcn.losses[:4])
    d = tcn.describe(examples[0].keypoints)
    assert d.n_frames == len(examples[0].keypoints)


def test_chained_clips_with_augmentation_keep_labels_and_the_rest_pose():
    from genlab.systems.motion.concepts.peers import chain_clips, feature_stats

    cfg = tiny()
    rng = np.random.default_rng(0)
    F = 2 * len(cfg.joints)
    clips = [(np.linspace(0, 1, 40)[:, None] * np.ones(F), 0), (np.ones((30, F)), 1)]
    x, y, acts = chain_clips(rng, clips, cfg, n_items=3, augment=True)
    assert x.shape == (len(y), F) and len(acts) == 3
    assert all(a != b for a, b in zip(acts, acts[1:]))  # no concept twice in a row
    edges = np.flatnonzero(np.diff(np.r_[-2, y, -2]))
    runs = [(int(y[s]), e - s) for s, e in zip(edges[:-1], edges[1:]) if y[s] >= 0]
    assert [c for c, _ in runs] == acts
    for c, n in runs:  # time stretch 0.75-1.35x
        assert 0.75 * len(clips[c][0]) - 1 <= n <= 1.35 * len(clips[c][0]) + 1
    mean, std = feature_stats([x, x + 1.0])
    assert mean.shape == std.shape == (F,) and (std > 0).all()


def test_peers_standardise_their_inputs(small_model):
    from genlab.systems.motion.concepts.baselines import TCNBaseline
    from genlab.systems.motion.concepts.model import normalise

    _, examples, _ = small_model
    ctc = CTCBaseline.fit(examples, cfg=tiny(), max_steps=2)
    tcn = TCNBaseline.fit(examples, cfg=tiny(), steps=2)
    feats = np.concatenate([normalise(e.keypoints, tiny()).feats for e in examples])
    for peer in (ctc, tcn):
        np.testing.assert_allclose(peer.mean, feats.mean(0))
        assert peer.std.shape == (feats.shape[1],)


def test_benchmark_script_imports():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parents[3] / "benchmarks" / "concepts_lowdata.py"
    spec = importlib.util.spec_from_file_location("concepts_lowdata", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # catches stale imports (the script is not run in the fast tier)
    assert callable(mod.main) and callable(mod.synthesis_scores)
