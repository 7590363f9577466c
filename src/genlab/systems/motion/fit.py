"""Fitting motion programs: closed-form primitive fits, selection rules, DP segmentation.

Every fit is in closed form and vectorised over joints and candidate windows (start b, length L):
  stationary: the mean point; error = sum of squared deviations.
  line: total least squares (principal axis of the 2x2 covariance); the position s along the axis
        is fitted as a polynomial of degree 1 or 2 in local time u = (t - b) / L (weighted normal
        equations); error = perpendicular + along-axis residuals.
  circle: algebraic (Kasa) fit x^2 + y^2 + D x + E y + F = 0 by least squares; radial error is the
        algebraic residual / (2r)^2; the unwrapped angle is fitted as degree 1 or 2 in u; tangential
        error = r^2 * the angle residual.
Moments of order <= 4 come from prefix sums (time moments shifted to the window start with the
binomial theorem), so each (window, joint) entry costs O(1); only the circle's angle fit reads the
window's points. Missing frames enter with weight 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import comb

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from genlab.errors import GenlabError
from genlab.systems.motion.config import FitConfig
from genlab.systems.motion.program import Circle, Line, Primitive, Segment, Stationary

_EPS = 1e-12
STAT, LINE, CIRC = 0, 1, 2


def _prefix(a: np.ndarray) -> np.ndarray:
    out = np.zeros((a.shape[0] + 1,) + a.shape[1:])
    np.cumsum(a, axis=0, out=out[1:])
    return out


def joint_weights(w: np.ndarray | None, T: int, J: int) -> np.ndarray:
    """(T, J) fit weights from None (all ones), per-frame (T,) or per-joint (T, J) weights."""
    if w is None:
        return np.ones((T, J))
    w = np.asarray(w, np.float64)
    if w.shape == (T,):
        return np.repeat(w[:, None], J, 1)
    if w.shape != (T, J):
        raise GenlabError(f"fit weights must have shape ({T},) or ({T}, {J}), got {w.shape}")
    return w


class Moments:
    """Prefix sums of weighted time and position moments of a (T, J, 2) sequence; weights (T, J)
    (a joint's confidence; 0 = missing) or (T,) (the same for every joint)."""

    def __init__(self, X: np.ndarray, w: np.ndarray):
        T, J = X.shape[:2]
        t = np.arange(T, dtype=np.float64)[:, None]
        w = joint_weights(w, T, J)
        self.X, self.w = X, w
        self.tw = [_prefix(w * t**k) for k in range(5)]  # (T+1, J)
        ww = w[..., None]
        self.tp = [_prefix(ww * X * (t**k)[..., None]) for k in range(3)]  # (T+1, J, 2)
        x, y = X[..., 0], X[..., 1]
        z = x * x + y * y
        self.second = _prefix(ww * np.stack([x * x, x * y, y * y], -1))  # (T+1, J, 3)
        self.cubic = _prefix(ww * np.stack([x * z, y * z, z, z * z], -1))  # (T+1, J, 4)

    @staticmethod
    def _shift(R: list[np.ndarray], b: np.ndarray, L: int, kmax: int) -> np.ndarray:
        # sum_t w (t-b)^k f_t = sum_i C(k,i) (-b)^(k-i) sum_t w t^i f_t ; then u = (t-b)/L
        out = []
        for k in range(kmax + 1):
            s = sum(comb(k, i) * (-b) ** (k - i) * R[i] for i in range(k + 1))
            out.append(s / float(L) ** k)
        return np.stack(out, 1)

    def time(self, starts: np.ndarray, L: int) -> np.ndarray:
        """(nb, 5, J): sum of w u^k, k = 0..4."""
        R = [p[starts + L] - p[starts] for p in self.tw]
        return self._shift(R, starts.astype(np.float64)[:, None], L, 4)

    def pos(self, starts: np.ndarray, L: int) -> np.ndarray:
        """(nb, 3, J, 2): sum of w u^k p, k = 0..2."""
        R = [p[starts + L] - p[starts] for p in self.tp]
        return self._shift(R, starts.astype(np.float64)[:, None, None], L, 2)


def _poly_solve(Minv: np.ndarray, rhs: np.ndarray, ss: np.ndarray):
    """Weighted polynomial LS from normal equations: Minv (..., k, k), rhs (..., k), ss (...)
    -> coefficients (..., k) and residual (...)."""
    a = np.einsum("...kl,...l->...k", Minv, rhs)
    return a, np.maximum(ss - (a * rhs).sum(-1), 0.0)


def _monotonic(a: np.ndarray) -> np.ndarray:
    """Quadratic timing a0 + a1 u + a2 u^2 must not turn back within the window (|accel| <= 1)."""
    return np.abs(a[..., 2]) <= np.abs(a[..., 1] + a[..., 2])


@dataclass
class _Windows:
    """Weighted moments of every (window, joint): the shared input of the three primitive fits."""

    S0: np.ndarray  # (nb, J) total weight
    U: np.ndarray  # (nb, J, 5) sums of w u^k
    Pm: np.ndarray  # (nb, J, 3, 2) sums of w u^k p
    sec: np.ndarray  # (nb, J, 3) sums of w (x^2, xy, y^2)
    cub: np.ndarray  # (nb, J, 4) sums of w (x z, y z, z, z^2), z = x^2 + y^2
    mean: np.ndarray  # (nb, J, 2)
    cov: tuple[np.ndarray, np.ndarray, np.ndarray]  # cxx, cxy, cyy, each (nb, J)
    Xw: np.ndarray  # (nb, J, 2, L) the windows' points (a view)
    ww: np.ndarray  # (nb, J, L) their weights (a view)
    M2inv: np.ndarray  # (nb, J, 2, 2) normal-equation inverses in u, degree 1
    M3inv: np.ndarray  # (nb, J, 3, 3) degree 2
    L: int

    @property
    def var(self) -> np.ndarray:
        return np.maximum(self.cov[0] + self.cov[2], 0.0)


def _window_moments(mom: Moments, starts: np.ndarray, L: int) -> _Windows:
    U = mom.time(starts, L).transpose(0, 2, 1)  # (nb, J, 5)
    S0 = np.maximum(U[..., 0], _EPS)
    Pm = mom.pos(starts, L).transpose(0, 2, 1, 3)  # (nb, J, 3, 2)
    sec = mom.second[starts + L] - mom.second[starts]
    cub = mom.cubic[starts + L] - mom.cubic[starts]
    m = Pm[:, :, 0] / S0[..., None]
    cov = (sec[..., 0] / S0 - m[..., 0] ** 2, sec[..., 1] / S0 - m[..., 0] * m[..., 1], sec[..., 2] / S0 - m[..., 1] ** 2)
    contiguous = len(starts) > 1 and starts[-1] - starts[0] == len(starts) - 1
    sel = slice(int(starts[0]), int(starts[-1]) + 1) if contiguous else starts  # a view, not a copy
    Xw = sliding_window_view(mom.X, L, axis=0)[sel]  # (nb, J, 2, L)
    ww = sliding_window_view(mom.w, L, axis=0)[sel]  # (nb, J, L)
    M3 = np.stack([U[..., 0:3], U[..., 1:4], U[..., 2:5]], -2) + 1e-9 * np.eye(3)
    return _Windows(S0, U, Pm, sec, cub, m, cov, Xw, ww, np.linalg.inv(M3[..., :2, :2]), np.linalg.inv(M3), L)


def _fit_stationary(win: _Windows, cfg: FitConfig, box: np.ndarray | None):
    """The mean point: error = weighted squared deviations; stationary by the box or rms rule."""
    if box is None:
        box = (win.Xw.max(-1) - win.Xw.min(-1)).max(-1)  # (nb, J)
    return win.S0 * win.var, (box <= cfg.stat_box) | (np.sqrt(win.var) <= cfg.stat_dev)


def _fit_line(win: _Windows, cfg: FitConfig):
    """TLS axis, then the along-axis position as a polynomial in u (degree 2 if it pays)."""
    cxx, cxy, cyy = win.cov
    half = 0.5 * (cxx - cyy)
    rad = np.sqrt(half**2 + cxy**2)
    lmax, lmin = 0.5 * (cxx + cyy) + rad, np.maximum(0.5 * (cxx + cyy) - rad, 0.0)
    phi = 0.5 * np.arctan2(2 * cxy, cxx - cyy)
    d = np.stack([np.cos(phi), np.sin(phi)], -1)  # (nb, J, 2)
    rhs = np.einsum("bjkc,bjc->bjk", win.Pm - win.mean[:, :, None] * win.U[..., :3, None], d)  # (nb, J, 3)
    ss = win.S0 * lmax
    a_lin, r_lin = _poly_solve(win.M2inv, rhs[..., :2], ss)
    a_quad, r_quad = _poly_solve(win.M3inv, rhs, ss)
    perp = win.S0 * lmin
    quad = ((perp + r_quad) < cfg.quad_gain * (perp + r_lin)) & _monotonic(a_quad)
    err = perp + np.where(quad, r_quad, r_lin)
    a = np.where(quad[..., None], a_quad, np.concatenate([a_lin, np.zeros_like(a_lin[..., :1])], -1))
    return err, a, d


def _fit_circle_radial(win: _Windows):
    """Algebraic (Kasa) circle x^2 + y^2 + D x + E y + F = 0: centre, radius, radial error."""
    Sx, Sy = win.Pm[:, :, 0, 0], win.Pm[:, :, 0, 1]
    sec = win.sec
    A = np.stack([
        np.stack([sec[..., 0], sec[..., 1], Sx], -1),
        np.stack([sec[..., 1], sec[..., 2], Sy], -1),
        np.stack([Sx, Sy, win.S0], -1),
    ], -2) + 1e-10 * np.eye(3)
    g = win.cub[..., :3]
    v = np.linalg.solve(A, -g[..., None])[..., 0]  # (nb, J, 3)
    center = -0.5 * v[..., :2]
    r = np.sqrt(np.maximum((center**2).sum(-1) - v[..., 2], _EPS))
    alg = np.maximum(win.cub[..., 3] + (v * g).sum(-1), 0.0)
    return center, r, alg / (4 * r**2)


def _fit_circle_angle(win: _Windows, cfg: FitConfig, cand: np.ndarray, center: np.ndarray, r: np.ndarray,
                      radial: np.ndarray):
    """Unwrapped angle about the centre as a polynomial in u, only where a circle can still win
    (this is the one fit that reads the window's points)."""
    nb, J = cand.shape
    err = np.full((nb, J), np.inf)
    b = np.zeros((nb, J, 3))
    th_base = np.zeros((nb, J))
    bi, ji = np.nonzero(cand)
    if bi.size:
        pts = win.Xw[bi, ji]  # (n, 2, L)
        c = center[bi, ji]
        th = np.arctan2(pts[:, 1] - c[:, 1, None], pts[:, 0] - c[:, 0, None])  # (n, L)
        dth = np.diff(th, axis=-1)
        dth[dth > np.pi] -= 2 * np.pi  # unwrap: steps in [-pi, pi]
        dth[dth < -np.pi] += 2 * np.pi
        th = np.concatenate([np.zeros_like(th[:, :1]), np.cumsum(dth, -1)], -1)  # angle from the first point
        wsel = win.ww[bi, ji]  # (n, L)
        u = np.arange(win.L) / win.L
        rhs = np.stack([(wsel * u**k * th).sum(-1) for k in range(3)], -1)  # (n, 3)
        ss = (wsel * th**2).sum(-1)
        b_lin, rt_lin = _poly_solve(win.M2inv[bi, ji], rhs[:, :2], ss)
        b_quad, rt_quad = _poly_solve(win.M3inv[bi, ji], rhs, ss)
        r2 = r[bi, ji] ** 2
        e_lin, e_quad = radial[bi, ji] + r2 * rt_lin, radial[bi, ji] + r2 * rt_quad
        quad = (e_quad < cfg.quad_gain * e_lin) & _monotonic(b_quad)
        err[bi, ji] = np.where(quad, e_quad, e_lin)
        b[bi, ji] = np.where(quad[:, None], b_quad, np.concatenate([b_lin, np.zeros_like(b_lin[:, :1])], -1))
        th_base[bi, ji] = np.arctan2(pts[:, 1, 0] - c[:, 1], pts[:, 0, 0] - c[:, 0])
    return err, b, th_base


def fit_windows(mom: Moments, starts: np.ndarray, L: int, cfg: FitConfig,
                box: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Fit every primitive to windows [b, b+L) for b in `starts`, all joints at once, and apply the
    selection rules. Returns arrays of shape (nb, J, ...): chosen `kind`, its `err`, and parameters.
    `box` (nb, J), the bounding-box extent of each window, may be passed in when already known."""
    win = _window_moments(mom, starts, L)
    err_stat, is_stat = _fit_stationary(win, cfg, box)
    err_line, a_line, axis = _fit_line(win, cfg)
    ok_line = np.abs(a_line[..., 1] + a_line[..., 2]) >= cfg.min_span
    center, r, radial = _fit_circle_radial(win)
    cand = ~is_stat & (r <= cfg.max_radius) & (~ok_line | (radial < cfg.circle_margin * err_line))
    err_circ, b_circ, th_base = _fit_circle_angle(win, cfg, cand, center, r, radial)
    # selection rules: stationary first; a circle must beat the line clearly; too-short moves are held
    ok_circ = cand & (r * np.abs(b_circ[..., 1] + b_circ[..., 2]) >= cfg.min_span)
    circ_wins = ok_circ & (~ok_line | (err_circ < cfg.circle_margin * err_line))
    kind = np.where(is_stat, STAT, np.where(circ_wins, CIRC, np.where(ok_line, LINE, STAT)))
    err = np.choose(kind, [err_stat, err_line, np.where(np.isfinite(err_circ), err_circ, 0.0)])
    return dict(kind=kind, err=err, err_stat=err_stat, err_line=err_line, err_circ=err_circ,
                mean=win.mean, axis=axis, a_line=a_line, center=center, radius=r, th_base=th_base, b_circ=b_circ)


def _accel(a1: float, a2: float) -> float:
    total = a1 + a2
    return float(a2 / total) if abs(total) > 1e-9 else 0.0


def primitives_from_fit(f: dict[str, np.ndarray], i: int) -> tuple[Primitive, ...]:
    """Typed primitives of window i of a `fit_windows` result."""
    out: list[Primitive] = []
    for j in range(f["kind"].shape[1]):
        kind = int(f["kind"][i, j])
        m = f["mean"][i, j]
        if kind == STAT:
            out.append(Stationary((float(m[0]), float(m[1]))))
        elif kind == LINE:
            a0, a1, a2 = f["a_line"][i, j]
            d = f["axis"][i, j]
            s, e = m + a0 * d, m + (a0 + a1 + a2) * d
            out.append(Line((float(s[0]), float(s[1])), (float(e[0]), float(e[1])), _accel(a1, a2)))
        else:
            b0, b1, b2 = f["b_circ"][i, j]
            base = f["th_base"][i, j]
            c = f["center"][i, j]
            out.append(Circle((float(c[0]), float(c[1])), float(f["radius"][i, j]), float(base + b0),
                              float(base + b0 + b1 + b2), _accel(b1, b2)))
    return tuple(out)


def fit_segments(X: np.ndarray, boundaries, cfg: FitConfig | None = None,
                 w: np.ndarray | None = None) -> tuple[Segment, ...]:
    """Fit primitives at given segment boundaries (no segmentation search).

    X: (T, J, 2) normalised keypoints; boundaries: increasing frame indices b_0 < ... < b_S with
    b_0 >= 0 and b_S <= T; segment s covers [b_s, b_{s+1}). w: (T,) frame weights (0 = missing),
    ones by default, or (T, J) per-joint weights (confidences). Returns one `Segment` per window, each with its per-joint selected primitive
    (the same closed-form fits and selection rules as `fit_program`)."""
    X = np.asarray(X, np.float64)
    if X.ndim != 3 or X.shape[-1] != 2:
        raise GenlabError(f"fit_segments: keypoints must be (T, J, 2), got shape {X.shape}")
    b = np.asarray(boundaries, dtype=int)
    if b.ndim != 1 or len(b) < 2 or b[0] < 0 or b[-1] > len(X) or np.any(np.diff(b) < 1):
        raise GenlabError(f"fit_segments: boundaries must increase strictly within [0, {len(X)}], got {b.tolist()}")
    cfg = cfg or FitConfig()
    mom = Moments(X, joint_weights(w, X.shape[0], X.shape[1]))
    return tuple(Segment(float(e - s), primitives_from_fit(fit_windows(mom, np.array([s]), int(e - s), cfg), 0))
                 for s, e in zip(b[:-1], b[1:]))


def estimate_noise_var(X: np.ndarray, w: np.ndarray) -> float:
    """Per-coordinate noise variance from second differences (robust median): var(d2) = 6 sigma^2.
    w: (T,) or (T, J); only triples of observed points count."""
    ok = (w[2:] > 0) & (w[1:-1] > 0) & (w[:-2] > 0)
    d2 = (X[2:] - 2 * X[1:-1] + X[:-2])[ok]
    if d2.size == 0:
        return 0.0
    return float(np.median(d2**2) / (6 * 0.4549))  # median of chi2_1 = 0.4549


@dataclass(frozen=True)
class Segmentation:
    starts: np.ndarray  # (S,) first frame of each segment
    lengths: np.ndarray  # (S,)
    segments: tuple[Segment, ...]
    cost: float
    penalty: float
    noise_var: float


def cost_table(X: np.ndarray, w: np.ndarray, cfg: FitConfig) -> tuple[np.ndarray, Moments]:
    """C[L - min_len, b] = summed (over joints) error of the selected primitives on [b, b+L).
    T * (max_len - min_len + 1) entries, each O(J) from prefix sums (plus the circle's angle fit)."""
    T = X.shape[0]
    lo, hi = cfg.min_len, min(cfg.max_len, T)
    mom = Moments(X, w)
    Ls = np.arange(lo, hi + 1)
    C = np.full((len(Ls), T + 1), np.inf)
    # running bounding boxes of the windows, grown by one frame per length: O(T * J) per length
    view = sliding_window_view(X, lo, axis=0)
    mx, mn = view.max(-1), view.min(-1)  # (T - lo + 1, J, 2)
    for li, L in enumerate(Ls):
        n = T - L + 1
        if L > lo:
            mx, mn = np.maximum(mx[:n], X[L - 1 :]), np.minimum(mn[:n], X[L - 1 :])
        box = (mx - mn).max(-1)
        C[li, :n] = fit_windows(mom, np.arange(n), int(L), cfg, box=box)["err"].sum(-1)
    return C, mom


def local_noise_var(X: np.ndarray, w: np.ndarray, window: int) -> np.ndarray:
    """(T,) per-frame noise variance: median over joints of squared second differences / 6, then a
    rolling median over `window` frames (robust to the motion's own acceleration)."""
    from scipy.ndimage import median_filter

    T = X.shape[0]
    d2 = np.zeros(T)
    if T >= 3:
        sq = ((X[2:] - 2 * X[1:-1] + X[:-2]) ** 2).reshape(T - 2, -1)
        d2[1:-1] = np.median(sq, axis=1) / (6 * 0.4549)
        d2[0], d2[-1] = d2[1], d2[-2]
        wf = w if w.ndim == 1 else w.min(1)
        ok = (wf[2:] > 0) & (wf[1:-1] > 0) & (wf[:-2] > 0)
        if ok.any() and not ok.all():
            d2[1:-1][~ok] = np.median(d2[1:-1][ok])
    return median_filter(d2, size=max(1, window), mode="nearest")


def best_boundaries(C: np.ndarray, min_len: int, penalty: float | np.ndarray) -> tuple[np.ndarray, float]:
    """DP over the cost table: D[e] = min_L D[e - L] + C[L, e - L] + penalty (a scalar, or a table
    shaped like C for a penalty that varies with the window). Returns the segment boundaries
    (0 ... T) and the total cost. O(T * (max_len - min_len))."""
    if np.ndim(penalty):
        C, penalty = C + penalty, 0.0
    T = C.shape[1] - 1
    Ls = np.arange(min_len, min_len + C.shape[0])
    D = np.full(T + 1, np.inf)
    D[0] = 0.0
    back = np.zeros(T + 1, dtype=np.int64)
    for e in range(min_len, T + 1):
        Lc = Ls[Ls <= e]
        vals = D[e - Lc] + C[Lc - min_len, e - Lc]
        k = int(np.argmin(vals))
        D[e] = vals[k] + penalty
        back[e] = Lc[k]
    if not np.isfinite(D[T]):
        raise GenlabError(f"cannot split {T} frames into segments of {min_len}..{Ls[-1]} frames; widen min_len/max_len")
    bounds = [T]
    while bounds[-1] > 0:
        bounds.append(bounds[-1] - back[bounds[-1]])
    return np.array(bounds[::-1]), float(D[T])


def segment_sequence(X: np.ndarray, w: np.ndarray, cfg: FitConfig) -> Segmentation:
    """DP over segment boundaries at the configured penalty (see `segment_sequence_scales`)."""
    return segment_sequence_scales(X, w, cfg, (1.0,))[0]


def segment_sequence_scales(X: np.ndarray, w: np.ndarray, cfg: FitConfig,
                            penalty_scales: tuple[float, ...] = (1.0,)) -> list[Segmentation]:
    """DP over segment boundaries: minimise sum over segments of (fit error summed over joints +
    penalty), lengths in [min_len, max_len]; one segmentation per penalty scale (the cost table is
    shared, only the DP reruns)."""
    T, J, _ = X.shape
    if T < cfg.min_len:
        raise GenlabError(f"sequence has {T} frames; the fit needs at least min_len={cfg.min_len}")
    noise = estimate_noise_var(X, w)
    base = cfg.penalty if cfg.penalty is not None else cfg.penalty_scale * J * max(noise, cfg.noise_floor)
    C, mom = cost_table(X, w, cfg)
    if cfg.penalty is None and cfg.penalty_local:
        # penalty of window [b, b+L) from the mean local noise over it (prefix sums)
        var = np.maximum(local_noise_var(X, w, cfg.penalty_window), cfg.noise_floor)
        pre = _prefix(var)
        table = np.full_like(C, np.inf)
        for li in range(C.shape[0]):
            L = cfg.min_len + li
            n = T - L + 1
            table[li, :n] = cfg.penalty_scale * J * (pre[L : L + n] - pre[:n]) / L
        base = table
    out = []
    for scale in penalty_scales:
        bounds, cost = best_boundaries(C, cfg.min_len, base * scale)
        pen = float(np.mean(base[np.isfinite(base)]) * scale) if np.ndim(base) else float(base * scale)
        starts, lengths = bounds[:-1], np.diff(bounds)
        segs = []
        for b, L in zip(starts, lengths):
            f = fit_windows(mom, np.array([b]), int(L), cfg)
            segs.append(Segment(float(L), primitives_from_fit(f, 0)))
        out.append(Segmentation(starts, lengths, tuple(segs), cost, pen, noise))
    return out
