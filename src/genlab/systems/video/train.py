"""EDM training of the video model, one stage at a time (paper section 4 and App. D).

Each step: a batch of clips (latents, already encoded and scaled) -> one sigma per clip,
log sigma ~ N(P_mean, P_std^2) (core/flow `edm_v`: sigma_data = 1, v-prediction, c_noise = ln(sigma)/4,
loss weight (1 + sigma^2)/sigma^2 absorbed in the F-space MSE) -> conditioning from the clip's first frame
(noise-augmented with log sigma_aug ~ N(-3, 0.5^2), unscaled AE latent; the clean frame's image token;
[fps_id, motion_bucket_id, sigma_aug]) with the image conditioning dropped (zeroed) for a fraction of
samples (classifier-free guidance) -> AdamW step.

The image stage trains on single frames with image_only_indicator = 1, which bypasses every temporal
layer exactly (AlphaBlender), so it trains the image model inside the video UNet. Training is resumable:
a checkpoint (weights, optimizer, step, RNG) is written atomically every `checkpoint_every` steps.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from genlab.core.flow.formulation import edm_v
from genlab.core.io import atomic_path, atomic_write_text
from genlab.errors import GenlabError
from genlab.systems.video.config import StageConfig
from genlab.systems.video.model import SVDModel


@dataclass
class TrainData:
    """Everything a stage trains on, at the stage's resolution."""

    latents: torch.Tensor  # (N, T, C_z, h, w), scaled
    first_frames: torch.Tensor  # (N, 3, H, W) in [-1, 1], the clean conditioning frames
    buckets: torch.Tensor  # (N,) motion bucket ids
    fps_id: float = 6.0


def _trainable(model: SVDModel, stage: StageConfig) -> list[torch.nn.Parameter]:
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


def stage_batch(model: SVDModel, ae, data: TrainData, stage: StageConfig, g: torch.Generator) -> tuple:
    """Sample a batch and build (x0, conditions) for the loss."""
    n = data.latents.shape[0]
    idx = torch.randint(0, n, (stage.batch_size,), generator=g)
    if stage.image_only:  # single frames (any frame of the clip) with image_only_indicator = 1
        frame = torch.randint(0, data.latents.shape[1], (stage.batch_size,), generator=g)
        x0 = data.latents[idx, frame][:, None]  # (B, 1, C, h, w)
        t = 1
    else:
        x0 = data.latents[idx, : stage.frames]  # (B, T, C, h, w)
        t = x0.shape[1]
    first = data.first_frames[idx]
    b = stage.batch_size
    sigma_aug = torch.exp(stage.cond_aug_mean + stage.cond_aug_std * torch.randn(b, generator=g))  # App. D.4
    cond_image = first + sigma_aug[:, None, None, None] * torch.randn(first.shape, generator=g)
    image_latent = ae.encode_unscaled(cond_image).detach()
    context = model.encode_image_token(first) if model.image_encoder is not None else None
    added = model.added_ids(b, data.fps_id, data.buckets[idx], sigma_aug)
    cond = model.conditioning(image_latent, context, added, t)
    keep = (torch.rand(b, generator=g) >= stage.uncond_prob).float()  # drop image conditioning for CFG
    cond["concat"] = cond["concat"] * keep[:, None, None, None, None]
    if cond["context"] is not None:
        cond["context"] = cond["context"] * keep[:, None, None]
    if stage.image_only:
        cond["image_only_indicator"] = torch.ones(b, 1)
    return x0, cond


def save_checkpoint(folder: Path, model: SVDModel, opt: torch.optim.Optimizer, step: int,
                    g: torch.Generator, losses: list[float], ema=None) -> None:
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / "model.safetensors") as tmp:
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp))
    if ema is not None:
        with atomic_path(folder / "ema.safetensors") as tmp:
            save_file({k: v.contiguous() for k, v in ema.state_dict().items()}, str(tmp))
    with atomic_path(folder / "optim.pt") as tmp:
        torch.save({"opt": opt.state_dict(), "rng": g.get_state()}, tmp)
    atomic_write_text(folder / "config.json", json.dumps(model.config.to_dict(), indent=1))
    state = {"step": step, "losses": losses, "ema_updates": ema.num_updates if ema is not None else 0}
    atomic_write_text(folder / "state.json", json.dumps(state))


def load_weights(model: SVDModel, path: str | os.PathLike) -> None:
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise GenlabError(f"video model weights not found: {path}")
    sd = load_file(str(path))
    own = model.state_dict()
    unmapped, missing = sorted(set(sd) - set(own)), sorted(set(own) - set(sd))
    if unmapped or missing:
        raise GenlabError(f"{path}: unmapped keys {unmapped[:10]}, missing keys {missing[:10]}")
    model.load_state_dict(sd)


def train_stage(model: SVDModel, ae, data: TrainData, stage: StageConfig, out_dir: str | os.PathLike | None = None,
                checkpoint_every: int = 200, progress: bool = False, max_steps: int | None = None) -> list[float]:
    """Train one stage; resumes from `out_dir/<stage>` if a checkpoint is there. Returns per-step losses."""
    from tqdm import tqdm

    formulation = edm_v(stage.p_mean, stage.p_std)
    params = _trainable(model, stage)
    for p in model.parameters():
        p.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.AdamW(params, lr=stage.lr, weight_decay=0.0)
    g = torch.Generator().manual_seed(stage.seed)
    start, losses = 0, []
    ema = None
    if stage.ema_decay > 0:  # core/train's EMA (the paper's stages use 0.9999)
        from genlab.core.train.ema import EMA

        ema = EMA(model, stage.ema_decay)
    folder = Path(out_dir) / stage.name if out_dir is not None else None
    if folder is not None and (folder / "state.json").is_file():
        load_weights(model, folder / "model.safetensors")
        extra = torch.load(folder / "optim.pt", weights_only=False)
        opt.load_state_dict(extra["opt"])
        g.set_state(extra["rng"])
        state = json.loads((folder / "state.json").read_text())
        start, losses = state["step"], state["losses"]
        if ema is not None:
            from safetensors.torch import load_file

            ema.load_state_dict(load_file(str(folder / "ema.safetensors")), state["ema_updates"])
    warmup = max(1, min(50, stage.steps // 10))

    def lr_at(step: int) -> float:  # linear warm-up, cosine decay to 10%
        return stage.lr * min(1.0, (step + 1) / warmup) * (0.1 + 0.45 * (1 + math.cos(math.pi * step / stage.steps)))

    model.train()
    end = stage.steps if max_steps is None else min(stage.steps, start + max_steps)
    for step in tqdm(range(start, end), desc=f"train {stage.name}", disable=not progress, initial=start,
                     total=stage.steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step)
        x0, cond = stage_batch(model, ae, data, stage, g)
        eps = torch.randn(x0.shape, generator=g)
        out = formulation.loss(model.net, x0, eps=eps, generator=g, **cond)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if ema is not None:
            ema.update(model)
        losses.append(float(out.loss.detach()))
        if folder is not None and ((step + 1) % checkpoint_every == 0 or step + 1 == stage.steps):
            save_checkpoint(folder, model, opt, step + 1, g, losses, ema)
    if ema is not None and end == stage.steps:  # the stage's result is its EMA (what SVD releases)
        model.load_state_dict(ema.state_dict())
    model.eval()
    for p in model.parameters():
        p.requires_grad_(True)
    return losses


def stage_summary(stage: StageConfig) -> dict:
    return asdict(stage)
