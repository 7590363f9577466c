"""Sampling: insertion and the paper's other modes, with single- or two-scale guidance.

Noise: eps (SD-1.5) or v (the toys; `ModelConfig.prediction`) on SD's 1000-step linear-beta schedule
(`core.flow.eps_linear` / `v_linear`), DDIM on the
"leading" discrete grid (steps_offset 1, as SD-1.5's scheduler). Guidance over scene S and person P
in one batched forward (`core.flow.guidance.guided`):

    eps = eps(0,0) + s_scene (eps(S,0) - eps(0,0)) + s_person (eps(S,P) - eps(S,0))

s_scene = s_person = s is the paper's single scale (eps(0,0) + s (eps(S,P) - eps(0,0))).

Modes: insertion (S, P), person hallucination (S, no P), scene hallucination (no S, P), partial
completion (S with a part of the person visible, P: the mask is a half box), unconditional.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from genlab.core.flow import formulation as flow_formulation
from genlab.core.flow import grids, guidance, samplers
from genlab.errors import GenlabError
from genlab.systems.insertion.config import SampleSettings
from genlab.systems.insertion.model import InsertionModel, mask_to_latent, null_reference, null_scene_pixels


def formulation_for(config) -> flow_formulation.Formulation:
    """The model's parametrisation on SD's linear schedule (ModelConfig.prediction)."""
    return flow_formulation.v_linear() if config.prediction == "v" else flow_formulation.eps_linear()


MODES = ("insertion", "person_hallucination", "scene_hallucination", "partial", "unconditional")


@dataclass
class SampleResult:
    images: torch.Tensor  # (N, 3, H, W) in [-1, 1]
    latents: torch.Tensor
    nfe: int


def check_inputs(scene: torch.Tensor, mask: torch.Tensor, reference: torch.Tensor | None, factor: int,
                 mode: str, downsamplings: int = 1) -> None:
    """One clear error for each kind of bad input (sizes, masks, references, NaNs)."""
    if mode not in MODES:
        raise GenlabError(f"sample: mode {mode!r} not in {MODES}")
    if scene.ndim != 4 or scene.shape[1] != 3:
        raise GenlabError(f"sample: scene expected (N, 3, H, W), got {tuple(scene.shape)}")
    h, w = scene.shape[-2:]
    need = factor * 2 ** downsamplings  # the autoencoder's factor times the UNet's downsamplings
    if h % need or w % need:
        raise GenlabError(f"sample: image size {h}x{w} must be divisible by {need} (autoencoder factor {factor} "
                          f"x {2 ** downsamplings} for the UNet's downsampling); resize or crop the scene")
    if mask.shape != (scene.shape[0], 1, h, w):
        raise GenlabError(f"sample: mask expected {(scene.shape[0], 1, h, w)}, got {tuple(mask.shape)}")
    for name, t in (("scene", scene), ("mask", mask), ("reference", reference)):
        if t is not None and not torch.isfinite(t).all():
            raise GenlabError(f"sample: {name} contains NaN or inf")
    if mode in ("insertion", "person_hallucination", "partial"):
        frac = (mask > 0.5).float().flatten(1).mean(1)
        if (frac == 0).any():
            raise GenlabError(f"sample: mask is empty for item(s) {torch.nonzero(frac == 0).flatten().tolist()}; "
                              "mark where the person goes")
        if (frac == 1).any():
            raise GenlabError(f"sample: mask covers the whole image for item(s) "
                              f"{torch.nonzero(frac == 1).flatten().tolist()}; use mode scene_hallucination")
    if mode in ("insertion", "scene_hallucination", "partial"):
        if reference is None:
            raise GenlabError(f"sample: mode {mode} needs a reference person image")
        empty = (reference.abs() < 1e-2).flatten(1).all(1)
        if empty.any():
            raise GenlabError(f"sample: reference image(s) {torch.nonzero(empty).flatten().tolist()} contain no "
                              "person (all grey); use mode person_hallucination")


class InsertionPipeline:
    """model + autoencoder (+ the formulation); `sample(...)` runs any mode."""

    def __init__(self, model: InsertionModel, autoencoder: torch.nn.Module, ref_size: int, config=None):
        self.model = model.eval()
        self.config = config  # the InsertionConfig the weights came with, when a loader knows it
        self.ae = autoencoder.eval() if isinstance(autoencoder, torch.nn.Module) else autoencoder
        self.ref_size = ref_size
        self.form = formulation_for(model.config)
        self._null: dict = {}  # the dropped conditions per size (weights are frozen while a pipeline lives)

    @property
    def factor(self) -> int:
        return int(self.ae.downsample_factor)

    def grid(self, steps: int, set_alpha_to_one: bool = False) -> torch.Tensor:
        return grids.discrete(steps, self.form.path, spacing="leading", steps_offset=1,
                              set_alpha_to_one=set_alpha_to_one)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        z = self.ae.encode(images)
        if not torch.isfinite(z).all():
            raise GenlabError("sample: the autoencoder produced NaN/inf latents (check the input images and weights)")
        return z

    def null_conditions(self, scene: torch.Tensor, ref: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(grey scene latent, all-ones latent mask, grey person tokens) for one item: the dropped
        conditions depend only on the sizes and the (frozen) weights, so they are encoded once."""
        key = (tuple(scene.shape[-2:]), tuple(ref.shape[-2:]), scene.dtype, scene.device)
        if key not in self._null:
            null_img, null_mask = null_scene_pixels(scene)
            z_null = self.encode(null_img)
            self._null[key] = (z_null, mask_to_latent(null_mask, z_null.shape[-2:], self.model.config.mask_resize),
                               self.model.encode_reference(null_reference(ref)))
        return self._null[key]

    @torch.no_grad()
    def sample(self, scene: torch.Tensor, mask: torch.Tensor, reference: torch.Tensor | None,
               mode: str = "insertion", settings: SampleSettings = SampleSettings(),
               generator: torch.Generator | None = None, progress: bool = False) -> SampleResult:
        """scene (N, 3, H, W) in [-1, 1] with masked pixels grey (0), mask (N, 1, H, W) in {0, 1},
        reference (N, 3, R, R) in [-1, 1] (grey background) or None."""
        check_inputs(scene, mask, reference, self.factor, mode,
                     max(1, len(self.model.config.unet.block_out_channels) - 1))
        n = scene.shape[0]
        scene = scene * (1 - mask)  # masked pixels grey, whatever the caller left there
        z_scene = self.encode(scene)
        m_lat = mask_to_latent(mask, z_scene.shape[-2:], self.model.config.mask_resize)
        ref_shape = (n, 3, self.ref_size, self.ref_size)
        ref = reference if reference is not None else torch.zeros(ref_shape, dtype=scene.dtype)
        if ref.shape != ref_shape:
            raise GenlabError(f"sample: reference expected {ref_shape}, got {tuple(ref.shape)}")
        # The reference tokens are encoded once, not at every step (CLIP ViT-L costs about as much as
        # the UNet at 256 px); the dropped conditions are constants, encoded once per pipeline.
        ctx = self.model.encode_reference(ref)
        z_null, m_null, ctx_null = (t.expand(n, *t.shape[1:]) for t in self.null_conditions(scene[:1], ref[:1]))
        c00 = {"scene": z_null, "mask": m_null, "context": ctx_null}
        cs0 = {"scene": z_scene, "mask": m_lat, "context": ctx_null}
        csp = {"scene": z_scene, "mask": m_lat, "context": ctx}
        c0p = {"scene": z_null, "mask": m_null, "context": ctx}
        den = self.form.denoiser(self.model)
        if mode in ("insertion", "partial") and settings.scale_scene == settings.scale_person:
            # the paper's single scale: eps(S,0) cancels out of the sum, so two forwards a step, not three
            model = guidance.guided(den, [c00, csp], [settings.scale_person])
        elif mode in ("insertion", "partial"):
            model = guidance.guided(den, [c00, cs0, csp], [settings.scale_scene, settings.scale_person])
        elif mode == "person_hallucination":
            model = guidance.guided(den, [c00, cs0], [settings.scale_scene])
        elif mode == "scene_hallucination":
            model = guidance.guided(den, [c00, c0p], [settings.scale_person])
        else:
            def model(z, t, **extra):
                return den(z, t, **c00, **extra)
        x = torch.randn(z_scene.shape, generator=generator, dtype=z_scene.dtype)
        ts = self.grid(settings.steps, settings.set_alpha_to_one)  # starts from unit-variance noise, as SD's DDIM pipelines do
        out = samplers.ddim(model, x, ts, progress=progress)
        if not torch.isfinite(out.x).all():
            raise GenlabError("sample: sampling produced NaN/inf latents (diverged); check the weights")
        images = self.ae.decode(out.x).clamp(-1, 1)
        if settings.composite and mode in ("insertion", "person_hallucination", "partial"):
            images = scene * (1 - mask) + images * mask
        return SampleResult(images=images, latents=out.x, nfe=out.nfe)
