"""The program view of a concept: a motion-system `Loop` whose K-statement body is fitted to the
concept's aligned iterations, giving per-statement and per-joint distributions over primitive
type and start/mid/end descriptor, plus statement durations (motion's `Loop.phase_stats`).

Construction (one concept):
1. every aligned iteration (all 17 joints, normalised, un-mirrored) is resampled to a common
   length and averaged: the mean iteration;
2. the motion system's DP segmentation (`segment_sequence`) splits the mean iteration into K
   statements with shared boundaries across joints (K <= max_body);
3. each iteration is fitted with the motion system's closed-form primitives at the same relative
   boundaries, so the K statements correspond across iterations;
4. the iterations form a `Loop`; its text form (motion's program DSL) is stored in the model.

A concept's DSL text is a named for-loop around that body (`concept_text`).
"""

from __future__ import annotations

from functools import cached_property, lru_cache

import numpy as np

from genlab.systems.motion.config import FitConfig
from genlab.systems.motion.fit import fit_segments, segment_sequence
from genlab.systems.motion.program import Loop, Program, Segment, parse_program


def resample(x: np.ndarray, n: int) -> np.ndarray:
    """Linear resampling of (T, ...) to n frames over the iteration's phase [0, 1)."""
    T = len(x)
    src = np.arange(n) * T / n
    i0 = np.clip(np.floor(src).astype(int), 0, T - 1)
    i1 = np.clip(i0 + 1, 0, T - 1)
    w = (src - i0).reshape((n,) + (1,) * (x.ndim - 1))
    return (1 - w) * x[i0] + w * x[i1]


def fit_body(iterations: list[np.ndarray], max_body: int = 6, cfg: FitConfig | None = None) -> Loop:
    """iterations: list of (d_i, 17, 2) normalised keypoints of one concept's aligned iterations."""
    from scipy.ndimage import gaussian_filter1d

    cfg = cfg or FitConfig(min_len=3, max_len=40, detect_loops=False)
    # Light temporal smoothing (sigma 1.5 frames) cuts keypoint jitter ~2.3x, so that still joints
    # stay inside the fit's stationary thresholds instead of becoming small noisy arcs.
    iterations = [gaussian_filter1d(np.asarray(x, np.float64), 1.5, axis=0, mode="nearest") for x in iterations]
    L = int(max(12, round(np.mean([len(x) for x in iterations]))))
    mean = np.mean([resample(x, L) for x in iterations], axis=0)  # (L, 17, 2)
    seg = None
    penalty = None
    for _ in range(6):  # raise the segment penalty until the body has at most max_body statements
        c = FitConfig(**{**cfg.__dict__, "penalty": penalty, "max_len": min(cfg.max_len, L)})
        seg = segment_sequence(mean, np.ones(L), c)
        if len(seg.starts) <= max_body:
            break
        penalty = 2.0 * seg.penalty
    fracs = np.concatenate([seg.starts, [L]]) / L  # statement boundaries as phase fractions
    its = []
    for x in iterations:
        d = len(x)
        b = np.unique(np.clip(np.round(fracs * d).astype(int), 0, d))
        if len(b) != len(fracs):  # iteration too short for K statements: use the mean iteration
            x, d = mean, L
            b = np.round(fracs * d).astype(int)
        its.append(fit_segments(x, b, cfg))
    return Loop(tuple(align_angles(its)))


def align_angles(its: list[tuple[Segment, ...]]) -> list[tuple[Segment, ...]]:
    """Circle angles are defined modulo 2 pi: shift every iteration's (theta0, theta1) by a whole
    number of turns to the first circle seen at the same (statement, joint), so that per-statement
    means and samples of the angles are not torn apart by the wrap at +-pi."""
    from dataclasses import replace as _replace

    from genlab.systems.motion.program import Circle

    ref: dict[tuple[int, int], float] = {}
    out = []
    for it in its:
        segs = []
        for k, seg in enumerate(it):
            prims = list(seg.primitives)
            for j, p in enumerate(prims):
                if isinstance(p, Circle):
                    r = ref.setdefault((k, j), p.theta0)
                    turns = np.round((r - p.theta0) / (2 * np.pi))
                    if turns:
                        prims[j] = _replace(p, theta0=p.theta0 + 2 * np.pi * turns, theta1=p.theta1 + 2 * np.pi * turns)
            segs.append(Segment(seg.duration, tuple(prims)))
        out.append(tuple(segs))
    return out


def loop_to_text(loop: Loop) -> str:
    return Program((loop,), "coco17").to_text()


class CachedLoop(Loop):
    """A motion `Loop` whose per-phase statistics are computed once (sampling and the mean body
    call `phase_stats()` on every use)."""

    @cached_property
    def _stats(self):
        return Loop.phase_stats(self)

    def phase_stats(self):
        return self._stats


@lru_cache(maxsize=64)
def loop_from_text(text: str) -> CachedLoop:
    """Parse a stored loop body (motion's program text); parsed once per text."""
    prog = parse_program(text)
    return CachedLoop(prog.statements[0].iterations)


def concept_text(name: str, loop: Loop, count_probs: np.ndarray | None = None) -> str:
    """Readable DSL of a concept: a named for-loop whose body is K statements, each with its
    duration distribution and, per joint, the most likely primitive and its start/mid/end."""
    from genlab.core.pose.skeletons import COCO17
    from genlab.systems.motion.program import KINDS

    counts = ""
    if count_probs is not None:
        counts = " ~ {" + ", ".join(f"{i + 1}: {p:.2f}" for i, p in enumerate(count_probs) if p > 0.02) + "}"
    lines = [f"concept {name}:", f"  for _ in range(count{counts}):"]
    for k, st in enumerate(loop.phase_stats()):
        lines.append(f"    statement {k}  # duration ~ N({st.duration_mean:.1f}, {st.duration_std:.1f}) frames")
        for j, joint in enumerate(COCO17.joints):
            kind = int(np.argmax(st.type_probs[j]))
            d = st.descriptor_mean[j]
            lines.append(
                f"      {joint}: {KINDS[kind]} p={st.type_probs[j, kind]:.2f} "
                f"start=({d[0]:.3f},{d[1]:.3f}) mid=({d[2]:.3f},{d[3]:.3f}) end=({d[4]:.3f},{d[5]:.3f})"
            )
    return "\n".join(lines) + "\n"
