"""Cut detection as the paper's cascade (SVD §3.1, App. C): PySceneDetect at several frame rates.

A single decoding pass feeds every frame to the detectors of level 1 (native fps), every 2nd frame
to those of level 2 and every 4th to those of level 4. At the native rate a fade changes each frame
only a little; sampled sparsely the same fade is a large jump, so coarse levels catch what the native
level misses, while the native level places hard cuts exactly. Each level runs PySceneDetect's
ContentDetector (fixed threshold on the HSV difference) and AdaptiveDetector (the same score divided
by its rolling mean, robust to camera motion). A coarse detection is refined to the native frame
with the largest native content score inside its sampling step, and detections within
`merge_tolerance_s` of a finer level's cut are the same cut.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from genlab.core.data.video import iter_frames
from genlab.systems.video.curation.config import CutConfig


@dataclass
class CutResult:
    cuts: list[int]  # first frame of each new scene (native frame index), sorted, never 0
    num_frames: int
    frame_times: np.ndarray  # (num_frames,) presentation time of every frame, seconds
    by_level: dict[str, list[int]] = field(default_factory=dict)  # raw detections, for analysis


def _shared_score_adaptive():
    """AdaptiveDetector whose frame score (the same HSV content score ContentDetector computes) is
    taken from the ContentDetector that has just processed the same frame, instead of being
    computed a second time; its decision rule is PySceneDetect's, unchanged."""
    from scenedetect import AdaptiveDetector

    class SharedScoreAdaptive(AdaptiveDetector):
        source = None

        def _calculate_frame_score(self, timecode, frame_img):
            if self.source is None:
                return super()._calculate_frame_score(timecode, frame_img)
            return self.source._frame_score

    return SharedScoreAdaptive


def _detectors(cfg: CutConfig, fps: float, level: int):
    from scenedetect import ContentDetector

    # min_scene_len is in samples of this level; at least one sample so a level can fire at all
    min_len = max(1, int(round(cfg.min_scene_s * fps / level)))
    out = {}
    if cfg.use_content:
        out["content"] = ContentDetector(threshold=cfg.content_threshold, min_scene_len=min_len)
    if cfg.use_adaptive:
        adaptive = _shared_score_adaptive()(
            adaptive_threshold=cfg.adaptive_threshold, min_scene_len=min_len,
            window_width=cfg.adaptive_window, min_content_val=cfg.adaptive_min_content,
        )
        adaptive.source = out.get("content")  # runs after it on every frame (dict order)
        out["adaptive"] = adaptive
    return out


def detect_cuts(path: str | os.PathLike, cfg: CutConfig, fps: float, threads: int = 1, grid=None) -> CutResult:
    """Decode `path` once and run the cascade. Raises VideoReadError for unreadable videos.

    `grid` (optional, e.g. stages.SampleGrid) rides along the same decoding pass: it says which
    frames it wants (`grid.want(index, time)`) at `grid.max_side` and receives them (`grid.add`)."""
    from scenedetect import FrameTimecode

    fps = fps if fps and fps > 0 else 25.0
    levels = sorted(set(cfg.levels))
    if not levels or levels[0] < 1:
        raise ValueError(f"CutConfig.levels: expected positive frame steps, got {cfg.levels}")
    dets = {lv: _detectors(cfg, fps, lv) for lv in levels}
    raw: dict[tuple[int, str], list[int]] = {(lv, name): [] for lv in levels for name in dets[lv]}
    native_scores: list[float] = []
    times: list[float] = []
    # The native content score (for refining coarse cuts) is the level-1 detector's frame score;
    # when level 1 has no content detector we keep a private one that never fires.
    from scenedetect import ContentDetector

    scorer = dets.get(1, {}).get("content") or ContentDetector(threshold=1e9, min_scene_len=1)
    own_scorer = scorer is not dets.get(1, {}).get("content")
    last_tc: dict[int, FrameTimecode] = {}
    frames = iter_frames(path, max_side=cfg.max_side, threads=threads,
                         extra_max_side=grid.max_side if grid is not None else None,
                         want_extra=grid.want if grid is not None else None)
    for frame in frames:
        if frame.extra is not None:
            grid.add(frame)
        times.append(frame.time)
        if own_scorer:
            scorer.process_frame(FrameTimecode(frame.index, fps), frame.image)
        for lv in levels:
            if frame.index % lv:
                continue
            tc = FrameTimecode(frame.index // lv, fps / lv)
            last_tc[lv] = tc
            for name, det in dets[lv].items():
                for cut in det.process_frame(tc, frame.image):
                    raw[(lv, name)].append(cut.frame_num * lv)
        native_scores.append(float(getattr(scorer, "_frame_score", 0.0) or 0.0))
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
    return CutResult(cuts=sorted(accepted), num_frames=n, frame_times=np.asarray(times), by_level=by_level)
