"""`genlab video ...` sub-commands. Keep imports inside the command functions.

The curation pipeline registers `genlab video curate` from `curation/cli.py`.
"""

from __future__ import annotations

import argparse

from genlab.systems.video.curation import cli as curation_cli


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("video", help="Latent video diffusion (Stable Video Diffusion) and curation.")
    sub = parser.add_subparsers(dest="command", metavar="<command>", required=True)
    curation_cli.register(sub)
