"""Low-data benchmark for motion concepts: description quality vs number of trimmed examples per
concept (1/2/5/10, and 10 + 50 list-only sequences = "all"), ours against the DTW nearest-template
peer and an MS-TCN-style temporal conv net trained on frame labels, on the frozen test set.

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/concepts_lowdata.py [--n-test 100] [--no-tcn]

Prints one table; ratios are ours / peer measured in the same run (lower NormED is better,
higher mAP is better). Timings come from a shared, loaded 2-core machine.
"""

from __future__ import annotations

import argparse
import time

from genlab.systems.motion.concepts import dataset as D
from genlab.systems.motion.concepts.acceptance import description_scores, train
from genlab.systems.motion.concepts.baselines import DTWTemplates, TCNBaseline
from genlab.systems.motion.concepts.config import ConceptConfig


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-test", type=int, default=100)
    ap.add_argument("--ks", default="1,2,5,10")
    ap.add_argument("--lists", type=int, default=50)
    ap.add_argument("--all-k", type=int, default=10, help="examples per concept in the 'all' row")
    ap.add_argument("--no-tcn", action="store_true")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    test = D.test_set(100)[: args.n_test]
    rows = []
    settings = [(int(k), 0) for k in args.ks.split(",")] + ([(args.all_k, args.lists)] if args.lists else [])
    for k, n_lists in settings:
        t0 = time.time()
        model, _, _ = train(k, n_lists)
        fit_s = time.time() - t0
        ours = description_scores(model.describe, test)
        dtw = description_scores(DTWTemplates.fit(D.few_shot(k), ConceptConfig()).describe, test)
        tcn = None
        if not args.no_tcn:
            lists = D.sequences("lists", n_lists) if n_lists else []  # the TCN gets their frame labels
            tcn = description_scores(TCNBaseline.fit(D.few_shot(k), lists).describe, test)
        rows.append((k, n_lists, fit_s, ours, dtw, tcn))
        print_table(rows)


def print_table(rows) -> None:
    head = (f"{'k':>3} {'lists':>5} | {'ours NormED':>11} {'mAP@.5':>6} {'cMAE':>5} | {'DTW NormED':>10} "
            f"{'mAP@.5':>6} | {'TCN NormED':>10} {'mAP@.5':>6} | {'NormED ratio vs DTW':>19} {'vs TCN':>6} | fit s")
    print(head)
    print("-" * len(head))
    for k, n_lists, fit_s, o, d, t in rows:
        tn = f"{t['NormED']:>10.3f} {t['mAP@0.5']:>6.3f}" if t else f"{'-':>10} {'-':>6}"
        rt = f"{o['NormED'] / max(t['NormED'], 1e-9):>6.2f}" if t else f"{'-':>6}"
        print(f"{k:>3} {n_lists:>5} | {o['NormED']:>11.3f} {o['mAP@0.5']:>6.3f} {o['count_MAE']:>5.2f} | "
              f"{d['NormED']:>10.3f} {d['mAP@0.5']:>6.3f} | {tn} | {o['NormED'] / max(d['NormED'], 1e-9):>19.2f} "
              f"{rt} | {fit_s:.0f}")
    print(flush=True)


if __name__ == "__main__":
    main()
