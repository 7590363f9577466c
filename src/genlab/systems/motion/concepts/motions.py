"""The concept vocabulary as motion programs, registered in the motion system's generator.

The motion system ships jumping_jack, arm_circle and squat (genlab.systems.motion.synthetic);
this module adds four exercises with its helpers (`move`, `line_to`, `arc_about`, `hold`) and
`register_motion`, so that every concept is a loop body of primitives on COCO-17. Every iteration
starts and ends in the common rest pose, so instances chain through idle.

Confusable pairs: jumping_jack / side_raise (both sweep the arms up), squat / lunge / toe_touch
(all lower the trunk), high_knees / lunge (knees).
"""

from __future__ import annotations

import numpy as np

from genlab.systems.motion.program import Segment
from genlab.systems.motion.synthetic import (
    MOTIONS,
    MotionSpec,
    MotionStyle,
    Pose,
    end_pose,
    hold,
    line_to,
    move,
    register_motion,
    rest_pose,
    swing_arms,
)

UPPER = ("nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
         "left_elbow", "right_elbow", "left_wrist", "right_wrist")


def _lines(frames: float, a: Pose, b: Pose, accel: float) -> Segment:
    moving = [j for j in a if a[j] != b[j]]
    return move(frames, a, {j: line_to(a[j], b[j], accel) for j in moving})


def _side_raise(s: MotionStyle) -> tuple[Segment, ...]:
    """Straight arms rise sideways to shoulder height and come down; legs still."""
    p = rest_pose("front")
    up = 1.45 * s.amplitude
    opening = swing_arms(p, p, up, s.accel)
    seg_up = move(s.frames(14), p, opening)
    q = end_pose(seg_up)
    closing = swing_arms(p, q, -up, -s.accel)
    return seg_up, hold(s.frames(5), q), move(s.frames(14), q, closing)


def _lunge(s: MotionStyle) -> tuple[Segment, ...]:
    """Front view: hands go to the hips, the body drops, the left (front) knee comes up and out,
    the right (back) knee drops towards the floor; hold; back up."""
    p = rest_pose("front")
    a = s.amplitude
    dy = 0.17 * a
    low = dict(p)
    for j in UPPER + ("left_hip", "right_hip"):
        low[j] = (p[j][0], p[j][1] + dy)
    hip_y = p["left_hip"][1] + dy
    low["left_wrist"], low["right_wrist"] = (0.12, hip_y - 0.03), (-0.12, hip_y - 0.03)
    low["left_elbow"], low["right_elbow"] = (0.22, hip_y - 0.17), (-0.22, hip_y - 0.17)
    low["left_knee"] = (0.13 + 0.04 * a, p["left_knee"][1] + 0.02 * a)
    low["right_knee"] = (-0.07, p["right_knee"][1] + 0.19 * a)
    low["right_ankle"] = (-0.06, p["right_ankle"][1] - 0.03 * a)
    return (_lines(s.frames(16), p, low, s.accel), hold(s.frames(8), low),
            _lines(s.frames(16), low, p, -s.accel))


def _high_knees(s: MotionStyle) -> tuple[Segment, ...]:
    """Left knee up and down, then the right; the opposite hand comes up with each knee."""
    p = rest_pose("front")
    a = s.amplitude
    segs = []
    for side, other in (("left", "right"), ("right", "left")):
        top = dict(p)
        top[f"{side}_knee"] = (p[f"{side}_knee"][0], p[f"{side}_knee"][1] - 0.2 * a)
        top[f"{side}_ankle"] = (p[f"{side}_ankle"][0], p[f"{side}_ankle"][1] - 0.18 * a)
        top[f"{other}_wrist"] = (p[f"{other}_wrist"][0] * 0.6, p[f"{other}_wrist"][1] - 0.2 * a)
        top[f"{other}_elbow"] = (p[f"{other}_elbow"][0], p[f"{other}_elbow"][1] - 0.06 * a)
        segs += [_lines(s.frames(8), p, top, s.accel), _lines(s.frames(8), top, p, -s.accel)]
    return tuple(segs)


def _toe_touch(s: MotionStyle) -> tuple[Segment, ...]:
    """Bend forward (front view: head and shoulders drop, the trunk foreshortens) with the hands
    reaching down to the feet; hold; straighten."""
    p = rest_pose("front")
    a = s.amplitude
    down = dict(p)
    for j in UPPER[:7]:
        down[j] = (p[j][0], p[j][1] + 0.3 * a)
    down["left_wrist"], down["right_wrist"] = (0.09, p["left_knee"][1] + 0.2 * a), (-0.09, p["right_knee"][1] + 0.2 * a)
    down["left_elbow"], down["right_elbow"] = (0.11, -0.38 + 0.12 * a), (-0.11, -0.38 + 0.12 * a)
    down["left_knee"], down["right_knee"] = (0.08, -0.25), (-0.08, -0.25)
    return (_lines(s.frames(16), p, down, s.accel), hold(s.frames(8), down),
            _lines(s.frames(16), down, p, -s.accel))


NEW_MOTIONS = (
    MotionSpec("side_raise", _side_raise, "straight arms rise sideways to shoulder height (arcs)"),
    MotionSpec("lunge", _lunge, "hands to hips, body drops, front knee out, back knee down (lines)"),
    MotionSpec("high_knees", _high_knees, "left knee up and down, then right; opposite hand up (lines)"),
    MotionSpec("toe_touch", _toe_touch, "bend forward, hands to the feet, hold, straighten (lines)"),
)
VOCABULARY = ("jumping_jack", "side_raise", "squat", "lunge", "high_knees", "toe_touch", "arm_circle")


def register_concept_motions() -> None:
    """Add the concept exercises to the motion generator's registry (idempotent)."""
    for spec in NEW_MOTIONS:
        if spec.name not in MOTIONS:
            register_motion(spec)


def iteration(name: str, style: MotionStyle) -> tuple[Segment, ...]:
    register_concept_motions()
    return MOTIONS[name].iteration(style)


def rest_keypoints() -> np.ndarray:
    """(17, 2) rest pose, normalised (body height 1, ground at y = 0, y down)."""
    from genlab.core.pose.skeletons import COCO17

    p = rest_pose("front")
    return np.array([p[j] for j in COCO17.joints])
