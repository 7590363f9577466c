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


GAP_SIZES = (10, 30, 60)
GAP_PLACES = ("start", "middle", "end")


def gap_case(seq: SyntheticSequence, i: int) -> tuple[int, int]:
    """The gap [g0, g1) of sequence i: sizes and places cycle (10/30/60 frames at start/middle/end)."""
    T = len(seq.keypoints)
    g = min(GAP_SIZES[i % 3], T // 3)
    place = GAP_PLACES[(i // 3) % 3]
    g0 = 0 if place == "start" else T - g if place == "end" else (T - g) // 2
    return g0, g0 + g


def gapped_track(seq: SyntheticSequence, i: int, workdir, low_conf: float = 0.1, seed: int = 0):
    """seq as a real tracker would hand it over: an AlphaPose JSON (image ids `<frame>.jpg`) with the
    frames of gap i dropped, and `low_conf` of the joints thrown off by 0.3 body heights with
    confidence 0.1. Returns (the loaded COCO-17 track, the gap)."""
    import json
    from pathlib import Path

    from genlab.systems.motion.io import load_alphapose

    rng = np.random.default_rng(seed * 1000 + i)
    kp = seq.keypoints.copy()
    conf = np.full(kp.shape[:2], 0.9)
    bad = rng.random(conf.shape) < low_conf
    kp[bad] += rng.normal(0, 0.3 * seq.program.scale, (int(bad.sum()), 2))
    conf[bad] = 0.1
    g0, g1 = gap_case(seq, i)
    # a detection in the first and last frame keeps the track's length (a gap at an end stays a gap)
    keep = [t for t in range(len(kp)) if not g0 <= t < g1 or t in (0, len(kp) - 1)]
    dets = [{"image_id": f"{t}.jpg", "keypoints": np.concatenate([kp[t], conf[t][:, None]], 1).ravel().tolist(),
             "box": [0, 0, 100, 200], "idx": 1} for t in keep]
    path = Path(workdir) / f"track_{i}.json"
    path.write_text(json.dumps(dets))
    return load_alphapose(path).coco17(), (g0, g1)


def gap_scores(seqs: list[SyntheticSequence], workdir, cfg: FitConfig | None = None, margin: int = 5,
               progress: bool = False) -> dict[str, dict[str, float]]:
    """Scores of the clean fit and of the gapped, confidence-weighted fit of each sequence, both on
    the frames at least `margin` frames from its gap; plus whether any primitive spans a gap longer
    than `max_gap` (`primitive_in_long_gap`, the fraction of such gaps)."""
    from tqdm import tqdm

    from genlab.systems.motion.evaluate import masked_scores
    from genlab.systems.motion.program import execute

    cfg = cfg or FitConfig()
    clean, gapped, spanned, long_gaps = [], [], 0, 0
    for i, s in enumerate(tqdm(seqs, desc="gaps", unit="seq", disable=not progress)):
        track, (g0, g1) = gapped_track(s, i, workdir)
        valid = np.ones(len(s.keypoints), bool)
        valid[max(0, g0 - margin) : g1 + margin] = False
        valid[[0, -1]] = valid[[0, -1]] & ~((g0 == 0) | (g1 == len(valid)))  # the kept end frames are not judged
        prog = fit_program(track.xy, cfg, conf=track.conf, missing=track.lost)
        gapped.append(masked_scores(prog, s.program, valid, (g0, g1), max_gap=cfg.max_gap, min_reps=cfg.loop.min_reps))
        clean.append(masked_scores(fit_program(s.keypoints, cfg), s.program, valid))
        if g1 - g0 > cfg.max_gap:
            long_gaps += 1
            spanned += int(np.isfinite(execute(prog)[g0 + 1 : g1 - 1]).any())
    mean = lambda rs: {k: float(np.nanmean([r[k] for r in rs])) for k in rs[0]}  # noqa: E731
    return dict(clean=mean(clean), gapped=mean(gapped),
                long_gaps=dict(n=long_gaps, primitive_in_long_gap=spanned / max(long_gaps, 1)))
