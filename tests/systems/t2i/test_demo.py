"""Demo quality: a classifier trained here on real digits (>= 95 % held out)
labels the demo model's samples as the digit asked for, and the samples are not copies.

The classifier's test split is fixed (sklearn's digit order: first 1200 train, rest held out).
Slow tier: `genlab demo` itself, 100 samples (10 per digit) at guidance 3, >= 80 %.
Fast tier: the 60-second preset `digits_fast`, >= 50 %.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from genlab.systems.t2i import config as presets
from genlab.systems.t2i.data import digit_caption, load_digits
from genlab.systems.t2i.pipeline import generate, load_model
from genlab.systems.t2i.train import train_t2i
from tests.helpers import run_genlab

GUIDANCE = 3.0


@pytest.fixture(scope="module")
def judge():
    from sklearn.svm import SVC

    images, labels, _ = load_digits()
    flat = ((images + 1) * 8).reshape(len(images), -1).numpy()
    clf = SVC(gamma=0.001).fit(flat[:1200], labels[:1200].numpy())
    held_out = clf.score(flat[1200:], labels[1200:].numpy())
    assert held_out >= 0.95, held_out
    return clf, images, labels


def _score(clf, samples: torch.Tensor) -> tuple[float, np.ndarray]:
    pred = clf.predict(((samples.clamp(-1, 1) + 1) * 8).reshape(len(samples), -1).numpy())
    want = np.repeat(np.arange(10), len(samples) // 10)
    return float((pred == want).mean()), pred


def _mean_pairwise(x: torch.Tensor) -> float:
    flat = x.reshape(len(x), -1)
    d = [float((flat[i] - flat[j]).norm()) for i, j in itertools.combinations(range(len(flat)), 2)]
    return float(np.mean(d))


def _diversity_ratio(samples: torch.Tensor, images: torch.Tensor, labels: torch.Tensor, per: int) -> float:
    fake = np.mean([_mean_pairwise(samples[d * per:(d + 1) * per]) for d in range(10)])
    real = np.mean([_mean_pairwise(images[labels == d][:60]) for d in range(10)])
    return float(fake / real)


def _prompts(per: int) -> list[str]:
    return [digit_caption(d) for d in range(10) for _ in range(per)]


def test_fast_demo_model_draws_the_asked_digit(judge):
    clf, images, labels = judge
    _, _, captions = load_digits()
    run = train_t2i(presets.digits_fast(), images, captions, progress=False)
    samples = generate(run.ema, _prompts(5), steps=16, guidance_scale=GUIDANCE, seed=1)
    acc, _ = _score(clf, samples)
    print(f"fast demo: {acc:.0%} of 50 samples classified as asked")
    assert acc >= 0.5


@pytest.mark.slow
def test_demo_command_quality_and_not_copies(judge, tmp_path):
    clf, images, labels = judge
    res = run_genlab("t2i", "demo", "--out", str(tmp_path), timeout=3000)
    assert res.returncode == 0, res.stderr[-2000:]
    assert (tmp_path / "samples.png").stat().st_size > 0 and (tmp_path / "loss.png").stat().st_size > 0
    model = load_model(tmp_path / "run")
    samples = generate(model, _prompts(10), steps=20, guidance_scale=GUIDANCE, seed=123)
    acc, pred = _score(clf, samples)
    ratio = _diversity_ratio(samples, images, labels, 10)
    nearest = torch.cdist(samples.reshape(100, -1), images.reshape(len(images), -1)).min(1).values
    print(f"demo: {acc:.0%} of 100 samples classified as asked (guidance {GUIDANCE}); same-digit diversity "
          f"{ratio:.2f} of real; median distance to the nearest training image {float(nearest.median()):.2f}")
    assert acc >= 0.8
    assert ratio >= 0.5


def test_genlab_demo_takes_the_options_of_t2i_demo():
    from genlab.cli import build_parser

    parser = build_parser()
    argv = ["--out", "x", "--steps", "3", "--guidance", "2.5", "--seed", "4", "--quiet"]
    top, sub = parser.parse_args(["demo", *argv]), parser.parse_args(["t2i", "demo", *argv])
    keys = ("out", "steps", "guidance", "seed", "quiet")
    assert [getattr(top, k) for k in keys] == [getattr(sub, k) for k in keys] == ["x", 3, 2.5, 4, True]
    assert top.func.__name__ == "_demo" and sub.func.__name__ == "run_demo"
