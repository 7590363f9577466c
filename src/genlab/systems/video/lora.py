"""LoRA on the temporal attention (paper section 4, App. D.4.2: camera-motion LoRAs, rank 16).

`add_temporal_lora(unet, rank)` turns every q/k/v/out projection of the temporal transformer blocks into
W x + (alpha / r) B A x with A ~ N(0, 1/r), B = 0, so the model is unchanged at insertion; only A and B
train (`StageConfig.train = "lora"`). Parameter names of the base weights stay the same, so a LoRA model
loads the base checkpoint first; `merge_lora` folds B A into W.

    save_lora(path, model)            # the adapters only (lora_A / lora_B) + {"rank", "alpha", "base"} as JSON
    load_lora(model, path)            # adds adapters of that rank to a base model and loads them
    merged_state_dict(model)          # adapters folded into the base weights, base keys only (for export)
A LoRA file given to a base it was not trained for is one GenlabError naming the first key that does not fit.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from genlab.errors import GenlabError


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


def add_temporal_lora(unet: nn.Module, rank: int = 16, alpha: float | None = None) -> list[str]:
    """Replace the temporal attention projections by LoRALinear; returns the replaced module names."""
    replaced = []
    for name, module in list(unet.named_modules()):
        if "temporal_transformer_blocks" not in name or not name.endswith((".attn1", ".attn2")):
            continue
        for proj in ("to_q", "to_k", "to_v"):
            setattr(module, proj, LoRALinear(getattr(module, proj), rank, alpha))
            replaced.append(f"{name}.{proj}")
        module.to_out[0] = LoRALinear(module.to_out[0], rank, alpha)
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


@torch.no_grad()
def merged_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The base model's state dict with every adapter folded in (W + scale B A) and no lora_ keys: what
    `load_video_model` and `--init` read. The model itself is unchanged."""
    state = {k: v for k, v in model.state_dict().items() if ".lora_" not in k}
    for name, m in model.named_modules():
        if isinstance(m, LoRALinear):
            state[f"{name}.weight"] = m.weight + m.scale * m.lora_B @ m.lora_A
    return state


def lora_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v for k, v in model.state_dict().items() if ".lora_" in k}


def save_lora(path, model: nn.Module) -> None:
    """The adapters of `model` (a model with `add_temporal_lora` applied) with rank, alpha and the base config."""
    from genlab.core.train import save_weights

    layers = [m for m in model.modules() if isinstance(m, LoRALinear)]
    if not layers:
        raise GenlabError("save_lora: the model has no LoRA adapters")
    config = getattr(model, "config", None)
    save_weights(path, lora_state_dict(model), {"rank": layers[0].rank, "alpha": layers[0].scale * layers[0].rank,
                                                "targets": "temporal attention q, k, v, out",
                                                "base": config.to_dict() if config is not None else None})


def load_lora(model: nn.Module, path) -> nn.Module:
    """Add temporal LoRA adapters of the file's rank to `model` (an SVDModel) and load them; every key and
    shape must fit (a LoRA for another base is an error naming the first key that does not)."""
    from genlab.core.train import load_weights

    if any(isinstance(m, LoRALinear) for m in model.modules()):
        raise GenlabError(f"load_lora {path}: the model already has LoRA adapters (merge or load a plain base)")
    state, config = load_weights(path)
    if not config or "rank" not in config:
        raise GenlabError(f"{path}: no LoRA config (rank) in the JSON beside it (write it with save_lora / "
                          "`genlab video train --lora`)")
    add_temporal_lora(model.unet, rank=int(config["rank"]), alpha=config.get("alpha"))
    own = lora_state_dict(model)
    unmapped, missing = sorted(set(state) - set(own)), sorted(set(own) - set(state))
    if unmapped or missing:
        raise GenlabError(f"{path}: LoRA keys do not fit this base model: unmapped {unmapped[:3]}, missing {missing[:3]} "
                          f"({len(unmapped)} / {len(missing)}); was it trained for another model?")
    wrong = [k for k in own if own[k].shape != state[k].shape]
    if wrong:
        raise GenlabError(f"{path}: LoRA key {wrong[0]} has shape {tuple(state[wrong[0]].shape)}, this base model "
                          f"needs {tuple(own[wrong[0]].shape)}; was it trained for another model?")
    model.load_state_dict(state, strict=False)
    return model
