"""Any input the motion system reads, for the concepts commands: keypoint files in every format the
motion loaders know (AlphaPose, OpenPose, .trc, .bvh, .npy, .npz, the concepts' own .npz) and
videos (MediaPipe Pose through the motion system's `extract` path).

Real tracks lose the person. Short lost runs are filled from a fitted motion program (as
`genlab motion fill` does); longer ones stay missing, and no concept is placed over them: each
observed stretch is described on its own.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genlab.errors import GenlabError

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")
_LABEL = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


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


def estimate_count(keypoints: np.ndarray, min_lag: int = 6) -> int:
    """Iterations in a trimmed example without a stated count: its length over the period, the
    first lag whose autocorrelation (all joints, mean removed) is a local peak within 80% of the
    highest one above 0.3; 1 when nothing repeats. (A motion program's loop would do, but its
    greedy choice can take a body of two iterations when that covers more frames.)"""
    x = np.asarray(keypoints, np.float64).reshape(len(keypoints), -1)
    x = x - x.mean(0)
    n = len(x)
    ac = np.array([(x[: n - k] * x[k:]).sum() / (n - k) for k in range(int(0.6 * n) + 1)])
    if len(ac) < min_lag + 2 or ac[0] <= 0:
        return 1
    ac = ac / ac[0]
    peaks = [k for k in range(min_lag, len(ac) - 1) if ac[k] >= ac[k - 1] and ac[k] >= ac[k + 1] and ac[k] > 0.3]
    if not peaks:
        return 1
    best = max(ac[k] for k in peaks)
    period = next(k for k in peaks if ac[k] >= 0.8 * best)
    return max(1, int(round(n / period)))


def load_examples(source: str | Path, fps: float = 30.0):
    """Trimmed examples of your own concepts, as `Example`s and a line per example saying where
    it came from. `source` is a folder holding a folder per concept label (every file or OpenPose
    folder inside is one example, its count estimated from its period), or a `.jsonl` file
    of {"file": ..., "label": ..., "start": frame, "end": frame, "count": n} (start, end and count
    optional; a relative file is relative to the JSONL's folder)."""
    from genlab.systems.motion.concepts.description import IDLE
    from genlab.systems.motion.concepts.learn import Example

    source = Path(source)
    items: list[tuple[Path, str, int | None, int | None, int | None]] = []
    if source.is_dir():
        labels = sorted(p for p in source.iterdir() if p.is_dir())
        for lab in labels:
            items += [(f, lab.name, None, None, None) for f in sorted(lab.iterdir()) if not f.name.startswith(".")]
        if not items:
            raise GenlabError(f"{source}: expected a folder per concept label holding example files "
                              f"(e.g. {source}/side_lunge/1.npy), found none")
    elif source.suffix.lower() == ".jsonl" and source.is_file():
        for n, line in enumerate(source.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                f = Path(rec["file"])
                items.append((f if f.is_absolute() else source.parent / f, str(rec["label"]), rec.get("start"),
                              rec.get("end"), rec.get("count")))
            except (json.JSONDecodeError, KeyError, TypeError) as e:
                raise GenlabError(f"{source} line {n}: expected {{\"file\": ..., \"label\": ...}} "
                                  f"(optional start, end, count): {e}") from None
    else:
        raise GenlabError(f"{source}: --examples takes a folder (a folder per concept label) or a .jsonl file")
    examples, notes = [], []
    for f, label, start, end, count in items:
        if not _LABEL.match(label) or label == IDLE:
            raise GenlabError(f"{f}: concept label {label!r} must be a name (letters, digits, _), not {IDLE!r}")
        kp = load_input(f, fps=fps).keypoints[start:end]
        ok = np.isfinite(kp).all(axis=(1, 2))
        if not ok.any():
            raise GenlabError(f"{f}: no frame with a whole pose in frames {start or 0}-{end if end is not None else 'end'}")
        if not ok.all():  # a trimmed example is one stretch: keep the longest observed run
            from genlab.systems.motion.pipeline import runs

            a, b = max(runs(ok), key=lambda r: r[1] - r[0])
            kp = kp[a:b]
        n = int(count) if count is not None else estimate_count(kp)
        examples.append(Example(label, kp, n))
        notes.append(f"{label}: {f.name} ({len(kp)} frames, {n} iteration{'s' if n != 1 else ''}"
                     f"{'' if count is not None else ', estimated'})")
    return examples, notes
