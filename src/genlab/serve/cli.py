"""`genlab serve`: the local web app. Registered by `genlab/cli.py`; Gradio is imported only when it runs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("serve", help="the local web app: one tab per system (needs the `serve` extra)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: this machine only)")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--workdir", default="outputs/serve", help="per-session folders live here (default outputs/serve)")
    p.add_argument("--t2i-model", default=None, help="a genlab t2i run (default: the digits model, trained on first use)")
    p.add_argument("--t2i-pretrained", default=None, help="an SD3 / SD3.5 diffusers folder or single file")
    p.add_argument("--video-pretrained", default=None, help="an SVD / SVD-XT diffusers folder or single file")
    p.add_argument("--insertion-weights", default=None, help="insertion weights (official checkpoint, folder or run)")
    p.add_argument("--concepts-model", default=None, help="a fitted concept model (default: fitted on first use)")
    p.add_argument("--concurrency", type=int, default=1, help="jobs run at once (default 1: CPU machines)")
    p.set_defaults(func=_serve)


def config_from_args(args: argparse.Namespace):
    from genlab.errors import GenlabError
    from genlab.serve.app import ServeConfig

    paths = {}
    for flag in ("t2i_model", "t2i_pretrained", "video_pretrained", "insertion_weights", "concepts_model"):
        value = getattr(args, flag)
        if value is not None and not Path(value).exists():
            raise GenlabError(f"--{flag.replace('_', '-')}: {value} does not exist")
        paths[flag] = Path(value).resolve() if value else None
    if args.concurrency < 1:
        raise GenlabError(f"--concurrency: expected >= 1, got {args.concurrency}")
    return ServeConfig(workdir=Path(args.workdir).resolve(), host=args.host, port=args.port,
                       concurrency=args.concurrency, **paths)


def _serve(args: argparse.Namespace) -> int:
    import os

    from genlab.errors import GenlabError

    config = config_from_args(args)
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise GenlabError("genlab serve needs Gradio: pip install -c constraints.txt -e '.[serve]'") from None
    if config.host not in LOCAL_HOSTS:
        print(f"genlab serve: warning: binding to {config.host} makes the app reachable from other machines; "
              "it has no login", file=sys.stderr)
    config.workdir.mkdir(parents=True, exist_ok=True)
    os.environ["GRADIO_TEMP_DIR"] = str(config.workdir / "uploads")  # Gradio's own upload copies stay inside
    from genlab.serve.app import build_app

    app = build_app(config)
    app.launch(server_name=config.host, server_port=config.port, show_error=True, footer_links=[])
    return 0
