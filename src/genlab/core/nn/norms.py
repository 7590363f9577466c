"""Normalisation layers: RMSNorm (SD3.5 QK-norm) and the affine-free LayerNorm used under adaLN."""

from __future__ import annotations

import torch
from torch import nn

from genlab.errors import GenlabError


class RMSNorm(nn.Module):
    """y = x / sqrt(mean(x^2) + eps) * weight over the last dim (computed in float32).

    Matches diffusers' `RMSNorm(dim, eps, elementwise_affine=True)` and sd3.5's `RMSNorm`.
    """

    def __init__(self, dim: int, eps: float = 1e-6, affine: bool = True):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim)) if affine else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        x = x.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        if self.weight is not None:
            x = x * self.weight.float()
        return x.to(dtype)


def layer_norm_no_affine(dim: int, eps: float = 1e-6) -> nn.LayerNorm:
    """The LayerNorm that adaLN modulates: no learnable scale/shift (DiT, SD3)."""
    return nn.LayerNorm(dim, elementwise_affine=False, eps=eps)


def qk_norm_layer(kind: str | None, head_dim: int, eps: float = 1e-6) -> nn.Module | None:
    """Per-head query/key normalisation: None, "rms" (SD3.5) or "ln" (LayerNorm with affine)."""
    if kind is None:
        return None
    if kind == "rms":
        return RMSNorm(head_dim, eps=eps)
    if kind == "ln":
        return nn.LayerNorm(head_dim, eps=eps)
    raise GenlabError(f"qk_norm: expected None, 'rms' or 'ln', got {kind!r}")
