"""Several captioners per clip and an optional summariser (the paper: an image captioner on the
middle frame, a video captioner on the clip, an LLM that merges their captions).

Each captioner is given by a local path and fills its own column, `caption_<name>`:
- a transformers image-to-text folder (BLIP-style): a caption of the middle frame;
- a Python file defining `caption(frames: list[numpy.ndarray]) -> str` (RGB uint8 frames): any
  model, a video captioner included. Its optional `FRAMES` says how many of the clip's 2 fps samples
  it gets, spread over the clip: 1 (default) the middle one, 0 every sample.
The summariser (column `summary`) is a local transformers causal-LM folder (greedy, one prompt with
the clip's captions) or a Python file defining `summarise(captions: dict[str, str]) -> str`
(column name -> caption). Files and models load once per process (pool worker, Ray worker).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from genlab.errors import GenlabError
from genlab.systems.video.curation.config import Captioner

_LOADED: dict = {}

SUMMARY_PROMPT = "Summarise these descriptions of one video clip in one sentence.\n{captions}\nSummary:"


def check_path(path: str, what: str) -> Path:
    """A captioner / summariser path: a local folder or a .py file (nothing is downloaded)."""
    p = Path(path)
    if p.is_dir() or (p.is_file() and p.suffix == ".py"):
        return p
    raise GenlabError(f"{what} {path!r}: expected a local model folder or a .py file (nothing is downloaded)")


def _module(path: Path, what: str):
    """Import a plugin file once per process, under a name made from its path."""
    import importlib.util

    key = ("module", str(path.resolve()))
    if key not in _LOADED:
        name = "genlab_plugin_" + hashlib.sha1(key[1].encode()).hexdigest()[:12]
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except Exception as err:
            raise GenlabError(f"{what} {path}: importing it failed ({type(err).__name__}: {err})") from err
        _LOADED[key] = module
    return _LOADED[key]


def _function(path: Path, name: str, what: str):
    fn = getattr(_module(path, what), name, None)
    if not callable(fn):
        raise GenlabError(f"{what} {path}: expected a function `{name}`, found none")
    return fn


def _rgb(frame) -> np.ndarray:
    return np.ascontiguousarray(frame.image[..., ::-1])


class CaptionerStage:
    """One captioner -> `caption_<name>` (None for a clip without samples)."""

    def __init__(self, captioner: Captioner, max_tokens: int):
        self.captioner, self.max_tokens = captioner, max_tokens
        self.name = f"caption_{captioner.name}"

    def __call__(self, record, frames):
        path = check_path(self.captioner.path, f"captioner {self.captioner.name}")
        if path.is_dir():
            return {self.name: _image_caption(path, frames, self.max_tokens)}
        what = f"captioner {self.captioner.name}"
        fn = _function(path, "caption", what)
        count = getattr(_module(path, what), "FRAMES", 1)
        picked = frames.samples if count == 0 else frames.pick(int(count))
        if not picked:
            return {self.name: None}
        text = fn([_rgb(f) for f in picked])
        if not isinstance(text, str):
            raise GenlabError(f"captioner {self.captioner.name} {path}: caption() returned "
                              f"{type(text).__name__}, expected str")
        return {self.name: text.strip()}


def _image_caption(folder: Path, frames, max_tokens: int) -> str | None:
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    key = ("image-to-text", str(folder))
    if key not in _LOADED:
        _LOADED[key] = (AutoModelForImageTextToText.from_pretrained(folder, local_files_only=True).eval(),
                        AutoProcessor.from_pretrained(folder, local_files_only=True))
    model, processor = _LOADED[key]
    middle = frames.pick(1)
    if not middle:
        return None
    with torch.no_grad():
        inputs = processor(images=_rgb(middle[0]), return_tensors="pt")
        ids = model.generate(**inputs, max_new_tokens=max_tokens, do_sample=False)
    return processor.batch_decode(ids, skip_special_tokens=True)[0].strip()


class SummaryStage:
    """The clip's captions (`caption` and every `caption_<name>`) merged into `summary`."""

    name = "summary"

    def __init__(self, path: str, max_tokens: int):
        self.path, self.max_tokens = path, max_tokens

    def __call__(self, record, frames):
        captions = {k: v for k, v in sorted(record.items())
                    if (k == "caption" or k.startswith("caption_")) and isinstance(v, str) and v}
        if not captions:
            return {"summary": None}
        path = check_path(self.path, "summariser")
        if path.is_dir():
            return {"summary": _llm_summary(path, captions, self.max_tokens)}
        text = _function(path, "summarise", "summariser")(captions)
        if not isinstance(text, str):
            raise GenlabError(f"summariser {path}: summarise() returned {type(text).__name__}, expected str")
        return {"summary": text.strip()}


def _llm_summary(folder: Path, captions: dict[str, str], max_tokens: int) -> str:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    key = ("causal-lm", str(folder))
    if key not in _LOADED:
        _LOADED[key] = (AutoModelForCausalLM.from_pretrained(folder, local_files_only=True).eval(),
                        AutoTokenizer.from_pretrained(folder, local_files_only=True))
    model, tokenizer = _LOADED[key]
    prompt = SUMMARY_PROMPT.format(captions="\n".join(f"- {v}" for v in captions.values()))
    inputs = tokenizer(prompt, return_tensors="pt")
    with torch.no_grad():
        ids = model.generate(**inputs, max_new_tokens=max_tokens, do_sample=False,
                             pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id)
    return tokenizer.decode(ids[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True).strip()
