"""Training samples from a curation output folder (`genlab video curate --out DIR`): the kept clips of
`DIR/clips.parquet`.

Each kept clip file is decoded (PyAV), subsampled by the integer stride that brings its frame rate closest
to `target_fps`, cut into non-overlapping windows of `frames` frames, centre-cropped to a square and
area-resized to `size`. Every window is one sample, conditioned as SVD's training clips are (App. D.2:
"frame rate and motion score"):

    fps_id          = fps / stride - 1              sgm's convention (diffusers passes fps - 1: 7 fps -> 6)
    motion_bucket   = 255 * m / (m + motion_half)   m = the clip's `motion_score` (curation's optical-flow
                                                    magnitude, px/s at a 320 px long side)

The bucket map is monotone, 0 for a still clip, 127.5 at m = motion_half and below 255 for any motion
(SVD's own map from flow to bucket is not published). Every `heldout_every`-th window (in table order)
is held out, so a loss on unseen windows of the same footage can be measured. `selection="quality"` keeps
the best `quality_fraction` of the kept clips (aesthetic score where the table has one, else motion): the
paper's high-quality fine-tuning set; `STAGE_SELECTION` says which stage trains on which.

Encoded latents are cached under `cache_dir("video_train")`, keyed by the clip files (path, size, mtime),
this config and the autoencoder's weights, so a second run (or a resumed one) does not decode again.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from genlab.core.io import cache_dir
from genlab.core.train import load_weights, save_weights
from genlab.errors import GenlabError
from genlab.systems.video.train import TrainData

TABLE = "clips.parquet"
NEEDED = ("clip_id", "status", "clip_path", "fps", "motion_score", "keep")


@dataclass(frozen=True)
class CuratedClipsConfig:
    frames: int = 8  # frames per training window
    size: int = 32  # square frame side in pixels
    target_fps: float = 7.0  # SVD's default frame rate
    motion_half: float = 10.0  # motion_score that maps to bucket 127.5
    heldout_every: int = 10  # every k-th window is held out (0: none)
    selection: str = "all"  # "all" kept clips, or "quality": the top `quality_fraction` (SVD's stage III subset)
    quality_fraction: float = 0.5
    max_windows_per_clip: int = 0  # 0: all

    def __post_init__(self):
        if self.frames < 1 or self.size < 4 or self.target_fps <= 0 or self.motion_half <= 0:
            raise GenlabError(f"CuratedClipsConfig: frames >= 1, size >= 4, target_fps > 0 and motion_half > 0 "
                              f"expected, got {self.frames}, {self.size}, {self.target_fps}, {self.motion_half}")
        if self.selection not in ("all", "quality") or not 0 < self.quality_fraction <= 1:
            raise GenlabError(f"CuratedClipsConfig: selection 'all' or 'quality' and 0 < quality_fraction <= 1 "
                              f"expected, got {self.selection!r}, {self.quality_fraction}")


def motion_bucket(motion_score: torch.Tensor | float, motion_half: float) -> torch.Tensor:
    """Curation's motion score (>= 0) -> SVD's motion_bucket_id in [0, 255): 255 m / (m + motion_half)."""
    m = torch.as_tensor(motion_score, dtype=torch.float64).clamp(min=0)
    return (255.0 * m / (m + motion_half)).float()


def frame_stride(fps: float, target_fps: float) -> int:
    """The integer subsampling that brings `fps` closest to `target_fps` (at least 1)."""
    return max(1, round(fps / target_fps))


def fps_id(fps: float, stride: int) -> float:
    """sgm's fps_id of frames taken every `stride` frames of an `fps` video: the frame rate minus 1."""
    return fps / stride - 1.0


# the paper's stages over data (section 3-4): image and video pretraining on the whole curated set, the
# high-quality fine-tuning stages on a small subset of it
STAGE_SELECTION = {"image": "all", "video": "all", "video_hr": "quality", "i2v": "quality", "finetune": "quality",
                   "t2v": "quality", "interp": "quality"}


def select_rows(rows: list[dict], cfg: CuratedClipsConfig) -> list[dict]:
    """`cfg.selection` over kept rows: "all", or "quality" = the top `quality_fraction` (at least one clip)
    by aesthetic_score where the table has it for every row, else by motion_score (ties: table order)."""
    if cfg.selection == "all":
        return rows
    field = "aesthetic_score" if all(r.get("aesthetic_score") is not None for r in rows) else "motion_score"
    n = max(1, round(cfg.quality_fraction * len(rows)))
    best = sorted(range(len(rows)), key=lambda i: -float(rows[i][field]))[:n]
    return [rows[i] for i in sorted(best)]


def kept_rows(folder: str | os.PathLike) -> list[dict]:
    """The kept clip rows of `folder/clips.parquet` (status ok, keep true, with a clip file)."""
    import pyarrow.parquet as pq

    path = Path(folder) / TABLE
    if not path.is_file():
        raise GenlabError(f"--data {folder}: no {TABLE} (give a folder written by `genlab video curate --out`)")
    try:
        table = pq.read_table(path)
    except Exception as err:  # noqa: BLE001 - pyarrow raises several types
        raise GenlabError(f"{path}: not a readable Parquet table ({err})") from None
    missing = [c for c in NEEDED if c not in table.column_names]
    if missing:
        raise GenlabError(f"{path}: missing column(s) {missing} (expected the table `genlab video curate` writes)")
    columns = [*NEEDED, *(["aesthetic_score"] if "aesthetic_score" in table.column_names else [])]
    rows = [r for r in table.select(columns).to_pylist() if r["status"] == "ok" and r["keep"] and r["clip_path"]]
    if not rows:
        raise GenlabError(f"{path}: no kept clip with a clip file ({table.num_rows} rows; rerun `genlab video curate` "
                          "with looser filters, or without --no-clips)")
    for r in rows:
        if r["fps"] is None or not r["fps"] > 0 or r["motion_score"] is None:
            raise GenlabError(f"{path}: clip {r['clip_id']} has fps {r['fps']} and motion_score {r['motion_score']}; "
                              "both are needed for conditioning")
        if not (Path(folder) / r["clip_path"]).is_file():
            raise GenlabError(f"{path}: clip file {Path(folder) / r['clip_path']} of {r['clip_id']} not found")
    return sorted(rows, key=lambda r: r["clip_id"])


def decode_windows(path: Path, fps: float, cfg: CuratedClipsConfig) -> torch.Tensor:
    """Windows (W, T, 3, size, size) in [-1, 1] of one clip file (see the module docstring)."""
    from genlab.core.data.video import iter_frames

    stride = frame_stride(fps, cfg.target_fps)
    frames = [f.image for f in iter_frames(path, max_side=4 * cfg.size, fmt="rgb24", check_truncation=False,
                                           want=lambda i, _t: i % stride == 0) if f.image is not None]
    n = len(frames) // cfg.frames
    if cfg.max_windows_per_clip:
        n = min(n, cfg.max_windows_per_clip)
    if n == 0:
        return torch.empty(0, cfg.frames, 3, cfg.size, cfg.size)
    x = torch.from_numpy(np.stack(frames[: n * cfg.frames])).permute(0, 3, 1, 2).float()
    h, w = x.shape[-2:]
    side = min(h, w)
    x = x[..., (h - side) // 2:(h - side) // 2 + side, (w - side) // 2:(w - side) // 2 + side]  # centre square
    x = F.interpolate(x, size=(cfg.size, cfg.size), mode="area") / 127.5 - 1
    return x.reshape(n, cfg.frames, 3, cfg.size, cfg.size)


def _fingerprint(ae) -> str:
    h = hashlib.sha256(type(ae).__qualname__.encode())
    for name in ("channels", "patch", "latent_channels", "downsample_factor"):
        h.update(repr(getattr(ae, name, None)).encode())
    if isinstance(ae, torch.nn.Module):
        for k, v in sorted(ae.state_dict().items()):
            h.update(k.encode())
            h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def _key(folder: Path, rows: list[dict], cfg: CuratedClipsConfig, ae) -> str:
    files = []
    for r in rows:
        st = (folder / r["clip_path"]).stat()
        files.append([r["clip_id"], r["clip_path"], st.st_size, st.st_mtime_ns, r["fps"], r["motion_score"]])
    blob = json.dumps({"files": files, "config": asdict(cfg), "ae": _fingerprint(ae), "layout": 2}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def curated_data(folder: str | os.PathLike, cfg: CuratedClipsConfig, ae, progress: bool = False,
                 image_encoder=None) -> tuple[TrainData, TrainData | None]:
    """(training windows, held-out windows or None) of a curation folder, encoded by `ae`; cached.
    `image_encoder` (e.g. `model.CLIPImageTokens`, for models with an external encoder): the clean first
    frames' tokens (N, L, D) go into `TrainData.context`, computed once and cached with the latents."""
    from genlab.systems.video.train import encode_clips

    folder = Path(folder)
    rows = select_rows(kept_rows(folder), cfg)
    key = _key(folder, rows, cfg, ae) + ("" if image_encoder is None else "-" + _fingerprint(image_encoder))
    cache = cache_dir("video_train") / f"curated-{key}.safetensors"
    if cache.is_file():
        state, _ = load_weights(cache)
    else:
        from tqdm.auto import tqdm

        video, bucket, fps, clip = [], [], [], []
        for i, r in enumerate(tqdm(rows, desc="decode clips", disable=not progress)):
            windows = decode_windows(folder / r["clip_path"], float(r["fps"]), cfg)
            video.append(windows)
            bucket.append(motion_bucket(r["motion_score"], cfg.motion_half).expand(len(windows)))
            fps.append(torch.full((len(windows),), fps_id(float(r["fps"]), frame_stride(r["fps"], cfg.target_fps))))
            clip.append(torch.full((len(windows),), i))
        video_t = torch.cat(video)
        if len(video_t) == 0:
            raise GenlabError(f"{folder / TABLE}: no kept clip has {cfg.frames} frames at about {cfg.target_fps} fps "
                              "(use fewer --frames)")
        data = encode_clips(video_t, torch.cat(bucket), ae, cfg.size, torch.cat(fps))
        state = {"latents": data.latents, "first": data.first_frames, "bucket": data.buckets,
                 "fps": torch.as_tensor(data.fps_id), "clip": torch.cat(clip),
                 "last": video_t[:, -1]}  # the last frames: interpolation's second conditioning frame
        if image_encoder is not None:
            with torch.no_grad():
                state["context"] = torch.cat([image_encoder(c).cpu() for c in data.first_frames.split(64)])
        save_weights(cache, state, {"clips": [r["clip_id"] for r in rows], "config": asdict(cfg)})
    n = state["latents"].shape[0]
    held = torch.zeros(n, dtype=torch.bool)
    if cfg.heldout_every and n >= 2:
        held[cfg.heldout_every - 1::cfg.heldout_every] = True
        held[-1] |= not held.any()  # fewer windows than heldout_every: hold out the last one

    def part(mask: torch.Tensor) -> TrainData:
        return TrainData(latents=state["latents"][mask], first_frames=state["first"][mask],
                         buckets=state["bucket"][mask], fps_id=state["fps"][mask],
                         context=state["context"][mask] if "context" in state else None,
                         last_frames=state["last"][mask])

    return part(~held), (part(held) if held.any() else None)
