"""SPoC: pseudocode and example tests in; the compilations as they happen and the C++ program found."""

from __future__ import annotations

import gradio as gr

from genlab.serve.app import ServeConfig, command_line, run_job, session_job

TITLE = "SPoC"
EXAMPLE = "create integers a, b\nread a and b\nprint a + b\n"


def build(config: ServeConfig) -> None:
    with gr.Row():
        with gr.Column():
            pseudo = gr.Code(label="pseudocode (one statement a line, indented)", value=EXAMPLE, language=None,
                             interactive=True, elem_id="spoc-pseudo")
            with gr.Row():
                given = gr.Textbox(label="example input", lines=3, value="2 3", elem_id="spoc-input")
                expected = gr.Textbox(label="expected output", lines=3, value="5", elem_id="spoc-output")
            budget = gr.Number(label="compilation budget", value=20, precision=0, elem_id="spoc-budget")  # the command checks it
            run = gr.Button("Search for a program", variant="primary", elem_id="spoc-run")
        with gr.Column():
            program = gr.Code(label="C++ found", language="cpp", elem_id="spoc-program")
            command = gr.Markdown()
            log = gr.Textbox(label="compilations", lines=10, max_lines=20, elem_id="spoc-log")

    def solve(pseudo, given, expected, budget, request: gr.Request):
        if not pseudo.strip():
            raise gr.Error("write some pseudocode first")
        folder = session_job(config, request, "spoc")
        (folder / "pseudo.txt").write_text(pseudo)
        (folder / "in.txt").write_text(given)
        (folder / "out.txt").write_text(expected)
        argv = ["spoc", "solve", "pseudo.txt", "--example", "in.txt", "out.txt", "--budget", str(int(budget)),
                "--out", "program.cpp"]
        text = ""
        for text in run_job(config, argv, folder):
            yield gr.skip(), gr.skip(), text
        found = folder / "program.cpp"
        yield (found.read_text() if found.is_file() else ""), f"`{command_line(argv)}`", text

    run.click(solve, [pseudo, given, expected, budget], [program, command, log])
