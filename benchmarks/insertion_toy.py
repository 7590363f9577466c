"""Peer benchmark on the toy: ours vs a Paint-by-Example-style variant vs ours without dropout.

Paint-by-Example (Yang et al. 2023; diffusers' PaintByExamplePipeline) trains on same-image pairs (the
reference is cut from the very frame it must be pasted into) and conditions on the CLIP class token
only. We train three models at an equal budget (same steps, batch, architecture, seed):

  ours           reference from another frame of the clip, all reference tokens, dropout 10% + 10%
  pbe-style      reference from the same frame, class token only, same dropout
  ours-no-drop   as ours, without condition dropout (guidance then has no unconditional model;
                 sampled at scale 1)

Guidance belongs to each guided method, so it is chosen per variant on validation pairs (clips no
training stream or test pair uses) and only the chosen setting is scored on the held-out test pairs:
affordance (the paper's claim: re-posing to fit the scene) with standard errors and the paired
difference ours - variant (same pairs, same noise), PCKh@0.5, identity colour error and FID, with the
paste baseline and ground truth on the same pairs. Usage: `python benchmarks/insertion_toy.py --preset
toy --pairs 1000` (the acceptance budget: ~40 CPU min of training per variant, then scoring; `--steps`
and the `tiny` preset for quicker curves). Scores are cached in OUT/scores.json.

`--timing`: s/image at 256 px, 50 and 200 DDIM steps, ours (the paper's single scale: 2 forwards a
step; two scales: 3) against diffusers' PaintByExamplePipeline (guidance 5, DDIM: 2 forwards a step),
at the real architectures: SD-1.5-inpainting UNet, SD's f8 KL-VAE, CLIP ViT-L/14. With
`--sd-inpainting DIR --clip DIR --pbe DIR` the real weights load from those local folders; without
them both sides are randomly initialised at the same configs (the time does not depend on the
values). A run costs fixed + steps x per-step, so each pipeline is timed at 1 and 3 steps and the 50-
and 200-step figures are fixed + n x per-step (`--full` runs them for real instead). The pipelines are
timed interleaved (each at each step count once per round, `--repeats` rounds, medians of CPU seconds).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import replace

import torch
from _timing import threads_line

SD_VAE = dict(down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
              block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4, sample_size=256)
CLIP_L14 = dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                patch_size=14, image_size=224, projection_dim=768, hidden_act="quick_gelu")


def _timed(fn, n_steps: int) -> tuple[float, float]:
    """(wall s, CPU s) of one call."""
    w, c = time.perf_counter(), time.process_time()
    fn(n_steps)
    return time.perf_counter() - w, time.process_time() - c


def timing(args) -> None:
    """s/image at 256 px: ours vs diffusers' PaintByExamplePipeline at the real architectures."""
    from diffusers import AutoencoderKL, DDIMScheduler, PaintByExamplePipeline, UNet2DConditionModel
    from diffusers.pipelines.deprecated.paint_by_example.image_encoder import PaintByExampleImageEncoder
    from PIL import Image
    from transformers import CLIPImageProcessor, CLIPVisionConfig

    from genlab.core.autoencoders.kl import DiffusersKL
    from genlab.core.nn.unet import load_diffusers_unet2d_state_dict
    from genlab.systems.insertion import config
    from genlab.systems.insertion.convert import load_pretrained
    from genlab.systems.insertion.model import InsertionModel
    from genlab.systems.insertion.pipeline import InsertionPipeline

    torch.manual_seed(0)
    cfg = config.sd15_inpainting()
    if args.sd_inpainting:
        loaded = load_pretrained(args.sd_inpainting, clip_folder=args.clip, untrained_projection=True)
        model, cfg, vae = loaded.model, loaded.config, loaded.ae.vae
        peer = PaintByExamplePipeline.from_pretrained(args.pbe, local_files_only=True, safety_checker=None)
        weights = "real weights"
    else:
        vae = AutoencoderKL(**SD_VAE)
        unet = UNet2DConditionModel(in_channels=9, out_channels=4, cross_attention_dim=768, sample_size=32)
        model = InsertionModel(cfg.model)
        load_diffusers_unet2d_state_dict(model.unet, unet.state_dict())  # the same UNet weights on both sides
        peer = PaintByExamplePipeline(vae=vae, unet=unet, image_encoder=PaintByExampleImageEncoder(CLIPVisionConfig(**CLIP_L14)),
                                      scheduler=DDIMScheduler(), safety_checker=None,
                                      feature_extractor=CLIPImageProcessor(crop_size=224, size=224))
        weights = "random weights at the real configs"
    peer.scheduler = DDIMScheduler.from_config(peer.scheduler.config)
    peer.set_progress_bar_config(disable=True)
    ours = InsertionPipeline(model.eval(), DiffusersKL(vae.eval()), cfg.ref_size)
    size = 256
    scene = torch.rand(1, 3, size, size) * 2 - 1
    mask = torch.zeros(1, 1, size, size)
    mask[..., 64:224, 96:160] = 1
    ref = torch.rand(1, 3, cfg.ref_size, cfg.ref_size) * 2 - 1
    to_pil = lambda t: Image.fromarray(((t[0].permute(1, 2, 0).clamp(-1, 1) + 1) * 127.5).byte().numpy())  # noqa: E731
    pil_scene, pil_mask = to_pil(scene), Image.fromarray((mask[0, 0] * 255).byte().numpy())
    pil_ref = to_pil(ref)

    def run_ours(scales):
        def go(n):
            ours.sample(scene, mask, ref, settings=replace(cfg.sample, steps=n, scale_scene=scales[0],
                                                           scale_person=scales[1]))
        return go

    def run_peer(n):
        with torch.no_grad():
            peer(example_image=pil_ref, image=pil_scene, mask_image=pil_mask, height=size, width=size,
                 num_inference_steps=n, guidance_scale=5.0, output_type="pt")

    runs = {"ours, one scale (4)": run_ours((4.0, 4.0)), "ours, two scales (4, 2)": run_ours((4.0, 2.0)),
            "PaintByExamplePipeline": run_peer}
    print(f"\ninsertion timing at {size} px, {weights}, {torch.get_num_threads()} torch thread(s)")
    print(f"{'pipeline':<24} {'fixed s':>8} {'s/step':>7} {'s/img 50':>9} {'s/img 200':>10} {'vs peer @50':>12}")
    rows = {}
    with torch.no_grad():
        for fn in runs.values():
            fn(1)  # warm-up
        if args.full:
            steps = (50, 200)
        else:
            steps = (1, 3)
        # interleaved: every pipeline at every step count once per round, medians over the rounds
        cpu = {name: {n: [] for n in steps} for name in runs}
        for _ in range(args.repeats):
            for name, fn in runs.items():
                for n in steps:
                    cpu[name][n].append(_timed(fn, n)[1])
        for name in runs:
            med = {n: statistics.median(cpu[name][n]) for n in steps}
            if args.full:
                rows[name] = {50: med[50], 200: med[200], "fixed": float("nan"), "step": (med[200] - med[50]) / 150}
            else:
                step = (med[3] - med[1]) / 2
                rows[name] = {"fixed": med[1] - step, "step": step, 50: med[1] + 49 * step, 200: med[1] + 199 * step}
    peer_row = rows["PaintByExamplePipeline"]
    for name, r in rows.items():
        print(f"{name:<24} {r['fixed']:>8.2f} {r['step']:>7.2f} {r[50]:>9.1f} {r[200]:>10.1f} "
              f"{r[50] / peer_row[50]:>12.2f}")
    print(f"(CPU seconds of this process, medians of {args.repeats} interleaved rounds; ratio < 1: ours is faster)")
    print(threads_line())


# name: (training pairs, class token only, condition dropout)
VARIANTS = {"ours": ("same", False, True), "pbe-style": ("self", True, True), "ours-no-drop": ("same", False, False)}
# (scale_scene, scale_person) tried on the validation pairs; the paper's single scale is the diagonal
GUIDANCE = ((1.0, 1.0), (1.5, 1.5), (2.0, 2.0), (3.0, 3.0), (2.0, 1.0))


def paired(a: list[int], b: list[int]) -> tuple[float, float]:
    """Mean and standard error of the per-pair difference a - b (same pairs, same noise)."""
    import numpy as np

    d = np.asarray(a, float) - np.asarray(b, float)
    return float(d.mean()), float(d.std(ddof=1) / np.sqrt(len(d)))


def main() -> None:
    from pathlib import Path

    from genlab.core.io import atomic_write_text
    from genlab.systems.insertion import config, evaluate, metrics, train
    from genlab.systems.insertion.pipeline import InsertionPipeline

    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", choices=("tiny", "toy"), default="tiny")
    ap.add_argument("--steps", type=int, help="training steps (default: the preset's)")
    ap.add_argument("--pairs", type=int, default=200, help="held-out test pairs")
    ap.add_argument("--val-pairs", type=int, default=200, help="validation pairs on which guidance is chosen")
    ap.add_argument("--sample-steps", type=int, help="DDIM steps (default: the preset's)")
    ap.add_argument("--variants", nargs="+", choices=tuple(VARIANTS), default=tuple(VARIANTS))
    ap.add_argument("--out", default="runs/insertion_bench")
    ap.add_argument("--timing", action="store_true", help="s/image at 256 px vs PaintByExamplePipeline instead")
    ap.add_argument("--full", action="store_true", help="--timing: run 50 and 200 steps instead of extrapolating")
    ap.add_argument("--repeats", type=int, default=3, help="--timing: interleaved rounds (medians)")
    ap.add_argument("--sd-inpainting", help="--timing: local diffusers SD-1.5-inpainting folder (unet/, vae/)")
    ap.add_argument("--clip", help="--timing: local transformers CLIP ViT-L/14 vision folder")
    ap.add_argument("--pbe", help="--timing: local diffusers Paint-by-Example folder")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.timing:
        if args.sd_inpainting and not (args.clip and args.pbe):
            ap.error("--sd-inpainting needs --clip and --pbe too")
        return timing(args)
    base = {"tiny": config.tiny, "toy": config.toy}[args.preset]()
    base = replace(base, train=replace(base.train, steps=args.steps or base.train.steps))
    steps = args.sample_steps or base.sample.steps
    readers = metrics.load_or_train_readers(metrics.ReaderConfig(size=base.size), progress=True)
    out = Path(args.out)
    cache_path = out / "scores.json"  # each (variant, split, pairs, guidance) scored once: reruns are cheap,
    # and variants may be run as separate processes (--variants) and then tabled together
    cache = json.loads(cache_path.read_text()) if cache_path.is_file() else {}

    def scored(name, pipe, cfg, split, n, scales):
        key = f"{name}|{split}|{n}|{steps}|{scales[0]}|{scales[1]}"
        if key not in cache:
            seed = evaluate.VALIDATION_SEED if split == "val" else evaluate.EVAL_SEED
            cache[key] = evaluate.evaluate(pipe, cfg, readers, n_pairs=n, pair_seed=seed, hits=True, methods=("insertion",),
                                    settings=replace(cfg.sample, steps=steps, scale_scene=scales[0],
                                                     scale_person=scales[1]))
            on_disk = json.loads(cache_path.read_text()) if cache_path.is_file() else {}  # other --variants runs
            atomic_write_text(cache_path, json.dumps({**on_disk, key: cache[key]}))
        return cache[key]

    rows, chosen = {}, {}
    for name in args.variants:
        mode, cls_only, dropout = VARIANTS[name]
        cfg = replace(base, model=replace(base.model, cls_only=cls_only))
        t0 = time.time()
        drop = {} if dropout else {"p_both": 0.0, "p_person": 0.0}
        model, ae, _ = train.train(cfg, out_dir=out / name, progress=True, mode=mode, **drop)
        pipe = InsertionPipeline(model, ae, cfg.ref_size)
        grid = GUIDANCE if dropout else ((1.0, 1.0),)  # no unconditional model to guide with
        val = {g: scored(name, pipe, cfg, "val", args.val_pairs, g)["insertion"]["affordance"] for g in grid}
        chosen[name] = max(grid, key=lambda g: (val[g], -sum(g)))  # ties: the weaker guidance
        rep = scored(name, pipe, cfg, "test", args.pairs, chosen[name])
        rows[name] = {**rep["insertion"], "seconds": round(time.time() - t0),
                      "val": {"/".join(f"{x:g}" for x in g): v for g, v in val.items()}}
        rows.setdefault("paste", rep["paste"])
        rows.setdefault("ground truth", rep["ground_truth"])
    print(f"\ninsertion toy benchmark: {args.preset}, {base.train.steps} steps each, guidance chosen on "
          f"{args.val_pairs} validation pairs, {args.pairs} held-out test pairs, DDIM {steps}")
    print(f"{'method':<14} {'guidance':>10} {'affordance':>13} {'ours - it':>15} {'PCKh@0.5':>9} {'id err':>7} {'FID':>6}")
    ref = rows.get("ours")
    for name, r in rows.items():
        n = len(r["hits"])
        se = (r["affordance"] * (1 - r["affordance"]) / n) ** 0.5
        diff = "" if ref is None or name == "ours" else "{:+.3f} +- {:.3f}".format(*paired(ref["hits"], r["hits"]))
        g = "/".join(f"{x:g}" for x in chosen[name]) if name in chosen else ""  # scene/person
        print(f"{name:<14} {g:>10} {r['affordance']:>7.3f}+-{se:.3f} {diff:>15} {r.get('pckh@0.5', float('nan')):>9.3f} "
              f"{r['identity_error']:>7.3f} {r.get('fid_same', float('nan')):>6.2f}")
    print("(+- one standard error; 'ours - it' is paired over the same pairs and noise)")
    for name in chosen:
        print(f"validation affordance, {name}: " + ", ".join(f"{k} {v:.3f}" for k, v in rows[name]["val"].items()))


if __name__ == "__main__":
    main()
