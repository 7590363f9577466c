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

from genlab.core.data.video import iter_frames, small_bgr
from genlab.systems.video.curation.config import CutConfig


@dataclass
class CutResult:
    cuts: list[int]  # first frame of each new scene (native frame index), sorted, never 0
    num_frames: int
    frame_times: np.ndarray  # (num_frames,) presentation time of every frame, seconds
    frame_pts: list[int | None] = field(default_factory=list)  # decoder pts of every frame (for AVI copies)
    by_level: dict[str, list[int]] = field(default_factory=dict)  # raw detections, for analysis
    # keyframe packets and stream timing noted during the pass (see iter_frames(stream_info=))
    stream_info: dict = field(default_factory=dict)


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


def detect_cuts(path: str | os.PathLike, cfg: CutConfig, fps: float, threads: int = 1, grid=None) -> CutResult:
    """Decode `path` once and run the cascade. Raises VideoReadError for unreadable videos.

    `grid` (optional, e.g. stages.SampleGrid) rides along the same decoding pass: it says which
    frames it wants (`grid.want(index, time)`) at `grid.max_side` and receives them (`grid.add`)."""
    import cv2

    fps = fps if fps and fps > 0 else 25.0
    levels = sorted(set(cfg.levels))
    if not levels or levels[0] < 1:
        raise ValueError(f"CutConfig.levels: expected positive frame steps, got {cfg.levels}")
    level_scores: dict[int, list[float]] = {lv: [] for lv in levels}
    native_scores: list[float] = []
    times: list[float] = []
    pts: list[int | None] = []
    prev_hsv: dict[int, np.ndarray] = {}
    max_side = cfg.max_side
    coarse = [lv for lv in levels if lv > 1]
    stream_info: dict = {}
    frames = iter_frames(path, threads=threads, image_fn=lambda f: small_bgr(f, max_side),
                         extra_max_side=grid.max_side if grid is not None else None,
                         want_extra=grid.want if grid is not None else None, stream_info=stream_info)
    for frame in frames:
        if frame.extra is not None:
            grid.add(frame)
        times.append(frame.time)
        pts.append(frame.pts)
        hsv = cv2.cvtColor(frame.image, cv2.COLOR_BGR2HSV)
        native_scores.append(content_score(hsv, prev_hsv.get(1)))  # for refining coarse cuts too
        prev_hsv[1] = hsv
        for lv in coarse:
            if frame.index % lv == 0:
                level_scores[lv].append(content_score(hsv, prev_hsv.get(lv)))
                prev_hsv[lv] = hsv
    if 1 in level_scores:
        level_scores[1] = native_scores
    raw: dict[tuple[int, str], list[int]] = {}
    for lv in levels:
        # min_scene_len is in samples of this level; at least one sample so a level can fire at all
        min_len = max(1, int(round(cfg.min_scene_s * fps / lv)))
        if cfg.use_content:
            raw[(lv, "content")] = [c * lv for c in content_detector_cuts(level_scores[lv], cfg.content_threshold, min_len)]
        if cfg.use_adaptive:
            raw[(lv, "adaptive")] = [c * lv for c in adaptive_detector_cuts(
                level_scores[lv], cfg.adaptive_threshold, cfg.adaptive_min_content, cfg.adaptive_window, min_len)]

    scores = np.asarray(native_scores)
    n = len(times)
    tolerance = max(1, int(round(cfg.merge_tolerance_s * fps)))
    accepted: list[int] = []
    for lv in levels:  # finest first: its positions win
        for name in ("content", "adaptive"):
            if (lv, name) not in raw:
                continue
            for cut in sorted(raw[(lv, name)]):
                if lv > 1:  # refine to the native frame with the largest change in (cut - lv, cut]
                    lo = max(1, cut - lv + 1)
                    hi = min(n, cut + 1)
                    if hi > lo:
                        cut = lo + int(np.argmax(scores[lo:hi]))
                if cut <= 0 or cut >= n:
                    continue
                if all(abs(cut - a) > tolerance for a in accepted):
                    accepted.append(cut)
    by_level = {f"{name}@1/{lv}": sorted(v) for (lv, name), v in raw.items()}
    return CutResult(cuts=sorted(accepted), num_frames=n, frame_times=np.asarray(times),
                     frame_pts=pts, by_level=by_level, stream_info=stream_info)
