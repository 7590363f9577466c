"""Training a genlab model on a pretrained SD3's text encoders: the conditioning is the SD3 pipeline's own
(layout, tokens, pooled vector), through `TextConfig.encoders = ("sd3:<path>",)` and `--text sd3:PATH`."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from genlab.systems.t2i import config as presets
from tests.helpers import assert_user_error, run_cli_inprocess
from tests.systems.t2i import sd3_tiny

pytest.importorskip("diffusers")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return sd3_tiny.save_folder(sd3_tiny.components(), tmp_path_factory.mktemp("sd3") / "pipe")


def test_training_conditions_like_the_pretrained_pipeline_and_trains(folder, tmp_path, monkeypatch):
    from genlab.systems.t2i.data import load_digits
    from genlab.systems.t2i.pipeline import generate, load_model
    from genlab.systems.t2i.sd3 import load_pipeline, with_sd3_text
    from genlab.systems.t2i.train import train_t2i

    monkeypatch.setenv("GENLAB_CACHE", str(tmp_path / "cache"))
    base = presets.tiny()
    cfg = with_sd3_text(replace(base, train=replace(base.train, steps=3, batch_size=4)), folder)
    prompts = ["a handwritten digit seven", "a handwritten digit one"]
    ref = load_pipeline(folder, text_cache=False).encode(prompts)
    assert ref.context.shape[1] == 77 + 256  # SD3's layout: CLIP-L|CLIP-G tokens, then T5's

    images, _, captions = load_digits()
    run = train_t2i(cfg, images[:16], captions[:16], tmp_path / "run", progress=False)
    emb = run.model.text(prompts)
    torch.testing.assert_close(emb.context, ref.context, rtol=0, atol=1e-6)
    torch.testing.assert_close(emb.pooled, ref.pooled, rtol=0, atol=1e-6)
    assert all(torch.isfinite(torch.tensor(h["loss"])) for h in run.history)
    loaded = load_model(tmp_path / "run")  # the encoder is rebuilt from its path
    torch.testing.assert_close(generate(loaded, prompts[:1], steps=2, seed=0), generate(run.ema, prompts[:1], steps=2, seed=0))


def test_cli_text_option_rejects_an_unknown_encoder(capsys):
    code, _, err = run_cli_inprocess(["t2i", "train", "--preset", "tiny", "--out", "x", "--text", "clip"], capsys)
    assert code == 2 and "sd3:PATH" in err


def test_cli_text_sd3_with_a_missing_folder_is_one_line(tmp_path, capsys):
    missing = tmp_path / "no-such-sd3"
    code, _, err = run_cli_inprocess(["t2i", "train", "--preset", "tiny", "--out", str(tmp_path / "run"),
                                      "--text", f"sd3:{missing}"], capsys)
    assert_user_error(code, err, "no-such-sd3")
    assert not (tmp_path / "run").exists()
