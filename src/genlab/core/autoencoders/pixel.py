"""The identity "autoencoder": diffusion directly in pixel space, same interface as the others.

`patch=p > 1` folds p x p pixel blocks into channels (space-to-depth, lossless): an instant "f_p"
latent of C p^2 channels, handy for CPU toys.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from genlab.errors import GenlabError


class PixelIdentity(nn.Module):
    """encode = space-to-depth (identity when patch = 1), decode = its inverse; exact."""

    def __init__(self, channels: int = 3, patch: int = 1):
        super().__init__()
        self.patch = patch
        self.latent_channels = channels * patch * patch
        self.downsample_factor = patch

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        if self.patch == 1:
            return x
        if x.shape[-1] % self.patch or x.shape[-2] % self.patch:
            raise GenlabError(f"PixelIdentity: H, W must be divisible by {self.patch}, got {tuple(x.shape[-2:])}")
        return F.pixel_unshuffle(x, self.patch)

    def encode_unscaled(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return z if self.patch == 1 else F.pixel_shuffle(z, self.patch)

    def decode_video(self, z: torch.Tensor, chunk_size: int | None = None) -> torch.Tensor:
        if chunk_size is not None and chunk_size < 1:
            raise GenlabError(f"decode chunk size must be >= 1, got {chunk_size}")
        out = self.decode(z.flatten(0, 1))
        return out.reshape(*z.shape[:2], *out.shape[1:])
