"""Video UNet, temporal decoder and whole-pipeline throughput: genlab vs diffusers at equal config and weights.

    PYTHONPATH=src python benchmarks/video_throughput.py [--threads 1] [--repeats 5] [--size 16] [--frames 8]

Same weights in both (ours load diffusers' state dict / save_pretrained folder); float32 on CPU. Rows: UNet train
step (forward + backward + AdamW), UNet sampling forward (frames/s), temporal VAE decoder (frames/s), and the
tiny image-to-video pipeline end to end (a 576x1024 PNG-sized image in, `--pipe-frames` frames of 64x128 out,
`--pipe-steps` Euler steps with guidance; diffusers' StableVideoDiffusionPipeline vs genlab's
`pretrained.load` + `pipeline.image_to_video`, videos per second). Ratio = ours / diffusers (> 1: ours faster).
Timings are medians of `repeats` after one warm-up, ours and diffusers interleaved (A, B, A, B).
"""

from __future__ import annotations

import argparse

import torch
from _timing import interleaved_medians


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--size", type=int, default=16, help="latent side")
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--pipe-frames", type=int, default=8)
    ap.add_argument("--pipe-steps", type=int, default=10)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    import diffusers

    from genlab.core.autoencoders.temporal_decoder import (
        TemporalDecoder,
        TemporalDecoderConfig,
        load_diffusers_decoder_state_dict,
    )
    from genlab.core.nn import temporal as TM

    torch.manual_seed(0)
    cfg = TM.tiny()
    u = cfg.unet
    ref = diffusers.UNetSpatioTemporalConditionModel(
        sample_size=args.size, in_channels=u.in_channels, out_channels=u.out_channels,
        down_block_types=("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
        up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"),
        block_out_channels=u.block_out_channels, layers_per_block=u.layers_per_block, num_attention_heads=u.num_heads,
        cross_attention_dim=u.cross_attention_dim, addition_time_embed_dim=u.addition_time_embed_dim,
        projection_class_embeddings_input_dim=3 * u.addition_time_embed_dim)
    ours = TM.VideoUNet(cfg)
    ours.load_state_dict({k: v for k, v in ref.state_dict().items() if not k.endswith("to_out.1.weight")})
    b, t, s = args.batch, args.frames, args.size
    x = torch.randn(b, t, u.in_channels, s, s)
    ctx, ids, c = torch.randn(b, 1, u.cross_attention_dim), torch.randn(b, 3), torch.full((b,), 0.3)

    rows = []

    def train_step(model, call):
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

        def step():
            opt.zero_grad(set_to_none=True)
            call(model).square().mean().backward()
            opt.step()
        return step

    ref_call = lambda m: m(x, c, ctx, ids).sample
    our_call = lambda m: m(x, c, ctx, ids)
    for name, unit, f_ref, f_ours, per in [
        ("UNet train step", "steps/s", train_step(ref.train(), ref_call), train_step(ours.train(), our_call), 1),
    ]:
        tr, to = interleaved_medians([f_ref, f_ours], args.repeats)
        rows.append((name, unit, per / to, per / tr))
    ref.eval(), ours.eval()
    with torch.no_grad():
        tr, to = interleaved_medians([lambda: ref_call(ref), lambda: our_call(ours)], args.repeats)
    rows.append(("UNet sampling forward", "frames/s", b * t / to, b * t / tr))

    vae = diffusers.AutoencoderKLTemporalDecoder(block_out_channels=(32, 64), layers_per_block=1, latent_channels=4,
                                                 down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D")).eval()
    dec = TemporalDecoder(TemporalDecoderConfig(block_out_channels=(32, 64), layers_per_block=1)).eval()
    load_diffusers_decoder_state_dict(dec, vae.state_dict())
    z = torch.randn(b * t, 4, s, s)
    with torch.no_grad():
        tr, to = interleaved_medians([lambda: vae.decode(z, num_frames=t).sample, lambda: dec(z, t)], args.repeats)
    rows.append(("temporal VAE decode", "frames/s", b * t / to, b * t / tr))
    rows.append(pipeline_row(args))

    print(f"config: VideoUNet tiny (32, 64), latent {s}x{s}, T={t}, batch {b}, {args.threads} thread(s), CPU float32; "
          f"pipeline: {args.pipe_frames} frames 64x128, {args.pipe_steps} steps")
    print(f"{'what':<24}{'unit':<10}{'genlab':>10}{'diffusers':>11}{'ratio':>8}")
    for name, unit, ours_v, ref_v in rows:
        print(f"{name:<24}{unit:<10}{ours_v:>10.3f}{ref_v:>11.3f}{ours_v / ref_v:>8.2f}")


def pipeline_row(args) -> tuple[str, str, float, float]:
    """The tiny SVD pipeline saved with save_pretrained, run by diffusers and by genlab from the same folder."""
    import tempfile

    import diffusers
    import numpy as np
    import transformers
    from PIL import Image

    from genlab.systems.video import pipeline, pretrained

    torch.manual_seed(0)
    unet = diffusers.UNetSpatioTemporalConditionModel(
        block_out_channels=(32, 64), layers_per_block=2, in_channels=8, out_channels=4,
        down_block_types=("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
        up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"), cross_attention_dim=32,
        num_attention_heads=(8, 16), projection_class_embeddings_input_dim=96, addition_time_embed_dim=32,
        num_frames=args.pipe_frames)
    vae = diffusers.AutoencoderKLTemporalDecoder(block_out_channels=(32, 32, 32, 32), latent_channels=4,
                                                 layers_per_block=1, down_block_types=("DownEncoderBlock2D",) * 4)
    clip = transformers.CLIPVisionModelWithProjection(transformers.CLIPVisionConfig(
        hidden_size=32, projection_dim=32, num_hidden_layers=2, num_attention_heads=4, image_size=224,
        intermediate_size=37, patch_size=32))
    scheduler = diffusers.EulerDiscreteScheduler(
        beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, prediction_type="v_prediction",
        interpolation_type="linear", sigma_max=700.0, sigma_min=0.002, steps_offset=1, timestep_spacing="leading",
        timestep_type="continuous", use_karras_sigmas=True)
    pipe = diffusers.StableVideoDiffusionPipeline(vae=vae.eval(), image_encoder=clip.eval(), unet=unet.eval(),
                                                  scheduler=scheduler,
                                                  feature_extractor=transformers.CLIPImageProcessor(crop_size=224, size=224))
    pipe.set_progress_bar_config(disable=True)
    folder = tempfile.mkdtemp(prefix="svd_bench_")
    pipe.save_pretrained(folder)
    ours = pretrained.load(folder)
    image = Image.fromarray((np.random.default_rng(0).random((576, 1024, 3)) * 255).astype(np.uint8))
    n, steps = args.pipe_frames, args.pipe_steps
    cfg = pipeline.SamplingConfig(num_frames=n, steps=steps, min_guidance=1.0, max_guidance=2.5)

    def run_ref():
        with torch.no_grad():
            pipe(image, height=64, width=128, num_frames=n, num_inference_steps=steps, max_guidance_scale=2.5,
                 generator=torch.Generator().manual_seed(0), output_type="pt")

    def run_ours():
        pipeline.image_to_video(ours, image, cfg, size=(64, 128), generator=torch.Generator().manual_seed(0))

    tr, to = interleaved_medians([run_ref, run_ours], args.repeats)
    return "tiny SVD pipeline", "videos/s", 1 / to, 1 / tr


if __name__ == "__main__":
    main()
