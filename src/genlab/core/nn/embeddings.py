"""Sinusoidal embeddings shared by every diffusion backbone (MM-DiT, DiT, UNet, temporal layers)."""

from __future__ import annotations

import math

import torch


def timestep_embedding(
    t: torch.Tensor,
    dim: int,
    max_period: float = 10000.0,
    flip_sin_to_cos: bool = True,
    downscale_freq_shift: float = 0.0,
    scale: float = 1.0,
) -> torch.Tensor:
    """Sinusoidal embedding of a 1-D tensor of (possibly fractional) positions -> (N, dim).

    Same definition as diffusers' `get_timestep_embedding` (and sgm's `timestep_embedding`, which
    is `flip_sin_to_cos=True, downscale_freq_shift=0`): frequencies
    exp(-ln(max_period) * i / (half - shift)), i = 0..half-1; [cos, sin] when flipped.
    """
    if t.ndim != 1:
        raise ValueError(f"timestep_embedding expects a 1-D tensor, got shape {tuple(t.shape)}")
    half = dim // 2
    exponent = -math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device)
    freqs = torch.exp(exponent / (half - downscale_freq_shift))
    args = scale * t.float()[:, None] * freqs[None]  # (N, half)
    emb = torch.cat([torch.sin(args), torch.cos(args)], dim=-1)
    if flip_sin_to_cos:
        emb = torch.cat([emb[:, half:], emb[:, :half]], dim=-1)
    if dim % 2:
        emb = torch.nn.functional.pad(emb, (0, 1))
    return emb
