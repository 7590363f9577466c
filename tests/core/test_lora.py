"""core.nn.lora: adapters on row blocks of a fused Linear equal separate per-block LoRAs, start at zero effect,
merge exactly, train only themselves, and refuse what does not fit."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from genlab.core.nn.lora import LoRA, merge_lora, wrap_linear
from genlab.errors import GenlabError


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 12), nn.GELU(), nn.Linear(12, 4))


def test_parts_equal_separate_loras_and_merge_exactly():
    model = _model()
    x = torch.randn(5, 8)
    base = model(x)
    layer = wrap_linear(model, "0", parts=3)
    q, v = layer.add(LoRA(8, 4, rank=2, alpha=3), part=0), layer.add(LoRA(8, 4, rank=2, alpha=3), part=2)
    torch.testing.assert_close(model(x), base)  # B = 0: no effect at insertion
    with torch.no_grad():
        q.lora_B.normal_()
        v.lora_B.normal_()
    h = layer(x)
    w, b = layer.base.weight, layer.base.bias
    ref = torch.cat([x @ w[:4].T + b[:4] + 1.5 * x @ q.lora_A.T @ q.lora_B.T, x @ w[4:8].T + b[4:8],
                     x @ w[8:].T + b[8:] + 1.5 * x @ v.lora_A.T @ v.lora_B.T], dim=-1)
    torch.testing.assert_close(h, ref)
    out = model(x)
    assert (out - base).abs().max() > 1e-3
    assert [n for n, p in model.named_parameters() if p.requires_grad] == ["0.adapters.0.lora_A", "0.adapters.0.lora_B",
                                                                           "0.adapters.2.lora_A", "0.adapters.2.lora_B",
                                                                           "2.weight", "2.bias"]
    merge_lora(model)
    assert type(model[0]) is nn.Linear
    torch.testing.assert_close(model(x), out, atol=1e-6, rtol=0)


def test_wrong_targets_and_shapes_are_errors():
    model = _model()
    with pytest.raises(GenlabError, match="'5'"):
        wrap_linear(model, "5")
    with pytest.raises(GenlabError, match="GELU"):
        wrap_linear(model, "1")
    with pytest.raises(GenlabError, match="do not split"):
        wrap_linear(model, "0", parts=5)
    layer = wrap_linear(model, "0", parts=3)
    with pytest.raises(GenlabError, match="does not fit"):
        layer.add(LoRA(8, 12, rank=2))
    assert not isinstance(layer, nn.Linear)  # code fusing plain Linears' compute must not take this one
