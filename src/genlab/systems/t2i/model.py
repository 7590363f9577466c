"""MM-DiT, the SD3 transformer (Esser et al. 2024, section 4 and Fig. 2).

Two token streams, image patches x and text tokens c, each with its OWN weights (norms, QKV,
output projection, MLP, adaLN) but ONE attention over the concatenation of both sequences.
Every block is modulated (adaLN-Zero) by y = t_embedder(1000 t) + y_embedder(pooled text).
The last block's context stream is "pre-only": it only supplies keys and values.
MMDiT-X (SD3.5-Medium): in the blocks of `cfg.dual_attention_layers` the image stream also runs an
image-only self-attention `attn2` on the same normalised tokens (`DismantledBlockX`).

Parameter names follow the reference single-file checkpoints (sd3.5 `mmditx.py`) without the
`model.diffusion_model.` prefix; `convert.py` maps them to and from diffusers.
"""

from __future__ import annotations

import torch
import torch.utils.checkpoint
from torch import nn

from genlab.core.nn.attention import Mlp, QKVProjection, attention, joint_attention
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
from genlab.errors import GenlabError
from genlab.systems.t2i.config import MMDiTConfig


class DismantledBlock(nn.Module):
    """One stream's half of a joint block, split around the shared attention (`pre` / `post`)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, qk_norm: str | None, pre_only: bool = False):
        super().__init__()
        self.pre_only = pre_only
        self.norm1 = layer_norm_no_affine(dim)
        self.attn = QKVProjection(dim, heads, qk_norm=qk_norm, pre_only=pre_only)
        if not pre_only:
            self.norm2 = layer_norm_no_affine(dim)
            self.mlp = Mlp(dim, int(dim * mlp_ratio))
        # (shift, scale) for a pre-only block; (shift, scale, gate) x (attention, MLP) otherwise
        self.adaLN_modulation = AdaLNModulation(dim, dim, 2 if pre_only else 6)

    def pre(self, x: torch.Tensor, y: torch.Tensor):
        if self.pre_only:
            shift, scale = self.adaLN_modulation(y)
            return self.attn.pre(modulate(self.norm1(x), shift, scale)), None
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = self.adaLN_modulation(y)
        qkv = self.attn.pre(modulate(self.norm1(x), shift_msa, scale_msa))  # 3 x (B, H, N, Dh)
        return qkv, (x, gate_msa, shift_mlp, scale_mlp, gate_mlp)

    def post(self, o: torch.Tensor, saved) -> torch.Tensor:
        x, gate_msa, shift_mlp, scale_mlp, gate_mlp = saved
        x = x + gate_msa.unsqueeze(1) * self.attn.post(o)  # (B, N, D)
        x = x + gate_mlp.unsqueeze(1) * self.mlp(modulate(self.norm2(x), shift_mlp, scale_mlp))
        return x


class DismantledBlockX(DismantledBlock):
    """MMDiT-X image stream (SD3.5-Medium): besides its share of the joint attention, the image tokens
    attend to each other alone (`attn2`, own QK-norm), modulated by three more adaLN chunks; its gated
    output is added after the joint attention's, before the MLP (sd3.5 `mmditx.py`, diffusers'
    SD35AdaLayerNormZeroX + JointTransformerBlock.attn2)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, qk_norm: str | None):
        super().__init__(dim, heads, mlp_ratio, qk_norm)
        self.attn2 = QKVProjection(dim, heads, qk_norm=qk_norm)
        # (shift, scale, gate) x (attention, MLP, attn2): the reference's 9-chunk order
        self.adaLN_modulation = AdaLNModulation(dim, dim, 9)

    def pre(self, x: torch.Tensor, y: torch.Tensor):
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp, shift2, scale2, gate2 = self.adaLN_modulation(y)
        h = self.norm1(x)  # (B, N, D), shared by both attentions
        qkv = self.attn.pre(modulate(h, shift_msa, scale_msa))  # 3 x (B, H, N, Dh)
        qkv2 = self.attn2.pre(modulate(h, shift2, scale2))
        return qkv, (x, gate_msa, shift_mlp, scale_mlp, gate_mlp, qkv2, gate2)

    def post(self, o: torch.Tensor, saved) -> torch.Tensor:
        x, gate_msa, shift_mlp, scale_mlp, gate_mlp, qkv2, gate2 = saved
        x = x + gate_msa.unsqueeze(1) * self.attn.post(o)  # (B, N, D)
        x = x + gate2.unsqueeze(1) * self.attn2.post(attention(*qkv2))  # image-only self-attention
        x = x + gate_mlp.unsqueeze(1) * self.mlp(modulate(self.norm2(x), shift_mlp, scale_mlp))
        return x


class JointBlock(nn.Module):
    """context_block + x_block sharing one attention (the unit for FSDP / checkpointing)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, qk_norm: str | None, last: bool,
                 dual_attention: bool = False):
        super().__init__()
        self.context_block = DismantledBlock(dim, heads, mlp_ratio, qk_norm, pre_only=last)
        self.x_block = (DismantledBlockX if dual_attention else DismantledBlock)(dim, heads, mlp_ratio, qk_norm)

    def forward(self, c: torch.Tensor, x: torch.Tensor, y: torch.Tensor):
        c_qkv, c_saved = self.context_block.pre(c, y)
        x_qkv, x_saved = self.x_block.pre(x, y)
        c_o, x_o = joint_attention([c_qkv, x_qkv])  # attention over [context ; image] tokens
        c = None if c_saved is None else self.context_block.post(c_o, c_saved)
        return c, self.x_block.post(x_o, x_saved)


class FinalLayer(nn.Module):
    def __init__(self, dim: int, patch: int, out_channels: int):
        super().__init__()
        self.norm_final = layer_norm_no_affine(dim)
        self.linear = nn.Linear(dim, patch * patch * out_channels)
        self.adaLN_modulation = AdaLNModulation(dim, dim, 2)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        shift, scale = self.adaLN_modulation(y)
        return self.linear(modulate(self.norm_final(x), shift, scale))


def check_skip_layers(skip_layers, depth: int, what: str = "skip_layers") -> tuple[int, ...]:
    """Skip-layer guidance's block indices, each in 0..depth-1 (else a GenlabError naming them)."""
    layers = tuple(int(i) for i in skip_layers)
    bad = [i for i in layers if not 0 <= i < depth]
    if bad:
        raise GenlabError(f"{what}: layer index {', '.join(map(str, bad))} out of range; this MM-DiT has {depth} "
                          f"joint blocks (0..{depth - 1})")
    return layers


class MMDiT(nn.Module):
    """forward(x (B, C, H, W), timestep (B,) = 1000 t, context (B, L, context_dim), pooled (B, pooled_dim))
    -> (B, out_channels, H, W): the rectified-flow velocity for t2i training."""

    def __init__(self, cfg: MMDiTConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.hidden_size
        self.x_embedder = PatchEmbed(cfg.in_channels, d, cfg.patch_size)
        table = sincos_2d_pos_embed(d, cfg.pos_embed_max_size, base_size=cfg.pos_embed_base_size)
        self.register_buffer("pos_embed", table.unsqueeze(0), persistent=True)  # (1, M*M, D), stored in checkpoints
        self.t_embedder = TimestepEmbedder(d, cfg.freq_dim)
        self.y_embedder = VectorEmbedder(cfg.pooled_dim, d)
        self.context_embedder = nn.Linear(cfg.context_dim, d)
        self.joint_blocks = nn.ModuleList(
            [JointBlock(d, cfg.num_heads, cfg.mlp_ratio, cfg.qk_norm, last=(i == cfg.depth - 1),
                        dual_attention=i in cfg.dual_attention_layers) for i in range(cfg.depth)]
        )
        self.final_layer = FinalLayer(d, cfg.patch_size, cfg.out_channels)
        # a training switch, not architecture: recompute each joint block in backward (activations of one
        # block kept instead of all), same gradients
        self.gradient_checkpointing = False
        self.initialize_weights()

    def initialize_weights(self) -> None:
        """DiT's init: xavier linears, N(0, 0.02) timestep MLP, zero adaLN and output (adaLN-Zero)."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        w = self.x_embedder.proj.weight
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.zeros_(self.x_embedder.proj.bias)
        for lin in (self.t_embedder.mlp[0], self.t_embedder.mlp[2]):
            nn.init.normal_(lin.weight, std=0.02)
        for m in self.modules():
            if isinstance(m, AdaLNModulation):
                nn.init.zeros_(m[1].weight)
                nn.init.zeros_(m[1].bias)
        nn.init.zeros_(self.final_layer.linear.weight)
        nn.init.zeros_(self.final_layer.linear.bias)

    def check_input(self, x: torch.Tensor) -> tuple[int, int]:
        p, m = self.cfg.patch_size, self.cfg.pos_embed_max_size
        if x.ndim != 4 or x.shape[1] != self.cfg.in_channels:
            raise GenlabError(f"MM-DiT input: expected (B, {self.cfg.in_channels}, H, W), got {tuple(x.shape)}")
        h, w = x.shape[-2:]
        if h % p or w % p:
            raise GenlabError(f"image size {h}x{w} is not divisible by the patch size {p}")
        if h // p > m or w // p > m:
            raise GenlabError(f"image size {h}x{w} gives a {h // p}x{w // p} token grid, more than the "
                              f"position table's {m}x{m} (pos_embed_max_size)")
        return h // p, w // p

    def forward(self, x: torch.Tensor, timestep: torch.Tensor, context: torch.Tensor,
                pooled: torch.Tensor, skip_layers: tuple[int, ...] = ()) -> torch.Tensor:
        """skip_layers: blocks left out entirely (image and text tokens pass unchanged), for skip-layer guidance."""
        gh, gw = self.check_input(x)
        x = self.x_embedder(x)  # (B, N, D); under autocast in its compute dtype, kept for the stream as diffusers does
        x = x + crop_pos_embed(self.pos_embed, self.cfg.pos_embed_max_size, gh, gw).to(x.dtype)  # (B, N, D)
        y = self.t_embedder(timestep.reshape(-1).expand(x.shape[0])) + self.y_embedder(pooled)  # (B, D)
        c = self.context_embedder(context)  # (B, L, D)
        skip_layers = check_skip_layers(skip_layers, self.cfg.depth) if skip_layers else ()
        for i, block in enumerate(self.joint_blocks):
            if i in skip_layers:  # skip-layer guidance (SD3.5)
                continue
            if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
                c, x = torch.utils.checkpoint.checkpoint(block, c, x, y, use_reentrant=False)
            else:
                c, x = block(c, x, y)
        x = self.final_layer(x, y)  # (B, N, p*p*C_out)
        return unpatchify(x, gh, gw, self.cfg.patch_size, self.cfg.out_channels)  # (B, C_out, H, W)
