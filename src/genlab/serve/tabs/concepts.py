"""Motion concepts: describe an uploaded keypoint track with a fitted concept model."""

from __future__ import annotations

import threading

import gradio as gr

from genlab.serve.app import ServeConfig, command_line, log_updates, run_job, session_job
from genlab.serve.workspace import adopt

TITLE = "Motion concepts"
_FITTING = threading.Lock()


def default_model(config: ServeConfig):
    """A concept model fitted on the built-in exercises, cached (yields the fitting log meanwhile)."""
    from genlab.core.io import cache_dir

    path = cache_dir("serve") / "concepts-builtin.json"
    with _FITTING:
        if not path.is_file():
            yield from run_job(config, ["motion", "concepts", "fit", "--out", str(path)], path.parent)
    return path


def build(config: ServeConfig) -> None:
    with gr.Row():
        with gr.Column():
            track = gr.File(label="keypoint track or video (.npz/.npy, AlphaPose/OpenPose .json, .trc, .mp4)",
                            elem_id="concepts-upload")
            model_file = gr.File(label="concept model .json (default: fitted on the built-in exercises)")
            run = gr.Button("Describe", variant="primary", elem_id="concepts-run")
        with gr.Column():
            description = gr.Code(label="description", language=None, elem_id="concepts-description")
            command = gr.Markdown()
            log = gr.Textbox(label="log", lines=5, max_lines=10, elem_id="concepts-log")

    def describe(track, model_file, request: gr.Request):
        if track is None:
            raise gr.Error("upload a keypoint track first")
        folder = session_job(config, request, "concepts")
        if model_file is not None:
            model = adopt(model_file, folder, "model.json")
        elif config.concepts_model is not None:
            model = config.concepts_model
        else:
            model = yield from log_updates(default_model(config), lambda text: (gr.skip(), gr.skip(), text))
        src = adopt(track, folder)
        argv = ["motion", "concepts", "describe", str(model), src.name, "--json", "description.json"]
        text = ""
        for text in run_job(config, argv, folder):
            yield gr.skip(), gr.skip(), text
        from genlab.systems.motion.concepts.description import Description

        dsl = Description.from_json((folder / "description.json").read_text()).to_dsl()
        yield dsl, f"`{command_line(argv)}`", text

    run.click(describe, [track, model_file], [description, command, log])
