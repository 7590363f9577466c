"""Scores of a fitted program against ground truth: primitive types, boundaries, loops, repetitions."""

from __future__ import annotations

import numpy as np

from genlab.systems.motion.program import KINDS, Program


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
