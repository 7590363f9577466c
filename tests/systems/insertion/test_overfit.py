"""The fast tier's end-to-end learning check: the real training path (condition dropout, core Trainer,
EMA) overfit on ONE pair must reproduce that pair's target with DDIM from pure noise. This is what
failed before v-prediction: with eps on SD's schedule a young UNet's first x0 estimates are ~15x its
eps error, the DDIM trajectory leaves the data and ends as saturated speckle (in-mask MSE ~0.6)."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from genlab.systems.insertion import config, pairs, train
from genlab.systems.insertion.pipeline import InsertionPipeline

STEPS = 300


def _overfit_one_pair(prediction: str) -> float:
    cfg = config.tiny()
    cfg = replace(cfg, model=replace(cfg.model, prediction=prediction),
                  train=replace(cfg.train, steps=STEPS, batch_size=8, pool=8))
    one = pairs.eval_pairs(1, train.pair_config(cfg))
    pool = pairs.collate(one * 8)
    model, ae, hist = train.train(cfg, pool=pool, progress=False)
    assert hist[-1]["loss"] < 0.1
    pipe = InsertionPipeline(model, ae, cfg.ref_size)
    b = pairs.collate(one * 2)
    out = pipe.sample(b["scene"], b["mask"], b["reference"], generator=torch.Generator().manual_seed(0),
                      settings=replace(cfg.sample, steps=20, scale_scene=1.0, scale_person=1.0)).images
    inside = (b["mask"] > 0.5).expand_as(out)
    return float(((out - b["target"])[inside] ** 2).mean())


def test_one_pair_overfit_reproduces_the_target_from_noise():
    mse = _overfit_one_pair("v")
    print("v: in-mask pixel MSE", mse)
    assert mse < 0.1  # measured 0.042 (loaded machine, 300 steps); eps at the same budget: 0.57


@pytest.mark.slow
def test_eps_prediction_does_not_at_this_budget():
    """The diagnosis behind ModelConfig.prediction='v' for the toys (the paper's eps is kept for SD weights)."""
    mse = _overfit_one_pair("eps")
    print("eps: in-mask pixel MSE", mse)
    assert mse > 0.2  # measured 0.57
