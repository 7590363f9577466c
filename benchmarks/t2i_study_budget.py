"""eps/linear against rf/lognorm(0, 1) as the training budget grows (the study's eps/linear question).

Both formulations train the `study_reduced` network (seed 0) in one run each, continued to 400, 800, 1600 steps
(constant learning rate after warm-up, so a continued run is the longer run). After each budget: the EMA
validation velocity error at the study's eight levels (t_rf = (k + 0.5) / 8, low noise to high noise) and the
class accuracy (the study's MNIST classifier) of 500 class-balanced samples with 25 DDIM steps at guidance 1 and
3, from pure noise as the study samples and, for eps/linear, also from the training distribution at t = 1
(pure noise plus a_1 x the mean training image: SD's schedule ends at a_1 = 0.068, not at zero signal).
Not a timing: the figures are deterministic up to thread scheduling.

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/t2i_study_budget.py [--out runs/budget] [--budgets 400 800 1600] \
        [--formulations eps rf]
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import torch

from genlab.core.data.mnist import load_mnist
from genlab.core.eval import classifier
from genlab.core.flow import formulation, guidance, samplers
from genlab.systems.t2i.study import config as study_config
from genlab.systems.t2i.study.model import NULL_CLASS
from genlab.systems.t2i.study.run import load_net, run_dir, to_unit, train_run


def accuracy(cfg, form, net, clf, start: torch.Tensor, labels: torch.Tensor, scale: float) -> float:
    model = guidance.cfg(form.denoiser(net), {"labels": torch.full_like(labels, NULL_CLASS)}, {"labels": labels}, scale)
    with torch.no_grad():
        x = to_unit(samplers.ddim(model, start, form.default_grid(25)).x)
    return float((classifier.batched(clf, x).argmax(1) == labels).float().mean())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="runs/budget")
    ap.add_argument("--budgets", type=int, nargs="+", default=[400, 800, 1600])
    ap.add_argument("--samples", type=int, default=500)
    ap.add_argument("--formulations", nargs="+", choices=["eps", "rf"], default=["eps", "rf"],
                    help="one each in two processes halves the wall time")
    args = ap.parse_args()
    torch.set_num_threads(1)
    base = study_config.study_reduced()
    clf, _ = classifier.train_or_load(base.classifier)
    mean_image = (torch.as_tensor(load_mnist("train").images).float() / 127.5 - 1.0).mean(0).reshape(1, 1, 28, 28)
    labels = torch.arange(args.samples) % 10
    noise = torch.randn(args.samples, 1, 28, 28, generator=torch.Generator().manual_seed(base.eval.seed))
    rows = []
    forms = {"eps": formulation.eps_linear(), "rf": formulation.rf_lognorm(0.0, 1.0)}
    for form in (forms[f] for f in args.formulations):
        folder = run_dir(Path(args.out), form, 0)
        folder.mkdir(parents=True, exist_ok=True)
        for budget in args.budgets:
            cfg = replace(base, train=replace(base.train, steps=budget, eval_every=200))
            val = folder / "val.json"
            if val.is_file():  # continue the run: train_run resumes from its checkpoint once not marked done
                record = json.loads(val.read_text())
                record.pop("done", None)
                val.write_text(json.dumps(record, indent=1))
            record = train_run(cfg, form, 0, folder)
            net = load_net(cfg, form, folder / "best_ema.safetensors")
            t1 = torch.tensor(1.0)
            a1, b1 = float(form.path.a(t1)), float(form.path.b(t1))
            starts = {"noise": noise * b1} | ({"leak": noise * b1 + a1 * mean_image} if a1 > 0 else {})
            acc = {f"{s} g{g:g}": accuracy(cfg, form, net, clf, z, labels, g) for s, z in starts.items() for g in (1.0, 3.0)}
            last = record["history"][-1]
            rows.append((form.name, budget, last["ema_levels"], acc))
            print(json.dumps({"formulation": form.name, "steps": budget, "ema_levels": last["ema_levels"],
                              "accuracy": acc}), flush=True)
    print(f"\nstudy_reduced network, seed 0, {args.samples} samples, 25 DDIM steps; EMA validation velocity error at "
          "t_rf = 0.06 ... 0.94 (low -> high noise)")
    print(f"{'formulation':24s} {'steps':>5s}  {'val error per level':56s} {'acc g1':>6s} {'acc g3':>6s} {'leak g3':>7s}")
    for name, budget, levels, acc in rows:
        lv = " ".join(f"{v:.3f}" for v in levels)
        leak = f"{acc['leak g3']:7.3f}" if "leak g3" in acc else f"{'-':>7s}"
        print(f"{name:24s} {budget:5d}  {lv:56s} {acc['noise g1']:6.3f} {acc['noise g3']:6.3f} {leak}")


if __name__ == "__main__":
    main()
