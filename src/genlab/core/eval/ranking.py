"""Repeated non-dominated (Pareto) sorting, as SD3 ranks its formulations (section 5.1, Table 1).

For one evaluation setting, front 1 is every entry no other entry dominates; remove it, front 2 is the
non-dominated set of the rest, and so on. An entry's rank is its front number (1 = best). SD3 averages
these ranks over its evaluation settings (`average_ranks`).
Entry p dominates q when p is at least as good in every objective and strictly better in one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from genlab.errors import GenlabError


def dominates(p: np.ndarray, q: np.ndarray) -> bool:
    """For objectives already oriented so that larger is better."""
    return bool(np.all(p >= q) and np.any(p > q))


def non_dominated_ranks(points, maximize: Sequence[bool]) -> np.ndarray:
    """Front number (1-based) of each row of `points` (N, M); `maximize[m]` orients objective m."""
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != len(maximize):
        raise GenlabError(f"points must be (N, {len(maximize)}), got shape {pts.shape}")
    pts = pts * np.where(np.asarray(maximize), 1.0, -1.0)
    ranks = np.zeros(len(pts), dtype=np.int64)
    remaining = list(range(len(pts)))
    front = 0
    while remaining:
        front += 1
        current = [i for i in remaining if not any(dominates(pts[j], pts[i]) for j in remaining if j != i)]
        for i in current:
            ranks[i] = front
        remaining = [i for i in remaining if i not in current]
    return ranks


def average_ranks(
    table: Mapping[str, Mapping[str, Sequence[float]]], maximize: Sequence[bool]
) -> dict[str, float]:
    """table[setting][entry] = objectives; returns the mean front number of each entry over settings.

    Every setting must list the same entries.
    """
    settings = list(table)
    entries = list(table[settings[0]])
    totals = dict.fromkeys(entries, 0.0)
    for s in settings:
        if set(table[s]) != set(entries):
            raise GenlabError(f"setting {s!r} lists {sorted(table[s])}, expected {sorted(entries)}")
        ranks = non_dominated_ranks([table[s][e] for e in entries], maximize)
        for e, r in zip(entries, ranks):
            totals[e] += float(r)
    return {e: totals[e] / len(settings) for e in entries}
