"""keypoints -> Program: validation, gap filling, confidence weights, body-height normalisation, DP
segmentation, loops.

Real tracks lose the person. A frame is *lost* when fewer than `min_seen` of its joints are usable
(finite, confidence >= `min_conf`). Lost runs up to `max_gap` frames are bridged: their points are
interpolated linearly and weigh only `bridge_weight` in the fits. Longer runs split the track: each observed
stretch is segmented on its own (no primitive and no loop spans a long gap) and the program holds
an explicit `missing N` statement for the run. Usable joints weigh their confidence.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from genlab.core.pose.skeletons import body_height, get_skeleton
from genlab.errors import GenlabError
from genlab.systems.motion.config import FitConfig
from genlab.systems.motion.fit import segment_sequence_scales
from genlab.systems.motion.loops import build_statements, detect_loops, loop_similarity
from genlab.systems.motion.program import Missing, Program, Statement


@dataclass(frozen=True)
class Prepared:
    X: np.ndarray  # (T, J, 2) normalised (body height 1), gaps filled
    missing: np.ndarray  # (T,) bool: frames with a missing joint (such joints weigh 0)
    scale: float  # pixels per body height
    origin: tuple[float, float]  # pixel position of the normalised origin
    weights: np.ndarray | None = None  # (T, J) fit weight of each joint (confidence; 0 = not usable)

    @property
    def lost(self) -> np.ndarray:
        """(T,) frames with too few usable joints (from `weights`; `missing` without them)."""
        return self.missing if self.weights is None else ~(self.weights > 0).any(1)


def joint_weights_from(keypoints: np.ndarray, conf: np.ndarray | None, missing: np.ndarray | None,
                       cfg: FitConfig) -> np.ndarray:
    """(T, J) fit weights: a joint's confidence where it is finite and at least `min_conf`, else 0;
    frames flagged in `missing` or with fewer than `min_seen` usable joints weigh 0 throughout."""
    P = np.asarray(keypoints, dtype=np.float64)
    ok = np.isfinite(P).all(-1)
    if conf is None:
        w = ok.astype(np.float64)
    else:
        c = np.asarray(conf, dtype=np.float64)
        if c.shape != ok.shape:
            raise GenlabError(f"confidences must have shape {ok.shape} (frames, joints), got {c.shape}")
        c = np.clip(np.nan_to_num(c, nan=0.0), 0.0, 1.0)
        w = np.where(ok & (c >= cfg.min_conf), c, 0.0)
    lost = (w > 0).mean(1) < cfg.min_seen
    if missing is not None:
        lost |= np.asarray(missing, bool)
    w[lost] = 0.0
    return w


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) of every run of True in a (T,) mask."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], np.asarray(mask, np.int8), [0]])))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2])]


def long_gaps(lost: np.ndarray, cfg: FitConfig) -> np.ndarray:
    """(T,) frames the program declares `missing`: lost runs longer than `max_gap`, and observed
    stretches between them too short to fit (fewer than 2 * min_len frames)."""
    out = np.zeros(len(lost), bool)
    for a, b in runs(lost):
        if b - a > cfg.max_gap:
            out[a:b] = True
    for a, b in runs(~out):
        if b - a < 2 * cfg.min_len or not (~lost[a:b]).sum() >= 2:
            out[a:b] = True
    return out


def fill_gaps(keypoints: np.ndarray, missing: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Linear interpolation in time over non-finite entries; returns (filled, missing frame mask).
    A frame is missing when flagged or when any of its joints is not finite."""
    P = np.array(keypoints, dtype=np.float64)
    bad = ~np.isfinite(P).all(-1)  # (T, J)
    miss = bad.any(1) if missing is None else (np.asarray(missing, bool) | bad.any(1))
    t = np.arange(P.shape[0])
    for j in range(P.shape[1]):
        good = ~bad[:, j]
        if not good.any():
            raise GenlabError(f"joint {j} has no finite keypoint in any of the {P.shape[0]} frames")
        if not good.all():
            for c in range(2):
                P[~good, j, c] = np.interp(t[~good], t[good], P[good, j, c])
    return P, miss


def prepare(keypoints, skeleton: str = "coco17", missing: np.ndarray | None = None,
            min_frames: int = 2, conf: np.ndarray | None = None, cfg: FitConfig | None = None) -> Prepared:
    """Check a (T, J, 2) keypoint array, weigh its joints (confidences, lost frames), fill its gaps
    and normalise it by body height."""
    skel = get_skeleton(skeleton)
    try:
        P = np.asarray(keypoints, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise GenlabError(f"keypoints must be a numeric array (frames, joints, 2): {e}") from None
    if P.ndim != 3 or P.shape[-1] != 2:
        raise GenlabError(f"keypoints must have shape (frames, joints, 2), got {P.shape}")
    if P.shape[1] != skel.num_joints:
        raise GenlabError(f"keypoints have {P.shape[1]} joints, skeleton {skel.name} has {skel.num_joints}")
    if P.shape[0] < min_frames:
        raise GenlabError(f"keypoints have {P.shape[0]} frame(s); a motion program needs at least {min_frames}")
    if not np.isfinite(P).any():
        raise GenlabError("keypoints are all NaN/inf: no person was found in any frame")
    w = joint_weights_from(P, conf, missing, cfg or FitConfig())
    seen = (w > 0).any(1)
    if seen.sum() < min_frames:
        raise GenlabError(f"only {int(seen.sum())} frame(s) have enough usable joints; need at least {min_frames}")
    usable = (w > 0).any(0)
    P = np.where(((w > 0) | ~usable)[..., None], P, np.nan)  # unusable points: interpolated from usable ones
    if not np.isfinite(P).all(-1).any(0).all():  # a joint never seen: the body's centre, weight 0
        centre = np.nanmean(P, axis=1, keepdims=True)
        P = np.where(np.isfinite(P).all(-1).any(0)[None, :, None], P, centre)
    filled, miss = fill_gaps(P, missing)
    ref = ~miss if (~miss).sum() >= min_frames else seen
    height = body_height(skel.to_coco17(filled[ref]))
    origin = filled[ref].reshape(-1, 2).mean(0)
    X = (filled - origin) / height
    return Prepared(X, miss, float(height), (float(origin[0]), float(origin[1])), w)


def _fit_stretch(X: np.ndarray, w: np.ndarray, cfg: FitConfig) -> tuple[tuple[Statement, ...], dict]:
    """Segment one observed stretch and find its loops (the finest segmentation unless a coarser one,
    a larger penalty, lets loops explain clearly more of it: real motion repeats more consistently
    at a coarser scale)."""
    scales = cfg.loop_penalty_scales if cfg.detect_loops else (1.0,)
    segs = segment_sequence_scales(X, w, cfg, scales)
    seg, loops, best = segs[0], [], -1.0
    if cfg.detect_loops:
        for cand in segs:
            found = detect_loops(cand.segments, cfg.loop)
            covered = sum(float(cand.lengths[s.first : s.stop].sum()) for s in found) / X.shape[0]
            if covered > best + cfg.loop_coverage_gain:
                seg, loops, best = cand, found, covered
    return build_statements(seg.segments, loops), dict(noise_var=seg.noise_var, penalty=seg.penalty, cost=seg.cost)


def fit_normalised(X: np.ndarray, cfg: FitConfig, *, missing: np.ndarray | None = None, skeleton: str = "coco17",
                   fps: float = 30.0, scale: float = 1.0, origin=(0.0, 0.0), weights: np.ndarray | None = None) -> Program:
    """Fit an already normalised, gap-filled (T, J, 2) array. `weights` (T, J) (or the frame mask
    `missing`, weight 0) say which points count; lost runs longer than `max_gap` become `missing`."""
    T, J = X.shape[:2]
    if weights is None:
        weights = np.ones((T, J)) if missing is None else np.repeat((~np.asarray(missing, bool))[:, None], J, 1) * 1.0
    lost = ~(weights > 0).any(1)
    declared = long_gaps(lost, cfg)
    statements: list[Statement] = []
    metas = []
    for a, b in _pieces(declared):
        if declared[a]:
            statements.append(Missing(float(b - a)))
            continue
        w = weights[a:b]
        sts, m = _fit_stretch(X[a:b], np.where(w > 0, w, cfg.bridge_weight), cfg)
        statements.extend(sts)
        metas.append((b - a, m))
    if not metas:
        raise GenlabError(f"no stretch of at least {2 * cfg.min_len} observed frames to fit (lost frames: "
                          f"{int(lost.sum())} of {T})")
    total = sum(n for n, _ in metas)
    meta = {k: float(sum(n * m[k] for n, m in metas) / total) for k in ("noise_var", "penalty")}
    meta.update(cost=float(sum(m["cost"] for _, m in metas)),
                missing=None if missing is None else np.asarray(missing, bool),
                lost_frames=int(lost.sum()), missing_frames=int(declared.sum()),
                bridged_frames=int((lost & ~declared).sum()),
                mean_confidence=float(weights[~lost].mean()) if (~lost).any() else 0.0)
    program = Program(tuple(statements), skeleton, float(fps), float(scale), (float(origin[0]), float(origin[1])), meta)
    program.meta["loop_similarity"] = [loop_similarity(lp) for lp in program.loops]
    return program


def _pieces(declared: np.ndarray) -> list[tuple[int, int]]:
    """Alternating runs of declared-missing and observed frames, in order."""
    edges = np.flatnonzero(np.diff(declared.astype(np.int8))) + 1
    bounds = [0, *edges.tolist(), len(declared)]
    return list(zip(bounds[:-1], bounds[1:]))


def fit_program(keypoints, cfg: FitConfig | None = None, *, skeleton: str = "coco17", fps: float = 30.0,
                missing: np.ndarray | None = None, conf: np.ndarray | None = None) -> Program:
    """Fit a motion program to keypoints (T, J, 2) in pixels. NaN = missing; `conf` (T, J), the
    detector's confidences, weigh the fits (below `cfg.min_conf`: not used). Short lost runs are
    bridged, long ones become `missing N` statements.

    The program is in normalised coordinates (body height 1); `execute(p, pixels=True)` maps back."""
    cfg = cfg or FitConfig()
    if cfg.max_len < 2 * cfg.min_len - 1:
        raise GenlabError(f"FitConfig.max_len={cfg.max_len} must be >= 2*min_len-1={2 * cfg.min_len - 1}")
    prep = prepare(keypoints, skeleton, missing, min_frames=max(2, 2 * cfg.min_len), conf=conf, cfg=cfg)
    return fit_normalised(prep.X, cfg, missing=prep.missing if prep.missing.any() else None,
                          skeleton=skeleton, fps=fps, scale=prep.scale, origin=prep.origin, weights=prep.weights)
