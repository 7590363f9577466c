"""Cut detection as the paper's cascade (SVD §3.1, App. C): PySceneDetect at several frame rates.

A single decoding pass feeds every frame to the detectors of level 1 (native fps), every 2nd frame
to those of level 2 and every 4th to those of level 4. At the native rate a fade changes each frame
only a little; sampled sparsely the same fade is a large jump, so coarse levels catch what the native
level misses, while the native level places hard cuts exactly. Each level runs PySceneDetect's
ContentDetector (fixed threshold on the HSV difference) and AdaptiveDetector (the same score divided
by its rolling mean, robust to camera motion). Each frame is shrunk by an integer factor straight
from its YUV planes and converted to HSV once; every level's score is one cv2.norm against that
level's previous sample. PySceneDetect's decision rules (ContentDetector's threshold with its
flash filter, AdaptiveDetector's rolling ratio, both with min_scene_len) then run over each level's
score sequence, re-implemented on arrays: the per-frame detector calls with a FrameTimecode each
cost more than the HSV work on small frames (parity with the detectors' own `process_frame`
tested). A coarse detection is refined to the native frame with the largest native content score
inside its sampling step, and detections within `merge_tolerance_s` of a finer level's cut are
the same cut.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from genlab.core.data.video import VideoSource, iter_frames, small_bgr
from genlab.errors import GenlabError
from genlab.systems.video.curation.config import CutConfig
from genlab.systems.video.curation.transitions import DissolveDetector, dark_runs, fade_cuts


@dataclass
class CutResult:
    cuts: list[int]  # first frame of each new scene (native frame index), sorted, never 0
    num_frames: int
    frame_times: np.ndarray  # (num_frames,) presentation time of every frame, seconds
    frame_pts: list[int | None] = field(default_factory=list)  # decoder pts of every frame (for AVI copies)
    by_level: dict[str, list[int]] = field(default_factory=dict)  # raw detections, for analysis
    # keyframe packets and stream timing noted during the pass (see iter_frames(stream_info=))
    stream_info: dict = field(default_factory=dict)
    # the detector of each cut ("fade", "dissolve", "content@1/1", "adaptive@1/4", ...), as `cuts`
    detectors: list[str] = field(default_factory=list)
    # [first, end) runs of dark frames (below CutConfig.fade_threshold): no clip holds them
    dark: list[tuple[int, int]] = field(default_factory=list)
    dissolves: list[tuple[int, int]] = field(default_factory=list)  # [first, last] blended frames
    scores: np.ndarray | None = None  # each frame's content score against the previous frame


def _precomputed(cls):
    """A PySceneDetect detector whose frame score is set from outside (`det.score = ...`) before
    each `process_frame`, instead of being computed from the image by the detector itself; its
    decision rule (threshold, min_scene_len, flash filter, adaptive window) is PySceneDetect's,
    unchanged. The reference that `content_detector_cuts` / `adaptive_detector_cuts` are tested
    against."""

    class Precomputed(cls):
        score = 0.0

        def _calculate_frame_score(self, timecode, frame_img):
            return self.score

    Precomputed.__name__ = f"Precomputed{cls.__name__}"
    return Precomputed


def content_score(hsv: np.ndarray, prev_hsv: np.ndarray | None) -> float:
    """PySceneDetect ContentDetector's frame score with its default weights (hue, saturation,
    luma 1, edges 0): the mean over the three HSV channels of the mean absolute pixel difference,
    as one cv2.norm call (0.0 for the first frame, as ContentDetector)."""
    import cv2

    if prev_hsv is None:
        return 0.0
    return float(cv2.norm(hsv, prev_hsv, cv2.NORM_L1)) / (3.0 * hsv.shape[0] * hsv.shape[1])


def content_detector_cuts(scores, threshold: float, min_len: int) -> list[int]:
    """PySceneDetect 0.7's `ContentDetector` decision rule (its default FlashFilter MERGE mode) on a
    sequence of frame scores: the sample indices where it cuts. The same steps as feeding the
    scores to its `process_frame` one by one (parity tested), on plain ints instead of a
    FrameTimecode per frame."""
    above = (np.asarray(scores, dtype=np.float64) >= threshold).tolist()
    if min_len <= 0:
        return [t for t, a in enumerate(above) if a]
    out: list[int] = []
    last_above = 0  # FlashFilter initialises it at the first frame
    merge_enabled = merge_triggered = False
    merge_start = 0
    for t, a in enumerate(above):
        if not a and not merge_triggered:
            continue  # nothing to do: below the threshold, no merge pending
        min_met = t - last_above >= min_len
        if a:
            last_above = t
        if merge_triggered:
            if min_met and not a and last_above - merge_start >= min_len:
                merge_triggered = False
                out.append(last_above)
            continue
        if min_met:
            merge_enabled = True
            out.append(t)
        elif merge_enabled:
            merge_triggered, merge_start = True, t
    return out


def adaptive_detector_cuts(scores, threshold: float, min_content: float, window: int, min_len: int) -> list[int]:
    """PySceneDetect 0.7's `AdaptiveDetector` decision rule on a sequence of frame scores: a frame
    cuts when its score over the mean of the `window` scores on each side reaches `threshold` and
    its score reaches `min_content`, at least `min_len` after the last cut. Vectorised with the
    same float operations in the same order as the detector (parity tested)."""
    s = np.asarray(scores, dtype=np.float64)
    n, w = len(s), window
    if n < 2 * w + 1:
        return []
    m = n - 2 * w
    acc = None
    for k in range(2 * w + 1):  # Python's sum() order: left to right, skipping the target
        if k == w:
            continue
        acc = s[k:k + m].copy() if acc is None else acc + s[k:k + m]
    avg = acc / (2.0 * w)
    target = s[w:w + m]
    zero = np.abs(avg) < 0.00001
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(zero, np.where(target >= min_content, 255.0, 0.0), np.minimum(target / avg, 255.0))
    met = np.flatnonzero((ratio >= threshold) & (target >= min_content)) + w
    out, last = [], 0
    for t in met:
        if t - last >= min_len:
            out.append(int(t))
            last = int(t)
    return out


def mean_value(image: np.ndarray) -> float:
    """The mean over pixels and channels (ThresholdDetector's frame value), as one single-channel
    sum: 8x cheaper than cv2.mean's per-channel means (the exact integer sum, so the same value up
    to the last bit of their rounded average)."""
    import cv2

    return float(cv2.sumElems(image.reshape(image.shape[0], -1))[0]) / image.size


def change_spread(hsv: np.ndarray, prev_hsv: np.ndarray, grid: int) -> float:
    """Fraction of the cells of a grid x grid partition whose mean HSV change is at least a quarter
    of the whole frame's: ~1 for a cut or a fade (the whole picture changes), about the changed
    area for an overlay."""
    import cv2

    cells = cv2.resize(cv2.absdiff(hsv, prev_hsv), (grid, grid), interpolation=cv2.INTER_AREA)
    cells = cells.astype(np.float32).mean(axis=2)
    mean = float(cells.mean())
    return float((cells >= 0.25 * mean).mean()) if mean > 0 else 0.0


def detect_cuts(path: str | os.PathLike, cfg: CutConfig, fps: float, threads: int = 1, grid=None,
                source: VideoSource | None = None) -> CutResult:
    """Decode `path` once and run the cascade. Raises VideoReadError for unreadable videos.
    `source`: an open input of `path` to decode from (`iter_frames`).

    `grid` (optional, e.g. stages.SampleGrid) rides along the same decoding pass: it says which
    frames it wants (`grid.want(index, time)`) at `grid.max_side` and receives them (`grid.add`)."""
    import cv2

    fps = fps if fps and fps > 0 else 25.0
    levels = sorted(set(cfg.levels))
    if not levels or levels[0] < 1:
        raise GenlabError(f"CutConfig.levels: expected positive frame steps, got {cfg.levels}")
    level_scores: dict[int, list[float]] = {lv: [] for lv in levels}
    native_scores: list[float] = []
    times: list[float] = []
    pts: list[int | None] = []
    prev_hsv: dict[int, np.ndarray] = {}
    max_side = cfg.max_side
    coarse = [lv for lv in levels if lv > 1]
    stream_info: dict = {}
    frames = iter_frames(path, threads=threads, image_fn=lambda f: small_bgr(f, max_side, threads=threads),
                         extra_max_side=grid.max_side if grid is not None else None,
                         want_extra=grid.want if grid is not None else None, stream_info=stream_info,
                         source=source)
    level_scores[1] = native_scores
    lumas: list[float] = []
    dissolve = DissolveDetector(cfg, fps) if cfg.use_dissolve else None
    # the spread of a level's change, computed only where a detector could fire (rare)
    gate = min(cfg.content_threshold, cfg.adaptive_min_content)
    spread: dict[tuple[int, int], float] = {}

    def level_score(lv: int, hsv: np.ndarray) -> float:
        prev = prev_hsv.get(lv)
        score = content_score(hsv, prev)
        if score >= gate:
            spread[(lv, len(level_scores[lv]))] = change_spread(hsv, prev, cfg.spread_grid)
        prev_hsv[lv] = hsv
        return score

    for frame in frames:
        if frame.extra is not None:
            grid.add(frame)
        times.append(frame.time)
        pts.append(frame.pts)
        lumas.append(mean_value(frame.image))
        if dissolve is not None:
            dissolve.add(frame.image)
        hsv = cv2.cvtColor(frame.image, cv2.COLOR_BGR2HSV)
        native_scores.append(level_score(1, hsv))  # for refining coarse cuts too
        for lv in coarse:
            if frame.index % lv == 0:
                level_scores[lv].append(level_score(lv, hsv))
    raw: dict[tuple[int, str], list[int]] = {}
    for lv in levels:
        # min_scene_len is in samples of this level; at least one sample so a level can fire at all
        min_len = max(1, int(round(cfg.min_scene_s * fps / lv)))
        found = {}
        if cfg.use_content:
            found["content"] = content_detector_cuts(level_scores[lv], cfg.content_threshold, min_len)
        if cfg.use_adaptive:
            found["adaptive"] = adaptive_detector_cuts(
                level_scores[lv], cfg.adaptive_threshold, cfg.adaptive_min_content, cfg.adaptive_window, min_len)
        for name, samples in found.items():  # a change small in area is no cut
            raw[(lv, name)] = [c * lv for c in samples if spread.get((lv, c), 1.0) >= cfg.min_spread]

    scores = np.asarray(native_scores)
    n = len(times)
    tolerance = max(1, int(round(cfg.merge_tolerance_s * fps)))
    dark = dark_runs(lumas, cfg.fade_threshold + cfg.fade_margin) if cfg.use_fade else []
    dissolves = dissolve.dissolves() if dissolve is not None else []
    # fades first (their split lies in the dark span), then dissolves (the middle of the blend),
    # then the cascade, finest level first: a later detection near an accepted cut, or inside a
    # transition already found, is the same cut
    proposals = [(c, "fade") for c in fade_cuts(dark, n)]
    proposals += [((a + b + 1) // 2, "dissolve") for a, b in dissolves]
    for lv in levels:
        for name in ("content", "adaptive"):
            for cut in sorted(raw.get((lv, name), [])):
                if lv > 1:  # refine to the native frame with the largest change in (cut - lv, cut]
                    lo = max(1, cut - lv + 1)
                    hi = min(n, cut + 1)
                    if hi > lo:
                        cut = lo + int(np.argmax(scores[lo:hi]))
                proposals.append((cut, f"{name}@1/{lv}"))
    spans = [(a, b - 1) for a, b in dark] + list(dissolves)
    accepted: dict[int, str] = {}
    for cut, name in proposals:
        if cut <= 0 or cut >= n or any(abs(cut - a) <= tolerance for a in accepted):
            continue
        if name not in ("fade", "dissolve") and any(a - 1 <= cut <= b + 1 for a, b in spans):
            continue
        accepted[cut] = name
    by_level = {f"{name}@1/{lv}": sorted(v) for (lv, name), v in raw.items()}
    by_level["fade"] = fade_cuts(dark, n)
    by_level["dissolve"] = [(a + b + 1) // 2 for a, b in dissolves]
    cuts = sorted(accepted)
    return CutResult(cuts=cuts, num_frames=n, frame_times=np.asarray(times), frame_pts=pts, by_level=by_level,
                     stream_info=stream_info, detectors=[accepted[c] for c in cuts], dark=dark, dissolves=dissolves,
                     scores=scores)
