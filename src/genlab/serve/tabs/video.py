"""Image to video with a pretrained SVD / SVD-XT (`genlab serve --video-pretrained PATH`)."""

from __future__ import annotations

import gradio as gr

from genlab.serve.app import ServeConfig, command_line, run_job, session_job
from genlab.serve.workspace import adopt

TITLE = "Image to video"


def build(config: ServeConfig) -> None:
    if config.video_pretrained is None:
        gr.Markdown("Start the app with `genlab serve --video-pretrained PATH` (a diffusers SVD / SVD-XT folder or "
                    "the official single file) to make videos here.", elem_id="video-disabled")
        return
    with gr.Row():
        with gr.Column():
            image = gr.Image(label="conditioning image", type="filepath", elem_id="video-image")
            with gr.Row():
                frames = gr.Number(label="frames", value=14, precision=0, minimum=2, elem_id="video-frames")
                fps = gr.Number(label="fps", value=7, precision=0, minimum=1)
                motion = gr.Slider(0, 255, value=127, step=1, label="motion bucket")
            with gr.Row():
                steps = gr.Number(label="steps", value=25, precision=0, minimum=1, elem_id="video-steps")
                seed = gr.Number(label="seed", value=0, precision=0)
                size = gr.Textbox(label="size HxW (multiples of 64)", value="576x1024", elem_id="video-size")
            run = gr.Button("Make the video", variant="primary", elem_id="video-run")
        with gr.Column():
            video = gr.Video(label="video (H.264 MP4)", elem_id="video-out")
            command = gr.Markdown()
            log = gr.Textbox(label="log", lines=6, max_lines=12, elem_id="video-log")

    def make(image, frames, fps, motion, steps, seed, size, request: gr.Request):
        if image is None:
            raise gr.Error("upload an image first")
        folder = session_job(config, request, "video")
        src = adopt(image, folder)
        argv = ["video", "sample", "--pretrained", str(config.video_pretrained), "--image", src.name,
                "--frames", str(int(frames)), "--fps", str(int(fps)), "--motion-bucket", str(int(motion)),
                "--steps", str(int(steps)), "--seed", str(int(seed)), "--size", size.strip(), "--out", "video.mp4"]
        text = ""
        for text in run_job(config, argv, folder):
            yield gr.skip(), gr.skip(), text
        yield str(folder / "video.mp4"), f"`{command_line(argv)}`", text

    run.click(make, [image, frames, fps, motion, steps, seed, size], [video, command, log])
