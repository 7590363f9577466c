"""LoRA (Hu et al. 2021) on any nn.Linear, including fused projections whose output rows are several
logical layers (a fused qkv Linear carries one adapter per q, k and v, as diffusers' to_q / to_k / to_v).

    layer = LoRALinear(linear, parts=3)                 # replaces model.attn.qkv; base weights shared, frozen
    layer.add(LoRA(in_features, d, rank=8, alpha=8), part=0)   # adapter on rows 0:d (q)
    y = layer(x)                                        # W x + b + cat_p(s_p B_p A_p x) (zero for parts without one)
    merged = layer.merged()                             # a plain nn.Linear with W + s B A folded in

`s = multiplier * alpha / rank` (`alpha / sqrt(rank)` with rs-LoRA). A starts Kaiming-uniform and B at zero,
as PEFT does, so a new adapter leaves the model unchanged. `LoRALinear` is deliberately not an nn.Linear
subclass: code that fuses plain Linears' compute must call this module instead.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from genlab.errors import GenlabError


class LoRA(nn.Module):
    """One adapter: x (..., in) -> scale * B A x (..., out); parameters `lora_A` (r, in), `lora_B` (out, r)."""

    def __init__(self, in_features: int, out_features: int, rank: int, alpha: float | None = None,
                 rslora: bool = False, device=None, dtype=None):
        super().__init__()
        if rank < 1:
            raise GenlabError(f"LoRA rank: expected >= 1, got {rank}")
        self.rank = rank
        self.alpha = float(rank if alpha is None else alpha)
        self.rslora = rslora
        self.multiplier = 1.0  # the user's strength (`--lora FILE:scale`), on top of alpha / rank
        self.lora_A = nn.Parameter(torch.empty(rank, in_features, device=device, dtype=dtype))
        self.lora_B = nn.Parameter(torch.zeros(out_features, rank, device=device, dtype=dtype))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))

    @property
    def scale(self) -> float:
        return self.multiplier * self.alpha / (math.sqrt(self.rank) if self.rslora else self.rank)

    def delta_weight(self) -> torch.Tensor:
        """scale B A, (out, in)."""
        return self.scale * (self.lora_B @ self.lora_A)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * F.linear(F.linear(x, self.lora_A.to(x.dtype)), self.lora_B.to(x.dtype))


class LoRALinear(nn.Module):
    """A frozen nn.Linear (`base`) plus adapters on equal row blocks of its output (`parts` of them)."""

    def __init__(self, base: nn.Linear, parts: int = 1):
        super().__init__()
        if base.out_features % parts:
            raise GenlabError(f"LoRALinear: {base.out_features} output rows do not split into {parts} parts")
        self.base = base.requires_grad_(False)
        self.parts = parts
        self.part_size = base.out_features // parts
        self.adapters = nn.ModuleDict()  # str(part) -> LoRA

    @property
    def in_features(self) -> int:
        return self.base.in_features

    @property
    def out_features(self) -> int:
        return self.base.out_features

    def add(self, lora: LoRA, part: int = 0) -> LoRA:
        if not 0 <= part < self.parts:
            raise GenlabError(f"LoRALinear: part {part} outside 0..{self.parts - 1}")
        if tuple(lora.lora_A.shape[1:]) != (self.in_features,) or lora.lora_B.shape[0] != self.part_size:
            raise GenlabError(f"LoRA of shape A {tuple(lora.lora_A.shape)}, B {tuple(lora.lora_B.shape)} does not fit "
                              f"a {self.in_features} -> {self.part_size} projection")
        if str(part) in self.adapters:
            raise GenlabError(f"LoRALinear: part {part} already has an adapter")
        self.adapters[str(part)] = lora.to(self.base.weight.device)
        return lora

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.base(x)
        if not self.adapters:
            return y
        if self.parts == 1:
            return y + self.adapters["0"](x)
        deltas = [self.adapters[str(p)](x) if str(p) in self.adapters else None for p in range(self.parts)]
        like = next(d for d in deltas if d is not None)
        return y + torch.cat([d if d is not None else torch.zeros_like(like) for d in deltas], dim=-1)

    @torch.no_grad()
    def delta_weight(self) -> torch.Tensor:
        """Every adapter's scale B A in its rows, (out, in), float32."""
        delta = torch.zeros(self.out_features, self.in_features, device=self.base.weight.device)
        for p, lora in self.adapters.items():
            rows = slice(int(p) * self.part_size, (int(p) + 1) * self.part_size)
            delta[rows] += lora.delta_weight().float()
        return delta

    @torch.no_grad()
    def merged(self) -> nn.Linear:
        """The base Linear with the adapters folded into its weight (in the base's dtype)."""
        w = self.base.weight
        self.base.weight.copy_((w.float() + self.delta_weight()).to(w.dtype))
        return self.base


def lora_layers(model: nn.Module) -> dict[str, LoRALinear]:
    return {name: m for name, m in model.named_modules() if isinstance(m, LoRALinear)}


def wrap_linear(model: nn.Module, name: str, parts: int = 1) -> LoRALinear:
    """model.<name> (an nn.Linear, or a LoRALinear already) as a LoRALinear, replaced in place."""
    parent_name, _, child = name.rpartition(".")
    try:
        parent = model.get_submodule(parent_name) if parent_name else model
        module = getattr(parent, child)
    except AttributeError:
        raise GenlabError(f"LoRA target {name!r} is not a module of this model") from None
    if isinstance(module, LoRALinear):
        if module.parts != parts:
            raise GenlabError(f"LoRA target {name!r}: already split into {module.parts} parts, not {parts}")
        return module
    if type(module) is not nn.Linear:
        raise GenlabError(f"LoRA target {name!r} is a {type(module).__name__}, not a Linear layer")
    layer = LoRALinear(module, parts)
    setattr(parent, child, layer)
    return layer


@torch.no_grad()
def merge_lora(model: nn.Module) -> nn.Module:
    """Fold every adapter into its base weight and put the plain nn.Linear back (in place)."""
    for name, layer in lora_layers(model).items():
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, layer.merged())
    return model


__all__ = ["LoRA", "LoRALinear", "lora_layers", "merge_lora", "wrap_linear"]
