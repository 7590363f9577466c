"""`genlab t2i ...` sub-commands. Keep imports inside the command functions."""

from __future__ import annotations

import argparse

from genlab.systems.t2i.study.cli import register_study


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("t2i", help="Rectified-flow text-to-image with MM-DiT (SD3).")
    sub = parser.add_subparsers(dest="command", metavar="<command>", required=True)
    demo = sub.add_parser("demo", help="train a small MM-DiT on the embedded digits and write sample grids")
    demo.set_defaults(func=run_demo)
    register_study(sub)


def run_demo(args: argparse.Namespace) -> int:
    print("genlab t2i demo: not implemented yet")
    return 0
