"""MM-DiT weights between genlab (= the reference single-file names), diffusers and Stability's
single files.

* genlab names are sd3.5 `mmditx.py`'s without the `model.diffusion_model.` prefix, so single
  files only need that prefix added / removed (`to_single_file`, `from_single_file`).
* diffusers' `SD3Transformer2DModel` splits each fused `qkv` into to_q/to_k/to_v (add_*_proj for
  the text stream) and orders the 2-chunk adaLN of the final layer and of the last (pre-only)
  context block as (scale, shift) where the reference has (shift, scale): `_swap` handles it.
* MMDiT-X blocks (SD3.5-Medium) add `x_block.attn2.{qkv,proj,ln_q,ln_k}` (diffusers `attn2.{to_q,
  to_k,to_v,to_out.0,norm_q,norm_k}`) and a 9-chunk `x_block.adaLN_modulation` (same order in both).

All maps are pure functions on state dicts and work on meta tensors, so the real SD3 shapes
can be checked without weights. `load_pretrained(path)` reads a diffusers `transformer/` folder
(config.json + possibly sharded safetensors) or a single .safetensors file from a local path.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch

from genlab.errors import GenlabError
from genlab.systems.t2i.config import MMDiTConfig

SINGLE_FILE_PREFIX = "model.diffusion_model."
_FIXED = {
    "pos_embed": "pos_embed.pos_embed",
    "x_embedder.proj.weight": "pos_embed.proj.weight",
    "x_embedder.proj.bias": "pos_embed.proj.bias",
    "t_embedder.mlp.0.weight": "time_text_embed.timestep_embedder.linear_1.weight",
    "t_embedder.mlp.0.bias": "time_text_embed.timestep_embedder.linear_1.bias",
    "t_embedder.mlp.2.weight": "time_text_embed.timestep_embedder.linear_2.weight",
    "t_embedder.mlp.2.bias": "time_text_embed.timestep_embedder.linear_2.bias",
    "y_embedder.mlp.0.weight": "time_text_embed.text_embedder.linear_1.weight",
    "y_embedder.mlp.0.bias": "time_text_embed.text_embedder.linear_1.bias",
    "y_embedder.mlp.2.weight": "time_text_embed.text_embedder.linear_2.weight",
    "y_embedder.mlp.2.bias": "time_text_embed.text_embedder.linear_2.bias",
    "context_embedder.weight": "context_embedder.weight",
    "context_embedder.bias": "context_embedder.bias",
    "final_layer.linear.weight": "proj_out.weight",
    "final_layer.linear.bias": "proj_out.bias",
}
# per-stream sub-keys of joint_blocks.{i}.{stream}. -> transformer_blocks.{i}.
_STREAM = {
    "x_block": {
        "attn.proj": "attn.to_out.0", "attn.ln_q": "attn.norm_q", "attn.ln_k": "attn.norm_k",
        "adaLN_modulation.1": "norm1.linear", "mlp.fc1": "ff.net.0.proj", "mlp.fc2": "ff.net.2",
    },
    "context_block": {
        "attn.proj": "attn.to_add_out", "attn.ln_q": "attn.norm_added_q", "attn.ln_k": "attn.norm_added_k",
        "adaLN_modulation.1": "norm1_context.linear", "mlp.fc1": "ff_context.net.0.proj",
        "mlp.fc2": "ff_context.net.2",
    },
}
_QKV = {"x_block": ("attn.to_q", "attn.to_k", "attn.to_v"),
        "context_block": ("attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj")}
# MMDiT-X (SD3.5-Medium): the image stream's second, image-only attention
_ATTN2 = {"attn2.proj": "attn2.to_out.0", "attn2.ln_q": "attn2.norm_q", "attn2.ln_k": "attn2.norm_k"}
_ATTN2_QKV = ("attn2.to_q", "attn2.to_k", "attn2.to_v")
# the tables above combined: (stream, fused reference name) -> the three diffusers names; stream -> sub-keys
_FUSED = {("x_block", "attn.qkv"): _QKV["x_block"], ("context_block", "attn.qkv"): _QKV["context_block"],
          ("x_block", "attn2.qkv"): _ATTN2_QKV}
_SUBKEYS = {"x_block": {**_STREAM["x_block"], **_ATTN2}, "context_block": _STREAM["context_block"]}
_ATTN2_RE = re.compile(r"^joint_blocks\.(\d+)\.x_block\.attn2\.qkv\.weight$")
_BLOCK_RE = re.compile(r"^joint_blocks\.(\d+)\.(x_block|context_block)\.(.+)\.(weight|bias)$")


def _swap(t: torch.Tensor) -> torch.Tensor:
    """(a, b) halves along dim 0 -> (b, a): (shift, scale) <-> (scale, shift)."""
    a, b = t.chunk(2, dim=0)
    return torch.cat([b, a], dim=0)


def _depth(keys) -> int:
    blocks = {int(m.group(1)) for k in keys if (m := _BLOCK_RE.match(k))}
    return max(blocks) + 1 if blocks else 0


def to_diffusers(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """genlab / reference names -> diffusers SD3Transformer2DModel names (nothing dropped)."""
    depth, out = _depth(state), {}
    for key, value in state.items():
        if key in _FIXED:
            out[_FIXED[key]] = value
        elif key == "final_layer.adaLN_modulation.1.weight" or key == "final_layer.adaLN_modulation.1.bias":
            out["norm_out.linear." + key.rsplit(".", 1)[1]] = _swap(value)
        elif m := _BLOCK_RE.match(key):
            i, stream, sub, kind = int(m.group(1)), m.group(2), m.group(3), m.group(4)
            prefix = f"transformer_blocks.{i}."
            if (stream, sub) in _FUSED:
                for name, part in zip(_FUSED[(stream, sub)], value.chunk(3, dim=0)):
                    out[f"{prefix}{name}.{kind}"] = part
            elif sub in _SUBKEYS[stream]:
                last_ctx = stream == "context_block" and sub == "adaLN_modulation.1" and i == depth - 1
                out[f"{prefix}{_SUBKEYS[stream][sub]}.{kind}"] = _swap(value) if last_ctx else value
            else:
                raise GenlabError(f"to_diffusers: no diffusers name for {key!r}")
        else:
            raise GenlabError(f"to_diffusers: no diffusers name for {key!r}")
    return out


def from_diffusers(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """diffusers SD3Transformer2DModel names -> genlab / reference names (nothing dropped)."""
    inv_fixed = {v: k for k, v in _FIXED.items()}
    inv_stream = {(stream, v): k for stream, table in _SUBKEYS.items() for k, v in table.items()}
    qkv_parts: dict[tuple[int, str, str, str], dict[int, torch.Tensor]] = {}
    blocks = {int(k.split(".")[1]) for k in state if k.startswith("transformer_blocks.")}
    depth = max(blocks) + 1 if blocks else 0
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key in inv_fixed:
            out[inv_fixed[key]] = value
            continue
        if key.startswith("norm_out.linear."):
            out["final_layer.adaLN_modulation.1." + key.rsplit(".", 1)[1]] = _swap(value)
            continue
        m = re.match(r"^transformer_blocks\.(\d+)\.(.+)\.(weight|bias)$", key)
        if not m:
            raise GenlabError(f"from_diffusers: unexpected key {key!r}")
        i, sub, kind = int(m.group(1)), m.group(2), m.group(3)
        for (stream, fused), names in _FUSED.items():
            if sub in names:
                qkv_parts.setdefault((i, stream, fused, kind), {})[names.index(sub)] = value
                break
        else:
            stream = "context_block" if ("context" in sub or "add" in sub) else "x_block"
            if (stream, sub) not in inv_stream:
                raise GenlabError(f"from_diffusers: unexpected key {key!r}")
            name = inv_stream[(stream, sub)]
            last_ctx = stream == "context_block" and name == "adaLN_modulation.1" and i == depth - 1
            out[f"joint_blocks.{i}.{stream}.{name}.{kind}"] = _swap(value) if last_ctx else value
    for (i, stream, fused, kind), parts in qkv_parts.items():
        if sorted(parts) != [0, 1, 2]:
            raise GenlabError(f"from_diffusers: block {i} {stream} {fused} is missing some of q/k/v {kind}")
        out[f"joint_blocks.{i}.{stream}.{fused}.{kind}"] = torch.cat([parts[0], parts[1], parts[2]], dim=0)
    return out


def linear_from_diffusers(module: str, depth: int, dual_attention_layers: tuple[int, ...] = ()
                          ) -> tuple[str, int, int, bool] | None:
    """A diffusers SD3Transformer2DModel Linear's name -> (genlab module, part, parts, swapped): e.g.
    `transformer_blocks.0.attn.to_k` -> ("joint_blocks.0.x_block.attn.qkv", 1, 3, False). `swapped`: the
    genlab rows are the diffusers rows with their two halves exchanged ((scale, shift) vs (shift, scale)).
    None when the name is no Linear of an MM-DiT of this depth and MMDiT-X layers (LoRA files are checked with it)."""
    fixed = {v.rsplit(".", 1)[0]: k.rsplit(".", 1)[0] for k, v in _FIXED.items() if k.endswith(".weight")}
    if module in fixed and module != "pos_embed.proj":  # the patch embedding is a convolution
        return fixed[module], 0, 1, False
    if module == "norm_out.linear":
        return "final_layer.adaLN_modulation.1", 0, 1, True
    m = re.match(r"^transformer_blocks\.(\d+)\.(.+)$", module)
    if not m or int(m.group(1)) >= depth:
        return None
    i, sub = int(m.group(1)), m.group(2)
    for stream, names in _QKV.items():
        if sub in names:
            return f"joint_blocks.{i}.{stream}.attn.qkv", names.index(sub), 3, False
    if i in dual_attention_layers and sub in _ATTN2_QKV:
        return f"joint_blocks.{i}.x_block.attn2.qkv", _ATTN2_QKV.index(sub), 3, False
    if i in dual_attention_layers and sub == _ATTN2["attn2.proj"]:
        return f"joint_blocks.{i}.x_block.attn2.proj", 0, 1, False
    for stream, table in _STREAM.items():
        inv = {v: k for k, v in table.items()}
        if sub in inv and inv[sub] not in ("attn.ln_q", "attn.ln_k"):
            pre_only = stream == "context_block" and i == depth - 1
            if pre_only and inv[sub] != "adaLN_modulation.1":
                return None  # the last context block has no output projection or MLP
            return f"joint_blocks.{i}.{stream}.{inv[sub]}", 0, 1, pre_only
    return None


def to_single_file(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {SINGLE_FILE_PREFIX + k: v for k, v in state.items()}


def from_single_file(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Keep the MM-DiT part of a Stability single file (VAE / text encoders are other prefixes)."""
    return {k[len(SINGLE_FILE_PREFIX):]: v for k, v in state.items() if k.startswith(SINGLE_FILE_PREFIX)}


# ----------------------------------------------------------------------------- configs
def to_diffusers_config(cfg: MMDiTConfig) -> dict:
    base = cfg.pos_embed_base_size
    sample_size = int(round(base * cfg.patch_size)) if base is not None else cfg.pos_embed_max_size * cfg.patch_size
    return {
        "sample_size": sample_size, "patch_size": cfg.patch_size, "in_channels": cfg.in_channels,
        "num_layers": cfg.depth, "attention_head_dim": cfg.head_dim, "num_attention_heads": cfg.num_heads,
        "joint_attention_dim": cfg.context_dim, "caption_projection_dim": cfg.hidden_size,
        "pooled_projection_dim": cfg.pooled_dim, "out_channels": cfg.out_channels,
        "pos_embed_max_size": cfg.pos_embed_max_size, "dual_attention_layers": tuple(cfg.dual_attention_layers),
        "qk_norm": {None: None, "rms": "rms_norm", "ln": "layer_norm"}[cfg.qk_norm],
    }


def from_diffusers_config(d: dict) -> MMDiTConfig:
    hidden = d["num_attention_heads"] * d["attention_head_dim"]
    if d.get("caption_projection_dim", hidden) != hidden:
        raise GenlabError(f"diffusers config: caption_projection_dim {d['caption_projection_dim']} != hidden {hidden}")
    qk = {None: None, "rms_norm": "rms", "layer_norm": "ln"}.get(d.get("qk_norm"), "?")
    if qk == "?":
        raise GenlabError(f"diffusers config: unsupported qk_norm {d.get('qk_norm')!r}")
    return MMDiTConfig(
        depth=d["num_layers"], hidden_size=hidden, num_heads=d["num_attention_heads"], patch_size=d["patch_size"],
        in_channels=d["in_channels"], out_channels=d.get("out_channels") or d["in_channels"],
        context_dim=d["joint_attention_dim"], pooled_dim=d["pooled_projection_dim"],
        pos_embed_max_size=d["pos_embed_max_size"], pos_embed_base_size=d["sample_size"] / d["patch_size"], qk_norm=qk,
        dual_attention_layers=tuple(int(i) for i in d.get("dual_attention_layers") or ()),
    )


def config_from_state_dict(state: dict[str, torch.Tensor], head_dim: int = 64) -> MMDiTConfig:
    """Infer the MM-DiT config from reference-named weights (as sd3.5's loader does)."""
    try:
        w = state["x_embedder.proj.weight"]
        hidden, in_ch, patch = w.shape[0], w.shape[1], w.shape[2]
        ln_q = state.get("joint_blocks.0.x_block.attn.ln_q.weight")
        if ln_q is not None:
            head_dim = ln_q.shape[0]
        max_size = int(round(state["pos_embed"].shape[1] ** 0.5))
        return MMDiTConfig(
            depth=_depth(state), hidden_size=hidden, num_heads=hidden // head_dim, patch_size=patch,
            in_channels=in_ch, out_channels=state["final_layer.linear.weight"].shape[0] // (patch * patch),
            context_dim=state["context_embedder.weight"].shape[1], pooled_dim=state["y_embedder.mlp.0.weight"].shape[1],
            pos_embed_max_size=max_size, qk_norm="rms" if ln_q is not None else None,
            dual_attention_layers=tuple(sorted({int(m.group(1)) for k in state
                                                if (m := _ATTN2_RE.match(k))})),
        )
    except KeyError as err:
        raise GenlabError(f"not an MM-DiT state dict: missing {err}") from None


# ----------------------------------------------------------------------------- loading
def load_pretrained(path: str | Path, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu"):
    """An MMDiT from a local diffusers `transformer/` folder, a diffusers pipeline folder or a single file."""
    path = Path(path)
    if path.is_dir() and (path / "transformer").is_dir():
        path = path / "transformer"
    if path.is_dir():
        cfg_file = path / "config.json"
        if not cfg_file.is_file():
            raise GenlabError(f"{path} has no config.json (expected a diffusers transformer folder)")
        cfg = from_diffusers_config(json.loads(cfg_file.read_text()))
        from genlab.core.train import read_safetensors_folder

        state = from_diffusers(read_safetensors_folder(path, "MM-DiT weights"))
    elif path.is_file():
        from genlab.core.train import load_weights

        raw, _ = load_weights(path)
        state = from_single_file(raw) if any(k.startswith(SINGLE_FILE_PREFIX) for k in raw) else raw
        cfg = config_from_state_dict(state)
    else:
        raise GenlabError(f"pretrained MM-DiT not found: {path}")
    return build_mmdit(state, cfg, dtype, device, source=str(path))


def build_mmdit(state: dict[str, torch.Tensor], cfg: MMDiTConfig, dtype: torch.dtype = torch.float32,
                device: str | torch.device = "cpu", source: str = "MM-DiT"):
    """An MMDiT holding `state` (genlab names), built on the meta device so no memory is spent on init."""
    from genlab.systems.t2i.model import MMDiT

    with torch.device("meta"):
        model = MMDiT(cfg)
    try:
        model.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as err:
        raise GenlabError(f"{source}: weights do not fit the MM-DiT ({str(err).splitlines()[0]})") from None
    return model.to(device=device, dtype=dtype).eval()
