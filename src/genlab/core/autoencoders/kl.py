"""diffusers' AutoencoderKL (SD's f8 KL-VAE) from an explicit local folder; nothing downloads."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from genlab.errors import GenlabError


class DiffusersKL(nn.Module):
    """Wraps `diffusers.AutoencoderKL`: encode -> mode (or a sample) * scaling_factor; decode undoes it."""

    def __init__(self, vae: nn.Module, sample: bool = False):
        super().__init__()
        self.vae = vae
        self.sample = sample
        self.scaling_factor = float(vae.config.scaling_factor)
        self.latent_channels = int(vae.config.latent_channels)
        self.downsample_factor = 2 ** (len(vae.config.block_out_channels) - 1)

    @classmethod
    def from_local(cls, path: str | os.PathLike, subfolder: str | None = None, dtype=torch.float32,
                   device: str | torch.device = "cpu") -> DiffusersKL:
        folder = Path(path) / subfolder if subfolder else Path(path)
        if not (folder / "config.json").is_file():
            raise GenlabError(f"AutoencoderKL: no config.json in {folder} (give a local diffusers VAE folder)")
        from diffusers import AutoencoderKL

        vae = AutoencoderKL.from_pretrained(str(folder), local_files_only=True, torch_dtype=dtype)
        return cls(vae.to(device).eval())

    def encode(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        dist = self.vae.encode(x).latent_dist
        z = dist.sample(generator) if self.sample else dist.mode()
        return z * self.scaling_factor

    def encode_unscaled(self, x: torch.Tensor) -> torch.Tensor:
        return self.vae.encode(x).latent_dist.mode()

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.vae.decode(z / self.scaling_factor).sample

    def decode_video(self, z: torch.Tensor, chunk_size: int | None = None) -> torch.Tensor:
        from genlab.core.autoencoders.small import decode_framewise

        return decode_framewise(self.decode, z, chunk_size)
