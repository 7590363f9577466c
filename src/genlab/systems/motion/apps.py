"""Uses of a fitted program: reconstruction, interpolation, prediction, repetition detection.

Interpolation and prediction read the program's loops: a loop's mean body, executed over one
period, is a template of the repeated motion. Its phase is aligned to the observed frames around a
gap (or before the horizon) by a 1-D search, and the template is then played across the gap (or
continued periodically), with the offset to the observed frames blended in so the ends meet.
Without a loop, the fitted primitives themselves extend into the gap.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from genlab.errors import GenlabError
from genlab.systems.motion.config import FitConfig
from genlab.systems.motion.pipeline import fit_normalised, prepare
from genlab.systems.motion.program import Loop, Program, execute


def reconstruction_error(program: Program, keypoints: np.ndarray, used: np.ndarray | None = None) -> float:
    """Mean joint distance (pixels) between the executed program and the keypoints, over the points
    both have (and, given `used` (T, J), only those the fit used: low-confidence points are not)."""
    kp = np.asarray(keypoints, dtype=np.float64)
    rec = execute(program, pixels=True)[: kp.shape[0]]
    d = np.linalg.norm(rec - kp[: rec.shape[0]], axis=-1)
    ok = np.isfinite(d) if used is None else np.isfinite(d) & np.asarray(used, bool)[: rec.shape[0]]
    return float(d[ok].mean()) if ok.any() else float("nan")


def _template(loop: Loop, program: Program) -> tuple[np.ndarray, float]:
    """One period of the loop's mean body sampled at 1/4 frame: (n, J, 2) normalised, period P."""
    body = Program(loop.mean_body(), program.skeleton, program.fps)
    P = body.duration
    return execute(body, rate=4.0), P


def _play(tmpl: np.ndarray, P: float, t: np.ndarray) -> np.ndarray:
    idx = np.round(np.mod(t, P) * 4.0).astype(int) % tmpl.shape[0]
    return tmpl[idx]


def _align(tmpl: np.ndarray, P: float, t_obs: np.ndarray, x_obs: np.ndarray,
           tempos=(0.9, 0.95, 1.0, 1.05, 1.1)) -> tuple[float, float, float]:
    """Best phase offset and tempo for x_obs (n, J, 2) at times t_obs: returns (offset, tempo, mse)."""
    best = (0.0, 1.0, np.inf)
    for tempo in tempos:
        for off in np.arange(0.0, P, 0.5):
            err = np.mean((_play(tmpl, P, (t_obs - off) * tempo) - x_obs) ** 2)
            if err < best[2]:
                best = (float(off), float(tempo), float(err))
    return best


def _ramp(start: np.ndarray, end: np.ndarray, n: int) -> np.ndarray:
    a = (np.arange(n) + 1.0) / (n + 1.0)
    return start[None] * (1 - a)[:, None, None] + end[None] * a[:, None, None]


def interpolate(keypoints: np.ndarray, missing: np.ndarray, cfg: FitConfig | None = None,
                skeleton: str = "coco17") -> tuple[np.ndarray, Program]:
    """Fill the frames flagged in `missing` (T,) from a program fitted to the others.
    Returns (filled keypoints in pixels, the program)."""
    cfg = cfg or FitConfig()
    kp = np.array(keypoints, dtype=np.float64)
    miss = np.asarray(missing, bool)
    if miss.shape != (kp.shape[0],):
        raise GenlabError(f"missing mask must have shape ({kp.shape[0]},), got {miss.shape}")
    kp[miss] = np.nan
    # the program must span the gaps it fills: no `missing` runs, gap frames at weight 0
    cfg = replace(cfg, max_gap=kp.shape[0], bridge_weight=0.0)
    prep = prepare(kp, skeleton, min_frames=max(2, 2 * cfg.min_len))
    prog = fit_normalised(prep.X, cfg, missing=prep.missing, skeleton=skeleton, scale=prep.scale, origin=prep.origin)
    out = execute(prog)[: kp.shape[0]]
    X = prep.X
    templates = [_template(lp, prog) for lp in prog.loops if lp.duration > 0]
    t_all = np.arange(kp.shape[0], dtype=np.float64)
    # gap runs
    edges = np.flatnonzero(np.diff(np.concatenate([[0], miss.astype(np.int8), [0]])))
    for a, b in zip(edges[::2], edges[1::2]):
        if templates:
            W = max(8, int(b - a))
            ctx = np.concatenate([np.arange(max(0, a - W), a), np.arange(b, min(kp.shape[0], b + W))])
            ctx = ctx[~prep.missing[ctx]]
            if ctx.size >= 4:
                fits = [(_align(tm, P, t_all[ctx], X[ctx]), tm, P) for tm, P in templates]
                (off, tempo, _), tm, P = min(fits, key=lambda f: f[0][2])
                fill = _play(tm, P, (t_all[a:b] - off) * tempo)
                # blend the offsets at both ends so the fill meets the observed frames
                d0 = X[a - 1] - _play(tm, P, (t_all[a - 1 : a] - off) * tempo)[0] if a > 0 else np.zeros_like(X[0])
                d1 = X[b] - _play(tm, P, (t_all[b : b + 1] - off) * tempo)[0] if b < kp.shape[0] else d0
                out[a:b] = fill + _ramp(d0, d1, b - a)
        # otherwise the fitted primitives (weighted fit, gap frames at weight 0) span the gap
    filled = np.where(miss[:, None, None], prog.to_pixels(out), np.asarray(keypoints, dtype=np.float64))
    return filled, prog


def predict(keypoints: np.ndarray, horizon: int, cfg: FitConfig | None = None,
            skeleton: str = "coco17") -> tuple[np.ndarray, Program]:
    """Continue the motion `horizon` frames past the end: the last loop's template, phase-aligned
    to the last observed frames; without a loop, the last segment's primitives extrapolated.
    Returns (predicted keypoints (horizon, J, 2) in pixels, the program)."""
    if horizon < 1:
        raise GenlabError(f"horizon must be >= 1 frame, got {horizon}")
    cfg = replace(cfg or FitConfig(), max_gap=len(keypoints), bridge_weight=0.0)  # as `interpolate`
    prep = prepare(keypoints, skeleton, min_frames=max(2, 2 * cfg.min_len))
    prog = fit_normalised(prep.X, cfg, missing=prep.missing if prep.missing.any() else None, skeleton=skeleton,
                          scale=prep.scale, origin=prep.origin)
    T = prep.X.shape[0]
    t_future = np.arange(T, T + horizon, dtype=np.float64)
    if prog.loops:
        spans = prog.loop_spans()
        li = int(np.argmax([s[1] for s in spans]))  # the loop that ends last
        tm, P = _template(prog.loops[li], prog)
        W = int(min(T, max(2 * P, 16)))
        t_obs = np.arange(T - W, T, dtype=np.float64)
        off, tempo, _ = _align(tm, P, t_obs, prep.X[T - W :])
        pred = _play(tm, P, (t_future - off) * tempo)
        d = prep.X[T - 1] - _play(tm, P, (t_obs[-1:] - off) * tempo)[0]
        decay = np.exp(-(np.arange(horizon) + 1.0) / max(P / 4, 1.0))[:, None, None]
        pred = pred + d[None] * decay
    else:
        # extrapolate the last segment's primitives
        last = list(prog.segments())[-1]
        b = prog.boundaries()[-2]
        pred = last((t_future - b) / last.duration)
    return prog.to_pixels(pred), prog


def constant_velocity(keypoints: np.ndarray, horizon: int) -> np.ndarray:
    kp = np.asarray(keypoints, dtype=np.float64)
    v = kp[-1] - kp[-2]
    return kp[-1][None] + v[None] * (np.arange(horizon) + 1.0)[:, None, None]


def spline_fill(keypoints: np.ndarray, missing: np.ndarray) -> np.ndarray:
    """Cubic-spline baseline over the observed frames."""
    from scipy.interpolate import CubicSpline

    kp = np.array(keypoints, dtype=np.float64)
    miss = np.asarray(missing, bool)
    t = np.arange(kp.shape[0])
    cs = CubicSpline(t[~miss], kp[~miss], axis=0)
    kp[miss] = cs(t[miss])
    return kp
