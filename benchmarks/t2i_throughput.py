"""Training steps/s and sampling images/s: genlab's MM-DiT vs diffusers' SD3Transformer2DModel.

Same config, same weights (converted), same batch: depth 4 (hidden 256, 4 heads), 32x32x4 latents
(2x2 patches -> 256 image tokens), 77 text tokens of width 4096, pooled 2048, batch 8.
A training step = forward + backward + AdamW; sampling = Euler steps with classifier-free guidance
(one batched forward of 2B per step). Run on CPU; ours and diffusers are timed interleaved (A, B, A, B)
and the figures are medians over repeats, so a change of machine load moves both sides alike.

A LoRA step (rank --lora-rank on the attention and MLP projections of both streams, only the adapters
train): genlab's adapters (`systems.t2i.lora.add_lora`) against the same adapters loaded into diffusers'
transformer through PEFT (`load_lora_adapter`), outputs checked equal first.

    python benchmarks/t2i_throughput.py [--threads 1] [--repeats 5] [--steps 10] [--lora-rank 16]
"""

from __future__ import annotations

import argparse

import torch
from _timing import interleaved_medians

from genlab.systems.t2i import convert
from genlab.systems.t2i.config import mmdit_depth
from genlab.systems.t2i.model import MMDiT


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--steps", type=int, default=10, help="Euler steps per sampling run")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lora-rank", type=int, default=16, help="0: no LoRA row")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from diffusers import SD3Transformer2DModel

    cfg = mmdit_depth(4, in_channels=4, out_channels=4, pos_embed_max_size=32, pos_embed_base_size=16)
    torch.manual_seed(0)
    ours = MMDiT(cfg)
    with torch.no_grad():
        for p in ours.parameters():
            p.add_(0.02 * torch.randn_like(p))
    theirs = SD3Transformer2DModel(**convert.to_diffusers_config(cfg))
    theirs.load_state_dict(convert.to_diffusers(ours.state_dict()))
    b = args.batch
    x, ctx, pooled = torch.randn(b, 4, 32, 32), torch.randn(b, 77, 4096), torch.randn(b, 2048)
    t = torch.rand(b) * 1000

    def run_ours(xx, tt, cc, pp):
        return ours(xx, tt, cc, pp)

    def run_theirs(xx, tt, cc, pp):
        return theirs(hidden_states=xx, timestep=tt, encoder_hidden_states=cc, pooled_projections=pp).sample

    with torch.no_grad():
        torch.testing.assert_close(run_ours(x, t, ctx, pooled), run_theirs(x, t, ctx, pooled), rtol=1e-4, atol=1e-4)

    def make(module, fwd):
        opt = torch.optim.AdamW(module.parameters(), lr=1e-4)

        def train_step():
            module.train()
            loss = (fwd(x, t, ctx, pooled) - x).square().mean()
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        @torch.no_grad()
        def sample():
            module.eval()
            z = torch.randn(b, 4, 32, 32)
            c2, p2 = torch.cat([torch.zeros_like(ctx), ctx]), torch.cat([torch.zeros_like(pooled), pooled])
            ts = torch.linspace(1, 0, args.steps + 1)
            for i in range(args.steps):
                v_u, v_c = fwd(torch.cat([z, z]), (1000 * ts[i]).expand(2 * b), c2, p2).chunk(2)
                z = z + (ts[i + 1] - ts[i]) * (v_u + 4.0 * (v_c - v_u))
            return z

        return train_step, sample

    names = ("genlab MMDiT", "diffusers SD3Transformer2DModel")
    steps = dict(zip(names, (make(ours, run_ours), make(theirs, run_theirs))))
    # A, B, A, B: a change of machine load moves both sides alike
    train_s = dict(zip(names, interleaved_medians([fns[0] for fns in steps.values()], args.repeats)))
    sample_s = dict(zip(names, interleaved_medians([fns[1] for fns in steps.values()], max(1, args.repeats // 2))))
    rows = [(n, 1.0 / train_s[n], b / sample_s[n]) for n in names]

    (_, ours_train, ours_sample), (_, ref_train, ref_sample) = rows
    print(f"\nMM-DiT depth 4 (hidden 256), batch {b}, 32x32x4 latents, 77 text tokens, {args.threads} thread(s), "
          f"CFG sampling with {args.steps} Euler steps; interleaved medians of {args.repeats} (train) and "
          f"{max(1, args.repeats // 2)} (sampling) runs")
    print(f"{'implementation':34s} {'train steps/s':>14s} {'sample images/s':>16s}")
    for name, tr, sm in rows:
        print(f"{name:34s} {tr:14.3f} {sm:16.3f}")
    print(f"{'ratio genlab / diffusers':34s} {ours_train / ref_train:13.2f}x {ours_sample / ref_sample:15.2f}x")
    if args.lora_rank:
        lora_row(ours, theirs, (x, t, ctx, pooled), args.lora_rank, args.repeats)


def lora_row(ours, theirs, inputs, rank: int, repeats: int) -> None:
    """LoRA training steps/s: genlab's adapters vs the same adapters in diffusers' transformer through PEFT."""
    import copy

    from genlab.systems.t2i.lora import add_lora, lora_state_dict

    x, t, ctx, pooled = inputs
    ours, theirs = copy.deepcopy(ours), copy.deepcopy(theirs)
    torch.manual_seed(1)
    layers = add_lora(ours, rank)
    with torch.no_grad():  # B = 0 at the start; make the adapters matter for the equality check
        for lora in layers.values():
            lora.lora_B.normal_(0, 0.01)
    theirs.load_lora_adapter(lora_state_dict(layers, ours.cfg.depth), prefix="transformer", adapter_name="bench")
    theirs.requires_grad_(False)
    for name, p in theirs.named_parameters():
        if "lora_" in name:
            p.requires_grad_(True)

    def run_theirs(xx, tt, cc, pp):
        return theirs(hidden_states=xx, timestep=tt, encoder_hidden_states=cc, pooled_projections=pp).sample

    with torch.no_grad():
        torch.testing.assert_close(ours(x, t, ctx, pooled), run_theirs(x, t, ctx, pooled), rtol=1e-4, atol=1e-4)
    n_ours = sum(p.numel() for p in ours.parameters() if p.requires_grad)
    n_theirs = sum(p.numel() for p in theirs.parameters() if p.requires_grad)
    assert n_ours == n_theirs, (n_ours, n_theirs)

    def make(module, fwd):
        opt = torch.optim.AdamW([p for p in module.parameters() if p.requires_grad], lr=1e-4)

        def step():
            module.train()
            (fwd(x, t, ctx, pooled) - x).square().mean().backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        return step

    med = interleaved_medians([make(ours, ours.forward), make(theirs, run_theirs)], repeats)
    print(f"\nLoRA rank {rank} on {len(layers)} projections ({n_ours / 1e6:.2f} M trainable parameters), same batch; "
          f"interleaved medians of {repeats} runs")
    print(f"{'genlab LoRA train steps/s':34s} {1 / med[0]:14.3f}")
    print(f"{'diffusers + PEFT LoRA steps/s':34s} {1 / med[1]:14.3f}")
    print(f"{'ratio genlab / diffusers':34s} {med[1] / med[0]:13.2f}x")


if __name__ == "__main__":
    main()
