"""Temporal layers of Stable Video Diffusion and the spatio-temporal (video) UNet built from them.

Following Video-LDM / SVD (sgm `VideoUNet`), every ResBlock of the SD UNet is followed by a temporal
ResBlock (3x1x1 convolutions over frames) and every spatial transformer by a temporal transformer
(attention over the T frames at each pixel, with a sinusoidal frame-index embedding); each pair is
merged by an `AlphaBlender`:

    out = alpha * x_spatial + (1 - alpha) * x_temporal,   alpha = sigmoid(mix_factor)  ("learned")

With `learned_with_images`, alpha is forced to 1 wherever `image_only_indicator` is 1, so image
samples pass through the spatial path only: `VideoUNet(..., image_only_indicator=1)` equals the 2D
UNet it was inflated from, exactly (a test). Names follow diffusers' `UNetSpatioTemporalConditionModel`
so its state dicts load without renaming.

Frames are folded into the batch, (B*T, C, H, W), as in sgm and diffusers; temporal layers unfold
them to (B, C, T, H, W) (convolutions) or (B*H*W, T, C) (attention).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F
from torch import nn

from genlab.core.nn.embeddings import timestep_embedding
from genlab.core.nn.unet import (
    Attention,
    FeedForward,
    ResBlock2D,
    TimestepMLP,
    Transformer2D,
    UNet2D,
    UNetConfig,
)
from genlab.errors import GenlabError

__all__ = [
    "AlphaBlender",
    "TemporalResBlock",
    "SpatioTemporalResBlock",
    "TemporalTransformerBlock",
    "SpatioTemporalTransformer",
    "VideoUNetConfig",
    "VideoUNet",
    "inflate",
    "tiny",
    "svd",
    "svd_xt",
]

STRATEGIES = ("fixed", "learned", "learned_with_images")


class AlphaBlender(nn.Module):
    """alpha * x_spatial + (1 - alpha) * x_temporal; `switch=True` swaps the roles (SVD's VAE decoder).

    fixed: alpha = merge_factor; learned: sigmoid(mix_factor); learned_with_images: like learned, but
    alpha = 1 for frames whose image_only_indicator is 1. `override` (ablations) forces a value.
    """

    def __init__(self, merge_factor: float = 0.5, strategy: str = "learned_with_images", switch: bool = False):
        super().__init__()
        if strategy not in STRATEGIES:
            raise GenlabError(f"AlphaBlender: strategy must be one of {STRATEGIES}, got {strategy!r}")
        self.strategy, self.switch = strategy, switch
        self.override: float | None = None
        if strategy == "fixed":
            self.register_buffer("mix_factor", torch.tensor([float(merge_factor)]))
        else:
            self.mix_factor = nn.Parameter(torch.tensor([float(merge_factor)]))

    def alpha(self, image_only_indicator: torch.Tensor | None, ndim: int) -> torch.Tensor:
        if self.override is not None:
            return self.mix_factor.new_tensor([self.override])
        if self.strategy == "fixed":
            return self.mix_factor
        a = torch.sigmoid(self.mix_factor)
        if self.strategy == "learned":
            return a
        if image_only_indicator is None:
            raise GenlabError("AlphaBlender(learned_with_images): image_only_indicator (B, T) is required")
        a = torch.where(image_only_indicator.bool(), torch.ones_like(a), a)  # (B, T)
        if ndim == 5:
            return a[:, None, :, None, None]  # (B, 1, T, 1, 1) for (B, C, T, H, W)
        return a.reshape(-1)[:, None, None]  # (B*T, 1, 1) for (B*T, S, C)

    def forward(self, x_spatial: torch.Tensor, x_temporal: torch.Tensor,
                image_only_indicator: torch.Tensor | None = None) -> torch.Tensor:
        a = self.alpha(image_only_indicator, x_spatial.ndim).to(x_spatial.dtype)
        if self.switch:
            a = 1.0 - a
        return a * x_spatial + (1.0 - a) * x_temporal


def temporal_conv(conv: nn.Conv3d, x: torch.Tensor) -> torch.Tensor:
    """A (k, 1, 1) Conv3d over (B, C, T, H, W) run as a (k, 1) Conv2d over (B, C, T, H*W): the same sum, but
    PyTorch's CPU Conv3d has no oneDNN path (slow_conv3d) and this is 1.4-1.8x faster. Weights keep Conv3d's shape."""
    kt = conv.kernel_size[0]
    out = F.conv2d(x.flatten(3), conv.weight.squeeze(-1), conv.bias, padding=(kt // 2, 0))
    return out.unflatten(3, x.shape[3:])


class TemporalResBlock(nn.Module):
    """ResBlock over time: GroupNorm-SiLU-Conv3d(3,1,1), + per-frame timestep embedding, again, residual."""

    def __init__(self, ch: int, temb_ch: int | None, groups: int = 32, eps: float = 1e-6, kernel_t: int = 3):
        super().__init__()
        k, p = (kernel_t, 1, 1), (kernel_t // 2, 0, 0)
        self.norm1 = nn.GroupNorm(groups, ch, eps=eps)
        self.conv1 = nn.Conv3d(ch, ch, k, padding=p)
        self.time_emb_proj = nn.Linear(temb_ch, ch) if temb_ch is not None else None
        self.norm2 = nn.GroupNorm(groups, ch, eps=eps)
        self.conv2 = nn.Conv3d(ch, ch, k, padding=p)

    def forward(self, x: torch.Tensor, temb: torch.Tensor | None) -> torch.Tensor:
        """x (B, C, T, H, W), temb (B, T, D) -> (B, C, T, H, W)."""
        h = temporal_conv(self.conv1, F.silu(self.norm1(x)))
        if self.time_emb_proj is not None:
            h = h + self.time_emb_proj(F.silu(temb)).permute(0, 2, 1)[..., None, None]  # (B, C, T, 1, 1)
        h = temporal_conv(self.conv2, F.silu(self.norm2(h)))
        return x + h


class SpatioTemporalResBlock(nn.Module):
    """2D ResBlock per frame, then a temporal ResBlock, blended by AlphaBlender."""

    def __init__(self, in_ch: int, out_ch: int, temb_ch: int | None, groups: int, eps: float,
                 merge_factor: float = 0.5, strategy: str = "learned_with_images",
                 temporal_eps: float | None = None, switch: bool = False):
        super().__init__()
        self.spatial_res_block = ResBlock2D(in_ch, out_ch, temb_ch, groups, eps)
        self.temporal_res_block = TemporalResBlock(out_ch, temb_ch, groups, temporal_eps or eps)
        self.time_mixer = AlphaBlender(merge_factor, strategy, switch)

    def forward(self, x: torch.Tensor, temb: torch.Tensor | None,
                image_only_indicator: torch.Tensor) -> torch.Tensor:
        """x (B*T, C, H, W), temb (B*T, D) or None, image_only_indicator (B, T)."""
        b, t = image_only_indicator.shape
        h = self.spatial_res_block(x, temb)  # (B*T, C', H, W)
        bt, c, hh, ww = h.shape
        h_sp = h.reshape(b, t, c, hh, ww).permute(0, 2, 1, 3, 4)  # (B, C', T, H, W)
        h_t = self.temporal_res_block(h_sp, temb.reshape(b, t, -1) if temb is not None else None)
        out = self.time_mixer(h_sp, h_t, image_only_indicator)
        return out.permute(0, 2, 1, 3, 4).reshape(bt, c, hh, ww)


class TemporalTransformerBlock(nn.Module):
    """Attention over frames at each spatial position: ff_in, self-attn, cross-attn to the context, FF."""

    def __init__(self, dim: int, heads: int, dim_head: int, context_dim: int | None):
        super().__init__()
        self.norm_in = nn.LayerNorm(dim)
        self.ff_in = FeedForward(dim)
        self.norm1 = nn.LayerNorm(dim)
        self.attn1 = Attention(dim, heads, dim_head)
        if context_dim is not None:
            self.norm2 = nn.LayerNorm(dim)
            self.attn2 = Attention(dim, heads, dim_head, context_dim)
        else:
            self.norm2 = self.attn2 = None
        self.norm3 = nn.LayerNorm(dim)
        self.ff = FeedForward(dim)

    def forward(self, x: torch.Tensor, num_frames: int, context: torch.Tensor | None = None) -> torch.Tensor:
        """x (B*T, S, C), context (B*S, L, D) -> (B*T, S, C)."""
        bt, s, c = x.shape
        b = bt // num_frames
        h = x.reshape(b, num_frames, s, c).permute(0, 2, 1, 3).reshape(b * s, num_frames, c)  # (B*S, T, C)
        h = h + self.ff_in(self.norm_in(h))
        h = h + self.attn1(self.norm1(h))
        if self.attn2 is not None:
            h = h + self.attn2(self.norm2(h), context)
        h = h + self.ff(self.norm3(h))
        return h.reshape(b, s, num_frames, c).permute(0, 2, 1, 3).reshape(bt, s, c)


class SpatioTemporalTransformer(Transformer2D):
    """Spatial transformer blocks, each followed by a temporal one; frame-index embedding on the temporal input."""

    def __init__(self, ch: int, heads: int, context_dim: int | None, layers: int, groups: int,
                 merge_factor: float = 0.5, strategy: str = "learned_with_images"):
        super().__init__(ch, heads, context_dim, layers, groups, linear=True)
        self.temporal_transformer_blocks = nn.ModuleList(
            [TemporalTransformerBlock(ch, heads, ch // heads, context_dim) for _ in range(layers)]
        )
        self.time_pos_embed = TimestepMLP(ch, 4 * ch, ch)
        self.time_mixer = AlphaBlender(merge_factor, strategy)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None,
                image_only_indicator: torch.Tensor) -> torch.Tensor:
        """x (B*T, C, H, W), context (B*T, L, D), image_only_indicator (B, T)."""
        b, t = image_only_indicator.shape
        bt, c, hh, ww = x.shape
        time_context = None
        if context is not None:  # the context of each clip's first frame, for every pixel (use_spatial_context)
            first = context.reshape(b, t, *context.shape[1:])[:, 0]  # (B, L, D)
            time_context = first[:, None].expand(b, hh * ww, *first.shape[1:]).reshape(b * hh * ww, *first.shape[1:])
        frame_idx = torch.arange(t, device=x.device).repeat(b)  # (B*T,)
        pos = self.time_pos_embed(timestep_embedding(frame_idx, c).to(x.dtype))[:, None]  # (B*T, 1, C)
        tokens = self.to_tokens(x)  # (B*T, HW, C)
        for block, tblock in zip(self.transformer_blocks, self.temporal_transformer_blocks):
            tokens = block(tokens, context)
            mixed = tblock(tokens + pos, t, time_context)
            tokens = self.time_mixer(tokens, mixed, image_only_indicator)
        return self.from_tokens(tokens, x)


# ----------------------------------------------------------------------------------------------------
# the video UNet


@dataclass(frozen=True)
class VideoUNetConfig:
    """The spatial UNet's config plus the temporal options (SVD: learned_with_images, merge 0.5)."""

    unet: UNetConfig = field(default_factory=UNetConfig)
    merge_factor: float = 0.5
    merge_strategy: str = "learned_with_images"
    num_frames: int = 14  # informational (the default clip length); the model takes any T

    def to_dict(self) -> dict:
        return {"unet": self.unet.to_dict(), "merge_factor": self.merge_factor,
                "merge_strategy": self.merge_strategy, "num_frames": self.num_frames}

    @classmethod
    def from_dict(cls, d: dict) -> VideoUNetConfig:
        rest = {k: v for k, v in d.items() if k != "unet"}
        unknown = sorted(set(rest) - set(cls.__dataclass_fields__))
        if unknown:
            raise GenlabError(f"VideoUNetConfig: unknown fields {unknown}")
        return cls(unet=UNetConfig.from_dict(d["unet"]), **rest)


def tiny(**unet_overrides) -> VideoUNetConfig:
    """diffusers' own UNetSpatioTemporalConditionModel test config: (32, 64), heads (8, 16), context 32."""
    unet = UNetConfig(
        in_channels=4, out_channels=4, block_out_channels=(32, 64), attention_levels=(True, False),
        layers_per_block=2, num_heads=(8, 16), cross_attention_dim=32, use_linear_projection=True,
        norm_num_groups=32, addition_time_embed_dim=32, num_added_ids=3, down_attn_resnet_eps=1e-6, up_resnet_eps=1e-6,
    )
    return VideoUNetConfig(unet=replace(unet, **unet_overrides), num_frames=2)


def svd(**unet_overrides) -> VideoUNetConfig:
    """SVD (img2vid, 14 frames): SD2.1 UNet, in 8 (noisy latent + conditioning latent), out 4,
    CLIP image context 1024, vector conditioning [fps_id, motion_bucket_id, cond_aug] x 256."""
    unet = UNetConfig(
        in_channels=8, out_channels=4, block_out_channels=(320, 640, 1280, 1280),
        attention_levels=(True, True, True, False), layers_per_block=2, num_heads=(5, 10, 20, 20),
        cross_attention_dim=1024, use_linear_projection=True, addition_time_embed_dim=256, num_added_ids=3,
        down_attn_resnet_eps=1e-6, up_resnet_eps=1e-6,
    )
    return VideoUNetConfig(unet=replace(unet, **unet_overrides), num_frames=14)


def svd_xt(**unet_overrides) -> VideoUNetConfig:
    """SVD-XT: same network, 25 frames."""
    return replace(svd(**unet_overrides), num_frames=25)


class VideoUNet(UNet2D):
    """Spatio-temporal UNet; parity with diffusers' UNetSpatioTemporalConditionModel on the same weights."""

    def __init__(self, config: VideoUNetConfig):
        self.video_config = config
        super().__init__(config.unet)

    def _resnet(self, ch_in: int, ch_out: int, eps: float) -> nn.Module:
        c = self.video_config
        return SpatioTemporalResBlock(ch_in, ch_out, c.unet.time_embed_dim, c.unet.norm_num_groups, eps,
                                      c.merge_factor, c.merge_strategy)

    def _transformer(self, ch: int, heads: int) -> nn.Module:
        c = self.video_config
        return SpatioTemporalTransformer(ch, heads, c.unet.cross_attention_dim, c.unet.transformer_layers,
                                         c.unet.norm_num_groups, c.merge_factor, c.merge_strategy)

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float,
        context: torch.Tensor | None = None,
        added_cond: torch.Tensor | None = None,
        image_only_indicator: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """sample (B, T, C_in, H, W), timestep scalar or (B,), context (B, L, D) (shared by the frames),
        added_cond (B, n), image_only_indicator (B, T) (default zeros = video) -> (B, T, C_out, H, W)."""
        if sample.ndim != 5:
            raise GenlabError(f"VideoUNet: sample expected (B, T, C, H, W), got shape {tuple(sample.shape)}")
        b, t = sample.shape[:2]
        if t < 1:
            raise GenlabError(f"VideoUNet: num_frames must be >= 1, got {t}")
        self.check_input(sample, 5)
        emb = self.embed(timestep, b, added_cond, sample.device, sample.dtype)  # (B, ted)
        emb = emb.repeat_interleave(t, dim=0)  # (B*T, ted)
        if context is not None:
            context = context.repeat_interleave(t, dim=0)  # (B*T, L, D)
        if image_only_indicator is None:
            image_only_indicator = sample.new_zeros(b, t)
        elif image_only_indicator.shape != (b, t):
            raise GenlabError(
                f"VideoUNet: image_only_indicator expected shape ({b}, {t}), got {tuple(image_only_indicator.shape)}"
            )
        out = self.run_blocks(sample.flatten(0, 1), emb, context, image_only_indicator=image_only_indicator)
        return out.reshape(b, t, *out.shape[1:])

    def set_alpha_override(self, value: float | None) -> None:
        """Ablation: force every AlphaBlender's alpha (1.0 = temporal layers off)."""
        for m in self.modules():
            if isinstance(m, AlphaBlender):
                m.override = value

    def temporal_parameters(self) -> list[nn.Parameter]:
        """The parameters the temporal layers add (what SVD trains on top of the image model)."""
        return [p for n, p in self.named_parameters() if _is_temporal_name(n)]


def _is_temporal_name(name: str) -> bool:
    return any(k in name for k in ("temporal_res_block", "temporal_transformer_blocks", "time_pos_embed",
                                   "time_mixer"))


def spatial_key(video_key: str) -> str | None:
    """Map a VideoUNet parameter name to the 2D UNet's (None for the temporal-only parameters)."""
    if _is_temporal_name(video_key):
        return None
    return video_key.replace(".spatial_res_block.", ".")


def inflate(image_unet: UNet2D, config: VideoUNetConfig | None = None) -> VideoUNet:
    """A VideoUNet whose spatial path is a copy of `image_unet`; the temporal layers are freshly initialised.

    The spatial UNet config must be the image model's (a different eps or width would not reproduce it).
    """
    config = config or VideoUNetConfig(unet=image_unet.config)
    if config.unet != image_unet.config:
        raise GenlabError("inflate: VideoUNetConfig.unet must equal the image UNet's config")
    if not config.unet.use_linear_projection:
        raise GenlabError("inflate: the video UNet's transformers use linear projections; "
                          "the image UNet has use_linear_projection=False")
    video = VideoUNet(config)
    src = image_unet.state_dict()
    own = video.state_dict()
    new = {}
    for k, v in own.items():
        sk = spatial_key(k)
        new[k] = src[sk].clone() if sk is not None else v
    missing = sorted(set(src) - {spatial_key(k) for k in own})
    if missing:
        raise GenlabError(f"inflate: image UNet keys with no place in the video UNet: {missing[:10]}")
    video.load_state_dict(new)
    return video.to(next(image_unet.parameters()).device)
