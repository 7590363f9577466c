"""SVD's temporal VAE decoder (sgm `VideoDecoder`, diffusers `AutoencoderKLTemporalDecoder.decoder`).

The SD KL decoder with every ResBlock followed by a temporal ResBlock (3x1x1 convolutions) and a
learned AlphaBlender, and a Conv3d (3x1x1) after conv_out. The blend is the other way round from the
UNet's: `alpha * x_temporal + (1 - alpha) * x_spatial` with alpha = sigmoid(mix_factor), mix_factor
initialised to 0 (so 0.5). The encoder stays 2D. Names follow diffusers, so its decoder weights load
as they are.

    z (B*T, C_z, h, w) -> conv_in -> mid (ResBlock, self-attention, ResBlock) -> up levels -> conv_out
      -> time_conv_out over frames -> x (B*T, 3, 8h, 8w)

Decoding in chunks of frames (`decode_video(..., chunk_size)`) bounds memory; chunks are decoded
independently, so a chunk shorter than T changes the result near chunk borders (as in sgm/diffusers);
chunk = T equals the full decode.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from genlab.core.nn.temporal import SpatioTemporalResBlock, temporal_conv
from genlab.core.nn.unet import ResBlock2D, Upsample
from genlab.errors import GenlabError


@dataclass(frozen=True)
class TemporalDecoderConfig:
    latent_channels: int = 4
    out_channels: int = 3
    block_out_channels: tuple[int, ...] = (128, 256, 512, 512)
    layers_per_block: int = 2
    groups: int = 32


def tiny(**overrides) -> TemporalDecoderConfig:
    return replace(TemporalDecoderConfig(block_out_channels=(32, 64), layers_per_block=1), **overrides)


class _VAEAttention(nn.Module):
    """Single-head self-attention over pixels with its own GroupNorm and a residual (diffusers names)."""

    def __init__(self, ch: int, groups: int):
        super().__init__()
        self.group_norm = nn.GroupNorm(groups, ch, eps=1e-6)
        self.to_q, self.to_k, self.to_v = nn.Linear(ch, ch), nn.Linear(ch, ch), nn.Linear(ch, ch)
        self.to_out = nn.ModuleList([nn.Linear(ch, ch)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        tokens = self.group_norm(x.reshape(n, c, h * w)).transpose(1, 2)  # (N, HW, C)
        q, k, v = self.to_q(tokens), self.to_k(tokens), self.to_v(tokens)
        out = F.scaled_dot_product_attention(q[:, None], k[:, None], v[:, None])[:, 0]
        out = self.to_out[0](out).transpose(1, 2).reshape(n, c, h, w)
        return out + x


def _res(ch_in: int, ch_out: int, groups: int) -> SpatioTemporalResBlock:
    return SpatioTemporalResBlock(ch_in, ch_out, None, groups, eps=1e-6, merge_factor=0.0, strategy="learned",
                                  temporal_eps=1e-5, switch=True)


class _Blocks(nn.Module):
    def __init__(self, resnets, attentions=None, upsample=None):
        super().__init__()
        self.resnets = nn.ModuleList(resnets)
        if attentions is not None:
            self.attentions = nn.ModuleList(attentions)
        self.upsamplers = nn.ModuleList([upsample]) if upsample is not None else None


class TemporalDecoder(nn.Module):
    def __init__(self, config: TemporalDecoderConfig):
        super().__init__()
        self.config = config
        boc, g, L = config.block_out_channels, config.groups, config.layers_per_block
        self.conv_in = nn.Conv2d(config.latent_channels, boc[-1], 3, padding=1)
        self.mid_block = _Blocks([_res(boc[-1], boc[-1], g) for _ in range(L)], [_VAEAttention(boc[-1], g)])
        rev = list(reversed(boc))
        self.up_blocks = nn.ModuleList()
        ch = rev[0]
        for i, out in enumerate(rev):
            resnets = [_res(ch if j == 0 else out, out, g) for j in range(L + 1)]
            self.up_blocks.append(_Blocks(resnets, upsample=Upsample(out) if i < len(rev) - 1 else None))
            ch = out
        self.conv_norm_out = nn.GroupNorm(g, boc[0], eps=1e-6)
        self.conv_out = nn.Conv2d(boc[0], config.out_channels, 3, padding=1)
        self.time_conv_out = nn.Conv3d(config.out_channels, config.out_channels, (3, 1, 1), padding=(1, 0, 0))

    @property
    def upsample_factor(self) -> int:
        return 2 ** (len(self.config.block_out_channels) - 1)

    def forward(self, z: torch.Tensor, num_frames: int) -> torch.Tensor:
        """z (B*T, C_z, h, w) unscaled latents, frames of a clip contiguous -> (B*T, C, f*h, f*w)."""
        if num_frames < 1 or z.shape[0] % num_frames:
            raise GenlabError(f"TemporalDecoder: {z.shape[0]} latent frames are not a multiple of num_frames={num_frames}")
        ind = z.new_zeros(z.shape[0] // num_frames, num_frames)
        h = self.conv_in(z)
        h = self.mid_block.resnets[0](h, None, ind)
        for attn, resnet in zip(self.mid_block.attentions, self.mid_block.resnets[1:]):
            h = resnet(attn(h), None, ind)
        for level in self.up_blocks:
            for resnet in level.resnets:
                h = resnet(h, None, ind)
            if level.upsamplers is not None:
                h = level.upsamplers[0](h)
        h = self.conv_out(F.silu(self.conv_norm_out(h)))  # (B*T, 3, H, W)
        bt, c, hh, ww = h.shape
        h = h.reshape(bt // num_frames, num_frames, c, hh, ww).permute(0, 2, 1, 3, 4)  # (B, 3, T, H, W)
        h = temporal_conv(self.time_conv_out, h)
        return h.permute(0, 2, 1, 3, 4).reshape(bt, c, hh, ww)

    def decode_video(self, z: torch.Tensor, chunk_size: int | None = None) -> torch.Tensor:
        """z (B, T, C_z, h, w) -> (B, T, C, H, W), `chunk_size` frames at a time (None = all T)."""
        b, t = z.shape[:2]
        chunk = t if chunk_size is None else chunk_size
        if chunk < 1:
            raise GenlabError(f"decode chunk size must be >= 1, got {chunk}")
        outs = []
        for i in range(0, t, chunk):
            part = z[:, i:i + chunk]
            n = part.shape[1]
            outs.append(self(part.flatten(0, 1), n).reshape(b, n, *self._out_shape(z)))
        return torch.cat(outs, dim=1)

    def _out_shape(self, z: torch.Tensor) -> tuple[int, int, int]:
        f = self.upsample_factor
        return self.config.out_channels, z.shape[-2] * f, z.shape[-1] * f


def load_diffusers_decoder_state_dict(decoder: TemporalDecoder, state_dict: dict[str, torch.Tensor]) -> None:
    """Load `AutoencoderKLTemporalDecoder.decoder.*` (prefix stripped or not); names unmapped/missing keys."""
    sd = {k.removeprefix("decoder."): v for k, v in state_dict.items()
          if k.startswith("decoder.") or not k.startswith(("encoder.", "quant_conv."))}
    sd = {k: v for k, v in sd.items() if not k.endswith("to_out.1.weight")}
    own = decoder.state_dict()
    unmapped, missing = sorted(set(sd) - set(own)), sorted(set(own) - set(sd))
    if unmapped or missing:
        raise GenlabError(f"TemporalDecoder state dict: unmapped keys {unmapped[:10]}, missing keys {missing[:10]}")
    decoder.load_state_dict(sd)


class _VAEDownsample(nn.Module):
    """Stride-2 3x3 conv after padding right and bottom by one (SD's VAE, unlike the UNet's symmetric pad)."""

    def __init__(self, ch: int):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, stride=2, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class KLEncoder(nn.Module):
    """SD's 2D KL encoder + quant_conv, returning the latent mode (diffusers `Encoder` names; SVD keeps it 2D).

        x (N, 3, H, W) -> conv_in -> levels of ResBlocks (+ downsample) -> mid (Res, attention, Res)
          -> GroupNorm, SiLU, conv_out (2 C_z: mean, logvar) -> quant_conv -> mean (N, C_z, H/f, W/f)
    """

    def __init__(self, config: TemporalDecoderConfig, in_channels: int = 3):
        super().__init__()
        boc, g, L = config.block_out_channels, config.groups, config.layers_per_block
        self.conv_in = nn.Conv2d(in_channels, boc[0], 3, padding=1)
        self.down_blocks = nn.ModuleList()
        ch = boc[0]
        for i, out in enumerate(boc):
            resnets = [ResBlock2D(ch if j == 0 else out, out, None, g, eps=1e-6) for j in range(L)]
            down = _VAEDownsample(out) if i < len(boc) - 1 else None
            level = _Blocks(resnets)
            level.downsamplers = nn.ModuleList([down]) if down is not None else None
            self.down_blocks.append(level)
            ch = out
        self.mid_block = _Blocks([ResBlock2D(ch, ch, None, g, eps=1e-6) for _ in range(2)], [_VAEAttention(ch, g)])
        self.conv_norm_out = nn.GroupNorm(g, ch, eps=1e-6)
        self.conv_out = nn.Conv2d(ch, 2 * config.latent_channels, 3, padding=1)
        self.quant_conv = nn.Conv2d(2 * config.latent_channels, 2 * config.latent_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)
        for level in self.down_blocks:
            for resnet in level.resnets:
                h = resnet(h, None)
            if level.downsamplers is not None:
                h = level.downsamplers[0](h)
        h = self.mid_block.resnets[1](self.mid_block.attentions[0](self.mid_block.resnets[0](h, None)), None)
        moments = self.quant_conv(self.conv_out(F.silu(self.conv_norm_out(h))))  # (N, 2 C_z, h, w)
        return moments.chunk(2, dim=1)[0]  # the mean = the mode of the diagonal Gaussian


class TemporalKL(nn.Module):
    """SVD's autoencoder: a 2D KL encoder (any module giving the latent mode) + the temporal decoder.

    `encoder(x)` must return the unscaled latent mode (N, C_z, h, w); for real checkpoints use
    `from_diffusers(vae)` on a loaded `AutoencoderKLTemporalDecoder` (its encoder and quant_conv are reused,
    the decoder is ours)."""

    def __init__(self, encoder: nn.Module | None, decoder: TemporalDecoder, scaling_factor: float = 0.18215):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.scaling_factor = scaling_factor
        self.latent_channels = decoder.config.latent_channels
        self.downsample_factor = decoder.upsample_factor

    @classmethod
    def build(cls, config: TemporalDecoderConfig, scaling_factor: float = 0.18215) -> TemporalKL:
        """Our encoder and decoder, with state dict names `encoder.*` (incl. `encoder.quant_conv`), `decoder.*`."""
        return cls(KLEncoder(config), TemporalDecoder(config), scaling_factor)

    @classmethod
    def from_diffusers(cls, vae: nn.Module) -> TemporalKL:
        decoder = TemporalDecoder(TemporalDecoderConfig(
            latent_channels=vae.config.latent_channels, out_channels=vae.config.out_channels,
            block_out_channels=tuple(vae.config.block_out_channels), layers_per_block=vae.config.layers_per_block))
        load_diffusers_decoder_state_dict(decoder, vae.state_dict())
        enc = _DiffusersModeEncoder(vae.encoder, vae.quant_conv)
        return cls(enc, decoder.to(next(vae.parameters()).dtype), float(vae.config.scaling_factor))

    def encode_unscaled(self, x: torch.Tensor) -> torch.Tensor:
        if self.encoder is None:
            raise GenlabError("TemporalKL: no encoder loaded")
        dtype = next(self.encoder.parameters()).dtype
        if dtype == torch.float16:  # SD's encoder overflows in float16: run it in float32 (diffusers' force_upcast)
            self.encoder.float()
            try:
                return self.encoder(x.float()).half()
            finally:
                self.encoder.half()
        return self.encoder(x.to(dtype))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode_unscaled(x) * self.scaling_factor

    def decode_video(self, z: torch.Tensor, chunk_size: int | None = None) -> torch.Tensor:
        return self.decoder.decode_video(z / self.scaling_factor, chunk_size)


class _DiffusersModeEncoder(nn.Module):
    def __init__(self, encoder: nn.Module, quant_conv: nn.Module):
        super().__init__()
        self.encoder, self.quant_conv = encoder, quant_conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        moments = self.quant_conv(self.encoder(x))
        return moments.chunk(2, dim=1)[0]  # the mean = the mode of the diagonal Gaussian
