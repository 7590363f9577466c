"""Skeleton layouts for 2D keypoints: COCO-17, Halpe-26 and MediaPipe-33 (plus OpenPose 25/18 for loading).

A `Skeleton` names its joints, lists its bones (for drawing) and its left/right pairs (for
mirroring), and maps every layout onto COCO-17, the common layout the motion system fits.
Coordinates everywhere are image-style: x to the right, y down.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from genlab.errors import GenlabError


@dataclass(frozen=True)
class Skeleton:
    name: str
    joints: tuple[str, ...]
    bones: tuple[tuple[int, int], ...]
    # index in this layout of each COCO-17 joint (same order as COCO17.joints)
    coco17_index: tuple[int, ...]

    @property
    def num_joints(self) -> int:
        return len(self.joints)

    def index(self, joint: str) -> int:
        try:
            return self.joints.index(joint)
        except ValueError:
            raise GenlabError(f"skeleton {self.name}: no joint named {joint!r}; joints: {', '.join(self.joints)}") from None

    @property
    def mirror_index(self) -> tuple[int, ...]:
        """Permutation that swaps every left_* joint with its right_* twin (others map to themselves)."""
        out = []
        for name in self.joints:
            twin = name.replace("left_", "@").replace("right_", "left_").replace("@", "right_")
            out.append(self.joints.index(twin) if twin in self.joints else self.joints.index(name))
        return tuple(out)

    def mirror(self, keypoints: np.ndarray) -> np.ndarray:
        """(..., J, 2) keypoints centred at x = 0 -> their mirror image: left/right swapped, x negated."""
        return np.asarray(keypoints)[..., list(self.mirror_index), :] * np.array([-1.0, 1.0])

    def to_coco17(self, keypoints: np.ndarray) -> np.ndarray:
        """(..., J, C) in this layout -> (..., 17, C) in COCO-17."""
        keypoints = np.asarray(keypoints)
        if keypoints.shape[-2] != self.num_joints:
            raise GenlabError(
                f"skeleton {self.name}: expected {self.num_joints} joints, got {keypoints.shape[-2]}"
            )
        return keypoints[..., list(self.coco17_index), :]


_COCO_JOINTS = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
)
_COCO_BONES = (
    (0, 1), (0, 2), (1, 3), (2, 4), (5, 6), (5, 7), (7, 9), (6, 8), (8, 10),
    (5, 11), (6, 12), (11, 12), (11, 13), (13, 15), (12, 14), (14, 16),
)

COCO17 = Skeleton("coco17", _COCO_JOINTS, _COCO_BONES, tuple(range(17)))

# Halpe-26 (AlphaPose): COCO-17 then head, neck, hip, and the feet.
HALPE26 = Skeleton(
    "halpe26",
    _COCO_JOINTS + (
        "head", "neck", "hip", "left_big_toe", "right_big_toe", "left_small_toe", "right_small_toe",
        "left_heel", "right_heel",
    ),
    _COCO_BONES + ((17, 18), (18, 19), (15, 20), (15, 22), (15, 24), (16, 21), (16, 23), (16, 25)),
    tuple(range(17)),
)

MEDIAPIPE33 = Skeleton(
    "mediapipe33",
    (
        "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye",
        "right_eye_outer", "left_ear", "right_ear", "mouth_left", "mouth_right",
        "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
        "left_pinky", "right_pinky", "left_index", "right_index", "left_thumb", "right_thumb",
        "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
        "left_heel", "right_heel", "left_foot_index", "right_foot_index",
    ),
    (
        (0, 2), (0, 5), (2, 7), (5, 8), (11, 12), (11, 13), (13, 15), (12, 14), (14, 16), (15, 19),
        (16, 20), (11, 23), (12, 24), (23, 24), (23, 25), (25, 27), (24, 26), (26, 28), (27, 29),
        (28, 30), (27, 31), (28, 32),
    ),
    (0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28),
)

# OpenPose output layouts (read by the motion loaders; mapped to COCO-17 on load)
OPENPOSE25 = Skeleton(
    "openpose25",
    (
        "nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow",
        "left_wrist", "mid_hip", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee",
        "left_ankle", "right_eye", "left_eye", "right_ear", "left_ear", "left_big_toe", "left_small_toe",
        "left_heel", "right_big_toe", "right_small_toe", "right_heel",
    ),
    ((0, 1), (1, 2), (2, 3), (3, 4), (1, 5), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (10, 11), (8, 12),
     (12, 13), (13, 14), (0, 15), (0, 16), (15, 17), (16, 18), (14, 19), (14, 21), (11, 22), (11, 24)),
    (0, 16, 15, 18, 17, 5, 2, 6, 3, 7, 4, 12, 9, 13, 10, 14, 11),
)
OPENPOSE18 = Skeleton(
    "openpose18",
    (
        "nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow",
        "left_wrist", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
        "right_eye", "left_eye", "right_ear", "left_ear",
    ),
    ((0, 1), (1, 2), (2, 3), (3, 4), (1, 5), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11), (11, 12),
     (12, 13), (0, 14), (0, 15), (14, 16), (15, 17)),
    (0, 15, 14, 17, 16, 5, 2, 6, 3, 7, 4, 11, 8, 12, 9, 13, 10),
)

LAYOUTS: dict[str, Skeleton] = {s.name: s for s in (COCO17, HALPE26, MEDIAPIPE33, OPENPOSE25, OPENPOSE18)}


def skeleton_for(num_joints: int) -> Skeleton:
    """The layout with this many joints (17, 26 or 33)."""
    for skeleton in LAYOUTS.values():
        if skeleton.num_joints == num_joints:
            return skeleton
    raise GenlabError(
        f"no skeleton layout has {num_joints} joints; expected 17 (COCO), 26 (Halpe), 33 (MediaPipe), "
        "25 or 18 (OpenPose)"
    )


def get_skeleton(name: str) -> Skeleton:
    try:
        return LAYOUTS[name]
    except KeyError:
        raise GenlabError(f"unknown skeleton {name!r}; expected one of {sorted(LAYOUTS)}") from None


# Sum of the bone chain nose-neck-hip-knee-ankle is about 0.88 of standing height (crown to sole).
_CHAIN_TO_HEIGHT = 1.0 / 0.88


def body_height(coco: np.ndarray) -> float:
    """Standing height of a person from COCO-17 keypoints (T, 17, 2), robust to pose.

    Uses the bone chain nose -> mid-shoulder -> mid-hip -> knee -> ankle, which stays about
    constant whether arms are up or legs apart, scaled to crown-to-sole height; 90th percentile over frames.
    """
    p = np.asarray(coco, dtype=np.float64)
    mid_sh = 0.5 * (p[:, 5] + p[:, 6])
    mid_hip = 0.5 * (p[:, 11] + p[:, 12])
    thigh = 0.5 * (np.linalg.norm(p[:, 11] - p[:, 13], axis=-1) + np.linalg.norm(p[:, 12] - p[:, 14], axis=-1))
    shin = 0.5 * (np.linalg.norm(p[:, 13] - p[:, 15], axis=-1) + np.linalg.norm(p[:, 14] - p[:, 16], axis=-1))
    chain = (
        np.linalg.norm(p[:, 0] - mid_sh, axis=-1) + np.linalg.norm(mid_sh - mid_hip, axis=-1) + thigh + shin
    )
    chain = chain[np.isfinite(chain)]
    if chain.size == 0:
        raise GenlabError("cannot measure body height: no frame has all of nose, shoulders, hips, knees, ankles")
    # foreshortening only shortens bones, so take a high percentile rather than the median
    height = float(np.percentile(chain, 90)) * _CHAIN_TO_HEIGHT
    if not height > 0:
        raise GenlabError("cannot measure body height: the keypoints are degenerate (all joints coincide)")
    return height
