"""Segmental (semi-Markov) Viterbi over concept iterations.

The unit of decoding is one *iteration* of a concept's loop body (or one stretch of idle):
`scores[l, k, t]` is the log-likelihood that frames [t - durations[k], t) are one unit of label l
(-inf where the duration is outside the label's [min, max]). A state graph says which unit may
follow which: a concept instance is a `first` unit followed by `more` units of the same concept
(its count is the number of units), and instances are separated by idle or follow each other.

Recursion (explicit-duration HMM, Yu 2010), with M the best score of a path that ends a unit at
frame t and is about to enter state s:
    best[t, s] = max_k  M[t - d_k, s] + scores[label(s), k, t]
    M[t, s]    = max_s' best[t, s'] + log_trans[s', s]          (M[0, s] = log_start[s])
It is O(T * S * (D + S)) and vectorised over states and durations, one numpy step per frame.

Two graphs are built here: free decoding over all concepts plus idle, and forced alignment of
an ordered action list (transcript).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from genlab.errors import GenlabError

NEG = -np.inf


@dataclass(frozen=True)
class StateGraph:
    labels: np.ndarray  # (S,) label index of each state
    log_trans: np.ndarray  # (S, S) from -> to
    log_start: np.ndarray  # (S,)
    log_end: np.ndarray  # (S,)
    instance: np.ndarray  # (S,) instance id (forced alignment) or -1
    is_first: np.ndarray  # (S,) bool: this state starts a new concept instance


@dataclass(frozen=True)
class Unit:
    state: int
    label: int
    start: int
    end: int
    score: float  # emission log-likelihood of the unit


@dataclass(frozen=True)
class ViterbiResult:
    log_likelihood: float  # best path score (emissions + transitions)
    units: tuple[Unit, ...]


def segmental_viterbi(scores: np.ndarray, durations: np.ndarray, graph: StateGraph) -> ViterbiResult:
    """Best unit sequence covering frames [0, T) exactly. scores: (L, D, T + 1)."""
    n_labels, n_dur, t1 = scores.shape
    T = t1 - 1
    S = len(graph.labels)
    durations = np.asarray(durations, dtype=np.int64)
    state_scores = scores[graph.labels]  # (S, D, T + 1)
    M = np.full((T + 1, S), NEG)
    M_arg = np.full((T + 1, S), -1, dtype=np.int64)
    M[0] = graph.log_start
    best = np.full((T + 1, S), NEG)
    best_k = np.zeros((T + 1, S), dtype=np.int64)
    arange_s = np.arange(S)
    for t in range(1, T + 1):
        idx = t - durations  # (D,)
        valid = idx >= 0
        cand = M[np.where(valid, idx, 0)] + state_scores[:, :, t].T  # (D, S)
        cand[~valid] = NEG
        k = np.argmax(cand, axis=0)  # (S,)
        best[t] = cand[k, arange_s]
        best_k[t] = k
        if t < T:
            trans = best[t][:, None] + graph.log_trans  # (S_from, S_to)
            M_arg[t] = np.argmax(trans, axis=0)
            M[t] = trans[M_arg[t], arange_s]
    final = best[T] + graph.log_end
    s = int(np.argmax(final))
    total = float(final[s])
    if not np.isfinite(total):
        return ViterbiResult(NEG, ())
    units = []
    t = T
    while t > 0:
        k = int(best_k[t, s])
        d = int(durations[k])
        lab = int(graph.labels[s])
        units.append(Unit(s, lab, t - d, t, float(scores[lab, k, t])))
        t -= d
        if t > 0:
            s = int(M_arg[t, s])
    return ViterbiResult(total, tuple(reversed(units)))


def free_graph(n_concepts: int, idle_label: int, switch_penalty: float = 0.0,
               min_count: Sequence[int] | int = 1, repeats: bool = True) -> StateGraph:
    """Concepts 0..n-1 (two states each: first, more) plus idle.

    A new instance costs `switch_penalty` (a per-instance insertion penalty). An instance of
    concept c must have at least min_count[c] units (1 or 2 enforced by the graph: a `first`
    unit cannot end an instance when min_count >= 2). Back-to-back instances of one concept
    are not allowed (they would be one instance). With `repeats=False` an instance of c may not
    be followed by another instance of c with only idle in between either: idle remembers the
    concept it follows (one idle state per concept, plus one for "no concept yet"), so a pause
    inside a set (e.g. a slow performer's rest at the bottom of a side raise) cannot split it.
    """
    mc = [min_count] * n_concepts if isinstance(min_count, int) else list(min_count)
    n_idle = 1 if repeats else n_concepts + 1
    S = 2 * n_concepts + n_idle
    idle0 = 2 * n_concepts  # idle before any concept (the only idle state when repeats)

    def idle_after(c: int) -> int:
        return idle0 if repeats else idle0 + 1 + c

    labels = np.array([c for c in range(n_concepts) for _ in (0, 1)] + [idle_label] * n_idle)
    A = np.full((S, S), NEG)
    for c in range(n_concepts):
        first, more = 2 * c, 2 * c + 1
        A[first, more] = 0.0
        A[more, more] = 0.0
        enders = [more] + ([first] if mc[c] <= 1 else [])
        for e in enders:
            A[e, idle_after(c)] = 0.0
            for c2 in range(n_concepts):
                if c2 != c:
                    A[e, 2 * c2] = -switch_penalty
    for i in range(idle0, S):
        A[i, i] = 0.0
        after = None if i == idle0 else i - idle0 - 1
        for c in range(n_concepts):
            if repeats or c != after:
                A[i, 2 * c] = -switch_penalty
    start = np.full(S, NEG)
    start[0:2 * n_concepts:2] = -switch_penalty
    start[idle0] = 0.0
    end = np.full(S, NEG)
    for c in range(n_concepts):
        end[2 * c + 1] = 0.0
        if mc[c] <= 1:
            end[2 * c] = 0.0
    end[idle0:] = 0.0
    is_first = np.zeros(S, bool)
    is_first[0:2 * n_concepts:2] = True
    return StateGraph(labels, A, start, end, np.full(S, -1), is_first)


def forced_graph(transcript: Sequence[int], idle_label: int, min_count: Sequence[int] | int = 1) -> StateGraph:
    """Left-to-right graph for an ordered action list: idle_0, (first_1, more_1), idle_1, ..."""
    n = len(transcript)
    mc = [min_count] * n if isinstance(min_count, int) else [min_count[c] for c in transcript]
    # States: idle_i = 3 i, first_i = 3 i + 1, more_i = 3 i + 2 (i < n); idle_n = 3 n.
    S = 3 * n + 1
    labels = np.empty(S, dtype=np.int64)
    inst = np.full(S, -1)
    is_first = np.zeros(S, bool)
    A = np.full((S, S), NEG)
    for i in range(n + 1):
        labels[3 * i] = idle_label
        A[3 * i, 3 * i] = 0.0
        if i < n:
            f, m = 3 * i + 1, 3 * i + 2
            labels[f] = labels[m] = transcript[i]
            inst[f] = inst[m] = i
            is_first[f] = True
            A[3 * i, f] = 0.0
            A[f, m] = 0.0
            A[m, m] = 0.0
            enders = [m] + ([f] if mc[i] <= 1 else [])
            for e in enders:
                A[e, 3 * (i + 1)] = 0.0
                if i + 1 < n and transcript[i + 1] != transcript[i]:
                    A[e, 3 * (i + 1) + 1] = 0.0
    start = np.full(S, NEG)
    start[0] = 0.0
    if n:
        start[1] = 0.0
    end = np.full(S, NEG)
    end[3 * n] = 0.0
    if n:
        end[3 * n - 1] = 0.0
        if mc[n - 1] <= 1:
            end[3 * n - 2] = 0.0
    return StateGraph(labels, A, start, end, inst, is_first)


def minimum_length(transcript: Sequence[int], min_duration: Sequence[int], min_count: Sequence[int] | int = 1) -> int:
    """Fewest frames a forced alignment of `transcript` needs (idle between equal neighbours)."""
    mc = [min_count] * len(min_duration) if isinstance(min_count, int) else list(min_count)
    total = sum(mc[c] * int(min_duration[c]) for c in transcript)
    total += sum(1 for a, b in zip(transcript, transcript[1:]) if a == b)
    return total


def check_fits(transcript: Sequence[int], names: Sequence[str], n_frames: int,
               min_duration: Sequence[int], min_count: Sequence[int] | int = 1) -> None:
    need = minimum_length(transcript, min_duration, min_count)
    if n_frames < need:
        listed = ", ".join(names[c] for c in transcript)
        raise GenlabError(
            f"action list [{listed}] cannot fit a sequence of {n_frames} frames: it needs at least "
            f"{need} frames (minimum iteration durations x minimum counts)"
        )
