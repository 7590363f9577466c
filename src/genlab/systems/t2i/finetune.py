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
from dataclasses import dataclass, field, replace
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


def fit_lora(net: nn.Module, context: torch.Tensor, pooled: torch.Tensor, dataset, out: Path, lora: LoRAConfig,
             train: TrainConfig, *, shift: float, sampler=None, pretrained: str | Path = "", gradient_checkpointing: bool = False,
             device: str | torch.device = "cpu", progress: bool = True) -> tuple[dict[str, nn.Module], list[dict], Path]:
    """Adapters on `net` (an MM-DiT: forward(x, 1000 t, context, pooled)) trained on dataset rows {"x", "caption"}
    (caption indexes the context / pooled table); writes out/lora.safetensors, history.json, loss.png."""
    from genlab.systems.t2i.train import write_loss_plot

    if gradient_checkpointing:
        net.gradient_checkpointing = True
    torch.manual_seed(train.seed)  # the adapters' A init
    layers = add_lora(net, lora.rank, lora.alpha, tuple(lora.targets))
    trainee = LoRATrainee(net, layers, context.to(device), pooled.to(device))
    form = rf_lognorm(lora.logit_mean, lora.logit_std)

    def loss_fn(model, batch, ctx):
        x0 = batch["x"]
        t = ctx.sample(lambda n, g: form.sample_t(n, generator=g)).to(x0.device, torch.float64)
        t = (shift_t(t, shift) if shift != 1.0 else t).to(x0.dtype)
        eps = ctx.randn(*x0.shape[1:])
        return form.loss(model, x0, t=t, eps=eps, caption=batch["caption"]).loss

    config = {"lora": lora, "pretrained": str(pretrained), "shift": shift}
    trainer = Trainer(trainee, loss_fn, dataset, train, out, config=config, device=device, progress=progress,
                      sampler=sampler)
    result = trainer.fit()
    trained = result.model.layers()
    path = out / "lora.safetensors"
    if dist_info().is_main:
        save_lora(path, trained, net.cfg, {"pretrained": str(pretrained), "steps": train.steps,
                                                 "targets": list(lora.targets)})
        atomic_write_text(out / "history.json", json.dumps(result.history, indent=1) + "\n")
        write_loss_plot(result.history, out / "loss.png")
    return trained, result.history, path


def train_lora(pretrained: str | Path, data: str | Path, out_dir: str | Path, lora: LoRAConfig = LoRAConfig(),
               train: TrainConfig | None = None, *, options=None, gradient_checkpointing: bool = False,
               device: str | torch.device = "cpu", progress: bool = True, pipeline_kwargs: dict | None = None) -> LoRARun:
    """Fine-tune `pretrained` (SD3 folder or single file) with LoRA on `data`; writes out_dir/lora.safetensors
    (+ .json), history.json, loss.png, data.json and adapter-only checkpoints."""
    from genlab.systems.t2i.imagedata import read_records
    from genlab.systems.t2i.prepare import DataOptions, prepare
    from genlab.systems.t2i.sd3 import load_pipeline

    train = train or lora_train_config()
    opts = options or DataOptions(resolution=512)
    if opts.channels != 3:
        raise GenlabError("--grey: SD3's VAE takes RGB images")
    out = Path(out_dir)
    info = dist_info()
    pipe = load_pipeline(pretrained, dtype="fp32", device=device, **(pipeline_kwargs or {}))
    module_names(pipe.cfg, tuple(lora.targets))  # unknown target names fail here, before any encoding
    records, report = read_records(data, opts.image_column, opts.caption_column, opts.require_captions)
    ae = vae_user(pipe)
    prep = prepare(records, ae, opts, out, progress=progress)
    del ae
    context, pooled = encode_captions(pipe, prep.captions, progress=progress)
    if info.is_main:
        atomic_write_text(out / "data.json", json.dumps({
            "data": str(data), "pretrained": str(pretrained), "images": prep.stats.images,
            "encoded_this_run": prep.stats.encoded, "skipped": prep.stats.skipped,
            "missing_captions": report.missing_captions, "buckets": prep.stats.per_bucket}, indent=1) + "\n")
    net = pipe.load_transformer().float()
    shift = pipe.files.shift if lora.shift is None else lora.shift
    layers, history, path = fit_lora(net, context, pooled, prep.dataset, out, lora, train, shift=shift,
                                     sampler=BucketSampler(prep.buckets, train.seed), pretrained=pretrained,
                                     gradient_checkpointing=gradient_checkpointing, device=device, progress=progress)
    return LoRARun(path, layers, history, prep.stats, prep.captions)




def is_genlab_model(path: str | Path) -> bool:
    """A genlab run folder (model / ema .safetensors) or a weights file with its T2IConfig .json beside it."""
    path = Path(path)
    if path.is_dir():
        return (path / "ema.safetensors").is_file() or (path / "model.safetensors").is_file()
    return path.suffix == ".safetensors" and path.with_suffix(".json").is_file()


def train_lora_genlab(model_path: str | Path, data: str | Path | None, out_dir: str | Path,
                      lora: LoRAConfig = LoRAConfig(), train: TrainConfig | None = None, *, options=None,
                      vae: str | Path | None = None, gradient_checkpointing: bool = False,
                      device: str | torch.device = "cpu", progress: bool = True) -> LoRARun:
    """LoRA on a model trained with genlab (its EMA weights): on `data` through `vae` (default: the run's
    autoencoder.safetensors), or, without data, on the embedded digits for a digits model. Its text encoders
    are frozen with the backbone; the time density and shift are the model's config's."""
    from genlab.systems.t2i.pipeline import load_model

    train = train or lora_train_config()
    out = Path(out_dir)
    model = load_model(model_path, ema=True, device=device)
    cfg = model.cfg
    module_names(cfg.model, tuple(lora.targets))
    if not hasattr(model.backbone, "joint_blocks"):
        raise GenlabError(f"{model_path}: LoRA needs an MM-DiT backbone, this model is a {type(model.backbone).__name__}")
    stats, sampler = None, None
    if data is None:
        from genlab.systems.t2i.data import load_digits
        from genlab.systems.t2i.train import caption_table, check_data

        images, _, all_captions = load_digits()
        check_data(cfg, images, all_captions)
        captions, ids = caption_table(list(all_captions))
        dataset = {"x": images.float(), "caption": ids}
    else:
        from genlab.systems.t2i.imagedata import read_records
        from genlab.systems.t2i.prepare import DataOptions, autoencoder_for, prepare

        opts = options or DataOptions()
        run_ae = Path(model_path) / "autoencoder.safetensors" if Path(model_path).is_dir() else None
        vae = vae if vae is not None else (run_ae if run_ae is not None and run_ae.is_file() else None)
        if vae is None:
            raise GenlabError(f"--vae: {model_path} has no autoencoder.safetensors; name the autoencoder the model "
                              "was trained with")
        records, _ = read_records(data, opts.image_column, opts.caption_column, opts.require_captions)
        ae = autoencoder_for(records, opts, out, vae, progress=progress)
        if ae.latent_channels != cfg.model.in_channels:
            raise GenlabError(f"--vae {vae}: {ae.latent_channels} latent channels, the model takes {cfg.model.in_channels}")
        prep = prepare(records, ae, opts, out, progress=progress)
        dataset, captions, stats = prep.dataset, prep.captions, prep.stats
        sampler = BucketSampler(prep.buckets, train.seed)
    model.requires_grad_(False)
    with torch.no_grad():
        emb = model.text(list(captions))
    shift = cfg.shift if lora.shift is None else lora.shift
    lora = replace(lora, logit_mean=cfg.logit_mean, logit_std=cfg.logit_std)
    layers, history, path = fit_lora(model.backbone, emb.context.float().cpu(), emb.pooled.float().cpu(), dataset, out,
                                     lora, train, shift=shift, sampler=sampler, pretrained=model_path,
                                     gradient_checkpointing=gradient_checkpointing, device=device, progress=progress)
    return LoRARun(path, layers, history, stats, list(captions))


__all__ = ["LoRAConfig", "LoRARun", "LoRATrainee", "encode_captions", "fit_lora", "is_genlab_model", "lora_train_config",
           "train_lora", "train_lora_genlab"]
