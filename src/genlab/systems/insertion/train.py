"""Training: self-supervised pairs -> eps loss with the paper's condition dropout.

Each step draws u ~ U(0, 1) per sample: u < p_both drops scene and person (grey scene, all-ones mask,
grey person); p_both <= u < p_both + p_person drops the person only. The loss is SD's eps-MSE (or
v-MSE, `ModelConfig.prediction`) at a
discrete timestep n ~ U{0..999} (t = (n + 1) / 1000 on `LDMLinearPath`).

The toy renders a pool of pairs once (deterministic in the seed), encodes them with the autoencoder
once, and `core.train.Trainer` does the rest (AdamW, warm-up, clipping, EMA, resumable checkpoints).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from genlab.core.train import (
    TrainConfig,
    Trainer,
    config_from_dict,
    config_to_dict,
    load_weights,
    save_weights,
)
from genlab.errors import GenlabError
from genlab.systems.insertion import pairs
from genlab.systems.insertion.config import InsertionConfig
from genlab.systems.insertion.model import InsertionModel, SpaceToDepth, mask_to_latent, null_scene_pixels
from genlab.systems.insertion.pipeline import formulation_for

TRAIN_SEED_OFFSET = 1  # training pairs use seed + 1; evaluation pairs use their own fixed seed


def pair_config(cfg: InsertionConfig) -> pairs.PairConfig:
    return pairs.PairConfig(size=cfg.size, ref_size=cfg.ref_size)


def build_pool(cfg: InsertionConfig, n: int | None = None, seed: int | None = None, progress: bool = False,
               half_fraction: float = 0.1, mode: str = "same") -> dict[str, torch.Tensor]:
    """n training pairs (training mask mix; a fraction in half-box mode) as tensors in [-1, 1].
    mode='self' takes the reference from the target frame (Paint-by-Example's same-image pairs)."""
    from tqdm import tqdm

    n = cfg.train.pool if n is None else n
    seed = cfg.train.seed + TRAIN_SEED_OFFSET if seed is None else seed
    pcfg = pair_config(cfg)
    rng = np.random.default_rng(seed)
    modes = np.where(rng.uniform(size=n) < half_fraction, "half", mode)
    drawn = [pairs.make_pair(seed, k, pcfg, mode=str(modes[k])) for k in tqdm(range(n), desc="pairs", disable=not progress)]
    return pairs.collate(drawn)


def make_autoencoder(cfg: InsertionConfig, images: torch.Tensor | None = None, progress: bool = False):
    """Pixel identity, or the small f4 AE trained once on toy renders and cached."""
    if cfg.model.space == "pixel":
        return SpaceToDepth(cfg.model.patch)
    from genlab.core.autoencoders import small

    if images is None:
        images = build_pool(cfg, n=1024, seed=cfg.train.seed + 77)["target"]
    ae_cfg = small.tiny(latent_channels=cfg.model.latent_channels, steps=cfg.ae_steps, seed=cfg.train.seed)
    return small.train_or_load(ae_cfg, images, progress=progress)


@torch.no_grad()
def encode_pool(pool: dict[str, torch.Tensor], ae, mask_resize: str, batch: int = 128) -> dict[str, torch.Tensor]:
    """Latents of targets and scenes, masks at latent size (`ModelConfig.mask_resize`), references unchanged."""
    def enc(x):
        return torch.cat([ae.encode(x[i:i + batch]) for i in range(0, len(x), batch)])

    z_t = enc(pool["target"])
    out = {"z": z_t, "z_scene": enc(pool["scene"] * (1 - pool["mask"])),
           "mask": mask_to_latent(pool["mask"], z_t.shape[-2:], mask_resize), "reference": pool["reference"]}
    for k, v in out.items():
        if not torch.isfinite(v).all():
            raise GenlabError(f"training data: {k} contains NaN/inf (autoencoder diverged?)")
    return out


def _ae_key(ae) -> str:
    """A checksum of the autoencoder (its weights; the fold factor for pixel space)."""
    import hashlib

    h = hashlib.sha256(type(ae).__name__.encode())
    h.update(str(getattr(ae, "downsample_factor", 1)).encode())
    if isinstance(ae, torch.nn.Module):
        for k, v in sorted(ae.state_dict().items()):
            h.update(k.encode())
            h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def training_data(cfg: InsertionConfig, ae, n: int | None = None, seed: int | None = None, progress: bool = False,
                  mode: str = "same", cache: bool = True) -> dict[str, torch.Tensor]:
    """The encoded training pool (what the loss reads), rendered and encoded once and cached under
    GENLAB_CACHE/insertion keyed on the pair settings and the autoencoder's weights, so a training run
    never renders pairs or runs the autoencoder per step (or again on resume)."""
    import hashlib

    from genlab.systems.insertion.metrics import cache_dir

    n = cfg.train.pool if n is None else n
    seed = cfg.train.seed + TRAIN_SEED_OFFSET if seed is None else seed
    spec = json.dumps({"pairs": asdict(pair_config(cfg)), "n": n, "seed": seed, "mode": mode, "half": 0.1,
                       "ae": _ae_key(ae), "mask_resize": cfg.model.mask_resize, "v": 1}, sort_keys=True)
    path = cache_dir() / f"pool-{cfg.size}-{hashlib.sha256(spec.encode()).hexdigest()[:16]}.safetensors"
    if cache and path.is_file():
        data, _ = load_weights(path)
        return {k: v.float() for k, v in data.items()}
    data = encode_pool(build_pool(cfg, n=n, seed=seed, progress=progress, mode=mode), ae, cfg.model.mask_resize)
    if cache:
        save_weights(path, data)
    return data


def pairs_pool(folders: list[str | Path], cfg: InsertionConfig) -> dict[str, torch.Tensor]:
    """The pairs of one or more folders written by `genlab insertion pairs` (toy shards, real pairs from
    `--video`, or both) as one training pool in [-1, 1]; their image and reference sizes must be the
    preset's."""
    drawn = []
    for folder in folders:
        found, settings = pairs.read_pairs(folder)
        pc = settings.get("config", {})
        if (pc.get("size"), pc.get("ref_size")) != (cfg.size, cfg.ref_size):
            raise GenlabError(f"--pairs {folder}: pairs of {pc.get('size')} px with {pc.get('ref_size')} px references; "
                              f"this preset trains on {cfg.size} px with {cfg.ref_size} px references (write them with "
                              f"`genlab insertion pairs --size {cfg.size}`)")
        drawn += found
    return pairs.collate(drawn)


def make_loss_fn(cfg: InsertionConfig, z_null: torch.Tensor, p_both: float | None = None,
                 p_person: float | None = None):
    """loss_fn(model, batch, ctx) for core.train.Trainer; z_null is the latent of the grey scene (1, C, h, w)."""
    form = formulation_for(cfg.model)
    p_both = cfg.train.p_drop_both if p_both is None else p_both
    p_person = cfg.train.p_drop_person if p_person is None else p_person

    def loss_fn(model, batch, ctx):
        z, z_scene, mask, ref = batch["z"], batch["z_scene"], batch["mask"], batch["reference"]
        u = ctx.rand()  # (B,)
        both = (u < p_both).view(-1, 1, 1, 1).to(z.dtype)
        person = (u < p_both + p_person).view(-1, 1, 1, 1).to(z.dtype)
        z_scene = z_scene * (1 - both) + z_null * both
        mask = mask * (1 - both) + both
        ref = ref * (1 - person)  # grey = 0
        n = ctx.randint(0, form.path.num_steps)  # discrete timestep
        t = form.path.timestep_to_t(n).to(z.dtype)
        eps = ctx.randn(*z.shape[1:])
        out = form.loss(model, z, t=t, eps=eps, scene=z_scene, mask=mask, reference=ref)
        return out.loss

    return loss_fn


def train(cfg: InsertionConfig, out_dir: str | Path | None = None, progress: bool = True,
          p_both: float | None = None, p_person: float | None = None, pool: dict | None = None,
          ae=None, on_log=None, mode: str = "same", log_every: int = 25):
    """Train the insertion model; returns (EMA model, autoencoder, history). Resumes from out_dir.
    mode='self' trains on Paint-by-Example's same-image pairs (the peer benchmark's variant)."""
    torch.manual_seed(cfg.train.seed)
    if out_dir is not None and (Path(out_dir) / "config.json").is_file():
        old = json.loads((Path(out_dir) / "config.json").read_text()).get("model")
        if old != json.loads(json.dumps(config_to_dict(cfg))):
            raise GenlabError(f"{out_dir}: holds a run with a different config; resume only with the same "
                              "config, or choose another --out")
    if ae is None:
        ae = make_autoencoder(cfg, None if pool is None else pool["target"][:1024], progress=progress)
    data = training_data(cfg, ae, progress=progress, mode=mode) if pool is None else encode_pool(pool, ae, cfg.model.mask_resize)
    with torch.no_grad():
        grey, _ = null_scene_pixels(torch.zeros(1, 3, cfg.size, cfg.size))
        z_null = ae.encode(grey)
    model = InsertionModel(cfg.model)
    tcfg = TrainConfig(steps=cfg.train.steps, batch_size=cfg.train.batch_size, lr=cfg.train.lr,
                       warmup_steps=cfg.train.warmup_steps, ema_decay=cfg.train.ema_decay, grad_clip=1.0,
                       checkpoint_every=cfg.train.checkpoint_every, seed=cfg.train.seed, log_every=log_every)
    trainer = Trainer(model, make_loss_fn(cfg, z_null, p_both, p_person), data, tcfg, out_dir=out_dir,
                      config=config_to_dict(cfg), progress=progress, on_log=on_log)
    result = trainer.fit()
    ema_model = result.ema.model.eval()
    if out_dir is not None:
        save_model(Path(out_dir), ema_model, ae, cfg)
    return ema_model, ae, result.history


def save_model(out_dir: Path, model: InsertionModel, ae, cfg: InsertionConfig) -> None:
    """model.safetensors (+ .json config) and, for latent space, ae.safetensors (+ .json)."""
    save_weights(out_dir / "model.safetensors", model.state_dict(), config_to_dict(cfg))
    if cfg.model.space == "latent":
        from genlab.core.autoencoders import small

        small.save(ae, out_dir / "ae.safetensors")


def load_model(run_dir: str | Path) -> tuple[InsertionModel, object, InsertionConfig]:
    """Load what `save_model` wrote; precise errors for missing or mismatched weights."""
    from genlab.systems.insertion.encoder import load_state_strict

    run_dir = Path(run_dir)
    path = run_dir / "model.safetensors"
    if not path.is_file():
        raise GenlabError(f"insertion: no trained model at {path} (run `genlab insertion train --out {run_dir}`)")
    state, raw = load_weights(path)
    if raw is None:
        raise GenlabError(f"insertion: {path} has no config beside it ({path}.json or metadata)")
    # runs saved before these fields existed were all trained with max-pooled masks and sampled to clean data
    if isinstance(raw.get("model"), dict):
        raw["model"].setdefault("mask_resize", "max")
    if isinstance(raw.get("sample"), dict):
        raw["sample"].setdefault("set_alpha_to_one", True)
    cfg = config_from_dict(InsertionConfig, raw, source=str(path))
    model = InsertionModel(cfg.model)
    load_state_strict(model, state, str(path))
    if cfg.model.space == "latent":
        from genlab.core.autoencoders import small

        ae = small.load(run_dir / "ae.safetensors")
    else:
        ae = SpaceToDepth(cfg.model.patch)
    return model.eval(), ae, cfg


def write_history(path: Path, history: list[dict]) -> None:
    from genlab.core.io import atomic_write_text

    atomic_write_text(path, json.dumps(history, indent=1))


__all__ = ["build_pool", "pairs_pool", "make_autoencoder", "encode_pool", "training_data", "make_loss_fn", "train", "save_model", "load_model",
           "pair_config", "write_history", "asdict"]
