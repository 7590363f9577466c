"""Video UNet, temporal decoder and whole-pipeline throughput: genlab vs diffusers at equal config and weights.

    PYTHONPATH=src python benchmarks/video_throughput.py [--threads 1] [--repeats 5] [--size 16] [--frames 8]
        [--pipe-frames 8] [--pipe-steps 10]

Same weights in both (ours load diffusers' state dict / save_pretrained folder); float32 on CPU. Rows: UNet
train step (forward + backward + AdamW), the same with gradient checkpointing on both sides, UNet sampling
forward (frames/s), temporal VAE decoder (frames/s), and the tiny image-to-video pipeline end to end (a
576x1024 image in, `--pipe-frames` frames of 64x128 out, `--pipe-steps` Euler steps with guidance; diffusers'
StableVideoDiffusionPipeline vs genlab's `pretrained.load` + `pipeline.image_to_video`, videos/s). Ratio =
ours / diffusers (> 1: ours faster). Each row times ours and diffusers in turns (one warm-up round, then
`repeats` rounds of A, B) and reports medians, so a change in machine load moves both sides alike; the
thread line says what ran. Memory of the train step, plain and with gradient checkpointing, beside its time:
the activations kept for backward (unique tensors saved by autograd, parameters excluded; a count, so machine
load cannot move it) and the peak RSS rise of one step measured in a fresh subprocess per side and setting
(Linux VmHWM, reset just before the step; not ru_maxrss).
"""

from __future__ import annotations

import argparse

import torch
from _timing import interleaved, threads_line


def build(args):
    """(ours, diffusers' UNetSpatioTemporalConditionModel, inputs): the tiny config, the same weights."""
    import diffusers

    from genlab.core.nn import temporal

    torch.manual_seed(0)
    cfg = temporal.tiny()
    u = cfg.unet
    ref = diffusers.UNetSpatioTemporalConditionModel(
        sample_size=args.size, in_channels=u.in_channels, out_channels=u.out_channels,
        down_block_types=("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
        up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"),
        block_out_channels=u.block_out_channels, layers_per_block=u.layers_per_block, num_attention_heads=u.num_heads,
        cross_attention_dim=u.cross_attention_dim, addition_time_embed_dim=u.addition_time_embed_dim,
        projection_class_embeddings_input_dim=3 * u.addition_time_embed_dim)
    ours = temporal.VideoUNet(cfg)
    ours.load_state_dict({k: v for k, v in ref.state_dict().items() if not k.endswith("to_out.1.weight")})
    b, t, s = args.batch, args.frames, args.size
    x = torch.randn(b, t, u.in_channels, s, s)
    inputs = (x, torch.full((b,), 0.3), torch.randn(b, 1, u.cross_attention_dim), torch.randn(b, 3))
    return ours, ref, inputs


def train_step(model, call):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step():
        opt.zero_grad(set_to_none=True)
        call(model).square().mean().backward()
        opt.step()
    return step


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--size", type=int, default=16, help="latent side")
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--pipe-frames", type=int, default=8)
    ap.add_argument("--pipe-steps", type=int, default=10)
    ap.add_argument("--memory-child", nargs=2, metavar=("SIDE", "CKPT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.memory_child:
        return memory_child(args, *args.memory_child)
    import diffusers

    from genlab.core.autoencoders.temporal_decoder import (
        TemporalDecoder,
        TemporalDecoderConfig,
        load_diffusers_decoder_state_dict,
    )

    ours, ref, (x, c, ctx, ids) = build(args)
    b, t, s = args.batch, args.frames, args.size

    rows = []

    def ref_call(m):
        return m(x, c, ctx, ids).sample

    def our_call(m):
        return m(x, c, ctx, ids)

    med = interleaved({"ours": train_step(ours.train(), our_call), "ref": train_step(ref.train(), ref_call)},
                      args.repeats)
    rows.append(("UNet train step", "steps/s", 1 / med["ours"], 1 / med["ref"]))
    memory = [("plain", saved_mb(ours, our_call), saved_mb(ref, ref_call), *peak_mb(args, False))]
    ours.gradient_checkpointing = True
    ref.enable_gradient_checkpointing()
    med = interleaved({"ours": train_step(ours, our_call), "ref": train_step(ref, ref_call)}, args.repeats)
    rows.append(("  + grad checkpointing", "steps/s", 1 / med["ours"], 1 / med["ref"]))
    memory.append(("gradient checkpointing", saved_mb(ours, our_call), saved_mb(ref, ref_call), *peak_mb(args, True)))
    ours.gradient_checkpointing = False
    ref.disable_gradient_checkpointing()
    ref.eval(), ours.eval()
    with torch.no_grad():
        med = interleaved({"ours": lambda: our_call(ours), "ref": lambda: ref_call(ref)}, args.repeats)
    rows.append(("UNet sampling forward", "frames/s", b * t / med["ours"], b * t / med["ref"]))

    vae = diffusers.AutoencoderKLTemporalDecoder(block_out_channels=(32, 64), layers_per_block=1, latent_channels=4,
                                                 down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D")).eval()
    dec = TemporalDecoder(TemporalDecoderConfig(block_out_channels=(32, 64), layers_per_block=1)).eval()
    load_diffusers_decoder_state_dict(dec, vae.state_dict())
    z = torch.randn(b * t, 4, s, s)
    with torch.no_grad():
        med = interleaved({"ours": lambda: dec(z, t), "ref": lambda: vae.decode(z, num_frames=t).sample}, args.repeats)
    rows.append(("temporal VAE decode", "frames/s", b * t / med["ours"], b * t / med["ref"]))
    rows.append(pipeline_row(args))

    print(f"config: VideoUNet tiny (32, 64), latent {s}x{s}, T={t}, batch {b}, CPU float32, {args.repeats} rounds; "
          f"pipeline: {args.pipe_frames} frames 64x128, {args.pipe_steps} steps")
    print(threads_line())
    print(f"{'what':<24}{'unit':<10}{'genlab':>10}{'diffusers':>11}{'ratio':>8}")
    for name, unit, ours_v, ref_v in rows:
        print(f"{name:<24}{unit:<10}{ours_v:>10.3f}{ref_v:>11.3f}{ours_v / ref_v:>8.2f}")
    print(f"\n{'train step memory, MB':<24}{'kept for backward':>18}{'peak RSS rise':>15}{'time':>7}"
          f"   (genlab / diffusers)")
    times = {"plain": rows[0], "gradient checkpointing": rows[1]}
    for name, ours_mb, ref_mb, ours_rss, ref_rss in memory:
        steps = times[name]
        print(f"{name:<24}{ours_mb:>8.1f} / {ref_mb:<7.1f}{ours_rss:>6.0f} / {ref_rss:<6.0f}"
              f"{1000 / steps[2]:>5.0f} / {1000 / steps[3]:.0f} ms")
    print(MEMORY_CHILD_NOTE)


MEMORY_CHILD_NOTE = """peak RSS rise: one train step (forward, backward, AdamW) in a fresh process per side and setting,
after a warm-up step on a 1-frame 8x8 input (gradients and AdamW state allocated); Linux VmHWM reset to the current RSS just before the step (not ru_maxrss, which keeps
a forking parent's peak), minus that RSS."""


def memory_child(args, side: str, ckpt: str) -> None:
    import json

    from genlab.core.procs import peak_rss_bytes, reset_peak_rss, rss_bytes

    ours, ref, (x, c, ctx, ids) = build(args)
    small = x[:, :1, :, :8, :8]
    if side == "ours":
        model, call, warm = ours.train(), (lambda m: m(x, c, ctx, ids)), (lambda m: m(small, c, ctx, ids))
        model.gradient_checkpointing = ckpt == "1"
    else:
        model, call, warm = ref.train(), (lambda m: m(x, c, ctx, ids).sample), (lambda m: m(small, c, ctx, ids).sample)
        if ckpt == "1":
            model.enable_gradient_checkpointing()
    del ours, ref  # only the measured model stays
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    for fn in (warm, call):  # a small warm-up step allocates gradients and AdamW state; then the measured one
        if fn is call and not reset_peak_rss():
            raise SystemExit("peak RSS: /proc/self/clear_refs is not writable (Linux only)")
        base = rss_bytes()
        opt.zero_grad(set_to_none=False)
        fn(model).square().mean().backward()
        opt.step()
    print(json.dumps({"rise": peak_rss_bytes() - base}))


def peak_mb(args, ckpt: bool) -> tuple[float, float]:
    """(ours, diffusers) peak RSS rise of one train step in MB, each from its own subprocess."""
    import json
    import os
    import subprocess
    import sys

    out = []
    for side in ("ours", "ref"):
        cmd = [sys.executable, __file__, "--memory-child", side, "1" if ckpt else "0", "--threads", str(args.threads),
               "--size", str(args.size), "--frames", str(args.frames), "--batch", str(args.batch)]
        res = subprocess.run(cmd, capture_output=True, text=True, check=True, env=os.environ)
        out.append(json.loads(res.stdout.strip().splitlines()[-1])["rise"] / 2**20)
    return out[0], out[1]


def saved_mb(model, call) -> float:
    """MB of the distinct tensors autograd keeps for the backward of one forward (parameters excluded).
    Checkpointed blocks keep none: their own saved-tensor hooks are the innermost ones."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    kept: dict[int, int] = {}

    def pack(t):
        storage = t.untyped_storage()
        if storage.data_ptr() not in params:
            kept[storage.data_ptr()] = storage.nbytes()
        return t

    model.train()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = call(model)
    out.square().mean().backward()
    model.zero_grad(set_to_none=True)
    return sum(kept.values()) / 2**20


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

    med = interleaved({"ours": run_ours, "ref": run_ref}, args.repeats)
    return "tiny SVD pipeline", "videos/s", 1 / med["ours"], 1 / med["ref"]


if __name__ == "__main__":
    main()
