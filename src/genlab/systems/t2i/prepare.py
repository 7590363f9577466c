"""From a user's images to cached latents in aspect-ratio buckets (what `train_on_data` trains on).

    ae = autoencoder_for(records, opts, run_dir, vae_path)     # --vae PATH, or genlab's small AE trained here
    data = prepare(records, ae, opts, run_dir)                 # encodes only what the cache lacks
    data.dataset[i] -> {"x": latent (C, h, w), "caption": id}; data.buckets[i]; data.captions; data.stats

Latents live in `cache_dir("t2i-latents")/<encoder key>/` (see `shards.py`), keyed by file content,
bucket and crop; unreadable and too-small images are listed in RUN/skipped.jsonl with the reason.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn

from genlab.core.io import atomic_write_text, cache_dir
from genlab.core.train import barrier, dist_info
from genlab.errors import GenlabError
from genlab.systems.t2i.imagedata import Record, decode, fit_to_bucket, image_size, make_buckets, pick_bucket
from genlab.systems.t2i.shards import ShardCache, content_hash, file_hash


@dataclass(frozen=True)
class DataOptions:
    resolution: int = 32  # buckets hold about resolution^2 pixels
    image_column: str = "image"  # .jsonl / .csv columns
    caption_column: str = "caption"
    require_captions: bool = False
    aspect_buckets: bool = True  # False: one square bucket
    crop: Literal["center", "random"] = "center"  # random crops are seeded by the file content (cache-stable)
    channels: int = 3  # 1: grey images
    ae_steps: int = 1500  # genlab's small autoencoder, when no --vae is given
    ae_images: int = 2048  # how many images it is trained on (at most)
    encode_batch: int = 32
    shard_rows: int = 1024


@dataclass
class DataStats:
    images: int = 0
    encoded: int = 0  # autoencoder calls' images this run (0 when the cache had everything)
    skipped: int = 0
    too_small: int = 0
    missing_captions: int = 0  # trained with the empty caption
    text_encoded: int = 0  # captions run through a frozen text encoder this run (0: all cached)
    per_bucket: dict[str, int] = field(default_factory=dict)


class LatentRows(torch.utils.data.Dataset):
    """Map-style view of cached latents: rows are read from the memory-mapped shards on demand."""

    def __init__(self, cache: ShardCache, keys: list[str], caption_ids: list[int]):
        self.cache, self.keys, self.caption_ids = cache, keys, caption_ids

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        x = torch.from_numpy(np.array(self.cache.row(self.keys[i]), dtype=np.float32))
        return {"x": x, "caption": torch.tensor(self.caption_ids[i])}


@dataclass
class Prepared:
    dataset: LatentRows
    buckets: list[int]  # bucket index of each row
    bucket_sizes: list[tuple[int, int]]  # pixel (h, w) per bucket
    captions: list[str]  # unique captions; dataset rows index them
    stats: DataStats
    latent_channels: int
    factor: int


class AutoencoderUser:
    """What prepare() needs of an autoencoder: encode/decode, channels, factor and a cache key."""

    def __init__(self, module: nn.Module, key: str, label: str):
        self.module, self.key, self.label = module, key, label
        self.calls, self.images = 0, 0  # encode calls and images encoded (the cache tests count them)

    @property
    def latent_channels(self) -> int:
        return int(self.module.latent_channels)

    @property
    def factor(self) -> int:
        return int(self.module.downsample_factor)

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        self.images += x.shape[0]
        return self.module.encode(x)

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.module.decode(z)


def load_vae(path: str | os.PathLike, channels: int) -> AutoencoderUser:
    """--vae PATH: a diffusers AutoencoderKL folder (SD3's 16-channel one included) or a genlab small-AE
    .safetensors (+ .json), e.g. RUN/autoencoder.safetensors of an earlier run."""
    from genlab.core.autoencoders import kl, small

    path = Path(path)
    if not path.exists():
        raise GenlabError(f"--vae {path}: no such file or folder")
    if path.is_dir():
        sub = path / "vae" if (path / "vae" / "config.json").is_file() else path
        module = kl.DiffusersKL.from_local(sub)
        files = [sub / "config.json"] + sorted(sub.glob("*.safetensors"))
        ae = AutoencoderUser(module, file_hash(files), f"AutoencoderKL {sub}")
        in_ch = int(module.vae.config.in_channels)
    elif path.suffix == ".safetensors":
        from genlab.core.train import load_weights

        load_weights(path)  # a missing, truncated or corrupt file is one clear error, before anything runs
        try:
            module = small.load(path)
        except (ValueError, TypeError, KeyError, RuntimeError) as err:
            raise GenlabError(f"--vae {path}: not a genlab autoencoder ({type(err).__name__}: "
                              f"{str(err).splitlines()[0] if str(err) else ''})") from None
        ae = AutoencoderUser(module, file_hash([path, path.with_suffix(".json")]), f"small AE {path}")
        in_ch = module.config.in_channels
    else:
        raise GenlabError(f"--vae {path}: expected a diffusers AutoencoderKL folder or a genlab autoencoder .safetensors")
    if in_ch != channels:
        raise GenlabError(f"--vae {path}: takes {in_ch}-channel images, the data is read with {channels} channel(s)")
    return ae


def autoencoder_for(records: list[Record], opts: DataOptions, run_dir: Path | None,
                    vae_path: str | os.PathLike | None = None, progress: bool = False) -> AutoencoderUser:
    """The --vae, or genlab's small autoencoder: trained on (a seeded sample of) the data on the first run,
    stored as RUN/autoencoder.safetensors, reused by the next run into RUN (and by --vae elsewhere)."""
    if vae_path is not None:
        return load_vae(vae_path, opts.channels)
    from genlab.core.autoencoders import small

    if run_dir is None:
        raise GenlabError("training a small autoencoder needs a run folder to keep it in (or give --vae)")
    path = run_dir / "autoencoder.safetensors"
    if dist_info().is_main and not path.is_file():
        images = _sample_images(records, opts)
        cfg = small.SmallAEConfig(in_channels=opts.channels, latent_channels=4, channels=(32, 64), groups=8,
                                  steps=opts.ae_steps, batch_size=32, lr=2e-3)
        small.save(small.train(cfg, images, progress=progress), path)
    barrier()
    return load_vae(path, opts.channels)


def _sample_images(records: list[Record], opts: DataOptions) -> torch.Tensor:
    side = opts.resolution
    order = np.random.default_rng(0).permutation(len(records))
    out = []
    for i in order:
        try:
            img = decode(records[int(i)].read(), opts.channels)
        except Exception:  # noqa: BLE001 - unreadable files are reported by prepare()
            continue
        if min(img.size) >= side:
            out.append(fit_to_bucket(img, (side, side), "center"))
        if len(out) >= opts.ae_images:
            break
    if not out:
        raise GenlabError(f"no readable image of at least {side}x{side} pixels to train the autoencoder on")
    return torch.from_numpy(np.stack(out))


def prepare(records: list[Record], ae: AutoencoderUser, opts: DataOptions, run_dir: Path | None,
            progress: bool = False) -> Prepared:
    """Bucket every record, encode those the cache lacks (rank 0), write RUN/skipped.jsonl; all ranks
    then open the same cache."""
    from tqdm.auto import tqdm

    info = dist_info()
    multiple = ae.factor * 2  # the MM-DiT patch size is 2 in every preset
    sizes = make_buckets(opts.resolution, multiple) if opts.aspect_buckets else make_buckets(opts.resolution, multiple, ((1, 1),))
    cache = ShardCache(cache_dir("t2i-latents") / f"{ae.key}-c{opts.channels}")
    stats, skipped = DataStats(), []
    keys, buckets, caption_of, todo = [], [], [], []
    for r in tqdm(records, desc="index", disable=not (progress and info.is_main), dynamic_ncols=True):
        try:
            data = r.read()
            w, h = image_size(data)
        except Exception as err:  # noqa: BLE001 - any unreadable file is skipped, with the reason
            skipped.append({"source": r.source, "reason": f"unreadable: {type(err).__name__}: {err}"[:300]})
            continue
        b = pick_bucket(w, h, sizes)
        if b is None:
            stats.too_small += 1
            skipped.append({"source": r.source, "reason": f"too small: {w}x{h} < smallest bucket side {min(min(s) for s in sizes)}"})
            continue
        digest = content_hash(data)
        key = f"{digest}-{sizes[b][0]}x{sizes[b][1]}-{opts.crop}"
        if key not in cache:
            todo.append((r, data, b, key, digest))
        keys.append(key)
        buckets.append(b)
        caption_of.append(r.caption or "")
    if info.is_main and todo:
        failed = _encode(todo, ae, sizes, opts, cache, progress)
        for source, reason in failed:
            skipped.append({"source": source, "reason": reason})
    barrier()
    if info.world_size > 1:
        cache = ShardCache(cache.folder)  # re-read the index rank 0 wrote
    keep = [i for i, k in enumerate(keys) if k in cache]
    stats.encoded = ae.images
    stats.skipped = len(skipped)
    keys, buckets, caption_of = [keys[i] for i in keep], [buckets[i] for i in keep], [caption_of[i] for i in keep]
    if not keys:
        raise GenlabError(f"no usable image: all {len(records)} were skipped (see skipped.jsonl in the run folder)")
    uniq: dict[str, int] = {}
    ids = [uniq.setdefault(c, len(uniq)) for c in caption_of]
    stats.images = len(keys)
    stats.per_bucket = {f"{sizes[b][0]}x{sizes[b][1]}": buckets.count(b) for b in sorted(set(buckets))}
    if run_dir is not None and info.is_main:
        atomic_write_text(run_dir / "skipped.jsonl", "".join(json.dumps(s) + "\n" for s in skipped))
    return Prepared(LatentRows(cache, keys, ids), buckets, sizes, list(uniq), stats, ae.latent_channels, ae.factor)


def _encode(todo, ae: AutoencoderUser, sizes, opts: DataOptions, cache: ShardCache, progress: bool):
    """Encode per bucket in batches; a shard is published every `shard_rows` rows (resume point)."""
    from tqdm.auto import tqdm

    failed, bar = [], tqdm(total=len(todo), desc="encode", disable=not progress, dynamic_ncols=True)
    device = next(ae.module.parameters()).device
    for b in sorted({t[2] for t in todo}):
        pending_keys, pending = [], []
        group = [t for t in todo if t[2] == b]
        for start in range(0, len(group), opts.encode_batch):
            pixels, batch_keys = [], []
            for r, data, _, key, digest in group[start:start + opts.encode_batch]:
                try:
                    img = decode(data, opts.channels)
                except Exception as err:  # noqa: BLE001 - truncated / corrupt: skipped with the reason
                    failed.append((r.source, f"unreadable: {type(err).__name__}: {err}"[:300]))
                    continue
                pixels.append(fit_to_bucket(img, sizes[b], opts.crop, seed=int(digest[:8], 16)))
                batch_keys.append(key)
            bar.update(len(group[start:start + opts.encode_batch]))
            if not pixels:
                continue
            z = ae.encode(torch.from_numpy(np.stack(pixels)).to(device)).float().cpu().numpy()
            pending_keys += batch_keys
            pending.append(z)
            if len(pending_keys) >= opts.shard_rows:
                cache.add(pending_keys, np.concatenate(pending))
                pending_keys, pending = [], []
        if pending_keys:
            cache.add(pending_keys, np.concatenate(pending))
    bar.close()
    return failed


def frozen_text_embeddings(model, captions: list[str], progress: bool = False) -> tuple[list | None, int]:
    """Embeddings of every caption by each frozen text encoder (MiniLM, CLIP, T5; the built-in one trains
    and has none), cached on disk like the latents: `cache_dir("t2i-text")/<encoder>/`, one row per caption
    (keyed by its text). Returns (one TextEmbedding per frozen encoder or None, captions encoded this run)."""
    from genlab.core.cond.text import TextEmbedding

    text = model.cfg.text
    specs = [s for s in text.encoders if s != "builtin"]
    if not specs:
        return None, 0
    root = cache_dir("t2i-text")
    caches = [(ShardCache(root / f"{content_hash(f'{s}|{text.max_length}'.encode())[:16]}" / "context"),
               ShardCache(root / f"{content_hash(f'{s}|{text.max_length}'.encode())[:16]}" / "pooled")) for s in specs]
    keys = [content_hash(c.encode()) for c in captions]
    missing = [i for i, k in enumerate(keys) if any(k not in ctx or k not in pooled for ctx, pooled in caches)]
    if dist_info().is_main:
        for start in range(0, len(missing), 256):
            chunk = missing[start:start + 256]
            with torch.no_grad():
                embs = model.text.frozen_embeddings([captions[i] for i in chunk])
            for (ctx, pooled), emb in zip(caches, embs):
                ctx.add([keys[i] for i in chunk], emb.context.float().cpu().numpy())
                pooled.add([keys[i] for i in chunk], emb.pooled.float().cpu().numpy())
    barrier()
    out = []
    for ctx, pooled in caches:
        ctx, pooled = ShardCache(ctx.folder), ShardCache(pooled.folder)
        out.append(TextEmbedding(torch.from_numpy(np.stack([ctx.row(k) for k in keys])),
                                 torch.from_numpy(np.stack([pooled.row(k) for k in keys]))))
    return out, len(missing)
