"""`genlab insertion ...` sub-commands. Keep imports inside the command functions."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("insertion", help="Affordance-aware human insertion (Putting People in Their Place, Kulal et al. 2023).")
    sub = parser.add_subparsers(dest="command", metavar="<command>", required=True)
    del sub  # commands are added as the system lands
