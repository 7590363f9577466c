"""Scores of a fitted program against ground truth: primitive types, boundaries, loops, repetitions."""

from __future__ import annotations

import numpy as np

from genlab.systems.motion.program import KINDS, Program, Segment


def _kinds(program: Program) -> np.ndarray:
    return np.array([[KINDS.index(k) for k in s.kinds] for s in program.segments()])


def type_accuracy(pred: Program, true: Program) -> float:
    """Fraction of (joint, true segment) whose type matches the predicted segment overlapping it most."""
    tb, pb = true.boundaries(), pred.boundaries()
    tk, pk = _kinds(true), _kinds(pred)
    hits = total = 0
    for i in range(len(tb) - 1):
        ov = np.minimum(tb[i + 1], pb[1:]) - np.maximum(tb[i], pb[:-1])
        k = int(np.argmax(ov))
        hits += int((tk[i] == pk[k]).sum())
        total += tk.shape[1]
    return hits / total


def boundary_scores(pred: Program, true: Program, tol: float = 2.0) -> tuple[float, float]:
    """(recall, precision) of internal segment boundaries within +-tol frames."""
    tb, pb = true.boundaries()[1:-1], pred.boundaries()[1:-1]
    if len(tb) == 0 or len(pb) == 0:
        return float(len(tb) == 0), float(len(pb) == 0)
    d = np.abs(tb[:, None] - pb[None, :])
    return float((d.min(1) <= tol).mean()), float((d.min(0) <= tol).mean())


def interval_iou(a: tuple[float, float], b: tuple[float, float]) -> float:
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = max(a[1], b[1]) - min(a[0], b[0])
    return inter / union if union > 0 else 0.0


def repetition_scores(pred: list[tuple[float, float, int]], true: list[tuple[float, float, int]],
                      iou: float = 0.5) -> dict[str, float]:
    """Repetition detection: spans matched one-to-one greedily at IoU >= `iou`; precision, recall and
    the mean absolute count error over matched pairs (and the exact-count rate)."""
    pairs = sorted(((interval_iou(p[:2], t[:2]), i, j) for i, p in enumerate(pred) for j, t in enumerate(true)),
                   reverse=True)
    used_p, used_t, matched = set(), set(), []
    for v, i, j in pairs:
        if v >= iou and i not in used_p and j not in used_t:
            used_p.add(i)
            used_t.add(j)
            matched.append((pred[i][2], true[j][2]))
    err = [abs(a - b) for a, b in matched]
    return dict(
        precision=len(matched) / len(pred) if pred else float(not true),
        recall=len(matched) / len(true) if true else 1.0,
        count_mae=float(np.mean(err)) if err else float("nan"),
        count_exact=float(np.mean([e == 0 for e in err])) if err else 0.0,
    )


def score_fit(pred: Program, seq) -> dict[str, float]:
    """All fit scores of `pred` against a `SyntheticSequence` (or anything with `.program`)."""
    true = seq.program
    rec, prec = boundary_scores(pred, true)
    rep = repetition_scores(pred.loop_spans(), true.loop_spans())
    return dict(type_acc=type_accuracy(pred, true), boundary_recall=rec, boundary_precision=prec,
                count_exact=rep["count_exact"] * rep["recall"], rep_precision=rep["precision"],
                rep_recall=rep["recall"])


# --- scores on frames away from gaps (real tracks lose frames) -----------------------------------

def piece_index(program: Program, t: np.ndarray) -> np.ndarray:
    """Index into `program.pieces()` of the piece holding each frame time t."""
    b = program.boundaries()
    return np.clip(np.searchsorted(b, t, side="right") - 1, 0, len(b) - 2)


def visible_repetitions(true: Program, gap: tuple[int, int] | None, max_gap: int, min_reps: int) -> tuple[int, int]:
    """The range of repetition counts a program may claim for the true loop(s) when frames [g0, g1)
    were not seen. A gap up to `max_gap` frames is bridged: exactly the true count. A longer gap
    splits the loop; each side shows (its observed frames / the period) repetitions, of which a
    partly seen one may or may not be counted (floor or ceil), and a side with fewer than `min_reps`
    is no loop (0 then, by definition)."""
    lo = hi = 0
    for a, b, n in true.loop_spans():
        if gap is None or gap[1] - gap[0] <= max_gap or gap[1] <= a or gap[0] >= b:
            lo, hi = lo + n, hi + n
            continue
        period = (b - a) / n
        for s0, s1 in ((a, min(b, gap[0])), (max(a, gap[1]), b)):
            reps = max(0.0, s1 - s0) / period
            f, c = int(np.floor(reps + 1e-9)), int(np.ceil(reps - 1e-9))
            lo += f if f >= min_reps else 0
            hi += c if c >= min_reps else 0
    return lo, hi


def masked_scores(pred: Program, true: Program, valid: np.ndarray, gap: tuple[int, int] | None = None,
                  tol: float = 2.0, max_gap: int = 12, min_reps: int = 3) -> dict[str, float]:
    """Types, boundaries and loop counts judged only on `valid` frames (T,) bool.
    type_acc: per (joint, true segment lying wholly in valid frames), the type of the predicted piece
    covering most of it (a missing piece counts as wrong). boundaries: internal true / predicted
    boundaries at valid frames, matched within +-tol. loop_count (1 or 0 per sequence): the
    predicted loops overlapping the true loop hold as many repetitions as are visible around
    `gap` (the frames [g0, g1) nobody saw; see `visible_repetitions`; without a gap: exactly the
    true count)."""
    valid = np.asarray(valid, bool)
    T = len(valid)
    tb, pieces = true.boundaries(), list(pred.pieces())
    hits = total = 0
    for i, seg in enumerate(true.pieces()):
        a, b = int(tb[i]), int(np.ceil(tb[i + 1]))
        if b > T or not valid[a:b].all():
            continue
        k = np.bincount(piece_index(pred, np.arange(a, b) + 0.5)).argmax()
        got = getattr(pieces[k], "kinds", None)
        hits += sum(x == y for x, y in zip(seg.kinds, got)) if got else 0
        total += len(seg.kinds)
    pb = np.array([x for i, x in enumerate(pred.boundaries()[1:-1])
                   if isinstance(pieces[i], Segment) and isinstance(pieces[i + 1], Segment)])
    at = lambda b: b[valid[np.clip(np.round(b).astype(int), 0, T - 1)]] if len(b) else b  # noqa: E731
    tbi, pbi = at(tb[1:-1]), at(pb)
    d = np.abs(tbi[:, None] - pbi[None, :]) if len(tbi) and len(pbi) else np.zeros((len(tbi), len(pbi)))
    lo, hi = visible_repetitions(true, gap, max_gap, min_reps)
    spans = true.loop_spans()
    found = sum(n for a, b, n in pred.loop_spans() if any(min(b, tb_) > max(a, ta) for ta, tb_, _ in spans))
    return dict(type_acc=hits / total if total else float("nan"),
                boundary_recall=float((d.min(1) <= tol).mean()) if len(pbi) else float(len(tbi) == 0),
                boundary_precision=float((d.min(0) <= tol).mean()) if len(tbi) else float(len(pbi) == 0),
                loop_count=float(lo <= found <= hi))
