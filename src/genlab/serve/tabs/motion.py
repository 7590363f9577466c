"""Motion programs: a video or keypoint file in; the program, its plot and the stick-figure video out;
change a loop's count and re-render."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from genlab.serve.app import ServeConfig, command_line, run_job, session_job
from genlab.serve.workspace import adopt

TITLE = "Motion programs"
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm")


def build(config: ServeConfig) -> None:
    with gr.Row():
        with gr.Column():
            upload = gr.File(label="video or keypoint file (.mp4/.avi, .npy/.npz, AlphaPose/OpenPose .json, .trc, .bvh)",
                             elem_id="motion-upload")
            min_reps = gr.Number(label="fewest repetitions in a loop", value=3, precision=0, minimum=2)
            run = gr.Button("Fit a program", variant="primary", elem_id="motion-run")
            with gr.Row():
                loop = gr.Number(label="loop", value=0, precision=0, minimum=0)
                count = gr.Number(label="new count", value=2, precision=0, minimum=1)
            edit = gr.Button("Change the loop count and re-render", elem_id="motion-edit")
        with gr.Column():
            program = gr.Code(label="program", language=None, elem_id="motion-program")
            video = gr.Video(label="the program drawn over the video (stick figures for keypoint files)",
                             elem_id="motion-video")
            plot = gr.Image(label="plot", type="filepath", elem_id="motion-plot")
            command = gr.Markdown()
            log = gr.Textbox(label="log", lines=5, max_lines=10, elem_id="motion-log")
    folder_state = gr.State(None)

    def fit(upload, min_reps, request: gr.Request):
        if upload is None:
            raise gr.Error("upload a video or a keypoint file first")
        folder = session_job(config, request, "motion")
        src = adopt(upload, folder)
        verb = "extract" if src.suffix.lower() in VIDEO_SUFFIXES else "fit"
        argv = ["motion", verb, src.name, "--out", "result", "--min-reps", str(int(min_reps))]
        text = ""
        for text in run_job(config, argv, folder):
            yield gr.skip(), gr.skip(), gr.skip(), gr.skip(), text, gr.skip()
        out = folder / "result"
        shown = _maybe(out / "overlay.mp4") or _maybe(out / "stick.mp4")
        yield ((out / "program.txt").read_text(), shown, _maybe(out / "plot.png"),
               f"`{command_line(argv)}`", text, str(folder))

    def rerender(folder, loop, count):
        if not folder:
            raise gr.Error("fit a program first")
        folder = Path(folder)
        edit_argv = ["motion", "edit", "result/program.txt", "--loop-count", f"{int(loop)}={int(count)}",
                     "--out", "edited.txt"]
        render_argv = ["motion", "render", "edited.txt", "--out", "edited.mp4"]
        text = ""
        for argv in (edit_argv, render_argv):
            for text in run_job(config, argv, folder):
                yield gr.skip(), gr.skip(), gr.skip(), text
        yield ((folder / "edited.txt").read_text(), str(folder / "edited.mp4"),
               f"`{command_line(edit_argv)}` then `{command_line(render_argv)}`", text)

    run.click(fit, [upload, min_reps], [program, video, plot, command, log, folder_state])
    edit.click(rerender, [folder_state, loop, count], [program, video, command, log])


def _maybe(path: Path) -> str | None:
    return str(path) if path.is_file() else None
