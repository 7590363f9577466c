"""The DiT baselines SD3 compares MM-DiT against (Fig. 4): one set of weights for all tokens.

* "concat" (the paper's DiT): embedded text tokens are concatenated to the image tokens and the
  whole sequence goes through standard adaLN-Zero DiT blocks with shared weights.
* "cross" (CrossDiT): image tokens only; each block adds a cross-attention to the text tokens
  between self-attention and MLP.
Both are modulated by t_embedder(1000 t) + y_embedder(pooled) like MM-DiT and share its
forward signature, so they drop into the same training and sampling code.
"""

from __future__ import annotations

import torch
from torch import nn

from genlab.core.nn.attention import CrossAttention, Mlp, QKVProjection
from genlab.core.nn.embeddings import (
    PatchEmbed,
    TimestepEmbedder,
    VectorEmbedder,
    crop_pos_embed,
    sincos_2d_pos_embed,
    unpatchify,
)
from genlab.core.nn.modulation import AdaLNModulation, modulate
from genlab.core.nn.norms import layer_norm_no_affine
from genlab.systems.t2i.config import DiTConfig
from genlab.systems.t2i.model import FinalLayer, MMDiT


class DiTBlock(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: float, qk_norm: str | None, context_dim: int | None):
        super().__init__()
        self.norm1 = layer_norm_no_affine(dim)
        self.attn = QKVProjection(dim, heads, qk_norm=qk_norm)
        self.cross = None
        if context_dim is not None:
            self.norm_cross = nn.LayerNorm(dim, eps=1e-6)
            self.cross = CrossAttention(dim, dim, heads, qk_norm=qk_norm)
        self.norm2 = layer_norm_no_affine(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.adaLN_modulation = AdaLNModulation(dim, dim, 6)

    def forward(self, x: torch.Tensor, y: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = self.adaLN_modulation(y)
        x = x + gate_msa.unsqueeze(1) * self.attn(modulate(self.norm1(x), shift_msa, scale_msa))  # (B, N, D)
        if self.cross is not None:
            x = x + self.cross(self.norm_cross(x), context)
        return x + gate_mlp.unsqueeze(1) * self.mlp(modulate(self.norm2(x), shift_mlp, scale_mlp))


class DiT(nn.Module):
    """forward(x (B, C, H, W), timestep (B,), context (B, L, context_dim), pooled (B, pooled_dim))."""

    def __init__(self, cfg: DiTConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.hidden_size
        self.x_embedder = PatchEmbed(cfg.in_channels, d, cfg.patch_size)
        self.register_buffer("pos_embed", sincos_2d_pos_embed(d, cfg.pos_embed_max_size).unsqueeze(0), persistent=True)
        self.t_embedder = TimestepEmbedder(d, cfg.freq_dim)
        self.y_embedder = VectorEmbedder(cfg.pooled_dim, d)
        self.context_embedder = nn.Linear(cfg.context_dim, d)
        cross = d if cfg.variant == "cross" else None
        self.blocks = nn.ModuleList([DiTBlock(d, cfg.num_heads, cfg.mlp_ratio, cfg.qk_norm, cross) for _ in range(cfg.depth)])
        self.final_layer = FinalLayer(d, cfg.patch_size, cfg.out_channels)
        MMDiT.initialize_weights(self)

    check_input = MMDiT.check_input

    def forward(self, x: torch.Tensor, timestep: torch.Tensor, context: torch.Tensor, pooled: torch.Tensor) -> torch.Tensor:
        gh, gw = self.check_input(x)
        x = self.x_embedder(x)  # (B, N, D); under autocast in its compute dtype, kept for the stream as diffusers does
        x = x + crop_pos_embed(self.pos_embed, self.cfg.pos_embed_max_size, gh, gw).to(x.dtype)
        y = self.t_embedder(timestep.reshape(-1).expand(x.shape[0])) + self.y_embedder(pooled)  # (B, D)
        c = self.context_embedder(context)  # (B, L, D)
        n = x.shape[1]
        if self.cfg.variant == "concat":
            h = torch.cat([x, c], dim=1)  # (B, N + L, D): one sequence, one set of weights
            for block in self.blocks:
                h = block(h, y)
            x = h[:, :n]
        else:
            for block in self.blocks:
                x = block(x, y, c)
        x = self.final_layer(x, y)
        return unpatchify(x, gh, gw, self.cfg.patch_size, self.cfg.out_channels)
