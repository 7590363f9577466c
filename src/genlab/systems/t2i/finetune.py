"""LoRA fine-tuning of a pretrained SD3 MM-DiT on a user's captioned images (`genlab t2i train --pretrained
PATH --data ... --lora RANK`).

    run = train_lora("sd3-folder", "photos/", "runs/mine", LoRAConfig(rank=16), TrainConfig(steps=500, lr=1e-4))
    run.lora_path            # runs/mine/lora.safetensors: diffusers' SD3 LoRA format
    pipe = load_pipeline("sd3-folder", loras=[(run.lora_path, 1.0)])

The maths is SD3's (and diffusers' train_dreambooth_lora_sd3.py defaults): rectified flow, logit-normal(0, 1)
t shifted by the scheduler's shift, velocity MSE; latents from the pipeline's own VAE ((z - shift) * scaling,
cached on disk like `train_on_data`'s), text from its CLIP-L / CLIP-G / T5 (encoded once per caption, then
released). Only the adapters train: the Trainer's EMA, checkpoints and optimizer hold the adapters alone, so a
run resumes from its last checkpoint at the cost of a few MB.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from genlab.core.flow.formulation import rf_lognorm
from genlab.core.flow.grids import shift as shift_t
from genlab.core.io import atomic_write_text
from genlab.core.train import BucketSampler, TrainConfig, Trainer, dist_info
from genlab.errors import GenlabError
from genlab.systems.t2i.lora import DEFAULT_TARGETS, add_lora, module_names, save_lora


@dataclass(frozen=True)
class LoRAConfig:
    rank: int = 16
    alpha: float | None = None  # None: alpha = rank (scale 1)
    targets: tuple[str, ...] = DEFAULT_TARGETS  # diffusers module names (suffixes)
    logit_mean: float = 0.0
    logit_std: float = 1.0
    shift: float | None = None  # None: the pipeline scheduler's shift (3.0 for SD3)


def lora_train_config(steps: int = 500, batch_size: int = 1, lr: float = 1e-4, **kw) -> TrainConfig:
    """diffusers' SD3 LoRA script defaults: AdamW 1e-4, constant; adapters are small, so no EMA to speak of."""
    return TrainConfig(steps=steps, batch_size=batch_size, lr=lr, **{"ema_decay": 0.0, "log_every": 10, **kw})


class _Shared:
    """A reference that `copy.deepcopy` shares instead of copying: the frozen MM-DiT and text table stay one copy
    when the Trainer copies the trainee for its EMA."""

    def __init__(self, obj):
        self.obj = obj

    def __deepcopy__(self, memo):
        return self


class LoRATrainee(nn.Module):
    """forward(x, timestep, caption) for the Trainer: registered modules are the adapters only; the MM-DiT
    they sit in and the caption embeddings (context (N, L, D), pooled (N, P)) are held outside the tree."""

    def __init__(self, net: nn.Module, layers: dict[str, nn.Module], context: torch.Tensor, pooled: torch.Tensor):
        super().__init__()
        self.names = list(layers)
        self.adapters = nn.ModuleList(layers.values())
        self.frozen = _Shared((net, context, pooled))

    @property
    def net(self) -> nn.Module:
        return self.frozen.obj[0]

    def train(self, mode: bool = True):
        super().train(mode)
        self.net.train(mode)  # gradient checkpointing is active in training mode only
        return self

    def layers(self) -> dict[str, nn.Module]:
        return dict(zip(self.names, self.adapters))

    def forward(self, x: torch.Tensor, timestep: torch.Tensor, caption: torch.Tensor) -> torch.Tensor:
        net, context, pooled = self.frozen.obj
        idx = caption.to(context.device)
        return net(x, timestep, context[idx].to(x.device, x.dtype), pooled[idx].to(x.device, x.dtype))


@dataclass
class LoRARun:
    lora_path: Path
    layers: dict[str, nn.Module]  # diffusers name -> LoRA (trained)
    history: list[dict[str, float]]
    stats: object = None  # prepare.DataStats
    captions: list[str] = field(default_factory=list)


def encode_captions(pipe, captions: list[str], batch: int = 64, progress: bool = False):
    """Every caption through the pipeline's text encoders: (context (N, L, D), pooled (N, P)), float32 CPU."""
    from tqdm.auto import tqdm

    ctx, pooled = [], []
    for i in tqdm(range(0, len(captions), batch), desc="text", disable=not progress, dynamic_ncols=True):
        emb = pipe.encode(captions[i:i + batch])
        ctx.append(emb.context.float().cpu())
        pooled.append(emb.pooled.float().cpu())
    return torch.cat(ctx), torch.cat(pooled)


def vae_user(pipe):
    """The pipeline's VAE as prepare()'s AutoencoderUser, keyed by its files (a single file: by its header)."""
    from genlab.systems.t2i.prepare import AutoencoderUser
    from genlab.systems.t2i.shards import content_hash, file_hash

    part = pipe.files.vae
    if part.folder is not None:
        key = file_hash(list(part.files))
    else:  # hashing a 10 GB single file for the VAE's sake would cost minutes: its size, date and header
        f = part.files[0]
        st = f.stat()
        key = content_hash(json.dumps([f.name, st.st_size, st.st_mtime_ns, sorted(part.tensors)]).encode())[:24]
    return AutoencoderUser(pipe.load_vae(), f"sd3vae-{key}", f"VAE of {pipe.files.source}")


def train_lora(pretrained: str | Path, data: str | Path, out_dir: str | Path, lora: LoRAConfig = LoRAConfig(),
               train: TrainConfig | None = None, *, options=None, gradient_checkpointing: bool = False,
               device: str | torch.device = "cpu", progress: bool = True, pipeline_kwargs: dict | None = None) -> LoRARun:
    """Fine-tune `pretrained` (SD3 folder or single file) with LoRA on `data`; writes out_dir/lora.safetensors
    (+ .json), history.json, loss.png, data.json and adapter-only checkpoints."""
    from genlab.systems.t2i.imagedata import read_records
    from genlab.systems.t2i.prepare import DataOptions, prepare
    from genlab.systems.t2i.sd3 import load_pipeline
    from genlab.systems.t2i.train import write_loss_plot

    train = train or lora_train_config()
    opts = options or DataOptions(resolution=512)
    if opts.channels != 3:
        raise GenlabError("--grey: SD3's VAE takes RGB images")
    out = Path(out_dir)
    info = dist_info()
    pipe = load_pipeline(pretrained, dtype="fp32", device=device, **(pipeline_kwargs or {}))
    module_names(pipe.cfg.depth, tuple(lora.targets))  # unknown target names fail here, before any encoding
    records, report = read_records(data, opts.image_column, opts.caption_column, opts.require_captions)
    ae = vae_user(pipe)
    prep = prepare(records, ae, opts, out, progress=progress)
    del ae
    context, pooled = encode_captions(pipe, prep.captions, progress=progress)
    net = pipe.load_transformer().float()
    if gradient_checkpointing:
        net.gradient_checkpointing = True
    torch.manual_seed(train.seed)  # the adapters' A init
    layers = add_lora(net, lora.rank, lora.alpha, tuple(lora.targets))
    trainee = LoRATrainee(net, layers, context.to(device), pooled.to(device))
    form = rf_lognorm(lora.logit_mean, lora.logit_std)
    shift = pipe.files.shift if lora.shift is None else lora.shift

    def loss_fn(model, batch, ctx):
        x0 = batch["x"]
        t = ctx.sample(lambda n, g: form.sample_t(n, generator=g)).to(x0.device, torch.float64)
        t = (shift_t(t, shift) if shift != 1.0 else t).to(x0.dtype)
        eps = ctx.randn(*x0.shape[1:])
        return form.loss(model, x0, t=t, eps=eps, caption=batch["caption"]).loss

    if info.is_main:
        atomic_write_text(out / "data.json", json.dumps({
            "data": str(data), "pretrained": str(pretrained), "images": prep.stats.images,
            "encoded_this_run": prep.stats.encoded, "skipped": prep.stats.skipped,
            "missing_captions": report.missing_captions, "buckets": prep.stats.per_bucket}, indent=1) + "\n")
    config = {"lora": lora, "pretrained": str(pretrained)}
    trainer = Trainer(trainee, loss_fn, prep.dataset, train, out, config=config, device=device, progress=progress,
                      sampler=BucketSampler(prep.buckets, train.seed))
    result = trainer.fit()
    trained = result.model.layers()
    path = out / "lora.safetensors"
    if info.is_main:
        save_lora(path, trained, net.cfg.depth, {"pretrained": str(pretrained), "steps": train.steps,
                                                 "targets": list(lora.targets)})
        atomic_write_text(out / "history.json", json.dumps(result.history, indent=1) + "\n")
        write_loss_plot(result.history, out / "loss.png")
    return LoRARun(path, trained, result.history, prep.stats, prep.captions)


__all__ = ["LoRAConfig", "LoRARun", "LoRATrainee", "encode_captions", "lora_train_config", "train_lora"]
