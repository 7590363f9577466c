"""Self-supervised training pairs: scene = frame i with the person masked, reference = the person of
frame j, target = frame i (paper Sec. 3.1).

Masks (paper's mix): box 30 %, person mask 15 %, scribble 20 %, small box 15 %, large box 20 %;
dilated by 0..20 px at the paper's 256 px (scaled to our resolution). Masked pixels are grey.
The reference is the person times their mask, centred on a grey square, with colour and geometric
augmentation; one horizontal flip is applied to scene, mask, target and reference together.

Modes: `same` (reference from the same clip, the target is ground truth), `swap` (reference from
another clip: no ground truth, used for FID), `half` (a half-box mask, the rest of the person stays
visible: partial-body completion), `self` (reference cut from the target frame itself: Paint-by-
Example's same-image pairs, for the peer benchmark).

Pairs are deterministic in (seed, index): `make_pair(seed, index)` never depends on any other pair,
which makes shards seeded and resumable.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from genlab.core.io import atomic_path, atomic_write_text
from genlab.core.pose.masks import bbox
from genlab.errors import GenlabError
from genlab.systems.insertion import toy

MASK_TYPES = ("box", "person", "scribble", "small_box", "large_box")
MASK_PROBS = (0.30, 0.15, 0.20, 0.15, 0.20)
MODES = ("same", "swap", "half", "self")
PAPER_RESOLUTION = 256  # dilation is given in pixels at this resolution


@dataclass(frozen=True)
class PairConfig:
    size: int = 64
    ref_size: int = 32
    n_frames: int = 2  # frames rendered per clip (a pair needs two)
    max_dilation_px: float = 20.0  # at PAPER_RESOLUTION
    test_dilation_px: float = 10.0  # the evaluation mask: box + 10 px
    ref_crop: float = 0.75  # side of the square crop around the person, fraction of the image
    augment: bool = True
    flip: bool = True

    def px(self, paper_px: float) -> int:
        return int(round(paper_px * self.size / PAPER_RESOLUTION))


@dataclass
class Pair:
    target: np.ndarray  # (S, S, 3) float32 [0, 1]
    scene: np.ndarray  # (S, S, 3): target with masked pixels grey
    mask: np.ndarray  # (S, S) float32 {0, 1}, 1 = fill in
    reference: np.ndarray  # (R, R, 3)
    meta: dict = field(default_factory=dict)
    background: np.ndarray | None = None  # toy only: the room without the person (for the paste baseline)


def _dilate(mask: np.ndarray, px: int) -> np.ndarray:
    if px <= 0:
        return mask
    from scipy import ndimage

    structure = np.hypot(*np.mgrid[-px:px + 1, -px:px + 1]) <= px + 0.5
    return ndimage.binary_dilation(mask, structure=structure)


def _box_mask(size: int, x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    m = np.zeros((size, size), dtype=bool)
    xa, ya = max(0, int(math.floor(x0))), max(0, int(math.floor(y0)))
    xb, yb = min(size, int(math.ceil(x1))), min(size, int(math.ceil(y1)))
    m[ya:yb, xa:xb] = True
    return m


def make_mask(person: np.ndarray, kind: str, dilation: int, rng: np.random.Generator) -> np.ndarray:
    """Binary (S, S) mask covering the whole person (coverage > 0.05), of the given kind."""
    size = person.shape[0]
    solid = person > 0.05
    b = bbox(person, 0.05)
    if b is None:
        raise GenlabError("make_mask: the person mask is empty (no pixel above 0.05)")
    x0, y0, x1, y1 = b
    if kind == "person":
        m = solid
    elif kind == "box":
        m = _box_mask(size, x0, y0, x1, y1)
    elif kind == "small_box":
        m = _box_mask(size, x0, y0, x1, y1)
        dilation = min(dilation, 1)
    elif kind == "large_box":
        w, h = x1 - x0, y1 - y0
        sx, sy = rng.uniform(1.2, 1.6, size=2)
        cx, cy = (x0 + x1) / 2 + rng.uniform(-0.1, 0.1) * w, (y0 + y1) / 2 + rng.uniform(-0.1, 0.1) * h
        m = _box_mask(size, cx - sx * w / 2, cy - sy * h / 2, cx + sx * w / 2, cy + sy * h / 2) | _box_mask(
            size, x0, y0, x1, y1)
    elif kind == "scribble":
        xs, ys = toy.pixel_grid(size)
        m = solid.copy()
        w, h = (x1 - x0) / size, (y1 - y0) / size
        pts = np.stack([rng.uniform(x0 / size, x1 / size, 6), rng.uniform(y0 / size, y1 / size, 6)], -1)
        radius = max(w, h) * rng.uniform(0.08, 0.18)
        for a, c in zip(pts[:-1], pts[1:]):
            m |= toy.segment_coverage(xs, ys, a, c, radius, size) > 0.5
        dilation = max(dilation, 1)
    else:
        raise GenlabError(f"make_mask: unknown mask kind {kind!r}; expected one of {MASK_TYPES}")
    return _dilate(m, dilation)


def half_box_mask(person: np.ndarray, dilation: int, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """Upper or lower half of the person's box; the other half stays visible (partial completion)."""
    size = person.shape[0]
    x0, y0, x1, y1 = bbox(person, 0.05)
    mid = (y0 + y1) / 2
    which = "lower" if rng.uniform() < 0.5 else "upper"
    m = _box_mask(size, x0, mid, x1, y1) if which == "lower" else _box_mask(size, x0, y0, x1, mid)
    return _dilate(m, dilation), which


def centred_reference(image: np.ndarray, person: np.ndarray, cfg: PairConfig,
                      rng: np.random.Generator | None) -> np.ndarray:
    """Person x mask on grey, centred in a square crop, resized to ref_size, optionally augmented."""
    from scipy import ndimage

    b = bbox(person, 0.05)
    if b is None:
        raise GenlabError("reference: the reference frame has no person (empty mask)")
    size = image.shape[0]
    person_only = image * person[..., None] + toy.GREY * (1 - person[..., None])
    cx, cy = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2
    crop = cfg.ref_crop * size
    scale = crop / cfg.ref_size  # input pixels per output pixel
    angle, zoom, shift = 0.0, 1.0, np.zeros(2)
    if rng is not None and cfg.augment:
        angle = math.radians(rng.uniform(-5, 5))
        zoom = rng.uniform(0.9, 1.1)
        shift = rng.uniform(-0.05, 0.05, size=2) * cfg.ref_size
    # output (row, col) -> input (row, col): centre, rotate/zoom, shift
    c, s = math.cos(angle), math.sin(angle)
    mat = np.array([[c, -s], [s, c]]) * scale / zoom
    centre_out = np.array([cfg.ref_size / 2 - 0.5, cfg.ref_size / 2 - 0.5]) + shift
    centre_in = np.array([cy - 0.5, cx - 0.5])
    offset = centre_in - mat @ centre_out
    out = np.stack([
        ndimage.affine_transform(person_only[..., ch], mat, offset=offset, output_shape=(cfg.ref_size,) * 2,
                                 order=1, cval=toy.GREY)
        for ch in range(3)
    ], -1)
    if rng is not None and cfg.augment:  # mild colour jitter: identity is in the colours
        gain = rng.uniform(0.93, 1.07)
        bias = rng.uniform(-0.03, 0.03)
        fg = np.abs(out - toy.GREY).max(-1, keepdims=True) > 1e-3
        out = np.where(fg, out * gain + bias, out)
    return np.clip(out, 0, 1).astype(np.float32)


def _room_meta(room: toy.Room, size: int, flip: bool) -> dict:
    """Support geometry in pixel coordinates (after the flip), for the affordance metric."""
    def fx(x0, x1):
        return ((1 - x1) * size, (1 - x0) * size) if flip else (x0 * size, x1 * size)

    meta = {"floor_y": room.floor_y * size, "bench": None, "step": None}
    if room.bench is not None:
        meta["bench"] = [*fx(room.bench[0], room.bench[1]), room.bench[2] * size]
    if room.step is not None:
        meta["step"] = [*fx(room.step[0], room.step[1]), room.step[2] * size]
    return meta


def make_pair(seed: int, index: int, cfg: PairConfig = PairConfig(), mode: str = "same",
              mask_kind: str | None = None, dilation: int | None = None) -> Pair:
    """Pair `index` of the pair stream with `seed`. mask_kind/dilation None = the training mix;
    evaluation uses mask_kind='box', dilation=cfg.px(cfg.test_dilation_px) and no augmentation."""
    if mode not in MODES:
        raise GenlabError(f"make_pair: mode {mode!r} not in {MODES}")
    rng = np.random.default_rng(np.random.SeedSequence([seed, index, 7]))
    clip = toy.sample_clip(toy.clip_rng(seed, index), size=cfg.size, n_frames=max(cfg.n_frames, 2))
    i, j = rng.choice(len(clip.frames), size=2, replace=False)
    tgt = clip.frames[i]
    ref_clip, ref_frame = clip, clip.frames[j]
    if mode == "self":
        ref_frame = tgt
    if mode == "swap":
        ref_clip = toy.sample_clip(toy.clip_rng(seed, 10_000_000 + index), size=cfg.size, n_frames=2)
        ref_frame = ref_clip.frames[0]
    if dilation is None:
        dilation = int(rng.integers(0, cfg.px(cfg.max_dilation_px) + 1))
    half = None
    if mode == "half":
        mask, half = half_box_mask(tgt.mask, dilation, rng)
        kind = "half_box"
    else:
        kind = mask_kind or MASK_TYPES[int(rng.choice(len(MASK_TYPES), p=MASK_PROBS))]
        mask = make_mask(tgt.mask, kind, dilation, rng)
    mask = mask.astype(np.float32)
    target = tgt.image
    scene = target * (1 - mask[..., None]) + toy.GREY * mask[..., None]
    reference = centred_reference(ref_frame.image, ref_frame.mask, cfg, rng if cfg.augment else None)
    flip = bool(cfg.flip and rng.uniform() < 0.5)
    kp = tgt.keypoints.copy()
    background = toy.render_room(clip.room, cfg.size)
    if flip:
        target, scene, mask, reference, background = (
            a[:, ::-1].copy() for a in (target, scene, mask, reference, background))
        kp[:, 0] = cfg.size - kp[:, 0]
    meta = {
        "seed": seed, "index": index, "mode": mode, "mask_kind": kind, "dilation": dilation, "flip": flip,
        "frames": [int(i), int(j)], "state": tgt.state, "ref_state": ref_frame.state, "half": half,
        "keypoints": kp.tolist(), "height_px": clip.identity.height * cfg.size,
        "colours": [list(c) for c in clip.identity.colours],
        "ref_colours": [list(c) for c in ref_clip.identity.colours],
        "ref_height_px": ref_clip.identity.height * cfg.size,
        **_room_meta(clip.room, cfg.size, flip),
    }
    return Pair(target=target.astype(np.float32), scene=scene.astype(np.float32), mask=mask,
                reference=reference, meta=meta, background=background)


def eval_pairs(n: int, cfg: PairConfig, seed: int = 20230601, mode: str = "same") -> list[Pair]:
    """The fixed held-out set: box + test dilation, no augmentation, a seed no training stream uses."""
    ecfg = PairConfig(**{**asdict(cfg), "augment": False})
    return [make_pair(seed, k, ecfg, mode=mode, mask_kind="box", dilation=cfg.px(cfg.test_dilation_px))
            for k in range(n)]


def checksum(pairs: list[Pair]) -> str:
    h = hashlib.sha256()
    for p in pairs:
        for a in (p.target, p.mask, p.reference):
            h.update(np.round(a * 255).astype(np.uint8).tobytes())
    return h.hexdigest()[:16]


def collate(pairs: list[Pair]):
    """Stack pairs into torch tensors in [-1, 1], channels first."""
    import torch

    def t(a):
        return torch.from_numpy(np.stack(a)).permute(0, 3, 1, 2).contiguous() * 2 - 1

    return {
        "target": t([p.target for p in pairs]),
        "scene": t([p.scene for p in pairs]),
        "mask": torch.from_numpy(np.stack([p.mask for p in pairs]))[:, None].contiguous(),
        "reference": t([p.reference for p in pairs]),
    }


# ----------------------------------------------------------------------------- shards
# One format for toy and real pairs: shard-XXXXX.npz with uint8 images and masks (0..255) and the
# metas as JSON, listed in manifest.json ({"settings": {..., "config": PairConfig}, "shards": [...]}).
SHARD_KEYS = ("target", "scene", "mask", "reference")


def _u8(a: np.ndarray) -> np.ndarray:
    """[0, 1] floats -> uint8; anything outside [0, 1] is a bug upstream, not something to clip silently."""
    a = np.asarray(a, dtype=np.float32)
    if a.size and (a.min() < -1e-4 or a.max() > 1 + 1e-4):
        raise GenlabError(f"pair shard: values must be in [0, 1], got [{a.min():.4g}, {a.max():.4g}]")
    return np.round(np.clip(a, 0, 1) * 255).astype(np.uint8)


def write_pair_shard(path: str | Path, pairs: list[Pair]) -> None:
    """One shard file (atomic): images/masks in [0, 1] stored as uint8, metas as JSON."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **{k: _u8(np.stack([getattr(p, k) for p in pairs])) for k in SHARD_KEYS},
                     meta=np.array(json.dumps([p.meta for p in pairs])))


def write_manifest(out_dir: str | Path, settings: dict, shards: list[dict]) -> dict:
    manifest = {"settings": settings, "shards": shards}
    atomic_write_text(Path(out_dir) / "manifest.json", json.dumps(manifest, indent=1))
    return manifest


def write_shards(out_dir: str | Path, seed: int, n_pairs: int, shard_size: int = 256,
                 cfg: PairConfig = PairConfig(), mode: str = "same", progress: bool = True) -> dict:
    """Write pairs [0, n_pairs) as shard-XXXXX.npz (uint8) plus manifest.json; finished shards are kept,
    so an interrupted run resumes where it stopped. Returns the manifest."""
    from tqdm import tqdm

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    manifest_path = out / "manifest.json"
    settings = {"seed": seed, "n_pairs": n_pairs, "shard_size": shard_size, "mode": mode, "config": asdict(cfg)}
    if manifest_path.exists():
        old = json.loads(manifest_path.read_text())
        if old.get("settings") != settings:
            raise GenlabError(f"{manifest_path}: existing shards were written with other settings "
                              f"({old.get('settings')}); use another output folder")
    n_shards = (n_pairs + shard_size - 1) // shard_size
    shards = []
    for k in tqdm(range(n_shards), desc="shards", disable=not progress):
        path = out / f"shard-{k:05d}.npz"
        lo, hi = k * shard_size, min(n_pairs, (k + 1) * shard_size)
        if not path.exists():
            write_pair_shard(path, [make_pair(seed, idx, cfg, mode=mode) for idx in range(lo, hi)])
        shards.append({"file": path.name, "pairs": [lo, hi]})
        manifest = write_manifest(out, settings, shards)
    return manifest


def read_shard(path: str | Path) -> list[Pair]:
    """The pairs of one shard, images back in [0, 1]."""
    path = Path(path)
    try:
        with np.load(path) as z:
            metas = json.loads(str(z["meta"]))
            arrays = {k: z[k] for k in SHARD_KEYS}
    except (OSError, ValueError, KeyError, json.JSONDecodeError) as err:
        raise GenlabError(f"pair shard {path}: not a readable shard ({type(err).__name__}: {err})") from None
    for k, a in arrays.items():
        if a.dtype != np.uint8:
            raise GenlabError(f"pair shard {path}: {k} is {a.dtype}, expected uint8 (rewrite it with "
                              "`genlab insertion pairs`)")
    return [Pair(**{k: arrays[k][i].astype(np.float32) / 255 for k in SHARD_KEYS}, meta=m) for i, m in enumerate(metas)]


def read_pairs(folder: str | Path) -> tuple[list[Pair], dict]:
    """Every pair listed in `folder/manifest.json` (toy or real) and the manifest's settings."""
    folder = Path(folder)
    manifest_path = folder / "manifest.json"
    if not manifest_path.is_file():
        raise GenlabError(f"pairs folder {folder}: no manifest.json (write pairs with `genlab insertion pairs --out "
                          f"{folder}`)")
    try:
        manifest = json.loads(manifest_path.read_text())
        files = [folder / s["file"] for s in manifest["shards"]]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise GenlabError(f"{manifest_path}: not a pair manifest ({type(err).__name__}: {err})") from None
    pairs = [p for f in files for p in read_shard(f)]
    if not pairs:
        raise GenlabError(f"pairs folder {folder}: the manifest lists no pairs")
    return pairs, manifest.get("settings", {})
