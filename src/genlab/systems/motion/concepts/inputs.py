"""Any input the motion system reads, for the concepts commands: keypoint files in every format the
motion loaders know (AlphaPose, OpenPose, .trc, .bvh, .npy, .npz, the concepts' own .npz) and
videos (MediaPipe Pose through the motion system's `extract` path).

Real tracks lose the person. Short lost runs are filled from a fitted motion program (as
`genlab motion fill` does); longer ones stay missing, and no concept is placed over them: each
observed stretch is described on its own.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genlab.errors import GenlabError

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")


@dataclass(frozen=True)
class Input:
    keypoints: np.ndarray  # (T, 17, 2) COCO-17 pixels; NaN over runs too long to fill
    fps: float

    @property
    def observed(self) -> np.ndarray:
        return np.isfinite(self.keypoints).all(axis=(1, 2))

    def stretches(self, min_len: int = 1) -> list[tuple[int, int]]:
        """[start, end) of the observed runs at least `min_len` frames long."""
        from genlab.systems.motion.pipeline import runs

        return [(a, b) for a, b in runs(self.observed) if b - a >= min_len]


def _is_concepts_npz(path: Path) -> bool:
    if path.suffix.lower() != ".npz":
        return False
    try:
        with np.load(path, allow_pickle=False) as z:
            return "meta" in z
    except (OSError, ValueError, EOFError):
        return False


def load_input(path: str | Path, fps: float = 30.0, roi: str | None = None, progress: bool = False) -> Input:
    """Read `path` (keypoints of any supported kind, or a video) as COCO-17 pixels with short gaps
    filled from a motion program."""
    from genlab.systems.motion.config import preset_for
    from genlab.systems.motion.io import load_keypoints
    from genlab.systems.motion.pipeline import fit_program
    from genlab.systems.motion.program import execute
    from genlab.systems.motion.repair import repair_swaps

    path = Path(path)
    if not path.exists():
        raise GenlabError(f"{path}: no such file or folder")
    if _is_concepts_npz(path):
        from genlab.systems.motion.concepts.dataset import load_sequence

        return Input(load_sequence(path)[0], fps)
    if path.suffix.lower() in VIDEO_SUFFIXES:
        from genlab.core.pose.mediapipe_pose import estimate_video, parse_roi
        from genlab.core.pose.skeletons import MEDIAPIPE33

        track = estimate_video(path, roi=parse_roi(roi), progress=progress)
        xy, vis, _ = repair_swaps(track.xy, "mediapipe33", track.visibility)
        xy, conf, lost, kind, fps = (MEDIAPIPE33.to_coco17(xy), MEDIAPIPE33.to_coco17(vis[..., None])[..., 0],
                                     ~np.isfinite(xy).all(axis=(1, 2)), "detector", track.fps)
    else:
        track = load_keypoints(path, fps=fps).coco17()
        xy, conf, lost, kind, fps = track.xy, track.conf, track.lost, track.kind, track.fps
        if kind == "detector":
            xy, conf, _ = repair_swaps(xy, "coco17", conf)
    if np.isfinite(xy).all():
        return Input(xy, fps)
    program = fit_program(xy, preset_for(kind), fps=fps, conf=conf, missing=lost)
    rec = execute(program, pixels=True)[: len(xy)]
    filled = np.where(np.isfinite(xy).all(-1, keepdims=True), xy, rec)
    filled[~np.isfinite(filled).all(axis=(1, 2))] = np.nan  # a frame is observed whole, or not at all
    return Input(filled, fps)


def describe_input(model, inp: Input, where: str):
    """The model's description of every observed stretch long enough to hold a concept, merged;
    nothing over missing frames. Warns (stderr) when nothing is long enough."""
    from dataclasses import replace

    from genlab.systems.motion.concepts.description import Description

    shortest = min(c.min_duration for c in model.concepts)
    parts = inp.stretches(shortest)
    if not parts:
        print(f"warning: {where}: no observed stretch of at least {shortest} frames (the shortest concept); "
              f"the description is empty", file=sys.stderr)
        return Description(len(inp.keypoints), ())
    actions = []
    for a, b in parts:
        desc = model.describe(inp.keypoints[a:b], where=f"{where} frames {a}-{b}")
        actions += [replace(x, start=x.start + a, end=x.end + a) for x in desc.actions]
    return Description(len(inp.keypoints), tuple(actions))
