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

import json
import os
import re
from pathlib import Path

import torch

from genlab.core.nn.temporal import VideoUNetConfig
from genlab.errors import GenlabError

SGM_PREFIX = "model.diffusion_model."

_RES = [("in_layers.0.", "norm1."), ("in_layers.2.", "conv1."), ("emb_layers.1.", "time_emb_proj."),
        ("out_layers.0.", "norm2."), ("out_layers.3.", "conv2."), ("skip_connection.", "conv_shortcut.")]


def _res_rest(rest: str, video: bool) -> str | None:
    """Inside a (Video)ResBlock: sgm rest-of-key -> ours."""
    if rest.startswith("time_mixer."):
        return rest
    if rest.startswith("time_stack."):
        inner = rest[len("time_stack."):]
        for a, b in _RES:
            if inner.startswith(a):
                return "temporal_res_block." + b + inner[len(a):]
        return None
    for a, b in _RES:
        if rest.startswith(a):
            return ("spatial_res_block." if video else "") + b + rest[len(a):]
    return None


def _attn_rest(rest: str) -> str | None:
    m = re.match(r"time_stack\.(\d+)\.(.*)", rest)
    if m:
        return f"temporal_transformer_blocks.{m.group(1)}.{m.group(2)}"
    m = re.match(r"time_pos_embed\.([02])\.(.*)", rest)
    if m:
        return f"time_pos_embed.linear_{1 if m.group(1) == '0' else 2}.{m.group(2)}"
    if rest.startswith(("norm.", "proj_in.", "proj_out.", "transformer_blocks.", "time_mixer.")):
        return rest
    return None


def sgm_key_to_ours(key: str, config: VideoUNetConfig, video: bool = True) -> str | None:
    """Map one sgm UNet key (without the `model.diffusion_model.` prefix) to our name, or None."""
    u = config.unet
    n, L = len(u.block_out_channels), u.layers_per_block
    fixed = {"time_embed.0.": "time_embedding.linear_1.", "time_embed.2.": "time_embedding.linear_2.",
             "label_emb.0.0.": "add_embedding.linear_1.", "label_emb.0.2.": "add_embedding.linear_2.",
             "out.0.": "conv_norm_out.", "out.2.": "conv_out.", "input_blocks.0.0.": "conv_in."}
    for a, b in fixed.items():
        if key.startswith(a):
            return b + key[len(a):]
    m = re.match(r"input_blocks\.(\d+)\.(\d+)\.(.*)", key)
    if m:
        i, j, rest = int(m.group(1)) - 1, int(m.group(2)), m.group(3)
        b, l = divmod(i, L + 1)
        if b >= n:
            return None
        if l == L:  # the downsampler after level b
            ok = j == 0 and rest.startswith("op.") and b < n - 1
            return f"down_blocks.{b}.downsamplers.0.conv.{rest[len('op.'):]}" if ok else None
        if j == 0:
            r = _res_rest(rest, video)
            return f"down_blocks.{b}.resnets.{l}.{r}" if r else None
        if j == 1 and u.attention_levels[b]:
            r = _attn_rest(rest)
            return f"down_blocks.{b}.attentions.{l}.{r}" if r else None
        return None
    m = re.match(r"middle_block\.(\d)\.(.*)", key)
    if m:
        j, rest = int(m.group(1)), m.group(2)
        if j in (0, 2):
            r = _res_rest(rest, video)
            return f"mid_block.resnets.{j // 2}.{r}" if r else None
        r = _attn_rest(rest)
        return f"mid_block.attentions.0.{r}" if r else None
    m = re.match(r"output_blocks\.(\d+)\.(\d+)\.(.*)", key)
    if m:
        i, j, rest = int(m.group(1)), int(m.group(2)), m.group(3)
        b, l = divmod(i, L + 1)
        if b >= n:
            return None
        has_attn = list(reversed(u.attention_levels))[b]
        up_index = 2 if has_attn else 1
        if j == 0:
            r = _res_rest(rest, video)
            return f"up_blocks.{b}.resnets.{l}.{r}" if r else None
        if j == 1 and has_attn:
            r = _attn_rest(rest)
            return f"up_blocks.{b}.attentions.{l}.{r}" if r else None
        if j == up_index and l == L and b < n - 1 and rest.startswith("conv."):
            return f"up_blocks.{b}.upsamplers.0.{rest}"
        return None
    return None


def convert_sgm_unet(state_dict: dict[str, torch.Tensor], config: VideoUNetConfig,
                     own_keys: set[str] | None = None, video: bool = True) -> dict[str, torch.Tensor]:
    """sgm state dict (full checkpoint or UNet only) -> our VideoUNet state dict; raises naming unmapped keys."""
    unet_keys = {k: v for k, v in state_dict.items() if k.startswith(SGM_PREFIX)}
    if not unet_keys:  # a bare UNet state dict
        unet_keys = {SGM_PREFIX + k: v for k, v in state_dict.items()}
    out, unmapped = {}, []
    for k, v in unet_keys.items():
        ours = sgm_key_to_ours(k[len(SGM_PREFIX):], config, video)
        if ours is None:
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
