"""Keypoint loaders: AlphaPose JSON, OpenPose per-frame JSON, BVH motion capture, .npy arrays.

Every loader returns a `KeypointTrack` in its native layout with NaN where a joint or frame is
missing; `KeypointTrack.coco17()` maps it to COCO-17, the layout the fit uses. Multi-person inputs
keep one track: the main one (the person present in most frames, ties broken by size).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genlab.core.pose.skeletons import COCO17, get_skeleton, skeleton_for
from genlab.errors import GenlabError


@dataclass(frozen=True)
class KeypointTrack:
    xy: np.ndarray  # (T, J, 2) pixels (or projected units), NaN = missing
    conf: np.ndarray  # (T, J) confidence in [0, 1]; 0 where missing
    skeleton: str
    fps: float = 30.0
    source: str = ""

    def coco17(self) -> KeypointTrack:
        skel = get_skeleton(self.skeleton)
        xy = skel.to_coco17(self.xy)
        conf = skel.to_coco17(self.conf[..., None])[..., 0]
        return KeypointTrack(xy, conf, "coco17", self.fps, self.source)

    @property
    def missing(self) -> np.ndarray:
        return ~np.isfinite(self.xy).all(axis=(1, 2))


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
              skeleton_hint: str | None, fps: float) -> KeypointTrack:
    """frames: frame number -> list of (track id or None, xy, conf, size). Picks the main track."""
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
    if has_ids:
        score: dict[object, list[float]] = {}
        for people in frames.values():
            for tid, _, _, size in people:
                score.setdefault(tid, []).append(size)
        main = max(score, key=lambda k: (len(score[k]), float(np.mean(score[k]))))
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
    return KeypointTrack(xy, conf, skel.name, fps, str(path))


def load_alphapose(path: str | Path, skeleton: str | None = None, fps: float = 30.0) -> KeypointTrack:
    """AlphaPose results JSON: a list of detections with `image_id`, `keypoints`, a box under `box`
    or `bbox`, and (with --pose_track) a track id `idx` that is an int or a list of ints."""
    path = Path(path)
    data = _read_json(path)
    if isinstance(data, dict):  # some exports wrap the list
        data = data.get("results", data.get("annotations"))
    if not isinstance(data, list) or not data:
        raise GenlabError(f"{path}: expected a non-empty list of AlphaPose detections")
    frames: dict[int, list] = {}
    names = sorted({str(d.get("image_id", "")) for d in data if isinstance(d, dict)},
                   key=lambda n: (_frame_number(n, 0), n))
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
    return _assemble(frames, path, skeleton, fps)


def load_openpose(path: str | Path, skeleton: str | None = None, fps: float = 30.0) -> KeypointTrack:
    """OpenPose per-frame JSON: a directory of `*_keypoints.json` (or one such file), each with
    `people[*].pose_keypoints_2d` (BODY_25 or COCO-18); `person_id` is used when it is set."""
    path = Path(path)
    files = sorted(path.glob("*.json"), key=lambda p: (_frame_number(p.stem.replace("_keypoints", ""), 0), p.name)) \
        if path.is_dir() else [path]
    if not files:
        raise GenlabError(f"{path}: no OpenPose *.json files")
    frames: dict[int, list] = {}
    for f, file in enumerate(files):
        data = _read_json(file)
        if not isinstance(data, dict) or "people" not in data:
            raise GenlabError(f"{file}: expected an OpenPose frame with a 'people' list")
        for k, person in enumerate(data["people"]):
            if "pose_keypoints_2d" not in person:
                raise GenlabError(f"{file}: person {k} has no 'pose_keypoints_2d'")
            xy, c = _keypoint_array(person["pose_keypoints_2d"], f"{file} person {k}")
            pid = person.get("person_id")
            pid = pid[0] if isinstance(pid, list) and pid else pid
            tid = None if pid in (None, -1) else pid
            frames.setdefault(f, []).append((tid, xy, c, _person_size(xy, None)))
    if not frames:
        # frames without people still count: build an all-missing track of the right length
        raise GenlabError(f"{path}: no person in any of the {len(files)} frames")
    track = _assemble(frames, path, skeleton, fps)
    T = len(files)
    if track.xy.shape[0] != T:  # frames before the first / after the last detection
        f0 = min(frames)
        xy = np.full((T,) + track.xy.shape[1:], np.nan)
        conf = np.zeros((T, track.xy.shape[1]))
        xy[f0 : f0 + track.xy.shape[0]], conf[f0 : f0 + track.xy.shape[0]] = track.xy, track.conf
        track = KeypointTrack(xy, conf, track.skeleton, fps, str(path))
    return track


def load_npy(path: str | Path, skeleton: str | None = None, fps: float = 30.0) -> KeypointTrack:
    """(T, J, 2) or (T, J, 3) with a confidence channel; J picks the layout unless `skeleton` is given."""
    path = Path(path)
    try:
        a = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise GenlabError(f"cannot read {path} as a .npy array (empty or truncated?): {e}") from None
    if a.ndim != 3 or a.shape[-1] not in (2, 3):
        raise GenlabError(f"{path}: expected an array (frames, joints, 2 or 3), got shape {a.shape}")
    if a.shape[0] == 0:
        raise GenlabError(f"{path}: the array has no frames")
    skel = get_skeleton(skeleton) if skeleton else skeleton_for(a.shape[1])
    if skel.num_joints != a.shape[1]:
        raise GenlabError(f"{path}: skeleton {skel.name} has {skel.num_joints} joints, array has {a.shape[1]}")
    xy = a[..., :2].astype(np.float64)
    conf = a[..., 2].astype(np.float64) if a.shape[-1] == 3 else np.isfinite(xy).all(-1).astype(np.float64)
    return KeypointTrack(xy, conf, skel.name, fps, str(path))


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
    return KeypointTrack(xy, np.ones(xy.shape[:2]), "coco17", float(fps), str(path))


def load_keypoints(path: str | Path, skeleton: str | None = None, fps: float = 30.0) -> KeypointTrack:
    """Load any supported input by its extension: .json (AlphaPose list or OpenPose frame), a
    directory of OpenPose JSON, .bvh, .npy."""
    path = Path(path)
    if not path.exists():
        raise GenlabError(f"input not found: {path}")
    if path.is_dir():
        return load_openpose(path, skeleton, fps)
    ext = path.suffix.lower()
    if ext == ".npy":
        return load_npy(path, skeleton, fps)
    if ext == ".bvh":
        return load_bvh(path, fps)
    if ext == ".json":
        data = _read_json(path)
        if isinstance(data, dict) and "people" in data:
            return load_openpose(path, skeleton, fps)
        return load_alphapose(path, skeleton, fps)
    raise GenlabError(f"{path}: unknown keypoint format {ext!r}; expected .json, .bvh, .npy or an OpenPose folder")
