"""One study run (formulation, seed): train with EMA-validated checkpoint selection, then evaluate every
sampler setting. Everything is written under the run's folder and skipped when already there (resume).

<run>/train/checkpoints/step_*.safetensors   resumable training state (core/train)
<run>/val.json                               EMA and raw validation loss (velocity MSE, 8 levels) per eval step
<run>/best_ema.safetensors, best_raw.safetensors   weights at the step with the lowest EMA validation loss
<run>/eval/<steps>_<guidance>_<ema|raw>.json {fd, accuracy, ...} per setting
<run>/samples.png                            a sample grid (25 or the largest step count, guidance 3, EMA)
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from genlab.core.eval import classifier
from genlab.core.eval.frechet import GaussianStats, frechet_distance
from genlab.core.flow import guidance, samplers
from genlab.core.flow.formulation import Formulation, velocity_mse_at_levels
from genlab.core.io import atomic_write_text
from genlab.systems.t2i.study.config import StudyConfig
from genlab.systems.t2i.study.model import NULL_CLASS, StudyNet, time_scale

HELD_OUT = 1000  # the last 1,000 training images: validation only


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9.+-]+", "_", name.lower()).strip("_")


def run_dir(out: Path, formulation: Formulation, seed: int) -> Path:
    return out / "runs" / f"{slug(formulation.name)}__s{seed}"


def setting_name(steps: int, scale: float, ema: bool) -> str:
    return f"{steps}_{scale:g}_{'ema' if ema else 'raw'}"


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """Model space [-1, 1] -> classifier space [0, 1]."""
    return ((x.clamp(-1, 1) + 1) / 2).float()


def _train_data():
    from genlab.core.data.mnist import load_mnist

    train = load_mnist("train")
    n = len(train) - HELD_OUT
    data = {"x": torch.from_numpy(train.images[:n]), "y": torch.from_numpy(train.labels[:n])}
    val = {"x": torch.from_numpy(train.images[n:]), "y": torch.from_numpy(train.labels[n:])}
    return data, val


def _val_batch(val, n: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    x0 = val["x"][:n].float()[:, None] / 127.5 - 1.0
    eps = torch.randn(x0.shape, generator=g)
    return x0, eps, val["y"][:n]


@torch.no_grad()
def validation_loss(form: Formulation, net: torch.nn.Module, x0, eps, labels) -> list[float]:
    net.eval()
    return [float(v) for v in velocity_mse_at_levels(form, net, x0, eps, labels=labels)]


def train_run(cfg: StudyConfig, form: Formulation, seed: int, folder: Path, progress: bool = False) -> dict:
    """Train (resuming if possible); returns the validation record {"history": [...], "best": {...}}."""
    from genlab.core.train import TrainConfig, Trainer
    from genlab.core.train.checkpoint import save_weights

    val_path = folder / "val.json"
    record = json.loads(val_path.read_text()) if val_path.is_file() else {"history": [], "best": None}
    tc = cfg.train
    if record.get("done"):
        return record
    data, val = _train_data()
    x_val, eps_val, y_val = _val_batch(val, tc.val_images, seed=10_000)
    torch.manual_seed(seed)
    net = StudyNet(cfg.net, time_scale(form)).to(cfg.device)
    density = form.density

    def loss_fn(model, batch, ctx):
        x0 = batch["x"].float()[:, None] / 127.5 - 1.0  # (B, 1, 28, 28) in [-1, 1]
        t = density.icdf(ctx.rand(dtype=torch.float64).cpu()).to(x0)  # (B,) training times from the density
        eps = ctx.randn(1, cfg.net.image_size, cfg.net.image_size)
        drop = ctx.rand() < tc.label_dropout
        labels = torch.where(drop, torch.full_like(batch["y"], NULL_CLASS), batch["y"])
        return form.loss(model, x0, t=t, eps=eps, labels=labels).loss

    train_cfg = TrainConfig(steps=tc.steps, batch_size=tc.batch_size, lr=tc.lr, warmup_steps=tc.warmup_steps,
                            grad_clip=tc.grad_clip, ema_decay=tc.ema_decay, checkpoint_every=tc.eval_every,
                            keep_checkpoints=1, log_every=max(1, tc.eval_every // 5), seed=seed)
    trainer = None

    def on_checkpoint(step: int, path: Path) -> None:
        if any(h["step"] == step for h in record["history"]):
            return
        ema_levels = validation_loss(form, trainer.ema.model, x_val.to(cfg.device), eps_val.to(cfg.device), y_val.to(cfg.device))
        raw_levels = validation_loss(form, trainer.model, x_val.to(cfg.device), eps_val.to(cfg.device), y_val.to(cfg.device))
        trainer.model.train()
        entry = {"step": step, "ema": float(np.mean(ema_levels)), "raw": float(np.mean(raw_levels)),
                 "ema_levels": ema_levels, "raw_levels": raw_levels}
        record["history"].append(entry)
        if record["best"] is None or entry["ema"] < record["best"]["ema"]:
            save_weights(folder / "best_ema.safetensors", trainer.ema.model.state_dict(), asdict(cfg.net))
            save_weights(folder / "best_raw.safetensors", trainer.model.state_dict(), asdict(cfg.net))
            record["best"] = entry
        atomic_write_text(val_path, json.dumps(record, indent=1))

    trainer = Trainer(net, loss_fn, data, train_cfg, folder / "train", config=asdict(cfg.net), device=cfg.device,
                      progress=progress, on_checkpoint=on_checkpoint)
    start = time.time()
    result = trainer.fit()
    on_checkpoint(result.step, folder)  # the final step is always validated
    record["done"] = True
    record["train_seconds"] = record.get("train_seconds", 0.0) + time.time() - start
    record["loss_history"] = result.history
    atomic_write_text(val_path, json.dumps(record, indent=1))
    return record


def load_net(cfg: StudyConfig, form: Formulation, path: Path) -> StudyNet:
    from genlab.core.train.checkpoint import load_weights

    net = StudyNet(cfg.net, time_scale(form))
    state, _ = load_weights(path)
    net.load_state_dict(state)
    return net.to(cfg.device).eval()


@torch.no_grad()
def generate(cfg: StudyConfig, form: Formulation, net: StudyNet, steps: int, scale: float,
             labels: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """Samples in [-1, 1] for `labels` from initial `noise` (DDIM = Euler in (sigma, z/a); on rf, SD3's Euler)."""
    ts = form.default_grid(steps)
    b0 = float(form.path.b(ts[0]))
    out = []
    bs = cfg.eval.batch_size
    for i in range(0, len(labels), bs):
        y = labels[i : i + bs].to(cfg.device)
        model = guidance.cfg(form.denoiser(net), {"labels": torch.full_like(y, NULL_CLASS)}, {"labels": y}, scale)
        out.append(samplers.ddim(model, noise[i : i + bs].to(cfg.device) * b0, ts).x.cpu())
    return torch.cat(out)


def reference_stats(cfg: StudyConfig, clf: classifier.MNISTClassifier, out: Path) -> GaussianStats:
    from genlab.core.data.mnist import load_mnist

    path = out / "reference_stats.npz"
    if path.is_file():
        with np.load(path) as z:
            return GaussianStats(z["mu"], z["sigma"], int(z["n"]))
    test = load_mnist("test").subset(cfg.eval.reference_images, seed=0) if cfg.eval.reference_images < 10_000 \
        else load_mnist("test")
    feats = classifier.batched(clf.features, classifier.to_input(test.images)).numpy()
    stats = GaussianStats.of(feats)
    from genlab.core.io import atomic_path

    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, mu=stats.mu, sigma=stats.sigma, n=stats.n)
    return stats


def evaluate_run(cfg: StudyConfig, form: Formulation, seed: int, folder: Path, clf: classifier.MNISTClassifier,
                 ref: GaussianStats) -> dict[str, dict]:
    ev = cfg.eval
    labels = torch.arange(ev.num_samples) % 10
    noise = torch.randn(ev.num_samples, 1, cfg.net.image_size, cfg.net.image_size,
                        generator=torch.Generator().manual_seed(ev.seed))
    results = {}
    nets = {}
    grid_steps = 25 if 25 in ev.steps else max(ev.steps)
    for ema in ev.ema:
        for steps in ev.steps:
            for scale in ev.guidance:
                name = setting_name(steps, scale, ema)
                path = folder / "eval" / f"{name}.json"
                if path.is_file():
                    results[name] = json.loads(path.read_text())
                    continue
                if ema not in nets:
                    nets[ema] = load_net(cfg, form, folder / ("best_ema.safetensors" if ema else "best_raw.safetensors"))
                start = time.time()
                x = to_unit(generate(cfg, form, nets[ema], steps, scale, labels, noise))
                logits = classifier.batched(clf, x)
                feats = classifier.batched(clf.features, x).numpy()
                res = {"formulation": form.name, "seed": seed, "steps": steps, "guidance": scale, "ema": ema,
                       "fd": frechet_distance(GaussianStats.of(feats), ref),
                       "accuracy": float((logits.argmax(1) == labels).float().mean()),
                       "num_samples": ev.num_samples, "seconds": time.time() - start}
                atomic_write_text(path, json.dumps(res, indent=1))
                results[name] = res
                if ema and steps == grid_steps and scale == max(ev.guidance):
                    save_grid(x[:100], folder / "samples.png")
    return results


def save_grid(x: torch.Tensor, path: Path) -> None:
    from PIL import Image

    from genlab.core.io import atomic_path

    n = x.shape[0]
    cols = 10
    rows = (n + cols - 1) // cols
    h, w = x.shape[-2:]
    canvas = np.zeros((rows * h, cols * w), dtype=np.uint8)
    arr = (x[:, 0].numpy() * 255).round().astype(np.uint8)
    for i in range(n):
        r, c = divmod(i, cols)
        canvas[r * h:(r + 1) * h, c * w:(c + 1) * w] = arr[i]
    with atomic_path(path) as tmp:
        Image.fromarray(canvas).save(tmp, format="PNG")


def run_one(cfg: StudyConfig, form: Formulation, seed: int, out: Path, progress: bool = False) -> dict:
    """Train and evaluate one (formulation, seed); safe to call again after an interruption."""
    torch.set_num_threads(1)
    folder = run_dir(out, form, seed)
    folder.mkdir(parents=True, exist_ok=True)
    record = train_run(cfg, form, seed, folder, progress=progress)
    clf, _ = classifier.train_or_load(cfg.classifier)
    ref = reference_stats(cfg, clf, out)
    evals = evaluate_run(cfg, form, seed, folder, clf, ref)
    return {"formulation": form.name, "seed": seed, "val": record["best"], "train_seconds": record.get("train_seconds"),
            "evals": evals}
