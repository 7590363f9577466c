"""`genlab motion concepts ...`. Keep imports inside the command functions."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    del subparsers  # `concepts` is added as the concepts system lands
