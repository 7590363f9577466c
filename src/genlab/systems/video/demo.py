"""`genlab video demo`: SVD's recipe in miniature on sprites whose speed is the motion bucket.

1. Toy clips (data.py): a sprite moving in a straight line, direction set by its colour, speed given as
   the motion bucket. Train and held-out test sets are fixed by seed.
2. Latent space as in the paper: a small f4 autoencoder (32x32 -> 8x8x4), trained once and cached
   (the fast version works in pixel space).
3. The three stages in miniature: image (single frames, image_only_indicator = 1, P_mean -1.2); video
   at half resolution (P_mean -1.2); finetune at full resolution with shifted noise (P_mean 1.0, P_std 1.6).
4. Image-to-video sampling from held-out first frames with the true motion bucket; the sprite centroid
   is fitted per frame and compared with the ground truth. The same model with alpha = 1 (temporal
   layers off) is the ablation that must fail.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from genlab.core.io import atomic_write_text
from genlab.systems.video.config import StageConfig, VideoModelConfig, stage, tiny
from genlab.systems.video.data import Clips, SpriteConfig, direction_cosine, fit_motion, make_clips, spearman
from genlab.systems.video.model import SVDModel
from genlab.systems.video.pipeline import SamplingConfig, sample_i2v
from genlab.systems.video.train import encode_clips, train_stage

THRESHOLDS = {"speed_error": 0.5, "spearman": 0.9, "direction_ok_fraction": 0.8, "frame0_psnr": 25.0}


@dataclass(frozen=True)
class DemoConfig:
    sprite: SpriteConfig = field(default_factory=SpriteConfig)
    latent: str = "ae"  # "ae" (small f4 autoencoder) or "pixel"
    ae_steps: int = 1500
    n_train: int = 2048
    n_test: int = 32
    test_seed: int = 12345
    model: VideoModelConfig = field(default_factory=tiny)
    stages: tuple[StageConfig, ...] = ()
    sampling: SamplingConfig = field(default_factory=lambda: SamplingConfig(
        num_frames=8, steps=12, min_guidance=1.0, max_guidance=2.0, sigma_max=80.0))
    seed: int = 0


def full() -> DemoConfig:
    """The acceptance run: 32x32, 8 frames, f4 AE (8x8x4 latents), three stages."""
    sp = SpriteConfig()
    return DemoConfig(
        sprite=sp, latent="ae", ae_steps=600, model=demo_model(4, (16, 32)),
        stages=(
            stage("image", steps=100, batch_size=16, lr=2e-3),
            stage("video", p_mean=-1.2, p_std=1.0, size=16, steps=400, batch_size=8, lr=2e-3),
            stage("finetune", size=32, steps=800, batch_size=8, lr=2e-3),
        ),
    )


def demo_model(latent_channels: int = 4, channels: tuple[int, ...] = (32, 64)) -> VideoModelConfig:
    """The demo's UNet: two levels, attention on both, 8 groups, 16-d added-id embeddings."""
    cfg = tiny(latent_channels=latent_channels)
    unet = replace(cfg.unet.unet, block_out_channels=channels, attention_levels=(True, True),
                   num_heads=(2, 4), layers_per_block=1, norm_num_groups=8,
                   down_attn_resnet_eps=None, up_resnet_eps=None)
    return replace(cfg, unet=replace(cfg.unet, unet=unet))


def fast() -> DemoConfig:
    """The fast-tier check: 8x8 pixel frames, 4 frames, sprite 2 px at 0..1 px/frame, 420 training steps
    (about 45 s on an idle core). Checks that motion direction is learned, and lost with alpha = 1."""
    sp = SpriteConfig(size=8, frames=4, sprite=2, max_speed=1.0, bucket_per_px=240.0, texture=0.1)
    return DemoConfig(
        sprite=sp, latent="pixel", n_train=1024, n_test=32, model=demo_model(3, (16, 16)),
        stages=(
            stage("image", steps=20, batch_size=8, lr=3e-3, frames=4, size=8),
            stage("finetune", p_mean=0.5, p_std=1.4, steps=400, batch_size=8, lr=3e-3, frames=4, size=8),
        ),
        sampling=SamplingConfig(num_frames=4, steps=8, min_guidance=1.0, max_guidance=1.5, sigma_max=80.0),
    )


@dataclass
class DemoResult:
    metrics: dict
    ablation: dict
    seconds: dict
    passed: dict

    def to_dict(self) -> dict:
        return asdict(self)


def toy_autoencoder(cfg: DemoConfig, clips: Clips, progress: bool = False):
    """The demo's latent space: pixel identity ("pixel", or "pixel2" = space-to-depth 2x2) or the small
    f4 AE trained on a few frames per clip (cached under cache_dir, so a second call only loads it)."""
    if cfg.latent.startswith("pixel"):
        from genlab.core.autoencoders.pixel import PixelIdentity

        return PixelIdentity(3, patch=int(cfg.latent[5:] or 1))
    from genlab.core.autoencoders import small

    frames = clips.video[:, :: max(1, cfg.sprite.frames // 4)].flatten(0, 1)  # a few frames per clip
    ae_cfg = small.tiny(channels=(16, 32, 32), steps=cfg.ae_steps, batch_size=16, lr=2e-3)
    return small.train_or_load(ae_cfg, frames[:4096], progress=progress)


def training_clips(cfg: DemoConfig) -> Clips:
    """The demo's training set (fixed by cfg.seed)."""
    return make_clips(cfg.sprite, cfg.n_train, seed=cfg.seed)


def evaluate(model: SVDModel, ae, cfg: DemoConfig, test: Clips, alpha_off: bool = False,
             progress: bool = False) -> tuple[dict, torch.Tensor]:
    from genlab.core.autoencoders.small import psnr

    model.unet.set_alpha_override(1.0 if alpha_off else None)
    try:
        out = sample_i2v(model, ae, test.video[:, 0], replace(cfg.sampling, fps_id=cfg.sprite.fps_id),
                         generator=torch.Generator().manual_seed(cfg.seed + 1), motion_bucket_id=test.bucket,
                         progress=progress)
    finally:
        model.unet.set_alpha_override(None)
    video = out.video.clamp(-1, 1)
    fit = fit_motion(video, test.colour)
    moving = test.speed >= 0.5 * cfg.sprite.max_speed / 3.0  # >= 0.5 px/frame at the full demo's scale
    cos = direction_cosine(fit.velocity, test.colour)
    metrics = {
        "speed_error": float((fit.speed - test.speed).abs().mean()),
        "spearman": spearman(test.bucket, fit.speed),
        "direction_ok_fraction": float((cos[moving] >= 0.9).float().mean()) if moving.any() else 0.0,
        "direction_cosine_mean": float(cos[moving].mean()) if moving.any() else 0.0,
        "frame0_psnr": psnr(video[:, 0], test.video[:, 0]),
        "found_fraction": float(fit.found.float().mean()),
    }
    return metrics, video


def passes(m: dict) -> dict:
    return {
        "speed_error": m["speed_error"] <= THRESHOLDS["speed_error"],
        "spearman": m["spearman"] >= THRESHOLDS["spearman"],
        "direction_ok_fraction": m["direction_ok_fraction"] >= THRESHOLDS["direction_ok_fraction"],
        "frame0_psnr": m["frame0_psnr"] >= THRESHOLDS["frame0_psnr"],
    }


def write_gifs(video: torch.Tensor, truth: torch.Tensor, path: Path, n: int = 8) -> None:
    """Top row generated, bottom row ground truth, n clips side by side; written atomically."""
    from PIL import Image

    from genlab.core.io import atomic_path

    k = min(n, video.shape[0])
    top = torch.cat(list(video[:k]), dim=-1)  # (T, 3, H, k W)
    bottom = torch.cat(list(truth[:k]), dim=-1)
    grid = torch.cat([top, bottom], dim=-2)  # (T, 3, 2H, kW)
    grid = ((grid.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
    scale = max(1, 256 // grid.shape[1])
    frames = [Image.fromarray(f).resize((f.shape[1] * scale, f.shape[0] * scale), Image.NEAREST) for f in grid]
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        frames[0].save(tmp, format="GIF", save_all=True, append_images=frames[1:], duration=150, loop=0)


def run(cfg: DemoConfig, out_dir: str | os.PathLike | None = None, progress: bool = False,
        device: str | torch.device = "cpu", precision: str = "fp32") -> DemoResult:
    torch.manual_seed(cfg.seed)
    times: dict[str, float] = {}
    t0 = time.perf_counter()
    train = training_clips(cfg)
    test = make_clips(cfg.sprite, cfg.n_test, seed=cfg.test_seed,
                      speeds=torch.linspace(0, cfg.sprite.max_speed, cfg.n_test))
    ae = toy_autoencoder(cfg, train, progress)
    times["autoencoder"] = time.perf_counter() - t0
    from genlab.core.autoencoders.small import psnr

    with torch.no_grad():
        frames = test.video.flatten(0, 1)
        ae_psnr = psnr(ae.decode(ae.encode(frames)), frames)
    model = SVDModel(cfg.model)
    ckpt = Path(out_dir) / "checkpoints" if out_dir is not None else None
    for st in cfg.stages:
        t1 = time.perf_counter()
        data = encode_clips(train.video, train.bucket, ae, st.size, cfg.sprite.fps_id)
        train_stage(model, ae, data, st, out_dir=ckpt, progress=progress, device=device, precision=precision)
        times[f"stage_{st.name}"] = time.perf_counter() - t1
    model.cpu().eval()  # sampling and metrics on CPU, wherever the stages trained
    if isinstance(ae, torch.nn.Module):
        ae.cpu()
    t1 = time.perf_counter()
    metrics, video = evaluate(model, ae, cfg, test, progress=progress)
    ablation, _ = evaluate(model, ae, cfg, test, alpha_off=True, progress=progress)
    times["sampling"] = time.perf_counter() - t1
    times["total"] = time.perf_counter() - t0
    metrics["autoencoder_psnr"] = ae_psnr
    result = DemoResult(metrics, ablation, times, passes(metrics))
    if out_dir is not None:
        out = Path(out_dir)
        write_gifs(video, test.video, out / "samples.gif")
        atomic_write_text(out / "metrics.json", json.dumps(result.to_dict(), indent=1))
    return result
