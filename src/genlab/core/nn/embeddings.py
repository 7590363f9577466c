"""Sinusoidal embeddings shared by every diffusion backbone (MM-DiT, DiT, UNet, temporal layers)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from genlab.errors import GenlabError


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
        raise GenlabError(f"timestep_embedding expects a 1-D tensor, got shape {tuple(t.shape)}")
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


class TimestepEmbedder(nn.Module):
    """t (N,) -> sinusoid(freq_dim, [cos, sin]) -> Linear -> SiLU -> Linear (DiT, SD3 `t_embedder`)."""

    def __init__(self, dim: int, freq_dim: int = 256, max_period: float = 10000.0):
        super().__init__()
        self.freq_dim, self.max_period = freq_dim, max_period
        self.mlp = nn.Sequential(nn.Linear(freq_dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        emb = timestep_embedding(t, self.freq_dim, max_period=self.max_period)  # (N, freq_dim)
        return self.mlp(emb.to(self.mlp[0].weight.dtype))  # (N, dim)


class VectorEmbedder(nn.Module):
    """y (N, in_dim) -> Linear -> SiLU -> Linear (SD3 `y_embedder` for the pooled text vector)."""

    def __init__(self, in_dim: int, dim: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(in_dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.mlp(y)


def sincos_1d(dim: int, pos: torch.Tensor) -> torch.Tensor:
    """(M,) positions -> (M, dim) = [sin(pos w), cos(pos w)], w_i = 10000^(-2i/dim) (MAE / DiT)."""
    if dim % 2:
        raise GenlabError(f"sin-cos embedding needs an even dim, got {dim}")
    omega = 1.0 / 10000 ** (torch.arange(dim // 2, dtype=torch.float64) / (dim / 2.0))
    out = pos.double().reshape(-1)[:, None] * omega[None]  # (M, dim/2)
    return torch.cat([torch.sin(out), torch.cos(out)], dim=1)


def sincos_2d_pos_embed(dim: int, grid: int | tuple[int, int], base_size: float | None = None,
                        interpolation_scale: float = 1.0) -> torch.Tensor:
    """Fixed 2-D sin-cos table for a (gh, gw) grid -> (gh*gw, dim), row-major; first half encodes the
    column (x), second half the row (y), as in MAE / DiT / SD3.

    Positions are arange(g) * base_size / g / interpolation_scale; base_size=None gives integer
    positions. diffusers' SD3 uses base_size = sample_size / patch_size (e.g. 64 on a 192 grid).
    """
    gh, gw = (grid, grid) if isinstance(grid, int) else grid
    ys = torch.arange(gh, dtype=torch.float32)
    xs = torch.arange(gw, dtype=torch.float32)
    if base_size is not None:
        ys, xs = ys / (gh / base_size), xs / (gw / base_size)
    ys, xs = ys / interpolation_scale, xs / interpolation_scale
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")  # (gh, gw)
    emb = torch.cat([sincos_1d(dim // 2, xx), sincos_1d(dim // 2, yy)], dim=1)  # (gh*gw, dim)
    return emb.float()


def crop_pos_embed(table: torch.Tensor, max_size: int, h: int, w: int) -> torch.Tensor:
    """Centre crop of a (1, max_size^2, D) table to an (h, w) token grid -> (1, h*w, D) (SD3)."""
    if h > max_size or w > max_size:
        raise GenlabError(f"token grid {h}x{w} exceeds the position table's maximum {max_size}x{max_size}")
    top, left = (max_size - h) // 2, (max_size - w) // 2
    grid = table.reshape(1, max_size, max_size, -1)[:, top:top + h, left:left + w, :]
    return grid.reshape(1, h * w, -1)


class PatchEmbed(nn.Module):
    """(B, C, H, W) -> (B, H/p * W/p, D) with a strided conv named `proj` (DiT, SD3 `x_embedder`)."""

    def __init__(self, in_channels: int, dim: int, patch_size: int):
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_channels, dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The strided conv computed as one matrix product over the flattened patches: it gives the tokens in
        (B, N, D) memory order (a transposed conv output would make every later residual add keep that layout,
        and every LayerNorm copy it back), and skips the conv library's reorders of tiny tensors."""
        b, c, h, w = x.shape
        p = self.patch_size
        patches = x.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 1, 3, 5).reshape(b, -1, c * p * p)
        return F.linear(patches, self.proj.weight.flatten(1), self.proj.bias)  # (B, N, D)


def unpatchify(x: torch.Tensor, h: int, w: int, p: int, c: int) -> torch.Tensor:
    """(B, h*w, p*p*c) tokens -> (B, c, h*p, w*p) image (inverse of PatchEmbed's layout)."""
    b = x.shape[0]
    x = x.reshape(b, h, w, p, p, c)
    x = torch.einsum("nhwpqc->nchpwq", x)
    return x.reshape(b, c, h * p, w * p)
