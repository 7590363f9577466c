"""A tiny random pipeline shaped like the real one (SD-inpainting UNet 9 -> 4, KL-VAE, CLIP vision, the
Linear-SiLU-Linear projection), built from diffusers / transformers classes and saved as the
diffusers-style folder `genlab insertion insert --weights` reads (unet/, vae/, image_encoder/,
projection.safetensors). Sizes: VAE factor 2, UNet 2 levels, CLIP 32 px with 8 px patches (17 tokens)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

CLIP_SIZE = 32
CTX = 16  # the UNet's cross-attention width
CLIP_WIDTH = 32


@dataclass
class TinyParts:
    unet: torch.nn.Module
    vae: torch.nn.Module
    clip: torch.nn.Module
    fc1: torch.nn.Linear
    fc2: torch.nn.Linear


def tiny_parts(seed: int = 0, in_channels: int = 9) -> TinyParts:
    import diffusers
    import transformers

    torch.manual_seed(seed)
    unet = diffusers.UNet2DConditionModel(
        sample_size=16, in_channels=in_channels, out_channels=4, block_out_channels=(8, 16),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        layers_per_block=1, attention_head_dim=2, cross_attention_dim=CTX, norm_num_groups=4).eval()
    vae = diffusers.AutoencoderKL(down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                                  block_out_channels=(8, 8), norm_num_groups=4, layers_per_block=1,
                                  latent_channels=4).eval()
    clip = transformers.CLIPVisionModel(transformers.CLIPVisionConfig(
        image_size=CLIP_SIZE, patch_size=8, hidden_size=CLIP_WIDTH, intermediate_size=37, num_hidden_layers=2,
        num_attention_heads=4)).eval()
    fc1, fc2 = torch.nn.Linear(CLIP_WIDTH, CTX), torch.nn.Linear(CTX, CTX)
    return TinyParts(unet, vae, clip, fc1, fc2)


def save_folder(parts: TinyParts, folder: Path) -> Path:
    from genlab.core.train import save_weights

    parts.unet.save_pretrained(folder / "unet")
    parts.vae.save_pretrained(folder / "vae")
    parts.clip.save_pretrained(folder / "image_encoder")
    state = {f"{name}.{k}": v for name, layer in (("fc1", parts.fc1), ("fc2", parts.fc2))
             for k, v in layer.state_dict().items()}
    save_weights(folder / "projection.safetensors", state)
    return folder
