"""Loop detection over a sequence of fitted segments.

Each segment has a descriptor per joint: its start, middle and end points (J x 6). For body sizes
K = 1..max_body we slide over the segment sequence and mark positions i whose segment matches the
one K later (descriptors close, primitive types mostly equal, durations similar). A run of marks is
a loopy span with period K; it is trimmed to whole iterations, kept only with more than two
repetitions and when each phase's descriptors cluster tightly around the phase mean. Candidates are
then chosen greedily by the frames they cover (a tie goes to the smaller body, so a span that a
smaller body explains is not claimed by a multiple of it), without overlaps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from genlab.systems.motion.config import LoopConfig
from genlab.systems.motion.program import KINDS, Loop, Program, Segment, Statement, execute


@dataclass(frozen=True)
class LoopSpan:
    first: int  # index of the loop's first segment
    body: int  # K, segments per iteration
    reps: int  # iterations

    @property
    def stop(self) -> int:
        return self.first + self.body * self.reps


def segment_features(segments: Sequence[Segment]):
    desc = np.stack([s.descriptors() for s in segments]).reshape(len(segments), -1, 3, 2)  # (S, J, 3, 2)
    kinds = np.array([[KINDS.index(k) for k in s.kinds] for s in segments])  # (S, J)
    dur = np.array([s.duration for s in segments], dtype=np.float64)
    return desc, kinds, dur


def descriptor_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Root mean square over joints and the 3 points of the point distance; a, b (..., J, 3, 2).
    (RMS rather than mean, so that a few joints far apart are not hidden by many still ones.)"""
    return np.sqrt((np.linalg.norm(a - b, axis=-1) ** 2).mean(axis=(-1, -2)))


def loop_similarity(loop: Loop, samples: int = 16) -> float:
    """How alike a loop's iterations are, 1 = identical: each iteration is executed at `samples`
    points of its own (time-normalised) duration; 1 - (mean RMS distance of the iterations from their
    mean) / (RMS extent of the mean iteration about its joints' centres). Below 0: unrelated."""
    its = []
    for it in loop.iterations:
        prog = Program(tuple(it))
        its.append(execute(prog, t=np.arange(samples) * prog.duration / samples))
    its = np.stack(its)  # (n, samples, J, 2)
    mean = its.mean(0)
    dist = np.sqrt((np.linalg.norm(its - mean, axis=-1) ** 2).mean(axis=(1, 2))).mean()
    extent = np.sqrt((np.linalg.norm(mean - mean.mean(0), axis=-1) ** 2).mean())
    return float(1.0 - dist / max(extent, 1e-9))


def detect_loops(segments: Sequence[Segment], cfg: LoopConfig) -> list[LoopSpan]:
    S = len(segments)
    if S < cfg.min_reps:
        return []
    desc, kinds, dur = segment_features(segments)
    moving = (kinds != 0).any(1)
    cands: list[tuple[float, int, LoopSpan]] = []
    for K in range(1, min(cfg.max_body, S // cfg.min_reps) + 1):
        i = np.arange(S - K)
        ok = (
            (descriptor_distance(desc[i], desc[i + K]) <= cfg.match_dist)
            & ((kinds[i] == kinds[i + K]).mean(1) >= cfg.kind_agree)
            & ((np.maximum(dur[i], dur[i + K]) <= cfg.duration_ratio * np.minimum(dur[i], dur[i + K]))
               | (np.abs(dur[i] - dur[i + K]) <= cfg.duration_slack))
        )
        # runs of consecutive matches: ok[i0 : i0+n] True -> segments i0 .. i0+n+K-1 repeat with period K
        padded = np.concatenate([[False], ok, [False]])
        edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
        for i0, i1 in zip(edges[::2], edges[1::2]):
            n = i1 - i0
            reps = (n + K) // K
            if reps < cfg.min_reps or not moving[i0 : i0 + K].any():
                continue
            span = LoopSpan(int(i0), K, int(reps))
            its = desc[span.first : span.stop].reshape(reps, K, *desc.shape[1:])
            spread = descriptor_distance(its, its.mean(0, keepdims=True)).mean()
            if spread > cfg.cluster_spread:
                continue
            pts = its.mean(0).transpose(1, 0, 2, 3).reshape(its.shape[2], -1, 2)  # (J, K*3, 2) mean iteration
            if (pts.max(1) - pts.min(1)).max() < cfg.min_extent:
                continue
            loop = Loop(tuple(tuple(segments[span.first + r * K : span.first + (r + 1) * K]) for r in range(reps)))
            if loop_similarity(loop) < cfg.min_similarity:
                continue
            cands.append((float(dur[span.first : span.stop].sum()), K, span))
    cands.sort(key=lambda c: (-c[0], c[1]))
    taken = np.zeros(S, dtype=bool)
    chosen = []
    for _, _, span in cands:
        if not taken[span.first : span.stop].any():
            taken[span.first : span.stop] = True
            chosen.append(span)
    return sorted(chosen, key=lambda s: s.first)


def build_statements(segments: Sequence[Segment], loops: Sequence[LoopSpan]) -> tuple[Statement, ...]:
    out: list[Statement] = []
    i = 0
    for span in sorted(loops, key=lambda s: s.first):
        out.extend(segments[i : span.first])
        its = tuple(tuple(segments[span.first + r * span.body : span.first + (r + 1) * span.body])
                    for r in range(span.reps))
        out.append(Loop(its))
        i = span.stop
    out.extend(segments[i:])
    return tuple(out)
