"""A pretrained SVD / SVD-XT from a local path: the three formats, checked up front, loaded on the meta device.

Formats (`detect_format`):
- "diffusers": a `StableVideoDiffusionPipeline` folder (`model_index.json`, `unet/`, `vae/`, `image_encoder/`,
  optionally `feature_extractor/`), as `save_pretrained` writes it;
- "single_file": the official sgm checkpoint (`svd.safetensors`, `svd_xt.safetensors`): `model.diffusion_model.*`
  (UNet), `first_stage_model.decoder.*` (temporal VAE decoder), `conditioner.embedders.3.encoder.*` (the
  VAE encoder + quant_conv that encodes the conditioning frame), `conditioner.embedders.0.open_clip.model.visual.*`
  (OpenCLIP ViT-H/14); its architecture is not in the file, so it is read with a preset (`svd()` / `svd_xt()`,
  from the file name unless given);
- "genlab": what `genlab video convert --to genlab` writes: `model.safetensors` + `model.json` (the SVDModel, read
  by `sample --weights` and `train --init`), `vae.safetensors` + `.json`, `image_encoder.safetensors` + `.json`,
  `pipeline.json` (this module's `SVDConfig`). Every file goes through core/train's `save_weights`.

Every weights file's safetensors header is checked against its size before anything is built (a truncated
download is one error line naming the file, not a failure minutes later), and the modules are built on the meta
device and filled with `load_state_dict(assign=True)`, so a 1.5B-parameter model is never allocated twice.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

from genlab.core.autoencoders.temporal_decoder import TemporalDecoderConfig, TemporalKL
from genlab.core.nn import temporal
from genlab.core.nn.unet import UNetConfig
from genlab.core.train.checkpoint import safetensors_files, safetensors_header
from genlab.errors import GenlabError
from genlab.systems.video.config import VideoModelConfig
from genlab.systems.video.model import CLIPImageTokens, SVDModel

SGM = {  # part -> prefix in the official single file
    "unet": "model.diffusion_model.",
    "decoder": "first_stage_model.decoder.",
    "encoder": "conditioner.embedders.3.encoder.encoder.",
    "quant_conv": "conditioner.embedders.3.encoder.quant_conv.",
    "first_stage_encoder": "first_stage_model.encoder.",  # a second copy of the encoder (without quant_conv)
    "clip": "conditioner.embedders.0.open_clip.model.visual.",
}


@dataclass(frozen=True)
class CLIPVisionSpec:
    """The CLIP vision tower's shape (transformers `CLIPVisionConfig` fields); default OpenCLIP ViT-H/14."""

    hidden_size: int = 1280
    intermediate_size: int = 5120
    num_hidden_layers: int = 32
    num_attention_heads: int = 16
    patch_size: int = 14
    image_size: int = 224
    projection_dim: int = 1024
    layer_norm_eps: float = 1e-5
    hidden_act: str = "gelu"
    image_mean: tuple[float, ...] = CLIPImageTokens.MEAN
    image_std: tuple[float, ...] = CLIPImageTokens.STD


@dataclass(frozen=True)
class SVDConfig:
    """Everything needed to build the pipeline; `trained_frames` / `resolution` are what the model was trained at."""

    model: VideoModelConfig = field(default_factory=lambda: VideoModelConfig(unet=temporal.svd()))
    vae: TemporalDecoderConfig = field(default_factory=TemporalDecoderConfig)
    clip: CLIPVisionSpec = field(default_factory=CLIPVisionSpec)
    scaling_factor: float = 0.18215
    trained_frames: int = 14
    resolution: tuple[int, int] = (576, 1024)
    name: str = "svd"


def svd() -> SVDConfig:
    """SVD img2vid: 14 frames at 576x1024."""
    return SVDConfig()


def svd_xt() -> SVDConfig:
    """SVD-XT: the same network finetuned for 25 frames."""
    return SVDConfig(model=VideoModelConfig(unet=temporal.svd_xt()), trained_frames=25, name="svd_xt")


@dataclass
class SVDComponents:
    """The loaded pipeline parts (image encoder external to the SVDModel, as in SVD)."""

    config: SVDConfig
    model: SVDModel
    ae: TemporalKL
    clip: CLIPImageTokens
    source: str  # the format it was read from

    def to(self, device=None, dtype: torch.dtype | None = None) -> SVDComponents:
        for m in (self.model, self.ae, self.clip):
            m.to(device=device, dtype=dtype)
        return self


# ----------------------------------------------------------------------------------------------------
# up-front checks


def _weight_files(folder: Path, what: str) -> list[Path]:
    files = safetensors_files(folder, what)
    for f in files:
        safetensors_header(f)
    return files


def _read_json(path: Path, what: str) -> dict:
    if not path.is_file():
        raise GenlabError(f"{path.parent}: no {path.name} ({what})")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise GenlabError(f"{path}: not valid JSON ({err})") from None


def detect_format(path: str | os.PathLike) -> str:
    """'diffusers' | 'single_file' | 'genlab', or one GenlabError saying what the path is instead."""
    path = Path(path)
    if not path.exists():
        raise GenlabError(f"--pretrained {path}: not found (give a diffusers SVD folder, the official "
                          "svd.safetensors / svd_xt.safetensors, or a folder written by `genlab video convert`)")
    if path.is_file():
        if path.suffix != ".safetensors":
            raise GenlabError(f"{path}: only .safetensors single files are read (got {path.suffix or 'no suffix'}; "
                              "pickled .ckpt files are not loaded)")
        return "single_file"
    if (path / "pipeline.json").is_file() and (path / "model.safetensors").is_file():
        return "genlab"
    if (path / "model_index.json").is_file():
        cls = _read_json(path / "model_index.json", "diffusers pipeline index").get("_class_name")
        if cls != "StableVideoDiffusionPipeline":
            raise GenlabError(f"{path}/model_index.json: _class_name is {cls!r}, expected "
                              "'StableVideoDiffusionPipeline' (this is not an SVD folder)")
        return "diffusers"
    if (path / "unet" / "config.json").is_file():
        return "diffusers"
    raise GenlabError(f"{path}: not an SVD folder (no model_index.json, unet/config.json or pipeline.json)")


# ----------------------------------------------------------------------------------------------------
# configs from diffusers' JSON


def config_from_diffusers(folder: Path) -> SVDConfig:
    unet = _read_json(folder / "unet" / "config.json", "the UNet's config")
    if unet.get("_class_name", "UNetSpatioTemporalConditionModel") != "UNetSpatioTemporalConditionModel":
        raise GenlabError(f"{folder}/unet/config.json: _class_name is {unet['_class_name']!r}, expected "
                          "'UNetSpatioTemporalConditionModel'")
    vae = _read_json(folder / "vae" / "config.json", "the VAE's config")
    if vae.get("_class_name", "AutoencoderKLTemporalDecoder") != "AutoencoderKLTemporalDecoder":
        raise GenlabError(f"{folder}/vae/config.json: _class_name is {vae['_class_name']!r}, expected "
                          "'AutoencoderKLTemporalDecoder'")
    clip = _read_json(folder / "image_encoder" / "config.json", "the CLIP image encoder's config")
    n = len(unet["block_out_channels"])
    heads = unet["num_attention_heads"]
    layers = unet.get("transformer_layers_per_block", 1)
    if (layers if isinstance(layers, int) else max(layers)) != 1 or isinstance(unet["layers_per_block"], list):
        raise GenlabError(f"{folder}/unet/config.json: only one transformer layer and one layers_per_block per "
                          "level are supported (SVD's layout)")
    ted = int(unet["addition_time_embed_dim"])
    ucfg = UNetConfig(
        in_channels=unet["in_channels"], out_channels=unet["out_channels"],
        block_out_channels=tuple(unet["block_out_channels"]),
        attention_levels=tuple(t.startswith("CrossAttn") for t in unet["down_block_types"]),
        layers_per_block=unet["layers_per_block"],
        num_heads=tuple(heads) if isinstance(heads, list) else (heads,) * n,
        cross_attention_dim=unet["cross_attention_dim"], use_linear_projection=True,
        addition_time_embed_dim=ted, num_added_ids=int(unet["projection_class_embeddings_input_dim"]) // ted,
        down_attn_resnet_eps=1e-6, up_resnet_eps=1e-6)
    frames = int(unet.get("num_frames", 25))
    model = VideoModelConfig(unet=temporal.VideoUNetConfig(unet=ucfg, num_frames=frames), mode="i2v",
                             latent_channels=unet["out_channels"])
    model.validate()
    vcfg = TemporalDecoderConfig(latent_channels=vae["latent_channels"], out_channels=vae.get("out_channels", 3),
                                 block_out_channels=tuple(vae["block_out_channels"]),
                                 layers_per_block=vae["layers_per_block"])
    fe_path = folder / "feature_extractor" / "preprocessor_config.json"
    fe = _read_json(fe_path, "CLIP preprocessing") if fe_path.is_file() else {}
    spec = CLIPVisionSpec(
        hidden_size=clip["hidden_size"], intermediate_size=clip["intermediate_size"],
        num_hidden_layers=clip["num_hidden_layers"], num_attention_heads=clip["num_attention_heads"],
        patch_size=clip["patch_size"], image_size=clip["image_size"], projection_dim=clip["projection_dim"],
        layer_norm_eps=clip.get("layer_norm_eps", 1e-5), hidden_act=clip.get("hidden_act", "gelu"),
        image_mean=tuple(fe.get("image_mean", CLIPImageTokens.MEAN)),
        image_std=tuple(fe.get("image_std", CLIPImageTokens.STD)))
    return SVDConfig(model=model, vae=vcfg, clip=spec, scaling_factor=float(vae.get("scaling_factor", 0.18215)),
                     trained_frames=frames, resolution=(576, 1024), name="svd_xt" if frames == 25 else "svd")


def diffusers_configs(cfg: SVDConfig) -> dict[str, dict]:
    """SVDConfig -> the JSON configs of a diffusers SVD folder (inverse of `config_from_diffusers`)."""
    u = cfg.model.unet.unet
    n = len(u.block_out_channels)
    down = ["CrossAttnDownBlockSpatioTemporal" if a else "DownBlockSpatioTemporal" for a in u.attention_levels]
    up = ["CrossAttnUpBlockSpatioTemporal" if a else "UpBlockSpatioTemporal" for a in reversed(u.attention_levels)]
    unet = {"_class_name": "UNetSpatioTemporalConditionModel", "sample_size": cfg.resolution[0] // 8,
            "in_channels": u.in_channels, "out_channels": u.out_channels, "down_block_types": down,
            "up_block_types": up, "block_out_channels": list(u.block_out_channels),
            "addition_time_embed_dim": u.addition_time_embed_dim,
            "projection_class_embeddings_input_dim": u.addition_time_embed_dim * u.num_added_ids,
            "layers_per_block": u.layers_per_block, "cross_attention_dim": u.cross_attention_dim,
            "transformer_layers_per_block": 1, "num_attention_heads": list(u.num_heads) if n else [],
            "num_frames": cfg.trained_frames}
    v = cfg.vae
    vae = {"_class_name": "AutoencoderKLTemporalDecoder", "in_channels": 3, "out_channels": v.out_channels,
           "down_block_types": ["DownEncoderBlock2D"] * len(v.block_out_channels),
           "block_out_channels": list(v.block_out_channels), "layers_per_block": v.layers_per_block,
           "latent_channels": v.latent_channels, "sample_size": 768, "scaling_factor": cfg.scaling_factor,
           "force_upcast": True}
    c = cfg.clip
    clip = {"architectures": ["CLIPVisionModelWithProjection"], "model_type": "clip_vision_model",
            "hidden_size": c.hidden_size, "intermediate_size": c.intermediate_size,
            "num_hidden_layers": c.num_hidden_layers, "num_attention_heads": c.num_attention_heads,
            "patch_size": c.patch_size, "image_size": c.image_size, "projection_dim": c.projection_dim,
            "layer_norm_eps": c.layer_norm_eps, "hidden_act": c.hidden_act, "num_channels": 3}
    fe = {"image_processor_type": "CLIPImageProcessor", "crop_size": {"height": c.image_size, "width": c.image_size},
          "size": {"shortest_edge": c.image_size}, "do_center_crop": True, "do_normalize": True,
          "do_resize": True, "do_rescale": True, "rescale_factor": 1 / 255, "resample": 3,
          "image_mean": list(c.image_mean), "image_std": list(c.image_std)}
    index = {"_class_name": "StableVideoDiffusionPipeline", "feature_extractor": ["transformers", "CLIPImageProcessor"],
             "image_encoder": ["transformers", "CLIPVisionModelWithProjection"],
             "scheduler": ["diffusers", "EulerDiscreteScheduler"],
             "unet": ["diffusers", "UNetSpatioTemporalConditionModel"],
             "vae": ["diffusers", "AutoencoderKLTemporalDecoder"]}
    scheduler = {"_class_name": "EulerDiscreteScheduler", "beta_schedule": "scaled_linear", "beta_start": 0.00085,
                 "beta_end": 0.012, "num_train_timesteps": 1000, "prediction_type": "v_prediction",
                 "interpolation_type": "linear", "sigma_max": 700.0, "sigma_min": 0.002, "steps_offset": 1,
                 "timestep_spacing": "leading", "timestep_type": "continuous", "use_karras_sigmas": True,
                 "set_alpha_to_one": False, "skip_prk_steps": True}
    return {"model_index.json": index, "unet/config.json": unet, "vae/config.json": vae,
            "image_encoder/config.json": clip, "feature_extractor/preprocessor_config.json": fe,
            "scheduler/scheduler_config.json": scheduler}


# ----------------------------------------------------------------------------------------------------
# building and loading


def _clip_module(spec: CLIPVisionSpec):
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    fields = {k: getattr(spec, k) for k in ("hidden_size", "intermediate_size", "num_hidden_layers",
                                            "num_attention_heads", "patch_size", "image_size", "projection_dim",
                                            "layer_norm_eps", "hidden_act")}
    return CLIPVisionModelWithProjection(CLIPVisionConfig(**fields)).eval()


def _fill_position_ids(module: torch.nn.Module) -> None:
    """transformers' non-persistent `position_ids` buffer (arange) is left on the meta device by a meta build."""
    for name, buf in list(module.named_buffers()):
        if not buf.is_meta:
            continue
        if not name.endswith("position_ids"):
            raise GenlabError(f"CLIP image encoder: buffer {name} has no value after loading")
        owner, leaf = module.get_submodule(name.rsplit(".", 1)[0]), name.rsplit(".", 1)[1]
        owner.register_buffer(leaf, torch.arange(buf.shape[-1]).expand(buf.shape).clone(), persistent=False)


def _assign(module: torch.nn.Module, sd: dict[str, torch.Tensor], what: str, source) -> None:
    """Load with every unmapped, missing or mis-shaped key named (transformers' position_ids buffer aside)."""
    own = {k: v for k, v in module.state_dict().items() if not k.endswith("position_ids")}
    sd = {k: v for k, v in sd.items() if not k.endswith("position_ids")}
    unmapped, missing = sorted(set(sd) - set(own)), sorted(set(own) - set(sd))
    if unmapped or missing:
        raise GenlabError(f"{source}: {what}: {len(unmapped)} unmapped keys {unmapped[:6]}, "
                          f"{len(missing)} missing {missing[:6]}")
    bad = [k for k, v in sd.items() if tuple(v.shape) != tuple(own[k].shape)]
    if bad:
        k = bad[0]
        raise GenlabError(f"{source}: {what}: {k} has shape {tuple(sd[k].shape)}, the config expects "
                          f"{tuple(own[k].shape)} ({len(bad)} mismatched)")
    module.load_state_dict(sd, strict=False, assign=True)


def build(cfg: SVDConfig, parts: dict[str, dict[str, torch.Tensor]], source: str | os.PathLike,
          fmt: str) -> SVDComponents:
    """Our modules from genlab-named state dicts: parts['model'] (SVDModel), ['vae'] (TemporalKL.build),
    ['image_encoder'] (transformers CLIP names)."""
    with torch.device("meta"):
        model = SVDModel(cfg.model)
        ae = TemporalKL.build(cfg.vae, cfg.scaling_factor)
    _assign(model, parts["model"], "UNet", source)
    _assign(ae, parts["vae"], "VAE", source)
    with torch.device("meta"):
        enc = _clip_module(cfg.clip)
    _assign(enc, parts["image_encoder"], "CLIP image encoder", source)
    _fill_position_ids(enc)
    clip = CLIPImageTokens(enc, cfg.clip.image_size, cfg.clip.image_mean, cfg.clip.image_std)
    return SVDComponents(cfg, model.eval(), ae.eval(), clip.eval(), fmt)


def _load_files(files: list[Path]) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    out: dict[str, torch.Tensor] = {}
    for f in files:
        out.update(load_file(str(f)))
    return out


def _diffusers_parts(folder: Path) -> dict[str, dict[str, torch.Tensor]]:
    files = {part: _weight_files(folder / part, f"SVD {part}") for part in ("unet", "vae", "image_encoder")}
    unet = {k: v for k, v in _load_files(files["unet"]).items() if not k.endswith("to_out.1.weight")}
    vae = {("encoder." + k if k.startswith("quant_conv.") else k): v for k, v in _load_files(files["vae"]).items()}
    return {"model": {"unet." + k: v for k, v in unet.items()}, "vae": vae,
            "image_encoder": _load_files(files["image_encoder"])}


def _genlab_parts(folder: Path) -> tuple[SVDConfig, dict[str, dict[str, torch.Tensor]]]:
    from genlab.core.train import config_from_dict

    cfg = config_from_dict(SVDConfig, _read_json(folder / "pipeline.json", "the pipeline config"),
                           str(folder / "pipeline.json"))
    parts = {}
    for part in ("model", "vae", "image_encoder"):
        f = folder / f"{part}.safetensors"
        if not f.is_file():
            raise GenlabError(f"{folder}: no {f.name} (a genlab SVD folder has model, vae and image_encoder)")
        safetensors_header(f)
        parts[part] = _load_files([f])
    return cfg, parts


def preset_for_file(path: Path) -> SVDConfig:
    return svd_xt() if re.search(r"xt", path.name, re.IGNORECASE) else svd()


def check_single_file(path: Path, cfg: SVDConfig) -> dict[str, tuple[str, tuple[int, ...]]]:
    """The header of an official single file, checked to be SVD-shaped before any tensor is read."""
    header = safetensors_header(path)
    key = SGM["unet"] + "input_blocks.0.0.weight"
    if key not in header:
        raise GenlabError(f"{path}: no {key}: not an sgm / SVD single file")
    if not any(".time_stack." in k for k in header if k.startswith(SGM["unet"])):
        raise GenlabError(f"{path}: the UNet has no temporal layers (time_stack): an image model, not SVD")
    got = header[key][1][1]
    if got != cfg.model.unet.unet.in_channels:
        raise GenlabError(f"{path}: UNet input has {got} channels, {cfg.name} expects "
                          f"{cfg.model.unet.unet.in_channels} (image-to-video)")
    for part in ("decoder", "encoder", "quant_conv", "clip"):
        if not any(k.startswith(SGM[part]) for k in header):
            raise GenlabError(f"{path}: no {SGM[part]}* tensors: the single file lacks the {part}")
    return header


# keys of the official file that sampling does not use: the second encoder copy, the conditioning autoencoder's
# decoder and post_quant_conv, and what is left of OpenCLIP's text tower
SGM_UNUSED = ("first_stage_model.encoder.", "conditioner.embedders.3.encoder.decoder.",
              "conditioner.embedders.3.encoder.post_quant_conv.", "conditioner.embedders.0.open_clip.model.")


def single_file_parts(sd: dict[str, torch.Tensor], cfg: SVDConfig, source) -> dict[str, dict[str, torch.Tensor]]:
    """sgm names -> our parts. Keys under `SGM_UNUSED` are skipped; any other key that maps nowhere is an error."""
    from genlab.systems.video import convert

    n = len(cfg.vae.block_out_channels)
    unet = convert.convert_sgm_unet({k: v for k, v in sd.items() if k.startswith(SGM["unet"])}, cfg.model.unet)
    vae, clip_sd, unmapped = {}, {}, []
    for k, v in sd.items():
        if k.startswith(SGM["unet"]):
            continue
        if k.startswith(SGM["quant_conv"]):
            vae["encoder.quant_conv." + k[len(SGM["quant_conv"]):]] = v
        elif k.startswith(SGM["clip"]):
            clip_sd[k[len(SGM["clip"]):]] = v
        elif k.startswith((SGM["decoder"], SGM["encoder"])):
            part = "decoder" if k.startswith(SGM["decoder"]) else "encoder"
            ours = convert.ldm_vae_key_to_ours(k[len(SGM[part]):], n, part)
            if ours is None:
                unmapped.append(k)
            else:
                vae[f"{part}.{ours}"] = convert.attn_conv_to_linear(ours, v)
        elif not k.startswith(SGM_UNUSED):
            unmapped.append(k)
    clip, clip_unmapped = convert.open_clip_visual_to_transformers(clip_sd)
    unmapped += [SGM["clip"] + k for k in clip_unmapped]
    if unmapped:
        raise GenlabError(f"{source}: {len(unmapped)} unmapped keys {sorted(unmapped)[:6]}")
    return {"model": {"unet." + k: v for k, v in unet.items()}, "vae": vae, "image_encoder": clip}


def meta_parts(cfg: SVDConfig) -> dict[str, dict[str, torch.Tensor]]:
    """The state dicts our modules expect for `cfg`, as meta tensors (names and shapes, no memory)."""
    with torch.device("meta"):
        model = SVDModel(cfg.model)
        ae = TemporalKL.build(cfg.vae, cfg.scaling_factor)
        clip = _clip_module(cfg.clip)
    return {"model": model.state_dict(), "vae": ae.state_dict(),
            "image_encoder": {k: v for k, v in clip.state_dict().items() if not k.endswith("position_ids")}}


def load(path: str | os.PathLike, config: SVDConfig | None = None, device=None,
         dtype: torch.dtype | None = None) -> SVDComponents:
    """The pipeline parts from a diffusers folder, the official single file or a genlab folder (local only).

    `config` is used for single files (default: svd(), or svd_xt() when the file name says xt)."""
    path = Path(path)
    fmt = detect_format(path)
    if fmt == "diffusers":
        cfg = config_from_diffusers(path)
        parts = _diffusers_parts(path)
    elif fmt == "genlab":
        cfg, parts = _genlab_parts(path)
    else:
        cfg = config or preset_for_file(path)
        check_single_file(path, cfg)
        parts = single_file_parts(_load_files([path]), cfg, path)
    out = build(cfg, parts, path, fmt)
    return out.to(device=device, dtype=dtype) if device is not None or dtype is not None else out


# ----------------------------------------------------------------------------------------------------
# writing the three formats (all through core/train's save_weights, folders under a temporary name)


def genlab_parts(c: SVDComponents) -> dict[str, dict[str, torch.Tensor]]:
    return {"model": c.model.state_dict(), "vae": c.ae.state_dict(),
            "image_encoder": {k: v for k, v in c.clip.encoder.state_dict().items()
                              if k != "vision_model.embeddings.position_ids"}}


def to_single_file(parts: dict[str, dict[str, torch.Tensor]], cfg: SVDConfig) -> dict[str, torch.Tensor]:
    """Our parts (`genlab_parts`) -> sgm names. The encoder is written twice, as in the official file; the keys
    under `SGM_UNUSED` other than that copy are not written (sgm loads its checkpoints with strict=False)."""
    from genlab.systems.video import convert

    n = len(cfg.vae.block_out_channels)
    out = {}
    for k, v in parts["model"].items():
        out[SGM["unet"] + _must(convert.ours_key_to_sgm(k[len("unet."):], cfg.model.unet), k)] = v
    for k, v in parts["vae"].items():
        part, rest = k.split(".", 1)
        if part == "encoder" and rest.startswith("quant_conv."):
            out[SGM["quant_conv"] + rest[len("quant_conv."):]] = v
            continue
        name = _must(convert.ours_vae_key_to_ldm(rest, n, part), k)
        v = convert.linear_to_attn_conv(name, v)
        if part == "encoder":
            out[SGM["encoder"] + name] = v
            out[SGM["first_stage_encoder"] + name] = v
        else:
            out[SGM["decoder"] + name] = v
    for k, v in convert.transformers_to_open_clip_visual(parts["image_encoder"]).items():
        out[SGM["clip"] + k] = v
    return out


def _must(name: str | None, key: str) -> str:
    if name is None:
        raise GenlabError(f"no sgm name for {key}")
    return name


def to_diffusers(c: SVDComponents) -> dict[str, dict[str, torch.Tensor]]:
    vae = {(k[len("encoder."):] if k.startswith("encoder.quant_conv.") else k): v for k, v in c.ae.state_dict().items()}
    return {"unet": {k[len("unet."):]: v for k, v in c.model.state_dict().items()}, "vae": vae,
            "image_encoder": genlab_parts(c)["image_encoder"]}


def save(c: SVDComponents, out: str | os.PathLike, fmt: str) -> Path:
    """Write `c` as 'genlab' (folder), 'diffusers' (folder) or 'single_file' (one .safetensors)."""
    import shutil
    import tempfile

    from genlab.core.io import atomic_write_text
    from genlab.core.train import config_to_dict, save_weights

    out = Path(out)
    if fmt == "single_file":
        if out.suffix != ".safetensors":
            raise GenlabError(f"--out {out}: a single file must end in .safetensors")
        save_weights(out, to_single_file(genlab_parts(c), c.config))
        return out
    if fmt not in ("genlab", "diffusers"):
        raise GenlabError(f"--to must be genlab, diffusers or single_file, got {fmt!r}")
    if out.exists():
        raise GenlabError(f"--out {out}: exists; give a new folder name")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        if fmt == "genlab":
            parts = genlab_parts(c)
            save_weights(tmp / "model.safetensors", parts["model"], c.config.model)
            save_weights(tmp / "vae.safetensors", parts["vae"], c.config.vae)
            save_weights(tmp / "image_encoder.safetensors", parts["image_encoder"], c.config.clip)
            atomic_write_text(tmp / "pipeline.json", json.dumps(config_to_dict(c.config), indent=1) + "\n")
        else:
            for name, text in diffusers_configs(c.config).items():
                atomic_write_text(tmp / name, json.dumps(text, indent=1) + "\n")
            names = {"unet": "diffusion_pytorch_model", "vae": "diffusion_pytorch_model", "image_encoder": "model"}
            for part, sd in to_diffusers(c).items():
                save_weights(tmp / part / f"{names[part]}.safetensors", sd)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return out

