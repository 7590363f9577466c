"""adaLN(-Zero) modulation (DiT, SD3): a conditioning vector c predicts per-channel shift/scale/gate."""

from __future__ import annotations

import torch
from torch import nn


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """x * (1 + scale) + shift, with (B, D) shift/scale broadcast over the token axis of (B, N, D) x.
    One addcmul: one pass over x instead of two (and no (B, N, D) intermediate kept for backward)."""
    return torch.addcmul(shift.unsqueeze(1), x, 1 + scale.unsqueeze(1))


class AdaLNModulation(nn.Sequential):
    """c (B, D) -> `chunks` tensors (B, D) via SiLU -> Linear; zero-initialised (adaLN-Zero).

    A Sequential (SiLU, Linear) so that, stored as `adaLN_modulation`, its weights carry the
    reference checkpoint names `adaLN_modulation.1.*`. Chunk order is the caller's convention;
    SD3/DiT blocks use (shift, scale, gate) for attention then for the MLP.
    """

    def __init__(self, cond_dim: int, dim: int, chunks: int):
        super().__init__(nn.SiLU(), nn.Linear(cond_dim, chunks * dim))
        self.chunks = chunks
        nn.init.zeros_(self[1].weight)
        nn.init.zeros_(self[1].bias)

    def forward(self, c: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return super().forward(c).chunk(self.chunks, dim=-1)
