"""Fine-tuning from the CLI: `video train --pretrained` (a diffusers SVD folder, tiny random parts) on curated
clips, full or `--lora`; `video sample --lora FILE[:SCALE]` on a toy and on a pretrained SVD samples the same
latents as the merged export (1e-5); a LoRA for another base is one clear error."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from genlab.core.train import load_weights
from genlab.systems.video import pipeline
from tests.helpers import assert_user_error, run_cli_inprocess


@pytest.fixture
def latents_of(monkeypatch):
    """Run `video sample` in-process and return the latents it sampled (a spy on pipeline.sample_i2v)."""
    seen = []
    real = pipeline.sample_i2v

    def spy(*args, **kwargs):
        out = real(*args, **kwargs)
        seen.append(out.latents.clone())
        return out

    monkeypatch.setattr(pipeline, "sample_i2v", spy)

    def run(argv, capsys) -> torch.Tensor:
        code, _, err = run_cli_inprocess(argv, capsys)
        assert code == 0, err
        return seen.pop()

    return run


def _curated_folder(folder, size: int = 32, frames: int = 16):
    """One kept clip (smooth moving pattern, 7 fps) in a clips.parquet as `genlab video curate` writes it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from genlab.systems.video.curation.synthetic import write_video

    yy, xx = np.mgrid[0:size, 0:size] / size
    video = [(np.stack([np.sin(6 * xx + 0.4 * t), np.cos(5 * yy - 0.3 * t), np.sin(4 * (xx + yy))], -1) * 100 + 128)
             .astype(np.uint8) for t in range(frames)]
    write_video(folder / "clips" / "a.mp4", video, fps=7)
    rows = [{"clip_id": "a", "status": "ok", "clip_path": "clips/a.mp4", "fps": 7.0, "motion_score": 3.0, "keep": True}]
    pq.write_table(pa.Table.from_pylist(rows), folder / "clips.parquet")
    return folder


def test_toy_lora_sampled_with_lora_equals_the_merged_export(tmp_path, capsys, latents_of):
    run = ["--toy", "fast", "--steps", "2", "--batch-size", "2", "--no-gradient-checkpointing", "--quiet"]
    code, _, err = run_cli_inprocess(["video", "train", "--stage", "i2v", *run, "--out", str(tmp_path / "base")], capsys)
    assert code == 0, err
    code, _, err = run_cli_inprocess(["video", "train", "--stage", "finetune", *run, "--init", str(tmp_path / "base/i2v"),
                                      "--lora", "2", "--lr", "0.05", "--ema-decay", "0", "--out", str(tmp_path / "ft")],
                                     capsys)
    assert code == 0, err
    Image.new("RGB", (8, 8), (200, 30, 30)).save(tmp_path / "first.png")
    lora = tmp_path / "ft/finetune/lora.safetensors"
    sample = ["video", "sample", "--image", str(tmp_path / "first.png"), "--out", str(tmp_path / "v.mp4"),
              "--frames", "3", "--steps", "2", "--quiet"]
    adapted = latents_of([*sample, "--weights", str(tmp_path / "base/i2v"), "--lora", str(lora)], capsys)
    merged = latents_of([*sample, "--weights", str(tmp_path / "ft/finetune")], capsys)
    base = latents_of([*sample, "--weights", str(tmp_path / "base/i2v")], capsys)
    off = latents_of([*sample, "--weights", str(tmp_path / "base/i2v"), "--lora", f"{lora}:0"], capsys)
    assert (adapted - merged).abs().max() <= 1e-5
    assert (adapted - base).abs().max() > 1e-4  # the LoRA moved the model
    assert (off - base).abs().max() <= 1e-6  # scale 0 is the base

    from genlab.core.train import save_weights
    from genlab.systems.video.demo import demo_model
    from genlab.systems.video.model import SVDModel

    other = SVDModel(demo_model(3, (16, 32)))  # another base: wider channels
    save_weights(tmp_path / "other.safetensors", other.state_dict(), other.config.to_dict())
    code, _, err = run_cli_inprocess([*sample, "--weights", str(tmp_path / "other.safetensors"), "--lora", str(lora)],
                                     capsys)
    assert_user_error(code, err, "lora.safetensors", "another model")
    code, _, err = run_cli_inprocess([*sample, "--weights", str(tmp_path / "base/i2v"), "--lora",
                                      str(tmp_path / "base/i2v/ema.safetensors")], capsys)
    assert_user_error(code, err, "ema.safetensors", "no LoRA config")


def test_pretrained_svd_fine_tunes_on_curated_clips_full_and_lora(tiny_svd, tmp_path, capsys, monkeypatch, latents_of):
    monkeypatch.setenv("GENLAB_CACHE", str(tmp_path / "cache"))
    folder, _ = tiny_svd
    data = _curated_folder(tmp_path / "curated")
    train = ["video", "train", "--pretrained", str(folder), "--data", str(data), "--stage", "finetune", "--steps", "2",
             "--batch-size", "2", "--size", "32", "--ema-decay", "0", "--quiet"]
    code, out, err = run_cli_inprocess([*train, "--lr", "1e-3", "--out", str(tmp_path / "full")], capsys)
    assert code == 0, err
    assert "held-out loss" in out and f"--pretrained {folder} --weights" in out
    tuned, config = load_weights(tmp_path / "full/finetune/ema.safetensors")
    from genlab.systems.video import pretrained

    base = pretrained.load(folder).model.state_dict()
    assert tuned.keys() == base.keys() and config["image_encoder"] == "external"
    assert max((tuned[k] - base[k]).abs().max().item() for k in base) > 1e-4  # every weight trains
    code, _, err = run_cli_inprocess([*train, "--lora", "2", "--lr", "0.05", "--out", str(tmp_path / "lora")], capsys)
    assert code == 0, err

    Image.fromarray(np.full((64, 64, 3), 90, np.uint8)).save(tmp_path / "first.png")
    sample = ["video", "sample", "--pretrained", str(folder), "--image", str(tmp_path / "first.png"), "--out",
              str(tmp_path / "v.mp4"), "--frames", "3", "--steps", "2", "--size", "32x32", "--quiet"]
    lora = tmp_path / "lora/finetune/lora.safetensors"
    adapted = latents_of([*sample, "--lora", str(lora)], capsys)
    merged = latents_of([*sample, "--weights", str(tmp_path / "lora/finetune")], capsys)
    plain = latents_of(sample, capsys)
    full = latents_of([*sample, "--weights", str(tmp_path / "full/finetune")], capsys)
    assert (adapted - merged).abs().max() <= 1e-5
    assert (adapted - plain).abs().max() > 1e-4 and (full - plain).abs().max() > 1e-4

    # a base of another architecture: --weights and --lora are one clear line each
    toy = tmp_path / "toy"
    code, _, err = run_cli_inprocess(["video", "train", "--toy", "fast", "--stage", "i2v", "--steps", "1",
                                      "--batch-size", "2", "--lora", "2", "--out", str(toy), "--quiet"], capsys)
    assert code == 0, err
    code, _, err = run_cli_inprocess([*sample, "--lora", str(toy / "i2v/lora.safetensors")], capsys)
    assert_user_error(code, err, "lora.safetensors", "another model")
    code, _, err = run_cli_inprocess([*sample, "--weights", str(toy / "i2v")], capsys)
    assert_user_error(code, err, "--weights", "another architecture")
    code, _, err = run_cli_inprocess(["video", "train", "--pretrained", str(folder), "--stage", "finetune", "--out",
                                      str(tmp_path / "x"), "--quiet"], capsys)
    assert_user_error(code, err, "--pretrained", "--data")
