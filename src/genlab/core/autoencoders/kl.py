"""diffusers' AutoencoderKL (SD's f8 KL-VAE) from an explicit local folder or an LDM-named state dict
(the `first_stage_model.` part of a single-file checkpoint); nothing downloads."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from genlab.errors import GenlabError


class DiffusersKL(nn.Module):
    """Wraps `diffusers.AutoencoderKL`: encode -> (mode (or a sample) - shift_factor) * scaling_factor;
    decode undoes it. SD3's 16-channel VAE has shift_factor 0.0609; SD 1/2/XL have none (0)."""

    def __init__(self, vae: nn.Module, sample: bool = False):
        super().__init__()
        self.vae = vae
        self.sample = sample
        self.scaling_factor = float(vae.config.scaling_factor)
        self.shift_factor = float(getattr(vae.config, "shift_factor", None) or 0.0)
        self.latent_channels = int(vae.config.latent_channels)
        self.downsample_factor = 2 ** (len(vae.config.block_out_channels) - 1)

    @classmethod
    def from_local(cls, path: str | os.PathLike, subfolder: str | None = None, dtype=torch.float32,
                   device: str | torch.device = "cpu") -> DiffusersKL:
        folder = Path(path) / subfolder if subfolder else Path(path)
        if not (folder / "config.json").is_file():
            raise GenlabError(f"AutoencoderKL: no config.json in {folder} (give a local diffusers VAE folder)")
        from diffusers import AutoencoderKL

        vae = AutoencoderKL.from_pretrained(str(folder), local_files_only=True, torch_dtype=dtype)
        return cls(vae.to(device).eval())

    @classmethod
    def from_ldm_state_dict(cls, state: dict[str, torch.Tensor], scaling_factor: float, shift_factor: float = 0.0,
                            dtype=torch.float32, device: str | torch.device = "cpu", source: str = "VAE") -> DiffusersKL:
        """From LDM names (`encoder.down.0.block.0.conv1.weight`, ...), prefix already removed; the sizes
        come from the shapes, the factors from the caller (single files do not store them)."""
        from diffusers import AutoencoderKL
        from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

        config = ldm_vae_config(state, source)
        with torch.device("meta"):
            vae = AutoencoderKL(**config, scaling_factor=scaling_factor, shift_factor=shift_factor)
        converted = convert_ldm_vae_checkpoint(state, dict(vae.config))
        try:
            vae.load_state_dict(converted, strict=True, assign=True)
        except RuntimeError as err:
            raise GenlabError(f"{source}: weights do not fit an AutoencoderKL ({str(err).splitlines()[0]})") from None
        return cls(vae.to(device).to(dtype=dtype).eval())

    def encode(self, x: torch.Tensor, generator: torch.Generator | None = None, sample: bool | None = None) -> torch.Tensor:
        """sample: draw from the posterior (with `generator`) instead of its mode; None: the wrapper's setting."""
        dist = self.vae.encode(x).latent_dist
        z = dist.sample(generator) if (self.sample if sample is None else sample) else dist.mode()
        return (z - self.shift_factor) * self.scaling_factor

    def encode_unscaled(self, x: torch.Tensor) -> torch.Tensor:
        return self.vae.encode(x).latent_dist.mode()

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.vae.decode(z / self.scaling_factor + self.shift_factor).sample

    def decode_video(self, z: torch.Tensor, chunk_size: int | None = None) -> torch.Tensor:
        from genlab.core.autoencoders.small import decode_framewise

        return decode_framewise(self.decode, z, chunk_size)


def ldm_vae_config(state: dict[str, torch.Tensor], source: str = "VAE") -> dict:
    """AutoencoderKL sizes from LDM-named VAE weights (32 norm groups, as every SD VAE)."""
    try:
        levels = sorted({int(k.split(".")[2]) for k in state if k.startswith("encoder.down.")})
        blocks = {int(k.split(".")[4]) for k in state if k.startswith("encoder.down.0.block.")}
        n = len(levels)
        return dict(
            in_channels=state["encoder.conv_in.weight"].shape[1], out_channels=state["decoder.conv_out.weight"].shape[0],
            down_block_types=("DownEncoderBlock2D",) * n, up_block_types=("UpDecoderBlock2D",) * n,
            block_out_channels=tuple(state[f"encoder.down.{i}.block.0.conv1.weight"].shape[0] for i in levels),
            layers_per_block=len(blocks), latent_channels=state["decoder.conv_in.weight"].shape[1],
            use_quant_conv="quant_conv.weight" in state, use_post_quant_conv="post_quant_conv.weight" in state,
            mid_block_add_attention="encoder.mid.attn_1.q.weight" in state,
        )
    except (KeyError, IndexError, ValueError) as err:
        raise GenlabError(f"{source}: not an LDM-named KL-VAE (missing {err})") from None
