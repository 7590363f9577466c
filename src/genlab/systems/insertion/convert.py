"""Real weights from local paths only: a diffusers UNet folder (SD-1.5-inpainting's `unet/`, 9 input
channels) and a transformers CLIP vision folder -> `InsertionModel`. Unmatched keys are listed in the
error. The reference projection (Linear-SiLU-Linear 1024 -> 768) is the paper's newly trained part:
it stays freshly initialised unless `projection` (a safetensors file with fc1/fc2) is given."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from genlab.core.nn.unet import UNetConfig, load_diffusers_unet2d_state_dict
from genlab.errors import GenlabError
from genlab.systems.insertion.config import InsertionConfig, ModelConfig, sd15_inpainting
from genlab.systems.insertion.encoder import load_clip_vision, load_state_strict
from genlab.systems.insertion.model import InsertionModel


def unet_config_from_diffusers(raw: dict, source: str = "config.json") -> UNetConfig:
    """diffusers UNet2DConditionModel config -> UNetConfig (SD-1.x/2.x layouts)."""
    try:
        down = raw["down_block_types"]
        heads = raw.get("attention_head_dim", 8)
        n = len(raw["block_out_channels"])
        heads = tuple(heads) if isinstance(heads, list) else (heads,) * n
        return UNetConfig(
            in_channels=raw["in_channels"], out_channels=raw["out_channels"],
            block_out_channels=tuple(raw["block_out_channels"]),
            attention_levels=tuple(t.startswith("CrossAttn") for t in down),
            layers_per_block=raw["layers_per_block"], num_heads=heads,
            cross_attention_dim=raw["cross_attention_dim"], use_linear_projection=raw.get("use_linear_projection", False),
            norm_num_groups=raw.get("norm_num_groups", 32), norm_eps=raw.get("norm_eps", 1e-5),
        )
    except KeyError as err:
        raise GenlabError(f"{source}: missing diffusers UNet field {err}") from None


def load_diffusers_unet_folder(folder: str | Path):
    """(UNetConfig, state dict) from a diffusers UNet folder (config.json + *.safetensors)."""
    from genlab.core.train import read_safetensors_folder

    folder = Path(folder)
    if (folder / "unet").is_dir():
        folder = folder / "unet"
    cfg_file = folder / "config.json"
    if not cfg_file.is_file():
        raise GenlabError(f"UNet weights: {cfg_file} not found (expected a diffusers UNet folder)")
    state = read_safetensors_folder(folder, "UNet weights", "a diffusers UNet folder")
    return unet_config_from_diffusers(json.loads(cfg_file.read_text()), str(cfg_file)), state


def load_pretrained(unet_folder: str | Path, clip_folder: str | Path, projection: str | Path | None = None,
                    base: InsertionConfig | None = None) -> tuple[InsertionModel, InsertionConfig]:
    """InsertionModel from local SD-inpainting UNet + CLIP vision weights (nothing is downloaded)."""
    ucfg, ustate = load_diffusers_unet_folder(unet_folder)
    clip = load_clip_vision(clip_folder)
    base = base or sd15_inpainting()
    c = (ucfg.in_channels - 1) // 2
    if ucfg.in_channels != 2 * c + 1 or ucfg.out_channels != c:
        raise GenlabError(f"{unet_folder}: an insertion UNet needs 2C+1 inputs and C outputs, got "
                          f"{ucfg.in_channels} -> {ucfg.out_channels} (an inpainting UNet has 9 -> 4)")
    cfg = replace(base, model=ModelConfig(latent_channels=c, unet=ucfg, vit=clip.config, train_encoder=False,
                                          space="latent"))
    model = InsertionModel(cfg.model)
    load_diffusers_unet2d_state_dict(model.unet, ustate)
    model.ref_encoder.load_state_dict(clip.state_dict())
    if projection is not None:
        from safetensors.torch import load_file

        load_state_strict(model.ref_proj, load_file(str(projection)), f"projection {projection}")
    return model.eval(), cfg


__all__ = ["load_pretrained", "load_diffusers_unet_folder", "unet_config_from_diffusers"]
