"""Low-data benchmark for motion concepts: learning curves at 1/2/5/10 trimmed examples per
concept and "all" (10 examples + 50 list-only sequences), ours against in-repo peers on the frozen
test set.

Description (NormED, lower is better; mAP@0.5, higher is better):
  ours     staged concept learning (few-shot; + hard EM on the action lists in the "all" row)
  DTW      nearest template (the acceptance baseline; no training)
  CTC      temporal conv net trained with CTC on action lists only (chained examples; + the lists)
  MS-TCN   2-stage MS-TCN-style frame classifier on frame labels (chained examples; + the frame
           labels of the 50 sequences in the "all" row, which ours only sees as action lists)
Synthesis (KD in body heights and FID on the in-repo action classifier, lower is better; share of
samples classified as the requested concept, higher is better):
  ours     sampled loop-body programs (temperature 1)
  ACTOR    class-conditional transformer VAE on the trimmed examples

Equal CPU budget: in every row each neural peer trains for B = ours' fit time in that row (CPU
seconds of this process, one torch thread); `--floor S` gives the peers max(S, ours' fit time)
instead (the earlier protocol used a 30 s floor, i.e. up to 30x ours' budget). `--sweep 1,3,10,30`
also trains the description peers (CTC, MS-TCN) at those multiples of ours' fit time (the 1x entry
is the equal-budget row; multiples over `--sweep-cap` CPU seconds are skipped) to show where the
neural models catch up. DTW has no training.

    OMP_NUM_THREADS=1 PYTHONPATH=src nice -n 10 python benchmarks/concepts_lowdata.py          # quick
    OMP_NUM_THREADS=1 PYTHONPATH=src nice -n 10 python benchmarks/concepts_lowdata.py --full   # curve
    OMP_NUM_THREADS=1 PYTHONPATH=src nice -n 10 python benchmarks/concepts_lowdata.py --ks 1,2,5,10 \
        --n-test 100 --sweep 1,3,10,30 --no-dtw --no-synthesis --json sweep.json      # the sweep

Quick (default, a few minutes): k = 1 and 5, 15 test sequences. Full: k = 1/2/5/10 and all (10
examples + 50 list-only sequences), the first 30 frozen test sequences, KD on 20 instances, 10
samples per concept classified (most of the CPU time is DTW). Prints one table per row set; ratios
are ours / peer in the same run. Timings come from a shared, loaded 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from genlab.core.pose.skeletons import COCO17
from genlab.systems.motion.concepts import dataset, metrics
from genlab.systems.motion.concepts.acceptance import description_scores, train
from genlab.systems.motion.concepts.baselines import DTWTemplates, TCNBaseline
from genlab.systems.motion.concepts.config import ConceptConfig
from genlab.systems.motion.concepts.model import normalise
from genlab.systems.motion.concepts.peers import ActorVAE, CTCBaseline


def synthesis_scores(sample, seqs, classifier, iter_len, n_kd: int = 40, n_per_concept: int = 20,
                     seed: int = 0) -> dict[str, float]:
    """sample(concept, count, n_frames, seed) -> (n_frames, 17, 2) normalised keypoints.
    KD: each real test instance vs a sample of its concept, count and length (chirality-free: the
    better of the sample and its mirror); FID: classifier features of all real instances vs their
    samples; classified: n_per_concept samples per concept, counts 2-8 at the examples' median speed."""
    real, fake, kds = [], [], []
    for s in seqs:
        norm = normalise(s.clean, ConceptConfig())
        gt = (s.clean - norm.origin) / norm.height
        for a in s.description.actions:
            r = gt[a.start:a.end]
            f = sample(a.concept, a.count, len(r), seed * 7919 + len(real))
            real.append(r)
            fake.append(f)
            if len(kds) < n_kd:
                kds.append(min(metrics.keypoint_distance(f, r), metrics.keypoint_distance(COCO17.mirror(f), r)))
    rng = np.random.default_rng(seed)
    requested, samples = [], []
    for c in dataset.NAMES:
        for _ in range(n_per_concept):
            count = int(rng.integers(2, 9))
            samples.append(sample(c, count, max(2 * count, int(round(count * iter_len[c]))), 104729 + len(samples)))
            requested.append(c)
    got = classifier.predict(samples, normalised=True)
    return {"KD": float(np.mean(kds)),
            "FID": metrics.frechet_distance(classifier.features(real, normalised=True),
                                      classifier.features(fake, normalised=True)),
            "classified": float(np.mean([g == r for g, r in zip(got, requested)]))}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--full", action="store_true", help="k = 1/2/5/10 + all, 30 test sequences, budget 30 s")
    ap.add_argument("--n-test", type=int, default=None)
    ap.add_argument("--ks", default=None, help="rows: examples per concept or 'all' (default 1,5; full 1,2,5,10,all)")
    ap.add_argument("--lists", type=int, default=None, help="list-only sequences of the 'all' row (default 50)")
    ap.add_argument("--all-k", type=int, default=10, help="examples per concept in the 'all' row")
    ap.add_argument("--floor", "--budget", dest="floor", type=float, default=0.0,
                    help="peers get max(floor, ours' fit time) CPU-s per row (default 0: equal budget)")
    ap.add_argument("--sweep", default="1", help="multiples of ours' fit time for the CTC / MS-TCN budget")
    ap.add_argument("--sweep-cap", type=float, default=160.0, help="skip sweep budgets above this, CPU-s")
    ap.add_argument("--no-dtw", action="store_true")
    ap.add_argument("--json", default=None, help="also write the rows to this JSON file")
    ap.add_argument("--no-synthesis", action="store_true")
    ap.add_argument("--n-kd", type=int, default=None, help="test instances scored by KD (default 40; full 20)")
    ap.add_argument("--n-per-concept", type=int, default=None, help="samples per concept classified (20; full 10)")
    args = ap.parse_args()
    n_test = args.n_test or (30 if args.full else 15)
    args.n_kd = args.n_kd or (20 if args.full else 40)
    args.n_per_concept = args.n_per_concept or (10 if args.full else 20)
    ks = (args.ks or ("1,2,5,10,all" if args.full else "1,5")).split(",")
    n_lists = args.lists if args.lists is not None else 50
    floor = args.floor
    mults = [float(m) for m in args.sweep.split(",")]
    if 1.0 not in mults:
        mults = [1.0] + mults
    import torch

    torch.set_num_threads(1)
    test = dataset.test_set(100)[:n_test]
    clf = None
    if not args.no_synthesis:
        from genlab.systems.motion.concepts.evaluator import train_classifier

        clf = train_classifier(dataset.NAMES)
    print(f"test sequences: {n_test}; peers' CPU budget per row: max({floor:.0f} s, m x ours' fit time), "
          f"m in {mults}; shared, loaded 2-core machine\n", flush=True)
    rows = []
    for k, nl in [(args.all_k, n_lists) if k == "all" else (int(k), 0) for k in ks]:
        c0 = time.process_time()
        model, examples, _ = train(k, nl)
        fit_s = time.process_time() - c0
        budget = max(floor, fit_s)
        seqs = dataset.sequences("lists", nl) if nl else []
        row = {"k": k, "lists": nl, "fit_s": fit_s, "budget": budget, "sweep": []}
        log = _Log(k, nl)
        row["ours"] = log("ours described", description_scores(model.describe, test))
        if not args.no_dtw:
            row["dtw"] = log("DTW described", description_scores(
                DTWTemplates.fit(examples, ConceptConfig()).describe, test))
        for m in mults:
            b = max(floor, m * fit_s)
            if m != 1.0 and b > args.sweep_cap:
                continue
            ctc = log(f"CTC trained ({b:.0f} CPU-s)", CTCBaseline.fit(examples, dataset.list_only(seqs), budget_s=b))
            e = {"m": m, "budget": b, "ctc": log("CTC described", description_scores(ctc.describe, test))}
            tcn = log(f"MS-TCN trained ({b:.0f} CPU-s)", TCNBaseline.fit(examples, seqs, budget_s=b))
            e["tcn"] = log("MS-TCN described", description_scores(tcn.describe, test))
            e["steps"] = (ctc.steps, tcn.steps)
            row["sweep"].append(e)
            if m == 1.0:
                row["ctc"], row["tcn"], row["steps"] = e["ctc"], e["tcn"], e["steps"]
        if clf is not None:
            from genlab.systems.motion.concepts.synth import synthesise_action

            iter_len = {c: float(np.median([len(e.keypoints) / e.count for e in examples if e.concept == c]))
                        for c in dataset.NAMES}

            def ours_sample(c, count, n, seed, model=model):
                return synthesise_action(model, c, count, n, mirrored=bool(seed % 2), temperature=1.0, seed=seed)

            vae = log("ACTOR trained", ActorVAE.fit(examples, budget_s=budget))
            kw = {"n_kd": args.n_kd, "n_per_concept": args.n_per_concept}
            row["syn_ours"] = log("ours synthesis", synthesis_scores(ours_sample, test, clf, iter_len, **kw))
            row["syn_vae"] = log("ACTOR synthesis", synthesis_scores(
                lambda c, count, n, seed, vae=vae: vae.sample(c, n, seed), test, clf, iter_len, **kw))
            row["steps"] += (vae.steps,)
        rows.append(row)
        print_tables(rows)
        if args.json:
            from genlab.core.io import atomic_write_text

            atomic_write_text(args.json, json.dumps(rows, indent=1))


class _Log:
    """Progress lines with CPU seconds (partial results survive an interrupted run)."""

    def __init__(self, k: int, nl: int):
        self.k, self.nl, self.t = k, nl, time.process_time()

    def __call__(self, what: str, value):
        t = time.process_time()
        extra = ""
        if isinstance(value, dict):
            extra = " " + " ".join(f"{key}={v:.3f}" for key, v in value.items() if key in (
                "NormED", "mAP@0.5", "count_MAE", "KD", "FID", "classified"))
        print(f"  [k={self.k} lists={self.nl}] {what}: {t - self.t:.0f} CPU-s{extra}", flush=True)
        self.t = t
        return value


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b > 1e-9 else ("1.00" if a <= 1e-9 else "inf")


def _cell(d) -> str:
    return "-" if d is None else f"{d['NormED']:.3f}/{d['mAP@0.5']:.3f}"


def _described(d) -> str:
    """NormED / mAP@0.5 / count MAE."""
    return f"{d['NormED']:.3f} / {d['mAP@0.5']:.3f} / {d['count_MAE']:.2f}"


def _header(title: str, head: str) -> None:
    print(title)
    print(head)
    print("-" * len(head))


def print_tables(rows) -> None:
    _header("Description: NormED / mAP@0.5 (count MAE for ours); ratio = ours NormED / peer NormED",
            f"{'k':>3} {'lists':>5} | {'ours':>19} | {'DTW':>11} | {'CTC (lists)':>11} | {'MS-TCN (frames)':>15} | "
            f"{'ratio DTW/CTC/TCN':>17} | fit s  budget s  steps")
    for r in rows:
        o, d, c, t = r["ours"], r.get("dtw"), r["ctc"], r["tcn"]
        rd = "-" if d is None else _ratio(o["NormED"], d["NormED"])
        print(f"{r['k']:>3} {r['lists']:>5} | {_described(o)} | {_cell(d):>11} | {_cell(c)} | {_cell(t):>15} | "
              f"{rd:>5} {_ratio(o['NormED'], c['NormED']):>5} "
              f"{_ratio(o['NormED'], t['NormED']):>5} | {r['fit_s']:>5.1f} {r['budget']:>8.1f}  {r['steps']}")
    if any(len(r["sweep"]) > 1 for r in rows):
        _header("\nBudget sweep: peers trained for m x ours' fit time; NormED / mAP@0.5 / count MAE",
                f"{'k':>3} {'lists':>5} {'m':>4} {'B s':>6} | {'ours':>19} | {'CTC (lists)':>19} | "
                f"{'MS-TCN (frames)':>19} | steps CTC / TCN")
        for r in rows:
            for e in r["sweep"]:
                print(f"{r['k']:>3} {r['lists']:>5} {e['m']:>4.0f} {e['budget']:>6.1f} | {_described(r['ours'])} | "
                      f"{_described(e['ctc'])} | {_described(e['tcn'])} | {e['steps']}")
    if "syn_ours" in rows[0]:
        _header("\nSynthesis: KD (body heights) / FID / classified as requested; ratio = ours / ACTOR",
                f"{'k':>3} {'lists':>5} | {'ours':>21} | {'ACTOR-style VAE':>21} | {'ratio KD / FID':>14}")
        for r in rows:
            o, v = r["syn_ours"], r["syn_vae"]
            print(f"{r['k']:>3} {r['lists']:>5} | {o['KD']:.3f} / {o['FID']:6.1f} / {o['classified']:.2f} | "
                  f"{v['KD']:.3f} / {v['FID']:6.1f} / {v['classified']:.2f} | "
                  f"{_ratio(o['KD'], v['KD']):>6} {_ratio(o['FID'], v['FID']):>6}")
    print(flush=True)


if __name__ == "__main__":
    main()
