"""`genlab motion ...` sub-commands. Keep imports inside the command functions.

Motion concepts register `genlab motion concepts ...` from `concepts/cli.py`.
"""

from __future__ import annotations

import argparse

from genlab.systems.motion.concepts import cli as concepts_cli


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("motion", help="Motion programs (Kulal et al. 2021) and motion concepts.")
    sub = parser.add_subparsers(dest="command", metavar="<command>", required=True)
    concepts_cli.register(sub)
