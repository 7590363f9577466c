"""EDM training of the video model, one stage at a time (paper section 4 and App. D), on core/train's Trainer.

Each step: a batch of clips (latents, already encoded and scaled) -> one sigma per clip,
log sigma ~ N(P_mean, P_std^2) (core/flow `edm_v`: sigma_data = 1, v-prediction, c_noise = ln(sigma)/4,
loss weight (1 + sigma^2)/sigma^2 absorbed in the F-space MSE) -> conditioning from the clip's first frame
(noise-augmented with log sigma_aug ~ N(-3, 0.5^2), unscaled AE latent; the clean frame's image token;
[fps_id, motion_bucket_id, sigma_aug]) with the image conditioning dropped (zeroed) for a fraction of
samples (classifier-free guidance) -> AdamW step.

The image stage trains on single frames with image_only_indicator = 1, which bypasses every temporal
layer exactly (AlphaBlender), so it trains the image model inside the video UNet.

    data = encode_clips(video, buckets, ae, size=32, fps_id=6)      # video (N, T, 3, H, W) in [-1, 1]
    losses = train_stage(model, ae, data, stage("finetune"), out_dir="runs/x")   # -> runs/x/finetune/
    model = load_video_model("runs/x/finetune")                   # the stage's result (its EMA)

The loop, data order, noise streams, checkpoints (one atomic file per step, bit-identical resume), DDP
and mixed precision are core/train's; this module supplies the stage's maths (`stage_batch`, the loss).
A stage folder holds `config.json`, `checkpoints/`, and at the end `model.safetensors` (raw weights) and
`ema.safetensors` (the stage's result), each with its `VideoModelConfig` as JSON beside it (a LoRA stage:
both merged, and its adapters alone in `lora.safetensors`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from genlab.core.flow.formulation import edm_v
from genlab.core.io import atomic_write_text
from genlab.core.train import StepContext, TrainConfig, Trainer, dist_info, load_weights, save_weights
from genlab.errors import GenlabError
from genlab.systems.video.config import StageConfig, VideoModelConfig
from genlab.systems.video.model import SVDModel, resize_frames


@dataclass
class TrainData:
    """Everything a stage trains on, at the stage's resolution."""

    latents: torch.Tensor  # (N, T, C_z, h, w), scaled
    first_frames: torch.Tensor  # (N, 3, H, W) in [-1, 1], the clean conditioning frames
    buckets: torch.Tensor  # (N,) motion bucket ids
    fps_id: float | torch.Tensor = 6.0  # one value or (N,)
    context: torch.Tensor | None = None  # (N, L, D) image tokens, for models with an external encoder

    def tensors(self) -> dict[str, torch.Tensor]:
        """The per-sample tensors the Trainer indexes along dim 0."""
        n = self.latents.shape[0]
        out = {"latents": self.latents, "first": self.first_frames, "bucket": self.buckets.float(),
               "fps": torch.as_tensor(self.fps_id, dtype=torch.float32).reshape(-1).expand(n).clone()}
        if self.context is not None:
            out["context"] = self.context
        return out


def encode_clips(video: torch.Tensor, buckets: torch.Tensor, ae, size: int, fps_id: float | torch.Tensor = 6.0,
                 chunk: int = 64) -> TrainData:
    """Clips (N, T, 3, H, W) in [-1, 1] -> TrainData at `size` x `size` (area-resized, then encoded by `ae`)."""
    video = resize_frames(video, size)
    params = list(ae.parameters()) if isinstance(ae, torch.nn.Module) else []
    device = params[0].device if params else torch.device("cpu")
    with torch.no_grad():  # (N T, C_z, h, w), on the CPU (the Trainer moves each batch)
        lat = torch.cat([ae.encode(c.flatten(0, 1).to(device)).cpu() for c in video.split(chunk)])
    lat = lat.reshape(video.shape[0], video.shape[1], *lat.shape[1:])
    return TrainData(latents=lat, first_frames=video[:, 0], buckets=buckets, fps_id=fps_id)


def trainable_parameters(model: SVDModel, stage: StageConfig) -> list[torch.nn.Parameter]:
    if stage.train == "all":
        return list(model.parameters())
    if stage.train == "temporal":
        return model.unet.temporal_parameters()
    if stage.train == "lora":
        from genlab.systems.video.lora import lora_parameters

        params = lora_parameters(model)
        if not params:
            raise GenlabError("StageConfig.train='lora' but the model has no LoRA adapters (add_temporal_lora)")
        return params
    raise GenlabError(f"StageConfig.train must be 'all', 'temporal' or 'lora', got {stage.train!r}")


def stage_batch(model: SVDModel, ae, batch: dict[str, torch.Tensor], stage: StageConfig,
                ctx: StepContext) -> tuple[torch.Tensor, dict]:
    """(x0, conditions) of one batch; all randomness through `ctx` (global-batch streams, resumable)."""
    latents, first = batch["latents"], batch["first"]
    b = latents.shape[0]
    if stage.image_only:  # single frames (any frame of the clip) with image_only_indicator = 1
        frame = ctx.randint(0, latents.shape[1])
        x0 = latents[torch.arange(b, device=latents.device), frame][:, None]  # (B, 1, C, h, w)
    else:
        x0 = latents[:, : stage.frames]  # (B, T, C, h, w)
    sigma_aug = torch.exp(stage.cond_aug_mean + stage.cond_aug_std * ctx.randn())  # (B,) App. D.4
    cond_image = first + sigma_aug[:, None, None, None] * ctx.randn(*first.shape[1:])
    with torch.no_grad():
        image_latent = ae.encode_unscaled(cond_image)  # (B, C, h, w), the AE's mode, unscaled
    keep = (ctx.rand() >= stage.uncond_prob).to(x0.dtype)  # drop the image conditioning for CFG
    added = model.added_ids(b, batch["fps"], batch["bucket"], sigma_aug, device=x0.device)
    cond = model.conditioning(image_latent, None, added, x0.shape[1])
    cond["concat"] = cond["concat"] * keep[:, None, None, None, None]
    if model.image_encoder is not None:  # the token is computed inside the model's forward (DDP)
        cond["image"], cond["image_keep"] = first, keep
    elif "context" in batch:
        cond["context"] = batch["context"] * keep[:, None, None]
    else:
        raise GenlabError("training a model with an external image encoder needs TrainData.context (image tokens)")
    if stage.image_only:
        cond["image_only_indicator"] = torch.ones(b, 1, device=x0.device)
    return x0, cond


def stage_loss_fn(ae, stage: StageConfig):
    """loss_fn(model, batch, ctx) for the Trainer: EDM (sigma_data = 1, v) at the stage's P_mean / P_std."""
    form = edm_v(stage.p_mean, stage.p_std)

    def loss_fn(model, batch, ctx: StepContext) -> torch.Tensor:
        x0, cond = stage_batch(ctx.module, ae, batch, stage, ctx)
        t = ctx.sample(lambda n, g: form.sample_t(n, generator=g))
        eps = ctx.randn(*x0.shape[1:])
        return form.loss(model, x0, t=t, eps=eps, **cond).loss  # model(...) so DDP sees the forward

    return loss_fn


def stage_train_config(stage: StageConfig, checkpoint_every: int = 200, precision: str = "fp32",
                       parallel: str = "ddp") -> TrainConfig:
    """The stage as core/train settings: AdamW, warm-up over 10% (at most 50 steps), cosine decay to 10%,
    clipping at 1, EMA `stage.ema_decay` (0: the EMA is the raw model), a loss record per step; under
    torchrun DDP or FSDP2 (`parallel`, see `SVDModel.fsdp_units`)."""
    return TrainConfig(steps=stage.steps, batch_size=stage.batch_size, lr=stage.lr,
                       warmup_steps=max(1, min(50, stage.steps // 10)), lr_schedule="cosine", min_lr_ratio=0.1,
                       grad_clip=1.0, ema_decay=stage.ema_decay, checkpoint_every=checkpoint_every,
                       precision=precision, log_every=1, seed=stage.seed, parallel=parallel)


def train_stage(model: SVDModel, ae, data: TrainData, stage: StageConfig, out_dir: str | os.PathLike | None = None,
                *, checkpoint_every: int = 200, progress: bool = False, device: str | torch.device = "cpu",
                precision: str = "fp32", gradient_checkpointing: bool = False, parallel: str = "ddp") -> list[float]:
    """Train one stage in place; resumes from `out_dir/<stage>/checkpoints` if there are any. The model
    ends as the stage's EMA (what SVD releases). Returns the per-step losses of the whole stage.
    `gradient_checkpointing` recomputes each UNet block in the backward pass (same gradients, less memory);
    `parallel` = "fsdp" shards the model over torchrun's ranks (FSDP2) instead of replicating it (DDP)."""
    params = trainable_parameters(model, stage)
    model.unet.gradient_checkpointing = gradient_checkpointing
    model.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
    if isinstance(ae, torch.nn.Module):
        ae.to(device)
    folder = Path(out_dir) / stage.name if out_dir is not None else None
    try:
        trainer = Trainer(model, stage_loss_fn(ae, stage), data.tensors(), stage_train_config(stage, checkpoint_every,
                          precision, parallel), folder, config=model.config.to_dict(), device=device, progress=progress)
        result = trainer.fit()
        if folder is not None and dist_info().is_main:
            save_stage_weights(folder, result.model, result.ema.model)
            atomic_write_text(folder / "history.json", json.dumps(result.history, indent=1) + "\n")
        result.model.load_state_dict(result.ema.state_dict())
    finally:
        model.requires_grad_(True)
        model.unet.gradient_checkpointing = False
    model.eval()
    return [h["loss"] for h in result.history]


def save_stage_weights(folder: Path, raw: SVDModel, ema: SVDModel) -> None:
    """model.safetensors (raw) and ema.safetensors (the result), each with its VideoModelConfig as JSON; a
    LoRA run saves them merged (plain base keys, loadable by `load_video_model`) plus lora.safetensors (the
    EMA adapters with rank, alpha and base config, for `load_lora`)."""
    from genlab.systems.video.lora import LoRALinear, merged_state_dict, save_lora

    config = raw.config.to_dict()
    if any(isinstance(m, LoRALinear) for m in raw.modules()):
        save_lora(folder / "lora.safetensors", ema)
        save_weights(folder / "model.safetensors", merged_state_dict(raw), config)
        save_weights(folder / "ema.safetensors", merged_state_dict(ema), config)
    else:
        save_weights(folder / "model.safetensors", raw.state_dict(), config)
        save_weights(folder / "ema.safetensors", ema.state_dict(), config)


@torch.no_grad()
def heldout_loss(model: SVDModel, ae, data: TrainData, stage: StageConfig, seed: int = 0, batch_size: int = 32) -> float:
    """The stage's EDM loss on `data` with fixed noise (seeded per chunk) and no conditioning dropout:
    comparable between checkpoints of one model (e.g. before and after fine-tuning)."""
    from dataclasses import replace

    from genlab.core.train import DistInfo

    stage = replace(stage, uncond_prob=0.0)
    loss_fn = stage_loss_fn(ae, stage)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    tensors, n = data.tensors(), data.latents.shape[0]
    total = 0.0
    for i, start in enumerate(range(0, n, batch_size)):
        idx = torch.arange(start, min(n, start + batch_size))
        batch = {k: v[idx].to(device) for k, v in tensors.items()}
        ctx = StepContext(i, seed, DistInfo(), len(idx), device, model, idx)
        total += float(loss_fn(model, batch, ctx)) * len(idx)
    model.train(was_training)
    return total / n


def video_weights_file(path: str | os.PathLike) -> Path:
    """The weights file `load_video_model` reads for `path` (a stage folder's ema.safetensors, a folder's
    model.safetensors, or the file itself), its safetensors header checked (a truncated file fails here)."""
    from genlab.core.train.checkpoint import safetensors_header

    path = Path(path)
    if path.is_dir():
        found = [path / n for n in ("ema.safetensors", "model.safetensors") if (path / n).is_file()]
        if not found:
            raise GenlabError(f"{path}: no ema.safetensors or model.safetensors (give a stage folder written by "
                              "`genlab video train`, e.g. RUN/finetune, a `video convert --to genlab` folder, or a file)")
        path = found[0]
    if not path.is_file():
        raise GenlabError(f"{path}: not found (give a stage folder of `genlab video train` or a .safetensors file)")
    safetensors_header(path)
    return path


def load_video_model(path: str | os.PathLike) -> SVDModel:
    """The SVDModel in a stage folder written by `train_stage` (its `ema.safetensors`), a folder with a
    `model.safetensors` (e.g. `genlab video convert --to genlab`), or one weights file, each with its JSON
    config beside it; a wrong or incomplete file is one GenlabError naming it."""
    path = video_weights_file(path)
    state, config = load_weights(path)
    if config is None:
        raise GenlabError(f"{path}: no {path.with_suffix('.json').name} beside it (the VideoModelConfig)")
    try:
        model = SVDModel(VideoModelConfig.from_dict(config))
    except (KeyError, TypeError, ValueError) as err:
        raise GenlabError(f"{path.with_suffix('.json')}: not a VideoModelConfig ({err!r})") from None
    own = model.state_dict()
    unmapped, missing = sorted(set(state) - set(own)), sorted(set(own) - set(state))
    if unmapped or missing:
        raise GenlabError(f"{path}: unmapped keys {unmapped[:5]}, missing keys {missing[:5]}")
    wrong = [k for k in own if own[k].shape != state[k].shape]
    if wrong:
        raise GenlabError(f"{path}: {wrong[0]} has shape {tuple(state[wrong[0]].shape)}, the config expects "
                          f"{tuple(own[wrong[0]].shape)}")
    model.load_state_dict(state)
    return model.eval()
