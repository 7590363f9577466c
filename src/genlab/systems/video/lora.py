"""LoRA on the temporal attention (paper section 4, App. D.4.2: camera-motion LoRAs, rank 16).

`add_temporal_lora(unet, rank)` turns every q/k/v/out projection of the temporal transformer blocks into
W x + (alpha / r) B A x with A ~ N(0, 1/r), B = 0, so the model is unchanged at insertion; only A and B
train (`StageConfig.train = "lora"`). Parameter names of the base weights stay the same, so a LoRA model
loads the base checkpoint first; `merge_lora` folds B A into W.

    save_lora(path, model)            # the adapters only (lora_A / lora_B) + {"rank", "alpha", "base"} as JSON
    load_lora(model, path, scale=1.0) # adds adapters of that rank to a base model and loads them
    apply_lora(model, path, scale=1.0)  # load_lora + fold_lora: the base weights become W + scale B A (sampling;
                                      #   several files stack, nothing extra runs per step)
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
        like = {"device": base.weight.device, "dtype": base.weight.dtype}
        self.lora_A = nn.Parameter(torch.randn(rank, base.in_features, **like) / rank)
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, rank, **like))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias) + self.scale * F.linear(F.linear(x, self.lora_A), self.lora_B)


def _targets(unet: nn.Module) -> list[tuple[str, nn.Module, str, nn.Linear]]:
    """(name, parent, attribute, linear) of every projection a temporal LoRA adapts: q, k, v, out of each
    temporal attention (one list for adding adapters and for checking a file against a base)."""
    out = []
    for name, module in unet.named_modules():
        if "temporal_transformer_blocks" not in name or not name.endswith((".attn1", ".attn2")):
            continue
        for proj in ("to_q", "to_k", "to_v"):
            out.append((f"{name}.{proj}", module, proj, getattr(module, proj)))
        out.append((f"{name}.to_out.0", module.to_out, "0", module.to_out[0]))
    return out


def add_temporal_lora(unet: nn.Module, rank: int = 16, alpha: float | None = None) -> list[str]:
    """Replace the temporal attention projections by LoRALinear; returns the replaced module names."""
    targets = _targets(unet)
    for _, parent, attr, linear in targets:
        setattr(parent, attr, LoRALinear(linear, rank, alpha))
    return [name for name, *_ in targets]


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


def read_lora(path) -> tuple[dict[str, torch.Tensor], dict]:
    """(adapters, config) of a file written by `save_lora`; a file that is not one is a GenlabError naming it."""
    from genlab.core.train import load_weights

    state, config = load_weights(path)
    if not config or "rank" not in config:
        raise GenlabError(f"{path}: no LoRA config (rank) in the JSON beside it (write it with save_lora / "
                          "`genlab video train --lora`)")
    return state, config


def load_lora(model: nn.Module, path, scale: float = 1.0) -> nn.Module:
    """Add temporal LoRA adapters of the file's rank to `model` (an SVDModel) and load them; every key and
    shape must fit (a LoRA for another base is an error naming the first key that does not). `scale`
    multiplies the adapters' contribution (1: as trained, 0: the base)."""
    if any(isinstance(m, LoRALinear) for m in model.modules()):
        raise GenlabError(f"load_lora {path}: the model already has LoRA adapters (merge or load a plain base)")
    state, config = read_lora(path)
    own = _adapter_shapes(model, int(config["rank"]))
    unmapped, missing = sorted(set(state) - set(own)), sorted(set(own) - set(state))
    if unmapped or missing:
        raise GenlabError(f"{path}: LoRA keys do not fit this base model: unmapped {unmapped[:3]}, missing {missing[:3]} "
                          f"({len(unmapped)} / {len(missing)}); was it trained for another model?")
    wrong = [k for k in own if own[k] != state[k].shape]
    if wrong:
        raise GenlabError(f"{path}: LoRA key {wrong[0]} has shape {tuple(state[wrong[0]].shape)}, this base model "
                          f"needs {tuple(own[wrong[0]])}; was it trained for another model?")
    add_temporal_lora(model.unet, rank=int(config["rank"]), alpha=config.get("alpha"))  # only once it fits
    model.load_state_dict(state, strict=False)
    for m in model.modules():
        if isinstance(m, LoRALinear):
            m.scale *= scale
    return model


def _adapter_shapes(model: nn.Module, rank: int) -> dict[str, torch.Size]:
    """The lora_A / lora_B names and shapes `add_temporal_lora(model.unet, rank)` would create (model untouched)."""
    out = {}
    for name, _, _, linear in _targets(model.unet):
        out[f"unet.{name}.lora_A"] = torch.Size((rank, linear.in_features))
        out[f"unet.{name}.lora_B"] = torch.Size((linear.out_features, rank))
    return out


@torch.no_grad()
def fold_lora(model: nn.Module) -> nn.Module:
    """Replace every LoRALinear by a plain nn.Linear holding W + scale B A (the model then runs as a base)."""
    for parent in list(model.modules()):
        for child_name, child in list(parent.named_children()):
            if isinstance(child, LoRALinear):
                plain = nn.Linear(child.in_features, child.out_features, bias=child.bias is not None,
                                  device=child.weight.device, dtype=child.weight.dtype)
                plain.weight.copy_(child.weight + child.scale * child.lora_B @ child.lora_A)
                if child.bias is not None:
                    plain.bias.copy_(child.bias)
                setattr(parent, child_name, plain)
    return model


def apply_lora(model: nn.Module, path, scale: float = 1.0) -> nn.Module:
    """`load_lora` then `fold_lora`: the adapters merged into the weights (what sampling uses; call again to
    stack another LoRA)."""
    return fold_lora(load_lora(model, path, scale))
