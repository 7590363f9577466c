"""Keypoint loaders and writers: AlphaPose JSON, OpenPose per-frame JSON, BVH motion capture,
OpenSim/Sports2D `.trc`, `.npy` / `.npz` arrays.

Every loader returns a `KeypointTrack` in its native layout: one row per source frame from the
first to the last (a frame nobody was detected in stays, as a NaN row flagged in `lost`), the source
frame number of each row, the confidences, fps and the kind of input (a pose detector's output or
motion capture / synthetic), which picks the fit preset. `KeypointTrack.coco17()` maps it to COCO-17,
the layout the fit uses. Multi-person inputs keep one track: `person` (an id) when given, else the
longest track (most frames, ties broken by size).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from genlab.core.pose.skeletons import COCO17, get_skeleton, skeleton_for
from genlab.errors import GenlabError

KINDS_OF_INPUT = ("detector", "mocap", "synthetic")


@dataclass(frozen=True)
class KeypointTrack:
    xy: np.ndarray  # (T, J, 2) pixels (or projected units), NaN = missing
    conf: np.ndarray  # (T, J) confidence in [0, 1]; 0 where missing
    skeleton: str
    fps: float = 30.0
    source: str = ""
    frame_ids: np.ndarray | None = None  # (T,) source frame number of each row; None = 0..T-1
    lost: np.ndarray | None = None  # (T,) frames where the person was not found; None = all-NaN rows
    kind: str = "detector"  # "detector" (pose estimator on video), "mocap" or "synthetic"
    person: str | None = None  # which person of a multi-person file, said in the summary
    people: int = 1  # how many tracks the file held

    def __post_init__(self):
        T = self.xy.shape[0]
        ids = np.arange(T) if self.frame_ids is None else np.asarray(self.frame_ids, np.int64)
        lost = ~np.isfinite(self.xy).any(axis=(1, 2)) if self.lost is None else np.asarray(self.lost, bool)
        if ids.shape != (T,) or lost.shape != (T,):
            raise GenlabError(f"{self.source or 'track'}: frame_ids/lost must have shape ({T},)")
        if self.kind not in KINDS_OF_INPUT:
            raise GenlabError(f"track kind must be one of {KINDS_OF_INPUT}, got {self.kind!r}")
        object.__setattr__(self, "frame_ids", ids)
        object.__setattr__(self, "lost", lost)

    def coco17(self) -> KeypointTrack:
        skel = get_skeleton(self.skeleton)
        xy = skel.to_coco17(self.xy)
        conf = skel.to_coco17(self.conf[..., None])[..., 0]
        return replace(self, xy=xy, conf=conf, skeleton="coco17")

    @property
    def missing(self) -> np.ndarray:
        """(T,) frames with any joint missing."""
        return ~np.isfinite(self.xy).all(axis=(1, 2))

    def describe(self) -> dict:
        """What the summary says about the input."""
        return dict(source=self.source, kind=self.kind, frames=int(self.xy.shape[0]),
                    first_frame_id=int(self.frame_ids[0]), lost_frames=int(self.lost.sum()),
                    person=self.person, people=self.people, fps=self.fps)


def _read_json(path: Path):
    try:
        text = path.read_text()
    except OSError as e:
        raise GenlabError(f"cannot read {path}: {e}") from None
    if not text.strip():
        raise GenlabError(f"{path} is empty")
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise GenlabError(f"{path} is not valid JSON (truncated?): {e.msg} at line {e.lineno} column {e.colno}") from None


def _frame_number(name, fallback: int) -> int:
    if isinstance(name, int):
        return name
    digits = re.findall(r"\d+", str(name))
    return int(digits[-1]) if digits else fallback


def _keypoint_array(flat, where: str) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(flat, dtype=np.float64)
    if a.ndim != 1 or a.size % 3 != 0 or a.size == 0:
        raise GenlabError(f"{where}: keypoints must be a flat list of x, y, score triples, got {a.size} numbers")
    a = a.reshape(-1, 3)
    xy, c = a[:, :2].copy(), a[:, 2].copy()
    bad = (c <= 0) | ~np.isfinite(xy).all(1)
    xy[bad] = np.nan
    c[bad] = 0.0
    return xy, c


def _person_size(xy: np.ndarray, box) -> float:
    if box is not None and len(box) >= 4:
        return float(abs(box[2] * box[3]))
    ok = np.isfinite(xy).all(1)
    if ok.sum() < 2:
        return 0.0
    ext = xy[ok].max(0) - xy[ok].min(0)
    return float(ext[0] * ext[1])


def _assemble(frames: dict[int, list[tuple[object, np.ndarray, np.ndarray, float]]], path: Path,
              skeleton_hint: str | None, fps: float, person: str | None = None) -> KeypointTrack:
    """frames: frame number -> list of (track id or None, xy, conf, size). Keeps `person` (a track
    id) when given, else the longest track. Rows run from the first to the last frame number; frames
    without that person stay as NaN rows flagged lost."""
    if not frames:
        raise GenlabError(f"{path}: no person in any frame")
    J = {xy.shape[0] for people in frames.values() for _, xy, _, _ in people}
    if len(J) != 1:
        raise GenlabError(f"{path}: people have different joint counts {sorted(J)}")
    J = J.pop()
    skel = get_skeleton(skeleton_hint) if skeleton_hint else skeleton_for(J)
    if skel.num_joints != J:
        raise GenlabError(f"{path}: skeleton {skel.name} has {skel.num_joints} joints, file has {J}")
    f0, f1 = min(frames), max(frames)
    T = f1 - f0 + 1
    has_ids = any(tid is not None for people in frames.values() for tid, *_ in people)
    xy = np.full((T, J, 2), np.nan)
    conf = np.zeros((T, J))
    n_people = max(len(p) for p in frames.values())
    chosen = None
    if person is not None and not has_ids:
        raise GenlabError(f"{path}: --person {person} given, but the file has no person/track ids")
    if has_ids:
        score: dict[object, list[float]] = {}
        for people in frames.values():
            for tid, _, _, size in people:
                score.setdefault(tid, []).append(size)
        n_people = len(score)
        if person is not None:
            match = [k for k in score if str(k) == str(person)]
            if not match:
                raise GenlabError(f"{path}: no person with id {person}; ids in the file: "
                                  f"{', '.join(sorted(str(k) for k in score))}")
            main = match[0]
        else:
            main = max(score, key=lambda k: (len(score[k]), float(np.mean(score[k]))))
        chosen = f"{main}" if person is not None else f"{main} (longest of {n_people} tracks)"
        for f, people in frames.items():
            for tid, p, c, _ in people:
                if tid == main:
                    xy[f - f0], conf[f - f0] = p, c
    else:
        # no track ids: start from the largest person, then follow the nearest one frame to frame
        prev = None
        for f in range(f0, f1 + 1):
            people = frames.get(f, [])
            if not people:
                continue
            if prev is None:
                tid, p, c, _ = max(people, key=lambda q: q[3])
            else:
                def dist(q, prev=prev):
                    ok = np.isfinite(q[1]).all(1) & np.isfinite(prev).all(1)
                    return np.linalg.norm(q[1][ok] - prev[ok], axis=1).mean() if ok.any() else np.inf
                tid, p, c, _ = min(people, key=dist)
            xy[f - f0], conf[f - f0] = p, c
            prev = np.where(np.isfinite(p), p, prev) if prev is not None else p
        if n_people > 1:
            chosen = "largest, then followed frame to frame (no ids)"
    lost = ~np.isfinite(xy).any(axis=(1, 2))
    return KeypointTrack(xy, conf, skel.name, fps, str(path), np.arange(f0, f1 + 1), lost, "detector",
                         chosen, n_people)


def load_alphapose(path: str | Path, skeleton: str | None = None, fps: float = 30.0,
                   person: str | None = None) -> KeypointTrack:
    """AlphaPose results JSON: a list of detections with `image_id`, `keypoints`, a box under `box`
    or `bbox`, and (with --pose_track) a track id `idx` that is an int or a list of ints.
    Rows are frame numbers read from `image_id` (its last run of digits, e.g. `42.jpg` -> 42), so a
    frame without detections is kept as a lost row; ids without digits are ranked instead."""
    path = Path(path)
    data = _read_json(path)
    if isinstance(data, dict):  # some exports wrap the list
        data = data.get("results", data.get("annotations"))
    if not isinstance(data, list) or not data:
        raise GenlabError(f"{path}: expected a non-empty list of AlphaPose detections")
    frames: dict[int, list] = {}
    names = sorted({str(d.get("image_id", "")) for d in data if isinstance(d, dict)},
                   key=lambda n: (_frame_number(n, 0), n))
    numbers = [_frame_number(n, -1) for n in names]
    if all(v >= 0 for v in numbers) and len(set(numbers)) == len(numbers):
        order = dict(zip(names, numbers))
    else:  # ids without (distinct) frame numbers: their rank, so no gap can be seen
        order = {n: i for i, n in enumerate(names)}
    for i, det in enumerate(data):
        if not isinstance(det, dict) or "keypoints" not in det:
            raise GenlabError(f"{path}: detection {i} has no 'keypoints' field")
        xy, c = _keypoint_array(det["keypoints"], f"{path} detection {i}")
        box = det.get("box", det.get("bbox"))
        tid = det.get("idx", det.get("track_id"))
        if isinstance(tid, list):
            tid = tid[0] if tid else None
            tid = tid[0] if isinstance(tid, list) and tid else tid
        f = order[str(det.get("image_id", ""))]
        frames.setdefault(f, []).append((tid, xy, c, _person_size(xy, box)))
    return _assemble(frames, path, skeleton, fps, person)


def load_openpose(path: str | Path, skeleton: str | None = None, fps: float = 30.0,
                  person: str | None = None) -> KeypointTrack:
    """OpenPose per-frame JSON: a directory of `*_keypoints.json` (or one such file), each with
    `people[*].pose_keypoints_2d` (BODY_25 or COCO-18); `person_id` is used when it is set. Rows are
    the frame numbers in the file names (a missing file is a lost row), else the files' rank."""
    path = Path(path)
    files = sorted(path.glob("*.json"), key=lambda p: (_frame_number(p.stem.replace("_keypoints", ""), 0), p.name)) \
        if path.is_dir() else [path]
    if not files:
        raise GenlabError(f"{path}: no OpenPose *.json files")
    numbers = [_frame_number(f.stem.replace("_keypoints", ""), -1) for f in files]
    if not (all(v >= 0 for v in numbers) and len(set(numbers)) == len(numbers)):
        numbers = list(range(len(files)))  # no distinct frame numbers in the names: their rank
    frames: dict[int, list] = {}
    for f, file in zip(numbers, files):
        data = _read_json(file)
        if not isinstance(data, dict) or "people" not in data:
            raise GenlabError(f"{file}: expected an OpenPose frame with a 'people' list")
        for k, det in enumerate(data["people"]):
            if "pose_keypoints_2d" not in det:
                raise GenlabError(f"{file}: person {k} has no 'pose_keypoints_2d'")
            xy, c = _keypoint_array(det["pose_keypoints_2d"], f"{file} person {k}")
            pid = det.get("person_id")
            pid = pid[0] if isinstance(pid, list) and pid else pid
            tid = None if pid in (None, -1) else pid
            frames.setdefault(f, []).append((tid, xy, c, _person_size(xy, None)))
    if not frames:
        raise GenlabError(f"{path}: no person in any of the {len(files)} frames")
    track = _assemble(frames, path, skeleton, fps, person)
    lo, hi = min(numbers), max(numbers)
    if track.xy.shape[0] != hi - lo + 1:  # frames before the first / after the last detection
        f0 = int(track.frame_ids[0]) - lo
        xy = np.full((hi - lo + 1,) + track.xy.shape[1:], np.nan)
        conf = np.zeros(xy.shape[:2])
        xy[f0 : f0 + track.xy.shape[0]], conf[f0 : f0 + track.xy.shape[0]] = track.xy, track.conf
        track = replace(track, xy=xy, conf=conf, frame_ids=np.arange(lo, hi + 1), lost=~np.isfinite(xy).any(axis=(1, 2)))
    return track


def load_npy(path: str | Path, skeleton: str | None = None, fps: float = 30.0) -> KeypointTrack:
    """(T, J, 2) or (T, J, 3) with a confidence channel; J picks the layout unless `skeleton` is given.
    With a confidence channel the input counts as a detector's, without it as synthetic / mocap.
    `.npz`: `keypoints` as above, optional `conf` (T, J), `frame_ids` (T,) and `fps`."""
    path = Path(path)
    extra: dict[str, np.ndarray] = {}
    try:
        if path.suffix.lower() == ".npz":
            with np.load(path, allow_pickle=False) as z:
                if "keypoints" not in z:
                    raise GenlabError(f"{path}: an .npz of keypoints needs a 'keypoints' array; it holds {sorted(z)}")
                a = z["keypoints"]
                extra = {k: z[k] for k in ("conf", "frame_ids", "fps") if k in z}
        else:
            a = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise GenlabError(f"cannot read {path} as a .npy/.npz array (empty or truncated?): {e}") from None
    if a.ndim != 3 or a.shape[-1] not in (2, 3):
        raise GenlabError(f"{path}: expected an array (frames, joints, 2 or 3), got shape {a.shape}")
    if a.shape[0] == 0:
        raise GenlabError(f"{path}: the array has no frames")
    skel = get_skeleton(skeleton) if skeleton else skeleton_for(a.shape[1])
    if skel.num_joints != a.shape[1]:
        raise GenlabError(f"{path}: skeleton {skel.name} has {skel.num_joints} joints, array has {a.shape[1]}")
    xy = a[..., :2].astype(np.float64)
    has_conf = a.shape[-1] == 3 or "conf" in extra
    conf = a[..., 2].astype(np.float64) if a.shape[-1] == 3 else np.isfinite(xy).all(-1).astype(np.float64)
    if "conf" in extra:
        if extra["conf"].shape != xy.shape[:2]:
            raise GenlabError(f"{path}: 'conf' must have shape {xy.shape[:2]}, got {extra['conf'].shape}")
        conf = extra["conf"].astype(np.float64)
    conf = np.where(np.isfinite(xy).all(-1), conf, 0.0)
    ids = extra.get("frame_ids")
    if ids is not None and ids.shape != (xy.shape[0],):
        raise GenlabError(f"{path}: 'frame_ids' must have shape ({xy.shape[0]},), got {ids.shape}")
    fps = float(extra["fps"]) if "fps" in extra else fps
    return KeypointTrack(xy, conf, skel.name, fps, str(path), ids, None, "detector" if has_conf else "synthetic")


# --- BVH ---------------------------------------------------------------------------------------

# BVH joint names (common mocap conventions) for each COCO-17 joint, first match wins.
_BVH_NAMES = {
    "nose": ("Head", "head"), "left_eye": ("Head",), "right_eye": ("Head",), "left_ear": ("Head",),
    "right_ear": ("Head",),
    "left_shoulder": ("LeftArm", "LeftUpperArm", "LeftShoulder"), "right_shoulder": ("RightArm", "RightUpperArm", "RightShoulder"),
    "left_elbow": ("LeftForeArm", "LeftLowerArm", "LeftElbow"), "right_elbow": ("RightForeArm", "RightLowerArm", "RightElbow"),
    "left_wrist": ("LeftHand", "LeftWrist"), "right_wrist": ("RightHand", "RightWrist"),
    "left_hip": ("LeftUpLeg", "LeftUpperLeg", "LeftHip", "LeftThigh"), "right_hip": ("RightUpLeg", "RightUpperLeg", "RightHip", "RightThigh"),
    "left_knee": ("LeftLeg", "LeftLowerLeg", "LeftKnee", "LeftShin"), "right_knee": ("RightLeg", "RightLowerLeg", "RightKnee", "RightShin"),
    "left_ankle": ("LeftFoot", "LeftAnkle"), "right_ankle": ("RightFoot", "RightAnkle"),
}


@dataclass
class _BvhJoint:
    name: str
    parent: int
    offset: np.ndarray
    channels: list[str]


def _rot(axis: str, deg: np.ndarray) -> np.ndarray:
    a = np.radians(deg)
    c, s = np.cos(a), np.sin(a)
    R = np.zeros(a.shape + (3, 3))
    i = "XYZ".index(axis)
    j, k = [m for m in range(3) if m != i]
    R[..., i, i] = 1
    R[..., j, j], R[..., k, k] = c, c
    R[..., j, k], R[..., k, j] = -s, s
    return R


def parse_bvh(path: str | Path) -> tuple[list[_BvhJoint], np.ndarray, float]:
    """(joints, world positions (T, J, 3), frame time in seconds)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise GenlabError(f"cannot read {path}: {e}") from None
    if "HIERARCHY" not in text or "MOTION" not in text:
        raise GenlabError(f"{path}: not a BVH file (needs HIERARCHY and MOTION sections)")
    head, motion = text.split("MOTION", 1)
    tokens = head.split()
    joints: list[_BvhJoint] = []
    stack: list[int] = []
    i = 0
    try:
        while i < len(tokens):
            tok = tokens[i]
            if tok in ("ROOT", "JOINT"):
                joints.append(_BvhJoint(tokens[i + 1], stack[-1] if stack else -1, np.zeros(3), []))
                i += 2
            elif tok == "End":
                joints.append(_BvhJoint(joints[stack[-1]].name + "_End", stack[-1], np.zeros(3), []))
                i += 2
            elif tok == "{":
                stack.append(len(joints) - 1)
                i += 1
            elif tok == "}":
                stack.pop()
                i += 1
            elif tok == "OFFSET":
                joints[stack[-1]].offset = np.array([float(v) for v in tokens[i + 1 : i + 4]])
                i += 4
            elif tok == "CHANNELS":
                n = int(tokens[i + 1])
                joints[stack[-1]].channels = tokens[i + 2 : i + 2 + n]
                i += 2 + n
            else:
                i += 1
        lines = motion.strip().splitlines()
        n_frames = int(lines[0].split(":")[1])
        frame_time = float(lines[1].split(":")[1])
        data = np.array([[float(v) for v in ln.split()] for ln in lines[2 : 2 + n_frames] if ln.strip()])
    except (IndexError, ValueError) as e:
        raise GenlabError(f"{path}: malformed BVH ({e})") from None
    n_ch = sum(len(j.channels) for j in joints)
    if data.ndim != 2 or data.shape[0] == 0 or data.shape[1] != n_ch:
        raise GenlabError(f"{path}: expected frames of {n_ch} channel values, got array of shape {data.shape} "
                          f"(file truncated?)")
    if data.shape[0] < n_frames:
        raise GenlabError(f"{path}: header says {n_frames} frames, file holds {data.shape[0]} (truncated)")
    T = data.shape[0]
    pos = np.zeros((T, len(joints), 3))
    rot = np.zeros((T, len(joints), 3, 3))
    col = 0
    for ji, j in enumerate(joints):
        local_t = np.broadcast_to(j.offset, (T, 3)).copy()
        R = np.broadcast_to(np.eye(3), (T, 3, 3)).copy()
        for ch in j.channels:
            v = data[:, col]
            col += 1
            if ch.endswith("position"):
                local_t[:, "XYZ".index(ch[0])] = j.offset["XYZ".index(ch[0])] + v
            else:
                R = R @ _rot(ch[0], v)
        if j.parent < 0:
            pos[:, ji], rot[:, ji] = local_t, R
        else:
            pr = rot[:, j.parent]
            pos[:, ji] = pos[:, j.parent] + np.einsum("tij,tj->ti", pr, local_t)
            rot[:, ji] = pr @ R
    return joints, pos, frame_time


def load_bvh(path: str | Path, fps: float = 30.0, root_relative: bool = True, view: str = "side") -> KeypointTrack:
    """BVH motion capture -> COCO-17 2D keypoints: forward kinematics, resampled to `fps`, then an
    orthographic projection (y up in the file; "side" looks along the hips' left-right axis, "front"
    along the walking direction). `root_relative` removes the root's horizontal travel and follows
    the body's heading (a treadmill view); otherwise the view is fixed along the overall travel."""
    joints, pos, frame_time = parse_bvh(path)
    names = [j.name for j in joints]
    idx = []
    for coco in COCO17.joints:
        cand = [n for n in _BVH_NAMES[coco] if n in names]
        if not cand:
            raise GenlabError(f"{path}: no BVH joint for COCO joint {coco!r} (looked for {_BVH_NAMES[coco]})")
        idx.append(names.index(cand[0]))
    P = pos[:, idx]  # (T, 17, 3)
    root = pos[:, 0]
    # resample in time
    src_fps = 1.0 / frame_time
    t_src = np.arange(P.shape[0]) / src_fps
    t_dst = np.arange(0, t_src[-1] + 1e-9, 1.0 / fps)
    P = np.stack([np.stack([np.interp(t_dst, t_src, P[:, j, c]) for c in range(3)], -1) for j in range(17)], 1)
    root = np.stack([np.interp(t_dst, t_src, root[:, c]) for c in range(3)], -1)
    if root_relative:
        # a treadmill view in the body's own frame: subtract the root and turn every frame so the
        # hips' left-right axis (smoothed) is the viewing direction, whatever path the walker takes
        lr = P[:, COCO17.index("left_hip"), :] - P[:, COCO17.index("right_hip"), :]
        lr = lr[:, [0, 2]]
        k = max(1, int(round(fps / 2)))
        lr = np.stack([np.convolve(np.pad(lr[:, c], k, mode="edge"), np.ones(2 * k + 1) / (2 * k + 1), "valid")
                       for c in range(2)], -1)
        side_dir = lr / np.maximum(np.linalg.norm(lr, axis=-1, keepdims=True), 1e-9)  # (T, 2)
        fwd = np.stack([-side_dir[:, 1], side_dir[:, 0]], -1)
        H = P[..., [0, 2]] - root[:, None, [0, 2]]
        along = (H * fwd[:, None]).sum(-1)
        across = (H * side_dir[:, None]).sum(-1)
    else:
        travel = root[-1, [0, 2]] - root[0, [0, 2]]
        if np.linalg.norm(travel) < 1e-6:
            travel = np.array([1.0, 0.0])
        d = travel / np.linalg.norm(travel)
        along = P[..., 0] * d[0] + P[..., 2] * d[1]
        across = -P[..., 0] * d[1] + P[..., 2] * d[0]
    x = along if view == "side" else across
    xy = np.stack([x, -P[..., 1]], -1)  # image y points down
    return KeypointTrack(xy, np.ones(xy.shape[:2]), "coco17", float(fps), str(path), kind="mocap")


# --- TRC (OpenSim; Sports2D / Pose2Sim write it) ---------------------------------------------------

# marker names for each COCO-17 joint, first match wins (case-insensitive); Sports2D's HALPE-based
# markers have no eyes or ears, so those fall back to Head, then Nose
_TRC_NAMES = {
    "nose": ("Nose", "Head"), "left_eye": ("LEye", "left_eye", "Head", "Nose"),
    "right_eye": ("REye", "right_eye", "Head", "Nose"), "left_ear": ("LEar", "left_ear", "Head", "Nose"),
    "right_ear": ("REar", "right_ear", "Head", "Nose"),
}
for _side, _s in (("left", "L"), ("right", "R")):
    for _part in ("shoulder", "elbow", "wrist", "hip", "knee", "ankle"):
        _TRC_NAMES[f"{_side}_{_part}"] = (f"{_s}{_part.title()}", f"{_side}_{_part}", f"{_side.title()}{_part.title()}")
_TRC_UNITS = {"mm": 1000.0, "cm": 100.0, "m": 1.0, "px": 1.0}


def load_trc(path: str | Path, fps: float | None = None) -> KeypointTrack:
    """OpenSim `.trc` marker file (tab-separated; Sports2D, Pose2Sim): markers mapped to COCO-17 by
    name, X to the right and Y up as OpenSim has it (image y = -Y), in the file's units (mm, cm, m
    or px). Empty cells are missing markers. The rate is the file's DataRate unless `fps` is given."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise GenlabError(f"cannot read {path}: {e}") from None
    if len(lines) < 6 or not lines[0].startswith("PathFileType"):
        raise GenlabError(f"{path}: not a .trc file (the first line must start with 'PathFileType')")
    keys, vals = lines[1].split("\t"), lines[2].split("\t")
    header = dict(zip((k.strip() for k in keys), (v.strip() for v in vals)))
    units = header.get("Units", "m")
    if units not in _TRC_UNITS:
        raise GenlabError(f"{path}: Units must be one of {sorted(_TRC_UNITS)}, got {units!r}")
    try:
        rate = float(header.get("DataRate", "30"))
    except ValueError:
        raise GenlabError(f"{path}: DataRate is not a number: {header.get('DataRate')!r}") from None
    names = [n.strip() for n in lines[3].split("\t")[2::3] if n.strip()]
    lower = {n.lower(): i for i, n in enumerate(names)}
    idx = []
    for coco in COCO17.joints:
        cand = [lower[c.lower()] for c in _TRC_NAMES[coco] if c.lower() in lower]
        if not cand:
            raise GenlabError(f"{path}: no marker for COCO joint {coco!r} (looked for {_TRC_NAMES[coco]}; "
                              f"markers: {', '.join(names)})")
        idx.append(cand[0])
    rows, frames = [], []
    for ln_no, ln in enumerate(lines[5:], start=6):
        if not ln.strip():
            continue
        cells = ln.split("\t")
        try:
            frames.append(int(float(cells[0])))
            v = [float(c) if c.strip() else np.nan for c in cells[2 : 2 + 3 * len(names)]]
        except ValueError as e:
            raise GenlabError(f"{path} line {ln_no}: not a number ({e})") from None
        v += [np.nan] * (3 * len(names) - len(v))  # trailing empty cells
        rows.append(v)
    if not rows:
        raise GenlabError(f"{path}: no frames")
    P = np.asarray(rows).reshape(len(rows), len(names), 3)[:, idx]  # (T, 17, XYZ)
    xy = np.stack([P[..., 0], -P[..., 1]], -1) / _TRC_UNITS[units]  # metres (or px); image y down
    conf = np.isfinite(xy).all(-1).astype(np.float64)
    ids = np.asarray(frames, np.int64)
    ids = ids - 1 if ids.min() >= 1 else ids  # Frame# counts from 1
    if np.any(np.diff(ids) != 1):
        raise GenlabError(f"{path}: Frame# must count up by 1 (a row per frame), got {ids[:10].tolist()}...")
    return KeypointTrack(xy, conf, "coco17", float(fps or rate), str(path), ids, None, "detector")


def write_trc(path: str | Path, xy: np.ndarray, fps: float, skeleton: str = "coco17", units: str = "m") -> Path:
    """(T, J, 2) image coordinates -> `.trc` (X right, Y up, Z = 0), markers named as the
    skeleton's joints; NaN points are written as empty cells. Atomic."""
    from genlab.core.io import atomic_write_text

    if units not in _TRC_UNITS:
        raise GenlabError(f"trc units must be one of {sorted(_TRC_UNITS)}, got {units!r}")
    skel = get_skeleton(skeleton)
    xy = np.asarray(xy, np.float64)
    T, J = xy.shape[:2]
    k = _TRC_UNITS[units]
    out = [f"PathFileType\t4\t(X/Y/Z)\t{Path(path).name}",
           "DataRate\tCameraRate\tNumFrames\tNumMarkers\tUnits\tOrigDataRate\tOrigDataStartFrame\tOrigNumFrames",
           f"{fps:g}\t{fps:g}\t{T}\t{J}\t{units}\t{fps:g}\t1\t{T}",
           "Frame#\tTime\t" + "\t\t\t".join(skel.joints) + "\t\t",
           "\t\t" + "\t".join(f"X{j + 1}\tY{j + 1}\tZ{j + 1}" for j in range(J))]
    for t in range(T):
        cells = [str(t + 1), f"{t / fps:.6f}"]
        for j in range(J):
            x, y = xy[t, j]
            cells += ["", "", ""] if not np.isfinite([x, y]).all() else [f"{x * k:.6f}", f"{-y * k:.6f}", "0"]
        out.append("\t".join(cells))
    atomic_write_text(path, "\n".join(out) + "\n")
    return Path(path)


def write_keypoints(path: str | Path, xy: np.ndarray, conf: np.ndarray | None = None, fps: float = 30.0,
                    skeleton: str = "coco17", frame_ids: np.ndarray | None = None) -> Path:
    """Keypoints to a file `load_keypoints` reads back: `.npy` (T, J, 3) with confidences, `.npz`
    (keypoints, conf, frame_ids, fps) or `.trc` (Y up, in the pixel units of `xy`). Atomic."""
    from genlab.core.io import atomic_path

    path = Path(path)
    xy = np.asarray(xy, np.float64)
    conf = np.isfinite(xy).all(-1).astype(np.float64) if conf is None else np.asarray(conf, np.float64)
    ext = path.suffix.lower()
    if ext == ".trc":
        return write_trc(path, xy, fps, skeleton, units="px")
    if ext not in (".npy", ".npz"):
        raise GenlabError(f"keypoint output must end in .npy, .npz or .trc, got {path.name}")
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            if ext == ".npy":
                np.save(f, np.concatenate([xy, conf[..., None]], -1))
            else:
                ids = np.arange(len(xy)) if frame_ids is None else np.asarray(frame_ids, np.int64)
                np.savez(f, keypoints=xy, conf=conf, frame_ids=ids, fps=np.float64(fps))
    return path


def load_keypoints(path: str | Path, skeleton: str | None = None, fps: float = 30.0,
                   person: str | None = None) -> KeypointTrack:
    """Load any supported input by its extension: .json (AlphaPose list or OpenPose frame), a
    directory of OpenPose JSON, .bvh, .trc, .npy, .npz. `person` picks a track id in
    multi-person files."""
    path = Path(path)
    if not path.exists():
        raise GenlabError(f"input not found: {path}")
    if path.is_dir():
        return load_openpose(path, skeleton, fps, person)
    ext = path.suffix.lower()
    if ext in (".npy", ".npz"):
        return load_npy(path, skeleton, fps)
    if ext == ".bvh":
        return load_bvh(path, fps)
    if ext == ".trc":
        return load_trc(path)
    if ext == ".json":
        data = _read_json(path)
        if isinstance(data, dict) and "people" in data:
            return load_openpose(path, skeleton, fps, person)
        return load_alphapose(path, skeleton, fps, person)
    raise GenlabError(f"{path}: unknown keypoint format {ext!r}; expected .json, .bvh, .trc, .npy, .npz or an "
                      f"OpenPose folder")
