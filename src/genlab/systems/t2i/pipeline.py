"""The t2i model as one module (text conditioning + backbone), saving/loading, and sampling.

    model = build_model(cfg)                          # T2IModel: .text (TextConditioner) + .backbone
    images = generate(model, ["a handwritten digit seven"], steps=28, guidance=4.0, shift=1.0, seed=0)
    save_grid(images, "grid.png", nrow=10)
    save_model("runs/x", model, ema_model, cfg)       # model/ema .safetensors + .json (T2IConfig)
    model = load_model("runs/x", ema=True)

Images live in the model's space (pixels scaled to [-1, 1] for the digits; latents otherwise).
The unconditional input for guidance is every text encoder dropped (zeros), as in training.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch import nn

from genlab.core.cond.text import (
    BuiltinTextEncoder,
    CLIPTextEncoder,
    MiniLMEncoder,
    T5TextEncoder,
    TextConditioner,
    TextEmbedding,
    TextEncoder,
)
from genlab.core.flow import grids, guidance, samplers
from genlab.core.flow.formulation import Formulation, rf_lognorm
from genlab.core.io import atomic_path
from genlab.core.train import config_from_dict, load_weights, save_weights
from genlab.errors import GenlabError
from genlab.systems.t2i.config import DiTConfig, MMDiTConfig, T2IConfig, TextConfig


def build_encoder(spec: str, text: TextConfig) -> TextEncoder:
    """"builtin" | "minilm" | "clip:<local path>" | "t5:<local path>" | "sd3:<pretrained SD3 path>" -> a
    TextEncoder ("sd3": the pretrained pipeline's three encoders in SD3's layout, `sd3.SD3TextEncoder`)."""
    if spec == "builtin":
        return BuiltinTextEncoder(text.builtin_dim, text.builtin_vocab, text.max_length, text.builtin_layers)
    if spec == "minilm":
        return MiniLMEncoder(text.max_length)
    kind, _, path = spec.partition(":")
    if kind == "clip" and path:
        return CLIPTextEncoder(path)
    if kind == "t5" and path:
        return T5TextEncoder(path)
    if kind == "sd3" and path:
        from genlab.systems.t2i.sd3 import SD3TextEncoder

        return SD3TextEncoder(path)
    raise GenlabError(f"TextConfig.encoders: unknown encoder {spec!r}; expected builtin, minilm, clip:<path>, t5:<path>, "
                      "sd3:<path>")


class T2IModel(nn.Module):
    """forward(x, timestep, context=, pooled=) or forward(x, timestep, caption=, keep=): caption
    indexes the table given to `set_captions` (training), keep (B, n_encoders) drops encoders."""

    def __init__(self, cfg: T2IConfig, text: TextConditioner | None = None):
        super().__init__()
        self.cfg = cfg
        if text is None and not cfg.text.encoders:
            raise GenlabError("T2IConfig.text.encoders is empty: sd3_medium() / sd3_5_large() give the shapes only; set "
                              "encoders (e.g. 'clip:<folder>', 't5:<folder>') to train one, or load pretrained SD3 "
                              "with genlab.systems.t2i.load_pipeline(PATH)")
        self.text = text if text is not None else TextConditioner([build_encoder(s, cfg.text) for s in cfg.text.encoders])
        m = cfg.model
        if (m.context_dim, m.pooled_dim) != (self.text.context_dim, self.text.pooled_dim):
            raise GenlabError(
                f"model context_dim/pooled_dim ({m.context_dim}, {m.pooled_dim}) do not match the text encoders "
                f"{list(cfg.text.encoders)} ({self.text.context_dim}, {self.text.pooled_dim})")
        if isinstance(m, MMDiTConfig):
            from genlab.systems.t2i.model import MMDiT

            self.backbone = MMDiT(m)
        else:
            from genlab.systems.t2i.dit import DiT

            self.backbone = DiT(m)
        self._tokens: list[dict[str, torch.Tensor]] = []
        self._frozen: list[TextEmbedding] = []

    def set_captions(self, captions: list[str], frozen: list[TextEmbedding] | None = None) -> None:
        """The caption table for training: tokens for trainable encoders, embeddings of the frozen ones
        (computed here, or given: one TextEmbedding per frozen encoder, rows in caption order)."""
        with torch.no_grad():
            self._tokens = self.text.tokenize(captions)
            self._frozen = frozen if frozen is not None else self.text.frozen_embeddings(captions)

    def embed(self, caption: torch.Tensor, keep: torch.Tensor | None = None) -> TextEmbedding:
        dev = caption.device
        tokens = [{k: v.to(dev)[caption] for k, v in t.items()} for t in self._tokens]
        frozen = [TextEmbedding(e.context.to(dev)[caption], e.pooled.to(dev)[caption]) for e in self._frozen]
        return self.text.combine(tokens, frozen, keep)

    def fsdp_units(self) -> list[nn.Module]:
        """FSDP2 units: the transformer blocks (text encoders are called by method, so they stay in the root)."""
        blocks = getattr(self.backbone, "joint_blocks", None) or getattr(self.backbone, "blocks", None)
        return list(blocks or [])

    def forward(self, x, timestep, context=None, pooled=None, caption=None, keep=None) -> torch.Tensor:
        if caption is not None:
            emb = self.embed(caption, keep)
            context, pooled = emb.context, emb.pooled
        return self.backbone(x, timestep, context.to(x.dtype), pooled.to(x.dtype))


def build_model(cfg: T2IConfig, device: str | torch.device = "cpu") -> T2IModel:
    return T2IModel(cfg).to(device)


def default_formulation(cfg: T2IConfig) -> Formulation:
    """SD3's choice: rectified flow with logit-normal(m, s) training times."""
    return rf_lognorm(cfg.logit_mean, cfg.logit_std)


# ----------------------------------------------------------------------------- files
def save_model(folder: str | Path, model: T2IModel, ema: T2IModel | None, cfg: T2IConfig) -> Path:
    """folder/model.safetensors (+ .json) and folder/ema.safetensors (+ .json), atomically each."""
    folder = Path(folder)
    save_weights(folder / "model.safetensors", model.state_dict(), cfg)
    if ema is not None:
        save_weights(folder / "ema.safetensors", ema.state_dict(), cfg)
    return folder


def load_model(path: str | Path, ema: bool = True, device: str | torch.device = "cpu") -> T2IModel:
    """A trained T2IModel from a run folder (EMA weights if present and ema=True) or a weights file."""
    path = Path(path)
    if path.is_dir():
        candidates = (["ema.safetensors"] if ema else []) + ["model.safetensors"]
        found = [path / c for c in candidates if (path / c).is_file()]
        if not found:
            raise GenlabError(f"no model.safetensors or ema.safetensors in {path}")
        path = found[0]
    state, cfg_dict = load_weights(path)
    if cfg_dict is None:
        raise GenlabError(f"{path.with_suffix('.json')} is missing: it holds the config the weights need")
    cfg = config_from_dict(T2IConfig, cfg_dict, source=str(path.with_suffix(".json")))
    model = T2IModel(cfg)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        first = str(err).splitlines()[0]
        raise GenlabError(f"{path}: weights do not fit the config beside them ({first})") from None
    return model.to(device).eval()


# ----------------------------------------------------------------------------- sampling
@torch.no_grad()
def generate(model: T2IModel, prompts: list[str], *, steps: int = 28, guidance_scale: float = 4.0,
             shift: float | None = None, seed: int = 0, formulation: Formulation | None = None,
             sampler: str = "euler", image_size: tuple[int, int] | None = None,
             progress: bool = False) -> torch.Tensor:
    """prompts -> (len(prompts), C, H, W) samples; one seed gives one noise draw per prompt in order."""
    if isinstance(prompts, str):
        prompts = [prompts]
    if len(prompts) == 0:
        raise GenlabError("empty prompt list: give at least one prompt")
    if steps < 1:
        raise GenlabError(f"steps: expected >= 1, got {steps}")
    cfg = model.cfg
    form = formulation or default_formulation(cfg)
    h, w = image_size or cfg.image_size
    p = cfg.model.patch_size
    if h % p or w % p:
        raise GenlabError(f"image size {h}x{w} is not divisible by the patch size {p}")
    device = next(model.parameters()).device
    model.eval()
    cond = model.text(list(prompts))
    null = TextEmbedding(torch.zeros_like(cond.context), torch.zeros_like(cond.pooled))
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(len(prompts), cfg.model.in_channels, h, w, generator=g).to(device)
    alpha = cfg.shift if shift is None else shift
    if form.prediction == "velocity" or form.name.startswith("rf"):
        ts = grids.shifted(steps, alpha)
    else:
        ts = form.default_grid(steps)
    den = form.denoiser(model)
    if guidance_scale == 1.0:
        fn = lambda z, t: den(z, t, context=cond.context, pooled=cond.pooled)
    else:
        fn = guidance.cfg(den, {"context": null.context, "pooled": null.pooled},
                          {"context": cond.context, "pooled": cond.pooled}, guidance_scale)
    if sampler not in samplers.SAMPLERS:
        raise GenlabError(f"sampler: expected one of {sorted(samplers.SAMPLERS)}, got {sampler!r}")
    return samplers.SAMPLERS[sampler](fn, x, ts, progress=progress).x


def to_uint8(images: torch.Tensor, value_range: tuple[float, float] = (-1.0, 1.0)) -> np.ndarray:
    lo, hi = value_range
    x = ((images.detach().float().cpu() - lo) / (hi - lo)).clamp(0, 1)
    return (x * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()  # (N, H, W, C)


def save_grid(images: torch.Tensor, path: str | Path, nrow: int | None = None, upscale: int = 1,
              value_range: tuple[float, float] = (-1.0, 1.0), pad: int = 1) -> Path:
    """(N, C, H, W) -> one PNG grid (C = 1 or 3), written atomically."""
    from PIL import Image

    arr = to_uint8(images, value_range)
    n, h, w, c = arr.shape
    nrow = nrow or math.ceil(math.sqrt(n))
    rows = math.ceil(n / nrow)
    grid = np.full((rows * (h + pad) + pad, nrow * (w + pad) + pad, c), 64, dtype=np.uint8)
    for i in range(n):
        r, col = divmod(i, nrow)
        grid[pad + r * (h + pad): pad + r * (h + pad) + h, pad + col * (w + pad): pad + col * (w + pad) + w] = arr[i]
    img = Image.fromarray(grid[..., 0] if c == 1 else grid)
    if upscale > 1:
        img = img.resize((img.width * upscale, img.height * upscale), Image.NEAREST)
    path = Path(path)
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG")
    return path


__all__ = ["DiTConfig", "T2IModel", "build_model", "default_formulation", "generate", "load_model", "save_grid",
           "save_model", "to_uint8"]
