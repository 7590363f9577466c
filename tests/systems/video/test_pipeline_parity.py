"""Our I2V sampler against diffusers' StableVideoDiffusionPipeline with tiny random parts (same weights)."""

from __future__ import annotations

import warnings

import pytest
import torch
from PIL import Image

from genlab.core.autoencoders.temporal_decoder import TemporalKL
from genlab.core.nn import temporal
from genlab.systems.video.config import VideoModelConfig
from genlab.systems.video.model import SVDModel
from genlab.systems.video.pipeline import SamplingConfig, sample_i2v


def test_sampler_matches_stable_video_diffusion_pipeline(tiny_svd):
    """The session's tiny random pipeline (conftest `tiny_svd`); our UNet built from its config by hand, so the
    test does not go through our diffusers loader."""
    _, pipe = tiny_svd
    frames, steps = 3, 4
    # a PIL image: diffusers resizes it to CLIP's 224 (a tensor would go in unresized); exact in uint8
    pixels = (torch.rand(64, 64, 3, generator=torch.Generator().manual_seed(1)) * 255).to(torch.uint8)
    image = Image.fromarray(pixels.numpy())
    image01 = pixels.permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        ref = pipe(image, height=64, width=64, num_frames=frames, num_inference_steps=steps,
                   min_guidance_scale=1.0, max_guidance_scale=2.5, fps=7, motion_bucket_id=100,
                   noise_aug_strength=0.02, generator=torch.Generator().manual_seed(7), output_type="latent").frames
        ref_video = pipe.decode_latents(ref, frames, decode_chunk_size=2)  # (B, C, T, H, W)
        context = pipe._encode_image(image, "cpu", 1, False)  # CLIP is not ours: same tokens for both

    unet = temporal.tiny(in_channels=8, layers_per_block=1, num_heads=(2, 4), addition_time_embed_dim=16).unet
    cfg = VideoModelConfig(unet=temporal.VideoUNetConfig(unet=unet, num_frames=frames))
    model = SVDModel(cfg).eval()
    model.unet.load_state_dict({k: v for k, v in pipe.unet.state_dict().items() if not k.endswith("to_out.1.weight")})
    ae = TemporalKL.from_diffusers(pipe.vae)
    scfg = SamplingConfig(num_frames=frames, steps=steps, min_guidance=1.0, max_guidance=2.5, fps_id=6,
                            motion_bucket_id=100, cond_aug=0.02, decode_chunk=2)
    out = sample_i2v(model, ae, image01 * 2 - 1, scfg, generator=torch.Generator().manual_seed(7), context=context)
    assert out.latents.shape == ref.shape == (1, frames, 4, 8, 8)
    assert out.nfe == steps
    assert (out.latents - ref).abs().max().item() < 1e-4
    assert (out.video - ref_video.permute(0, 2, 1, 3, 4)).abs().max().item() < 1e-4


def test_bad_inputs_and_warnings():
    from genlab.core.autoencoders.pixel import PixelIdentity
    from genlab.errors import GenlabError
    from genlab.systems.video.config import tiny

    model = SVDModel(tiny(latent_channels=3)).eval()
    ae = PixelIdentity(3)
    img = torch.zeros(1, 3, 8, 8)
    base = SamplingConfig(num_frames=2, steps=1, min_guidance=1.0, max_guidance=1.0)
    from dataclasses import replace

    cases = [
        (None, base, "conditioning image"),
        (torch.zeros(1, 4, 8, 8), base, "3 channels"),
        (torch.zeros(1, 3, 7, 8), base, "divisible by 2"),
        (img, replace(base, num_frames=0), "num_frames"),
        (img, replace(base, decode_chunk=0), "chunk"),
    ]
    for image, cfg, msg in cases:
        with pytest.raises(GenlabError, match=msg):
            sample_i2v(model, ae, image, cfg)
    with pytest.raises(GenlabError, match="one per frame"):
        sample_i2v(model, ae, img, base, guidance_scales=torch.ones(3))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sample_i2v(model, ae, img, replace(base, motion_bucket_id=300, fps_id=40, preset_resolution=(16, 16)))
    text = " ".join(str(w.message) for w in caught)
    assert "255" in text and "5..30" in text and "resolution" in text
