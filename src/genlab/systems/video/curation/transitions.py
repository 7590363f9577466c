"""Gradual transitions the content cascade misses: fades to black (PySceneDetect's ThresholdDetector
semantics) and cross-dissolves (a linear-blend test over a window). Both run on values the cut pass
already has (each frame's mean, a 64 px copy of it), one frame at a time.
"""

from __future__ import annotations

import numpy as np

from genlab.systems.video.curation.config import CutConfig


def dark_runs(lumas, threshold: float) -> list[tuple[int, int]]:
    """Maximal runs [first, end) of frames whose mean value is below `threshold`."""
    dark = np.asarray(lumas, dtype=np.float64) < threshold
    edges = np.flatnonzero(np.diff(np.concatenate(([0], dark.astype(np.int8), [0]))))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2])]


def fade_cuts(runs: list[tuple[int, int]], num_frames: int) -> list[int]:
    """ThresholdDetector's split (fade_bias 0) for every dark run with bright frames on both sides:
    the first dark frame + round(half the run), i.e. in the middle of the dark span."""
    return [a + int(round((b - a) / 2.0)) for a, b in runs if a > 0 and b < num_frames]


def _runs(flags: np.ndarray, min_run: int, max_gap: int) -> list[tuple[int, int]]:
    """[first, last] runs of True at least `min_run` long; runs `max_gap` apart or less are one."""
    spans = dark_runs(~flags, 0.5)  # runs of True as [first, end)
    merged: list[list[int]] = []
    for a, b in spans:
        if merged and a - merged[-1][1] <= max_gap:
            merged[-1][1] = b
        else:
            merged.append([a, b])
    return [(a, b - 1) for a, b in merged if b - a >= min_run]


def _hue_saturation_hist(img: np.ndarray) -> np.ndarray:
    """Hue-saturation histogram of the pixels at least half as bright as the frame's mean (a
    brightness change keeps it; dark pixels have no reliable hue)."""
    import cv2

    hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV)
    mask = (hsv[..., 2] >= max(8.0, 0.5 * float(hsv[..., 2].mean()))).astype(np.uint8)
    hist = cv2.calcHist([hsv], [0, 1], mask, [12, 4], [0, 180, 0, 256])
    return cv2.normalize(hist, hist).flatten()


def _translated(a: np.ndarray, b: np.ndarray, max_residual: float = 0.5) -> bool:
    """Whether `b` is `a` moved (a pan): after the shift phase correlation finds (on the colour
    channel that varies most), the difference left inside the overlap is below `max_residual` of
    the unshifted difference."""
    import cv2

    channel = int(np.argmax(a.reshape(-1, a.shape[-1]).std(axis=0)))  # a picture may vary in colour only
    ga, gb = a[..., channel].astype(np.float32), b[..., channel].astype(np.float32)
    (dx, dy), _ = cv2.phaseCorrelate(ga, gb)
    h, w = ga.shape
    mx, my = int(np.ceil(abs(dx))) + 1, int(np.ceil(abs(dy))) + 1
    if 2 * mx >= w or 2 * my >= h:
        return False
    moved = cv2.warpAffine(ga, np.float32([[1, 0, dx], [0, 1, dy]]), (w, h), flags=cv2.INTER_LINEAR)
    inner = (slice(my, h - my), slice(mx, w - mx))
    before = float(np.abs(gb[inner] - ga[inner]).mean())
    after = float(np.abs(gb[inner] - moved[inner]).mean())
    return after < max_residual * before


class DissolveDetector:
    """Cross-dissolves from small frames fed one at a time (`add`), correlated in blocks as they
    come, so memory stays bounded on long videos.

    Frame t is a blend candidate for a window k when, with X, Z, Y the (per-channel zero-mean)
    frames t-k, t, t+k: Z - X = a (Y - X) + r with the blend weight a in (0.3, 0.7), |r| / |Y - X|
    below `dissolve_max_residual`, |Y - X| large enough, X and Y not flat and not one picture
    (correlation).
    A smooth pan passes that test too (midpoints of shifted smooth images), so a candidate also needs
    the ends' colour distributions to differ (a pan keeps its histogram) and Z not to be a rescaled X
    or Y (a brightness ramp is a blend with black: the fade detector's case). Runs of candidates
    over every k are the dissolves.

    Every quantity of the test is a dot product of two zero-mean frames <f_i, f_i+lag> for the
    lags k and 2k: each frame is converted to float once and each product computed once (row-wise
    `vecdot`, which runs BLAS dot: half the time of einsum's loop), in blocks of BLOCK frames whose
    rows (with the 2 * kmax before them) stay in the CPU cache."""

    BLOCK = 64

    def __init__(self, cfg: CutConfig, fps: float):
        self.cfg = cfg
        self.ks = sorted({max(1, int(round(k * fps / 30.0))) for k in cfg.dissolve_windows})
        self.kmax = self.ks[-1]
        self.lags = sorted({0, *self.ks, *(2 * k for k in self.ks)})
        self.frames: list[np.ndarray] = []  # frames [base, base + len), uint8 (for `_confirm`)
        self.sums: list[tuple[float, ...]] = []  # per-channel pixel sums of frames [converted, ...)
        self.base = 0
        self.converted = 0  # frames below this have their float rows and products
        self.rows: np.ndarray | None = None  # float rows of frames [rows_first, converted)
        self.rows_first = 0
        self.gram = {lag: np.empty(0) for lag in self.lags}  # lag -> <f_i, f_i+lag> for i in [base, ...)
        self.done = 0  # centres below this were evaluated
        self.hits: list[bool] = []
        self._hists: dict[int, np.ndarray] = {}

    def small(self, image: np.ndarray) -> np.ndarray:
        import cv2

        h, w = image.shape[:2]
        s = self.cfg.dissolve_side / max(h, w)
        if s >= 1:
            return image
        return cv2.resize(image, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_LINEAR)

    def add(self, image: np.ndarray) -> None:
        import cv2

        small = self.small(image)
        self.frames.append(small)
        self.sums.append(cv2.sumElems(small)[:3])  # exact integer sums: the means without a float pass
        self.hits.append(False)
        if len(self.sums) >= self.BLOCK:
            self._correlate()
            self._evaluate(final=False)

    def _correlate(self) -> None:
        """Float rows and lagged products of the frames added since the last call."""
        if not self.sums:
            return
        new = np.stack(self.frames[self.converted - self.base:])
        m, px = len(new), new.shape[1] * new.shape[2]
        held = self.converted - self.rows_first
        if self.rows is None:  # room for the 2 * kmax rows the next products reach back to, and a few blocks
            self.rows = np.empty((2 * self.kmax + 4 * self.BLOCK, new[0].size))
        if held + m > len(self.rows):  # full: keep the last 2 * kmax rows (moved once every few blocks)
            keep = min(held, 2 * self.kmax)
            self.rows[:keep] = self.rows[held - keep:held]
            self.rows_first, held = self.converted - keep, keep
        # each frame minus its channel means, in float64: the numbers of astype + mean over (h, w)
        # (integer sums are exact in any order), in one pass
        means = np.asarray(self.sums, dtype=np.float64) / px
        np.subtract(new.reshape(m, px, -1), means[:, None, :], out=self.rows[held:held + m].reshape(m, px, -1))
        rows, first = self.rows[:held + m], self.rows_first  # rows[0] is frame `first`
        for lag in self.lags:  # the products whose later frame is new
            lo, hi = max(first, self.converted - lag), self.converted + m - lag
            if hi > lo:
                dots = np.vecdot(rows[lo - first:hi - first], rows[lo - first + lag:hi - first + lag])
                self.gram[lag] = np.concatenate([self.gram[lag], dots])
        self.converted += m
        self.sums = []

    def _evaluate(self, final: bool) -> None:
        total = self.converted
        end = total if final else total - self.kmax
        if end <= self.done:
            return
        cfg, size = self.cfg, self.rows.shape[1]  # values per frame
        for k in self.ks:
            lo, hi = max(self.done, k), min(end, total - k)
            if hi <= lo:  # (a video shorter than 2k frames has no centre for k)
                continue
            c = np.arange(lo, hi) - self.base  # each centre, as an index into the held frames and products
            g0, gk, g2k = self.gram[0], self.gram[k], self.gram[2 * k]
            xx, zz, yy = g0[c - k], g0[c], g0[c + k]
            xz, zy, xy = gk[c - k], gk[c], g2k[c - k]
            dd = yy + xx - 2 * xy + 1e-6  # |Y - X|^2
            a = (zy - xz - xy + xx) / dd  # <Z - X, Y - X> / |Y - X|^2
            rr = np.maximum(zz + xx - 2 * xz - a * a * dd, 0.0)  # |Z - X - a (Y - X)|^2
            ratio = np.sqrt(rr / dd)
            corr = xy / np.sqrt(xx * yy + 1e-6)
            change = np.sqrt(dd / size)
            contrast = np.sqrt(np.minimum(xx, yy) / size)  # a flat picture has no colours to blend
            ok = ((a > 0.3) & (a < 0.7) & (ratio < cfg.dissolve_max_residual) & (change > cfg.dissolve_min_change)
                  & (corr < cfg.dissolve_max_corr) & (contrast >= cfg.dissolve_min_contrast))
            for i in np.flatnonzero(ok):
                t = int(c[i])
                if not self.hits[t + self.base] and self._confirm(t - k, t, t + k):
                    self.hits[t + self.base] = True
        self.done = end
        drop = max(0, self.done - self.kmax - self.base)  # nothing below done - kmax is read again
        del self.frames[:drop]
        self.gram = {lag: g[drop:] for lag, g in self.gram.items()}
        self.base += drop
        self._hists = {i: h for i, h in self._hists.items() if i >= self.base}

    def _confirm(self, i: int, j: int, k: int) -> bool:
        """The ends differ in colour, and the middle is not a rescaled end (a brightness ramp)."""
        import cv2

        x, z, y = (self.frames[n].astype(np.float32).ravel() for n in (i, j, k))
        hd = cv2.compareHist(self._hist(i), self._hist(k), cv2.HISTCMP_BHATTACHARYYA)
        if hd <= self.cfg.dissolve_min_hist:
            return False
        d = y - x
        blend = np.linalg.norm(z - x - (z - x) @ d / (d @ d + 1e-6) * d)
        scaled = min(np.linalg.norm(z - (z @ e) / (e @ e + 1e-6) * e) for e in (x, y))
        return bool(scaled > 2 * blend) and not _translated(self.frames[i], self.frames[k])

    def _hist(self, local: int) -> np.ndarray:
        key = local + self.base
        if key not in self._hists:
            self._hists[key] = _hue_saturation_hist(self.frames[local])
        return self._hists[key]

    def dissolves(self) -> list[tuple[int, int]]:
        """[first, last] frames of each detected dissolve run (call once, after the last frame)."""
        self._correlate()
        self._evaluate(final=True)
        return _runs(np.asarray(self.hits, bool), self.cfg.dissolve_min_run, self.ks[0])
