"""LoRA for the SD3 MM-DiT in diffusers' format: add adapters, read LoRA files from genlab, diffusers or PEFT,
write them so `StableDiffusion3Pipeline.load_lora_weights(file)` loads them.

    layers = add_lora(mmdit, rank=16, alpha=16, targets=DEFAULT_TARGETS)   # {diffusers name: LoRA}
    save_lora("run/lora.safetensors", layers, mmdit.cfg)                  # transformer.<name>.lora_{A,B}.weight
    lora = read_lora("some_lora.safetensors")                               # a LoRAFile: {name: (A, B)}, alpha per name
    apply_lora(mmdit, lora, multiplier=0.8)                                  # adapters added (unmerged); merge_lora folds them

Names are diffusers' SD3Transformer2DModel module names (`transformer_blocks.0.attn.to_q`, `...attn.add_k_proj`,
`...ff.net.0.proj`, `norm_out.linear`, ...). genlab's MM-DiT keeps q, k and v in one fused `qkv` Linear (the
reference checkpoints' layout), so it carries one adapter per q / k / v row block (`core.nn.lora.LoRALinear`),
which is exactly diffusers' three separate adapters. The scale alpha / rank is folded into lora_B when saving, so
the file needs no alpha (diffusers assumes alpha = rank without metadata). Read formats:
* diffusers / genlab: `transformer.<name>.lora_A.weight` / `.lora_B.weight` (alpha from the file's
  `lora_adapter_metadata`, if any, else rank); `<name>.alpha` keys (kohya style) are honoured too;
* PEFT: a folder with `adapter_model.safetensors` + `adapter_config.json` (`r`, `lora_alpha`, `rank_pattern`,
  `alpha_pattern`, `use_rslora`), keys `base_model.model.<name>.lora_A.weight`, or such a file beside its config.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from genlab.core.nn.lora import LoRA, LoRALinear, wrap_linear
from genlab.errors import GenlabError
from genlab.systems.t2i import convert

# attention (x and text streams) and MLP projections of every joint block, as diffusers' SD3 LoRA script names them
DEFAULT_TARGETS = ("attn.to_q", "attn.to_k", "attn.to_v", "attn.to_out.0",
                   "attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj", "attn.to_add_out",
                   "ff.net.0.proj", "ff.net.2", "ff_context.net.0.proj", "ff_context.net.2")
# MMDiT-X blocks (SD3.5-Medium): the image stream's second attention; `--lora-targets` may name them
ATTN2_TARGETS = ("attn2.to_q", "attn2.to_k", "attn2.to_v", "attn2.to_out.0")
TRANSFORMER_PREFIX = "transformer."
_KEY = re.compile(r"^(?P<module>.+)\.(?P<which>lora_A|lora_B|lora_down|lora_up)(\.default)?\.weight$")


@dataclass
class LoRAFile:
    """A LoRA for the MM-DiT: per diffusers module name, A (r, in), B (out, r) and alpha (None: rank)."""

    source: str
    weights: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)
    alphas: dict[str, float | None] = field(default_factory=dict)
    rslora: bool = False

    def scale(self, name: str) -> float:
        rank = self.weights[name][0].shape[0]
        alpha = self.alphas.get(name)
        alpha = rank if alpha is None else alpha
        return alpha / (math.sqrt(rank) if self.rslora else rank)


def locate(name: str, cfg) -> tuple[str, int, int, bool] | None:
    """diffusers module name -> (genlab module, part, parts, swapped) in an MM-DiT of config `cfg` (None: absent)."""
    return convert.linear_from_diffusers(name, cfg.depth, tuple(getattr(cfg, "dual_attention_layers", ())))


def module_names(cfg, targets: tuple[str, ...] = DEFAULT_TARGETS) -> list[str]:
    """diffusers names of the MM-DiT's Linears that `targets` (suffixes, or full names) select; a target that
    selects nothing is an error naming it."""
    candidates = [f"transformer_blocks.{i}.{s}" for i in range(cfg.depth)
                  for s in (*DEFAULT_TARGETS, *ATTN2_TARGETS, "norm1.linear", "norm1_context.linear")]
    candidates += ["context_embedder", "proj_out", "norm_out.linear", "time_text_embed.timestep_embedder.linear_1",
                   "time_text_embed.timestep_embedder.linear_2", "time_text_embed.text_embedder.linear_1",
                   "time_text_embed.text_embedder.linear_2"]
    candidates = [c for c in candidates if locate(c, cfg) is not None]
    chosen, unknown = [], []
    for t in targets:
        hits = [c for c in candidates if c == t or c.endswith("." + t)]
        if not hits:
            unknown.append(t)
        chosen += [h for h in hits if h not in chosen]
    if unknown:
        raise GenlabError(f"--lora-targets: {', '.join(unknown)} name no Linear layer of this MM-DiT (diffusers names, "
                          f"e.g. {', '.join(DEFAULT_TARGETS[:4])}, ff.net.2)")
    return chosen


def _attach(mmdit: nn.Module, name: str, lora: LoRA, genlab_rows: bool = False) -> LoRA:
    """Put `lora` on the genlab Linear behind diffusers' `name`; B's rows are reordered unless `genlab_rows`."""
    genlab_name, part, parts, swap = locate(name, mmdit.cfg)
    if swap and not genlab_rows:
        with torch.no_grad():  # diffusers' (scale, shift) rows -> genlab's (shift, scale)
            lora.lora_B.copy_(torch.cat(lora.lora_B.chunk(2, dim=0)[::-1]))
    return wrap_linear(mmdit, genlab_name, parts).add(lora, part)


def add_lora(mmdit: nn.Module, rank: int, alpha: float | None = None, targets: tuple[str, ...] = DEFAULT_TARGETS,
             ) -> dict[str, LoRA]:
    """New (zero-effect) adapters on the selected Linears; the base weights are frozen. Returns {name: LoRA}."""
    mmdit.requires_grad_(False)
    p = next(mmdit.parameters())
    layers = {}
    for name in module_names(mmdit.cfg, tuple(targets)):
        genlab_name, part, parts, _ = locate(name, mmdit.cfg)
        base = mmdit.get_submodule(genlab_name)
        base = base.base if isinstance(base, LoRALinear) else base
        lora = LoRA(base.in_features, base.out_features // parts, rank, alpha, device=p.device, dtype=torch.float32)
        layers[name] = _attach(mmdit, name, lora, genlab_rows=True)
    return layers


def lora_state_dict(layers: dict[str, LoRA], cfg) -> dict[str, torch.Tensor]:
    """diffusers' SD3 LoRA file: transformer.<name>.lora_A.weight, .lora_B.weight (scale folded into B)."""
    out = {}
    for name, lora in layers.items():
        b = lora.lora_B.detach().float() * (lora.alpha / lora.rank if not lora.rslora else lora.alpha / math.sqrt(lora.rank))
        if locate(name, cfg)[3]:
            b = torch.cat(b.chunk(2, dim=0)[::-1])  # genlab (shift, scale) rows -> diffusers (scale, shift)
        out[f"{TRANSFORMER_PREFIX}{name}.lora_A.weight"] = lora.lora_A.detach().float().contiguous()
        out[f"{TRANSFORMER_PREFIX}{name}.lora_B.weight"] = b.contiguous()
    return out


def save_lora(path: str | Path, layers: dict[str, LoRA], cfg, info: dict | None = None) -> Path:
    """The adapters in diffusers' SD3 format (+ a genlab .json beside it: rank, alpha, targets, base)."""
    from genlab.core.train import save_weights

    first = next(iter(layers.values()))
    return save_weights(path, lora_state_dict(layers, cfg),
                        {"format": "diffusers SD3 LoRA (scale folded into lora_B)", "rank": first.rank,
                         "alpha": first.alpha, "modules": len(layers), **(info or {})})


# ----------------------------------------------------------------------------- reading
def _peft_config(folder: Path) -> dict:
    cfg = folder / "adapter_config.json"
    if not cfg.is_file():
        return {}
    try:
        return json.loads(cfg.read_text())
    except json.JSONDecodeError as err:
        raise GenlabError(f"{cfg}: not valid JSON ({err})") from None


def _pattern(patterns: dict, name: str, default):
    """PEFT's rank_pattern / alpha_pattern: a key matches a module name by suffix or regex."""
    for key, value in (patterns or {}).items():
        if name == key or name.endswith("." + key) or re.fullmatch(rf"(.*\.)?{key}", name):
            return value
    return default


def read_lora(path: str | Path) -> LoRAFile:
    """A LoRA file (or PEFT adapter folder) for the MM-DiT; every key checked, nothing applied yet."""
    from safetensors import safe_open

    from genlab.core.train.checkpoint import safetensors_header

    path = Path(path)
    if path.is_dir():
        found = [path / n for n in ("pytorch_lora_weights.safetensors", "adapter_model.safetensors") if (path / n).is_file()]
        if not found:
            raise GenlabError(f"--lora {path}: no pytorch_lora_weights.safetensors or adapter_model.safetensors in it")
        path = found[0]
    if not path.is_file():
        raise GenlabError(f"--lora {path}: no such file")
    safetensors_header(path)  # a truncated or foreign file is one clear line, before anything is read
    with safe_open(str(path), framework="pt", device="cpu") as f:
        meta = f.metadata() or {}
        state = {k: f.get_tensor(k) for k in f.keys()}
    peft = _peft_config(path.parent) if path.name == "adapter_model.safetensors" else {}
    if not peft and "lora_adapter_metadata" in meta:  # diffusers' save_lora_adapter / save_lora_weights
        try:
            peft = json.loads(meta["lora_adapter_metadata"])
            peft = peft.get("transformer", peft) if isinstance(peft, dict) else {}
        except json.JSONDecodeError:
            peft = {}
    out = LoRAFile(str(path), rslora=bool(peft.get("use_rslora", False)))
    parts: dict[str, dict[str, torch.Tensor]] = {}
    alphas: dict[str, float] = {}
    other = []
    for key, value in state.items():
        name = key
        for prefix in ("base_model.model.", TRANSFORMER_PREFIX):
            if name.startswith(prefix):
                name = name[len(prefix):]
        if name.endswith(".alpha"):
            alphas[name[:-len(".alpha")]] = float(value)
            continue
        m = _KEY.match(name)
        if not m or name.startswith(("text_encoder", "unet.")):
            other.append(key)
            continue
        which = {"lora_down": "lora_A", "lora_up": "lora_B"}.get(m["which"], m["which"])
        parts.setdefault(m["module"], {})[which] = value.float()
    if other:
        raise GenlabError(f"--lora {path}: {len(other)} keys are no MM-DiT LoRA weights (e.g. {other[0]!r}); only "
                          "transformer LoRAs (diffusers / PEFT names) are supported")
    if not parts:
        raise GenlabError(f"--lora {path}: no LoRA weights (lora_A / lora_B keys) in the file")
    for name, ab in sorted(parts.items()):
        if set(ab) != {"lora_A", "lora_B"}:
            raise GenlabError(f"--lora {path}: {name} has {sorted(ab)} but needs lora_A and lora_B")
        a, b = ab["lora_A"], ab["lora_B"]
        if a.ndim != 2 or b.ndim != 2 or a.shape[0] != b.shape[1]:
            raise GenlabError(f"--lora {path}: {name}: lora_A {tuple(a.shape)} and lora_B {tuple(b.shape)} are not "
                              "a Linear layer's LoRA pair")
        out.weights[name] = (a, b)
        default_alpha = peft.get("lora_alpha")
        alpha = alphas.get(name, _pattern(peft.get("alpha_pattern"), name, default_alpha))
        out.alphas[name] = None if alpha is None else float(alpha)
    return out


def check_lora(lora: LoRAFile, cfg) -> None:
    """Every module of the LoRA exists in an MM-DiT of config `cfg`, with fitting shapes; else one error naming them."""
    missing = [n for n in lora.weights if locate(n, cfg) is None]
    if missing:
        raise GenlabError(f"--lora {lora.source}: {len(missing)} target modules do not exist in this MM-DiT (depth "
                          f"{cfg.depth}): {', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''}")


def apply_lora(mmdit: nn.Module, lora: LoRAFile, multiplier: float = 1.0) -> dict[str, LoRA]:
    """Add the file's adapters to `mmdit` (unmerged, frozen; `merge_lora` folds them in), times `multiplier`."""
    check_lora(lora, mmdit.cfg)
    p = next(mmdit.parameters())
    layers = {}
    for name, (a, b) in lora.weights.items():
        genlab_name, part, parts, _ = locate(name, mmdit.cfg)
        base = mmdit.get_submodule(genlab_name)
        base = base.base if isinstance(base, LoRALinear) else base
        if a.shape[1] != base.in_features or b.shape[0] != base.out_features // parts:
            raise GenlabError(f"--lora {lora.source}: {name} has lora_A {tuple(a.shape)}, lora_B {tuple(b.shape)}; this "
                              f"model's layer is {base.in_features} -> {base.out_features // parts}: another base model?")
        rank = a.shape[0]
        adapter = LoRA(a.shape[1], b.shape[0], rank, alpha=lora.scale(name) * rank, device=p.device, dtype=p.dtype)
        adapter.multiplier = float(multiplier)
        with torch.no_grad():
            adapter.lora_A.copy_(a)
            adapter.lora_B.copy_(b)
        adapter.requires_grad_(False)
        layers[name] = _attach(mmdit, name, adapter)
    return layers


def parse_lora_arg(text: str) -> tuple[str, float]:
    """"FILE[:scale]" -> (FILE, scale); a trailing ':<number>' is the scale (paths may hold ':')."""
    head, sep, tail = text.rpartition(":")
    if sep and head:
        try:
            return head, float(tail)
        except ValueError:
            pass
    return text, 1.0


__all__ = ["DEFAULT_TARGETS", "LoRAFile", "add_lora", "apply_lora", "check_lora", "locate", "lora_state_dict", "module_names",
           "parse_lora_arg", "read_lora", "save_lora"]
