"""Training entry point of the t2i system (used by `genlab t2i train`, `genlab demo` and the study).

    from genlab.systems.t2i.config import digits
    from genlab.systems.t2i.train import train_t2i, validation_loss
    from genlab.systems.t2i.pipeline import generate

    run = train_t2i(digits(), images, captions, out_dir="runs/digits")   # images (N, C, H, W) in [-1, 1]
    run.model, run.ema, run.history                                       # T2IModel (raw, EMA), loss records
    x = generate(run.ema, ["a handwritten digit seven"], steps=20, guidance_scale=3.0)
    val = validation_loss(run.ema, images[:256], captions[:256])          # SD3 5.3.3: 8 levels, averaged

`formulation=` swaps rectified flow + logit-normal (the default, SD3's best) for any
`genlab.core.flow.formulation` preset (uniform rf, mode, CosMap, eps/v-prediction, EDM).
Training is `genlab.core.train.Trainer`: AdamW, warm-up, clipping, EMA, checkpoints that resume
bit-identically, DDP under torchrun (noise, t and CFG dropout are drawn per global batch, so N
processes with batch b train exactly like 1 process with batch N b).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
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
