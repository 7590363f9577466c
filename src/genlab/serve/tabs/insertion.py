"""Human insertion: a scene photo, a person photo and a box; the people the model places there."""

from __future__ import annotations

import gradio as gr

from genlab.serve.app import ServeConfig, command_line, run_job, session_job
from genlab.serve.workspace import adopt

TITLE = "Human insertion"


def build(config: ServeConfig) -> None:
    if config.insertion_weights is None:
        gr.Markdown("Start the app with `genlab serve --insertion-weights PATH` (the official checkpoint, a "
                    "diffusers-style folder or a genlab run) to insert people here.", elem_id="insertion-disabled")
        return
    with gr.Row():
        with gr.Column():
            scene = gr.Image(label="scene", type="filepath", elem_id="insertion-scene")
            person = gr.Image(label="person", type="filepath", elem_id="insertion-person")
            box = gr.Textbox(label="box x0,y0,x1,y1 (scene pixels)", elem_id="insertion-box")
            with gr.Row():
                steps = gr.Number(label="steps", value=50, precision=0, minimum=1, elem_id="insertion-steps")
                size = gr.Number(label="model size (0: the weights' own)", value=0, precision=0, minimum=0,
                                 elem_id="insertion-size")
                num = gr.Number(label="results", value=2, precision=0, minimum=1)
                seed = gr.Number(label="seed", value=0, precision=0)
            run = gr.Button("Insert", variant="primary", elem_id="insertion-run")
        with gr.Column():
            grid = gr.Image(label="scene | reference | results", type="filepath", elem_id="insertion-out")
            command = gr.Markdown()
            log = gr.Textbox(label="log", lines=6, max_lines=12, elem_id="insertion-log")

    def insert(scene, person, box, steps, size, num, seed, request: gr.Request):
        if scene is None or person is None or not box.strip():
            raise gr.Error("give a scene, a person and a box")
        folder = session_job(config, request, "insertion")
        scene_file, person_file = adopt(scene, folder, "scene.png"), adopt(person, folder, "person.png")
        argv = ["insertion", "insert", "--scene", scene_file.name, "--person", person_file.name, "--box", box.strip(),
                "--weights", str(config.insertion_weights), "--steps", str(int(steps)), "--num", str(int(num)),
                "--seed", str(int(seed)), "--out", "insertion.png"] + (["--size", str(int(size))] if size else [])
        text = ""
        for text in run_job(config, argv, folder):
            yield gr.skip(), gr.skip(), text
        yield str(folder / "insertion.png"), f"`{command_line(argv)}`", text

    run.click(insert, [scene, person, box, steps, size, num, seed], [grid, command, log])
