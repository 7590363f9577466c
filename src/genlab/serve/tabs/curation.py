"""Video curation: upload videos; the clip table, score histograms and clip previews; sliders re-filter
the same run without reprocessing (finished videos are read back from the run's records)."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from genlab.serve.app import ServeConfig, command_line, run_job, session_job
from genlab.serve.workspace import adopt

TITLE = "Curation"
COLUMNS = ["clip_id", "status", "start_s", "end_s", "duration_s", "motion_score", "text_ratio", "keep", "removed_by",
           "error"]


def build(config: ServeConfig) -> None:
    with gr.Row():
        with gr.Column(scale=1):
            videos = gr.File(label="videos", file_count="multiple", elem_id="curation-upload")
            preset = gr.Radio(["tiny", "default"], value="tiny", label="preset (tiny: low resolution, fast)")
            run = gr.Button("Curate", variant="primary", elem_id="curation-run")
            min_motion = gr.Slider(0, 20, value=1.0, step=0.1, label="keep motion_score >=", elem_id="curation-motion")
            max_text = gr.Slider(0, 1, value=1.0, step=0.01, label="keep text_ratio <=")
            refilter = gr.Button("Re-filter", elem_id="curation-refilter")
        with gr.Column(scale=2):
            table = gr.Dataframe(label="clips", interactive=False, elem_id="curation-table")
            histograms = gr.Gallery(label="score histograms (thresholds drawn)", columns=3, height=260)
            previews = gr.Gallery(label="kept clips", columns=4, height=260, elem_id="curation-previews")
            command = gr.Markdown(elem_id="curation-command")
            log = gr.Textbox(label="log", lines=5, max_lines=10, elem_id="curation-log")
    folder_state = gr.State(None)

    def curate(folder: Path, inputs: list[str], preset: str, bounds: list[str]):
        argv = ["video", "curate", *inputs, "--out", "curated", "--preset", preset, *bounds]
        text = ""
        for text in run_job(config, argv, folder):
            yield gr.skip(), gr.skip(), gr.skip(), gr.skip(), text, str(folder)
        frame, hists, clips = _results(folder / "curated")
        yield frame, hists, clips, f"`{command_line(argv)}`", text, str(folder)

    def first_run(videos, preset, min_motion, max_text, request: gr.Request):
        if not videos:
            raise gr.Error("upload at least one video")
        folder = session_job(config, request, "curation")
        (folder / "inputs").mkdir()
        names = [f"inputs/{adopt(v, folder / 'inputs').name}" for v in videos]
        (folder / "preset.txt").write_text(preset)
        yield from curate(folder, names, preset, _bounds(min_motion, max_text))

    def again(folder, min_motion, max_text):
        if not folder:
            raise gr.Error("curate some videos first")
        folder = Path(folder)
        yield from curate(folder, ["inputs"], (folder / "preset.txt").read_text(), _bounds(min_motion, max_text))

    outputs = [table, histograms, previews, command, log, folder_state]
    run.click(first_run, [videos, preset, min_motion, max_text], outputs)
    refilter.click(again, [folder_state, min_motion, max_text], outputs)


def _bounds(min_motion: float, max_text: float) -> list[str]:
    return ["--min", f"motion_score={min_motion}", "--max", f"text_ratio={max_text}"]


def _results(out: Path):
    import pandas as pd

    table = pd.read_parquet(out / "clips.parquet")
    kept = table[table["keep"] & table["clip_path"].notna()] if "keep" in table else table.iloc[:0]
    clips = [str(out / p) for p in kept["clip_path"] if str(p).endswith(".mp4") and (out / p).is_file()][:24]
    hists = sorted(str(p) for p in (out / "histograms").glob("*.png"))
    return table[[c for c in COLUMNS if c in table.columns]].round(3), hists, clips
