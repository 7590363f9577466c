"""Acceptance on the toy. Fast tier: a small run must place people with affordance well above pasting
the reference unchanged. Slow tier (`make test-slow`): the issue's full figures on 200 held-out pairs
fixed by seed and checksum, DDIM 50."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from genlab.systems.insertion import config, evaluate, metrics, pairs, train
from genlab.systems.insertion.pipeline import InsertionPipeline

FAST_STEPS = 1500  # measured curve (README): insertion@2 0.72 / 0.78 / 0.77 / 0.81 at 600 / 900 / 1200 / 1500; need 0.76
EVAL_CHECKSUM_64 = "c098b359ec1424ed"  # 200 held-out pairs at 64 px (slow tier), fixed before any tuning
EVAL_CHECKSUM_32 = "9242bffecfc55d0b"  # 64 held-out pairs at 32 px (fast tier)
FAST_READER = metrics.ReaderConfig(size=32, steps=600, pool=1500)


def test_train_save_load_sample_smoke(tmp_path):
    cfg = config.tiny()
    cfg = replace(cfg, train=replace(cfg.train, steps=3, pool=32, batch_size=4))
    model, ae, hist = train.train(cfg, out_dir=tmp_path, progress=False)
    assert len(hist) >= 1 and np.isfinite(hist[-1]["loss"])
    loaded, ae2, cfg2 = train.load_model(tmp_path)
    assert cfg2 == cfg
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values()):
        torch.testing.assert_close(a, b)
    drawn = pairs.collate(pairs.eval_pairs(2, train.pair_config(cfg)))
    pipe = InsertionPipeline(loaded, ae2, cfg.ref_size)
    s = replace(cfg.sample, steps=3)
    a = pipe.sample(drawn["scene"], drawn["mask"], drawn["reference"], settings=s,
                    generator=torch.Generator().manual_seed(1)).images
    b = pipe.sample(drawn["scene"], drawn["mask"], drawn["reference"], settings=s,
                    generator=torch.Generator().manual_seed(1)).images
    torch.testing.assert_close(a, b)  # deterministic in the seed
    keep = drawn["mask"] < 0.5
    torch.testing.assert_close(a.masked_select(keep), drawn["scene"].masked_select(keep))  # composited
    # resuming the same run is a no-op; another config in the same folder is refused
    with pytest.raises(Exception, match="different config"):
        train.train(replace(cfg, train=replace(cfg.train, steps=4, lr=1.0)), out_dir=tmp_path, progress=False)


@pytest.mark.slow
def test_fast_toy_affordance_well_above_paste(tmp_path):
    """The whole pipeline at the smallest size (32 px); the threshold is the issue's `well above paste`.
    Marked slow: training alone is 1500 x 0.37 CPU s ~ 560 CPU s (README's profile), beyond the fast
    tier's ~90 s; the fast tier's learning check is the one-pair overfit (test_overfit.py)."""
    cfg = config.tiny()
    cfg = replace(cfg, train=replace(cfg.train, steps=FAST_STEPS))
    readers = metrics.load_or_train_readers(FAST_READER, progress=False)
    model, ae, _ = train.train(cfg, out_dir=None, progress=False)
    report = evaluate.evaluate(InsertionPipeline(model, ae, cfg.ref_size), cfg, readers, n_pairs=64,
                        settings=replace(cfg.sample, steps=10), methods=("insertion",))
    print(json.dumps(report))
    assert report["checksum"] == EVAL_CHECKSUM_32
    assert report["insertion"]["affordance"] >= report["paste"]["affordance"] + 0.15


@pytest.mark.slow
def test_toy_demo_acceptance(tmp_path):
    """The issue's figures: 200 held-out pairs, DDIM 50, the toy preset's full training budget."""
    cfg = config.toy()
    reader_cfg = metrics.ReaderConfig(size=cfg.size)
    readers = metrics.load_or_train_readers(reader_cfg, progress=True)
    x, kp, _, h, _ = metrics.render_pool(reader_cfg, 400, seed=999)
    assert metrics.pck(metrics.read_keypoints(readers[0], x), kp.numpy(), h, 0.05) >= 0.95  # the reader can be trusted
    model, ae, history = train.train(cfg, out_dir=tmp_path, progress=True)
    report = evaluate.evaluate(InsertionPipeline(model, ae, cfg.ref_size), cfg, readers, n_pairs=200, n_swap=100,
                        settings=replace(cfg.sample, steps=50))
    print(json.dumps(report, indent=1))
    assert report["checksum"] == EVAL_CHECKSUM_64
    assert report["ground_truth"]["affordance"] >= 0.95
    ours = report["insertion"]["affordance"]
    assert ours >= 0.75
    assert ours >= report["paste"]["affordance"] + 0.20
    assert report["scene_hallucination"]["affordance"] <= ours - 0.15
    assert report["person_hallucination"]["affordance"] >= 0.6


@pytest.mark.slow
def test_latent_toy_path_smoke(tmp_path, monkeypatch):
    """(Slow: ~80 s on the loaded machine.) The demo's path: small f4 autoencoder (trained once, cached), 16x16x4 latents, save/load, sample."""
    monkeypatch.setenv("GENLAB_CACHE", str(tmp_path / "cache"))
    cfg = config.toy(ae_steps=2)
    cfg = replace(cfg, train=replace(cfg.train, steps=2, pool=8, batch_size=2))
    pool = train.build_pool(cfg)
    ae = train.make_autoencoder(cfg, pool["target"])
    assert ae.encode(pool["target"][:1]).shape == (1, 4, 16, 16)
    train.train(cfg, out_dir=tmp_path / "run", progress=False, pool=pool, ae=ae)
    model, ae2, cfg2 = train.load_model(tmp_path / "run")
    assert cfg2 == cfg
    b = pairs.collate(pairs.eval_pairs(1, train.pair_config(cfg)))
    out = InsertionPipeline(model, ae2, cfg.ref_size).sample(b["scene"], b["mask"], b["reference"],
                                                             settings=replace(cfg.sample, steps=2))
    assert out.images.shape == (1, 3, 64, 64) and out.latents.shape == (1, 4, 16, 16)
    assert torch.isfinite(out.images).all()
