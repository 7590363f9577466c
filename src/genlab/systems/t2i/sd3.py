"""Pretrained SD3 from local files: text -> image, equal to diffusers' StableDiffusion3Pipeline.

    pipe = load_pipeline("stable-diffusion-3-medium-diffusers", dtype="bf16")   # or a single file
    images = pipe(["a photo of a cat"], negative_prompt="", steps=28, guidance=7.0, size=(1024, 1024), seed=0)
    # (N, 3, H, W) in [0, 1]; save_pngs(images, "cat.png", settings) writes PNGs with the settings

What makes the images equal to diffusers' (same files, same seed):
* text: CLIP-L and CLIP-G penultimate states side by side in the same 77 tokens, zero-padded to T5's
  width, then 256 T5 tokens without attention mask (zeros without T5); pooled = both CLIP pooled
  vectors (`core.cond.text.sd3_layout`). The negative branch encodes the negative prompt ("" by default).
* noise: `torch.randn` of the whole batch from `torch.Generator("cpu").manual_seed(seed)` in the
  pipeline's dtype, as diffusers' `randn_tensor` with a CPU generator.
* time grid: `core.flow.grids.flow_match_euler(steps, shift)` (FlowMatchEulerDiscreteScheduler), Euler
  steps on the velocity, classifier-free guidance u + s (c - u) when s > 1.
* latents: decoded as z / scaling + shift through the 16-channel VAE (`core.autoencoders.kl`).
* SD3.5: MMDiT-X transformers load like the others; skip-layer guidance (`SkipLayerGuidance`, with CFG
  only) adds s (p(c) - p(c, blocks skipped)) on the steps start N < i < stop N, one extra pass on the
  conditional batch, as StableDiffusion3Pipeline(skip_guidance_layers=...).
* img2img (`init_image`, `strength`), as StableDiffusion3Img2ImgPipeline: the image is resized to the
  output size (Lanczos, aspect not kept) and encoded with a posterior sample, both drawn from the seed's
  generator before the noise; the run starts at step int(N - N * strength) of the N-step grid, from
  z = t noise + (1 - t) latents at that step's t.

Memory: each text encoder is loaded, run once for the batch and released before the transformer is
loaded, and the transformer before the VAE, so the peak is the largest part, not the sum
(`keep_loaded=True` keeps them for repeated calls). Sampling runs the transformer in the chosen dtype
and keeps the latents and the VAE in float32.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from genlab.core.cond.text import (
    CLIPTextEncoder,
    T5TextEncoder,
    TextEmbedding,
    TextEncoder,
    load_tokenizer,
    sd3_layout,
)
from genlab.core.flow.guidance import SkipLayerGuidance
from genlab.errors import GenlabError
from genlab.systems.t2i import convert
from genlab.systems.t2i.config import MMDiTConfig
from genlab.systems.t2i.sd3_files import Part, SD3Files, locate

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
CLIP_TOKENS, T5_TOKENS = 77, 256
# SD3LatentFormat: single files do not store the VAE's factors
SD3_SCALING_FACTOR, SD3_SHIFT_FACTOR = 1.5305, 0.0609


@dataclass(frozen=True)
class SampleSettings:
    """What a picture was made with; written into each PNG's text chunk."""

    prompt: str
    negative_prompt: str
    steps: int
    guidance: float
    shift: float
    height: int
    width: int
    seed: int
    index: int  # position in the batch drawn from the seed
    dtype: str
    t5: bool
    model: str
    skip_layer_guidance: SkipLayerGuidance | None = None
    init_image: str | None = None  # img2img: the image's path (or "<image>" when given in memory)
    strength: float | None = None
    loras: tuple[str, ...] = ()  # "file:scale" of each LoRA applied


def resolve_device(device: str | torch.device) -> torch.device:
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise GenlabError(f"--device {device}: CUDA is not available on this machine (torch {torch.__version__}); "
                          "use --device cpu")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise GenlabError(f"--device {device}: MPS is not available on this machine; use --device cpu")
    return device


def available_memory(device: torch.device) -> int:
    """Bytes free for weights: CUDA's free memory, else the OS's MemAvailable (or total RAM)."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    import os

    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _gib(n: int) -> str:
    return f"{n / 2**30:.1f} GiB"


def _meta_state(part: Part) -> dict[str, torch.Tensor]:
    return {k: torch.empty(v.shape, device="meta") for k, v in part.tensors.items()}


def transformer_config(files: SD3Files) -> MMDiTConfig:
    """The MM-DiT's config from the folder's config.json or from the single file's shapes (no weights read)."""
    if files.transformer_config is not None:
        return convert.from_diffusers_config(files.transformer_config)
    return convert.config_from_state_dict(_meta_state(files.transformer))


class SD3Pipeline:
    """Pretrained SD3 (MM-DiT + 16-channel VAE + CLIP-L, CLIP-G, optional T5) from `SD3Files`."""

    def __init__(self, files: SD3Files, dtype: str = "fp32", device: str | torch.device = "cpu",
                 keep_loaded: bool = False, text_cache: bool = True, loras: list[tuple[str | Path, float]] = ()):
        if dtype not in DTYPES:
            raise GenlabError(f"--dtype: expected one of {', '.join(DTYPES)}, got {dtype!r}")
        self.files, self.dtype_name, self.dtype = files, dtype, DTYPES[dtype]
        self.device = resolve_device(device)
        self.keep_loaded, self.text_cache = keep_loaded, text_cache
        self.cfg = transformer_config(files)
        vae_levels = len(self.files.vae_config["block_out_channels"]) if files.vae_config else \
            len({k.split(".")[2] for k in files.vae.tensors if k.startswith("encoder.down.")})
        self.vae_scale = 2 ** (vae_levels - 1)
        sample = (files.transformer_config or {}).get("sample_size") or min(128, self.cfg.pos_embed_max_size * self.cfg.patch_size)
        self.default_size = (sample * self.vae_scale, sample * self.vae_scale)
        self._loaded: dict[str, nn.Module] = {}
        self.check_memory()
        from genlab.systems.t2i.lora import check_lora, read_lora

        # LoRA files are small: read and checked against the MM-DiT's config here, before any weights load
        self.loras = [(read_lora(path), float(scale)) for path, scale in loras]
        for lora, _ in self.loras:
            check_lora(lora, self.cfg)

    # ------------------------------------------------------------------ sizes and memory
    def part_dtype(self, name: str) -> torch.dtype:
        if name == "vae":
            return torch.float32
        if name == "t5" and self.dtype == torch.float16:
            return torch.bfloat16  # T5 overflows in float16 (black images); bf16 has float32's range
        return self.dtype

    def part_bytes(self, part: Part) -> int:
        return part.nbytes(torch.empty((), dtype=self.part_dtype(part.name)).element_size())

    def check_memory(self) -> None:
        """One part at a time must fit (all of them with keep_loaded), else say how much is needed."""
        sizes = {p.name: self.part_bytes(p) for p in self.files.parts()}
        need = sum(sizes.values()) if self.keep_loaded else max(sizes.values()) + sizes["vae"]
        need = int(need * 1.1)  # activations and allocator slack at these sizes
        have = available_memory(self.device)
        if need > have:
            largest = max(sizes, key=sizes.get)
            raise GenlabError(f"SD3 in {self.dtype_name} needs about {_gib(need)} of {self.device.type} memory (largest "
                              f"part: {largest} {_gib(sizes[largest])}), {_gib(have)} available; try --dtype bf16"
                              + (" or --no-t5" if self.files.t5 is not None else ""))

    def check_size(self, height: int, width: int) -> None:
        step = self.vae_scale * self.cfg.patch_size
        if height % step or width % step or height <= 0 or width <= 0:
            raise GenlabError(f"--size {height}x{width}: height and width must be positive multiples of {step} "
                              f"(VAE factor {self.vae_scale} x patch {self.cfg.patch_size})")
        grid, m = (height // step, width // step), self.cfg.pos_embed_max_size
        if max(grid) > m:
            raise GenlabError(f"--size {height}x{width} needs a {grid[0]}x{grid[1]} token grid; this transformer's "
                              f"position table is {m}x{m} (at most {m * step} px a side)")

    # ------------------------------------------------------------------ parts
    def _get(self, name: str, load) -> nn.Module:
        if name in self._loaded:
            return self._loaded[name]
        module = load()
        if self.keep_loaded:
            self._loaded[name] = module
        return module

    def _free(self) -> None:
        """Hand a released part's memory back (the caller has dropped its last reference; the parts hold no
        reference cycles, so CPU memory is freed at once: a gc.collect here cost about a second a call)."""
        if not self.keep_loaded and self.device.type == "cuda":
            torch.cuda.empty_cache()

    def load_encoder(self, name: str):
        part = getattr(self.files, name)
        tok_folder = self.files.tokenizers[{"clip_l": 0, "clip_g": 1, "t5": 2}[name]]
        tokenizer = load_tokenizer(tok_folder)
        model = load_text_model(part, self.part_dtype(name), tokenizer).to(self.device)
        if name == "t5":
            return T5TextEncoder(model=model, tokenizer=tokenizer, max_length=T5_TOKENS, attention_mask=False)
        return CLIPTextEncoder(model=model, tokenizer=tokenizer, max_length=CLIP_TOKENS)

    def load_transformer(self) -> nn.Module:
        part = self.files.transformer
        state = part.state_dict()
        state = convert.from_diffusers(state) if part.folder is not None else state
        net = convert.build_mmdit(state, self.cfg, self.dtype, self.device, source=str(self.files.source))
        if self.loras:  # unmerged, as diffusers' load_lora_weights; `genlab t2i convert --lora` merges
            from genlab.systems.t2i.lora import apply_lora

            for lora, scale in self.loras:
                apply_lora(net, lora, scale)
        return net

    def load_vae(self):
        from genlab.core.autoencoders.kl import DiffusersKL

        part = self.files.vae
        if part.folder is not None:  # built on the meta device: no random init, no second copy in memory
            from diffusers import AutoencoderKL

            with torch.device("meta"):
                vae = AutoencoderKL.from_config(self.files.vae_config)
            try:
                vae.load_state_dict(part.state_dict(), strict=True, assign=True)
            except RuntimeError as err:
                raise GenlabError(f"VAE {part.folder}: weights do not fit its config.json "
                                  f"({str(err).splitlines()[0]})") from None
            return DiffusersKL(vae.to(self.device).float().eval())
        return DiffusersKL.from_ldm_state_dict(part.state_dict(), SD3_SCALING_FACTOR, SD3_SHIFT_FACTOR,
                                               device=self.device, source=f"VAE of {self.files.source}")

    def encoder_identity(self, name: str) -> str:
        """Everything an encoder's output depends on: weights and tokenizer files (path, size, modification
        time), tokens, dtype, device."""
        part = getattr(self.files, name)
        tok = Path(self.files.tokenizers[{"clip_l": 0, "clip_g": 1, "t5": 2}[name]])
        tok_files = sorted(f for f in tok.rglob("*") if f.is_file()) if tok.is_dir() else [tok]
        return json.dumps({"kind": "sd3-text-encoder/1", "part": name, "files": _fingerprint(part.files),
                           "prefix": part.prefix, "tokenizer": _fingerprint(tok_files),
                           "tokens": T5_TOKENS if name == "t5" else CLIP_TOKENS, "dtype": str(self.part_dtype(name)),
                           "device": self.device.type})

    def text_store(self, name: str):
        """The on-disk cache of one encoder's outputs (float32 rows keyed by the prompt; bf16 and fp16 values
        are exact in float32): `cache_dir("t2i-text")/sd3-<identity hash>/{context,pooled}`, as training's."""
        from genlab.core.io import cache_dir
        from genlab.systems.t2i.shards import ShardCache, content_hash

        folder = cache_dir("t2i-text") / f"sd3-{content_hash(self.encoder_identity(name).encode())[:16]}"
        return ShardCache(folder / "context"), ShardCache(folder / "pooled")

    def encode_part(self, name: str, prompts: list[str]) -> TextEmbedding:
        """One encoder's outputs for `prompts`, through the disk cache when `text_cache`: the encoder is loaded
        (once, for the missing prompts only) when some prompt is not stored yet."""

        def run(batch: list[str]) -> TextEmbedding:
            enc = self._get(name, lambda: self.load_encoder(name))
            emb = enc(batch)
            del enc
            self._free()
            return emb

        if not self.text_cache:
            return run(prompts)
        import numpy as np

        from genlab.systems.t2i.shards import content_hash

        ctx, pooled = self.text_store(name)
        keys = [content_hash(p.encode()) for p in prompts]
        missing = {k: p for k, p in zip(keys, prompts) if k not in ctx or k not in pooled}
        if missing:
            emb = run(list(missing.values()))
            ctx.add(list(missing), emb.context.float().cpu().numpy())
            pooled.add(list(missing), emb.pooled.float().cpu().numpy())
        return TextEmbedding(torch.from_numpy(np.stack([ctx.row(k) for k in keys])),
                             torch.from_numpy(np.stack([pooled.row(k) for k in keys])))

    # ------------------------------------------------------------------ stages
    @torch.no_grad()
    def encode(self, prompts: list[str]) -> TextEmbedding:
        """prompts -> SD3 conditioning (B, 77 + 256, width) and pooled (B, 2048); encoders released after.
        With `text_cache`, each encoder's output per prompt is kept on disk (`text_store`) and an encoder is
        not even loaded when every prompt is there."""
        out = {}
        for name in ("clip_l", "clip_g", "t5"):
            if name == "t5" and self.files.t5 is None:
                out[name] = None
                continue
            emb = self.encode_part(name, list(prompts))
            out[name] = TextEmbedding(emb.context.to(self.device, self.dtype), emb.pooled.to(self.device, self.dtype))
        return sd3_layout(out["clip_l"], out["clip_g"], out["t5"], self.cfg.context_dim, T5_TOKENS)

    def initial_noise(self, n: int, height: int, width: int, seed: int,
                      generator: torch.Generator | None = None) -> torch.Tensor:
        """diffusers' latents for `torch.Generator("cpu").manual_seed(seed)` (or the given generator's next
        draw): one draw for the batch."""
        shape = (n, self.cfg.in_channels, height // self.vae_scale, width // self.vae_scale)
        g = generator if generator is not None else torch.Generator("cpu").manual_seed(seed)
        return torch.randn(shape, generator=g, dtype=self.dtype).to(self.device, torch.float32)

    @torch.no_grad()
    def denoise(self, noise: torch.Tensor, cond: TextEmbedding, uncond: TextEmbedding | None, *, steps: int,
                scale: float, shift: float, progress: bool = False, start: int = 0,
                skip_layer_guidance: SkipLayerGuidance | None = None) -> torch.Tensor:
        """Euler over the `steps`-step grid from step `start` (img2img), `noise` being the state there."""
        from genlab.core.flow import formulation, grids, guidance, samplers

        net = self._get("transformer", self.load_transformer)
        den = formulation.rf().denoiser(_velocity_fn(net, self.dtype))
        ts = grids.flow_match_euler(steps, shift)[start:]
        c = {"context": cond.context, "pooled": cond.pooled}
        u = None if uncond is None else {"context": uncond.context, "pooled": uncond.pooled}
        if u is None:
            fn = den
        elif skip_layer_guidance is None:
            fn = guidance.cfg(den, u, c, scale)
        else:  # the window counts the steps that run (all of them but for img2img)
            fn = guidance.guided_terms(den, u, [guidance.Term(c, u, scale), skip_layer_guidance.term(c, ts)])
        extra = c if uncond is None else None
        x = samplers.euler(fn, noise, ts, extra_args=extra, progress=progress).x
        del net, fn, den
        self._free()
        return x

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """latents -> images in [0, 1] (diffusers' postprocessing)."""
        vae = self._get("vae", self.load_vae)
        images = vae.decode(latents.float())
        del vae
        self._free()
        return (images / 2 + 0.5).clamp(0, 1)

    def check_skip_layer_guidance(self, slg: SkipLayerGuidance | None, guidance: float) -> None:
        if slg is None:
            return
        from genlab.systems.t2i.model import check_skip_layers

        check_skip_layers(slg.layers, self.cfg.depth, what="--skip-layer-guidance")
        if guidance <= 1.0:
            raise GenlabError(f"--skip-layer-guidance needs classifier-free guidance (--guidance > 1, got {guidance}): "
                              "it is added to CFG, as in diffusers, which ignores it without CFG")

    def output_size(self, size: tuple[int, int] | None, init_image=None) -> tuple[int, int]:
        """--size, else (img2img) the init image's size rounded down to multiples of 16 (VAE factor x patch),
        else the model's default."""
        if size is not None:
            return size
        if init_image is not None:
            w, h = _open_image(init_image).size
            step = self.vae_scale * self.cfg.patch_size
            if h < step or w < step:
                raise GenlabError(f"--init-image {_image_name(init_image)} is {w}x{h} pixels; at least {step}x{step} "
                                  "is needed")
            return (h // step * step, w // step * step)
        return self.default_size

    def __call__(self, prompts: list[str] | str, *, negative_prompt: str = "", num_images: int = 1, steps: int = 28,
                 guidance: float = 7.0, shift: float | None = None, size: tuple[int, int] | None = None, seed: int = 0,
                 progress: bool = False, skip_layer_guidance: SkipLayerGuidance | None = None, init_image=None,
                 strength: float = 0.6) -> torch.Tensor:
        """prompts -> (len(prompts) * num_images, 3, H, W) in [0, 1]; each prompt's images are consecutive.
        init_image (a path or PIL image) turns on img2img with `strength` in (0, 1]."""
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        if not prompts:
            raise GenlabError("empty prompt list: give at least one prompt")
        if steps < 1 or num_images < 1:
            raise GenlabError(f"steps and images per prompt must be >= 1, got {steps} and {num_images}")
        height, width = self.output_size(size, init_image)
        self.check_size(height, width)
        cfg_on = guidance > 1.0
        self.check_skip_layer_guidance(skip_layer_guidance, guidance)
        start = 0 if init_image is None else img2img_start(steps, strength)
        image = None if init_image is None else \
            load_init_image(init_image, height, width, self.vae_scale * self.cfg.patch_size)
        n = len(prompts)
        emb = self.encode(prompts + ([negative_prompt] if cfg_on else []))  # one pass of each encoder
        cond = _repeat(TextEmbedding(emb.context[:n], emb.pooled[:n]), num_images)
        uncond = _repeat(TextEmbedding(emb.context[n:].expand(n, -1, -1), emb.pooled[n:].expand(n, -1)), num_images) \
            if cfg_on else None
        shift = self.files.shift if shift is None else shift
        generator = torch.Generator("cpu").manual_seed(seed)
        if image is None:
            x = self.initial_noise(n * num_images, height, width, seed, generator)
        else:  # diffusers' order of draws: the posterior sample, then the noise
            from genlab.core.flow import grids

            latents = self.encode_image(image, generator)
            noise = self.initial_noise(n * num_images, height, width, seed, generator)
            t0 = torch.tensor(float(grids.flow_match_euler(steps, shift)[start]), dtype=torch.float32)
            x = t0 * noise + (1.0 - t0) * latents.repeat(noise.shape[0], 1, 1, 1)  # z_t at the first step's t
        latents = self.denoise(x, cond, uncond, steps=steps, scale=guidance, shift=shift, progress=progress,
                               start=start, skip_layer_guidance=skip_layer_guidance)
        return self.decode(latents)

    @torch.no_grad()
    def encode_image(self, image: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """(1, 3, H, W) in [-1, 1] -> (1, C, H/8, W/8) latents, a posterior sample drawn from `generator`."""
        vae = self._get("vae", self.load_vae)
        z = vae.encode(image.to(self.device), generator=generator, sample=True).float()
        del vae
        self._free()
        return z

    def settings(self, prompts: list[str], *, num_images: int = 1, negative_prompt: str = "", steps: int = 28,
                 guidance: float = 7.0, shift: float | None = None, size: tuple[int, int] | None = None,
                 seed: int = 0, skip_layer_guidance: SkipLayerGuidance | None = None, init_image=None,
                 strength: float = 0.6) -> list[SampleSettings]:
        """One SampleSettings per output image of `self(prompts, ...)` with the same arguments."""
        height, width = self.output_size(size, init_image)
        shift = self.files.shift if shift is None else shift
        extra = dict(skip_layer_guidance=skip_layer_guidance)
        if init_image is not None:
            extra.update(init_image=_image_name(init_image), strength=strength)
        return [SampleSettings(p, negative_prompt, steps, guidance, shift, height, width, seed, i * num_images + j,
                               self.dtype_name, self.files.t5 is not None, str(self.files.source),
                               loras=tuple(f"{lora.source}:{scale:g}" for lora, scale in self.loras), **extra)
                for i, p in enumerate(prompts) for j in range(num_images)]


def _fingerprint(paths) -> list:
    """(resolved path, size, modification time) per file: a replaced weights file gives another identity
    without reading gigabytes to hash them."""
    out = []
    for f in paths:
        st = Path(f).resolve().stat()
        out.append([str(Path(f).resolve()), st.st_size, st.st_mtime_ns])
    return out


# ----------------------------------------------------------------------------- img2img
def img2img_start(steps: int, strength: float) -> int:
    """The first step of an img2img run: diffusers' get_timesteps, int(N - min(N strength, N))."""
    if not 0.0 < strength <= 1.0:
        raise GenlabError(f"--strength: expected a number in (0, 1], got {strength}")
    return int(max(steps - min(steps * strength, steps), 0))  # < steps for any strength > 0


def _image_name(image) -> str:
    return str(image) if isinstance(image, (str, Path)) else "<image>"


def _open_image(image):
    """A path or a PIL image -> PIL image in RGB (an unreadable file is a GenlabError)."""
    from PIL import Image, UnidentifiedImageError

    if isinstance(image, Image.Image):
        return image.convert("RGB")
    path = Path(image)
    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except (OSError, UnidentifiedImageError) as err:
        raise GenlabError(f"--init-image {path}: cannot read it as an image ({err})") from None


def load_init_image(image, height: int, width: int, multiple: int = 16) -> torch.Tensor:
    """A path or PIL image -> (1, 3, height, width) in [-1, 1]. An image of another size is resized to
    height x width with Lanczos, aspect ratio not kept (diffusers' VaeImageProcessor), with a warning."""
    import numpy as np
    from PIL import Image

    im = _open_image(image)
    if im.size != (width, height):
        warnings.warn(f"--init-image {_image_name(image)} is {im.size[0]}x{im.size[1]} (WxH); resized to {width}x{height} "
                      "(Lanczos, aspect ratio not kept) to match the output size (--size HxW, else the image's "
                      f"size rounded down to multiples of {multiple})", stacklevel=2)
        im = im.resize((width, height), resample=Image.LANCZOS)
    arr = np.asarray(im, dtype=np.float32) / 255.0  # (H, W, 3)
    return torch.from_numpy(arr).permute(2, 0, 1).unsqueeze(0) * 2.0 - 1.0


def _repeat(emb: TextEmbedding, k: int) -> TextEmbedding:
    """Each prompt's embedding k times in a row (diffusers' num_images_per_prompt order)."""
    return TextEmbedding(emb.context.repeat_interleave(k, 0), emb.pooled.repeat_interleave(k, 0))


def _velocity_fn(net: nn.Module, dtype: torch.dtype):
    """The transformer as net(x, 1000 t, context, pooled): float32 state in, float32 velocity out."""

    def velocity(x, timestep, context, pooled, skip_layers=()):
        return net(x.to(dtype), timestep, context.to(x.device), pooled.to(x.device), skip_layers=skip_layers).float()

    return velocity


# ----------------------------------------------------------------------------- text models
def load_text_model(part: Part, dtype: torch.dtype, tokenizer) -> nn.Module:
    """CLIPTextModelWithProjection / T5EncoderModel from a folder, or from bare weights with the config
    read off the shapes (float8 T5 weights are upcast)."""
    from transformers import CLIPTextModelWithProjection, T5EncoderModel
    from transformers.utils import logging as hf_logging

    cls = T5EncoderModel if part.name == "t5" else CLIPTextModelWithProjection
    hf_logging.disable_progress_bar()
    if part.folder is not None:
        try:
            return cls.from_pretrained(str(part.folder), local_files_only=True, dtype=dtype).eval()
        except (OSError, ValueError) as err:
            raise GenlabError(f"{part.name} text encoder {part.folder} cannot be loaded "
                              f"({str(err).strip().splitlines()[0]})") from None
    state = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in part.state_dict().items()}
    config = t5_config(state) if part.name == "t5" else clip_config(state, part.name, tokenizer)
    if part.name == "clip_l" and "text_projection.weight" not in state:
        state["text_projection.weight"] = torch.eye(config.hidden_size, dtype=dtype)  # SD3's CLIP-L: identity
    try:
        model = cls.from_pretrained(None, config=config, state_dict=state, dtype=dtype)
    except (OSError, ValueError, RuntimeError) as err:
        raise GenlabError(f"{part.name} text encoder in {part.files[0]}: weights do not fit "
                          f"({str(err).strip().splitlines()[0]})") from None
    return model.eval()


def _count(state: dict, prefix: str) -> int:
    return len({k[len(prefix):].split(".")[0] for k in state if k.startswith(prefix)})


def clip_config(state: dict, name: str, tokenizer):
    """CLIP text config from weight shapes; heads of 64 channels and the activation by role (OpenAI
    CLIP-L: quick_gelu; OpenCLIP bigG: gelu), as the released encoders."""
    from transformers import CLIPTextConfig

    try:
        tok = state["text_model.embeddings.token_embedding.weight"]
        hidden = tok.shape[1]
        proj = state.get("text_projection.weight")
        return CLIPTextConfig(
            vocab_size=tok.shape[0], hidden_size=hidden, num_attention_heads=max(1, hidden // 64),
            intermediate_size=state["text_model.encoder.layers.0.mlp.fc1.weight"].shape[0],
            num_hidden_layers=_count(state, "text_model.encoder.layers."),
            max_position_embeddings=state["text_model.embeddings.position_embedding.weight"].shape[0],
            projection_dim=proj.shape[0] if proj is not None else hidden,
            hidden_act="quick_gelu" if name == "clip_l" else "gelu",
            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    except KeyError as err:
        raise GenlabError(f"{name}: not a CLIP text encoder (missing {err})") from None


def t5_config(state: dict):
    """T5 v1.1 encoder config (gated GELU) from weight shapes."""
    from transformers import T5Config

    try:
        rel = state["encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"]
        heads = rel.shape[1]
        shared = state.get("shared.weight", state.get("encoder.embed_tokens.weight"))
        gated = "encoder.block.0.layer.1.DenseReluDense.wi_0.weight" in state
        wi = state["encoder.block.0.layer.1.DenseReluDense." + ("wi_0" if gated else "wi") + ".weight"]
        return T5Config(vocab_size=shared.shape[0], d_model=shared.shape[1], num_heads=heads,
                        d_kv=state["encoder.block.0.layer.0.SelfAttention.q.weight"].shape[0] // heads,
                        d_ff=wi.shape[0], num_layers=_count(state, "encoder.block."),
                        relative_attention_num_buckets=rel.shape[0],
                        feed_forward_proj="gated-gelu" if gated else "relu", is_encoder_decoder=False)
    except (KeyError, AttributeError) as err:
        raise GenlabError(f"t5: not a T5 encoder (missing {err})") from None


# ----------------------------------------------------------------------------- training with SD3's encoders
class SD3TextEncoder(TextEncoder):
    """A pretrained SD3's CLIP-L, CLIP-G and T5 as ONE frozen text encoder for training a genlab model
    (`TextConfig.encoders = ("sd3:<path>",)`, `genlab t2i train --text sd3:PATH`): exactly the pretrained
    pipeline's conditioning (`SD3Pipeline.encode`: `sd3_layout`, 77 + 256 tokens, pooled CLIP-L ; CLIP-G),
    so a model trained on it is conditioned like SD3. As one encoder it is dropped as a whole for CFG (SD3
    drops its three encoders independently); prompt embeddings go through the pipeline's disk cache."""

    name = "sd3"

    def __init__(self, path: str | Path, t5: bool = True):
        super().__init__()
        self.pipe = load_pipeline(path, t5=t5)
        self.context_dim, self.pooled_dim = self.pipe.cfg.context_dim, self.pipe.cfg.pooled_dim

    def forward(self, prompts: list[str]) -> TextEmbedding:
        emb = self.pipe.encode([prompts] if isinstance(prompts, str) else list(prompts))
        return TextEmbedding(emb.context.float(), emb.pooled.float())


def with_sd3_text(cfg, path: str | Path):
    """A T2IConfig conditioned by a pretrained SD3's text encoders (`SD3TextEncoder`): the backbone's context
    and pooled widths set to the SD3 transformer's (read from headers, nothing loaded)."""
    from dataclasses import replace

    cond = transformer_config(locate(path))
    return replace(cfg, model=replace(cfg.model, context_dim=cond.context_dim, pooled_dim=cond.pooled_dim),
                   text=replace(cfg.text, encoders=(f"sd3:{path}",)))


# ----------------------------------------------------------------------------- entry points
def load_pipeline(path: str | Path, *, dtype: str = "fp32", device: str | torch.device = "cpu", t5: bool = True,
                  clip_l: str | Path | None = None, clip_g: str | Path | None = None, t5_path: str | Path | None = None,
                  tokenizers: str | Path | None = None, keep_loaded: bool = False, text_cache: bool = True,
                  loras: list[tuple[str | Path, float]] = ()) -> SD3Pipeline:
    """An SD3 pipeline from a diffusers folder or a Stability single file (parts by path where missing), with
    LoRAs (file, scale) made by genlab, diffusers or PEFT. Only headers are read here; weights load when an
    image is made. text_cache: prompt embeddings on disk under `cache_dir("t2i-text")`, keyed by the encoders'
    files and the prompt."""
    files = locate(path, clip_l=clip_l, clip_g=clip_g, t5=t5_path, use_t5=t5, tokenizers=tokenizers)
    return SD3Pipeline(files, dtype=dtype, device=device, keep_loaded=keep_loaded, text_cache=text_cache, loras=loras)


def save_pngs(images: torch.Tensor, out: str | Path, settings: list[SampleSettings]) -> list[Path]:
    """(N, 3, H, W) in [0, 1] -> `out` (one image) or out-000.png, out-001.png, ... with each image's
    settings as JSON in the PNG text chunk ("genlab")."""
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    from genlab.core.io import atomic_path

    out = Path(out)
    arr = (images.detach().float().cpu().permute(0, 2, 3, 1).numpy() * 255).round().clip(0, 255).astype("uint8")
    width = max(3, int(math.log10(max(1, len(arr) - 1))) + 1)
    paths = [out] if len(arr) == 1 else [out.with_name(f"{out.stem}-{i:0{width}d}{out.suffix or '.png'}")
                                         for i in range(len(arr))]
    for a, s, p in zip(arr, settings, paths):
        info = PngInfo()
        info.add_text("genlab", json.dumps(asdict(s)))
        info.add_text("prompt", s.prompt)
        with atomic_path(p) as tmp:
            Image.fromarray(a).save(tmp, format="PNG", pnginfo=info)
    return paths


__all__ = ["DTYPES", "SD3Pipeline", "SD3TextEncoder", "SampleSettings", "SkipLayerGuidance", "clip_config", "img2img_start",
           "load_init_image", "load_pipeline", "load_text_model", "save_pngs", "t5_config", "transformer_config", "with_sd3_text"]
