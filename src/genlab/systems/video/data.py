"""Toy video clips with a known motion: a coloured sprite moving in a straight line on a texture.

The sprite's colour fixes its direction (red -> right, green -> left, blue -> down, yellow -> up), so
the first frame alone determines the ground-truth trajectory; its speed (px/frame, 0 .. max_speed) is
given to the model as SVD's motion bucket id. `fit_motion` turns a generated clip back into numbers
(centroid velocity), which is what the demo's acceptance figures are computed from.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

COLOURS = torch.tensor([[1.0, -1.0, -1.0], [-1.0, 1.0, -1.0], [-1.0, -1.0, 1.0], [1.0, 1.0, -1.0]])  # RGB
DIRECTIONS = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])  # (dx, dy) per colour
COLOUR_NAMES = ("red", "green", "blue", "yellow")
DIRECTION_NAMES = ("right", "left", "down", "up")


def sprite_prompt(colour: int) -> str:
    """The text-to-video toy's caption of a clip: its sprite class (colour, hence direction)."""
    return f"a {COLOUR_NAMES[colour]} square moving {DIRECTION_NAMES[colour]}"


def prompt_class(prompt: str) -> int | None:
    """The sprite class a prompt asks for (the first colour word in it), None if it names none."""
    words = prompt.lower().replace(",", " ").split()
    return next((COLOUR_NAMES.index(w) for w in words if w in COLOUR_NAMES), None)


@dataclass(frozen=True)
class SpriteConfig:
    size: int = 32  # frame height = width
    frames: int = 8
    sprite: int = 5  # sprite side in pixels
    max_speed: float = 3.0  # px / frame
    bucket_per_px: float = 80.0  # motion_bucket_id = speed * bucket_per_px (3 px/frame -> 240 <= 255)
    texture: float = 0.25  # background texture amplitude
    fps_id: int = 6


@dataclass
class Clips:
    video: torch.Tensor  # (N, T, 3, H, W) in [-1, 1]
    colour: torch.Tensor  # (N,) index into COLOURS / DIRECTIONS
    speed: torch.Tensor  # (N,) px / frame
    start: torch.Tensor  # (N, 2) sprite centre (x, y) at frame 0
    bucket: torch.Tensor  # (N,) motion bucket id

    def __len__(self) -> int:
        return self.video.shape[0]


def _texture(n: int, size: int, amp: float, g: torch.Generator) -> torch.Tensor:
    """Smooth grey-ish random texture (N, 3, H, W)."""
    low = torch.randn(n, 1, size // 4, size // 4, generator=g)
    tint = 0.3 * torch.randn(n, 3, 1, 1, generator=g)
    tex = F.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)
    return amp * (tex + tint).clamp(-2, 2) / 2


def render(cfg: SpriteConfig, colour: torch.Tensor, speed: torch.Tensor, start: torch.Tensor,
           background: torch.Tensor) -> torch.Tensor:
    """Anti-aliased square sprite of side cfg.sprite at start + t * speed * direction -> (N, T, 3, H, W)."""
    s = cfg.size
    t = torch.arange(cfg.frames, dtype=torch.float32)
    centre = start[:, None] + t[None, :, None] * (speed[:, None, None] * DIRECTIONS[colour][:, None])  # (N, T, 2)
    coords = torch.arange(s, dtype=torch.float32) + 0.5
    half = cfg.sprite / 2
    # coverage of each pixel by the square: product of 1-D overlaps (anti-aliasing keeps sub-pixel motion)
    ox = (torch.minimum(coords + 0.5, centre[..., 0:1] + half) - torch.maximum(coords - 0.5, centre[..., 0:1] - half))
    oy = (torch.minimum(coords + 0.5, centre[..., 1:2] + half) - torch.maximum(coords - 0.5, centre[..., 1:2] - half))
    cover = ox.clamp(0, 1)[:, :, None, :] * oy.clamp(0, 1)[:, :, :, None]  # (N, T, H, W)
    col = COLOURS[colour][:, None, :, None, None]  # (N, 1, 3, 1, 1)
    bg = background[:, None]  # (N, 1, 3, H, W)
    return bg * (1 - cover[:, :, None]) + col * cover[:, :, None]


def make_clips(cfg: SpriteConfig, n: int, seed: int, speeds: torch.Tensor | None = None) -> Clips:
    """n clips, fixed by seed: random colour, speed U(0, max_speed) (or given), start keeping the sprite in view."""
    g = torch.Generator().manual_seed(seed)
    colour = torch.randint(0, 4, (n,), generator=g)
    speed = speeds if speeds is not None else torch.rand(n, generator=g) * cfg.max_speed
    travel = speed * (cfg.frames - 1)
    margin = cfg.sprite / 2 + 0.5
    lo = torch.full((n, 2), margin)
    hi = torch.full((n, 2), cfg.size - margin)
    d = DIRECTIONS[colour]
    lo = lo + torch.clamp(-d * travel[:, None], min=0)  # moving left/up: start further right/down
    hi = hi - torch.clamp(d * travel[:, None], min=0)
    start = lo + torch.rand(n, 2, generator=g) * (hi - lo).clamp_min(0)
    bg = _texture(n, cfg.size, cfg.texture, g)
    video = render(cfg, colour, speed, start, bg)
    return Clips(video, colour, speed, start, speed * cfg.bucket_per_px)


@dataclass(frozen=True)
class MotionFit:
    velocity: torch.Tensor  # (N, 2) fitted px / frame
    speed: torch.Tensor  # (N,)
    found: torch.Tensor  # (N,) bool: the sprite was found in enough frames


def fit_motion(video: torch.Tensor, colour: torch.Tensor, threshold: float = 0.8) -> MotionFit:
    """Least-squares line through the sprite centroid per frame; centroid = mean of pixels near its colour."""
    n, t, _, h, w = video.shape
    target = COLOURS[colour][:, None, :, None, None]
    dist = (video.clamp(-1, 1) - target).abs().amax(dim=2)  # (N, T, H, W): max channel error
    weight = (1 - dist / threshold).clamp(min=0) ** 2  # soft mask of sprite-coloured pixels
    mass = weight.sum(dim=(-1, -2))  # (N, T)
    ys, xs = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
    cx = (weight * xs).sum(dim=(-1, -2)) / mass.clamp_min(1e-6)
    cy = (weight * ys).sum(dim=(-1, -2)) / mass.clamp_min(1e-6)
    ok = mass > 0.5  # (N, T)
    tt = torch.arange(t, dtype=torch.float32).expand(n, t)
    vel = torch.zeros(n, 2)
    found = ok.sum(1) >= max(2, t // 2)
    for i in range(n):
        m = ok[i]
        if m.sum() < 2:
            continue
        ti = tt[i][m]
        tc = ti - ti.mean()
        denom = (tc**2).sum().clamp_min(1e-6)
        vel[i, 0] = (tc * (cx[i][m] - cx[i][m].mean())).sum() / denom
        vel[i, 1] = (tc * (cy[i][m] - cy[i][m].mean())).sum() / denom
    return MotionFit(vel, vel.norm(dim=1), found)


def direction_cosine(velocity: torch.Tensor, colour: torch.Tensor) -> torch.Tensor:
    """cos(angle) between fitted velocity and the colour's true direction; 0 where nothing moved."""
    d = DIRECTIONS[colour]
    return (velocity * d).sum(1) / velocity.norm(dim=1).clamp_min(1e-6)


def spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a.numpy(), b.numpy()).statistic)
