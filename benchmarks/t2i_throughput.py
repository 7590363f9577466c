"""Training steps/s and sampling images/s: genlab's MM-DiT vs diffusers' SD3Transformer2DModel, fp32 and bf16,
with model FLOP utilisation (MFU) against a GEMM peak measured in the same run.

Same config, same weights (converted), same batch: depth 4 (hidden 256, 4 heads), 32x32x4 latents
(2x2 patches -> 256 image tokens), 77 text tokens of width 4096, pooled 2048, batch 8.
A training step = forward + backward + AdamW, each side with its trainer's optimizer: genlab's
`core.train.default_optimizer` (fused AdamW where torch has the kernel) and `torch.optim.AdamW` with its defaults
as diffusers' SD3 training scripts build it (per tensor on CPU); same hyper-parameters. Sampling = Euler steps with classifier-free guidance
(one batched forward of 2B per step). bf16 rows run both sides under `torch.autocast("cpu", torch.bfloat16)`
(equal precision). Per precision, ours, diffusers and the GEMM probe are timed interleaved (A, B, C, A, B, C),
medians over repeats, so a change of machine load moves all three alike.

MFU = model FLOPs / time / GEMM peak. Model FLOPs are counted once (torch's FlopCounterMode: matrix products
and attention) on diffusers' step, the plain computation, and used for both sides, so MFU ratios are speed
ratios. The GEMM peak is a 1024^3 matrix product in the row's precision on the same threads.

A LoRA step (rank --lora-rank on the attention and MLP projections of both streams, only the adapters
train, fp32): genlab's adapters (`systems.t2i.lora.add_lora`) against the same adapters loaded into diffusers'
transformer through PEFT (`load_lora_adapter`), outputs checked equal first.

    PYTHONPATH=src python benchmarks/t2i_throughput.py [--threads 1] [--repeats 5] [--steps 10] [--dtypes fp32 bf16]
        [--clock wall|cpu] [--lora-rank 16]   # cpu: CPU time of this process, for one thread on a loaded machine
"""

from __future__ import annotations

import argparse
import contextlib
import time

import torch
from _timing import interleaved, threads_line
from torch.utils.flop_counter import FlopCounterMode

from genlab.core.train import TrainConfig, default_optimizer
from genlab.systems.t2i import convert
from genlab.systems.t2i.config import mmdit_depth
from genlab.systems.t2i.model import MMDiT

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
NAMES = ("genlab MMDiT", "diffusers SD3Transformer2DModel")
PEAK_N = 1024


def optimizer(module: torch.nn.Module) -> torch.optim.Optimizer:
    """Each side's training optimizer, same hyper-parameters (diffusers' SD3 scripts: lr 1e-4, weight decay 1e-4)."""
    if isinstance(module, MMDiT):
        return default_optimizer(module, TrainConfig(lr=1e-4, weight_decay=1e-4))
    return torch.optim.AdamW([p for p in module.parameters() if p.requires_grad], lr=1e-4, weight_decay=1e-4)


# op name -> group, for `step_profile` (the optimizer: fused AdamW's kernel, or per-tensor AdamW's ops)
PROFILE_GROUPS = {"GEMM": ("aten::mm", "aten::addmm", "aten::bmm"), "attention": ("flash_attention",),
                  "GELU": ("aten::gelu",), "optimizer": ("adamw", "aten::lerp_", "aten::addcdiv_", "aten::sqrt",
                                                        "aten::addcmul_", "aten::mul_", "aten::div")}


def step_profile(step, steps: int) -> dict[str, float]:
    """Where a training step's CPU time goes: ms per step of each PROFILE_GROUPS group, other ops, total."""
    from torch.profiler import profile

    step()
    with profile() as prof:
        for _ in range(steps):
            step()
    groups = dict.fromkeys([*PROFILE_GROUPS, "other"], 0.0)
    for event in prof.key_averages():
        key = event.key.lower()
        group = next((g for g, names in PROFILE_GROUPS.items() if any(n.lower() in key for n in names)), "other")
        groups[group] += event.self_cpu_time_total / 1e3 / steps
    return groups | {"total": sum(groups.values())}


def count_flops(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5, help="interleaved training rounds (sampling: half of them)")
    ap.add_argument("--steps", type=int, default=10, help="Euler steps per sampling run")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--dtypes", nargs="+", default=list(DTYPES), choices=list(DTYPES))
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="cpu: this process's CPU time (one thread on a machine loaded by others)")
    ap.add_argument("--lora-rank", type=int, default=16, help="0: no LoRA row")
    ap.add_argument("--profile", type=int, default=0, metavar="STEPS",
                    help="also profile STEPS training steps of each side (torch profiler) and print where a step's time goes")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.clock == "cpu" and args.threads != 1:
        raise SystemExit("--clock cpu needs --threads 1 (CPU time adds up over threads)")
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
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

    def make(module, fwd, dtype):
        opt = optimizer(module)

        def autocast():
            if dtype == torch.float32:
                return contextlib.nullcontext()
            return torch.autocast("cpu", dtype=dtype)

        def train_step():
            module.train()
            with autocast():
                loss = (fwd(x, t, ctx, pooled).float() - x).square().mean()
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
                with autocast():
                    v_u, v_c = fwd(torch.cat([z, z]), (1000 * ts[i]).expand(2 * b), c2, p2).float().chunk(2)
                z = z + (ts[i + 1] - ts[i]) * (v_u + 4.0 * (v_c - v_u))
            return z

        def forward_cfg():  # one sampling step's forward, for the FLOP count
            with torch.no_grad(), autocast():
                fwd(torch.cat([x, x]), t.repeat(2), torch.cat([ctx, ctx]), torch.cat([pooled, pooled]))

        return train_step, sample, forward_cfg

    print(f"\nMM-DiT depth 4 (hidden 256), batch {b}, 32x32x4 latents, 77 text tokens, CFG sampling with {args.steps} "
          f"Euler steps; interleaved medians of {args.repeats} (train) and {max(1, args.repeats // 2)} (sampling) runs")
    print(threads_line() + f"; clock: {args.clock} time")
    header = (f"{'precision':9s} {'implementation':34s} {'train steps/s':>13s} {'train MFU':>9s} "
              f"{'sample img/s':>12s} {'sample MFU':>10s} {'GEMM peak GFLOP/s':>17s}")
    lines, profiles = [], []
    for name in args.dtypes:
        dtype = DTYPES[name]
        fns = dict(zip(NAMES, (make(ours, run_ours, dtype), make(theirs, run_theirs, dtype))))
        a, c = torch.randn(PEAK_N, PEAK_N, dtype=dtype), torch.randn(PEAK_N, PEAK_N, dtype=dtype)

        def gemm(a=a, c=c):
            return a @ c

        train_flops = count_flops(fns[NAMES[1]][0])  # the plain computation, used for both sides
        sample_flops = count_flops(fns[NAMES[1]][2]) * args.steps
        train_s = interleaved({n: f[0] for n, f in fns.items()} | {"gemm": gemm}, args.repeats, clock=clock)
        sample_s = interleaved({n: f[1] for n, f in fns.items()} | {"gemm": gemm}, max(1, args.repeats // 2), clock=clock)
        peak = 2 * PEAK_N**3 / min(train_s["gemm"], sample_s["gemm"])
        rows = {n: (1 / train_s[n], train_flops / train_s[n] / peak, b / sample_s[n], sample_flops / sample_s[n] / peak)
                for n in NAMES}
        for n, (tr, tr_mfu, sm, sm_mfu) in rows.items():
            lines.append(f"{name:9s} {n:34s} {tr:13.3f} {tr_mfu:9.1%} {sm:12.3f} {sm_mfu:10.1%} {peak / 1e9:17.1f}")
        (tr_o, _, sm_o, _), (tr_r, _, sm_r, _) = rows.values()
        lines.append(f"{name:9s} {'ratio genlab / diffusers':34s} {tr_o / tr_r:12.2f}x {'':9s} {sm_o / sm_r:11.2f}x")
        print(f"  {name}: model FLOPs {train_flops / 1e9:.1f} G per training step, {sample_flops / 1e9:.1f} G per "
              f"sampling run of {b} images", flush=True)
        if args.profile:
            profiles.append((name, {n: step_profile(f[0], args.profile) for n, f in fns.items()}))
    print(header)
    print("\n".join(lines))
    for name, by_side in profiles:
        print(f"\n{name} training step, ms of CPU (self time of each op, torch profiler, mean of {args.profile} steps)")
        print(f"  {'implementation':34s} " + " ".join(f"{k:>9s}" for k in PROFILE_GROUPS) + f" {'other':>9s} {'total':>9s}")
        for n, groups in by_side.items():
            print(f"  {n:34s} " + " ".join(f"{groups[k]:9.1f}" for k in [*PROFILE_GROUPS, "other", "total"]))
    if args.lora_rank:
        lora_row(ours, theirs, (x, t, ctx, pooled), args.lora_rank, args.repeats, clock)


def lora_row(ours, theirs, inputs, rank: int, repeats: int, clock) -> None:
    """LoRA training steps/s: genlab's adapters vs the same adapters in diffusers' transformer through PEFT."""
    import copy

    from genlab.systems.t2i.lora import add_lora, lora_state_dict

    x, t, ctx, pooled = inputs
    ours, theirs = copy.deepcopy(ours), copy.deepcopy(theirs)
    theirs.load_state_dict(convert.to_diffusers(ours.state_dict()))  # the rows above trained each side apart
    torch.manual_seed(1)
    layers = add_lora(ours, rank)
    with torch.no_grad():  # B = 0 at the start; make the adapters matter for the equality check
        for lora in layers.values():
            lora.lora_B.normal_(0, 0.01)
    theirs.load_lora_adapter(lora_state_dict(layers, ours.cfg), prefix="transformer", adapter_name="bench")
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
        opt = optimizer(module)

        def step():
            module.train()
            (fwd(x, t, ctx, pooled) - x).square().mean().backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        return step

    med = interleaved({"genlab": make(ours, ours.forward), "diffusers": make(theirs, run_theirs)}, repeats, clock=clock)
    med = [med["genlab"], med["diffusers"]]
    print(f"\nLoRA rank {rank} on {len(layers)} projections ({n_ours / 1e6:.2f} M trainable parameters), same batch; "
          f"interleaved medians of {repeats} runs")
    print(f"{'genlab LoRA train steps/s':34s} {1 / med[0]:14.3f}")
    print(f"{'diffusers + PEFT LoRA steps/s':34s} {1 / med[1]:14.3f}")
    print(f"{'ratio genlab / diffusers':34s} {med[1] / med[0]:13.2f}x")


if __name__ == "__main__":
    main()
