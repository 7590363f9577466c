"""Attention pieces: the shortcuts taken for speed equal the plain computation (values and gradients)."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from genlab.core.nn.attention import QKVProjection, joint_attention, split_heads
from genlab.core.nn.modulation import modulate


class _Wrapped(nn.Module):
    """Stands for a wrapped projection (LoRA): not an nn.Linear, so the weight-slice shortcut must not apply."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        self.linear = linear
        self.in_features = linear.in_features
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return self.linear(x)


def _full_qkv(proj: QKVProjection, x: torch.Tensor):
    """The unfused reference: all of q, k, v from the whole qkv Linear."""
    return [split_heads(t, proj.heads) for t in proj.qkv(x).chunk(3, dim=-1)]


@pytest.mark.parametrize("qk_norm", [None, "rms"])
def test_pre_only_projection_skips_queries_and_equals_the_full_projection(qk_norm):
    torch.manual_seed(0)
    proj = QKVProjection(16, 2, qk_norm=qk_norm, pre_only=True)
    wrapped = copy.deepcopy(proj)
    wrapped.qkv = _Wrapped(wrapped.qkv)
    x = torch.randn(3, 5, 16)
    q, k, v = proj.pre(x)
    q_w, k_w, v_w = wrapped.pre(x)
    _, k_ref, v_ref = _full_qkv(proj, x)
    if qk_norm is not None:
        k_ref = proj.ln_k(k_ref)
    assert q is None and q_w is None
    assert wrapped.qkv.calls == 1  # the wrapped module was called, not bypassed
    for got in (k, k_w):
        torch.testing.assert_close(got, k_ref, rtol=0, atol=1e-6)
    for got in (v, v_w):
        torch.testing.assert_close(got, v_ref, rtol=0, atol=1e-6)


def test_joint_attention_without_a_streams_queries_equals_full_attention():
    torch.manual_seed(0)
    ctx_proj, img_proj = QKVProjection(16, 2, pre_only=True), QKVProjection(16, 2)
    c, x = torch.randn(2, 4, 16, requires_grad=True), torch.randn(2, 6, 16, requires_grad=True)

    c_none, x_out = joint_attention([ctx_proj.pre(c), img_proj.pre(x)])
    assert c_none is None
    (x_out ** 2).sum().backward()
    grads = [t.grad.clone() for t in (c, x, ctx_proj.qkv.weight, img_proj.qkv.weight)]
    for t in (c, x, ctx_proj.qkv.weight, img_proj.qkv.weight):
        t.grad = None

    _, x_ref = joint_attention([_full_qkv(ctx_proj, c), _full_qkv(img_proj, x)])  # context queries computed
    (x_ref ** 2).sum().backward()
    torch.testing.assert_close(x_out, x_ref, rtol=0, atol=1e-6)
    assert x_ref.abs().mean() > 0.1
    for got, t in zip(grads, (c, x, ctx_proj.qkv.weight, img_proj.qkv.weight)):
        torch.testing.assert_close(got, t.grad, rtol=1e-5, atol=1e-6)


def test_modulate_equals_its_formula():
    torch.manual_seed(0)
    x, shift, scale = torch.randn(2, 5, 8), torch.randn(2, 8), torch.randn(2, 8)
    torch.testing.assert_close(modulate(x, shift, scale), x * (1 + scale[:, None]) + shift[:, None])


def test_cpu_bf16_attention_under_autograd_is_as_accurate_as_the_bf16_kernel():
    """The float32 detour for bf16 training on CPU: output and gradients no further from float64 than the bf16
    kernel's (it rounds once, at the end)."""
    import torch.nn.functional as F

    from genlab.core.nn.attention import attention

    torch.manual_seed(0)
    leaves = [torch.randn(2, 2, 40, 16).bfloat16().requires_grad_() for _ in range(3)]
    exact = [t.detach().double().requires_grad_() for t in leaves]

    def run(fn, xs):
        out = fn(*xs)
        return out, torch.autograd.grad(out.double().square().sum(), xs)

    out, grads = run(attention, leaves)
    ref, ref_grads = run(F.scaled_dot_product_attention, leaves)
    best, best_grads = run(F.scaled_dot_product_attention, exact)
    assert out.dtype == torch.bfloat16
    with torch.autocast("cpu", dtype=torch.bfloat16):  # under autocast too
        assert attention(*leaves).dtype == torch.bfloat16

    def err(a, b):
        return float((a.detach().double() - b.detach()).abs().max())

    assert err(out, best) <= 1.05 * err(ref, best) + 1e-6
    for got, want, true in zip(grads, ref_grads, best_grads):
        assert true.abs().mean() > 1e-2
        assert err(got, true) <= 1.05 * err(want, true) + 1e-6
