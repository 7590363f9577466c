"""Load real SVD weights from a local path: sgm single-file checkpoints and diffusers folders.

Our module names are diffusers' (`UNetSpatioTemporalConditionModel`), so a diffusers folder loads
directly; sgm's `VideoUNet` names (`model.diffusion_model.input_blocks.1.0.time_stack.in_layers.2.weight`)
are mapped block by block as in SD's converter:

    input_blocks.0.0            -> conv_in
    input_blocks.{1 + b(L+1) + l}.0 / .1   -> down_blocks.b.resnets.l / attentions.l
    input_blocks.{1 + b(L+1) + L}.0.op     -> down_blocks.b.downsamplers.0.conv
    middle_block.0 / 1 / 2      -> mid_block.resnets.0 / attentions.0 / resnets.1
    output_blocks.{b(L+1) + l}.0 / .1      -> up_blocks.b.resnets.l / attentions.l
    output_blocks.{b(L+1) + L}.{1|2}.conv -> up_blocks.b.upsamplers.0.conv
    time_embed.0/2, label_emb.0.0/0.2, out.0/2 -> time_embedding, add_embedding, conv_norm_out/conv_out
ResBlock inner names: in_layers.0/2 -> norm1/conv1, emb_layers.1 -> time_emb_proj, out_layers.0/3 ->
norm2/conv2, skip_connection -> conv_shortcut; its `time_stack` -> temporal_res_block, `time_mixer` kept.
Transformer: `time_stack.k` -> temporal_transformer_blocks.k, `time_pos_embed.0/2` -> linear_1/2.
Every key that maps nowhere, and every parameter left without a value, is reported by name.
"""

from __future__ import annotations

import functools
import json
import os
import re
from pathlib import Path

import torch

from genlab.core.nn.temporal import VideoUNetConfig
from genlab.errors import GenlabError

SGM_PREFIX = "model.diffusion_model."

# One table drives both directions: `_unet_table(config)` lists every block as (sgm prefix, our prefix, inner
# pairs), each inner pair (sgm, ours) a prefix of the rest of the key. A key maps through the first block whose
# prefix it starts with and that block's first inner pair that fits; anything else maps to None.
_RES_PAIRS = (("in_layers.0.", "norm1."), ("in_layers.2.", "conv1."), ("emb_layers.1.", "time_emb_proj."),
              ("out_layers.0.", "norm2."), ("out_layers.3.", "conv2."), ("skip_connection.", "conv_shortcut."))
_VIDEO_RES = (*((a, "spatial_res_block." + b) for a, b in _RES_PAIRS),
              *(("time_stack." + a, "temporal_res_block." + b) for a, b in _RES_PAIRS),
              ("time_mixer.", "time_mixer."))
_UNET_ATTN = (("time_stack.", "temporal_transformer_blocks."), ("time_pos_embed.0.", "time_pos_embed.linear_1."),
         ("time_pos_embed.2.", "time_pos_embed.linear_2."),
         *((k, k) for k in ("norm.", "proj_in.", "proj_out.", "transformer_blocks.", "time_mixer.")))
_WHOLE = (("", ""),)
_FIXED = (("time_embed.0.", "time_embedding.linear_1."), ("time_embed.2.", "time_embedding.linear_2."),
          ("label_emb.0.0.", "add_embedding.linear_1."), ("label_emb.0.2.", "add_embedding.linear_2."),
          ("out.0.", "conv_norm_out."), ("out.2.", "conv_out."), ("input_blocks.0.0.", "conv_in."))


@functools.lru_cache(maxsize=8)
def _unet_table(config: VideoUNetConfig, video: bool) -> tuple[tuple[str, str, tuple[tuple[str, str], ...]], ...]:
    """(sgm block prefix, our block prefix, inner pairs) for every block of the UNet (see the module docstring)."""
    u = config.unet
    n, L = len(u.block_out_channels), u.layers_per_block
    res = _VIDEO_RES if video else _RES_PAIRS
    rows = [(a, b, _WHOLE) for a, b in _FIXED]
    for b in range(n):
        for l in range(L):
            i = 1 + b * (L + 1) + l
            rows.append((f"input_blocks.{i}.0.", f"down_blocks.{b}.resnets.{l}.", res))
            if u.attention_levels[b]:
                rows.append((f"input_blocks.{i}.1.", f"down_blocks.{b}.attentions.{l}.", _UNET_ATTN))
        if b < n - 1:
            rows.append((f"input_blocks.{1 + b * (L + 1) + L}.0.", f"down_blocks.{b}.downsamplers.0.", (("op.", "conv."),)))
    rows += [("middle_block.0.", "mid_block.resnets.0.", res), ("middle_block.1.", "mid_block.attentions.0.", _UNET_ATTN),
             ("middle_block.2.", "mid_block.resnets.1.", res)]
    up_attn = list(reversed(u.attention_levels))
    for b in range(n):
        for l in range(L + 1):
            rows.append((f"output_blocks.{b * (L + 1) + l}.0.", f"up_blocks.{b}.resnets.{l}.", res))
            if up_attn[b]:
                rows.append((f"output_blocks.{b * (L + 1) + l}.1.", f"up_blocks.{b}.attentions.{l}.", _UNET_ATTN))
        if b < n - 1:
            rows.append((f"output_blocks.{b * (L + 1) + L}.{2 if up_attn[b] else 1}.", f"up_blocks.{b}.upsamplers.0.",
                         (("conv.", "conv."),)))
    return tuple(rows)


def _translate(key: str, config: VideoUNetConfig, video: bool, src: int) -> str | None:
    dst = 1 - src
    for row in _unet_table(config, video):
        if key.startswith(row[src]):
            rest = key[len(row[src]):]
            for pair in row[2]:
                if rest.startswith(pair[src]):
                    return row[dst] + pair[dst] + rest[len(pair[src]):]
            return None
    return None


def sgm_key_to_ours(key: str, config: VideoUNetConfig, video: bool = True) -> str | None:
    """Map one sgm UNet key (without the `model.diffusion_model.` prefix) to our name, or None."""
    return _translate(key, config, video, 0)


def ours_key_to_sgm(key: str, config: VideoUNetConfig, video: bool = True) -> str | None:
    """Map one of our VideoUNet keys to its sgm name (without `model.diffusion_model.`), or None (the inverse
    of `sgm_key_to_ours`, from the same table)."""
    return _translate(key, config, video, 1)


def convert_sgm_unet(state_dict: dict[str, torch.Tensor], config: VideoUNetConfig,
                     own_keys: set[str] | None = None, video: bool = True) -> dict[str, torch.Tensor]:
    """sgm state dict (full checkpoint or UNet only) -> our VideoUNet state dict; raises naming unmapped keys."""
    unet_keys = {k: v for k, v in state_dict.items() if k.startswith(SGM_PREFIX)}
    if not unet_keys:  # a bare UNet state dict
        unet_keys = {SGM_PREFIX + k: v for k, v in state_dict.items()}
    out, unmapped = {}, []
    for k, v in unet_keys.items():
        ours = sgm_key_to_ours(k[len(SGM_PREFIX):], config, video)
        if ours is None or (own_keys is not None and ours not in own_keys):
            unmapped.append(k)
        else:
            out[ours] = v
    missing = sorted(own_keys - set(out)) if own_keys is not None else []
    if unmapped or missing:
        raise GenlabError(
            f"sgm checkpoint: {len(unmapped)} unmapped keys {sorted(unmapped)[:8]}; "
            f"{len(missing)} missing parameters {missing[:8]}"
        )
    return out


def load_unet(model_unet: torch.nn.Module, path: str | os.PathLike) -> str:
    """Load UNet weights into `model_unet` from an sgm .safetensors file or a diffusers folder (local only).

    Returns the detected format. Every unmapped or missing key is named in the error."""
    from safetensors.torch import load_file

    from genlab.core.train import read_safetensors_folder

    path = Path(path)
    own = set(model_unet.state_dict())
    if path.is_dir():
        folder = path / "unet" if (path / "unet").is_dir() else path
        if (folder / "config.json").is_file():
            _check_diffusers_config(json.loads((folder / "config.json").read_text()), model_unet.config, folder)
        sd = read_safetensors_folder(folder, "UNet weights", "a diffusers UNet folder")
        sd = {k: v for k, v in sd.items() if not k.endswith("to_out.1.weight")}
        unmapped, missing = sorted(set(sd) - own), sorted(own - set(sd))
        if unmapped or missing:
            raise GenlabError(f"{folder}: {len(unmapped)} unmapped keys {unmapped[:8]}; "
                              f"{len(missing)} missing parameters {missing[:8]}")
        model_unet.load_state_dict(sd)
        return "diffusers"
    if not path.is_file():
        raise GenlabError(f"checkpoint not found: {path} (give a local sgm .safetensors file or diffusers folder)")
    if path.suffix != ".safetensors":
        raise GenlabError(f"{path}: only .safetensors checkpoints are read (got {path.suffix or 'no suffix'})")
    sd = convert_sgm_unet(load_file(str(path)), model_unet.video_config, own)
    model_unet.load_state_dict(sd)
    return "sgm"


def _check_diffusers_config(cfg: dict, unet_config, folder: Path) -> None:
    expected = {"in_channels": unet_config.in_channels, "out_channels": unet_config.out_channels,
                "block_out_channels": list(unet_config.block_out_channels),
                "layers_per_block": unet_config.layers_per_block}
    for k, v in expected.items():
        got = cfg.get(k)
        if got is not None and got != v:
            raise GenlabError(f"{folder / 'config.json'}: {k} is {got}, the model config expects {v}")


# ----------------------------------------------------------------------------------------------------
# the autoencoder: LDM / sgm names (`Encoder`, `VideoDecoder`) <-> ours (diffusers' names)
#   conv_in, conv_out, norm_out -> conv_norm_out; mid.block_1 / attn_1 / block_2 -> mid_block.resnets.0 /
#   attentions.0 / resnets.1; encoder down.i.block.j -> down_blocks.i.resnets.j, down.i.downsample.conv ->
#   down_blocks.i.downsamplers.0.conv; decoder up.i (i counts from the lowest resolution) -> up_blocks.(n-1-i);
#   ResnetBlock nin_shortcut -> conv_shortcut; VideoResBlock time_stack.in_layers.0/2, out_layers.0/3 ->
#   temporal_res_block.norm1/conv1/norm2/conv2, mix_factor -> time_mixer.mix_factor; conv_out.time_mix_conv ->
#   time_conv_out; attention norm/q/k/v/proj_out (1x1 convs) -> group_norm/to_q/to_k/to_v/to_out.0 (linears).

_VAE_ATTN = {"norm.": "group_norm.", "q.": "to_q.", "k.": "to_k.", "v.": "to_v.", "proj_out.": "to_out.0."}
_LDM_RES = {"norm1.": "norm1.", "conv1.": "conv1.", "norm2.": "norm2.", "conv2.": "conv2.",
            "nin_shortcut.": "conv_shortcut."}
_TIME_STACK = {"in_layers.0.": "norm1.", "in_layers.2.": "conv1.", "out_layers.0.": "norm2.", "out_layers.3.": "conv2."}


def _swap_prefix(rest: str, table: dict[str, str]) -> str | None:
    for a, b in table.items():
        if rest.startswith(a):
            return b + rest[len(a):]
    return None


def _ldm_res(rest: str, video: bool) -> str | None:
    if not video:
        return _swap_prefix(rest, _LDM_RES)
    if rest == "mix_factor":
        return "time_mixer.mix_factor"
    if rest.startswith("time_stack."):
        r = _swap_prefix(rest[len("time_stack."):], _TIME_STACK)
        return "temporal_res_block." + r if r else None
    r = _swap_prefix(rest, _LDM_RES)
    return "spatial_res_block." + r if r else None


def ldm_vae_key_to_ours(key: str, n_levels: int, part: str) -> str | None:
    """`part` = "encoder" | "decoder"; key without the `encoder.` / `decoder.` prefix -> ours (same prefix dropped)."""
    video = part == "decoder"
    if part == "decoder" and key.startswith("conv_out.time_mix_conv."):
        return "time_conv_out." + key[len("conv_out.time_mix_conv."):]
    for a, b in (("conv_in.", "conv_in."), ("conv_out.", "conv_out."), ("norm_out.", "conv_norm_out.")):
        if key.startswith(a):
            return b + key[len(a):]
    m = re.match(r"mid\.(block_1|block_2|attn_1)\.(.*)", key)
    if m:
        if m.group(1) == "attn_1":
            r = _swap_prefix(m.group(2), _VAE_ATTN)
            return f"mid_block.attentions.0.{r}" if r else None
        r = _ldm_res(m.group(2), video)
        return f"mid_block.resnets.{0 if m.group(1) == 'block_1' else 1}.{r}" if r else None
    m = re.match(r"(down|up)\.(\d+)\.(block\.(\d+)|downsample|upsample)\.(.*)", key)
    if m and (m.group(1) == "down") == (part == "encoder"):
        i, rest = int(m.group(2)), m.group(5)
        level = i if part == "encoder" else n_levels - 1 - i
        name = "down_blocks" if part == "encoder" else "up_blocks"
        if m.group(4) is not None:
            r = _ldm_res(rest, video)
            return f"{name}.{level}.resnets.{m.group(4)}.{r}" if r else None
        sampler = "downsamplers" if part == "encoder" else "upsamplers"
        return f"{name}.{level}.{sampler}.0.{rest}" if rest.startswith("conv.") else None
    return None


def ours_vae_key_to_ldm(key: str, n_levels: int, part: str) -> str | None:
    """Inverse of `ldm_vae_key_to_ours` (checked key by key in the tests)."""
    video = part == "decoder"
    if key.startswith("time_conv_out."):
        return "conv_out.time_mix_conv." + key[len("time_conv_out."):] if video else None
    for a, b in (("conv_in.", "conv_in."), ("conv_out.", "conv_out."), ("conv_norm_out.", "norm_out.")):
        if key.startswith(a):
            return b + key[len(a):]
    inv_res = {b: a for a, b in _LDM_RES.items()}
    inv_ts = {b: a for a, b in _TIME_STACK.items()}

    def res(rest: str) -> str | None:
        if not video:
            return _swap_prefix(rest, inv_res)
        if rest == "time_mixer.mix_factor":
            return "mix_factor"
        if rest.startswith("temporal_res_block."):
            r = _swap_prefix(rest[len("temporal_res_block."):], inv_ts)
            return "time_stack." + r if r else None
        if rest.startswith("spatial_res_block."):
            return _swap_prefix(rest[len("spatial_res_block."):], inv_res)
        return None

    m = re.match(r"mid_block\.(resnets|attentions)\.(\d)\.(.*)", key)
    if m:
        if m.group(1) == "attentions":
            r = _swap_prefix(m.group(3), {b: a for a, b in _VAE_ATTN.items()})
            return f"mid.attn_1.{r}" if r else None
        r = res(m.group(3))
        return f"mid.block_{int(m.group(2)) + 1}.{r}" if r else None
    m = re.match(r"(down_blocks|up_blocks)\.(\d+)\.(resnets\.(\d+)|downsamplers\.0|upsamplers\.0)\.(.*)", key)
    if m and (m.group(1) == "down_blocks") == (part == "encoder"):
        level, rest = int(m.group(2)), m.group(5)
        i = level if part == "encoder" else n_levels - 1 - level
        name = "down" if part == "encoder" else "up"
        if m.group(4) is not None:
            r = res(rest)
            return f"{name}.{i}.block.{m.group(4)}.{r}" if r else None
        return f"{name}.{i}.{'downsample' if part == 'encoder' else 'upsample'}.{rest}"
    return None


def attn_conv_to_linear(key: str, v: torch.Tensor) -> torch.Tensor:
    """LDM's attention q/k/v/proj_out are 1x1 convs (C, C, 1, 1); ours are linears (C, C)."""
    return v.reshape(v.shape[0], v.shape[1]) if ".attentions." in key and v.ndim == 4 and key.endswith("weight") else v


def linear_to_attn_conv(key: str, v: torch.Tensor) -> torch.Tensor:
    return v[:, :, None, None] if ".attn_1." in key and v.ndim == 2 else v


# ----------------------------------------------------------------------------------------------------
# the image encoder: open_clip ViT (`visual.*`) <-> transformers CLIPVisionModelWithProjection

_CLIP_FIXED = {"class_embedding": "vision_model.embeddings.class_embedding",
               "positional_embedding": "vision_model.embeddings.position_embedding.weight",
               "conv1.weight": "vision_model.embeddings.patch_embedding.weight",
               "ln_pre.weight": "vision_model.pre_layrnorm.weight", "ln_pre.bias": "vision_model.pre_layrnorm.bias",
               "ln_post.weight": "vision_model.post_layernorm.weight",
               "ln_post.bias": "vision_model.post_layernorm.bias", "proj": "visual_projection.weight"}
_CLIP_LAYER = {"ln_1.": "layer_norm1.", "ln_2.": "layer_norm2.", "attn.out_proj.": "self_attn.out_proj.",
               "mlp.c_fc.": "mlp.fc1.", "mlp.c_proj.": "mlp.fc2."}


def open_clip_visual_to_transformers(sd: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """open_clip `visual.*` names (prefix stripped) -> transformers names; returns (state dict, unmapped keys).

    The fused attention input projection `in_proj_weight` (3D, D) splits into q, k, v; `proj` (D, P) is the
    transpose of transformers' `visual_projection.weight` (P, D)."""
    out, unmapped = {}, []
    for k, v in sd.items():
        if k in _CLIP_FIXED:
            out[_CLIP_FIXED[k]] = v.t().contiguous() if k == "proj" else v
            continue
        m = re.match(r"transformer\.resblocks\.(\d+)\.(.*)", k)
        if not m:
            unmapped.append(k)
            continue
        base, rest = f"vision_model.encoder.layers.{m.group(1)}.", m.group(2)
        if rest in ("attn.in_proj_weight", "attn.in_proj_bias"):
            for name, part in zip(("q_proj", "k_proj", "v_proj"), v.chunk(3, dim=0)):
                out[f"{base}self_attn.{name}.{rest.rsplit('_', 1)[1]}"] = part.contiguous()
            continue
        r = _swap_prefix(rest, _CLIP_LAYER)
        if r is None:
            unmapped.append(k)
        else:
            out[base + r] = v
    return out, unmapped


def transformers_to_open_clip_visual(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    inv_fixed = {b: a for a, b in _CLIP_FIXED.items()}
    inv_layer = {b: a for a, b in _CLIP_LAYER.items()}
    out: dict[str, torch.Tensor] = {}
    qkv: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
    for k, v in sd.items():
        if k == "vision_model.embeddings.position_ids":
            continue
        if k in inv_fixed:
            out[inv_fixed[k]] = v.t().contiguous() if k == "visual_projection.weight" else v
            continue
        m = re.match(r"vision_model\.encoder\.layers\.(\d+)\.(.*)", k)
        if not m:
            raise GenlabError(f"CLIP image encoder: no open_clip name for {k}")
        base, rest = f"transformer.resblocks.{m.group(1)}.", m.group(2)
        m2 = re.match(r"self_attn\.([qkv])_proj\.(weight|bias)", rest)
        if m2:
            qkv.setdefault((base, m2.group(2)), {})[m2.group(1)] = v
            continue
        r = _swap_prefix(rest, inv_layer)
        if r is None:
            raise GenlabError(f"CLIP image encoder: no open_clip name for {k}")
        out[base + r] = v
    for (base, kind), parts in qkv.items():
        out[f"{base}attn.in_proj_{kind}"] = torch.cat([parts["q"], parts["k"], parts["v"]], dim=0)
    return out
