"""`genlab t2i study`: registered by systems/t2i/cli.py (one line)."""

from __future__ import annotations

import argparse


def register_study(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("study", help="reproduce SD3's formulation study (Table 1) on MNIST; resumable")
    p.add_argument("--preset", default="study_small", help="study_small (2 CPU cores), study (GPU), study_reduced or study_tiny")
    p.add_argument("--out", default=None, help="output folder (default runs/<preset>)")
    p.add_argument("--workers", type=int, default=None, help="parallel processes (default: the preset's)")
    p.add_argument("--train-steps", type=int, default=None, help="override training steps (a reduced study)")
    p.add_argument("--eval-every", type=int, default=None, help="override the validation interval")
    p.add_argument("--samples", type=int, default=None, help="override samples per evaluation setting")
    p.add_argument("--device", default=None, help="cpu or cuda (default: the preset's)")
    p.add_argument("--report-only", action="store_true", help="only (re)write the report from finished runs")
    p.set_defaults(func=run_study_command)


def run_study_command(args: argparse.Namespace) -> int:
    from genlab.errors import GenlabError
    from genlab.systems.t2i.study.config import preset, with_overrides
    from genlab.systems.t2i.study.runner import report_only, run_study

    for name in ("workers", "train_steps", "eval_every", "samples"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise GenlabError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    cfg = with_overrides(preset(args.preset), train_steps=args.train_steps, samples=args.samples,
                         workers=args.workers, device=args.device, eval_every=args.eval_every)
    out = args.out or f"runs/{cfg.name}"
    summary = report_only(cfg, out) if args.report_only else run_study(cfg, out)
    from genlab.systems.t2i.study.report import markdown

    print(markdown(summary))
    print(f"wrote {out}/summary.md, summary.json, metrics_vs_steps.png")
    return 0
