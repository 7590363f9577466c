"""Pretrained SD3 pipeline: genlab vs diffusers' StableDiffusion3Pipeline, timed interleaved (A, B, A, B).

1. The tiny random SD3 pipeline of the tests (two CLIPs, T5, 16-channel VAE, MM-DiT) saved to a temporary
   folder: seconds per image end to end, parts kept loaded (ours `keep_loaded=True`, diffusers' pipeline
   object), and cold (load from the folder + one image, ours releasing each part after use).
2. One denoising step (CFG batch of 2, 77 + 256 text tokens) of an SD3-Medium-size MM-DiT (depth 24,
   hidden 1536, random weights, float32) at 256x256 (32x32 latents): each side in its own subprocess,
   `--repeats` interleaved runs, seconds per step and peak RSS per side. Needs about 9 GB of free RAM per
   run; `--depth` makes it smaller.

    PYTHONPATH=src python benchmarks/t2i_pipeline.py [--threads 1] [--repeats 5] [--medium-repeats 3] [--depth 24]
        [--clock wall|cpu]    # part 1: cpu = CPU time of this process, for one thread on a loaded machine
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from _timing import interleaved_medians, threads_line

ROOT = Path(__file__).resolve().parents[1]

_STEP = r"""
import json, sys, time, torch
side, depth, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(threads)
torch.manual_seed(0)
from genlab.systems.t2i import convert
from genlab.systems.t2i.config import mmdit_depth
cfg = mmdit_depth(depth, pos_embed_max_size=192, pos_embed_base_size=64)
if side == "genlab":
    from genlab.systems.t2i.model import MMDiT
    with torch.device("meta"):
        net = MMDiT(cfg)
else:
    from diffusers import SD3Transformer2DModel
    with torch.device("meta"):
        net = SD3Transformer2DModel(**convert.to_diffusers_config(cfg))
net = net.to_empty(device="cpu").eval()
with torch.no_grad():
    for p in net.parameters():
        p.normal_(0, 0.02)
    for b in net.buffers():
        b.normal_(0, 0.02)
x, t = torch.randn(2, 16, 32, 32), torch.full((2,), 500.0)
ctx, pooled = torch.randn(2, 77 + 256, cfg.context_dim), torch.randn(2, cfg.pooled_dim)
with torch.no_grad():
    t0 = time.perf_counter()
    if side == "genlab":
        net(x, t, ctx, pooled)
    else:
        net(hidden_states=x, timestep=t, encoder_hidden_states=ctx, pooled_projections=pooled)
    step = time.perf_counter() - t0
# VmHWM, not ru_maxrss: ru_maxrss survives exec and starts at the forking parent's RSS
hwm = next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(json.dumps({"step_s": step, "peak_rss": hwm}))
"""


def tiny_pipeline(folder: Path, repeats: int, steps: int, clock=time.perf_counter) -> None:
    sys.path.insert(0, str(ROOT))
    from diffusers import StableDiffusion3Pipeline
    from tests.systems.t2i import sd3_tiny

    from genlab.systems.t2i.sd3 import load_pipeline

    parts = sd3_tiny.components()
    sd3_tiny.save_folder(parts, folder)
    prompts, size = ["a photo of a cat"], (64, 64)
    # no prompt cache on disk: both sides run their text encoders for every image (equal work)
    ours = load_pipeline(folder, keep_loaded=True, text_cache=False)
    theirs = StableDiffusion3Pipeline.from_pretrained(str(folder), local_files_only=True)
    theirs.set_progress_bar_config(disable=True)

    def run_ours(pipe=None):
        return (pipe or ours)(prompts, steps=steps, guidance=7.0, size=size, seed=0)

    def run_theirs(pipe=None):
        return (pipe or theirs)(prompts, height=size[0], width=size[1], num_inference_steps=steps, guidance_scale=7.0,
                                generator=torch.Generator("cpu").manual_seed(0), output_type="pt").images

    diff = float((run_ours() - run_theirs()).abs().max())

    def cold_ours():
        return run_ours(load_pipeline(folder, text_cache=False))

    def cold_theirs():
        pipe = StableDiffusion3Pipeline.from_pretrained(str(folder), local_files_only=True)
        pipe.set_progress_bar_config(disable=True)
        return run_theirs(pipe)

    warm = dict(zip(("genlab", "diffusers"), interleaved_medians([run_ours, run_theirs], repeats, clock=clock)))
    cold = dict(zip(("genlab", "diffusers"), interleaved_medians([cold_ours, cold_theirs], repeats, clock=clock)))
    print(f"\n1. tiny SD3 pipeline, {size[0]}x{size[1]}, {steps} steps, CFG 7, one image; max |ours - diffusers| = {diff:.1e}; "
          f"{'CPU' if clock is time.process_time else 'wall'} time, no prompt cache")
    print(threads_line())
    print(f"{'':28s} {'genlab s/image':>15s} {'diffusers s/image':>18s} {'speed ratio':>12s}")
    for name, t in (("parts loaded", warm), ("cold (load + one image)", cold)):
        print(f"{name:28s} {t['genlab']:15.3f} {t['diffusers']:18.3f} {t['diffusers'] / t['genlab']:11.2f}x")


def medium_step(depth: int, repeats: int, threads: int) -> None:
    rows = {"genlab": [], "diffusers": []}
    env = {"PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1"}
    for _ in range(repeats):
        for side in rows:
            out = subprocess.run([sys.executable, "-c", _STEP, side, str(depth), str(threads)], capture_output=True,
                                 text=True, env=env, check=False)
            if out.returncode != 0:
                raise SystemExit(f"{side} step failed:\n{out.stderr[-3000:]}")
            rows[side].append(json.loads(out.stdout.strip().splitlines()[-1]))
    med = {k: (statistics.median(r["step_s"] for r in v), max(r["peak_rss"] for r in v)) for k, v in rows.items()}
    print(f"\n2. one CFG denoising step (batch 2), MM-DiT depth {depth} (hidden {64 * depth}), 256x256 "
          f"(32x32x16 latents), 333 text tokens, float32, own subprocess per run, {repeats} interleaved runs")
    print(f"{'':12s} {'s/step (median)':>16s} {'peak RSS GiB':>13s}")
    for k, (s, rss) in med.items():
        print(f"{k:12s} {s:16.2f} {rss / 2**30:13.2f}")
    print(f"{'ratio':12s} {med['diffusers'][0] / med['genlab'][0]:15.2f}x {med['genlab'][1] / med['diffusers'][1]:12.2f}x"
          "   (speed: diffusers time / ours; memory: ours / diffusers)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5, help="interleaved rounds for the tiny pipeline")
    ap.add_argument("--steps", type=int, default=28, help="denoising steps of the tiny pipeline")
    ap.add_argument("--medium-repeats", type=int, default=3)
    ap.add_argument("--depth", type=int, default=24, help="MM-DiT depth of part 2 (SD3-Medium: 24; 0 skips it)")
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="part 1's clock; cpu: this process's CPU time (one thread on a machine loaded by others)")
    args = ap.parse_args()
    if args.clock == "cpu" and args.threads != 1:
        raise SystemExit("--clock cpu needs --threads 1 (CPU time adds up over threads)")
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        tiny_pipeline(Path(tmp) / "tiny-sd3", args.repeats, args.steps,
                      time.process_time if args.clock == "cpu" else time.perf_counter)
    if args.depth:
        medium_step(args.depth, args.medium_repeats, args.threads)


if __name__ == "__main__":
    main()
