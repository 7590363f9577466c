"""Multi-head attention pieces: QKV projection with optional per-head QK-norm, joint attention
over several token streams (MM-DiT), and plain self/cross attention (DiT baselines).

Tensors in heads layout are (B, H, N, Dh); `F.scaled_dot_product_attention` does the maths
(softmax(q k^T / sqrt(Dh)) v), so the fused kernels are used where the device has them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from genlab.core.nn.norms import qk_norm_layer
from genlab.errors import GenlabError


def split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    b, n, d = x.shape
    return x.view(b, n, heads, d // heads).transpose(1, 2)  # (B, H, N, Dh)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    b, h, n, dh = x.shape
    return x.transpose(1, 2).reshape(b, n, h * dh)  # (B, N, H*Dh)


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """softmax(q k^T / sqrt(Dh)) v on (B, H, N, Dh) tensors; mask: bool (B, 1, Nq, Nk), True = attend.

    On CPU, bf16/fp16 inputs that need gradients go through the float32 kernel and back: the reduced-precision
    kernel takes the softmax and accumulates in float32 as well, and its backward is the slower one (MM-DiT
    training step at batch 8, 333 tokens: 0.86x the float32 kernel's attention time, measured 2026-12-07)."""
    if q.device.type == "cpu" and q.dtype in (torch.bfloat16, torch.float16) and torch.is_grad_enabled() \
            and (q.requires_grad or k.requires_grad or v.requires_grad):
        with torch.autocast("cpu", enabled=False):
            return F.scaled_dot_product_attention(q.float(), k.float(), v.float(), attn_mask=mask).to(q.dtype)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def joint_attention(qkvs: list[tuple[torch.Tensor | None, torch.Tensor, torch.Tensor]]) -> list[torch.Tensor | None]:
    """One attention over the concatenation of several streams' tokens, split back per stream (MM-DiT).

    A stream whose q is None only supplies keys and values (SD3's last context block) and gets None back:
    its queries are neither projected nor attended with, since their output would be thrown away."""
    qs = [q for q, _, _ in qkvs if q is not None]
    q = qs[0] if len(qs) == 1 else torch.cat(qs, dim=2)  # (B, H, sum N of querying streams, Dh)
    k = torch.cat([t[1] for t in qkvs], dim=2)  # (B, H, sum N, Dh)
    v = torch.cat([t[2] for t in qkvs], dim=2)
    # split along the tokens in (B, N, H, Dh) order: backward then assembles the output gradient in the
    # (B, N, H, Dh) memory order the fused CPU kernel reads (no copy of it there), and where a kernel writes
    # that order (CUDA flash), each stream's `merge_heads` is a view
    o = attention(q, k, v).transpose(1, 2)  # (B, sum N, H, Dh)
    outs = iter(o.split([t.shape[2] for t in qs], dim=1))
    return [None if q is None else next(outs).transpose(1, 2) for q, _, _ in qkvs]


class QKVProjection(nn.Module):
    """x (B, N, D) -> q, k, v (B, H, N, Dh) with one fused `qkv` Linear and optional `ln_q`/`ln_k`.

    `proj` is the output projection, absent when `pre_only` (SD3's last context block only
    contributes keys and values). Parameter names follow the SD3 reference (`attn.qkv`,
    `attn.proj`, `attn.ln_q`, `attn.ln_k`).
    """

    def __init__(self, dim: int, heads: int, qk_norm: str | None = None, qkv_bias: bool = True,
                 pre_only: bool = False):
        super().__init__()
        if dim % heads:
            raise GenlabError(f"hidden size {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.ln_q = qk_norm_layer(qk_norm, dim // heads)
        self.ln_k = qk_norm_layer(qk_norm, dim // heads)
        self.proj = None if pre_only else nn.Linear(dim, dim)

    def pre(self, x: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor]:
        """q, k, v (B, H, N, Dh); q is None for a pre-only projection (its tokens are only keys and values)."""
        if self.proj is None:
            q, (k, v) = None, self.kv(x).chunk(2, dim=-1)  # 2 x (B, N, D)
        else:
            q, k, v = self.qkv(x).chunk(3, dim=-1)  # 3 x (B, N, D)
        q, k, v = (None if t is None else split_heads(t, self.heads) for t in (q, k, v))  # (B, H, N, Dh)
        if self.ln_q is not None:
            q, k = (None if q is None else self.ln_q(q)), self.ln_k(k)
        return q, k, v

    def kv(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, N, D) -> [k ; v] (B, N, 2D): one GEMM over the k and v rows of `qkv` (a view, no copy). A
        wrapped `qkv` (LoRA: not a plain nn.Linear) is called whole and sliced, so its adapters apply."""
        d = self.qkv.in_features
        if type(self.qkv) is nn.Linear:
            bias = None if self.qkv.bias is None else self.qkv.bias[d:]
            return F.linear(x, self.qkv.weight[d:], bias)
        return self.qkv(x)[..., d:]

    def post(self, o: torch.Tensor) -> torch.Tensor:
        return self.proj(merge_heads(o))  # (B, N, D)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Self-attention."""
        return self.post(attention(*self.pre(x)))


class CrossAttention(nn.Module):
    """Queries from x (B, N, D), keys/values from context (B, M, Dc); names q, kv, proj."""

    def __init__(self, dim: int, context_dim: int, heads: int, qk_norm: str | None = None):
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(context_dim, 2 * dim)
        self.ln_q = qk_norm_layer(qk_norm, dim // heads)
        self.ln_k = qk_norm_layer(qk_norm, dim // heads)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        q = split_heads(self.q(x), self.heads)  # (B, H, N, Dh)
        k, v = (split_heads(t, self.heads) for t in self.kv(context).chunk(2, dim=-1))  # (B, H, M, Dh)
        if self.ln_q is not None:
            q, k = self.ln_q(q), self.ln_k(k)
        return self.proj(merge_heads(attention(q, k, v, mask)))


class Mlp(nn.Module):
    """fc1 -> GELU(tanh) -> fc2, the transformer MLP of DiT / SD3."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))
