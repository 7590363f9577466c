"""Seeded synthetic motion with exact ground truth, built from motion programs.

A motion is a `MotionSpec`: a function that returns one loop iteration (a tuple of `Segment`s on
the COCO-17 skeleton, normalised: body height 1, ground at y = 0, y down) for a drawn `MotionStyle`.
Specs live in the `MOTIONS` registry; `register_motion` adds new ones (the concepts system adds its
exercises that way). A sequence is: idle, a loop of `count` iterations, idle; executed, scaled to
pixels and jittered with Gaussian noise relative to body height. The ground truth (primitive type
per joint and segment, boundaries, loop spans and counts) is read off the generating program.

Helpers for writing specs: `rest_pose(view)`, `hold`, `move` (build a segment from a pose and the
joints that move), `arc_about`, `line_to`, `end_pose`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from genlab.core.pose.skeletons import COCO17
from genlab.errors import GenlabError
from genlab.systems.motion.program import (
    KINDS,
    Circle,
    Line,
    Loop,
    Primitive,
    Program,
    Segment,
    Stationary,
    execute,
)

Pose = dict[str, tuple[float, float]]

_FRONT: Pose = {
    "nose": (0.0, -0.90), "left_eye": (0.025, -0.92), "right_eye": (-0.025, -0.92),
    "left_ear": (0.055, -0.905), "right_ear": (-0.055, -0.905),
    "left_shoulder": (0.11, -0.80), "right_shoulder": (-0.11, -0.80),
    "left_elbow": (0.13, -0.635), "right_elbow": (-0.13, -0.635),
    "left_wrist": (0.15, -0.47), "right_wrist": (-0.15, -0.47),
    "left_hip": (0.07, -0.50), "right_hip": (-0.07, -0.50),
    "left_knee": (0.08, -0.26), "right_knee": (-0.08, -0.26),
    "left_ankle": (0.08, -0.02), "right_ankle": (-0.08, -0.02),
}
# side view, facing +x
_SIDE: Pose = {
    "nose": (0.07, -0.90), "left_eye": (0.06, -0.92), "right_eye": (0.055, -0.92),
    "left_ear": (-0.01, -0.905), "right_ear": (-0.015, -0.905),
    "left_shoulder": (0.0, -0.80), "right_shoulder": (-0.005, -0.80),
    "left_elbow": (0.0, -0.635), "right_elbow": (-0.005, -0.635),
    "left_wrist": (0.0, -0.47), "right_wrist": (-0.005, -0.47),
    "left_hip": (0.0, -0.50), "right_hip": (-0.005, -0.50),
    "left_knee": (0.0, -0.26), "right_knee": (-0.005, -0.26),
    "left_ankle": (0.0, -0.02), "right_ankle": (-0.005, -0.02),
}


def rest_pose(view: str = "front") -> Pose:
    """A standing pose, normalised (body height 1, ankles near y = 0, y down)."""
    return dict(_FRONT if view == "front" else _SIDE)


def arc_about(center, point, dtheta: float, accel: float = 0.0) -> Circle:
    """Circle primitive that starts at `point` and turns by `dtheta` radians about `center`
    (positive dtheta turns from +x towards +y, i.e. clockwise on screen)."""
    dx, dy = point[0] - center[0], point[1] - center[1]
    th0 = math.atan2(dy, dx)
    return Circle((float(center[0]), float(center[1])), float(math.hypot(dx, dy)), th0, th0 + dtheta, accel)


def swing_arms(p: Pose, q: Pose, dtheta: float, accel: float = 0.0) -> dict[str, Circle]:
    """Both arms (wrist and elbow) turn about the shoulders of `p`, starting from pose `q`, in mirror
    image: the left arm by -dtheta, the right by +dtheta (side raises, jumping jacks, arm circles)."""
    return {f"{side}_{j}": arc_about(p[f"{side}_shoulder"], q[f"{side}_{j}"], sign * dtheta, accel)
            for side, sign in (("left", -1), ("right", 1)) for j in ("wrist", "elbow")}


def line_to(start, end, accel: float = 0.0) -> Line:
    return Line((float(start[0]), float(start[1])), (float(end[0]), float(end[1])), accel)


def move(duration: float, pose: Pose, moves: dict[str, Primitive] | None = None) -> Segment:
    """A segment on COCO-17: joints in `moves` follow their primitive, the others hold `pose`."""
    moves = moves or {}
    unknown = set(moves) - set(COCO17.joints)
    if unknown:
        raise GenlabError(f"unknown joints in motion spec: {sorted(unknown)}")
    prims = tuple(moves.get(j, Stationary(tuple(map(float, pose[j])))) for j in COCO17.joints)
    return Segment(float(duration), prims)


def hold(duration: float, pose: Pose) -> Segment:
    return move(duration, pose)


def end_pose(segment: Segment) -> Pose:
    end = segment(np.array([1.0]))[0]
    return {j: (float(end[i, 0]), float(end[i, 1])) for i, j in enumerate(COCO17.joints)}


def start_pose(segment: Segment) -> Pose:
    start = segment(np.array([0.0]))[0]
    return {j: (float(start[i, 0]), float(start[i, 1])) for i, j in enumerate(COCO17.joints)}


@dataclass(frozen=True)
class MotionStyle:
    amplitude: float = 1.0  # scales how far joints travel
    speed: float = 1.0  # durations are divided by it
    accel: float = 0.3  # timing shape of accelerating phases (0 = constant speed)
    jitter: int = 1  # +- frames of per-phase duration jitter
    sharp_phases: bool = False  # squat: accelerate into and out of the hold (identifiable boundaries)
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0), compare=False)

    def frames(self, base: float) -> float:
        j = int(self.rng.integers(-self.jitter, self.jitter + 1)) if self.jitter else 0
        return float(max(4, round(base / self.speed) + j))


@dataclass(frozen=True)
class MotionSpec:
    name: str
    iteration: Callable[[MotionStyle], tuple[Segment, ...]]  # one loop iteration
    description: str = ""


MOTIONS: dict[str, MotionSpec] = {}


def register_motion(spec: MotionSpec, overwrite: bool = False) -> MotionSpec:
    if spec.name in MOTIONS and not overwrite:
        raise GenlabError(f"motion {spec.name!r} is already registered")
    MOTIONS[spec.name] = spec
    return spec


def get_motion(name: str) -> MotionSpec:
    try:
        return MOTIONS[name]
    except KeyError:
        raise GenlabError(f"unknown motion {name!r}; registered: {sorted(MOTIONS)}") from None


# --- built-in motions --------------------------------------------------------------------------

def _jumping_jack(s: MotionStyle) -> tuple[Segment, ...]:
    p = rest_pose("front")
    a = s.amplitude
    up = 2.7 * min(a, 1.1)  # arm sweep, radians
    opened = {
        "left_ankle": (0.08 + 0.20 * a, -0.02), "right_ankle": (-0.08 - 0.20 * a, -0.02),
        "left_knee": (0.08 + 0.13 * a, -0.27), "right_knee": (-0.08 - 0.13 * a, -0.27),
    }
    moves_open = {
        **swing_arms(p, p, up, s.accel),
        **{j: line_to(p[j], q, s.accel) for j, q in opened.items()},
    }
    seg_open = move(s.frames(12), p, moves_open)
    q = end_pose(seg_open)
    moves_close = {
        **swing_arms(p, q, -up, -s.accel),
        **{j: line_to(q[j], p[j], -s.accel) for j in opened},
    }
    return seg_open, move(s.frames(12), q, moves_close)


def _arm_circle(s: MotionStyle) -> tuple[Segment, ...]:
    p = rest_pose("front")
    acc = 0.7 + 0.75 * abs(s.accel)  # each half starts slow and speeds up: the boundary is visible
    half1 = swing_arms(p, p, math.pi, acc)
    seg1 = move(s.frames(11), p, half1)
    q = end_pose(seg1)
    half2 = swing_arms(p, q, math.pi, acc)
    return seg1, move(s.frames(11), q, half2)


def _squat(s: MotionStyle) -> tuple[Segment, ...]:
    p = rest_pose("front")
    a = s.amplitude
    dy = 0.22 * a
    bottom = dict(p)
    for j in ("nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
              "left_hip", "right_hip"):
        bottom[j] = (p[j][0], p[j][1] + dy)
    sh_y = p["left_shoulder"][1] + dy
    bottom["left_wrist"], bottom["right_wrist"] = (0.12, sh_y + 0.02), (-0.12, sh_y + 0.02)
    bottom["left_elbow"], bottom["right_elbow"] = (0.115, sh_y + 0.01), (-0.115, sh_y + 0.01)
    bottom["left_knee"], bottom["right_knee"] = (0.08 + 0.08 * a, -0.26 + 0.09 * a), (-0.08 - 0.08 * a, -0.26 + 0.09 * a)
    moving = [j for j in COCO17.joints if bottom[j] != p[j]]
    # sharp phases: drop into the hold and push out of it, so the phase boundaries are visible
    acc = 0.2 + abs(s.accel) if s.sharp_phases else s.accel
    down = move(s.frames(14), p, {j: line_to(p[j], bottom[j], acc) for j in moving})
    pause = hold(s.frames(9), bottom)
    up = move(s.frames(14), bottom, {j: line_to(bottom[j], p[j], -acc) for j in moving})
    return down, pause, up


def _walk(s: MotionStyle) -> tuple[Segment, ...]:
    """Walking in place (treadmill), side view: two steps per iteration."""
    p = rest_pose("side")
    a = s.amplitude
    st = 0.17 * a  # half stride
    kn = 0.11 * a
    sw = 0.7 * a  # arm swing, radians either side of vertical
    back = dict(p)
    for side, sign in (("left", -1.0), ("right", 1.0)):  # left foot starts behind
        back[f"{side}_ankle"] = (p[f"{side}_ankle"][0] + sign * st, -0.02)
        back[f"{side}_knee"] = (p[f"{side}_knee"][0] + sign * kn, -0.26)

    def step(pose: Pose, lead: str, trail: str, frames: float) -> Segment:
        # the leading (back) foot swings forward, the trailing foot slides back; arms swing opposite
        moves = {
            f"{lead}_ankle": line_to(pose[f"{lead}_ankle"], (p[f"{lead}_ankle"][0] + st, -0.02), s.accel),
            f"{trail}_ankle": line_to(pose[f"{trail}_ankle"], (p[f"{trail}_ankle"][0] - st, -0.02), 0.0),
            f"{lead}_knee": line_to(pose[f"{lead}_knee"], (p[f"{lead}_knee"][0] + kn, -0.26), s.accel),
            f"{trail}_knee": line_to(pose[f"{trail}_knee"], (p[f"{trail}_knee"][0] - kn, -0.26), 0.0),
        }
        # wrists swing on arcs about the shoulder: the lead arm goes back (angle grows past pi/2), the
        # trail arm forward; elbows (bent, short radius) travel on the chord, a line
        moves[f"{lead}_wrist"] = arc_about(p[f"{lead}_shoulder"], pose[f"{lead}_wrist"], 2 * sw, s.accel)
        moves[f"{trail}_wrist"] = arc_about(p[f"{trail}_shoulder"], pose[f"{trail}_wrist"], -2 * sw, s.accel)
        moves[f"{lead}_elbow"] = line_to(pose[f"{lead}_elbow"], pose[f"{trail}_elbow"], s.accel)
        moves[f"{trail}_elbow"] = line_to(pose[f"{trail}_elbow"], pose[f"{lead}_elbow"], s.accel)
        return move(frames, pose, moves)

    start = dict(back)
    for side, sign in (("left", -1.0), ("right", 1.0)):
        for j in ("wrist", "elbow"):
            sh = p[f"{side}_shoulder"]
            r = math.dist(sh, p[f"{side}_{j}"])
            th = math.pi / 2 + sign * sw  # left arm forward (angle < pi/2) while left foot is back
            start[f"{side}_{j}"] = (sh[0] + r * math.cos(th), sh[1] + r * math.sin(th))
    s1 = step(start, "left", "right", s.frames(15))
    s2 = step(end_pose(s1), "right", "left", s.frames(15))
    return s1, s2


for _spec in (
    MotionSpec("jumping_jack", _jumping_jack, "arms sweep overhead on circles, feet slide apart on lines"),
    MotionSpec("arm_circle", _arm_circle, "both straight arms turn full circles, in two accelerating halves"),
    MotionSpec("squat", _squat, "down, hold, up: trunk and head on vertical lines"),
    MotionSpec("walk", _walk, "walking in place, side view, two steps per iteration"),
):
    register_motion(_spec)


# --- sequences ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class SynthConfig:
    motions: tuple[str, ...] = ("jumping_jack", "arm_circle", "squat", "walk")
    count: tuple[int, int] = (3, 8)  # loop iterations, inclusive
    idle: tuple[int, int] = (8, 20)  # frames of idle before and after (inclusive)
    noise: float = 0.01  # Gaussian jitter, fraction of body height
    amplitude: tuple[float, float] = (0.85, 1.15)
    speed: tuple[float, float] = (0.85, 1.2)
    accel: tuple[float, float] = (-0.4, 0.4)
    height_px: tuple[float, float] = (200.0, 400.0)
    fps: float = 30.0
    sharp_phases: bool = True  # see MotionStyle.sharp_phases


@dataclass(frozen=True)
class SyntheticSequence:
    keypoints: np.ndarray  # (T, 17, 2) pixels, with noise
    clean: np.ndarray  # (T, 17, 2) pixels, without noise
    program: Program  # the generating program (normalised coordinates; scale/origin map to pixels)
    motion: str
    seed: int

    @property
    def kinds(self) -> np.ndarray:
        """(S, J) true primitive type per segment and joint (indices into KINDS)."""
        return np.array([[KINDS.index(k) for k in s.kinds] for s in self.program.segments()])

    @property
    def boundaries(self) -> np.ndarray:
        """(S+1,) true segment boundaries in frames (0 and T included)."""
        return self.program.boundaries()

    @property
    def loop_spans(self) -> list[tuple[float, float, int]]:
        return self.program.loop_spans()

    @property
    def loop_counts(self) -> list[int]:
        return [c for _, _, c in self.loop_spans]


def make_sequence(motion: str, seed: int, cfg: SynthConfig | None = None, count: int | None = None) -> SyntheticSequence:
    """One seeded sequence: idle, `count` iterations of `motion`, idle."""
    cfg = cfg or SynthConfig()
    spec = get_motion(motion)
    rng = np.random.default_rng(seed)
    style = MotionStyle(
        amplitude=float(rng.uniform(*cfg.amplitude)), speed=float(rng.uniform(*cfg.speed)),
        accel=float(rng.uniform(*cfg.accel)), rng=rng, sharp_phases=cfg.sharp_phases,
    )
    n = int(rng.integers(cfg.count[0], cfg.count[1] + 1)) if count is None else int(count)
    if n < 1:
        raise GenlabError(f"loop count must be >= 1, got {n}")
    its = tuple(spec.iteration(style) for _ in range(n))
    first, last = its[0][0], its[-1][-1]
    statements = (
        hold(int(rng.integers(cfg.idle[0], cfg.idle[1] + 1)), start_pose(first)),
        Loop(its),
        hold(int(rng.integers(cfg.idle[0], cfg.idle[1] + 1)), end_pose(last)),
    )
    height = float(rng.uniform(*cfg.height_px))
    origin = (float(rng.uniform(1.0, 2.0) * height), float(rng.uniform(1.0, 1.2) * height))
    prog = Program(statements, "coco17", cfg.fps, height, origin)
    clean = execute(prog)
    noisy = clean + cfg.noise * rng.standard_normal(clean.shape)
    gt = replace(prog, meta={"motion": motion, "seed": seed})
    return SyntheticSequence(prog.to_pixels(noisy), prog.to_pixels(clean), gt, motion, seed)


def synthetic_set(n: int, seed: int = 0, cfg: SynthConfig | None = None) -> list[SyntheticSequence]:
    """n sequences cycling through cfg.motions, sequence i seeded with seed * 100003 + i."""
    cfg = cfg or SynthConfig()
    return [make_sequence(cfg.motions[i % len(cfg.motions)], seed * 100003 + i, cfg) for i in range(n)]
