"""A small trainable convolutional autoencoder (f4 by default), trained once and cached.

Latent diffusion needs an autoencoder; for toys on a CPU a real KL-VAE is too big, so this one is a
plain deterministic conv AE (the paper's decoder is a KL-VAE; the diffusion model does not care
which, as long as the latent is smooth and of unit scale). A tiny L2 penalty on the latent keeps it
bounded; after training `scale_factor = 1 / std(z)` makes the scaled latent unit-variance (the role
of SD's 0.18215).

    x (N, 3, H, W) in [-1, 1] -> encode -> z (N, C_z, H/f, W/f) * scale_factor -> decode -> x

`train_or_load(cfg, images, cache_dir)` keys the cache on the config, the training settings and a
checksum of the images, so a second call (another test, the demo) loads in milliseconds.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from genlab.core.io import cache_dir as shared_cache_dir
from genlab.errors import GenlabError


@dataclass(frozen=True)
class SmallAEConfig:
    in_channels: int = 3
    latent_channels: int = 4
    channels: tuple[int, ...] = (32, 64, 64)  # one entry per resolution; f = 2 ** (len - 1)
    groups: int = 8
    # training
    steps: int = 1500
    batch_size: int = 32
    lr: float = 2e-3
    latent_l2: float = 1e-4
    seed: int = 0

    @property
    def downsample_factor(self) -> int:
        return 2 ** (len(self.channels) - 1)


def tiny(**overrides) -> SmallAEConfig:
    """f4, 4 latent channels: 32x32 -> 8x8x4 (video toys) and 64x64 -> 16x16x4 (insertion toys)."""
    return replace(SmallAEConfig(), **overrides)


class _Res(nn.Module):
    def __init__(self, ch: int, groups: int):
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(groups, ch), nn.Conv2d(ch, ch, 3, padding=1)
        self.norm2, self.conv2 = nn.GroupNorm(groups, ch), nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        return x + self.conv2(F.silu(self.norm2(h)))


class SmallAE(nn.Module):
    """Conv encoder/decoder with one residual block per resolution; `scale_factor` is a buffer."""

    def __init__(self, config: SmallAEConfig):
        super().__init__()
        self.config = config
        ch, g = config.channels, config.groups
        enc: list[nn.Module] = [nn.Conv2d(config.in_channels, ch[0], 3, padding=1)]
        for i in range(len(ch)):
            enc.append(_Res(ch[i], g))
            if i < len(ch) - 1:
                enc.append(nn.Conv2d(ch[i], ch[i + 1], 3, stride=2, padding=1))  # H -> H/2
        enc += [nn.GroupNorm(g, ch[-1]), nn.SiLU(), nn.Conv2d(ch[-1], config.latent_channels, 3, padding=1)]
        self.encoder = nn.Sequential(*enc)
        dec: list[nn.Module] = [nn.Conv2d(config.latent_channels, ch[-1], 3, padding=1)]
        for i in reversed(range(len(ch))):
            dec.append(_Res(ch[i], g))
            if i > 0:
                dec += [nn.Upsample(scale_factor=2.0, mode="nearest"), nn.Conv2d(ch[i], ch[i - 1], 3, padding=1)]
        dec += [nn.GroupNorm(g, ch[0]), nn.SiLU(), nn.Conv2d(ch[0], config.in_channels, 3, padding=1)]
        self.decoder = nn.Sequential(*dec)
        self.register_buffer("scale_factor", torch.ones(()))

    @property
    def downsample_factor(self) -> int:
        return self.config.downsample_factor

    @property
    def latent_channels(self) -> int:
        return self.config.latent_channels

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) in [-1, 1] -> scaled latent (N, C_z, H/f, W/f)."""
        f = self.downsample_factor
        if x.ndim != 4 or x.shape[1] != self.config.in_channels or x.shape[-1] % f or x.shape[-2] % f:
            raise GenlabError(
                f"SmallAE.encode: expected (N, {self.config.in_channels}, H, W) with H, W divisible by {f}, "
                f"got {tuple(x.shape)}"
            )
        return self.encoder(x) * self.scale_factor

    def encode_unscaled(self, x: torch.Tensor) -> torch.Tensor:
        """The raw latent (SVD's conditioning latent is not multiplied by the scale factor)."""
        return self.encode(x) / self.scale_factor

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Scaled latent -> image (N, C, H, W), roughly in [-1, 1]."""
        return self.decoder(z / self.scale_factor)

    def decode_video(self, z: torch.Tensor, chunk_size: int | None = None) -> torch.Tensor:
        """(B, T, C_z, h, w) -> (B, T, C, H, W), frame-wise, `chunk_size` frames at a time."""
        return decode_framewise(self.decode, z, chunk_size)


def decode_framewise(decode, z: torch.Tensor, chunk_size: int | None) -> torch.Tensor:
    b, t = z.shape[:2]
    chunk = t if chunk_size is None else chunk_size
    if chunk < 1:
        raise GenlabError(f"decode chunk size must be >= 1, got {chunk}")
    flat = z.flatten(0, 1)
    out = torch.cat([decode(c) for c in flat.split(flat.shape[0] if chunk_size is None else chunk)])
    return out.reshape(b, t, *out.shape[1:])


def psnr(x: torch.Tensor, y: torch.Tensor) -> float:
    """PSNR in dB for images in [-1, 1] (peak-to-peak 2)."""
    mse = (x.clamp(-1, 1) - y.clamp(-1, 1)).float().square().mean().item()
    return float(10 * torch.log10(torch.tensor(4.0 / max(mse, 1e-12))))


def train(config: SmallAEConfig, images: torch.Tensor, progress: bool = False) -> SmallAE:
    """Fit the AE to `images` (N, C, H, W) in [-1, 1] with Adam + cosine decay; sets scale_factor."""
    from tqdm import tqdm

    gen = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)
    model = SmallAE(config)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=config.lr, total_steps=config.steps, pct_start=0.05)
    for _ in tqdm(range(config.steps), desc="autoencoder", disable=not progress):
        idx = torch.randint(0, images.shape[0], (config.batch_size,), generator=gen)
        x = images[idx]
        z = model.encoder(x)
        loss = F.mse_loss(model.decoder(z), x) + config.latent_l2 * z.square().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    model.eval()
    with torch.no_grad():
        z = torch.cat([model.encoder(c) for c in images[:512].split(64)])
        model.scale_factor.fill_(1.0 / z.std().clamp_min(1e-6).item())
    return model


def _key(config: SmallAEConfig, images: torch.Tensor) -> str:
    h = hashlib.sha256(json.dumps(asdict(config), sort_keys=True).encode())
    h.update(str(tuple(images.shape)).encode())
    h.update(images.detach().float().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def default_cache_dir() -> Path:
    return shared_cache_dir("autoencoders")


def save(model: SmallAE, path: str | os.PathLike) -> None:
    """safetensors weights + JSON config beside them, both written atomically."""
    from genlab.core.train.checkpoint import save_weights

    save_weights(path, model.state_dict(), model.config)


def load(path: str | os.PathLike) -> SmallAE:
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file() or not path.with_suffix(".json").is_file():
        raise GenlabError(f"SmallAE: {path} (and its .json config) not found")
    raw = json.loads(path.with_suffix(".json").read_text())
    config = SmallAEConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()})
    model = SmallAE(config)
    model.load_state_dict(load_file(str(path)))
    return model.eval()


def train_or_load(config: SmallAEConfig, images: torch.Tensor, cache_dir: str | os.PathLike | None = None,
                  progress: bool = False) -> SmallAE:
    """Train once per (config, images) and cache under `cache_dir` (default $GENLAB_CACHE/autoencoders)."""
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = cache / f"small_ae_{_key(config, images)}.safetensors"
    if path.is_file() and path.with_suffix(".json").is_file():
        return load(path)
    model = train(config, images, progress=progress)
    save(model, path)
    return model
