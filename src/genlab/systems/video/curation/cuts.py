"""Cut detection as the paper's cascade (SVD §3.1, App. C): PySceneDetect at several frame rates.

A single decoding pass feeds every frame to the detectors of level 1 (native fps), every 2nd frame
to those of level 2 and every 4th to those of level 4. At the native rate a fade changes each frame
only a little; sampled sparsely the same fade is a large jump, so coarse levels catch what the native
level misses, while the native level places hard cuts exactly. Each level runs PySceneDetect's
ContentDetector (fixed threshold on the HSV difference) and AdaptiveDetector (the same score divided
by its rolling mean, robust to camera motion). Each frame is shrunk by an integer factor straight
from its YUV planes and converted to HSV once; every level's score is one cv2.norm against that
level's previous sample, handed to PySceneDetect's detectors (their decision rules unchanged). A coarse detection is refined to the native frame
with the largest native content score inside its sampling step, and detections within
`merge_tolerance_s` of a finer level's cut are the same cut.
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


def _precomputed(cls):
    """A PySceneDetect detector whose frame score is set from outside (`det.score = ...`) before
    each `process_frame`, instead of being computed from the image by the detector itself; its
    decision rule (threshold, min_scene_len, flash filter, adaptive window) is PySceneDetect's,
    unchanged. The score is the one ContentDetector computes (see `content_score`), but each
    frame is converted to HSV once for all detectors and levels."""

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


def _detectors(cfg: CutConfig, fps: float, level: int):
    from scenedetect import AdaptiveDetector, ContentDetector

    # min_scene_len is in samples of this level; at least one sample so a level can fire at all
    min_len = max(1, int(round(cfg.min_scene_s * fps / level)))
    out = {}
    if cfg.use_content:
        out["content"] = _precomputed(ContentDetector)(threshold=cfg.content_threshold, min_scene_len=min_len)
    if cfg.use_adaptive:
        out["adaptive"] = _precomputed(AdaptiveDetector)(
            adaptive_threshold=cfg.adaptive_threshold, min_scene_len=min_len,
            window_width=cfg.adaptive_window, min_content_val=cfg.adaptive_min_content,
        )
    return out


def detect_cuts(path: str | os.PathLike, cfg: CutConfig, fps: float, threads: int = 1, grid=None) -> CutResult:
    """Decode `path` once and run the cascade. Raises VideoReadError for unreadable videos.

    `grid` (optional, e.g. stages.SampleGrid) rides along the same decoding pass: it says which
    frames it wants (`grid.want(index, time)`) at `grid.max_side` and receives them (`grid.add`)."""
    import cv2
    from scenedetect import FrameTimecode

    fps = fps if fps and fps > 0 else 25.0
    levels = sorted(set(cfg.levels))
    if not levels or levels[0] < 1:
        raise ValueError(f"CutConfig.levels: expected positive frame steps, got {cfg.levels}")
    dets = {lv: _detectors(cfg, fps, lv) for lv in levels}
    raw: dict[tuple[int, str], list[int]] = {(lv, name): [] for lv in levels for name in dets[lv]}
    native_scores: list[float] = []
    times: list[float] = []
    pts: list[int | None] = []
    prev_hsv: dict[int, np.ndarray] = {}
    last_tc: dict[int, FrameTimecode] = {}
    max_side = cfg.max_side
    frames = iter_frames(path, threads=threads, image_fn=lambda f: small_bgr(f, max_side),
                         extra_max_side=grid.max_side if grid is not None else None,
                         want_extra=grid.want if grid is not None else None)
    for frame in frames:
        if frame.extra is not None:
            grid.add(frame)
        times.append(frame.time)
        pts.append(frame.pts)
        hsv = cv2.cvtColor(frame.image, cv2.COLOR_BGR2HSV)
        native = content_score(hsv, prev_hsv.get(1))  # for refining coarse cuts, whatever the levels
        native_scores.append(native)
        prev_hsv[1] = hsv
        for lv in levels:
            if frame.index % lv:
                continue
            if lv == 1:
                score = native
            else:
                score = content_score(hsv, prev_hsv.get(lv))
                prev_hsv[lv] = hsv
            tc = FrameTimecode(frame.index // lv, fps / lv)
            last_tc[lv] = tc
            for name, det in dets[lv].items():
                det.score = score
                for cut in det.process_frame(tc, None):
                    raw[(lv, name)].append(cut.frame_num * lv)
    for lv in levels:
        if lv in last_tc:
            for name, det in dets[lv].items():
                raw[(lv, name)] += [c.frame_num * lv for c in det.post_process(last_tc[lv])]

    scores = np.asarray(native_scores)
    n = len(times)
    tolerance = max(1, int(round(cfg.merge_tolerance_s * fps)))
    accepted: list[int] = []
    for lv in levels:  # finest first: its positions win
        for name in dets[lv]:
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
                     frame_pts=pts, by_level=by_level)
