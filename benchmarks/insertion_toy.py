"""Peer benchmark on the toy: ours vs a Paint-by-Example-style variant vs ours without dropout.

Paint-by-Example (Yang et al. 2023; diffusers' PaintByExamplePipeline) trains on same-image pairs (the
reference is cut from the very frame it must be pasted into) and conditions on the CLIP class token
only. We train three models at an equal budget (same steps, batch, architecture, seed):

  ours           reference from another frame of the clip, all reference tokens, dropout 10% + 10%
  pbe-style      reference from the same frame, class token only, same dropout
  ours-no-drop   as ours, without condition dropout (guidance then has no unconditional model;
                 sampled at scale 1)

and report affordance (the paper's claim: re-posing to fit the scene), PCKh@0.5, identity colour
error and FID on the same fixed held-out pairs, with the paste baseline and ground truth measured in
the same run. Usage: `python benchmarks/insertion_toy.py --steps 600 --pairs 64` (CPU; minutes to
hours depending on the budget). Real-weight timing (s/image at 256 px, 50 and 200 steps vs the
diffusers pipeline) needs SD-1.5-inpainting and CLIP weights on disk: `--real-weights PATH`
(not run here: no weights on this machine).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace

import torch


def main() -> None:
    from genlab.systems.insertion import config as C
    from genlab.systems.insertion import evaluate as E
    from genlab.systems.insertion import metrics as M
    from genlab.systems.insertion import train as T
    from genlab.systems.insertion.pipeline import InsertionPipeline

    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", choices=("tiny", "toy"), default="tiny")
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--pairs", type=int, default=64)
    ap.add_argument("--sample-steps", type=int, default=20)
    ap.add_argument("--reader-steps", type=int, default=600)
    ap.add_argument("--out", default="runs/insertion_bench")
    args = ap.parse_args()
    torch.set_num_threads(1)
    base = {"tiny": C.tiny, "toy": C.toy}[args.preset]()
    base = replace(base, train=replace(base.train, steps=args.steps))
    readers = M.load_or_train_readers(M.ReaderConfig(size=base.size, steps=args.reader_steps, pool=1500))
    variants = {
        "ours": (base, "same", None, None),
        "pbe-style": (replace(base, model=replace(base.model, cls_only=True)), "self", None, None),
        "ours-no-drop": (base, "same", 0.0, 0.0),
    }
    rows = {}
    for name, (cfg, mode, pb, pp) in variants.items():
        t0 = time.time()
        pool = T.build_pool(cfg, mode=mode)
        model, ae, _ = T.train(cfg, out_dir=f"{args.out}/{name}", progress=True, p_both=pb, p_person=pp, pool=pool)
        settings = replace(cfg.sample, steps=args.sample_steps)
        if pb == 0.0:
            settings = replace(settings, scale_scene=1.0, scale_person=1.0)
        rep = E.evaluate(InsertionPipeline(model, ae, cfg.ref_size), cfg, readers, n_pairs=args.pairs,
                         settings=settings, methods=("insertion",))
        rows[name] = {**rep["insertion"], "seconds": round(time.time() - t0)}
        rows.setdefault("paste", rep["paste"])
        rows.setdefault("ground truth", rep["ground_truth"])
    print(f"\ninsertion toy benchmark: {args.preset}, {args.steps} steps each, {args.pairs} held-out pairs, "
          f"DDIM {args.sample_steps}")
    print(f"{'method':<14} {'affordance':>10} {'vs ours':>8} {'PCKh@0.5':>9} {'id err':>7} {'FID':>8}")
    ref = rows["ours"]["affordance"]
    for name, r in rows.items():
        ratio = r["affordance"] / ref if ref else float("nan")
        print(f"{name:<14} {r['affordance']:>10.3f} {ratio:>8.2f} {r.get('pckh@0.5', float('nan')):>9.3f} "
              f"{r['identity_error']:>7.3f} {r.get('fid_same', float('nan')):>8.2f}")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
