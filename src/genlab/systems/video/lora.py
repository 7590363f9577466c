"""LoRA on the temporal attention (paper section 4, App. D.4.2: camera-motion LoRAs, rank 16).

`add_temporal_lora(unet, rank)` turns every q/k/v/out projection of the temporal transformer blocks into
W x + (alpha / r) B A x with A ~ N(0, 1/r), B = 0, so the model is unchanged at insertion; only A and B
train (`StageConfig.train = "lora"`). Parameter names of the base weights stay the same, so a LoRA model
loads the base checkpoint first; `merge_lora` folds B A into W.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class LoRALinear(nn.Linear):
    def __init__(self, base: nn.Linear, rank: int, alpha: float | None = None):
        super().__init__(base.in_features, base.out_features, bias=base.bias is not None,
                         device=base.weight.device, dtype=base.weight.dtype)
        with torch.no_grad():
            self.weight.copy_(base.weight)
            if base.bias is not None:
                self.bias.copy_(base.bias)
        self.rank = rank
        self.scale = (alpha if alpha is not None else rank) / rank
        self.lora_A = nn.Parameter(torch.randn(rank, base.in_features) / rank)
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, rank))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias) + self.scale * F.linear(F.linear(x, self.lora_A), self.lora_B)


def add_temporal_lora(unet: nn.Module, rank: int = 16) -> list[str]:
    """Replace the temporal attention projections by LoRALinear; returns the replaced module names."""
    replaced = []
    for name, module in list(unet.named_modules()):
        if "temporal_transformer_blocks" not in name or not name.endswith((".attn1", ".attn2")):
            continue
        for proj in ("to_q", "to_k", "to_v"):
            setattr(module, proj, LoRALinear(getattr(module, proj), rank))
            replaced.append(f"{name}.{proj}")
        module.to_out[0] = LoRALinear(module.to_out[0], rank)
        replaced.append(f"{name}.to_out.0")
    return replaced


def lora_parameters(model: nn.Module) -> list[nn.Parameter]:
    return [p for n, p in model.named_parameters() if "lora_" in n]


@torch.no_grad()
def merge_lora(unet: nn.Module) -> None:
    """Fold every adapter into its weight (W += scale B A) and reset B to zero."""
    for m in unet.modules():
        if isinstance(m, LoRALinear):
            m.weight += m.scale * m.lora_B @ m.lora_A
            m.lora_B.zero_()
