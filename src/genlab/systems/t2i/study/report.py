"""Aggregate a study: rankings (repeated non-dominated sorting, averaged over settings), seed spread, the
paper's Table 1 beside ours, validation losses, and plots of each metric against sampling steps."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from genlab.core.eval.ranking import average_ranks
from genlab.core.io import atomic_path, atomic_write_text

# SD3 Table 1 (global rank among 61 variants; lower is better): all / 5 steps / 50 steps.
# rf/lognorm(-0.50, 1.00) is not in Table 1 (it appears in Table 2 only).
PAPER_TABLE1 = {
    "rf/lognorm(0.00, 1.00)": (1.54, 1.25, 1.50),
    "rf/lognorm(0.50, 0.60)": (2.71, 8.50, 1.00),
    "rf/mode(1.29)": (2.75, 3.25, 3.00),
    "eps/linear": (2.88, 4.25, 2.75),
    "rf/cosmap": (4.13, 3.75, 4.00),
    "rf": (5.67, 6.50, 5.75),
    "v/cos": (9.17, 12.25, 8.75),
    "edm(-1.20, 1.20)": (15.58, 20.25, 15.00),
}
MAXIMIZE = (False, True)  # (Fréchet distance: lower is better, conditional accuracy: higher is better)


def _settings(results: list[dict]) -> list[str]:
    names = set()
    for r in results:
        names |= set(r["evals"])
    return sorted(names, key=lambda s: (int(s.split("_")[0]), float(s.split("_")[1]), s.split("_")[2]))


def rank_table(results: list[dict], seed_choice: dict[str, int] | None = None,
               steps_filter: int | None = None) -> dict[str, float]:
    """Average rank per formulation; each formulation contributes the run of seed `seed_choice[name]` (else 0)."""
    seed_choice = seed_choice or {}
    chosen = {}
    for r in results:
        if r["seed"] == seed_choice.get(r["formulation"], 0):
            chosen[r["formulation"]] = r
    table = {}
    for s in _settings(list(chosen.values())):
        if steps_filter is not None and int(s.split("_")[0]) != steps_filter:
            continue
        if all(s in r["evals"] for r in chosen.values()):
            table[s] = {f: (r["evals"][s]["fd"], r["evals"][s]["accuracy"]) for f, r in chosen.items()}
    return average_ranks(table, MAXIMIZE) if table else {}


def spearman(a: list[float], b: list[float]) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    if len(a) < 2:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def summarise(results: list[dict], config_summary: dict) -> dict:
    formulations = sorted({r["formulation"] for r in results})
    seeds = {f: sorted(r["seed"] for r in results if r["formulation"] == f) for f in formulations}
    steps = sorted({int(s.split("_")[0]) for s in _settings(results)})
    ranks = {"all": rank_table(results)}
    for st in (min(steps), max(steps)):
        ranks[f"{st} steps"] = rank_table(results, steps_filter=st)
    # seed spread: re-rank with each extra seed substituted for every multi-seed formulation
    multi = [f for f in formulations if len(seeds[f]) > 1]
    spread = {}
    if multi:
        per_seed = []
        for s in sorted({s for f in multi for s in seeds[f]}):
            per_seed.append(rank_table(results, {f: s for f in multi if s in seeds[f]}))
        for f in formulations:
            vals = [p[f] for p in per_seed if f in p]
            spread[f] = {"min": min(vals), "max": max(vals), "mean": float(np.mean(vals)), "n": len(vals)}
    # metrics at the middle step count (25 if present), guidance 3 (max), EMA: mean and std over seeds
    mid = 25 if 25 in steps else steps[len(steps) // 2]
    gmax = max(float(s.split("_")[1]) for s in _settings(results))
    key = f"{mid}_{gmax:g}_ema"
    metrics = {}
    for f in formulations:
        rows = [r for r in results if r["formulation"] == f and key in r["evals"]]
        fd = [r["evals"][key]["fd"] for r in rows]
        acc = [r["evals"][key]["accuracy"] for r in rows]
        val = [r["val"]["ema"] for r in rows if r.get("val")]
        metrics[f] = {"fd": float(np.mean(fd)), "fd_std": float(np.std(fd)), "accuracy": float(np.mean(acc)),
                      "accuracy_std": float(np.std(acc)), "val_loss": float(np.mean(val)) if val else None,
                      "val_loss_std": float(np.std(val)) if val else None, "seeds": len(rows),
                      "best_step": [r["val"]["step"] for r in rows if r.get("val")]}
    common = [f for f in formulations if f in PAPER_TABLE1]
    agreement = {
        col: spearman([ranks[name][f] for f in common], [PAPER_TABLE1[f][i] for f in common])
        for i, (col, name) in enumerate([("all", "all"), ("few", f"{min(steps)} steps"), ("many", f"{max(steps)} steps")])
        if all(f in ranks[name] for f in common)
    }
    return {"config": config_summary, "formulations": formulations, "seeds": seeds, "steps": steps,
            "ranks": ranks, "rank_spread": spread, "metrics_setting": key, "metrics": metrics,
            "spearman_vs_paper": agreement}


def markdown(summary: dict) -> str:
    ranks, spread, metrics = summary["ranks"], summary["rank_spread"], summary["metrics"]
    cols = list(ranks)
    order = sorted(summary["formulations"], key=lambda f: ranks["all"].get(f, math.inf))
    lines = [f"Study `{summary['config'].get('name')}`: " + ", ".join(f"{k}={v}" for k, v in summary["config"].items()
                                                                    if k != "name"), ""]
    head = "| formulation | " + " | ".join(f"rank {c}" for c in cols) + " | rank spread (seeds) | paper all / 5 / 50 |"
    head += f" FD ({summary['metrics_setting']}) | acc | EMA val loss | best step |"
    lines += [head, "|" + "---|" * (head.count("|") - 1)]
    for f in order:
        sp = spread.get(f)
        sp_txt = f"{sp['min']:.2f}–{sp['max']:.2f} (n={sp['n']})" if sp and sp["n"] > 1 else ""
        paper = PAPER_TABLE1.get(f)
        paper_txt = " / ".join(f"{v:.2f}" for v in paper) if paper else "—"
        m = metrics[f]
        fd = f"{m['fd']:.2f}" + (f" ± {m['fd_std']:.2f}" if m["seeds"] > 1 else "")
        acc = f"{m['accuracy']:.3f}" + (f" ± {m['accuracy_std']:.3f}" if m["seeds"] > 1 else "")
        val = "" if m["val_loss"] is None else f"{m['val_loss']:.4f}" + (f" ± {m['val_loss_std']:.4f}" if m["seeds"] > 1 else "")
        lines.append(f"| {f} | " + " | ".join(f"{ranks[c].get(f, float('nan')):.2f}" for c in cols)
                     + f" | {sp_txt} | {paper_txt} | {fd} | {acc} | {val} | {m['best_step']} |")
    if summary["spearman_vs_paper"]:
        lines += ["", "Spearman correlation of our average ranks with the paper's (formulations in both tables): "
                  + ", ".join(f"{k} {v:+.2f}" for k, v in summary["spearman_vs_paper"].items())]
    return "\n".join(lines) + "\n"


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    formulations = sorted({r["formulation"] for r in results})
    settings = _settings(results)
    scales = sorted({float(s.split("_")[1]) for s in settings})
    fig, axes = plt.subplots(2, len(scales), figsize=(5 * len(scales), 8), squeeze=False)
    for j, g in enumerate(scales):
        for f in formulations:
            rows = [r for r in results if r["formulation"] == f]
            steps = sorted({int(s.split("_")[0]) for s in settings})
            for i, metric in enumerate(("fd", "accuracy")):
                vals = [np.mean([r["evals"][f"{st}_{g:g}_ema"][metric] for r in rows if f"{st}_{g:g}_ema" in r["evals"]])
                        for st in steps]
                axes[i, j].plot(steps, vals, marker="o", label=f)
                axes[i, j].set_xscale("log")
                axes[i, j].set_xlabel("sampling steps")
                axes[i, j].set_ylabel("Fréchet distance (classifier features)" if metric == "fd" else "conditional accuracy")
                axes[i, j].set_title(f"guidance {g:g}, EMA weights")
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=80)
    plt.close(fig)


def write_report(results: list[dict], config_summary: dict, out: Path) -> dict:
    summary = summarise(results, config_summary)
    atomic_write_text(out / "summary.json", json.dumps({"summary": summary, "results": results}, indent=1))
    atomic_write_text(out / "summary.md", markdown(summary))
    plot(results, out / "metrics_vs_steps.png")
    return summary
