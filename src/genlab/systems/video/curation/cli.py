"""`genlab video curate ...`. Keep imports inside the command functions."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    del subparsers  # `curate` is added as the curation pipeline lands
