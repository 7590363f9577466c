"""`genlab <system> <command>`.

Each system registers its own sub-commands in `genlab/systems/<name>/cli.py` through
`register(subparsers)`; that module must stay cheap to import (heavy imports go inside
the command functions), so that `genlab --help` is instant.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from genlab.errors import GenlabError
from genlab.serve import cli as serve_cli

# Systems in the order they appear in `genlab --help`. Motion concepts register
# themselves under `genlab motion concepts`, curation under `genlab video curate`.
SYSTEMS = ("t2i", "video", "insertion", "motion", "spoc")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="genlab", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="system", metavar="<system>", required=True)
    for name in SYSTEMS:
        module = importlib.import_module(f"genlab.systems.{name}.cli")
        module.register(sub)
    serve_cli.register(sub)
    demo = sub.add_parser("demo", help="the main job: `genlab t2i demo` on the embedded digits")
    importlib.import_module("genlab.systems.t2i.cli").add_demo_args(demo)  # the same options as `genlab t2i demo`
    demo.set_defaults(func=_demo)
    _quiet_everywhere(parser)
    return parser


def _quiet_everywhere(parser: argparse.ArgumentParser) -> None:
    """One progress switch on every command: `--quiet` (commands that wire it themselves keep theirs)."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        if "--quiet" not in parser._option_string_actions:
            parser.add_argument("--quiet", action="store_true", help="no progress bars")
        return
    for child in subs[0].choices.values():
        _quiet_everywhere(child)


def _demo(args: argparse.Namespace) -> int:
    t2i_cli = importlib.import_module("genlab.systems.t2i.cli")
    return t2i_cli.run_demo(args)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    quiet_before = os.environ.get("TQDM_DISABLE")
    if args.quiet:  # also silences bars drawn in libraries and in worker processes
        os.environ["TQDM_DISABLE"] = "1"
    try:
        return int(args.func(args) or 0)
    except GenlabError as err:
        print(f"genlab: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("genlab: interrupted", file=sys.stderr)
        return 130
    finally:
        if args.quiet and quiet_before is None:
            del os.environ["TQDM_DISABLE"]
        elif args.quiet:
            os.environ["TQDM_DISABLE"] = quiet_before


if __name__ == "__main__":
    sys.exit(main())
