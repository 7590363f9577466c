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
    """Cross-dissolves from small frames fed one at a time (`add`), evaluated in chunks so memory
    stays bounded on long videos.

    Frame t is a blend candidate for a window k when, with X, Z, Y the (per-channel zero-mean)
    frames t-k, t, t+k: Z - X = a (Y - X) + r with the blend weight a in (0.3, 0.7), |r| / |Y - X|
    below `dissolve_max_residual`, |Y - X| large enough, X and Y not flat and not one picture
    (correlation).
    A smooth pan passes that test too (midpoints of shifted smooth images), so a candidate also needs
    the ends' colour distributions to differ (a pan keeps its histogram) and Z not to be a rescaled X
    or Y (a brightness ramp is a blend with black: the fade detector's case). Runs of candidates
    over every k are the dissolves."""

    CHUNK = 512

    def __init__(self, cfg: CutConfig, fps: float):
        self.cfg = cfg
        self.ks = sorted({max(1, int(round(k * fps / 30.0))) for k in cfg.dissolve_windows})
        self.kmax = self.ks[-1]
        self.frames: list[np.ndarray] = []  # frames [base, base + len)
        self.base = 0
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
        self.frames.append(self.small(image))
        self.hits.append(False)
        if len(self.frames) >= self.CHUNK + 2 * self.kmax:
            self._evaluate(final=False)

    def _evaluate(self, final: bool) -> None:
        total = self.base + len(self.frames)
        end = total if final else total - self.kmax
        if end <= self.done:
            return
        arr = np.stack(self.frames).astype(np.float64)
        arr -= arr.mean(axis=(1, 2), keepdims=True)
        flat = arr.reshape(len(arr), -1)
        m = len(flat)
        # every quantity is a dot product of two frames: <f_t, f_t+lag> for the lags k and 2k
        # (lags reaching past the frames held are skipped: a video shorter than 2k frames has no centre for k)
        lags = {lag for lag in {0, *self.ks, *(2 * k for k in self.ks)} if lag < m}
        gram = {lag: np.einsum("ij,ij->i", flat[:m - lag], flat[lag:]) for lag in lags}
        cfg = self.cfg
        for k in self.ks:
            lo, hi = max(self.done, self.base + k), min(end, total - k)
            if hi <= lo or 2 * k not in gram:
                continue
            c = np.arange(lo, hi) - self.base  # local index of each centre
            xx, zz, yy = gram[0][c - k], gram[0][c], gram[0][c + k]
            xz, zy, xy = gram[k][c - k], gram[k][c], gram[2 * k][c - k]
            dd = yy + xx - 2 * xy + 1e-6  # |Y - X|^2
            a = (zy - xz - xy + xx) / dd  # <Z - X, Y - X> / |Y - X|^2
            rr = np.maximum(zz + xx - 2 * xz - a * a * dd, 0.0)  # |Z - X - a (Y - X)|^2
            ratio = np.sqrt(rr / dd)
            corr = xy / np.sqrt(xx * yy + 1e-6)
            change = np.sqrt(dd / flat.shape[1])
            contrast = np.sqrt(np.minimum(xx, yy) / flat.shape[1])  # a flat picture has no colours to blend
            ok = ((a > 0.3) & (a < 0.7) & (ratio < cfg.dissolve_max_residual) & (change > cfg.dissolve_min_change)
                  & (corr < cfg.dissolve_max_corr) & (contrast >= cfg.dissolve_min_contrast))
            for i in np.flatnonzero(ok):
                t = int(c[i])
                if not self.hits[t + self.base] and self._confirm(t - k, t, t + k):
                    self.hits[t + self.base] = True
        self.done = end
        drop = max(0, self.done - self.kmax - self.base)
        del self.frames[:drop]
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
        self._evaluate(final=True)
        return _runs(np.asarray(self.hits, bool), self.cfg.dissolve_min_run, self.ks[0])
