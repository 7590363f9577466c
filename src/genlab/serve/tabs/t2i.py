"""Text to image: a genlab-trained MM-DiT (the embedded digits model by default) or a pretrained SD3."""

from __future__ import annotations

import threading
from pathlib import Path

import gradio as gr

from genlab.serve.app import ServeConfig, command_line, log_updates, run_job, session_job

TITLE = "Text to image"
_TRAINING = threading.Lock()  # one server trains the default model once, whoever asks first


def default_model(config: ServeConfig):
    """The digits model in the cache, trained on first use (yields the training log meanwhile)."""
    from genlab.core.io import cache_dir

    run = cache_dir("serve") / "t2i-digits"
    with _TRAINING:
        if not (run / "ema.safetensors").is_file():
            yield from run_job(config, ["t2i", "train", "--preset", "digits", "--out", str(run)], run.parent)
    return run


def sample_argv(config: ServeConfig, model: Path | None, prompt: str, negative: str, steps: int, guidance: float,
                seed: int, size: str) -> list[str]:
    if config.t2i_pretrained is not None:
        argv = ["t2i", "sample", "--pretrained", str(config.t2i_pretrained), "--prompt", prompt]
        argv += ["--negative-prompt", negative] if negative else []
        argv += ["--size", size] if size else []
    else:
        argv = ["t2i", "sample", "--model", str(model), "--prompt", prompt]
    return argv + ["--steps", str(int(steps)), "--guidance", str(guidance), "--seed", str(int(seed)),
                   "--out", "image.png"]


def build(config: ServeConfig) -> None:
    pretrained = config.t2i_pretrained is not None
    with gr.Row():
        with gr.Column():
            prompt = gr.Textbox(label="prompt", value="a handwritten digit seven", elem_id="t2i-prompt")
            negative = gr.Textbox(label="negative prompt", visible=pretrained)
            with gr.Row():
                steps = gr.Number(label="steps", value=28 if pretrained else 20, precision=0,
                                  elem_id="t2i-steps")  # the command checks it
                guidance = gr.Number(label="guidance", value=7.0 if pretrained else 3.0, elem_id="t2i-guidance")
                seed = gr.Number(label="seed", value=0, precision=0, elem_id="t2i-seed")
            size = gr.Textbox(label="size (HxW)", value="1024x1024" if pretrained else "", visible=pretrained)
            run = gr.Button("Generate", variant="primary", elem_id="t2i-run")
        with gr.Column():
            image = gr.Image(label="image", type="filepath", format="png", elem_id="t2i-image")
            download = gr.File(label="PNG (settings in its text chunk)", elem_id="t2i-file")
            command = gr.Markdown(elem_id="t2i-command")
            log = gr.Textbox(label="log", lines=6, max_lines=12, elem_id="t2i-log")

    def generate(prompt, negative, steps, guidance, seed, size, request: gr.Request):
        model = config.t2i_model
        if model is None and not pretrained:
            model = yield from log_updates(default_model(config), lambda text: (gr.skip(),) * 3 + (text,))
        folder = session_job(config, request, "t2i")
        argv = sample_argv(config, model, prompt, negative, steps, guidance, seed, size)
        text = ""
        for text in run_job(config, argv, folder):
            yield gr.skip(), gr.skip(), gr.skip(), text
        out = str(folder / "image.png")
        yield out, out, f"`{command_line(argv)}`", text

    run.click(generate, [prompt, negative, steps, guidance, seed, size], [image, download, command, log])

