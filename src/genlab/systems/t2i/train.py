"""Training entry point of the t2i system (used by `genlab t2i train`, `genlab demo` and the study).

    from genlab.systems.t2i.config import digits
    from genlab.systems.t2i.train import train_t2i, validation_loss
    from genlab.systems.t2i.pipeline import generate

    run = train_t2i(digits(), images, captions, out_dir="runs/digits")   # images (N, C, H, W) in [-1, 1]
    run.model, run.ema, run.history                                       # T2IModel (raw, EMA), loss records
    x = generate(run.ema, ["a handwritten digit seven"], steps=20, guidance_scale=3.0)
    val = validation_loss(run.ema, images[:256], captions[:256])          # SD3 5.3.3: 8 levels, averaged

    run = train_on_data(tiny(), "photos/", "runs/mine", vae=None, options=DataOptions(resolution=32))
    run.autoencoder.decode(generate(run.ema, ["a red square"]))          # a user's images, as latents

`formulation=` swaps rectified flow + logit-normal (the default, SD3's best) for any
`genlab.core.flow.formulation` preset (uniform rf, mode, CosMap, eps/v-prediction, EDM).
Training is `genlab.core.train.Trainer`: AdamW, warm-up, clipping, EMA, checkpoints that resume
bit-identically, DDP under torchrun (noise, t and CFG dropout are drawn per global batch, so N
processes with batch b train exactly like 1 process with batch N b).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from genlab.core.cond.text import dropout_keep
from genlab.core.flow.formulation import Formulation, velocity_mse_at_levels
from genlab.core.flow.grids import shift as shift_t
from genlab.core.io import atomic_write_text
from genlab.core.train import StepContext, Trainer, dist_info
from genlab.errors import GenlabError
from genlab.systems.t2i.config import T2IConfig
from genlab.systems.t2i.pipeline import T2IModel, build_model, default_formulation, save_model


@dataclass
class T2IRun:
    model: T2IModel  # raw weights
    ema: T2IModel  # EMA weights (use these for sampling)
    history: list[dict[str, float]]
    config: T2IConfig
    out_dir: Path | None
    formulation: Formulation


def caption_table(captions: list[str]) -> tuple[list[str], torch.Tensor]:
    """Unique captions (first-seen order) and each sample's index into them."""
    uniq: dict[str, int] = {}
    ids = [uniq.setdefault(c, len(uniq)) for c in captions]
    return list(uniq), torch.tensor(ids, dtype=torch.long)


def make_loss_fn(form: Formulation, cfg: T2IConfig, n_encoders: int) -> Callable:
    """loss_fn(model, batch, ctx) for the Trainer: t from the formulation's density (shifted when
    cfg.shift != 1), eps and per-encoder CFG dropout drawn through ctx (global-batch streams)."""

    def loss_fn(model, batch, ctx: StepContext):
        x0 = batch["x"]
        t = ctx.sample(lambda n, g: form.sample_t(n, generator=g)).to(x0.device, x0.dtype)
        if cfg.shift != 1.0:
            t = shift_t(t.double(), cfg.shift).to(x0.dtype)
        eps = ctx.randn(*x0.shape[1:])
        keep = dropout_keep(ctx.rand(n_encoders), cfg.text.dropout)
        out = form.loss(model, x0, t=t, eps=eps, caption=batch["caption"], keep=keep)
        return out.loss

    return loss_fn


def check_data(cfg: T2IConfig, images: torch.Tensor, captions: list[str]) -> None:
    if images.ndim != 4:
        raise GenlabError(f"training images: expected (N, C, H, W), got shape {tuple(images.shape)}")
    if images.shape[0] != len(captions):
        raise GenlabError(f"training data: {images.shape[0]} images but {len(captions)} captions")
    if images.shape[1] != cfg.model.in_channels or tuple(images.shape[2:]) != tuple(cfg.image_size):
        raise GenlabError(f"training images: expected (N, {cfg.model.in_channels}, {cfg.image_size[0]}, "
                          f"{cfg.image_size[1]}) for this config, got {tuple(images.shape)}")


def train_t2i(cfg: T2IConfig, images: torch.Tensor, captions: list[str], out_dir: str | Path | None = None, *,
              formulation: Formulation | None = None, device: str | torch.device = "cpu",
              progress: bool = True, on_log=None, on_checkpoint=None, model: T2IModel | None = None) -> T2IRun:
    """Train a T2IModel on (images, captions); resumes from out_dir's newest checkpoint.

    Writes (rank 0) out_dir/config.json, checkpoints/step_*.safetensors during training and, at the
    end, model.safetensors / ema.safetensors (+ .json configs) and history.json.
    """
    check_data(cfg, images, captions)
    form = formulation or default_formulation(cfg)
    torch.manual_seed(cfg.train.seed)
    model = model if model is not None else build_model(cfg, device)
    uniq, ids = caption_table(list(captions))
    model.set_captions(uniq)
    data = {"x": images.float(), "caption": ids}
    trainer = Trainer(model, make_loss_fn(form, cfg, model.text.num_encoders), data, cfg.train, out_dir,
                      config=cfg, device=device, progress=progress, on_log=on_log, on_checkpoint=on_checkpoint)
    result = trainer.fit()
    ema = result.ema.model
    ema.set_captions(uniq)
    out = Path(out_dir) if out_dir is not None else None
    if out is not None and dist_info().is_main:
        save_model(out, result.model, ema, cfg)
        atomic_write_text(out / "history.json", json.dumps(result.history, indent=1) + "\n")
    return T2IRun(result.model, ema, result.history, cfg, out, form)


@torch.no_grad()
def validation_loss(model: T2IModel, images: torch.Tensor, captions: list[str], formulation: Formulation | None = None,
                    seed: int = 0, levels: int = 8, batch_size: int = 256) -> float:
    """SD3 5.3.3: the rectified-flow velocity error at `levels` equally spaced t in (0, 1) (midpoints),
    fixed noise (seed), averaged over levels; comparable across formulations."""
    form = formulation or default_formulation(model.cfg)
    device = next(model.parameters()).device
    g = torch.Generator().manual_seed(seed)
    eps_all = torch.randn(images.shape, generator=g)
    ts = (torch.arange(levels, dtype=torch.float64) + 0.5) / levels
    total, n = torch.zeros(levels, dtype=torch.float64), 0
    model.eval()
    for i in range(0, images.shape[0], batch_size):
        x0 = images[i:i + batch_size].float().to(device)
        emb = model.text(list(captions[i:i + batch_size]))
        per = velocity_mse_at_levels(form, model, x0, eps_all[i:i + batch_size].to(device), ts,
                                     context=emb.context, pooled=emb.pooled)
        total += per.cpu() * x0.shape[0]
        n += x0.shape[0]
    return float((total / n).mean())


# ----------------------------------------------------------------------------- a user's images
@dataclass
class DataRun(T2IRun):
    autoencoder: object = None  # prepare.AutoencoderUser: decode(ema samples) gives images
    stats: object = None  # prepare.DataStats


def fit_config_to_latents(cfg: T2IConfig, channels: int, factor: int, buckets: list[tuple[int, int]]) -> T2IConfig:
    """The preset's backbone with the autoencoder's channels, the square bucket as the default sample size
    and a position table large enough for every bucket (the table is centre-cropped per bucket)."""
    p = cfg.model.patch_size
    side = max(max(h, w) for h, w in buckets) // factor // p
    model = replace(cfg.model, in_channels=channels, out_channels=channels,
                    pos_embed_max_size=max(side, cfg.model.pos_embed_max_size))
    h, w = buckets[0]
    return replace(cfg, model=model, image_size=(h // factor, w // factor))


def train_on_data(cfg: T2IConfig, data: str | Path, out_dir: str | Path, *, vae: str | Path | None = None,
                  options=None, validation_prompts: list[str] | None = None, sample_every: int = 0,
                  gradient_checkpointing: bool = False, device: str | torch.device = "cpu",
                  progress: bool = True, on_log=None) -> DataRun:
    """Latent training on a user's captioned images (folder, .jsonl/.csv or WebDataset shards).

    Images go through `vae` (a diffusers AutoencoderKL folder or a genlab autoencoder file) or, when
    None, genlab's small autoencoder trained on the data first (kept as out_dir/autoencoder.safetensors);
    latents are cached on disk (`prepare.py`), batches come from one aspect-ratio bucket each.
    Writes what `train_t2i` writes plus skipped.jsonl, data.json, samples/step_XXXXXX.png and loss.png.
    """
    from genlab.core.train import BucketSampler
    from genlab.systems.t2i.imagedata import read_records
    from genlab.systems.t2i.prepare import DataOptions, autoencoder_for, frozen_text_embeddings, prepare

    opts = options or DataOptions()
    out = Path(out_dir)
    info = dist_info()
    records, report = read_records(data, opts.image_column, opts.caption_column, opts.require_captions)
    ae = autoencoder_for(records, opts, out, vae, progress=progress)
    ae.module.to(device)
    prep = prepare(records, ae, opts, out, progress=progress)
    prep.stats.missing_captions = report.missing_captions
    cfg = fit_config_to_latents(cfg, prep.latent_channels, prep.factor, prep.bucket_sizes)
    form = default_formulation(cfg)
    torch.manual_seed(cfg.train.seed)
    model = build_model(cfg, device)
    if gradient_checkpointing:
        if not hasattr(model.backbone, "gradient_checkpointing"):
            raise GenlabError("--gradient-checkpointing: only the MM-DiT backbone supports it")
        model.backbone.gradient_checkpointing = True
    frozen, prep.stats.text_encoded = frozen_text_embeddings(model, prep.captions, progress=progress)
    model.set_captions(prep.captions, frozen)
    prompts = list(validation_prompts or prep.captions[:4])
    if info.is_main:
        atomic_write_text(out / "data.json", json.dumps({
            "data": str(data), "autoencoder": ae.label, "encoder_key": ae.key, "images": prep.stats.images,
            "encoded_this_run": prep.stats.encoded, "captions_encoded_this_run": prep.stats.text_encoded, "skipped": prep.stats.skipped, "too_small": prep.stats.too_small,
            "missing_captions": report.missing_captions, "buckets": prep.stats.per_bucket}, indent=1) + "\n")

    def on_step(step: int, trainer: Trainer) -> None:
        if sample_every and (step % sample_every == 0 or step == trainer.cfg.steps):
            render_samples(trainer.ema.model, ae, prompts, out / "samples" / f"step_{step:06d}.png")
            write_loss_plot(trainer.history, out / "loss.png")

    trainer = Trainer(model, make_loss_fn(form, cfg, model.text.num_encoders), prep.dataset, cfg.train, out,
                      config=cfg, device=device, progress=progress, on_log=on_log, on_step=on_step,
                      sampler=BucketSampler(prep.buckets, cfg.train.seed))
    result = trainer.fit()
    ema = result.ema.model
    ema.set_captions(prep.captions, frozen)
    if info.is_main:
        save_model(out, result.model, ema, cfg)
        atomic_write_text(out / "history.json", json.dumps(result.history, indent=1) + "\n")
        if result.history:
            write_loss_plot(result.history, out / "loss.png")
    return DataRun(result.model, ema, result.history, cfg, out, form, ae, prep.stats)


@torch.no_grad()
def render_samples(model: T2IModel, ae, prompts: list[str], path: Path, steps: int = 20, guidance: float = 3.0,
                   seed: int = 0) -> Path:
    """One image per validation prompt, decoded by the autoencoder, as one PNG row."""
    from genlab.systems.t2i.pipeline import generate, save_grid

    z = generate(model, prompts, steps=steps, guidance_scale=guidance, seed=seed)
    x = ae.decode(z.to(next(ae.module.parameters()).device)).float().cpu()
    return save_grid(x, path, nrow=len(prompts), upscale=max(1, 64 // max(x.shape[-2:])))


def write_loss_plot(history: list[dict], path: Path) -> Path | None:
    if not history:
        return None
    from genlab.systems.t2i.cli import save_loss_curve  # the demo's plot; one way to draw it

    return save_loss_curve(history, path)
