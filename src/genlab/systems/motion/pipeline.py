"""keypoints -> Program: validation, gap filling, body-height normalisation, DP segmentation, loops."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from genlab.core.pose.skeletons import body_height, get_skeleton
from genlab.errors import GenlabError
from genlab.systems.motion.config import FitConfig
from genlab.systems.motion.fit import segment_sequence_scales
from genlab.systems.motion.loops import build_statements, detect_loops
from genlab.systems.motion.program import Program


@dataclass(frozen=True)
class Prepared:
    X: np.ndarray  # (T, J, 2) normalised (body height 1), gaps filled
    missing: np.ndarray  # (T,) bool: frames that were missing (weight 0 in the fit)
    scale: float  # pixels per body height
    origin: tuple[float, float]  # pixel position of the normalised origin


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
            min_frames: int = 2) -> Prepared:
    """Check a (T, J, 2) keypoint array, fill its gaps and normalise it by body height."""
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
    filled, miss = fill_gaps(P, missing)
    if (~miss).sum() < min_frames:
        raise GenlabError(f"only {(~miss).sum()} frame(s) have every joint; need at least {min_frames}")
    height = body_height(skel.to_coco17(filled[~miss]))
    origin = filled[~miss].reshape(-1, 2).mean(0)
    X = (filled - origin) / height
    return Prepared(X, miss, float(height), (float(origin[0]), float(origin[1])))


def fit_normalised(X: np.ndarray, cfg: FitConfig, *, missing: np.ndarray | None = None, skeleton: str = "coco17",
                   fps: float = 30.0, scale: float = 1.0, origin=(0.0, 0.0)) -> Program:
    """Fit an already normalised, gap-free (T, J, 2) array (missing frames get weight 0)."""
    w = np.ones(X.shape[0]) if missing is None else (~np.asarray(missing, bool)).astype(np.float64)
    scales = cfg.loop_penalty_scales if cfg.detect_loops else (1.0,)
    segs = segment_sequence_scales(X, w, cfg, scales)
    seg, loops, best = segs[0], [], -1.0
    if cfg.detect_loops:
        # the finest segmentation unless a coarser one (larger penalty) lets loops explain clearly
        # more of the sequence: real motion repeats more consistently at a coarser scale
        for cand in segs:
            found = detect_loops(cand.segments, cfg.loop)
            covered = sum(float(cand.lengths[s.first : s.stop].sum()) for s in found) / X.shape[0]
            if covered > best + cfg.loop_coverage_gain:
                seg, loops, best = cand, found, covered
    statements = build_statements(seg.segments, loops)
    meta = dict(noise_var=seg.noise_var, penalty=seg.penalty, cost=seg.cost,
                missing=None if missing is None else np.asarray(missing, bool))
    return Program(statements, skeleton, float(fps), float(scale), (float(origin[0]), float(origin[1])), meta)


def fit_program(keypoints, cfg: FitConfig | None = None, *, skeleton: str = "coco17", fps: float = 30.0,
                missing: np.ndarray | None = None) -> Program:
    """Fit a motion program to keypoints (T, J, 2) in pixels (NaN = missing, filled and down-weighted).

    The program is in normalised coordinates (body height 1); `execute(p, pixels=True)` maps back."""
    cfg = cfg or FitConfig()
    if cfg.max_len < 2 * cfg.min_len - 1:
        raise GenlabError(f"FitConfig.max_len={cfg.max_len} must be >= 2*min_len-1={2 * cfg.min_len - 1}")
    prep = prepare(keypoints, skeleton, missing, min_frames=max(2, 2 * cfg.min_len))
    return fit_normalised(prep.X, cfg, missing=prep.missing if prep.missing.any() else None,
                          skeleton=skeleton, fps=fps, scale=prep.scale, origin=prep.origin)
