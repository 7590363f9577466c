"""The Gradio app: one tab per system, each a front end to the `genlab` commands.

`build_app(config)` returns the `gr.Blocks`; `genlab serve` launches it. Jobs queue (two CPU cores: one
job at a time by default), each browser session writes only inside its own folder, and the folder goes
when the session ends.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr

from genlab.serve.workspace import Workspace


@dataclass(frozen=True)
class ServeConfig:
    workdir: Path
    host: str = "127.0.0.1"
    port: int = 7860
    t2i_model: Path | None = None  # a genlab t2i run; default: the digits model, trained on first use
    t2i_pretrained: Path | None = None  # an SD3 / SD3.5 folder or single file
    video_pretrained: Path | None = None  # an SVD / SVD-XT folder or single file
    insertion_weights: Path | None = None
    concepts_model: Path | None = None  # a fitted concept model; default: fitted on the built-in exercises
    concurrency: int = 1
    env: dict[str, str] = field(default_factory=dict)  # extra environment of every job (tests: caches)

    @property
    def workspace(self) -> Workspace:
        return Workspace(self.workdir)


def build_app(config: ServeConfig):
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from genlab.serve.tabs import concepts, curation, insertion, motion, spoc, t2i, video

    config.workdir.mkdir(parents=True, exist_ok=True)
    with gr.Blocks(title="genlab", analytics_enabled=False) as app:
        gr.Markdown("# genlab\nSix published generative systems. Every result is what the `genlab` command "
                    "shown under it writes.")
        for tab in (t2i, video, curation, insertion, motion, concepts, spoc):
            with gr.Tab(tab.TITLE, id=tab.__name__.rsplit(".", 1)[1]):
                tab.build(config)

        def close_session(request: gr.Request) -> None:
            config.workspace.close(request.session_hash)

        app.unload(close_session)
    app.queue(default_concurrency_limit=config.concurrency)
    return app


def session_job(config: ServeConfig, request, kind: str) -> Path:
    """A new job folder in the caller's session folder."""
    return config.workspace.job(request.session_hash if request else "local", kind)


def command_line(argv: list[str]) -> str:
    """The command shown under a result (paths relative to the job folder)."""
    import shlex

    return "genlab " + " ".join(shlex.quote(a) for a in argv)


def run_job(config: ServeConfig, argv: list[str], folder: Path):
    """Stream a command's log for the page; its user error becomes a message in the page (`gr.Error`)."""
    from genlab.errors import GenlabError
    from genlab.serve.jobs import run_genlab

    try:
        yield from run_genlab(argv, folder, env=config.env)
    except GenlabError as err:
        raise gr.Error(str(err), print_exception=False) from None


def log_updates(gen, frame):
    """Show each log of `gen` on the page as `frame(log)` (the other outputs untouched); returns gen's value."""
    while True:
        try:
            text = next(gen)
        except StopIteration as stop:
            return stop.value
        yield frame(text)
