"""The SD-style 2D UNet (latent-diffusion UNet with cross-attention), shared by video and insertion.

Module and parameter names follow diffusers' `UNet2DConditionModel` (`down_blocks.i.resnets.j.conv1`,
`...attentions.j.transformer_blocks.k.attn2.to_k`, ...), so a diffusers state dict loads with no
renaming and the parity test compares the two forward passes on the same random weights.

    x (B, C_in, H, W) -> conv_in -> [ResBlock (+ Transformer)] x L per level, Downsample between levels
      -> mid (ResBlock, Transformer, ResBlock) -> up levels with skip concatenation -> GroupNorm, SiLU, conv_out

Conditioning: the timestep (any real number: DDPM index, or EDM's c_noise = 0.25 ln sigma) through a
sinusoidal embedding and an MLP; optional vector conditioning (SDXL/SVD "added time ids": each scalar
gets its own sinusoidal embedding, concatenated, then an MLP) added to the timestep embedding;
`context` tokens (text, CLIP image, reference person) through cross-attention.

The video UNet (`core/nn/temporal.py`) subclasses this skeleton and swaps the block factories, so
both share one forward pass and `image_only_indicator=1` reproduces this model exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from genlab.core.nn.embeddings import timestep_embedding
from genlab.errors import GenlabError

__all__ = [
    "UNetConfig",
    "UNet2D",
    "ResBlock2D",
    "Transformer2D",
    "BasicTransformerBlock",
    "Attention",
    "FeedForward",
    "TimestepMLP",
    "tiny",
    "sd21",
]


@dataclass(frozen=True)
class UNetConfig:
    """SD-style UNet. `attention_levels[i]` says whether level i has transformers (CrossAttn*Block2D).

    `num_heads` is per level (diffusers' legacy `attention_head_dim` means heads, too); head dim is
    channels / heads. `cross_attention_dim=None` gives self-attention only transformers.
    `addition_time_embed_dim` > 0 turns on vector conditioning with `num_added_ids` scalars.
    """

    in_channels: int = 4
    out_channels: int = 4
    block_out_channels: tuple[int, ...] = (320, 640, 1280, 1280)
    attention_levels: tuple[bool, ...] = (True, True, True, False)
    layers_per_block: int = 2
    num_heads: tuple[int, ...] = (5, 10, 20, 20)
    transformer_layers: int = 1
    cross_attention_dim: int | None = 1024
    use_linear_projection: bool = True
    norm_num_groups: int = 32
    norm_eps: float = 1e-5
    addition_time_embed_dim: int = 0
    num_added_ids: int = 0
    # diffusers' SVD UNet uses eps 1e-6 in the resnets of its CrossAttnDown blocks and of every up
    # block, 1e-5 elsewhere (a quirk we reproduce for parity); None = `norm_eps`.
    down_attn_resnet_eps: float | None = None
    up_resnet_eps: float | None = None

    @property
    def time_embed_dim(self) -> int:
        return self.block_out_channels[0] * 4

    @property
    def downsample_factor(self) -> int:
        return 2 ** (len(self.block_out_channels) - 1)

    def validate(self) -> None:
        n = len(self.block_out_channels)
        for name in ("attention_levels", "num_heads"):
            if len(getattr(self, name)) != n:
                raise GenlabError(
                    f"UNetConfig.{name}: expected {n} entries (one per level of block_out_channels), "
                    f"got {len(getattr(self, name))}"
                )
        for ch in self.block_out_channels:
            if ch % self.norm_num_groups:
                raise GenlabError(
                    f"UNetConfig.block_out_channels: {ch} is not divisible by norm_num_groups={self.norm_num_groups}"
                )
        for ch, heads in zip(self.block_out_channels, self.num_heads):
            if ch % heads:
                raise GenlabError(f"UNetConfig.num_heads: {heads} heads do not divide {ch} channels")
        if (self.addition_time_embed_dim > 0) != (self.num_added_ids > 0):
            raise GenlabError("UNetConfig: addition_time_embed_dim and num_added_ids must both be set or both 0")

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict) -> UNetConfig:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        unknown = sorted(set(d) - set(known))
        if unknown:
            raise GenlabError(f"UNetConfig: unknown fields {unknown}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in known.items()})


def tiny(**overrides) -> UNetConfig:
    """diffusers' own UNet2DConditionModel test config: channels (4, 8), 4 groups, 2 heads, context 8."""
    cfg = UNetConfig(
        in_channels=4, out_channels=4, block_out_channels=(4, 8), attention_levels=(True, False),
        layers_per_block=1, num_heads=(2, 2), cross_attention_dim=8, use_linear_projection=False,
        norm_num_groups=4,
    )
    return replace(cfg, **overrides)


def sd21(**overrides) -> UNetConfig:
    """Stable Diffusion 2.1's UNet (865M parameters; v-prediction, OpenCLIP-H text context 1024)."""
    return replace(UNetConfig(), **overrides)


# ----------------------------------------------------------------------------------------------------
# building blocks


class TimestepMLP(nn.Module):
    """Linear -> SiLU -> Linear (diffusers' TimestepEmbedding: `linear_1`, `linear_2`)."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int | None = None):
        super().__init__()
        self.linear_1 = nn.Linear(in_dim, hidden_dim)
        self.linear_2 = nn.Linear(hidden_dim, out_dim or hidden_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear_2(F.silu(self.linear_1(x)))


class ResBlock2D(nn.Module):
    """GroupNorm-SiLU-conv, + projected timestep embedding, GroupNorm-SiLU-conv, residual (1x1 if C changes)."""

    def __init__(self, in_ch: int, out_ch: int, temb_ch: int | None, groups: int = 32, eps: float = 1e-5):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, in_ch, eps=eps)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.time_emb_proj = nn.Linear(temb_ch, out_ch) if temb_ch is not None else None  # None: VAE decoder
        self.norm2 = nn.GroupNorm(groups, out_ch, eps=eps)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.conv_shortcut = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else None

    def forward(self, x: torch.Tensor, temb: torch.Tensor | None) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))  # (N, out, H, W)
        if self.time_emb_proj is not None:
            h = h + self.time_emb_proj(F.silu(temb))[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        skip = x if self.conv_shortcut is None else self.conv_shortcut(x)
        return skip + h


class Attention(nn.Module):
    """Multi-head attention (self if `context` is None). Names: to_q, to_k, to_v (no bias), to_out.0."""

    def __init__(self, query_dim: int, heads: int, dim_head: int, context_dim: int | None = None):
        super().__init__()
        inner = heads * dim_head
        self.heads = heads
        self.to_q = nn.Linear(query_dim, inner, bias=False)
        self.to_k = nn.Linear(context_dim or query_dim, inner, bias=False)
        self.to_v = nn.Linear(context_dim or query_dim, inner, bias=False)
        self.to_out = nn.ModuleList([nn.Linear(inner, query_dim)])

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        ctx = x if context is None else context
        n, s, _ = x.shape
        if ctx.shape[1] == 1:
            return self._one_key(x, ctx)
        q, k, v = self.to_q(x), self.to_k(ctx), self.to_v(ctx)  # (N, S, heads*d)
        q, k, v = (t.unflatten(-1, (self.heads, -1)).transpose(1, 2) for t in (q, k, v))  # (N, h, S, d)
        out = F.scaled_dot_product_attention(q, k, v)  # softmax(q k^T / sqrt(d)) v
        return self.to_out[0](out.transpose(1, 2).reshape(n, s, -1))

    def _one_key(self, x: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:
        """One key (SVD's single CLIP image token; a 1-frame temporal attention): the softmax over one logit
        is exactly 1, so every query's output is that key's value. to_q, to_k and the attention product are
        skipped. The queries and q/k weights get exactly 0 gradient either way (dS = P (dP - P dP) = 0 for
        P = 1); they stay in the graph times 0, so DDP / FSDP see every parameter used (the LayerNorm before
        the queries too) and the optimizer treats them as after the full computation."""
        n, s, _ = x.shape
        out = self.to_out[0](self.to_v(ctx)).expand(n, s, -1)  # (N, S, C)
        if torch.is_grad_enabled():
            live = [p for m in (self.to_q, self.to_k) for p in m.parameters() if p.requires_grad]
            live += [t for t in (x, ctx) if t.requires_grad]
            if live:
                out = out + 0.0 * sum(t.sum() for t in live)
        return out


class GEGLU(nn.Module):
    def __init__(self, dim_in: int, dim_out: int):
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out * 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, gate = self.proj(x).chunk(2, dim=-1)
        return h * F.gelu(gate)


class FeedForward(nn.Module):
    """GEGLU feed-forward, inner 4x (diffusers names: net.0.proj, net.2)."""

    def __init__(self, dim: int, dim_out: int | None = None, mult: int = 4):
        super().__init__()
        inner = dim * mult
        self.net = nn.ModuleList([GEGLU(dim, inner), nn.Identity(), nn.Linear(inner, dim_out or dim)])
        self.chunk_size: int | None = None  # memory: process this many rows at a time (same result)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.chunk_size is not None and x.shape[0] > self.chunk_size:
            return torch.cat([self.net[2](self.net[0](c)) for c in x.split(self.chunk_size, dim=0)], dim=0)
        return self.net[2](self.net[0](x))


class BasicTransformerBlock(nn.Module):
    """Pre-LN: self-attention, cross-attention to the context, GEGLU feed-forward; each residual."""

    def __init__(self, dim: int, heads: int, dim_head: int, context_dim: int | None):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn1 = Attention(dim, heads, dim_head)
        if context_dim is not None:
            self.norm2 = nn.LayerNorm(dim)
            self.attn2 = Attention(dim, heads, dim_head, context_dim)
        else:
            self.norm2 = self.attn2 = None
        self.norm3 = nn.LayerNorm(dim)
        self.ff = FeedForward(dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.attn1(self.norm1(x))  # (N, S, C)
        if self.attn2 is not None:
            x = x + self.attn2(self.norm2(x), context)
        return x + self.ff(self.norm3(x))


class Transformer2D(nn.Module):
    """GroupNorm, proj_in (1x1 conv or linear), transformer blocks over the H*W tokens, proj_out, residual."""

    def __init__(self, ch: int, heads: int, context_dim: int | None, layers: int, groups: int, linear: bool):
        super().__init__()
        self.linear = linear
        self.norm = nn.GroupNorm(groups, ch, eps=1e-6)
        self.proj_in = nn.Linear(ch, ch) if linear else nn.Conv2d(ch, ch, 1)
        self.transformer_blocks = nn.ModuleList(
            [BasicTransformerBlock(ch, heads, ch // heads, context_dim) for _ in range(layers)]
        )
        self.proj_out = nn.Linear(ch, ch) if linear else nn.Conv2d(ch, ch, 1)

    def to_tokens(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        x = self.norm(x)
        if self.linear:
            return self.proj_in(x.permute(0, 2, 3, 1).reshape(n, h * w, c))  # (N, HW, C)
        return self.proj_in(x).permute(0, 2, 3, 1).reshape(n, h * w, c)

    def from_tokens(self, tokens: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        n, c, h, w = residual.shape
        if self.linear:
            x = self.proj_out(tokens).reshape(n, h, w, c).permute(0, 3, 1, 2)
        else:
            x = self.proj_out(tokens.reshape(n, h, w, c).permute(0, 3, 1, 2).contiguous())
        # residual first: the sum takes its (contiguous) layout; x + residual would come out channels-last
        # from the linear path, and every GroupNorm after it would run 5-15x slower on CPU
        return residual + x

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        tokens = self.to_tokens(x)
        for block in self.transformer_blocks:
            tokens = block(tokens, context)
        return self.from_tokens(tokens, x)


class Downsample(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class _Level(nn.Module):
    """One down/up level: `resnets`, optional `attentions`, optional `downsamplers`/`upsamplers`."""

    def __init__(self, resnets, attentions=None, downsample=None, upsample=None):
        super().__init__()
        self.resnets = nn.ModuleList(resnets)
        if attentions is not None:
            self.attentions = nn.ModuleList(attentions)
        else:
            self.attentions = None
        self.downsamplers = nn.ModuleList([downsample]) if downsample is not None else None
        self.upsamplers = nn.ModuleList([upsample]) if upsample is not None else None


# ----------------------------------------------------------------------------------------------------
# the UNet


class UNet2D(nn.Module):
    """SD-style UNet; parity with diffusers' UNet2DConditionModel on the same weights."""

    def __init__(self, config: UNetConfig):
        super().__init__()
        config.validate()
        self.config = config
        self.gradient_checkpointing = False
        boc, ted = config.block_out_channels, config.time_embed_dim
        self.conv_in = nn.Conv2d(config.in_channels, boc[0], 3, padding=1)
        self.time_embedding = TimestepMLP(boc[0], ted)
        if config.addition_time_embed_dim:
            self.add_embedding = TimestepMLP(config.addition_time_embed_dim * config.num_added_ids, ted)
        else:
            self.add_embedding = None

        n, L = len(boc), config.layers_per_block
        self.down_blocks = nn.ModuleList()
        ch_out = boc[0]
        for i in range(n):
            ch_in, ch_out = ch_out, boc[i]
            attn = config.attention_levels[i]
            eps = config.down_attn_resnet_eps if (attn and config.down_attn_resnet_eps) else config.norm_eps
            resnets = [self._resnet(ch_in if j == 0 else ch_out, ch_out, eps) for j in range(L)]
            attentions = [self._transformer(ch_out, config.num_heads[i]) for _ in range(L)] if attn else None
            down = Downsample(ch_out) if i < n - 1 else None
            self.down_blocks.append(_Level(resnets, attentions, downsample=down))

        self.mid_block = _Level(
            [self._resnet(boc[-1], boc[-1], config.norm_eps), self._resnet(boc[-1], boc[-1], config.norm_eps)],
            [self._transformer(boc[-1], config.num_heads[-1])],
        )

        self.up_blocks = nn.ModuleList()
        rev = list(reversed(boc))
        rev_attn, rev_heads = list(reversed(config.attention_levels)), list(reversed(config.num_heads))
        ch_out = rev[0]
        up_eps = config.up_resnet_eps or config.norm_eps
        for i in range(n):
            prev, ch_out = ch_out, rev[i]
            ch_skip_last = rev[min(i + 1, n - 1)]
            resnets = []
            for j in range(L + 1):
                skip = ch_skip_last if j == L else ch_out
                resnets.append(self._resnet((prev if j == 0 else ch_out) + skip, ch_out, up_eps))
            attentions = [self._transformer(ch_out, rev_heads[i]) for _ in range(L + 1)] if rev_attn[i] else None
            up = Upsample(ch_out) if i < n - 1 else None
            self.up_blocks.append(_Level(resnets, attentions, upsample=up))

        self.conv_norm_out = nn.GroupNorm(config.norm_num_groups, boc[0], eps=config.norm_eps)
        self.conv_out = nn.Conv2d(boc[0], config.out_channels, 3, padding=1)

    # block factories: the video UNet overrides these two
    def _resnet(self, ch_in: int, ch_out: int, eps: float) -> nn.Module:
        return ResBlock2D(ch_in, ch_out, self.config.time_embed_dim, self.config.norm_num_groups, eps)

    def _transformer(self, ch: int, heads: int) -> nn.Module:
        c = self.config
        return Transformer2D(ch, heads, c.cross_attention_dim, c.transformer_layers, c.norm_num_groups,
                             c.use_linear_projection)

    # how blocks are called: the video UNet adds `image_only_indicator`
    def _call(self, module: nn.Module, *args, **extra) -> torch.Tensor:
        if self.gradient_checkpointing and torch.is_grad_enabled():
            return checkpoint(lambda *a: module(*a, **extra), *args, use_reentrant=False)
        return module(*args, **extra)

    def embed(self, timestep: torch.Tensor | float, batch: int, added_cond: torch.Tensor | None,
              device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """Timestep (+ vector conditioning) embedding -> (batch, time_embed_dim)."""
        t = torch.as_tensor(timestep, device=device, dtype=torch.float32)
        t = t.reshape(-1).expand(batch) if t.numel() == 1 else t.reshape(batch)
        emb = self.time_embedding(timestep_embedding(t, self.config.block_out_channels[0]).to(dtype))
        if self.add_embedding is not None:
            if added_cond is None:
                raise GenlabError(
                    f"UNet: this model needs added_cond of shape (B, {self.config.num_added_ids}) (e.g. fps, "
                    "motion bucket, cond-aug), got None"
                )
            if added_cond.shape != (batch, self.config.num_added_ids):
                raise GenlabError(
                    f"UNet: added_cond expected shape ({batch}, {self.config.num_added_ids}), got "
                    f"{tuple(added_cond.shape)}"
                )
            proj = timestep_embedding(added_cond.reshape(-1).float(), self.config.addition_time_embed_dim)
            emb = emb + self.add_embedding(proj.reshape(batch, -1).to(dtype))  # (B, ted)
        return emb

    def check_input(self, sample: torch.Tensor, expected_ndim: int = 4) -> None:
        if sample.ndim != expected_ndim:
            raise GenlabError(f"UNet: sample expected {expected_ndim} dims, got shape {tuple(sample.shape)}")
        c = sample.shape[-3]
        if c != self.config.in_channels:
            raise GenlabError(f"UNet: sample has {c} channels, the model expects in_channels={self.config.in_channels}")
        f = self.config.downsample_factor
        h, w = sample.shape[-2:]
        if h % f or w % f:
            raise GenlabError(
                f"UNet: height and width must be divisible by {f} (the UNet's downsampling), got {h}x{w}"
            )

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float,
        context: torch.Tensor | None = None,
        added_cond: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """sample (B, C_in, H, W), timestep scalar or (B,), context (B, S, D) -> (B, C_out, H, W)."""
        self.check_input(sample)
        emb = self.embed(timestep, sample.shape[0], added_cond, sample.device, sample.dtype)
        return self.run_blocks(sample, emb, context)

    def run_blocks(self, x: torch.Tensor, emb: torch.Tensor, context: torch.Tensor | None,
                   **extra) -> torch.Tensor:
        """The UNet body on (N, C, H, W) with per-row embedding `emb` (N, ted) and context (N, S, D)."""
        if self.config.cross_attention_dim is not None and context is None:
            raise GenlabError("UNet: this model has cross-attention; pass context (B, S, cross_attention_dim)")
        h = self.conv_in(x)  # (N, C0, H, W)
        skips = [h]
        for level in self.down_blocks:
            for j, resnet in enumerate(level.resnets):
                h = self._call(resnet, h, emb, **extra)
                if level.attentions is not None:
                    h = self._call(level.attentions[j], h, context, **extra)
                skips.append(h)
            if level.downsamplers is not None:
                h = level.downsamplers[0](h)  # (N, C, H/2, W/2)
                skips.append(h)

        h = self._call(self.mid_block.resnets[0], h, emb, **extra)
        h = self._call(self.mid_block.attentions[0], h, context, **extra)
        h = self._call(self.mid_block.resnets[1], h, emb, **extra)

        for level in self.up_blocks:
            for j, resnet in enumerate(level.resnets):
                h = torch.cat([h, skips.pop()], dim=1)  # skip connection
                h = self._call(resnet, h, emb, **extra)
                if level.attentions is not None:
                    h = self._call(level.attentions[j], h, context, **extra)
            if level.upsamplers is not None:
                h = level.upsamplers[0](h)  # (N, C, 2H, 2W)

        h = F.silu(self.conv_norm_out(h))
        return self.conv_out(h)  # (N, C_out, H, W)

    def set_ff_chunk_size(self, chunk_size: int | None) -> None:
        """Feed-forward chunking (memory): same output, lower peak activation memory."""
        for m in self.modules():
            if isinstance(m, FeedForward):
                m.chunk_size = chunk_size



def load_diffusers_unet2d_state_dict(model: UNet2D, state_dict: dict[str, torch.Tensor]) -> None:
    """Load a diffusers UNet2DConditionModel state dict; names every unmapped or missing key."""
    own = model.state_dict()
    sd = {k: v for k, v in state_dict.items() if not k.endswith("to_out.1.weight")}
    unmapped = sorted(set(sd) - set(own))
    missing = sorted(set(own) - set(sd))
    if unmapped or missing:
        raise GenlabError(
            f"UNet state dict mismatch: unmapped keys {unmapped[:10]}{' ...' if len(unmapped) > 10 else ''}, "
            f"missing keys {missing[:10]}{' ...' if len(missing) > 10 else ''}"
        )
    model.load_state_dict(sd)
