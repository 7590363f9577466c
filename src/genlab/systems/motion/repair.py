"""Left/right swap repair for pose-estimator tracks.

MediaPipe (and other single-frame estimators) sometimes label a person's left side as the right for
a few frames. Per limb group (arms with the face, legs) every frame is either as labelled or
swapped; a Viterbi pass picks the labelling whose points move most smoothly (sum of squared
accelerations, so limbs that cross are followed through the crossing), with a small price on each
swapped frame. Frames where the two sides collapse onto each other carry no evidence: they are
skipped, then labelled to fit between their neighbours. The labelling shared by most frames is
taken as correct, so a consistently mirrored track is left alone.
"""

from __future__ import annotations

import numpy as np

from genlab.core.pose.skeletons import get_skeleton

PRIOR = 0.05  # price of a swapped frame, x the mean squared left-right separation
COLLAPSE = 0.1  # frames whose left-right separation is below this x the median are skipped

# each group is swapped as a whole: estimators swap a limb pair's joints together. The face rides
# with the arms (its two sides are often closer than the estimator's jitter, the arms' are not).
# Only the COCO-17 joints decide (MediaPipe's three finger points and its foot points would weigh
# the hands and feet four times over); the other joints of a group follow the decision.
_GROUPS = {
    "upper": (("shoulder", "elbow", "wrist", "eye", "ear"),
              ("pinky", "index", "thumb", "eye_inner", "eye_outer", "mouth")),
    "legs": (("hip", "knee", "ankle"), ("heel", "foot_index", "big_toe", "small_toe")),
}


def swap_pairs(skeleton: str) -> dict[str, tuple[list[tuple[int, int]], list[tuple[int, int]]]]:
    """Per group, the (left, right) joint index pairs of a skeleton that decide, and those that follow."""
    skel = get_skeleton(skeleton)

    def pairs(parts):
        return [(skel.joints.index(f"left_{p}"), skel.joints.index(f"right_{p}")) for p in parts
                if f"left_{p}" in skel.joints and f"right_{p}" in skel.joints]

    return {g: (pairs(drive), pairs(follow)) for g, (drive, follow) in _GROUPS.items() if pairs(drive)}


def _viterbi_swaps(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """A, B: (T, n, 2) the left and right points of one group. Returns (T,) bool: swapped."""
    seen = np.isfinite(A).all(-1) & np.isfinite(B).all(-1)
    ok = seen.any(1)  # some pair seen on both sides
    # frames where the two sides collapse onto each other (an estimator mid-swap, or a person side on)
    # say nothing about the labels: they are skipped, so the smoothness is judged across them
    sep = np.sqrt((np.where(seen, ((A - B) ** 2).sum(-1), 0.0)).sum(1) / np.maximum(seen.sum(1), 1))
    if ok.any():
        ok &= sep >= COLLAPSE * np.median(sep[ok])
    obs = np.flatnonzero(ok)
    out = np.zeros(A.shape[0], bool)
    if obs.size < 2:
        return out
    S = np.stack([np.concatenate([A[obs], B[obs]], 1), np.concatenate([B[obs], A[obs]], 1)])  # (2, n, 2k, 2)
    n = obs.size
    if n < 3:
        return out
    # second order, so that limbs crossing (a side view of walking) are followed through the
    # crossing rather than bounced: state (s_prev, s_cur), cost |p_next - 2 p_cur + p_prev|^2
    # a small price on every frame called swapped: labels are usually right, and where the two sides
    # coincide (limbs hanging together in a side view) nothing else would keep them from flipping
    prior = PRIOR * float(np.nanmean(np.nansum((A[obs] - B[obs]) ** 2, axis=(-1, -2))))
    price = np.array([0.0, prior])
    cost = price[:, None] + price[None, :]  # (s0, s1)
    back = np.zeros((n, 2, 2), np.int64)  # back[k, s_{k-1}, s_k] = best s_{k-2}
    for k in range(2, n):
        acc = S[None, None, :, k] - 2 * S[None, :, None, k - 1] + S[:, None, None, k - 2]  # [a, b, c]
        d = np.nansum(acc**2, axis=(-1, -2)) + price[None, None, :]  # (s_{k-2}, s_{k-1}, s_k)
        total = cost[:, :, None] + d
        back[k] = np.argmin(total, 0)
        cost = total.min(0)  # (s_{k-1}, s_k)
    path = np.zeros(n, np.int64)
    path[-2], path[-1] = np.unravel_index(int(np.argmin(cost)), cost.shape)
    for k in range(n - 1, 1, -1):
        path[k - 2] = back[k, path[k - 1], path[k]]
    swapped = path.astype(bool)
    if swapped.sum() > (~swapped).sum():  # the majority labelling is taken as correct
        swapped = ~swapped
    out[obs] = swapped
    # skipped frames take the labelling closer to the line between their repaired neighbours
    for t in np.flatnonzero(seen.any(1) & ~ok):
        i = np.searchsorted(obs, t)
        if i == 0 or i == obs.size:
            continue
        a, b = obs[i - 1], obs[i]
        fix = lambda k: np.concatenate([B[k], A[k]]) if out[k] else np.concatenate([A[k], B[k]])  # noqa: E731
        guess = fix(a) + (fix(b) - fix(a)) * (t - a) / (b - a)
        keep = np.nansum((np.concatenate([A[t], B[t]]) - guess) ** 2)
        out[t] = np.nansum((np.concatenate([B[t], A[t]]) - guess) ** 2) < keep
    return out


def repair_swaps(xy: np.ndarray, skeleton: str, conf: np.ndarray | None = None):
    """Undo left/right label swaps. Returns (repaired xy, repaired conf or None, (T,) bool frames
    where any group was swapped back)."""
    xy = np.array(xy, dtype=np.float64)
    conf = None if conf is None else np.array(conf, dtype=np.float64)
    fixed = np.zeros(xy.shape[0], bool)
    for drive, follow in swap_pairs(skeleton).values():
        sw = _viterbi_swaps(xy[:, [a for a, _ in drive]], xy[:, [b for _, b in drive]])
        left, right = [a for a, _ in drive + follow], [b for _, b in drive + follow]
        if sw.any():
            xy[np.ix_(sw, left + right)] = xy[np.ix_(sw, right + left)]
            if conf is not None:
                conf[np.ix_(sw, left + right)] = conf[np.ix_(sw, right + left)]
            fixed |= sw
    return xy, conf, fixed
