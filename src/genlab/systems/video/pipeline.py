"""Image-to-video sampling as in SVD: EDM Euler on Karras sigmas with per-frame linear guidance.

    image (B, 3, H, W) in [-1, 1]
      -> cond image = image + cond_aug * n          (noise augmentation, the same cond_aug goes in the vector)
      -> concat latent = AE mode of it, unscaled    (repeated over T frames)
      -> context = image token of the clean image  (CLIP ViT-H for real weights, tiny encoder for toys)
      -> z_T ~ N(0, I) (= x sqrt(1 + sigma_max^2) in EDM's x, then VP-normalised)
      -> Euler in (sigma, x = z / a) on sigma_i = Karras(0.002, 700, rho 7) + [0]  (core/flow `ddim`)
         with D = D_u + s_t (D_c - D_u),  s = linspace(min_scale, max_scale, T)  (sgm LinearPredictionGuider)
      -> decode (chunks of frames) -> video (B, T, 3, H, W) in [-1, 1]

Random draws happen in diffusers' order (image noise, then the initial latent) so that with the same
generator our sampler reproduces `StableVideoDiffusionPipeline` (a test, to 1e-4).
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from genlab.core.flow import grids, guidance, samplers
from genlab.core.flow.formulation import edm_v
from genlab.errors import GenlabError
from genlab.systems.video.model import SVDModel

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

# The path only maps sigma <-> t for the sampler; the network sees c_noise(sigma). p_std = 4 keeps t well
# inside (0, 1) in float32 for sigma in [0.002, 700] (the training P_mean/P_std would put sigma_max at t = 1).
SAMPLING_FORMULATION = edm_v(p_mean=0.0, p_std=4.0)


@dataclass(frozen=True)
class SamplingConfig:
    num_frames: int = 14
    steps: int = 25
    min_guidance: float = 1.0
    max_guidance: float = 2.5
    fps_id: float = 6.0
    motion_bucket_id: float = 127.0
    cond_aug: float = 0.02
    sigma_min: float = 0.002
    sigma_max: float = 700.0
    rho: float = 7.0
    decode_chunk: int | None = None  # frames decoded at a time (None = all)
    preset_resolution: tuple[int, int] | None = None  # (H, W) the model was trained at; warn if different


def svd_sampling(**kw) -> SamplingConfig:
    return SamplingConfig(num_frames=14, steps=25, min_guidance=1.0, max_guidance=2.5,
                          preset_resolution=(576, 1024), **kw)


def svd_xt_sampling(**kw) -> SamplingConfig:
    return SamplingConfig(num_frames=25, steps=30, min_guidance=1.5, max_guidance=3.0,
                          preset_resolution=(576, 1024), **kw)


@dataclass
class VideoSample:
    latents: torch.Tensor  # (B, T, C_z, h, w)
    video: torch.Tensor | None  # (B, T, 3, H, W) in [-1, 1], None when not decoded
    nfe: int
    seconds: dict[str, float] = field(default_factory=dict)  # "denoise", "decode"


def randn(shape, generator: torch.Generator | None, device, dtype: torch.dtype) -> torch.Tensor:
    """N(0, I) drawn on the generator's device and moved (as diffusers' `randn_tensor`): a CPU generator seeded
    with S gives the same video on CPU and GPU, and the same as diffusers with that generator."""
    gen_device = generator.device if generator is not None else torch.device(device)
    return torch.randn(shape, generator=generator, device=gen_device, dtype=dtype).to(device)


def check_sampling_inputs(model: SVDModel, ae, image: torch.Tensor | None, cfg: SamplingConfig,
                          guidance_scales: torch.Tensor | None = None) -> None:
    """One precise error per bad input; sgm's warnings for motion bucket, fps and resolution."""
    if image is None:
        raise GenlabError("image-to-video needs a conditioning image (got none)")
    if not isinstance(image, torch.Tensor) or image.ndim != 4:
        raise GenlabError(f"image: expected a tensor (B, 3, H, W) in [-1, 1], got "
                          f"{tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__}")
    if image.shape[1] != 3:
        raise GenlabError(f"image: expected 3 channels (RGB), got {image.shape[1]}")
    if cfg.num_frames < 1:
        raise GenlabError(f"num_frames must be >= 1, got {cfg.num_frames}")
    if cfg.steps < 1:
        raise GenlabError(f"steps must be >= 1, got {cfg.steps}")
    if cfg.decode_chunk is not None and cfg.decode_chunk < 1:
        raise GenlabError(f"decode chunk size must be >= 1, got {cfg.decode_chunk}")
    f = ae.downsample_factor * model.unet.config.downsample_factor
    h, w = image.shape[-2:]
    if h % f or w % f:
        raise GenlabError(f"image: height and width must be divisible by {f} (autoencoder x UNet downsampling), "
                          f"got {h}x{w}")
    if guidance_scales is not None and guidance_scales.numel() != cfg.num_frames:
        raise GenlabError(f"guidance scales: expected one per frame ({cfg.num_frames}), got {guidance_scales.numel()}")
    if cfg.motion_bucket_id > 255:
        warnings.warn(f"motion_bucket_id {cfg.motion_bucket_id} > 255: outside SVD's training range", stacklevel=3)
    if not 5 <= cfg.fps_id <= 30:
        warnings.warn(f"fps_id {cfg.fps_id} outside 5..30: SVD was conditioned on that range", stacklevel=3)
    if cfg.preset_resolution is not None and (h, w) != tuple(cfg.preset_resolution):
        warnings.warn(f"resolution {h}x{w} differs from the model's {cfg.preset_resolution[0]}x"
                      f"{cfg.preset_resolution[1]}: quality may degrade (consider increasing cond_aug)", stacklevel=3)


@torch.no_grad()
def sample_i2v(
    model: SVDModel,
    ae,
    image: torch.Tensor,
    cfg: SamplingConfig,
    generator: torch.Generator | None = None,
    context: torch.Tensor | None = None,
    guidance_scales: torch.Tensor | None = None,
    motion_bucket_id: torch.Tensor | None = None,
    decode: bool = True,
    progress: bool = False,
) -> VideoSample:
    """Sample B videos from B conditioning images. `context` overrides the model's image encoder (CLIP
    tokens (B, L, D)); `guidance_scales` (T,) overrides linspace(min, max, T); `motion_bucket_id` (B,)
    overrides cfg's per sample."""
    check_sampling_inputs(model, ae, image, cfg, guidance_scales)
    b, dev = image.shape[0], image.device
    dtype = next(model.parameters()).dtype  # the image (and its noise) may be float32 under a half model
    t = cfg.num_frames
    noise = randn(image.shape, generator, dev, image.dtype)
    cond_image = image + cfg.cond_aug * noise  # noise augmentation
    ae_dtype = next(ae.parameters()).dtype if any(True for _ in ae.parameters()) else image.dtype
    image_latent = ae.encode_unscaled(cond_image.to(ae_dtype)).to(dtype)  # (B, C_z, h, w), not scaled
    if context is None:
        context = model.encode_image_token(image.to(dtype))  # (B, 1, D) from the clean image
    context = context.to(dtype)
    bucket = cfg.motion_bucket_id if motion_bucket_id is None else motion_bucket_id
    added = model.added_ids(b, cfg.fps_id, bucket, cfg.cond_aug, device=dev).to(dtype)
    cond = model.conditioning(image_latent, context, added, t)
    shape = (b, model.config.latent_channels, *image_latent.shape[-2:])
    return _sample(model, ae, cond, shape, cfg, generator, guidance_scales, decode, progress)


def _sample(model: SVDModel, ae, cond: dict, latent_shape: tuple[int, ...], cfg: SamplingConfig,
            generator: torch.Generator | None, guidance_scales: torch.Tensor | None, decode: bool,
            progress: bool) -> VideoSample:
    """Karras grid, guided EDM denoiser, Euler in (sigma, x); cond holds (B, ...) tensors for T frames."""
    b, c_z, h, w = latent_shape
    t = cfg.num_frames
    ref = cond["added_cond"]
    dtype, dev = ref.dtype, ref.device
    uncond = model.unconditional(cond)
    if guidance_scales is None:
        if cfg.min_guidance == 1.0 and cfg.max_guidance == 1.0:
            scales: float | torch.Tensor = 1  # scale 1 everywhere: a single conditional pass
        else:
            scales = guidance.linear_frame_scales(t, cfg.min_guidance, cfg.max_guidance)
    else:
        scales = guidance_scales.reshape(1, t, 1, 1, 1).to(dtype)
    f = SAMPLING_FORMULATION
    denoiser = guidance.guided(f.denoiser(model.net), [uncond, cond], [scales])
    ts = grids.karras(cfg.steps, f.path, sigma_min=cfg.sigma_min, sigma_max=cfg.sigma_max, rho=cfg.rho)
    x_t = randn((b, t, c_z, h, w), generator, dev, dtype)
    x_t = x_t * math.sqrt(1.0 + cfg.sigma_max**2)  # EDM's x at sigma_max (diffusers' init_noise_sigma)
    z = x_t * float(f.path.a(ts[0]))  # VP-normalised z = a x
    t0 = time.perf_counter()
    out = samplers.ddim(denoiser, z, ts, progress=progress)  # Euler in (sigma, x) = sgm's EulerEDMSampler
    t1 = time.perf_counter()
    latents = out.x
    video = ae.decode_video(latents, cfg.decode_chunk).float() if decode else None
    seconds = {"denoise": t1 - t0, "decode": time.perf_counter() - t1}
    return VideoSample(latents, video, out.nfe, seconds)


@torch.no_grad()
def sample_t2v(model: SVDModel, ae, context: torch.Tensor | None, height: int, width: int, cfg: SamplingConfig,
               generator: torch.Generator | None = None, guidance_scales: torch.Tensor | None = None,
               decode: bool = True, progress: bool = False,
               motion_bucket_id: torch.Tensor | None = None) -> VideoSample:
    """Text-to-video (paper section 4.2): text tokens (B, L, D) in cross-attention, no concat latent; the
    vector's cond_aug is 0 (no conditioning image to augment, as in training). `motion_bucket_id` (B,)
    overrides cfg's per sample."""
    if model.config.mode != "t2v":
        raise GenlabError(f"sample_t2v needs a model built with mode='t2v', got mode={model.config.mode!r}")
    if context is None:
        raise GenlabError("text-to-video needs a prompt (context tokens (B, L, D)), got none")
    f = ae.downsample_factor * model.unet.config.downsample_factor
    if height % f or width % f:
        raise GenlabError(f"height and width must be divisible by {f}, got {height}x{width}")
    if cfg.num_frames < 1:
        raise GenlabError(f"num_frames must be >= 1, got {cfg.num_frames}")
    b = context.shape[0]
    bucket = cfg.motion_bucket_id if motion_bucket_id is None else motion_bucket_id
    added = model.added_ids(b, cfg.fps_id, bucket, 0.0, device=context.device)
    cond = {"context": context, "added_cond": added.to(context.dtype)}
    shape = (b, model.config.latent_channels, height // ae.downsample_factor, width // ae.downsample_factor)
    return _sample(model, ae, cond, shape, cfg, generator, guidance_scales, decode, progress)


@torch.no_grad()
def sample_prompts(model: SVDModel, ae, prompts: list[str], height: int, width: int, cfg: SamplingConfig,
                   generator: torch.Generator | None = None, motion_bucket_id: torch.Tensor | None = None,
                   progress: bool = False) -> VideoSample:
    """Text-to-video from prompts, through the model's own text encoder (builtin or a local CLIP)."""
    if model.config.mode != "t2v":
        raise GenlabError(f"a prompt needs a text-to-video model (mode 't2v'), got mode {model.config.mode!r}")
    if not prompts or any(not p.strip() for p in prompts):
        raise GenlabError(f"--prompt: expected non-empty text, got {prompts!r}")
    dev = next(model.parameters()).device
    context = model.encode_text(model.tokenize(prompts).to(dev))
    return sample_t2v(model, ae, context, height, width, cfg, generator=generator, progress=progress,
                      motion_bucket_id=motion_bucket_id)


@torch.no_grad()
def sample_interpolation(model: SVDModel, ae, start: torch.Tensor, end: torch.Tensor, cfg: SamplingConfig,
                         generator: torch.Generator | None = None, decode: bool = True,
                         progress: bool = False) -> VideoSample:
    """Frame interpolation (App. D.5): T frames between (and including) `start` and `end` images."""
    if model.config.mode != "interp":
        raise GenlabError(f"sample_interpolation needs a model built with mode='interp', got {model.config.mode!r}")
    check_sampling_inputs(model, ae, start, cfg)
    check_sampling_inputs(model, ae, end, cfg)
    if start.shape != end.shape:
        raise GenlabError(f"interpolation: start {tuple(start.shape)} and end {tuple(end.shape)} differ in shape")
    b = start.shape[0]
    noise = torch.randn((2, *start.shape), generator=generator, dtype=start.dtype, device=start.device)
    z_s = ae.encode_unscaled(start + cfg.cond_aug * noise[0])
    z_e = ae.encode_unscaled(end + cfg.cond_aug * noise[1])
    added = model.added_ids(b, cfg.fps_id, cfg.motion_bucket_id, cfg.cond_aug, device=start.device).to(start.dtype)
    cond = model.interp_conditioning(z_s, z_e, model.encode_image_token(start), model.encode_image_token(end),
                                     added, cfg.num_frames)
    shape = (b, model.config.latent_channels, *z_s.shape[-2:])
    return _sample(model, ae, cond, shape, cfg, generator, None, decode, progress)


# ----------------------------------------------------------------------------------------------------
# image-to-video with a pretrained SVD (pretrained.py): the user's image in, frames out


def load_image(path, arg: str = "--image") -> PILImage:
    """A PNG/JPEG/... as RGB: alpha is composited over white, one-channel / palette images are expanded.
    `arg` names the option in errors."""
    from pathlib import Path

    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise GenlabError(f"{arg} {path}: not found")
    try:
        img = Image.open(path)
        img.load()
    except (UnidentifiedImageError, OSError) as err:
        raise GenlabError(f"{arg} {path}: not a readable image ({err})") from None
    return to_rgb(img)


def to_rgb(img: PILImage) -> PILImage:
    from PIL import Image

    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img.convert("RGB")


def pil_to_tensor(img: PILImage) -> torch.Tensor:
    """PIL RGB -> (1, 3, H, W) float32 in [-1, 1]."""
    import numpy as np

    x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1)[None]
    return x * 2.0 - 1.0


def image_to_video(c, image: PILImage, cfg: SamplingConfig, size: tuple[int, int] | None = None,
                   generator: torch.Generator | None = None, progress: bool = False) -> VideoSample:
    """SVD image-to-video with the reference preprocessing (that of diffusers' StableVideoDiffusionPipeline):

    - CLIP sees the image at its own resolution, anti-aliased down to 224 (`CLIPImageTokens`);
    - the VAE sees it resized to `size` = (H, W) (default: the model's trained 576x1024) with PIL's Lanczos
      filter, aspect ratio not kept (as diffusers does; crop first to keep it);
    - noise is drawn as diffusers draws it, so `torch.Generator("cpu").manual_seed(S)` gives diffusers' video.
    `c` is `pretrained.SVDComponents`. Returns frames (1, T, 3, H, W) in [-1, 1] (float32)."""
    from PIL import Image

    image = to_rgb(image)
    h, w = size if size is not None else c.config.resolution
    dev = next(c.model.parameters()).device
    full = pil_to_tensor(image).to(dev)  # float32, whatever the model's dtype (as diffusers)
    with torch.no_grad():
        context = c.clip(full)  # (1, 1, D)
    vae_in = image if image.size == (w, h) else image.resize((w, h), resample=Image.LANCZOS)
    if cfg.num_frames > c.config.trained_frames:
        warnings.warn(f"--frames {cfg.num_frames} is beyond the {c.config.trained_frames} frames {c.config.name} "
                      "was trained on: expect drift or repetition after that", stacklevel=2)
    return sample_i2v(c.model, c.ae, pil_to_tensor(vae_in).to(dev), cfg, generator=generator, context=context,
                      progress=progress)


def to_uint8_frames(video: torch.Tensor):
    """(T, 3, H, W) in [-1, 1] -> (T, H, W, 3) uint8, rounded as diffusers' postprocessing rounds."""
    x = (video.float() / 2 + 0.5).clamp(0, 1)
    return (x.permute(0, 2, 3, 1).cpu().numpy() * 255).round().astype("uint8")
