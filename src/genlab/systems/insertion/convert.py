"""Real weights from local paths only -> one `InsertionPipeline` (UNet + CLIP image encoder + reference
projection + SD's KL-VAE, with `.config`). Unmatched keys are listed in the error; nothing downloads.

- `load_pipeline(path)`: the one entry for `--weights`: a genlab run, a diffusers-style folder or one file.
- `load_pretrained`: a diffusers-style folder: `unet/` (SD-1.5-inpainting layout, 9 input channels),
  `vae/`, `image_encoder/` (transformers CLIP vision) and `projection.safetensors` (fc1/fc2, the
  Linear-SiLU-Linear 1024 -> 768 that the paper trains); each part may come from its own path.
- `load_single_file`: one LDM-layout checkpoint (.safetensors, or a .ckpt read with
  `torch.load(weights_only=True)` and a two-name Lightning allow-list), i.e. the official
  affordance-insertion checkpoint or SD-1.5-inpainting's single file: `model.diffusion_model.*` (EMA
  weights when the file has them), `first_stage_model.*` (the VAE), `cond_stage_model.transformer.*`
  (CLIP, else from `clip_folder`) and the official UNet's `context_proj_embed.{0,2}` (our projection's
  fc1/fc2). The LDM -> diffusers renaming is diffusers' own (`loaders.single_file_utils`).

Real weights resize the mask to latent size with nearest interpolation (`ModelConfig.mask_resize`), as
the official model was trained; the scene is not pasted back unless asked (`SampleSettings.composite`)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from genlab.core.nn.unet import UNetConfig, load_diffusers_unet2d_state_dict
from genlab.errors import GenlabError
from genlab.systems.insertion.config import InsertionConfig, sd15_inpainting
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


def check_unet_channels(in_channels: int, out_channels: int, source: str) -> int:
    """C from an insertion UNet's 2C+1 -> C; a text-to-image UNet (C -> C) is one clear error."""
    c = (in_channels - 1) // 2
    if in_channels != 2 * c + 1 or out_channels != c:
        raise GenlabError(f"{source}: an insertion UNet takes 2C+1 input channels (noisy latent, masked-scene latent, "
                          f"mask) and gives C, got {in_channels} -> {out_channels} (SD-1.5-inpainting and the "
                          "official model have 9 -> 4; a text-to-image UNet cannot insert people)")
    return c


def load_pretrained(folder: str | Path, clip_folder: str | Path | None = None, vae_folder: str | Path | None = None,
                    projection: str | Path | None = None, base: InsertionConfig | None = None,
                    untrained_projection: bool = False):
    """`InsertionPipeline` (UNet + CLIP + projection + VAE) from a local diffusers-style folder:
    `unet/` (SD-inpainting layout, 2C+1 inputs), `vae/` (AutoencoderKL), `image_encoder/` (transformers
    CLIP vision) and `projection.safetensors` (fc1/fc2, the part the paper trains). Each part may come
    from its own path instead. Nothing is downloaded. Without a projection file the projection is
    freshly initialised only if `untrained_projection` (the start of fine-tuning); otherwise an error."""
    from genlab.core.autoencoders.kl import DiffusersKL
    from genlab.core.train import load_weights
    from genlab.systems.insertion.pipeline import InsertionPipeline

    folder = Path(folder)
    if not folder.is_dir():
        raise GenlabError(f"weights folder {folder} not found")
    ucfg, ustate = load_diffusers_unet_folder(folder)
    c = check_unet_channels(ucfg.in_channels, ucfg.out_channels, f"{folder} (unet/config.json)")
    clip_folder = Path(clip_folder) if clip_folder is not None else folder / "image_encoder"
    vae_folder = Path(vae_folder) if vae_folder is not None else folder / "vae"
    for what, path in (("CLIP image encoder", clip_folder), ("VAE", vae_folder)):
        if not (path / "config.json").is_file():
            raise GenlabError(f"{what}: no config.json in {path} (a diffusers-style folder has unet/, vae/, "
                              "image_encoder/ and projection.safetensors)")
    projection = Path(projection) if projection is not None else folder / "projection.safetensors"
    if not projection.is_file() and not untrained_projection:
        raise GenlabError(f"projection: {projection} not found (the reference projection fc1/fc2 that the paper "
                          "trains; without it the person is ignored)")
    clip = load_clip_vision(clip_folder)
    base = base or sd15_inpainting()
    cfg = replace(base, ref_size=clip.config.image_size,
                  model=replace(base.model, latent_channels=c, unet=ucfg, vit=clip.config, train_encoder=False,
                                space="latent", mask_resize="nearest"))
    model = InsertionModel(cfg.model)
    load_diffusers_unet2d_state_dict(model.unet, ustate)
    model.ref_encoder.load_state_dict(clip.state_dict())
    if projection.is_file():
        load_state_strict(model.ref_proj, load_weights(projection)[0], f"projection {projection}")
    ae = DiffusersKL.from_local(vae_folder)
    check_latent_channels(ae.latent_channels, c, str(vae_folder))
    return InsertionPipeline(model.eval(), ae, cfg.ref_size, config=cfg)


def check_latent_channels(vae_channels: int, unet_channels: int, source: str) -> None:
    if vae_channels != unet_channels:
        raise GenlabError(f"{source}: the VAE has {vae_channels} latent channels, the UNet expects {unet_channels}")


def load_pipeline(path: str | Path):
    """The one entry for `--weights PATH`: a genlab run folder (model.safetensors), a diffusers-style
    folder (unet/, vae/, image_encoder/, projection.safetensors) or one LDM-layout file (.ckpt or
    .safetensors: the official checkpoint). Returns an `InsertionPipeline` with `.config`."""
    path = Path(path)
    if path.is_dir() and (path / "model.safetensors").is_file():
        from genlab.systems.insertion.pipeline import InsertionPipeline
        from genlab.systems.insertion.train import load_model

        model, ae, cfg = load_model(path)
        pipe = InsertionPipeline(model, ae, cfg.ref_size, config=cfg)
    elif path.is_dir():
        if not (path / "unet").is_dir() and not (path / "config.json").is_file():
            raise GenlabError(f"--weights {path}: neither a genlab run (model.safetensors) nor a diffusers-style "
                              "folder (unet/, vae/, image_encoder/, projection.safetensors)")
        pipe = load_pretrained(path)
    elif path.is_file():
        if path.suffix not in (".ckpt", ".safetensors", ".pt", ".pth"):
            raise GenlabError(f"--weights {path}: expected a .ckpt or .safetensors checkpoint, a diffusers-style "
                              f"folder or a genlab run folder, got a {path.suffix or 'suffix-less'} file")
        pipe = load_single_file(path)
    else:
        raise GenlabError(f"--weights {path} not found")
    return pipe


LDM_UNET = "model.diffusion_model."
LDM_PROJECTION = {"fc1": "context_proj_embed.0", "fc2": "context_proj_embed.2"}
LDM_CLIP = "cond_stage_model.transformer."


# Non-tensor objects a Lightning `.ckpt` may pickle besides its state dict (SD-1.x's and the official
# checkpoint's `callbacks`). They are rebuilt as inert stand-ins; anything else is refused.
class _LightningObject:
    """An allow-listed Lightning object from a `.ckpt`: its state is kept, no code is run."""


CKPT_ALLOWED = ("pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint",
                "lightning.pytorch.callbacks.model_checkpoint.ModelCheckpoint")


def conversion_hint(path: Path) -> str:
    return (f"convert it to safetensors once, on a machine where you trust the file: read it with "
            f"torch.load('{path}', weights_only=False), take its 'state_dict', and write the tensors with "
            f"safetensors.torch.save_file to {path.with_suffix('.safetensors')} (then pass that file)")


def read_checkpoint(path: str | Path) -> dict:
    """A single-file state dict: safetensors, or a torch pickle loaded with `weights_only=True` that may
    hold only tensors, plain containers and the Lightning types in `CKPT_ALLOWED` (Lightning's
    `state_dict` is taken). Anything else is refused with a line saying how to convert the file."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise GenlabError(f"checkpoint {path} not found")
    if path.suffix == ".safetensors":
        from genlab.core.train import load_weights

        return load_weights(path)[0]
    try:
        with torch.serialization.safe_globals([(_LightningObject, name) for name in CKPT_ALLOWED]):
            raw = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling failure is one clear error
        unsafe = _unsafe_globals(path)
        if unsafe:
            raise GenlabError(f"checkpoint {path}: holds pickled objects genlab does not load ({', '.join(unsafe[:4])}); "
                              + conversion_hint(path)) from None
        raise GenlabError(f"checkpoint {path}: not a readable torch checkpoint ({type(err).__name__}: "
                          f"{str(err).splitlines()[0][:200]})") from None
    state = raw.get("state_dict", raw) if isinstance(raw, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise GenlabError(f"checkpoint {path}: expected a state dict of tensors (or a Lightning checkpoint with "
                          f"`state_dict`), got {type(raw).__name__}; " + conversion_hint(path))
    return state


def _unsafe_globals(path: Path) -> list[str]:
    """The pickled globals `torch.load(weights_only=True)` would refuse (our allow-list excluded)."""
    import torch

    try:
        found = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    except Exception:  # noqa: BLE001 - not a torch zip file at all
        return []
    return [g for g in found if g not in CKPT_ALLOWED]


def ldm_vae_config(sd: dict) -> dict:
    """diffusers AutoencoderKL arguments read off an LDM KL-VAE's shapes (SD's: 128/256/512/512, 2 blocks, 4 ch)."""
    enc = "first_stage_model.encoder."
    levels = sorted({int(k[len(enc + "down."):].split(".")[0]) for k in sd if k.startswith(enc + "down.")})
    blocks = {int(k[len(enc + "down.0.block."):].split(".")[0]) for k in sd if k.startswith(enc + "down.0.block.")}
    n = len(levels)
    return dict(down_block_types=("DownEncoderBlock2D",) * n, up_block_types=("UpDecoderBlock2D",) * n,
                block_out_channels=tuple(sd[f"{enc}down.{i}.block.0.conv1.weight"].shape[0] for i in levels),
                layers_per_block=len(blocks), latent_channels=sd["first_stage_model.quant_conv.weight"].shape[0] // 2)


def load_single_file(path: str | Path, clip_folder: str | Path | None = None, vae_folder: str | Path | None = None,
                     base: InsertionConfig | None = None, untrained_projection: bool = False):
    """`InsertionPipeline` (UNet + CLIP + projection + VAE, `.config`) from one LDM-layout checkpoint; the
    CLIP and VAE come from the file, or from `clip_folder` / `vae_folder` when it has none."""
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint, convert_ldm_vae_checkpoint

    from genlab.core.nn.unet import load_diffusers_unet2d_state_dict

    sd = read_checkpoint(path)
    conv_in = sd.get(LDM_UNET + "input_blocks.0.0.weight")
    if conv_in is None:
        raise GenlabError(f"{path}: no {LDM_UNET}input_blocks.0.0.weight: not an SD/LDM single-file UNet checkpoint "
                          f"(first keys: {sorted(sd)[:5]})")
    base = base or sd15_inpainting()
    conv_out = sd.get(LDM_UNET + "out.2.weight")
    c = check_unet_channels(conv_in.shape[1], conv_out.shape[0] if conv_out is not None else -1,
                            f"{path} ({LDM_UNET}input_blocks.0.0)")
    ucfg = replace(base.model.unet, in_channels=2 * c + 1, out_channels=c)
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
    cfg = replace(base, model=replace(base.model, latent_channels=c, unet=ucfg, vit=vit))
    model = InsertionModel(cfg.model)
    load_diffusers_unet2d_state_dict(model.unet, unet_state)
    load_state_strict(model.ref_encoder, vision, f"CLIP vision ({path})")
    if LDM_UNET + "context_proj_embed.0.weight" not in sd and not untrained_projection:
        raise GenlabError(f"{path}: no reference projection ({LDM_UNET}context_proj_embed.*): an SD-inpainting "
                          "file, not the affordance-insertion checkpoint; the person would be ignored")
    if LDM_UNET + "context_proj_embed.0.weight" in sd:  # the official checkpoint; SD-1.5-inpainting has none
        load_state_strict(model.ref_proj, {f"{k}.{p}": sd[f"{LDM_UNET}{v}.{p}"] for k, v in LDM_PROJECTION.items()
                                           for p in ("weight", "bias")}, f"projection ({path})")
    from genlab.core.autoencoders.kl import DiffusersKL
    from genlab.systems.insertion.pipeline import InsertionPipeline

    if any(k.startswith("first_stage_model.") for k in sd):
        from diffusers import AutoencoderKL

        vae = AutoencoderKL(**ldm_vae_config(sd))
        vae_state = convert_ldm_vae_checkpoint(sd, dict(vae.config))
        load_state_strict(vae, vae_state, f"VAE ({path})")
        ae = DiffusersKL(vae.eval())
    elif vae_folder is not None:
        ae = DiffusersKL.from_local(vae_folder)
    else:
        raise GenlabError(f"{path}: no VAE inside (first_stage_model.*); pass vae_folder (a diffusers VAE folder)")
    check_latent_channels(ae.latent_channels, c, str(path))
    cfg = replace(cfg, ref_size=vit.image_size, model=replace(cfg.model, mask_resize="nearest"))
    return InsertionPipeline(model.eval(), ae, cfg.ref_size, config=cfg)


__all__ = ["load_pipeline", "load_pretrained", "load_single_file", "read_checkpoint", "load_diffusers_unet_folder",
           "unet_config_from_diffusers", "check_unet_channels", "conversion_hint"]
