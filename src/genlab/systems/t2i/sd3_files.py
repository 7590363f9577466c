"""Where a pretrained SD3's parts are: a diffusers pipeline folder or Stability's single file.

    files = locate("stable-diffusion-3-medium-diffusers")          # diffusers folder (model_index.json)
    files = locate("sd3_medium_incl_clips_t5xxlfp8.safetensors")   # one file: MM-DiT, VAE, CLIP-L/G, T5
    files = locate("sd3_medium.safetensors", clip_l="clip_l.safetensors", clip_g=..., t5=...)

Only headers are read here (names, dtypes, shapes, sizes), so a wrong folder, a UNet checkpoint, a
missing encoder or a truncated file is one `GenlabError` before anything heavy is loaded. Each part is a
`Part`: its safetensors files, the key prefix inside them and, for folders, the config folder.
Single-file layout (sd3.5 reference code, `sd3_infer.py`): `model.diffusion_model.` (MM-DiT, reference
names), `first_stage_model.` (the VAE, LDM names), `text_encoders.{clip_l,clip_g,t5xxl}.transformer.`
(transformers names; CLIP-L has no text projection, T5 may be float8). Single files carry no tokenizers:
they come from `tokenizers=` (a folder with `tokenizer/`, `tokenizer_2/`, `tokenizer_3/`, e.g. the
diffusers folder), else from the single file's own folder (the official repository holds both).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from genlab.core.train.checkpoint import safetensors_files, safetensors_header
from genlab.errors import GenlabError

MMDIT_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
ENCODER_PREFIXES = {"clip_l": "text_encoders.clip_l.transformer.", "clip_g": "text_encoders.clip_g.transformer.",
                    "t5": "text_encoders.t5xxl.transformer."}
PART_NAMES = {"clip_l": "CLIP-L text encoder", "clip_g": "CLIP-G text encoder", "t5": "T5 text encoder",
              "transformer": "MM-DiT transformer", "vae": "VAE"}
DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "F8_E4M3": 1, "F8_E5M2": 1, "I64": 8, "I32": 4, "I16": 2,
               "I8": 1, "U8": 1, "BOOL": 1}


@dataclass(frozen=True)
class TensorInfo:
    dtype: str  # safetensors name: F32, F16, BF16, F8_E4M3, ...
    shape: tuple[int, ...]

    @property
    def numel(self) -> int:
        n = 1
        for s in self.shape:
            n *= s
        return n


def read_header(path: str | Path) -> dict[str, TensorInfo]:
    """Names, dtypes and shapes of a .safetensors file; a truncated or foreign file is a GenlabError."""
    return {k: TensorInfo(dtype, shape) for k, (dtype, shape) in safetensors_header(path).items()}


@dataclass(frozen=True)
class Part:
    """One component's weights: (file, key) pairs, names without `prefix`, and its config folder if any."""

    name: str  # clip_l | clip_g | t5 | transformer | vae
    files: tuple[Path, ...]
    prefix: str = ""
    folder: Path | None = None  # diffusers / transformers folder with config.json (None: config from shapes)
    tensors: dict[str, TensorInfo] = field(default_factory=dict, repr=False)
    where: dict[str, Path] = field(default_factory=dict, repr=False)  # name -> file holding it

    def nbytes(self, itemsize: int | None = None) -> int:
        """Bytes in memory with every floating tensor at `itemsize` bytes (None: as stored)."""
        return sum(t.numel * (itemsize if itemsize and t.dtype.startswith(("F", "BF")) else DTYPE_BYTES.get(t.dtype, 4))
                   for t in self.tensors.values())

    def state_dict(self) -> dict:
        """The tensors (names without the prefix), read from their files."""
        from safetensors import safe_open

        by_file: dict[Path, list[str]] = {}
        for name, f in self.where.items():
            by_file.setdefault(f, []).append(name)
        out = {}
        for f, names in by_file.items():
            try:
                with safe_open(str(f), framework="pt", device="cpu") as handle:
                    for name in names:
                        out[name] = handle.get_tensor(self.prefix + name)
            except Exception as err:  # noqa: BLE001 - safetensors raises several types
                raise GenlabError(f"{PART_NAMES[self.name]}: {f} is corrupt or unreadable ({err})") from None
        return out


def part_from_files(name: str, files: list[Path], prefix: str = "", folder: Path | None = None,
                    headers: dict[Path, dict[str, TensorInfo]] | None = None) -> Part:
    tensors, where = {}, {}
    for f in files:
        header = headers[f] if headers and f in headers else read_header(f)
        for key, info in header.items():
            if key.startswith(prefix):
                tensors[key[len(prefix):]] = info
                where[key[len(prefix):]] = f
    return Part(name, tuple(files), prefix, folder, tensors, where)


def part_from_folder(name: str, folder: Path, what: str) -> Part:
    """A transformers / diffusers component folder: config.json + (sharded) safetensors."""
    if not (folder / "config.json").is_file():
        raise GenlabError(f"{what}: no config.json in {folder}")
    return part_from_files(name, safetensors_files(folder, what), folder=folder)


def _encoder_part(name: str, path: str | Path) -> Part:
    """--clip-l / --clip-g / --t5: a transformers folder, or one .safetensors file (bare or prefixed names)."""
    path = Path(path)
    flag = "--" + name.replace("_", "-")
    if path.is_dir():
        return part_from_folder(name, path, f"{flag} {path}")
    if not path.is_file():
        raise GenlabError(f"{flag}: {PART_NAMES[name]} not found: {path}")
    header = read_header(path)
    prefix = ENCODER_PREFIXES[name] if any(k.startswith(ENCODER_PREFIXES[name]) for k in header) else ""
    return part_from_files(name, [path], prefix, headers={path: header})


@dataclass(frozen=True)
class SD3Files:
    """Every part of one SD3 model; t5 is None when it runs without T5 (zeros in its place)."""

    source: Path
    transformer: Part
    vae: Part
    clip_l: Part
    clip_g: Part
    t5: Part | None
    tokenizers: tuple[Path, Path, Path | None]  # folders for CLIP-L, CLIP-G, T5
    shift: float = 3.0  # the scheduler's resolution shift
    transformer_config: dict | None = None  # diffusers config.json (folders); None: from shapes
    vae_config: dict | None = None

    def parts(self) -> list[Part]:
        return [p for p in (self.clip_l, self.clip_g, self.t5, self.transformer, self.vae) if p is not None]


def _tokenizer_folders(root: Path, need_t5: bool, hint: str) -> tuple[Path, Path, Path | None]:
    names = ("tokenizer", "tokenizer_2", "tokenizer_3")
    found = [root / n if (root / n).is_dir() else None for n in names]
    missing = [n for n, f in zip(names, found) if f is None and (n != "tokenizer_3" or need_t5)]
    if missing:
        raise GenlabError(f"no {', '.join(missing)}/ in {root}: {hint}")
    return found[0], found[1], found[2]


def locate(path: str | Path, *, clip_l: str | Path | None = None, clip_g: str | Path | None = None,
           t5: str | Path | None = None, use_t5: bool = True, tokenizers: str | Path | None = None) -> SD3Files:
    """Find (and check the headers of) every part of an SD3 model at `path`."""
    path = Path(path)
    if path.is_dir():
        return _locate_folder(path, clip_l, clip_g, t5, use_t5)
    if not path.exists():
        raise GenlabError(f"pretrained SD3 not found: {path}")
    return _locate_single_file(path, clip_l, clip_g, t5, use_t5, tokenizers)


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise GenlabError(f"{path} is not readable JSON ({err})") from None


def _locate_folder(root: Path, clip_l, clip_g, t5, use_t5: bool) -> SD3Files:
    index = root / "model_index.json"
    if not index.is_file():
        if (root / "config.json").is_file() and "SD3Transformer2DModel" in (root / "config.json").read_text():
            raise GenlabError(f"{root} is a transformer folder only; give the pipeline folder above it "
                              "(model_index.json, text_encoder*/, tokenizer*/, vae/)")
        raise GenlabError(f"{root} is not a diffusers SD3 folder: no model_index.json")
    model_index = _read_json(index)
    cls = model_index.get("_class_name", "?")
    if "unet" in model_index or (root / "unet").is_dir():
        raise GenlabError(f"{root} holds a UNet pipeline ({cls}), not an SD3 MM-DiT: SD 1/2/XL checkpoints "
                          "are not text-to-image SD3 models")
    if not cls.startswith("StableDiffusion3"):
        raise GenlabError(f"{root}/model_index.json names {cls}; expected StableDiffusion3Pipeline")
    parts = {}
    for name, sub in (("transformer", "transformer"), ("vae", "vae"), ("clip_l", "text_encoder"),
                      ("clip_g", "text_encoder_2"), ("t5", "text_encoder_3")):
        given = {"clip_l": clip_l, "clip_g": clip_g, "t5": t5}.get(name)
        if name == "t5" and not use_t5:
            continue
        if given is not None:
            parts[name] = _encoder_part(name, given)
        elif (root / sub).is_dir():
            parts[name] = part_from_folder(name, root / sub, f"{PART_NAMES[name]} ({sub}/)")
        elif name == "t5" and model_index.get("text_encoder_3", [None])[0] is None:
            continue  # saved without T5: run with zeros in its place
        else:
            raise GenlabError(f"{root} has no {sub}/ ({PART_NAMES[name]})"
                              + ("; pass --no-t5 to run without it" if name == "t5" else ""))
    tok = _tokenizer_folders(root, "t5" in parts, "a diffusers SD3 folder has tokenizer/, tokenizer_2/, tokenizer_3/")
    shift = 3.0
    sched = root / "scheduler" / "scheduler_config.json"
    if sched.is_file():
        shift = float(_read_json(sched).get("shift", 3.0))
    return SD3Files(root, parts["transformer"], parts["vae"], parts["clip_l"], parts["clip_g"], parts.get("t5"), tok,
                    shift, _read_json(root / "transformer" / "config.json"), _read_json(root / "vae" / "config.json"))


def _locate_single_file(path: Path, clip_l, clip_g, t5, use_t5: bool, tokenizers) -> SD3Files:
    header = read_header(path)
    if not any(k.startswith(MMDIT_PREFIX + "joint_blocks.") for k in header):
        if any(k.startswith(MMDIT_PREFIX + "input_blocks.") or k.startswith("model.diffusion_model.input_blocks")
               for k in header):
            raise GenlabError(f"{path} holds a UNet (Stable Diffusion 1/2/XL), not an SD3 MM-DiT")
        raise GenlabError(f"{path} has no {MMDIT_PREFIX}joint_blocks.*: not an SD3 single file "
                          f"(first keys: {sorted(header)[:3]})")
    if not any(k.startswith(VAE_PREFIX) for k in header):
        raise GenlabError(f"{path} has no VAE ({VAE_PREFIX}*): not a complete SD3 single file")
    headers = {path: header}
    transformer = part_from_files("transformer", [path], MMDIT_PREFIX, headers=headers)
    vae = part_from_files("vae", [path], VAE_PREFIX, headers=headers)
    enc: dict[str, Part | None] = {}
    for name, given in (("clip_l", clip_l), ("clip_g", clip_g), ("t5", t5)):
        if name == "t5" and not use_t5:
            enc[name] = None
        elif given is not None:
            enc[name] = _encoder_part(name, given)
        elif any(k.startswith(ENCODER_PREFIXES[name]) for k in header):
            enc[name] = part_from_files(name, [path], ENCODER_PREFIXES[name], headers=headers)
        elif name == "t5":
            import warnings

            warnings.warn(f"{path} has no T5 inside and no --t5 was given: running without T5 (zeros in its "
                          "place, as --no-t5)", stacklevel=3)
            enc[name] = None
        else:
            raise GenlabError(f"{path} has no {PART_NAMES[name]} inside; pass --{name.replace('_', '-')} "
                              f"(a {name}.safetensors file or a transformers folder)")
    root = Path(tokenizers) if tokenizers is not None else path.parent
    tok = _tokenizer_folders(root, enc["t5"] is not None,
                             "a single file has no tokenizers; pass --tokenizers DIR (e.g. the diffusers SD3 folder)")
    return SD3Files(path, transformer, vae, enc["clip_l"], enc["clip_g"], enc["t5"], tok)
