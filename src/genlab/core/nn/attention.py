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
    """softmax(q k^T / sqrt(Dh)) v on (B, H, N, Dh) tensors; mask: bool (B, 1, Nq, Nk), True = attend."""
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def joint_attention(qkvs: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]) -> list[torch.Tensor]:
    """One attention over the concatenation of several streams' tokens, split back per stream (MM-DiT)."""
    sizes = [q.shape[2] for q, _, _ in qkvs]
    q = torch.cat([t[0] for t in qkvs], dim=2)  # (B, H, sum N, Dh)
    k = torch.cat([t[1] for t in qkvs], dim=2)
    v = torch.cat([t[2] for t in qkvs], dim=2)
    out = attention(q, k, v)
    return list(out.split(sizes, dim=2))


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

    def pre(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        q, k, v = self.qkv(x).chunk(3, dim=-1)  # 3 x (B, N, D)
        q, k, v = (split_heads(t, self.heads) for t in (q, k, v))  # (B, H, N, Dh)
        if self.ln_q is not None:
            q, k = self.ln_q(q), self.ln_k(k)
        return q, k, v

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
