"""Left/right swap repair for pose-estimator tracks.

MediaPipe (and other single-frame estimators) sometimes label a person's left side as the right for
a few frames. Per limb group (arms with the face, legs) every frame is either as labelled or swapped; a
Viterbi pass over the two states picks the labelling whose points move least from frame to frame
(sum of squared displacements between consecutive observed frames). The labelling shared by most
frames is taken as correct, so a track that is consistently mirrored is left alone.
"""

from __future__ import annotations

import numpy as np

from genlab.core.pose.skeletons import get_skeleton

# each group is swapped as a whole: estimators swap a limb pair's joints together. The face rides
# with the arms: its two sides are often closer than the estimator's jitter, the arms' are not.
_GROUPS = {
    "upper": ("shoulder", "elbow", "wrist", "pinky", "index", "thumb", "eye", "eye_inner", "eye_outer",
              "ear", "mouth"),
    "legs": ("hip", "knee", "ankle", "heel", "foot_index", "big_toe", "small_toe"),
}


def swap_pairs(skeleton: str) -> dict[str, list[tuple[int, int]]]:
    """Per group, the (left, right) joint index pairs of a skeleton present in it."""
    skel = get_skeleton(skeleton)
    out: dict[str, list[tuple[int, int]]] = {}
    for group, parts in _GROUPS.items():
        pairs = [(skel.joints.index(f"left_{p}"), skel.joints.index(f"right_{p}")) for p in parts
                 if f"left_{p}" in skel.joints and f"right_{p}" in skel.joints]
        if pairs:
            out[group] = pairs
    return out


def _viterbi_swaps(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """A, B: (T, n, 2) the left and right points of one group. Returns (T,) bool: swapped."""
    ok = (np.isfinite(A).all(-1) & np.isfinite(B).all(-1)).any(1)  # some pair seen on both sides
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
    prior = 0.01 * float(np.nanmean(np.nansum((A[obs] - B[obs]) ** 2, axis=(-1, -2))))
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
    return out


def repair_swaps(xy: np.ndarray, skeleton: str, conf: np.ndarray | None = None):
    """Undo left/right label swaps. Returns (repaired xy, repaired conf or None, (T,) bool frames
    where any group was swapped back)."""
    xy = np.array(xy, dtype=np.float64)
    conf = None if conf is None else np.array(conf, dtype=np.float64)
    fixed = np.zeros(xy.shape[0], bool)
    for pairs in swap_pairs(skeleton).values():
        left, right = [a for a, _ in pairs], [b for _, b in pairs]
        sw = _viterbi_swaps(xy[:, left], xy[:, right])
        if sw.any():
            xy[np.ix_(sw, left + right)] = xy[np.ix_(sw, right + left)]
            if conf is not None:
                conf[np.ix_(sw, left + right)] = conf[np.ix_(sw, right + left)]
            fixed |= sw
    return xy, conf, fixed
