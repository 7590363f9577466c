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

Memory: each text encoder is loaded, run once for the batch and released before the transformer is
loaded, and the transformer before the VAE, so the peak is the largest part, not the sum
(`keep_loaded=True` keeps them for repeated calls). Sampling runs the transformer in the chosen dtype
and keeps the latents and the VAE in float32.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from genlab.core.cond.text import CLIPTextEncoder, T5TextEncoder, TextEmbedding, load_tokenizer, sd3_layout
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
                 keep_loaded: bool = False, loras: list[tuple[str | Path, float]] = ()):
        if dtype not in DTYPES:
            raise GenlabError(f"--dtype: expected one of {', '.join(DTYPES)}, got {dtype!r}")
        self.files, self.dtype_name, self.dtype = files, dtype, DTYPES[dtype]
        self.device = resolve_device(device)
        self.keep_loaded = keep_loaded
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

    # ------------------------------------------------------------------ stages
    @torch.no_grad()
    def encode(self, prompts: list[str]) -> TextEmbedding:
        """prompts -> SD3 conditioning (B, 77 + 256, width) and pooled (B, 2048); encoders released after."""
        out = {}
        for name in ("clip_l", "clip_g", "t5"):
            if name == "t5" and self.files.t5 is None:
                out[name] = None
                continue
            enc = self._get(name, lambda name=name: self.load_encoder(name))
            emb = enc(list(prompts))
            out[name] = TextEmbedding(emb.context.to(self.dtype), emb.pooled.to(self.dtype))
            del enc
            self._free()
        return sd3_layout(out["clip_l"], out["clip_g"], out["t5"], self.cfg.context_dim, T5_TOKENS)

    def initial_noise(self, n: int, height: int, width: int, seed: int) -> torch.Tensor:
        """diffusers' latents for `torch.Generator("cpu").manual_seed(seed)`: one draw for the batch."""
        shape = (n, self.cfg.in_channels, height // self.vae_scale, width // self.vae_scale)
        g = torch.Generator("cpu").manual_seed(seed)
        return torch.randn(shape, generator=g, dtype=self.dtype).to(self.device, torch.float32)

    @torch.no_grad()
    def denoise(self, noise: torch.Tensor, cond: TextEmbedding, uncond: TextEmbedding | None, *, steps: int,
                scale: float, shift: float, progress: bool = False) -> torch.Tensor:
        from genlab.core.flow import formulation, grids, guidance, samplers

        net = self._get("transformer", self.load_transformer)
        den = formulation.rf().denoiser(_velocity_fn(net, self.dtype))
        c = {"context": cond.context, "pooled": cond.pooled}
        fn = den if uncond is None else guidance.cfg(den, {"context": uncond.context, "pooled": uncond.pooled}, c, scale)
        extra = c if uncond is None else None
        ts = grids.flow_match_euler(steps, shift)
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

    def __call__(self, prompts: list[str] | str, *, negative_prompt: str = "", num_images: int = 1, steps: int = 28,
                 guidance: float = 7.0, shift: float | None = None, size: tuple[int, int] | None = None, seed: int = 0,
                 progress: bool = False) -> torch.Tensor:
        """prompts -> (len(prompts) * num_images, 3, H, W) in [0, 1]; each prompt's images are consecutive."""
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        if not prompts:
            raise GenlabError("empty prompt list: give at least one prompt")
        if steps < 1 or num_images < 1:
            raise GenlabError(f"steps and images per prompt must be >= 1, got {steps} and {num_images}")
        height, width = size or self.default_size
        self.check_size(height, width)
        cfg_on = guidance > 1.0
        n = len(prompts)
        emb = self.encode(prompts + ([negative_prompt] if cfg_on else []))  # one pass of each encoder
        cond = _repeat(TextEmbedding(emb.context[:n], emb.pooled[:n]), num_images)
        uncond = _repeat(TextEmbedding(emb.context[n:].expand(n, -1, -1), emb.pooled[n:].expand(n, -1)), num_images) \
            if cfg_on else None
        noise = self.initial_noise(n * num_images, height, width, seed)
        latents = self.denoise(noise, cond, uncond, steps=steps, scale=guidance,
                               shift=self.files.shift if shift is None else shift, progress=progress)
        return self.decode(latents)

    def settings(self, prompts: list[str], *, num_images: int = 1, negative_prompt: str = "", steps: int = 28,
                 guidance: float = 7.0, shift: float | None = None, size: tuple[int, int] | None = None,
                 seed: int = 0) -> list[SampleSettings]:
        """One SampleSettings per output image of `self(prompts, ...)` with the same arguments."""
        height, width = size or self.default_size
        shift = self.files.shift if shift is None else shift
        return [SampleSettings(p, negative_prompt, steps, guidance, shift, height, width, seed, i * num_images + j,
                               self.dtype_name, self.files.t5 is not None, str(self.files.source),
                               tuple(f"{lora.source}:{scale:g}" for lora, scale in self.loras))
                for i, p in enumerate(prompts) for j in range(num_images)]


def _repeat(emb: TextEmbedding, k: int) -> TextEmbedding:
    """Each prompt's embedding k times in a row (diffusers' num_images_per_prompt order)."""
    return TextEmbedding(emb.context.repeat_interleave(k, 0), emb.pooled.repeat_interleave(k, 0))


def _velocity_fn(net: nn.Module, dtype: torch.dtype):
    """The transformer as net(x, 1000 t, context, pooled): float32 state in, float32 velocity out."""

    def velocity(x, timestep, context, pooled):
        return net(x.to(dtype), timestep, context.to(x.device), pooled.to(x.device)).float()

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


# ----------------------------------------------------------------------------- entry points
def load_pipeline(path: str | Path, *, dtype: str = "fp32", device: str | torch.device = "cpu", t5: bool = True,
                  clip_l: str | Path | None = None, clip_g: str | Path | None = None, t5_path: str | Path | None = None,
                  tokenizers: str | Path | None = None, keep_loaded: bool = False,
                  loras: list[tuple[str | Path, float]] = ()) -> SD3Pipeline:
    """An SD3 pipeline from a diffusers folder or a Stability single file (parts by path where missing), with
    LoRAs (file, scale) made by genlab, diffusers or PEFT. Only headers are read here; weights load when an
    image is made."""
    files = locate(path, clip_l=clip_l, clip_g=clip_g, t5=t5_path, use_t5=t5, tokenizers=tokenizers)
    return SD3Pipeline(files, dtype=dtype, device=device, keep_loaded=keep_loaded, loras=loras)


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


__all__ = ["DTYPES", "SD3Pipeline", "SampleSettings", "clip_config", "load_pipeline", "load_text_model", "save_pngs",
           "t5_config", "transformer_config"]
