"""The insertion network: an SD-style UNet over [noisy latent, masked-scene latent, mask] (2C + 1
channels; 9 for SD-1.5-inpainting) that cross-attends to the reference person's image tokens.

    z_t (N, C, h, w), scene latent (N, C, h, w), mask (N, 1, h, w)  -> concat (N, 2C+1, h, w)
    reference (N, 3, R, R) in [-1, 1] -> ViT -> all tokens (N, T, D_vit) -> Linear-SiLU-Linear -> (N, T, D_ctx)
    UNet(concat, timestep, context=tokens) -> eps (N, C, h, w)

Condition dropout (paper Sec. 3.2) is done on the inputs: a dropped scene is the latent of an all-grey
image with an all-ones mask, a dropped person is an all-grey reference. `null_scene` / `null_reference`
build them, so training and sampling use exactly the same "empty" conditions.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional

from genlab.core.nn.unet import UNet2D
from genlab.errors import GenlabError
from genlab.systems.insertion.config import ModelConfig
from genlab.systems.insertion.encoder import CLIPVisionTransformer, ReferenceProjection, normalise_for_clip


class InsertionModel(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.unet = UNet2D(config.unet)
        self.ref_encoder = CLIPVisionTransformer(config.vit)
        self.ref_proj = ReferenceProjection(config.vit.hidden_size, config.unet.cross_attention_dim, config.ref_norm)
        nn.init.zeros_(self.unet.conv_out.weight)  # start as the zero predictor (DiT-style zero-init)
        nn.init.zeros_(self.unet.conv_out.bias)
        self.ref_encoder.post_layernorm.requires_grad_(False)  # only CLIP's pooled output uses it; we take all tokens
        if not config.train_encoder:
            self.ref_encoder.requires_grad_(False)

    def encode_reference(self, reference: torch.Tensor) -> torch.Tensor:
        """reference (N, 3, R, R) in [-1, 1] -> context tokens (N, T, D_ctx)."""
        x = normalise_for_clip(reference, self.config.vit.image_size)
        with torch.set_grad_enabled(self.config.train_encoder and torch.is_grad_enabled()):
            tokens = self.ref_encoder(x)  # (N, T, D_vit)
        if self.config.cls_only:
            tokens = tokens[:, :1]  # (N, 1, D_vit): the class token only (Paint-by-Example)
        return self.ref_proj(tokens)  # (N, T, D_ctx)

    def forward(self, z_t: torch.Tensor, timestep: torch.Tensor, scene: torch.Tensor, mask: torch.Tensor,
                reference: torch.Tensor | None = None, context: torch.Tensor | None = None) -> torch.Tensor:
        """eps prediction. Pass `reference` images or precomputed `context` tokens."""
        if scene.shape != z_t.shape:
            raise GenlabError(f"insertion model: scene latent {tuple(scene.shape)} != noisy latent {tuple(z_t.shape)}")
        if mask.shape != (z_t.shape[0], 1, *z_t.shape[-2:]):
            raise GenlabError(f"insertion model: mask expected {(z_t.shape[0], 1, *z_t.shape[-2:])}, got {tuple(mask.shape)}")
        if context is None:
            if reference is None:
                raise GenlabError("insertion model: pass a reference image or context tokens")
            context = self.encode_reference(reference)
        x = torch.cat([z_t, scene, mask], dim=1)  # (N, 2C+1, h, w)
        return self.unet(x, timestep, context=context)  # (N, C, h, w)


class SpaceToDepth(nn.Module):
    """Pixel space with f x f pixel blocks folded into channels: an exact, parameter-free
    "autoencoder" (encode = pixel_unshuffle, decode = pixel_shuffle) that makes a toy UNet f^2 cheaper."""

    def __init__(self, factor: int = 1, channels: int = 3):
        super().__init__()
        self.downsample_factor = factor
        self.latent_channels = channels * factor * factor

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return functional.pixel_unshuffle(x, self.downsample_factor) if self.downsample_factor > 1 else x

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return functional.pixel_shuffle(z, self.downsample_factor) if self.downsample_factor > 1 else z


def mask_to_latent(mask: torch.Tensor, latent_hw: tuple[int, int], mode: str = "nearest") -> torch.Tensor:
    """Pixel mask (N, 1, H, W) -> latent resolution (`ModelConfig.mask_resize`). "nearest" is what
    SD-inpainting and the official model were trained with (`functional.interpolate`'s default); "max" marks a
    cell if any of its pixels is masked (no person pixel leaks into the visible scene latent), what
    the genlab toys were trained with."""
    if mask.shape[-2:] == tuple(latent_hw):
        return mask
    if mode == "max":
        return functional.adaptive_max_pool2d(mask, latent_hw)
    if mode != "nearest":
        raise GenlabError(f"mask_to_latent: mode must be 'nearest' or 'max', got {mode!r}")
    return functional.interpolate(mask, size=tuple(latent_hw), mode="nearest")


def null_reference(like: torch.Tensor) -> torch.Tensor:
    """The dropped person: an all-grey image (0 in [-1, 1])."""
    return torch.zeros_like(like)


def null_scene_pixels(like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The dropped scene: an all-grey image and an all-ones mask."""
    return torch.zeros_like(like), torch.ones_like(like[:, :1])
