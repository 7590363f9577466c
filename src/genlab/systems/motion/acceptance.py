"""The issue's acceptance measurements on seeded synthetic sequences (used by tests, CLI, benchmark)."""

from __future__ import annotations

import numpy as np

from genlab.systems.motion.apps import constant_velocity, interpolate, predict, spline_fill
from genlab.systems.motion.config import FitConfig
from genlab.systems.motion.evaluate import score_fit
from genlab.systems.motion.pipeline import fit_program
from genlab.systems.motion.synthetic import SyntheticSequence


def fit_scores(seqs: list[SyntheticSequence], cfg: FitConfig | None = None, progress: bool = False) -> dict[str, float]:
    from tqdm import tqdm

    res = [score_fit(fit_program(s.keypoints, cfg or FitConfig()), s)
           for s in tqdm(seqs, desc="fit", unit="seq", disable=not progress)]
    return {k: float(np.mean([r[k] for r in res])) for k in res[0]}


def _loop_span(seq: SyntheticSequence) -> tuple[int, int]:
    a, b, _ = seq.loop_spans[0]
    return int(a), int(b)


def interpolation_errors(seqs: list[SyntheticSequence], gap: int, seed: int = 0,
                         cfg: FitConfig | None = None) -> dict[str, float]:
    """Drop `gap` frames inside each sequence's loop; mean joint error (body heights) in the gap for
    the program fill and for a cubic spline."""
    rng = np.random.default_rng(seed)
    ours, spline = [], []
    for s in seqs:
        a, b = _loop_span(s)
        if b - a < gap + 20:
            continue
        g0 = int(rng.integers(a + 10, b - gap - 10 + 1))
        miss = np.zeros(s.keypoints.shape[0], bool)
        miss[g0 : g0 + gap] = True
        filled, _ = interpolate(s.keypoints, miss, cfg)
        base = spline_fill(s.keypoints, miss)
        h = s.program.scale
        ours.append(np.linalg.norm(filled[miss] - s.clean[miss], axis=-1).mean() / h)
        spline.append(np.linalg.norm(base[miss] - s.clean[miss], axis=-1).mean() / h)
    return dict(program=float(np.mean(ours)), spline=float(np.mean(spline)), n=len(ours))


def prediction_errors(seqs: list[SyntheticSequence], horizon: int, seed: int = 0,
                      cfg: FitConfig | None = None) -> dict[str, float]:
    """Observe each sequence up to a cut inside its loop (>= 2.5 iterations seen, the horizon still
    inside the loop); mean joint error (body heights) over the horizon, program vs constant velocity."""
    rng = np.random.default_rng(seed)
    ours, cv = [], []
    for s in seqs:
        a, b = _loop_span(s)
        per = (b - a) / s.loop_counts[0]
        lo, hi = int(a + 2.5 * per), int(b - horizon)
        if hi <= lo:
            continue
        cut = int(rng.integers(lo, hi + 1))
        pred, _ = predict(s.keypoints[:cut], horizon, cfg)
        base = constant_velocity(s.keypoints[:cut], horizon)
        truth = s.clean[cut : cut + horizon]
        h = s.program.scale
        ours.append(np.linalg.norm(pred - truth, axis=-1).mean() / h)
        cv.append(np.linalg.norm(base - truth, axis=-1).mean() / h)
    return dict(program=float(np.mean(ours)), constant_velocity=float(np.mean(cv)), n=len(ours))
