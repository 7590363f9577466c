"""Weights and training checkpoints as safetensors files with JSON beside / inside them.

Two kinds of file, both written atomically (temporary name, then rename: a half-written file
never carries its final name):

* weights: `save_weights(path, state_dict, config)` writes `path` (safetensors) and the config
  as JSON at `path.with_suffix(".json")`; `load_weights(path)` returns (state_dict, config dict).
* training checkpoints: `save_checkpoint(path, tensors=..., meta=...)` stores any nested state
  (model, EMA, optimizer, ...) in ONE safetensors file; non-tensor leaves go as JSON into the
  file's metadata, so one rename publishes everything. `latest_checkpoint(folder)` finds the
  newest `step_XXXXXXXX.safetensors`.

Dataclass configs round-trip through `config_to_dict` / `config_from_dict` (tuples and nested
dataclasses restored from the type hints). Missing or corrupt files raise GenlabError naming
the file.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import typing
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from genlab.core.io import atomic_path, atomic_write_text
from genlab.errors import GenlabError

CKPT_RE = re.compile(r"^step_(\d{8})\.safetensors$")
_TENSOR = "__tensor__"


# ----------------------------------------------------------------------------- configs
def config_to_dict(cfg: Any) -> Any:
    """A dataclass (possibly nested) -> plain JSON-able dict; dicts/lists pass through."""
    if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
        return {f.name: config_to_dict(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}
    if isinstance(cfg, dict):
        return {k: config_to_dict(v) for k, v in cfg.items()}
    if isinstance(cfg, (list, tuple)):
        return [config_to_dict(v) for v in cfg]
    return cfg


def config_from_dict(cls: type, data: dict, source: str = "config") -> Any:
    """Rebuild dataclass `cls` from `config_to_dict` output; unknown or missing fields are errors."""
    if not isinstance(data, dict):
        raise GenlabError(f"{source}: expected a JSON object for {cls.__name__}, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise GenlabError(f"{source}: unknown field(s) {unknown} for {cls.__name__}")
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        kwargs[f.name] = _coerce(hints[f.name], data[f.name], f"{source}.{f.name}")
    try:
        return cls(**kwargs)
    except TypeError as err:
        raise GenlabError(f"{source}: {err}") from None


def _coerce(hint: Any, value: Any, source: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if dataclasses.is_dataclass(hint) and isinstance(value, dict):
        return config_from_dict(hint, value, source)
    if origin is tuple and isinstance(value, list):
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], v, source) for v in value)
        return tuple(value)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)) and value is not None:
        for arg in args:
            if arg is type(None):
                continue
            if typing.get_origin(arg) is tuple and isinstance(value, list):
                return _coerce(arg, value, source)
        errors = []
        for arg in args:  # a union of dataclasses: the first one the dict fits
            if dataclasses.is_dataclass(arg) and isinstance(value, dict):
                try:
                    return config_from_dict(arg, value, source)
                except GenlabError as err:
                    errors.append(str(err))
        if errors:
            raise GenlabError("; ".join(errors))
    return value


# ----------------------------------------------------------------------------- nested state
def flatten_state(obj: Any, prefix: str, out: dict[str, torch.Tensor]) -> Any:
    """Move every tensor of a nested dict/list into `out` (key = dotted path); return the JSON skeleton."""
    if isinstance(obj, torch.Tensor):
        out[prefix] = obj
        return {_TENSOR: prefix}
    if isinstance(obj, dict):
        return {"__dict__": [[k, flatten_state(v, f"{prefix}.{k}", out)] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        return [flatten_state(v, f"{prefix}.{i}", out) for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot store {type(obj).__name__} at {prefix} in a checkpoint")


def unflatten_state(skeleton: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(skeleton, dict) and _TENSOR in skeleton:
        return tensors[skeleton[_TENSOR]]
    if isinstance(skeleton, dict) and "__dict__" in skeleton:
        return {k: unflatten_state(v, tensors) for k, v in skeleton["__dict__"]}
    if isinstance(skeleton, list):
        return [unflatten_state(v, tensors) for v in skeleton]
    return skeleton


def _for_saving(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Contiguous CPU copies; tensors sharing storage (tied weights) are cloned apart."""
    out, seen = {}, set()
    for k, v in tensors.items():
        v = v.detach().to("cpu").contiguous()
        ptr = (v.untyped_storage().data_ptr(), v.storage_offset()) if v.numel() else None
        if ptr is not None and ptr in seen:
            v = v.clone()
        elif ptr is not None:
            seen.add(ptr)
        out[k] = v
    return out


def safetensors_header(path: str | os.PathLike) -> dict[str, tuple[str, tuple[int, ...]]]:
    """name -> (dtype, shape) from a safetensors header, after checking that the file holds every byte it
    declares: a foreign or truncated file (an interrupted download) is one GenlabError, found in milliseconds."""
    import struct

    path = Path(path)
    if not path.is_file():
        raise GenlabError(f"weights file not found: {path}")
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise GenlabError(f"{path}: not a safetensors file or truncated ({size} bytes, no header)")
            (n,) = struct.unpack("<Q", head)
            if n == 0 or n > size - 8 or n > 100_000_000:
                raise GenlabError(f"{path}: truncated or not a safetensors file (header of {n} bytes, file {size})")
            header = json.loads(f.read(n))
    except (OSError, ValueError, UnicodeDecodeError) as err:
        raise GenlabError(f"{path}: not a safetensors file (unreadable header: {err})") from None
    header.pop("__metadata__", None)
    end = max((v["data_offsets"][1] for v in header.values()), default=0)
    if 8 + n + end > size:
        raise GenlabError(f"{path}: truncated: the header declares {8 + n + end} bytes, the file has {size} "
                          "(an interrupted download?)")
    return {k: (v["dtype"], tuple(v["shape"])) for k, v in header.items()}


def _read_safetensors(path: Path, what: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    if not path.is_file():
        raise GenlabError(f"{what} not found: {path}")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise GenlabError(f"{what} {path} is corrupt or not a safetensors file ({err})") from None
    return tensors, meta


def safetensors_files(folder: str | os.PathLike, what: str = "weights", expected: str = "") -> list[Path]:
    """The weight files of a local diffusers / transformers folder: those its `*.safetensors.index.json`
    lists (sharded checkpoints), else every `*.safetensors`. No file, or a listed one missing, is one
    GenlabError naming it; `expected` (e.g. "a diffusers UNet folder") is added when there are none."""
    folder = Path(folder)
    index = sorted(folder.glob("*.safetensors.index.json"))
    files = sorted({folder / f for f in json.loads(index[0].read_text())["weight_map"].values()}) if index \
        else sorted(folder.glob("*.safetensors"))
    if not files:
        bins = sorted(folder.glob("*.bin"))
        hint = (f" (only {bins[0].name}: convert it to safetensors; pickled weights are not loaded)" if bins
                else f" (expected {expected})" if expected else "")
        raise GenlabError(f"{what}: no .safetensors weights in {folder}{hint}")
    for f in files:
        if not f.is_file():
            raise GenlabError(f"{what}: {f} is missing (listed in {index[0].name})")
    return files


def read_safetensors_folder(folder: str | os.PathLike, what: str = "weights",
                            expected: str = "") -> dict[str, torch.Tensor]:
    """Every tensor of a local weights folder (`safetensors_files`) in one state dict; an unreadable file
    is one GenlabError naming it."""
    from safetensors.torch import load_file

    files = safetensors_files(folder, what, expected)
    state: dict[str, torch.Tensor] = {}
    for f in files:
        try:
            state.update(load_file(str(f)))
        except Exception as err:  # noqa: BLE001 - safetensors raises several types
            raise GenlabError(f"{what}: weights file {f} is corrupt or unreadable ({err})") from None
    return state


# ----------------------------------------------------------------------------- weights
def save_weights(path: str | os.PathLike, state_dict: dict[str, torch.Tensor], config: Any = None) -> Path:
    """Write `path` (safetensors) and, if a config is given, `path.with_suffix('.json')`; both atomic."""
    path = Path(path)
    if config is not None:
        atomic_write_text(path.with_suffix(".json"), json.dumps(config_to_dict(config), indent=2) + "\n")
    with atomic_path(path) as tmp:
        save_file(_for_saving(state_dict), str(tmp))
    return path


def load_weights(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict | None]:
    """(state_dict, config dict or None) from a file written by `save_weights`."""
    path = Path(path)
    tensors, _ = _read_safetensors(path, "weights file")
    cfg_path = path.with_suffix(".json")
    config = None
    if cfg_path.is_file():
        try:
            config = json.loads(cfg_path.read_text())
        except json.JSONDecodeError as err:
            raise GenlabError(f"config {cfg_path} is not valid JSON ({err})") from None
    return tensors, config


# ----------------------------------------------------------------------------- checkpoints
def checkpoint_name(step: int) -> str:
    return f"step_{step:08d}.safetensors"


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Store a nested dict of tensors / JSON values in one safetensors file, atomically."""
    path = Path(path)
    tensors: dict[str, torch.Tensor] = {}
    skeleton = flatten_state(state, "s", tensors)
    with atomic_path(path) as tmp:
        save_file(_for_saving(tensors), str(tmp), metadata={"genlab": json.dumps(skeleton)})
    return path


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """The nested dict given to `save_checkpoint`."""
    path = Path(path)
    tensors, meta = _read_safetensors(path, "checkpoint")
    if "genlab" not in meta:
        raise GenlabError(f"checkpoint {path} has no genlab metadata (was it written by save_checkpoint?)")
    try:
        return unflatten_state(json.loads(meta["genlab"]), tensors)
    except (json.JSONDecodeError, KeyError) as err:
        raise GenlabError(f"checkpoint {path} has corrupt metadata ({err})") from None


def list_checkpoints(folder: str | os.PathLike) -> list[tuple[int, Path]]:
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := CKPT_RE.match(p.name))]
    return sorted(found)


def latest_checkpoint(folder: str | os.PathLike) -> Path | None:
    found = list_checkpoints(folder)
    return found[-1][1] if found else None
