"""A small, deterministic training loop: AdamW + warm-up + clipping + EMA + checkpoints + DDP.

The loop owns everything that must be exactly reproducible (data order, noise, resume), and the
caller owns the maths: `loss_fn(model, batch, ctx) -> loss` or `(loss, {name: float})`.

Determinism contract
* Data order: the global batch of step k (batch_size * world_size samples) is a fixed slice of
  an endless stream of per-epoch permutations seeded by (seed, epoch); rank r takes the r-th
  block. So 2 processes with batch b see, together, exactly what 1 process with batch 2b sees,
  and never the same sample in one step.
* Noise: draw it with `ctx.randn(*per_sample_shape)` / `ctx.rand` / `ctx.randint`: each call
  draws the whole global batch from a generator seeded by (seed, step) and returns this rank's
  rows, so noise does not depend on the number of processes either.
* Resume: a checkpoint holds model, EMA, optimizer (and grad scaler) state, step and loss
  history; data order and noise are functions of the step, so a killed run resumed from step k
  ends bit-identical to an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn
from tqdm.auto import tqdm

from genlab.core.io import atomic_write_text
from genlab.core.train.checkpoint import (
    checkpoint_name,
    config_to_dict,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
)
from genlab.core.train.distributed import DistInfo, all_reduce_mean, barrier, dist_info
from genlab.core.train.ema import EMA, unwrap_model
from genlab.errors import GenlabError

Precision = Literal["fp32", "bf16", "fp16"]


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 1000
    batch_size: int = 32  # per process; the global batch is batch_size * world_size
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8  # SD3 high-resolution runs use 1e-15
    weight_decay: float = 0.0
    warmup_steps: int = 0  # linear warm-up of the learning rate
    grad_clip: float | None = 1.0  # max global grad norm; None = off
    ema_decay: float = 0.999
    ema_warmup: bool = True
    precision: Precision = "fp32"  # bf16 autocast (CPU/CUDA); fp16 autocast + GradScaler (CUDA only)
    checkpoint_every: int = 0  # 0: only at the end
    keep_checkpoints: int = 2
    log_every: int = 10
    seed: int = 0

    def __post_init__(self):
        if self.steps < 0 or self.batch_size < 1:
            raise GenlabError(f"TrainConfig: steps >= 0 and batch_size >= 1 expected, got {self.steps}, {self.batch_size}")
        if self.precision not in ("fp32", "bf16", "fp16"):
            raise GenlabError(f"TrainConfig.precision: expected fp32, bf16 or fp16, got {self.precision!r}")


def _mix(*ints: int) -> int:
    """A 63-bit seed from several integers (splitmix64-style), stable across runs and machines."""
    x = 0x9E3779B97F4A7C15
    for i in ints:
        x = (x ^ (i & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
        x ^= x >> 31
    return x & 0x7FFFFFFFFFFFFFFF


class StepContext:
    """What `loss_fn` gets besides model and batch: the step, this rank's place, noise helpers."""

    def __init__(self, step: int, seed: int, info: DistInfo, local_batch: int, device: torch.device,
                 module: nn.Module, indices: torch.Tensor):
        self.step, self.info, self.local_batch, self.device = step, info, local_batch, device
        self.module = module  # the unwrapped model (for attributes; call `model(...)` for forward)
        self.indices = indices  # dataset indices of this rank's samples
        self.generator = torch.Generator().manual_seed(_mix(seed, step, 7))

    def _rows(self, full: torch.Tensor) -> torch.Tensor:
        r, b = self.info.rank, self.local_batch
        return full[r * b:(r + 1) * b].to(self.device)

    def randn(self, *shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """(local_batch, *shape) standard normals, independent of the number of processes."""
        full = torch.randn(self.local_batch * self.info.world_size, *shape, generator=self.generator, dtype=dtype)
        return self._rows(full)

    def rand(self, *shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        full = torch.rand(self.local_batch * self.info.world_size, *shape, generator=self.generator, dtype=dtype)
        return self._rows(full)

    def sample(self, fn: Callable[[int, torch.Generator], torch.Tensor]) -> torch.Tensor:
        """Rows of `fn(global_batch, generator)` for this rank (any sampler with a generator argument)."""
        return self._rows(fn(self.local_batch * self.info.world_size, self.generator))

    def randint(self, low: int, high: int, *shape: int) -> torch.Tensor:
        full = torch.randint(low, high, (self.local_batch * self.info.world_size, *shape), generator=self.generator)
        return self._rows(full)


@dataclass
class TrainResult:
    model: nn.Module  # unwrapped, trained in place
    ema: EMA
    step: int
    history: list[dict[str, float]] = field(default_factory=list)
    checkpoint: Path | None = None


LossFn = Callable[[nn.Module, Any, StepContext], "torch.Tensor | tuple[torch.Tensor, dict[str, float]]"]


class Trainer:
    """Train `model` on `data` with `loss_fn`; see the module docstring for the determinism contract.

    data: a tensor, a tuple/list of tensors or a dict of tensors (indexed along dim 0), or any
      map-style dataset (`len` + `__getitem__`, collated with torch's default_collate).
    out_dir: where `config.json` and `checkpoints/step_XXXXXXXX.safetensors` go; the newest
      checkpoint there is resumed automatically. None = no files.
    config: the model's config (a dataclass or dict), stored in config.json and every checkpoint.
    """

    def __init__(self, model: nn.Module, loss_fn: LossFn, data: Any, cfg: TrainConfig,
                 out_dir: str | Path | None = None, *, config: Any = None,
                 device: str | torch.device = "cpu", progress: bool = True,
                 optimizer_fn: Callable[[nn.Module, TrainConfig], torch.optim.Optimizer] | None = None,
                 on_log: Callable[[dict[str, float]], None] | None = None,
                 on_checkpoint: Callable[[int, Path], None] | None = None):
        self.cfg, self.loss_fn, self.data = cfg, loss_fn, data
        self.device = torch.device(device)
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.config, self.progress = config, progress
        self.on_log, self.on_checkpoint = on_log, on_checkpoint
        self.info = dist_info()
        self.model = model.to(self.device)
        self.n = _data_len(data)
        if self.n == 0:
            raise GenlabError("training data is empty")
        self.optimizer = (optimizer_fn or default_optimizer)(self.model, cfg)
        self.ema = EMA(self.model, cfg.ema_decay, cfg.ema_warmup)
        self.scaler = torch.amp.GradScaler("cuda") if cfg.precision == "fp16" else None
        if cfg.precision == "fp16" and self.device.type != "cuda":
            raise GenlabError("TrainConfig.precision='fp16' needs a CUDA device; use 'bf16' or 'fp32' on CPU")
        self.step = 0
        self.history: list[dict[str, float]] = []
        self.last_checkpoint: Path | None = None
        self._running, self._count = torch.zeros(()), 0  # loss sum since the last log record

    # ------------------------------------------------------------------ state
    @property
    def ckpt_dir(self) -> Path | None:
        return self.out_dir / "checkpoints" if self.out_dir is not None else None

    def state(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "model": unwrap_model(self.model).state_dict(),
            "ema": self.ema.state_dict(),
            "ema_updates": self.ema.num_updates,
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "history": self.history,
            "running": [float(self._running), self._count],
            "train_config": config_to_dict(self.cfg),
            "config": config_to_dict(self.config),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        unwrap_model(self.model).load_state_dict(state["model"])
        self.ema.load_state_dict(state["ema"], state["ema_updates"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.step = int(state["step"])
        self.history = list(state["history"])
        self._running, self._count = torch.tensor(state["running"][0]), int(state["running"][1])

    def save(self) -> Path | None:
        """Write checkpoints/step_XXXXXXXX.safetensors (rank 0 only) and prune old ones."""
        if self.ckpt_dir is None:
            return None
        path = self.ckpt_dir / checkpoint_name(self.step)
        if self.info.is_main:
            save_checkpoint(path, self.state())
            for _, old in list_checkpoints(self.ckpt_dir)[:-max(1, self.cfg.keep_checkpoints)]:
                old.unlink(missing_ok=True)
        barrier()
        self.last_checkpoint = path
        if self.on_checkpoint is not None and self.info.is_main:
            self.on_checkpoint(self.step, path)
        return path

    def resume(self) -> bool:
        """Load the newest checkpoint in out_dir/checkpoints, if any."""
        if self.ckpt_dir is None:
            return False
        path = latest_checkpoint(self.ckpt_dir)
        if path is None:
            return False
        try:
            self.load_state(load_checkpoint(path))
        except (RuntimeError, KeyError, ValueError) as err:
            if isinstance(err, GenlabError):
                raise
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise GenlabError(f"checkpoint {path} does not fit this model/optimizer ({first}); "
                              "resume with the same config or use another output folder") from None
        self.last_checkpoint = path
        return True

    # ------------------------------------------------------------------ data
    def global_indices(self, step: int) -> torch.Tensor:
        """Dataset indices of the whole global batch of `step` (all ranks, rank-major)."""
        g = self.cfg.batch_size * self.info.world_size
        pos = torch.arange(step * g, (step + 1) * g)
        epochs, offsets = pos // self.n, pos % self.n
        return torch.stack([_permutation(self.n, self.cfg.seed, int(e))[int(o)] for e, o in zip(epochs, offsets)])

    def local_indices(self, step: int) -> torch.Tensor:
        b, r = self.cfg.batch_size, self.info.rank
        return self.global_indices(step)[r * b:(r + 1) * b]

    # ------------------------------------------------------------------ loop
    def lr_at(self, step: int) -> float:
        if self.cfg.warmup_steps > 0:
            return self.cfg.lr * min(1.0, (step + 1) / self.cfg.warmup_steps)
        return self.cfg.lr

    def fit(self, resume: bool = True) -> TrainResult:
        cfg = self.cfg
        if resume:
            self.resume()
        if self.out_dir is not None and self.info.is_main:
            atomic_write_text(self.out_dir / "config.json", json.dumps(
                {"model": config_to_dict(self.config), "train": config_to_dict(cfg)}, indent=2) + "\n")
        module = unwrap_model(self.model)
        model = self.model
        if self.info.world_size > 1 and not isinstance(model, nn.parallel.DistributedDataParallel):
            model = nn.parallel.DistributedDataParallel(
                module, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        model.train()
        bar = tqdm(total=cfg.steps, initial=self.step, disable=not (self.progress and self.info.is_main),
                   desc="train", dynamic_ncols=True)
        while self.step < cfg.steps:
            step = self.step
            for group in self.optimizer.param_groups:
                group["lr"] = self.lr_at(step)
            idx = self.local_indices(step)
            batch = _to_device(_fetch(self.data, idx), self.device)
            ctx = StepContext(step, cfg.seed, self.info, cfg.batch_size, self.device, module, idx)
            torch.manual_seed(_mix(cfg.seed, step, self.info.rank, 11))  # for any randomness inside the model
            with self._autocast():
                out = self.loss_fn(model, batch, ctx)
            loss, logs = (out if isinstance(out, tuple) else (out, {}))
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss is {loss.item()} at step {step}")
            if self.scaler is not None:
                self.scaler.scale(loss).backward()
                self.scaler.unscale_(self.optimizer)
            else:
                loss.backward()
            if cfg.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(module.parameters(), cfg.grad_clip)
            if self.scaler is not None:
                self.scaler.step(self.optimizer)
                self.scaler.update()
            else:
                self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            self.ema.update(module)
            self.step += 1
            self._running += loss.detach().float().cpu()
            self._count += 1
            bar.update(1)
            if self.step % max(1, cfg.log_every) == 0 or self.step == cfg.steps:
                record = {"step": self.step, "loss": float(all_reduce_mean(self._running / self._count)), "lr": self.lr_at(step)}
                record.update({k: float(v) for k, v in logs.items()})
                self.history.append(record)
                bar.set_postfix(loss=f"{record['loss']:.4f}")
                if self.on_log is not None and self.info.is_main:
                    self.on_log(record)
                self._running, self._count = torch.zeros(()), 0
            if cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0 and self.step < cfg.steps:
                self.save()
        bar.close()
        if self.last_checkpoint is None or self.last_checkpoint.name != checkpoint_name(self.step):
            self.save()
        module.eval()
        return TrainResult(module, self.ema, self.step, self.history, self.last_checkpoint)

    def _autocast(self):
        if self.cfg.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.cfg.precision == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)


def default_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.AdamW(params, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay)


def train(model: nn.Module, loss_fn: LossFn, data: Any, cfg: TrainConfig, out_dir=None, **kwargs) -> TrainResult:
    """`Trainer(model, loss_fn, data, cfg, out_dir, **kwargs).fit()`."""
    return Trainer(model, loss_fn, data, cfg, out_dir, **kwargs).fit()


@lru_cache(maxsize=8)
def _permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    return torch.randperm(n, generator=torch.Generator().manual_seed(_mix(seed, epoch, 3)))


def _data_len(data: Any) -> int:
    if isinstance(data, torch.Tensor):
        return data.shape[0]
    if isinstance(data, dict):
        lens = {k: v.shape[0] for k, v in data.items()}
        if len(set(lens.values())) != 1:
            raise GenlabError(f"training data: tensors differ in length along dim 0: {lens}")
        return next(iter(lens.values()))
    if isinstance(data, (tuple, list)) and data and all(isinstance(v, torch.Tensor) for v in data):
        return _data_len(dict(enumerate(data)))
    return len(data)


def _fetch(data: Any, idx: torch.Tensor) -> Any:
    if isinstance(data, torch.Tensor):
        return data[idx]
    if isinstance(data, dict):
        return {k: v[idx] for k, v in data.items()}
    if isinstance(data, (tuple, list)) and data and all(isinstance(v, torch.Tensor) for v in data):
        return type(data)(v[idx] for v in data)
    return torch.utils.data.default_collate([data[int(i)] for i in idx])


def _to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (tuple, list)):
        return type(batch)(_to_device(v, device) for v in batch)
    return batch

