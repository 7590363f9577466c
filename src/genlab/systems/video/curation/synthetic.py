"""Seeded synthetic videos with known ground truth, for acceptance tests and the benchmark.

- `cuts_video`: shots of distinct panning textures joined by hard cuts and by fades (fade through
  black or cross-dissolve) of known frame spans.
- `pan_video`: one long smooth pan (no cut anywhere).
- `motion_video`: a texture translating at a known speed in px/frame (0 = static).
- `text_video`: a still background with rendered text lines whose area ratio is known.
Everything is H.264 (libx264 through PyAV) so that keyframes and compression noise are realistic.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from genlab.errors import GenlabError


def texture(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A smooth random colour texture (H, W, 3) uint8 (BGR) with a random three-colour palette."""
    import cv2

    field_ = np.zeros((height, width), np.float32)
    for cells, weight in ((4, 1.0), (12, 0.5), (40, 0.25)):
        coarse = rng.standard_normal((max(2, height * cells // width), cells)).astype(np.float32)
        field_ += weight * cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    field_ = (field_ - field_.min()) / (np.ptp(field_) + 1e-6)
    palette = rng.uniform(0, 255, size=(3, 3)).astype(np.float32)
    t = field_[..., None]
    img = np.where(t < 0.5, palette[0] + (palette[1] - palette[0]) * (2 * t),
                   palette[1] + (palette[2] - palette[1]) * (2 * t - 1))
    return np.clip(img, 0, 255).astype(np.uint8)


def write_video(path: str | os.PathLike, frames, fps: int = 30, crf: int = 20, gop: int | None = None) -> Path:
    """Encode BGR uint8 frames to H.264 (yuv420p). `gop` caps the keyframe interval."""
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        stream = None
        for img in frames:
            if stream is None:
                stream = out.add_stream("libx264", rate=fps)
                stream.width, stream.height = img.shape[1], img.shape[0]
                stream.pix_fmt = "yuv420p"
                opts = {"crf": str(crf), "preset": "veryfast"}
                if gop:
                    opts["g"] = str(gop)
                stream.options = opts
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="bgr24")
            out.mux(stream.encode(frame))
        if stream is not None:
            out.mux(stream.encode())
    return path


class _PanningShot:
    """A window sliding over a texture at a constant velocity (px/frame)."""

    def __init__(self, rng, height, width, frames, speed=None, angle=None):
        speed = rng.uniform(0.3, 1.5) if speed is None else speed
        drawn = rng.uniform(0, 2 * np.pi)  # drawn either way: a given angle keeps the seed's textures
        angle = drawn if angle is None else angle
        self.v = np.array([np.cos(angle), np.sin(angle)]) * speed
        margin = int(np.ceil(abs(self.v).max() * frames)) + 4
        self.tex = texture(rng, height + 2 * margin, width + 2 * margin)
        self.origin = np.array([margin, margin], float)
        self.h, self.w = height, width

    def frame(self, i: int) -> np.ndarray:
        x, y = self.origin + self.v * i
        x0, y0 = int(np.floor(x)), int(np.floor(y))
        fx, fy = x - x0, y - y0
        # bilinear sub-pixel shift keeps slow pans smooth
        a = self.tex[y0:y0 + self.h + 1, x0:x0 + self.w + 1].astype(np.float32)
        out = ((1 - fx) * (1 - fy) * a[:-1, :-1] + fx * (1 - fy) * a[:-1, 1:]
               + (1 - fx) * fy * a[1:, :-1] + fx * fy * a[1:, 1:])
        return out.astype(np.uint8)


@dataclass
class CutsTruth:
    num_frames: int
    hard_cuts: list[int] = field(default_factory=list)  # first frame of the new shot
    fades: list[tuple[int, int]] = field(default_factory=list)  # [first, last] frame of the transition
    fade_kinds: list[str] = field(default_factory=list)  # "black" (fade out/in) or "dissolve"


def cuts_video(path, seed: int = 0, n_hard: int = 20, n_fades: int = 10, size=(320, 180), fps: int = 30,
               shot_frames=(40, 70), fade_frames=(15, 30), fade_kind: str = "black") -> CutsTruth:
    """Shots joined by `n_hard` hard cuts and `n_fades` fades in a seeded random order.

    `fade_kind`: "black" (fade out to black, then in: the classic fade), "dissolve" (cross-fade)
    or "mixed" (either, at random).
    """
    if fade_kind not in ("black", "dissolve", "mixed"):
        raise GenlabError(f"fade_kind: expected 'black', 'dissolve' or 'mixed', got {fade_kind!r}")
    rng = np.random.default_rng(seed)
    w, h = size
    kinds = ["cut"] * n_hard + ["fade"] * n_fades
    rng.shuffle(kinds)
    truth = CutsTruth(num_frames=0)

    def frames():
        index = 0
        shot = _PanningShot(rng, h, w, 200)
        t = 0
        n = int(rng.integers(*shot_frames))
        for kind in [*kinds, None]:
            for _ in range(n):
                yield shot.frame(t)
                t += 1
                index += 1
            if kind is None:
                break
            new = _PanningShot(rng, h, w, 200)
            if kind == "cut":
                truth.hard_cuts.append(index)
            else:
                length = int(rng.integers(fade_frames[0], fade_frames[1] + 1))
                coin = bool(rng.integers(0, 2))
                through_black = fade_kind == "black" or (fade_kind == "mixed" and coin)
                truth.fades.append((index, index + length - 1))
                truth.fade_kinds.append("black" if through_black else "dissolve")
                for j in range(length):
                    a = (j + 1) / (length + 1)
                    if through_black:
                        img = shot.frame(t) if a < 0.5 else new.frame(0)
                        gain = abs(1 - 2 * a)
                        yield (img.astype(np.float32) * gain).astype(np.uint8)
                    else:
                        mix = (1 - a) * shot.frame(t).astype(np.float32) + a * new.frame(0).astype(np.float32)
                        yield mix.astype(np.uint8)
                    t += 1
                    index += 1
            shot, t = new, 0
            n = int(rng.integers(*shot_frames))
        truth.num_frames = index

    write_video(path, frames(), fps=fps)
    return truth


def pan_video(path, seed: int = 0, seconds: float = 20.0, size=(320, 180), fps: int = 30, speed: float = 2.0):
    """One smooth pan over a single texture: there is no cut anywhere."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * fps))
    shot = _PanningShot(rng, size[1], size[0], n, speed=speed)
    write_video(path, (shot.frame(i) for i in range(n)), fps=fps)
    return n


def motion_video(path, speed: float, seed: int = 0, seconds: float = 3.0, size=(320, 180), fps: int = 30):
    """A texture translating at `speed` px/frame in a random direction (0 = a still image)."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * fps))
    shot = _PanningShot(rng, size[1], size[0], n, speed=speed)
    write_video(path, (shot.frame(i) for i in range(n)), fps=fps)
    return n


def text_video(path, n_lines: int, seed: int = 0, seconds: float = 2.0, size=(480, 270), fps: int = 10,
               scale: float = 1.0) -> float:
    """A still, plain-ish background with `n_lines` of upper-case text; returns the text area ratio.

    The area is the union of each rendered line's tight ink box (the bounding box of the pixels the
    line's glyphs changed; only capitals and digits, so no descenders).
    """
    import cv2

    rng = np.random.default_rng(seed)
    w, h = size
    background = (texture(rng, h, w).astype(np.float32) * 0.3 + 150).astype(np.uint8)
    img = background.copy()
    mask = np.zeros((h, w), bool)
    alphabet = list("ABCDEFGHJKLMNPRSTUVWXYZ0123456789")
    font = cv2.FONT_HERSHEY_SIMPLEX
    y = int(h * 0.12)
    for _ in range(n_lines):
        words = ["".join(rng.choice(alphabet, size=int(rng.integers(3, 7)))) for _ in range(int(rng.integers(2, 4)))]
        text = " ".join(words)
        (tw, th), _ = cv2.getTextSize(text, font, scale, 2)
        x = int(rng.integers(8, max(9, w - tw - 8)))
        y += th
        if y >= h - 4:
            break
        line = np.zeros((h, w), np.uint8)
        cv2.putText(line, text, (x, y), font, scale, 255, 2, cv2.LINE_AA)
        cv2.putText(img, text, (x, y), font, scale, (20, 20, 20), 2, cv2.LINE_AA)
        ys, xs = np.nonzero(line > 64)
        mask[ys.min():ys.max() + 1, xs.min():xs.max() + 1] = True
        y += int(th * 1.4)
    n = int(round(seconds * fps))
    write_video(path, (img for _ in range(n)), fps=fps)
    return float(mask.mean())


def mean_luma(img: np.ndarray) -> float:
    """PySceneDetect ThresholdDetector's frame value: the mean over every pixel and channel."""
    return float(np.mean(img))


@dataclass
class DipTruth:
    num_frames: int
    dips: list[tuple[int, int]] = field(default_factory=list)  # [first, last] frame of each whole dip
    dark: list[tuple[int, int]] = field(default_factory=list)  # [first, last] frame below `threshold` in each dip
    ramps: list[int] = field(default_factory=list)  # frames of each ramp (down and up)


def dip_video(path, seed: int = 0, ramps=(30, 40, 60), repeats: int = 1, size=(320, 180), fps: int = 25,
              grain: float = 4.0, shot_frames=(40, 60), threshold: float = 12.0) -> DipTruth:
    """One bright, slowly panning scene that dips to black and back `repeats` times per ramp length:
    mean luma falls linearly over `ramp` frames to black, stays black 1-2 frames and rises back over
    `ramp` frames, with the same content on both sides (what real footage does and a content
    detector does not see). Gaussian grain of std `grain` on every frame. `dark` spans are the frames
    whose mean (before grain) is below `threshold`, PySceneDetect's fade threshold."""
    rng = np.random.default_rng(seed)
    w, h = size
    lengths = [int(r) for r in ramps for _ in range(repeats)]
    rng.shuffle(lengths)
    gains: list[float] = []
    truth = DipTruth(num_frames=0, ramps=lengths)
    for r in [*lengths, None]:
        gains += [1.0] * int(rng.integers(*shot_frames))
        if r is None:
            break
        first = len(gains)
        black = int(rng.integers(1, 3))
        gains += [(r - 1 - j) / r for j in range(r)] + [0.0] * (black - 1) + [(j + 1) / r for j in range(r)]
        truth.dips.append((first, len(gains) - 1))
    shot = _PanningShot(rng, h, w, len(gains), speed=0.4)
    bright = [(shot.frame(i).astype(np.float32) * 0.45 + 135.0) for i in (0, len(gains) - 1)]
    base_mean = min(float(np.mean(b)) for b in bright)
    for a, b in truth.dips:
        dark = [i for i in range(a, b + 1) if gains[i] * base_mean < threshold]
        truth.dark.append((dark[0], dark[-1]))
    noise = np.random.default_rng(seed + 1)

    def frames():
        for i, g in enumerate(gains):
            img = (shot.frame(i).astype(np.float32) * 0.45 + 135.0) * g
            img += noise.normal(0.0, grain, size=img.shape).astype(np.float32)
            yield np.clip(img, 0, 255).astype(np.uint8)

    write_video(path, frames(), fps=fps)
    truth.num_frames = len(gains)
    return truth


def dissolve_video(path, seed: int = 0, lengths=(12, 24, 48), repeats: int = 1, size=(320, 180),
                   fps: int = 30, shot_frames=(40, 70)) -> CutsTruth:
    """Shots joined only by cross-dissolves, `repeats` of each length in `lengths` (frames), in a
    seeded order; `truth.fades` are the [first, last] blended frames."""
    rng = np.random.default_rng(seed)
    order = [int(n) for n in lengths for _ in range(repeats)]
    rng.shuffle(order)
    w, h = size
    truth = CutsTruth(num_frames=0)

    def frames():
        index = 0
        shot = _PanningShot(rng, h, w, 200)
        for length in [*order, None]:
            n = int(rng.integers(*shot_frames))
            for t in range(n):
                yield shot.frame(t)
                index += 1
            if length is None:
                break
            new = _PanningShot(rng, h, w, 200)
            truth.fades.append((index, index + length - 1))
            truth.fade_kinds.append("dissolve")
            for j in range(length):
                a = (j + 1) / (length + 1)  # both shots keep moving through the blend
                yield ((1 - a) * shot.frame(n + j).astype(np.float32) + a * new.frame(j).astype(np.float32)).astype(np.uint8)
                index += 1
            shot = _ShiftedShot(new, length)
        truth.num_frames = index

    write_video(path, frames(), fps=fps)
    return truth


class _ShiftedShot:
    """A shot whose frame 0 is frame `offset` of another (the new shot after a dissolve continues)."""

    def __init__(self, shot, offset: int):
        self.shot, self.offset = shot, offset

    def frame(self, i: int) -> np.ndarray:
        return self.shot.frame(i + self.offset)


def counter_video(path, seconds: float = 4.0, fps: int = 10, size=(640, 360), seed: int = 0,
                  font_scale: float | None = None) -> int:
    """A still picture whose only change is a small overlay updated every frame: a frame counter and
    a time stamp (as security and test footage burn in). There is no cut anywhere."""
    import cv2

    rng = np.random.default_rng(seed)
    w, h = size
    still = texture(rng, h, w)
    scale = font_scale if font_scale is not None else h / 720
    n = int(round(seconds * fps))

    def frames():
        for i in range(n):
            img = still.copy()
            s = i / fps
            text = f"frame {i}  {int(s // 60):02d}:{s % 60:04.1f}"
            cv2.putText(img, text, (int(0.03 * w), int(0.93 * h)), cv2.FONT_HERSHEY_SIMPLEX, scale,
                        (255, 255, 255), max(1, round(2 * scale)), cv2.LINE_AA)
            yield img

    write_video(path, frames(), fps=fps)
    return n


def caption_box_video(path, seconds: float = 3.0, fps: int = 25, size=(320, 180), seed: int = 0,
                      area: float = 0.15) -> int:
    """A still shot on which a lower-third caption plate (`area` of the frame: a dark bar with white
    text) appears half-way and stays: a change small in area, not a cut."""
    import cv2

    rng = np.random.default_rng(seed)
    w, h = size
    still = texture(rng, h, w)
    plate = still.copy()
    top = int(h * (0.9 - area))
    cv2.rectangle(plate, (0, top), (w - 1, int(0.9 * h)), (30, 30, 30), -1)
    cv2.putText(plate, "SPEAKER NAME", (int(0.05 * w), int(0.9 * h) - int(0.03 * h)), cv2.FONT_HERSHEY_SIMPLEX,
                h / 400, (255, 255, 255), 1, cv2.LINE_AA)
    n = int(round(seconds * fps))
    write_video(path, (still if i < n // 2 else plate for i in range(n)), fps=fps)
    return n


CAMERA_KINDS = ("static", "pan", "tilt", "zoom", "shaky")


def camera_video(path, kind: str, seed: int = 0, seconds: float = 2.0, size=(160, 90), fps: int = 30,
                 speed: float = 2.0) -> int:
    """A camera move over a still texture: "static", "pan" (horizontal, `speed` px/frame), "tilt"
    (vertical), "zoom" (in or out by `speed` px/frame at the frame edge) or "shaky" (a random jitter
    of about `speed` px a frame that goes nowhere)."""
    import cv2

    if kind not in CAMERA_KINDS:
        raise GenlabError(f"kind: expected one of {CAMERA_KINDS}, got {kind!r}")
    rng = np.random.default_rng(seed)
    w, h = size
    n = int(round(seconds * fps))
    sign = 1.0 if rng.integers(0, 2) else -1.0
    if kind in ("static", "pan", "tilt"):
        angle = {"pan": 0.0, "tilt": np.pi / 2}.get(kind, 0.0) + (np.pi if sign < 0 else 0.0)
        shot = _PanningShot(rng, h, w, n, speed=0.0 if kind == "static" else speed, angle=angle)
        frames = (shot.frame(i) for i in range(n))
    elif kind == "zoom":
        big = texture(rng, 2 * h, 2 * w)
        rate = sign * speed / (w / 2)  # relative scale change a frame: `speed` px at the frame edge

        def zoomed(i):
            s = min(2.0, (1.6 if sign > 0 else 0.4) * (1 + rate) ** (-i))
            cw, ch = w * s, h * s
            m = np.float32([[w / cw, 0, -(w - cw / 2) * w / cw], [0, h / ch, -(h - ch / 2) * h / ch]])
            return cv2.warpAffine(big, m, (w, h), flags=cv2.INTER_LINEAR)

        frames = (zoomed(i) for i in range(n))
    else:
        big = texture(rng, h + 40, w + 40)
        offsets = np.clip(rng.normal(0, speed, size=(n, 2)), -15, 15)

        def jittered(i):
            m = np.float32([[1, 0, -20 + offsets[i, 0]], [0, 1, -20 + offsets[i, 1]]])
            return cv2.warpAffine(big, m, (w, h), flags=cv2.INTER_LINEAR)

        frames = (jittered(i) for i in range(n))
    write_video(path, frames, fps=fps)
    return n


def corpus(folder, videos: int = 20, seed: int = 1000, size=(320, 180)) -> list[Path]:
    """A seeded corpus of `videos` files of 6-12 s made by the generators above, in turn: hard cuts
    and fades, slow dips to black, cross-dissolves, one camera move (pan, zoom, shaky, static).
    For throughput measurements (the benchmark) and pool-vs-Ray tests."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(videos):
        path, s = folder / f"v{i:02d}.mp4", seed + i
        kind = i % 4
        if kind == 0:
            cuts_video(path, seed=s, n_hard=3 + i % 3, n_fades=1, size=size, shot_frames=(50, 80))
        elif kind == 1:
            dip_video(path, seed=s, ramps=(30 + i % 3 * 10,), repeats=2, size=size)
        elif kind == 2:
            dissolve_video(path, seed=s, lengths=(12, 24), repeats=2, size=size, shot_frames=(40, 60))
        else:
            move = ("pan", "zoom", "shaky", "static")[i // 4 % 4]
            camera_video(path, move, seed=s, seconds=6.0, size=size, speed=1.5)
        paths.append(path)
    return paths
