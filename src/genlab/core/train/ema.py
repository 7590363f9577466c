"""Exponential moving average of a model's parameters (and a copy of its buffers)."""

from __future__ import annotations

import copy

import torch
from torch import nn

from genlab.errors import GenlabError


class EMA:
    """`ema.model` is a frozen copy of `model` whose floating parameters track
    theta_ema <- decay * theta_ema + (1 - decay) * theta after each `update(model)`.

    `warmup=True` uses the usual bias-free ramp decay_k = min(decay, (1 + k) / (10 + k)) so an
    EMA of a short run is not dominated by the random initialisation. Buffers are copied as is.
    """

    def __init__(self, model: nn.Module, decay: float = 0.999, warmup: bool = True):
        if not 0.0 <= decay <= 1.0:
            raise GenlabError(f"EMA decay must lie in [0, 1], got {decay}")
        self.decay = float(decay)
        self.warmup = warmup
        self.num_updates = 0
        self.model = copy.deepcopy(unwrap_model(model)).eval().requires_grad_(False)

    def current_decay(self) -> float:
        if not self.warmup:
            return self.decay
        return min(self.decay, (1 + self.num_updates) / (10 + self.num_updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        decay = self.current_decay()
        self.num_updates += 1
        src = unwrap_model(model)
        ema_params = [p for p in self.model.parameters()]
        params = [p.detach() for p in src.parameters()]
        floats = [(e, p) for e, p in zip(ema_params, params) if e.is_floating_point()]
        if floats:
            # lerp: e + (1 - decay) (p - e) == decay e + (1 - decay) p, in one fused kernel.
            torch._foreach_lerp_([e for e, _ in floats], [p for _, p in floats], 1.0 - decay)
        for e, p in zip(self.model.buffers(), src.buffers()):
            e.copy_(p)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.model.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor], num_updates: int) -> None:
        self.model.load_state_dict(state)
        self.num_updates = int(num_updates)


def unwrap_model(model: nn.Module) -> nn.Module:
    """The module inside DDP / FSDP / torch.compile wrappers."""
    while True:
        if hasattr(model, "module") and isinstance(model.module, nn.Module):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model
