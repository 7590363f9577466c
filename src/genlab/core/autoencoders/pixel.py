"""The identity "autoencoder": diffusion directly in pixel space, same interface as the others."""

from __future__ import annotations

import torch
from torch import nn


class PixelIdentity(nn.Module):
    """encode = decode = identity; downsample_factor 1, latent_channels = image channels."""

    def __init__(self, channels: int = 3):
        super().__init__()
        self.latent_channels = channels
        self.downsample_factor = 1

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return z
