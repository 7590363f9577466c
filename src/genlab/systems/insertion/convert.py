"""Real weights from local paths only -> `InsertionModel` (+ SD's KL autoencoder). Unmatched keys are
listed in the error.

- `load_pretrained`: a diffusers UNet folder (SD-1.5-inpainting's `unet/`, 9 input channels) and a
  transformers CLIP vision folder. The reference projection (Linear-SiLU-Linear 1024 -> 768) is the
  paper's newly trained part: freshly initialised unless `projection` (safetensors, fc1/fc2) is given.
- `load_single_file`: one LDM-layout checkpoint (.safetensors or .ckpt), i.e. SD-1.5-inpainting's
  single file or the official affordance-insertion checkpoint: `model.diffusion_model.*` (EMA weights
  when the file has them), `first_stage_model.*` (the VAE), `cond_stage_model.transformer.*` (CLIP,
  else from `clip_folder`) and the official UNet's `context_proj_embed.{0,2}` (our projection's
  fc1/fc2). The LDM -> diffusers renaming is diffusers' own (`loaders.single_file_utils`)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from genlab.core.nn.unet import UNetConfig, load_diffusers_unet2d_state_dict
from genlab.errors import GenlabError
from genlab.systems.insertion.config import InsertionConfig, ModelConfig, sd15_inpainting
from genlab.systems.insertion.encoder import clip_vision_weights, load_clip_vision, load_state_strict
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


LDM_UNET = "model.diffusion_model."
LDM_PROJECTION = {"fc1": "context_proj_embed.0", "fc2": "context_proj_embed.2"}
LDM_CLIP = "cond_stage_model.transformer."


def read_checkpoint(path: str | Path) -> dict:
    """A single-file state dict: safetensors, or a torch pickle (weights only; Lightning's `state_dict`)."""
    path = Path(path)
    if not path.is_file():
        raise GenlabError(f"checkpoint {path} not found")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    import torch

    try:
        raw = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling failure is one clear error
        raise GenlabError(f"checkpoint {path}: not a readable torch checkpoint ({type(err).__name__}: {err})") from None
    return raw.get("state_dict", raw)


def ldm_vae_config(sd: dict) -> dict:
    """diffusers AutoencoderKL arguments read off an LDM KL-VAE's shapes (SD's: 128/256/512/512, 2 blocks, 4 ch)."""
    enc = "first_stage_model.encoder."
    levels = sorted({int(k[len(enc + "down."):].split(".")[0]) for k in sd if k.startswith(enc + "down.")})
    blocks = {int(k[len(enc + "down.0.block."):].split(".")[0]) for k in sd if k.startswith(enc + "down.0.block.")}
    n = len(levels)
    return dict(down_block_types=("DownEncoderBlock2D",) * n, up_block_types=("UpDecoderBlock2D",) * n,
                block_out_channels=tuple(sd[f"{enc}down.{i}.block.0.conv1.weight"].shape[0] for i in levels),
                layers_per_block=len(blocks), latent_channels=sd["first_stage_model.quant_conv.weight"].shape[0] // 2)


def load_single_file(path: str | Path, clip_folder: str | Path | None = None, base: InsertionConfig | None = None):
    """(InsertionModel, DiffusersKL or None, InsertionConfig) from one LDM-layout checkpoint."""
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint, convert_ldm_vae_checkpoint

    from genlab.core.nn.unet import load_diffusers_unet2d_state_dict

    sd = read_checkpoint(path)
    conv_in = sd.get(LDM_UNET + "input_blocks.0.0.weight")
    if conv_in is None:
        raise GenlabError(f"{path}: no {LDM_UNET}input_blocks.0.0.weight: not an SD/LDM single-file UNet checkpoint "
                          f"(first keys: {sorted(sd)[:5]})")
    base = base or sd15_inpainting()
    ucfg = replace(base.model.unet, in_channels=conv_in.shape[1], out_channels=conv_in.shape[1] // 2)
    # extract_ema: diffusers takes the EMA weights when the file has them (its own > 100 model_ema keys test)
    unet_state = convert_ldm_unet_checkpoint(sd, {"layers_per_block": ucfg.layers_per_block, "num_class_embeds": None},
                                             extract_ema=True)
    clip = {k[len(LDM_CLIP):]: v for k, v in sd.items() if k.startswith(LDM_CLIP)}
    if clip:
        vision = clip_vision_weights(clip)
    elif clip_folder is not None:
        vision = load_clip_vision(clip_folder).state_dict()
    else:
        raise GenlabError(f"{path}: no CLIP image encoder inside ({LDM_CLIP}*); pass clip_folder")
    vit = replace(base.model.vit, hidden_size=vision["embeddings.class_embedding"].shape[0])
    cfg = replace(base, model=replace(base.model, latent_channels=ucfg.out_channels, unet=ucfg, vit=vit))
    model = InsertionModel(cfg.model)
    load_diffusers_unet2d_state_dict(model.unet, unet_state)
    load_state_strict(model.ref_encoder, vision, f"CLIP vision ({path})")
    if LDM_UNET + "context_proj_embed.0.weight" in sd:  # the official checkpoint; SD-1.5-inpainting has none
        load_state_strict(model.ref_proj, {f"{k}.{p}": sd[f"{LDM_UNET}{v}.{p}"] for k, v in LDM_PROJECTION.items()
                                           for p in ("weight", "bias")}, f"projection ({path})")
    ae = None
    if any(k.startswith("first_stage_model.") for k in sd):
        from diffusers import AutoencoderKL

        from genlab.core.autoencoders.kl import DiffusersKL

        vae = AutoencoderKL(**ldm_vae_config(sd))
        vae_state = convert_ldm_vae_checkpoint(sd, dict(vae.config))
        load_state_strict(vae, vae_state, f"VAE ({path})")
        ae = DiffusersKL(vae.eval())
    return model.eval(), ae, cfg


__all__ = ["load_pretrained", "load_single_file", "read_checkpoint", "load_diffusers_unet_folder",
           "unet_config_from_diffusers"]
