"""Our I2V sampler against diffusers' StableVideoDiffusionPipeline with tiny random parts (same weights)."""

from __future__ import annotations

import warnings

import pytest
import torch

from genlab.core.autoencoders.temporal_decoder import TemporalKL
from genlab.core.nn import temporal
from genlab.systems.video.config import VideoModelConfig
from genlab.systems.video.model import SVDModel
from genlab.systems.video.pipeline import SamplingConfig, sample_i2v


def _components():
    diffusers = pytest.importorskip("diffusers")
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    unet = diffusers.UNetSpatioTemporalConditionModel(
        block_out_channels=(32, 64), layers_per_block=2, sample_size=16, in_channels=8, out_channels=4,
        down_block_types=("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
        up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"),
        cross_attention_dim=32, num_attention_heads=(8, 16), projection_class_embeddings_input_dim=96,
        addition_time_embed_dim=32,
    ).eval()
    vae = diffusers.AutoencoderKLTemporalDecoder(
        block_out_channels=(32, 64), in_channels=3, out_channels=3, latent_channels=4, layers_per_block=1,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
    ).eval()
    with torch.no_grad():
        for m in (unet, vae):
            for p in m.parameters():
                p.add_(0.05 * torch.randn_like(p))
    scheduler = diffusers.EulerDiscreteScheduler(
        beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, num_train_timesteps=1000,
        prediction_type="v_prediction", interpolation_type="linear", sigma_max=700.0, sigma_min=0.002,
        steps_offset=1, timestep_spacing="leading", timestep_type="continuous", use_karras_sigmas=True,
    )
    clip = transformers.CLIPVisionModelWithProjection(transformers.CLIPVisionConfig(
        hidden_size=32, projection_dim=32, num_hidden_layers=2, num_attention_heads=4, image_size=32,
        intermediate_size=37, patch_size=4,
    )).eval()
    fe = transformers.CLIPImageProcessor(crop_size=32, size=32)
    pipe = diffusers.StableVideoDiffusionPipeline(vae=vae, image_encoder=clip, unet=unet, scheduler=scheduler,
                                                  feature_extractor=fe)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_sampler_matches_stable_video_diffusion_pipeline():
    pipe = _components()
    frames, steps = 3, 4
    image01 = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = pipe(image01, height=32, width=32, num_frames=frames, num_inference_steps=steps,
                   min_guidance_scale=1.0, max_guidance_scale=2.5, fps=7, motion_bucket_id=100,
                   noise_aug_strength=0.02, generator=torch.Generator().manual_seed(7), output_type="latent").frames
        ref_video = pipe.decode_latents(ref, frames, decode_chunk_size=2)  # (B, C, T, H, W)
        context = pipe._encode_image(image01, "cpu", 1, False)  # CLIP is not ours: same tokens for both

    cfg = VideoModelConfig(unet=temporal.VideoUNetConfig(unet=temporal.tiny(in_channels=8).unet, num_frames=frames))
    model = SVDModel(cfg).eval()
    model.unet.load_state_dict({k: v for k, v in pipe.unet.state_dict().items() if not k.endswith("to_out.1.weight")})
    ae = TemporalKL.from_diffusers(pipe.vae)
    scfg = SamplingConfig(num_frames=frames, steps=steps, min_guidance=1.0, max_guidance=2.5, fps_id=6,
                            motion_bucket_id=100, cond_aug=0.02, decode_chunk=2)
    out = sample_i2v(model, ae, image01 * 2 - 1, scfg, generator=torch.Generator().manual_seed(7), context=context)
    assert out.latents.shape == ref.shape == (1, frames, 4, 16, 16)
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
