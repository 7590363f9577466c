"""Metrics for description (recognition, localisation, counting) and synthesis.

- NormED: Levenshtein distance between predicted and true action lists, divided by the true
  length (the figure we quote) or by the longer of the two (also shown).
- mAP: ActivityNet-style average precision of temporal segments per concept at IoU thresholds
  (0.1, 0.3, 0.5), averaged over concepts; "mean" averages over thresholds.
- count MAE: each true action is matched to the same-concept prediction of largest IoU;
  |count error|, or the true count when nothing overlaps.
- APE: mean L2 joint error between synthesised and true keypoints when the description fixes the
  timing (Language2Pose sense), in units of body height.
- KD: mean L2 keypoint distance after dynamic time warping (timing not given), body heights.
- FID: Fréchet distance between Gaussian fits of classifier features (Action2Motion/ACTOR).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import linalg

from genlab.errors import GenlabError
from genlab.systems.motion.concepts.description import Description

IOU_THRESHOLDS = (0.1, 0.3, 0.5)


def levenshtein(a: Sequence, b: Sequence) -> int:
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, start=1):
        cur = [i] + [0] * len(b)
        for j, y in enumerate(b, start=1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y))
        prev = cur
    return prev[-1]


def norm_edit_distance(pred: Sequence, true: Sequence, denominator: str = "true") -> float:
    """Levenshtein(pred, true) / len(true) ("true") or / max(len(pred), len(true)) ("max")."""
    if denominator == "true":
        den = len(true)
    elif denominator == "max":
        den = max(len(pred), len(true))
    else:
        raise GenlabError(f"denominator must be 'true' or 'max', got {denominator!r}")
    return levenshtein(pred, true) / max(den, 1)


def mean_norm_ed(preds: Sequence[Description], trues: Sequence[Description], denominator: str = "true") -> float:
    return float(np.mean([norm_edit_distance(p.concepts, t.concepts, denominator) for p, t in zip(preds, trues)]))


def segment_iou(a: tuple[int, int], b: tuple[int, int]) -> float:
    inter = max(0, min(a[1], b[1]) - max(a[0], b[0]))
    union = max(a[1], b[1]) - min(a[0], b[0])
    return inter / union if union > 0 else 0.0


def _average_precision(scores: np.ndarray, tp: np.ndarray, n_true: int) -> float:
    """Area under the interpolated precision-recall curve (VOC/ActivityNet)."""
    if n_true == 0:
        return float("nan")
    if len(scores) == 0:
        return 0.0
    order = np.argsort(-scores, kind="stable")
    tp = tp[order].astype(float)
    ctp, cfp = np.cumsum(tp), np.cumsum(1 - tp)
    recall = ctp / n_true
    precision = ctp / np.maximum(ctp + cfp, 1e-12)
    mprec = np.concatenate([[0.0], precision, [0.0]])
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mprec = np.maximum.accumulate(mprec[::-1])[::-1]
    idx = np.where(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[idx + 1] - mrec[idx]) * mprec[idx + 1]))


def detection_map(preds: Sequence[Description], trues: Sequence[Description],
                  iou_thresholds: Sequence[float] = IOU_THRESHOLDS) -> dict[str, float]:
    """{"mAP@0.1": .., "mAP@0.3": .., "mAP@0.5": .., "mAP": mean over thresholds} (fractions)."""
    concepts = sorted({a.concept for d in trues for a in d.actions})
    out: dict[str, float] = {}
    for thr in iou_thresholds:
        aps = []
        for c in concepts:
            scores, tps, n_true = [], [], 0
            for p, t in zip(preds, trues):
                gt = [(a.start, a.end) for a in t.actions if a.concept == c]
                n_true += len(gt)
                used = [False] * len(gt)
                dets = sorted((a for a in p.actions if a.concept == c), key=lambda a: -a.score)
                for a in dets:
                    ious = [segment_iou((a.start, a.end), g) for g in gt]
                    best = int(np.argmax(ious)) if ious else -1
                    hit = best >= 0 and ious[best] >= thr and not used[best]
                    if hit:
                        used[best] = True
                    scores.append(a.score)
                    tps.append(hit)
            ap = _average_precision(np.asarray(scores, float), np.asarray(tps, bool), n_true)
            if not np.isnan(ap):
                aps.append(ap)
        out[f"mAP@{thr:g}"] = float(np.mean(aps)) if aps else 0.0
    out["mAP"] = float(np.mean([out[f"mAP@{thr:g}"] for thr in iou_thresholds]))
    return out


def count_mae(preds: Sequence[Description], trues: Sequence[Description]) -> float:
    errs = []
    for p, t in zip(preds, trues):
        for a in t.actions:
            best, best_iou = None, 0.0
            for b in p.actions:
                if b.concept != a.concept:
                    continue
                iou = segment_iou((a.start, a.end), (b.start, b.end))
                if iou > best_iou:
                    best, best_iou = b, iou
            errs.append(abs(a.count - best.count) if best is not None else a.count)
    return float(np.mean(errs)) if errs else 0.0


def frame_accuracy(preds: Sequence[Description], trues: Sequence[Description]) -> float:
    hits = total = 0
    for p, t in zip(preds, trues):
        lp, lt = np.array(p.frame_labels()), np.array(t.frame_labels())
        hits += int((lp == lt).sum())
        total += len(lt)
    return hits / max(total, 1)


def ape(generated: np.ndarray, true: np.ndarray, body_height: float = 1.0) -> float:
    """Mean per-joint L2 distance (T, J, 2) vs (T, J, 2), same timing, in body heights."""
    generated, true = np.asarray(generated, float), np.asarray(true, float)
    if generated.shape != true.shape:
        raise GenlabError(f"APE needs equal shapes, got {generated.shape} vs {true.shape}")
    return float(np.linalg.norm(generated - true, axis=-1).mean() / body_height)


def dtw_cost(a: np.ndarray, b: np.ndarray) -> tuple[float, int]:
    """DTW over frames with per-frame mean joint L2 as local cost; returns (total cost, path length)."""
    a = np.asarray(a, float).reshape(len(a), -1, 2)
    b = np.asarray(b, float).reshape(len(b), -1, 2)
    local = np.linalg.norm(a[:, None] - b[None], axis=-1).mean(-1)  # (Ta, Tb)
    n, m = local.shape
    acc = np.full((n + 1, m + 1), np.inf)
    steps = np.zeros((n + 1, m + 1), dtype=np.int64)
    acc[0, 0] = 0.0
    for i in range(1, n + 1):
        # Row recursion: diagonal and vertical moves vectorised, horizontal moves by a running scan.
        diag, up = acc[i - 1, :-1], acc[i - 1, 1:]
        best_du = np.minimum(diag, up)
        from_diag = diag <= up
        row = local[i - 1] + best_du
        st = np.where(from_diag, steps[i - 1, :-1], steps[i - 1, 1:]) + 1
        for j in range(1, m):
            alt = row[j - 1] + local[i - 1, j]
            if alt < row[j]:
                row[j], st[j] = alt, st[j - 1] + 1
        acc[i, 1:], steps[i, 1:] = row, st
    return float(acc[n, m]), int(steps[n, m])


def keypoint_distance(generated: np.ndarray, true: np.ndarray, body_height: float = 1.0) -> float:
    """KD: mean joint L2 along the DTW path between two sequences (timing free), in body heights."""
    cost, length = dtw_cost(generated, true)
    return cost / max(length, 1) / body_height


def frechet_distance(feats_a: np.ndarray, feats_b: np.ndarray, eps: float = 1e-6) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)) between Gaussian fits of features."""
    feats_a, feats_b = np.asarray(feats_a, np.float64), np.asarray(feats_b, np.float64)
    mu_a, mu_b = feats_a.mean(0), feats_b.mean(0)
    s_a = np.atleast_2d(np.cov(feats_a, rowvar=False))
    s_b = np.atleast_2d(np.cov(feats_b, rowvar=False))
    covmean, _ = linalg.sqrtm(s_a @ s_b, disp=False)
    if not np.isfinite(covmean).all():
        off = np.eye(len(s_a)) * eps
        covmean = linalg.sqrtm((s_a + off) @ (s_b + off))
    covmean = np.real(covmean)
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(s_a) + np.trace(s_b) - 2 * np.trace(covmean))
