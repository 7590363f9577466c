"""genlab's real-weight pipeline (loaded from a diffusers-style folder) against an independent reference
written here from diffusers parts: UNet2DConditionModel, AutoencoderKL, transformers' CLIP vision, the
Linear-SiLU-Linear projection, diffusers' DDIMScheduler (SD-1.5's settings) and the official
single-scale guidance eps(0,0) + s (eps(S,P) - eps(0,0)), the dropped scene being the grey image with an
all-ones mask and the dropped person a grey image; the mask reaches latent size by nearest resizing."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional

from genlab.systems.insertion.config import SampleSettings

diffusers = pytest.importorskip("diffusers")
pytest.importorskip("transformers")

CLIP_MEAN = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(1, 3, 1, 1)
CLIP_STD = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(1, 3, 1, 1)


@torch.no_grad()
def reference_sample(parts, scene, mask, person, noise, steps: int, scale: float) -> torch.Tensor:
    """The official sampler, written from diffusers parts (no genlab code)."""
    sched = diffusers.DDIMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                                    beta_schedule="scaled_linear", clip_sample=False, set_alpha_to_one=False,
                                    steps_offset=1, timestep_spacing="leading")
    sched.set_timesteps(steps)
    sf = parts.vae.config.scaling_factor

    def encode(x):
        return parts.vae.encode(x).latent_dist.mode() * sf

    def tokens(x):
        pixels = ((x + 1) / 2 - CLIP_MEAN) / CLIP_STD
        hidden = parts.clip(pixel_values=pixels).last_hidden_state
        return parts.fc2(functional.silu(parts.fc1(hidden)))

    z_scene = encode(scene * (1 - mask))
    z_null = encode(torch.zeros_like(scene))
    m = functional.interpolate(mask, size=z_scene.shape[-2:], mode="nearest")
    ctx, ctx_null = tokens(person), tokens(torch.zeros_like(person))
    z = noise
    for t in sched.timesteps:
        e_null = parts.unet(torch.cat([z, z_null, torch.ones_like(m)], 1), t, encoder_hidden_states=ctx_null).sample
        e_cond = parts.unet(torch.cat([z, z_scene, m], 1), t, encoder_hidden_states=ctx).sample
        z = sched.step(e_null + scale * (e_cond - e_null), t, z).prev_sample
    return parts.vae.decode(z / sf).sample


def test_real_weight_pipeline_equals_a_reference_from_diffusers_parts(tmp_path):
    from genlab.systems.insertion.convert import load_pipeline
    from tests.systems.insertion.tiny_real import CLIP_SIZE, save_folder, tiny_parts

    parts = tiny_parts(seed=3)
    pipe = load_pipeline(save_folder(parts, tmp_path / "tiny"))
    assert pipe.config.model.mask_resize == "nearest" and pipe.ref_size == CLIP_SIZE
    g = torch.Generator().manual_seed(0)
    scene = torch.rand(1, 3, 32, 32, generator=g) * 2 - 1
    mask = torch.zeros(1, 1, 32, 32)
    mask[..., 9:26, 5:14] = 1  # odd edges: nearest and max-pooling differ on them
    person = torch.rand(1, 3, CLIP_SIZE, CLIP_SIZE, generator=g) * 2 - 1
    steps, scale = 4, 3.0
    ours = pipe.sample(scene, mask, person, settings=SampleSettings(steps=steps, scale_scene=scale, scale_person=scale),
                       generator=torch.Generator().manual_seed(7))
    noise = torch.randn(ours.latents.shape, generator=torch.Generator().manual_seed(7))
    want = reference_sample(parts, scene, mask, person, noise, steps, scale)
    assert ours.images.std() > 0.01 and (ours.images - scene).abs().mean() > 0.01  # not a trivial output
    torch.testing.assert_close(ours.images, want.clamp(-1, 1), atol=1e-4, rtol=0)
