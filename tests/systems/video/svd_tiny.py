"""A tiny random StableVideoDiffusionPipeline saved with `save_pretrained` (shared by the pretrained-path tests)."""

from __future__ import annotations

from pathlib import Path

import torch


def tiny_pipeline(num_frames: int = 4, smooth_chroma: bool = False):
    """`smooth_chroma`: the decoder's three outputs share their weights (biases differ), so frames carry detail in
    luma and little in chroma, as natural video does; random RGB noise would measure H.264's 4:2:0 chroma
    subsampling (about 26 dB at any quality) rather than the encoding of a video."""
    import diffusers
    import transformers

    torch.manual_seed(0)
    unet = diffusers.UNetSpatioTemporalConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, sample_size=8, in_channels=8, out_channels=4,
        down_block_types=("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
        up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"),
        cross_attention_dim=32, num_attention_heads=(2, 4), projection_class_embeddings_input_dim=48,
        addition_time_embed_dim=16, num_frames=num_frames,
    ).eval()
    vae = diffusers.AutoencoderKLTemporalDecoder(
        block_out_channels=(32, 32, 32, 32), in_channels=3, out_channels=3, latent_channels=4, layers_per_block=1,
        down_block_types=("DownEncoderBlock2D",) * 4,  # f8 as SD's VAE: frames are smooth at the pixel scale
    ).eval()
    with torch.no_grad():  # move every weight off its init (zero-init convs, alpha = 0) so nothing is trivial
        for m in (unet, vae):
            for p in m.parameters():
                p.add_(0.05 * torch.randn_like(p))
        if smooth_chroma:
            dec = vae.decoder
            dec.conv_out.weight[1:] = dec.conv_out.weight[:1]
            dec.conv_out.bias[1:] = dec.conv_out.bias[:1] + torch.tensor([0.1, -0.1])
            w = dec.time_conv_out.weight  # (3, 3, 3, 1, 1): the same temporal kernel on each channel, no mixing
            kernel = w[0, 0].clone()
            w.zero_()
            for i in range(3):
                w[i, i] = kernel
    scheduler = diffusers.EulerDiscreteScheduler(
        beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, num_train_timesteps=1000,
        prediction_type="v_prediction", interpolation_type="linear", sigma_max=700.0, sigma_min=0.002,
        steps_offset=1, timestep_spacing="leading", timestep_type="continuous", use_karras_sigmas=True,
    )
    # diffusers resizes CLIP's input to 224 whatever the encoder's size, so the tiny tower is 224 / 32 patches
    clip = transformers.CLIPVisionModelWithProjection(transformers.CLIPVisionConfig(
        hidden_size=32, projection_dim=32, num_hidden_layers=2, num_attention_heads=4, image_size=224,
        intermediate_size=37, patch_size=32,
    )).eval()
    fe = transformers.CLIPImageProcessor(crop_size=224, size=224)
    pipe = diffusers.StableVideoDiffusionPipeline(vae=vae, image_encoder=clip, unet=unet, scheduler=scheduler,
                                                  feature_extractor=fe)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def save_tiny(folder: Path, num_frames: int = 4, smooth_chroma: bool = False):
    pipe = tiny_pipeline(num_frames, smooth_chroma)
    pipe.save_pretrained(str(folder), safe_serialization=True)
    return pipe


def sample_picture(height: int = 576, width: int = 1024, seed: int = 3):
    """A smooth but detailed RGB picture (gradients + a few sharp-edged boxes): aliasing shows if not blurred."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width] / max(height, width)
    img = np.stack([np.sin(9 * xx + 3 * yy), np.cos(7 * yy - 2 * xx), np.sin(23 * xx * yy)], -1) * 0.4 + 0.5
    for _ in range(12):
        y, x = rng.integers(0, height - 40), rng.integers(0, width - 40)
        img[y:y + rng.integers(4, 40), x:x + rng.integers(4, 40)] = rng.random(3)
    return Image.fromarray((img.clip(0, 1) * 255).astype(np.uint8))
