"""The procedural toy world: rooms with benches and steps, and stick figures whose pose the scene fixes.

A *clip* is one fixed room (wall, floor, one bench and/or one step of random height) and one
person with an identity (limb colours and proportions). Every frame puts the person somewhere in
the room, and the scene decides the pose: over a bench the person sits (hips on the seat, feet on
the floor), over a step they stand on its top, elsewhere they walk on the floor. The renderer
returns the image, the person's mask and 11 keypoints, so every metric has a ground truth.

Coordinates are normalised (x right, y down, both in [0, 1] of the image side) until the
rasteriser turns them into pixels, so one clip renders at any resolution.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

KEYPOINTS = (
    "head", "neck", "hip", "l_knee", "l_foot", "r_knee", "r_foot", "l_elbow", "l_hand", "r_elbow", "r_hand",
)
K = len(KEYPOINTS)
KP = {name: i for i, name in enumerate(KEYPOINTS)}
# Limbs as (joint a, joint b, identity part); the far (left) side is drawn first, the near side last.
LIMBS = (
    ("hip", "l_knee", "l_leg"), ("l_knee", "l_foot", "l_leg"),
    ("neck", "l_elbow", "l_arm"), ("l_elbow", "l_hand", "l_arm"),
    ("neck", "hip", "torso"),
    ("hip", "r_knee", "r_leg"), ("r_knee", "r_foot", "r_leg"),
    ("neck", "r_elbow", "r_arm"), ("r_elbow", "r_hand", "r_arm"),
)
PARTS = ("torso", "l_arm", "r_arm", "l_leg", "r_leg", "head")
STATES = ("walk", "sit", "step")
GREY = 0.5


@dataclass(frozen=True)
class Identity:
    """Who the person is: colours per body part (RGB in [0, 1]) and proportions (normalised units)."""

    colours: tuple[tuple[float, float, float], ...]  # one per PARTS entry
    thigh: float
    shin: float
    torso: float
    upper_arm: float
    forearm: float
    head_r: float
    width: float  # limb half-width

    @property
    def leg(self) -> float:
        return self.thigh + self.shin

    @property
    def height(self) -> float:
        """Standing height, feet to top of head."""
        return self.leg + self.torso + 2.1 * self.head_r

    def colour(self, part: str) -> np.ndarray:
        return np.asarray(self.colours[PARTS.index(part)], dtype=np.float32)


@dataclass(frozen=True)
class Room:
    """A static scene. Heights are y coordinates of top surfaces (y grows downwards)."""

    wall: tuple[float, float, float]
    floor_colour: tuple[float, float, float]
    floor_y: float
    corner_x: float  # x of the vertical wall corner line
    window: tuple[float, float, float, float]  # x0, y0, x1, y1 of a window on the wall
    bench: tuple[float, float, float] | None  # x0, x1, seat top y
    step: tuple[float, float, float] | None  # x0, x1, top y
    bench_colour: tuple[float, float, float]
    step_colour: tuple[float, float, float]

    def support_y(self, x: float) -> float:
        """Height of the surface a foot at x can stand on: a step's top over the step, else the floor."""
        if self.step is not None and self.step[0] <= x <= self.step[1]:
            return self.step[2]
        return self.floor_y


@dataclass(frozen=True)
class Frame:
    image: np.ndarray  # (H, W, 3) float32 in [0, 1]
    mask: np.ndarray  # (H, W) float32 in [0, 1], person coverage
    keypoints: np.ndarray  # (K, 2) float32, pixel coordinates (x, y)
    state: str
    hip_x: float  # normalised


@dataclass(frozen=True)
class Clip:
    room: Room
    identity: Identity
    facing: int  # +1 right, -1 left
    frames: tuple[Frame, ...]
    size: int


def _bright(rng: np.random.Generator, lo: float = 0.15, hi: float = 0.95) -> tuple[float, float, float]:
    return tuple(float(v) for v in rng.uniform(lo, hi, size=3))


def sample_identity(rng: np.random.Generator) -> Identity:
    """Saturated, well-separated part colours so colour identifies parts and people."""
    hues = (rng.uniform() + np.arange(len(PARTS)) / len(PARTS) + rng.uniform(-0.05, 0.05, len(PARTS))) % 1.0
    rng.shuffle(hues)
    colours = []
    for h in hues:
        s, v = rng.uniform(0.65, 1.0), rng.uniform(0.55, 0.95)
        colours.append(_hsv(h, s, v))
    scale = rng.uniform(0.9, 1.1)
    return Identity(
        colours=tuple(colours),
        thigh=0.13 * scale * rng.uniform(0.92, 1.08),
        shin=0.13 * scale * rng.uniform(0.92, 1.08),
        torso=0.17 * scale * rng.uniform(0.9, 1.1),
        upper_arm=0.09 * scale * rng.uniform(0.9, 1.1),
        forearm=0.09 * scale * rng.uniform(0.9, 1.1),
        head_r=0.045 * scale * rng.uniform(0.9, 1.1),
        width=0.018 * rng.uniform(0.9, 1.15),
    )


def _hsv(h: float, s: float, v: float) -> tuple[float, float, float]:
    i = int(h * 6) % 6
    f = h * 6 - math.floor(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    r, g, b = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]
    return (float(r), float(g), float(b))


def sample_room(rng: np.random.Generator) -> Room:
    """One or two objects (bench, step) in separate thirds of the room, random heights."""
    floor_y = float(rng.uniform(0.86, 0.93))
    kinds = [("bench",), ("step",), ("bench", "step")][int(rng.integers(3))]
    slots = [(0.02, 0.42), (0.58, 0.98)]
    if rng.uniform() < 0.5:
        slots = slots[::-1]
    bench = step = None
    for kind, (lo, hi) in zip(kinds, slots):
        width = float(rng.uniform(0.34, 0.40)) if kind == "bench" else float(rng.uniform(0.30, 0.38))
        x0 = float(rng.uniform(lo, hi - width))
        if kind == "bench":
            bench = (x0, x0 + width, floor_y - float(rng.uniform(0.10, 0.17)))
        else:
            step = (x0, x0 + width, floor_y - float(rng.uniform(0.05, 0.13)))
    wall = _bright(rng, 0.35, 0.85)
    floor_colour = tuple(float(np.clip(c * rng.uniform(0.45, 0.7), 0, 1)) for c in _bright(rng, 0.3, 0.9))
    wx0 = float(rng.uniform(0.05, 0.7))
    wy0 = float(rng.uniform(0.05, 0.2))
    return Room(
        wall=wall, floor_colour=floor_colour, floor_y=floor_y, corner_x=float(rng.uniform(0.1, 0.9)),
        window=(wx0, wy0, wx0 + float(rng.uniform(0.12, 0.25)), wy0 + float(rng.uniform(0.1, 0.2))),
        bench=bench, step=step,
        bench_colour=tuple(float(c) for c in rng.uniform(0.05, 0.45, 3)),
        step_colour=tuple(float(c) for c in rng.uniform(0.2, 0.6, 3)),
    )


def _ik(a: np.ndarray, b: np.ndarray, l1: float, l2: float, forward: int) -> tuple[np.ndarray, np.ndarray]:
    """Two-link chain from a towards b: returns (middle joint, end). The middle joint bends towards
    `forward` (+1 = +x); the end is moved onto the reachable disc if b is too far."""
    d_vec = b - a
    d = float(np.linalg.norm(d_vec))
    d_c = min(max(d, abs(l1 - l2) + 1e-4), l1 + l2 - 1e-4)
    u = d_vec / max(d, 1e-8)
    end = a + u * d_c
    cos_a = (l1 * l1 + d_c * d_c - l2 * l2) / (2 * l1 * d_c)
    ang = math.acos(min(1.0, max(-1.0, cos_a)))
    cands = []
    for sgn in (1, -1):
        c, s = math.cos(sgn * ang), math.sin(sgn * ang)
        rot = np.array([u[0] * c - u[1] * s, u[0] * s + u[1] * c])
        cands.append(a + l1 * rot)
    mid = max(cands, key=lambda m: forward * (m[0] - (a[0] + end[0]) / 2))
    return mid, end


def pose(identity: Identity, room: Room, state: str, hip_x: float, facing: int, phase: float) -> np.ndarray:
    """Keypoints (K, 2), normalised, for a person whose hips are at hip_x in the given state."""
    idn, f = identity, facing
    kp = np.zeros((K, 2), dtype=np.float64)
    if state == "sit":
        assert room.bench is not None
        hip = np.array([hip_x, room.bench[2] - idn.width])
        feet_x = hip_x + f * 0.75 * idn.thigh
        feet = [np.array([feet_x - f * 0.02, room.floor_y]), np.array([feet_x + f * 0.02, room.floor_y])]
        lean = 0.05
    else:
        ground = room.support_y(hip_x) if state == "step" else room.floor_y
        stride = (0.35 if state == "walk" else 0.08) * idn.leg * math.sin(2 * math.pi * phase)
        feet = [np.array([hip_x + stride, ground]), np.array([hip_x - stride, ground])]
        drop = math.sqrt(max(idn.leg**2 - stride**2, 1e-6)) * 0.985
        hip = np.array([hip_x, ground - drop])
        lean = 0.08 if state == "walk" else 0.0
    neck = hip + np.array([f * lean * idn.torso, -math.sqrt(1 - lean**2) * idn.torso])
    head = neck + np.array([f * 0.2 * idn.head_r, -1.1 * idn.head_r])
    kp[KP["hip"]], kp[KP["neck"]], kp[KP["head"]] = hip, neck, head
    for side, foot in zip(("l", "r"), feet):
        knee, end = _ik(hip, foot, idn.thigh, idn.shin, f)
        kp[KP[f"{side}_knee"]], kp[KP[f"{side}_foot"]] = knee, end
    swing = 0.5 * math.sin(2 * math.pi * phase) if state == "walk" else 0.0
    for side, sgn in (("l", 1.0), ("r", -1.0)):
        if state == "sit":  # hands rest on the thighs
            target = hip + np.array([f * 0.9 * idn.thigh, -0.3 * idn.width])
            elbow, hand = _ik(neck, target, idn.upper_arm, idn.forearm, -f)
        else:
            a = sgn * swing  # upper-arm angle from vertical, positive = forwards
            b = a + 0.4  # the forearm bends forwards at the elbow
            elbow = neck + idn.upper_arm * np.array([f * math.sin(a), math.cos(a)])
            hand = elbow + idn.forearm * np.array([f * math.sin(b), math.cos(b)])
        kp[KP[f"{side}_elbow"]], kp[KP[f"{side}_hand"]] = elbow, hand
    return kp.astype(np.float32)


def pixel_grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates (xs, ys) of a size x size image, normalised to [0, 1]."""
    c = (np.arange(size, dtype=np.float32) + 0.5) / size
    return np.meshgrid(c, c, indexing="xy")  # xs, ys


def segment_coverage(xs, ys, p0, p1, radius, size) -> np.ndarray:
    """Anti-aliased coverage of a capsule (segment with round ends) in [0, 1]."""
    d = p1 - p0
    t = np.clip(((xs - p0[0]) * d[0] + (ys - p0[1]) * d[1]) / max(float(d @ d), 1e-12), 0.0, 1.0)
    dist = np.hypot(xs - (p0[0] + t * d[0]), ys - (p0[1] + t * d[1]))
    return np.clip((radius - dist) * size + 0.5, 0.0, 1.0)


def _rect(xs, ys, x0, y0, x1, y1, size) -> np.ndarray:
    cx = np.clip(np.minimum(xs - x0, x1 - xs) * size + 0.5, 0, 1)
    cy = np.clip(np.minimum(ys - y0, y1 - ys) * size + 0.5, 0, 1)
    return cx * cy


def render_room(room: Room, size: int) -> np.ndarray:
    xs, ys = pixel_grid(size)
    img = np.empty((size, size, 3), dtype=np.float32)
    img[:] = np.asarray(room.wall, dtype=np.float32)
    shade = np.where(xs > room.corner_x, 0.85, 1.0)[..., None].astype(np.float32)
    img *= shade
    win = _rect(xs, ys, *room.window, size)[..., None]
    img = img * (1 - win) + win * np.array([0.75, 0.88, 1.0], dtype=np.float32)
    floor = np.clip((ys - room.floor_y) * size + 0.5, 0, 1)[..., None]
    img = img * (1 - floor) + floor * np.asarray(room.floor_colour, dtype=np.float32)
    if room.step is not None:
        x0, x1, top = room.step
        cov = _rect(xs, ys, x0, top, x1, room.floor_y + 0.01, size)[..., None]
        img = img * (1 - cov) + cov * np.asarray(room.step_colour, dtype=np.float32)
        edge = _rect(xs, ys, x0, top, x1, top + 0.015, size)[..., None]
        img = img * (1 - edge) + edge * np.asarray(room.step_colour, dtype=np.float32) * 0.6
    if room.bench is not None:
        x0, x1, seat = room.bench
        col = np.asarray(room.bench_colour, dtype=np.float32)
        cov = _rect(xs, ys, x0, seat, x1, seat + 0.025, size)
        for lx in (x0 + 0.02, x1 - 0.035):
            cov = np.maximum(cov, _rect(xs, ys, lx, seat, lx + 0.015, room.floor_y + 0.005, size))
        img = img * (1 - cov[..., None]) + cov[..., None] * col
    return np.clip(img, 0, 1)


def render_person(identity: Identity, kp: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Colour layer (H, W, 3) and coverage (H, W) of the stick figure with normalised keypoints kp."""
    xs, ys = pixel_grid(size)
    colour = np.zeros((size, size, 3), dtype=np.float32)
    cover = np.zeros((size, size), dtype=np.float32)
    for a, b, part in LIMBS:
        cov = segment_coverage(xs, ys, kp[KP[a]], kp[KP[b]], identity.width, size)
        colour = colour * (1 - cov[..., None]) + cov[..., None] * identity.colour(part)
        cover = np.maximum(cover, cov)
    head = kp[KP["head"]]
    cov = np.clip((identity.head_r - np.hypot(xs - head[0], ys - head[1])) * size + 0.5, 0, 1)
    colour = colour * (1 - cov[..., None]) + cov[..., None] * identity.colour("head")
    cover = np.maximum(cover, cov)
    return colour, cover


def render_frame(room: Room, identity: Identity, kp: np.ndarray, size: int, state: str) -> Frame:
    bg = render_room(room, size)
    colour, cover = render_person(identity, kp, size)
    # `colour` is premultiplied by coverage through the over-compositing above.
    img = bg * (1 - cover[..., None]) + colour
    return Frame(
        image=np.clip(img, 0, 1).astype(np.float32), mask=cover.astype(np.float32),
        keypoints=(kp * size).astype(np.float32), state=state, hip_x=float(kp[KP["hip"], 0]),
    )


def _hip_range(room: Room, identity: Identity, state: str, facing: int) -> list[tuple[float, float]]:
    """Allowed hip x ranges for a state, keeping the whole figure inside the image."""
    margin = 0.12
    if state == "sit":
        x0, x1, _ = room.bench
        # Sit with the hips on the back part of the seat so the knees and feet stay by the bench.
        lo, hi = x0 + 0.06, x1 - 0.06
        if facing > 0:
            hi = min(hi, 1 - 0.9 * identity.thigh - 0.04)
        else:
            lo = max(lo, 0.9 * identity.thigh + 0.04)
        return [(lo, hi)]
    if state == "step":
        x0, x1, _ = room.step
        return [(x0 + 0.08, x1 - 0.08)]
    # walking: away from every object by a margin
    blocked = sorted(o[:2] for o in (room.bench, room.step) if o is not None)
    ranges, start = [], margin
    for x0, x1 in blocked:
        if x0 - 0.1 > start:
            ranges.append((start, x0 - 0.1))
        start = max(start, x1 + 0.1)
    if 1 - margin > start:
        ranges.append((start, 1 - margin))
    return [r for r in ranges if r[1] - r[0] > 0.02]


def available_states(room: Room) -> tuple[str, ...]:
    states = []
    for s in STATES:
        if s == "sit" and room.bench is None or s == "step" and room.step is None:
            continue
        states.append(s)
    return tuple(states)


def sample_clip(rng: np.random.Generator, size: int = 64, n_frames: int = 6) -> Clip:
    """One room, one person, n_frames frames; each frame's state is drawn from what the room affords."""
    while True:
        room, identity = sample_room(rng), sample_identity(rng)
        facing = 1 if rng.uniform() < 0.5 else -1
        states = [s for s in available_states(room) if _hip_range(room, identity, s, facing)]
        if len(states) >= 2:
            break
    frames = []
    for _ in range(n_frames):
        state = states[int(rng.integers(len(states)))]
        ranges = _hip_range(room, identity, state, facing)
        lo, hi = ranges[int(rng.integers(len(ranges)))]
        hip_x = float(rng.uniform(lo, hi))
        kp = pose(identity, room, state, hip_x, facing, float(rng.uniform()))
        frames.append(render_frame(room, identity, kp, size, state))
    return Clip(room=room, identity=identity, facing=facing, frames=tuple(frames), size=size)


def clip_rng(seed: int, index: int) -> np.random.Generator:
    """The generator for clip `index` of the world with `seed` (independent of any other clip)."""
    return np.random.default_rng(np.random.SeedSequence([seed, index]))
