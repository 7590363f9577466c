"""Learning-rate schedules after warm-up and the aspect-ratio bucket sampler of core/train."""

from __future__ import annotations

import math

import pytest
import torch

from genlab.core.train import BucketSampler, TrainConfig, lr_at
from genlab.errors import GenlabError


def test_lr_schedules_warm_up_then_decay_towards_the_floor():
    base = dict(steps=10, lr=1.0, warmup_steps=2, min_lr_ratio=0.1)
    const = TrainConfig(**base, lr_schedule="constant")
    cos = TrainConfig(**base, lr_schedule="cosine")
    lin = TrainConfig(**base, lr_schedule="linear")
    assert [lr_at(const, s) for s in range(10)] == [0.5] + [1.0] * 9  # linear warm-up, then flat
    assert lr_at(lin, 0) == pytest.approx(0.5)  # warm-up times the decay at step 0 (= 1)
    # halfway (step 5 of 10): cosine and linear both at the midpoint 0.55
    assert lr_at(cos, 5) == pytest.approx(0.55) and lr_at(lin, 5) == pytest.approx(0.55)
    assert lr_at(cos, 3) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.3)))
    assert lr_at(lin, 8) == pytest.approx(0.1 + 0.9 * 0.2)
    lrs = [lr_at(lin, s) for s in range(1, 10)]
    assert all(a > b for a, b in zip(lrs, lrs[1:])) and lrs[-1] > 0.1
    with pytest.raises(GenlabError, match="lr_schedule"):
        TrainConfig(lr_schedule="step")
    with pytest.raises(GenlabError, match="grad_accum"):
        TrainConfig(batch_size=6, grad_accum=4)


def test_bucket_sampler_keeps_each_batch_in_one_bucket_and_covers_every_sample():
    buckets = [0] * 10 + [1] * 7 + [2] * 3  # bucket 2 is smaller than a batch: it repeats its members
    sampler = BucketSampler(buckets, seed=3)
    seen = set()
    for step in range(40):
        idx = sampler.global_indices(step, 4)
        assert idx.shape == (4,) and len({buckets[int(i)] for i in idx}) == 1
        seen.update(int(i) for i in idx)
    assert seen == set(range(20))
    again = BucketSampler(buckets, seed=3)
    assert all(torch.equal(sampler.global_indices(s, 4), again.global_indices(s, 4)) for s in (0, 7, 33))
    assert not all(torch.equal(sampler.global_indices(s, 4), BucketSampler(buckets, seed=4).global_indices(s, 4))
                   for s in range(5))
