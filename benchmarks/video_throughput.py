"""Video UNet and temporal decoder throughput: genlab vs diffusers at equal config, frames and batch.

    PYTHONPATH=src python benchmarks/video_throughput.py [--threads 1] [--repeats 5] [--size 16] [--frames 8]

Same weights in both (ours load diffusers' state dict); float32 on CPU. Rows: UNet train step (forward +
backward + AdamW), the same with gradient checkpointing on both sides, UNet sampling forward (frames/s),
temporal VAE decoder (frames/s). Memory: the activations a train step keeps for backward (unique tensors
saved by autograd, parameters excluded; a count, so machine load cannot move it), plain and checkpointed. Ratio = ours / diffusers
(> 1: ours faster). Each row times ours and diffusers in turns (one warm-up round, then `repeats` rounds of
A, B) and reports medians, so a change in machine load moves both sides alike; the thread line says what ran.
"""

from __future__ import annotations

import argparse

import torch
from _timing import interleaved, threads_line


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--size", type=int, default=16, help="latent side")
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--batch", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    import diffusers

    from genlab.core.autoencoders.temporal_decoder import (
        TemporalDecoder,
        TemporalDecoderConfig,
        load_diffusers_decoder_state_dict,
    )
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
    ctx, ids, c = torch.randn(b, 1, u.cross_attention_dim), torch.randn(b, 3), torch.full((b,), 0.3)

    rows = []

    def train_step(model, call):
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

        def step():
            opt.zero_grad(set_to_none=True)
            call(model).square().mean().backward()
            opt.step()
        return step

    def ref_call(m):
        return m(x, c, ctx, ids).sample

    def our_call(m):
        return m(x, c, ctx, ids)

    med = interleaved({"ours": train_step(ours.train(), our_call), "ref": train_step(ref.train(), ref_call)},
                      args.repeats)
    rows.append(("UNet train step", "steps/s", 1 / med["ours"], 1 / med["ref"]))
    memory = [("plain", saved_mb(ours, our_call), saved_mb(ref, ref_call))]
    ours.gradient_checkpointing = True
    ref.enable_gradient_checkpointing()
    med = interleaved({"ours": train_step(ours, our_call), "ref": train_step(ref, ref_call)}, args.repeats)
    rows.append(("  + grad checkpointing", "steps/s", 1 / med["ours"], 1 / med["ref"]))
    memory.append(("gradient checkpointing", saved_mb(ours, our_call), saved_mb(ref, ref_call)))
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

    print(f"config: VideoUNet tiny (32, 64), latent {s}x{s}, T={t}, batch {b}, CPU float32, {args.repeats} rounds")
    print(threads_line())
    print(f"{'what':<24}{'unit':<10}{'genlab':>10}{'diffusers':>11}{'ratio':>8}")
    for name, unit, ours_v, ref_v in rows:
        print(f"{name:<24}{unit:<10}{ours_v:>10.2f}{ref_v:>11.2f}{ours_v / ref_v:>8.2f}")
    print(f"\n{'activations kept for backward':<34}{'genlab MB':>10}{'diffusers MB':>13}")
    for name, ours_mb, ref_mb in memory:
        print(f"{name:<34}{ours_mb:>10.1f}{ref_mb:>13.1f}")


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


if __name__ == "__main__":
    main()
