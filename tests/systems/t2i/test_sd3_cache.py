"""Pretrained SD3's prompt embeddings on disk (cache_dir("t2i-text"), as training's): computed once per encoder
and prompt, reused without loading the encoder, same images; another encoder file or a new prompt is a new entry."""

from __future__ import annotations

import json

import pytest
import torch

from tests.systems.t2i import sd3_tiny

pytest.importorskip("diffusers")


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.setenv("GENLAB_CACHE", str(tmp_path / "cache"))
    return sd3_tiny.save_folder(sd3_tiny.components(), tmp_path / "pipe")


def test_bf16_embeddings_come_back_exactly(folder):
    from genlab.systems.t2i.sd3 import load_pipeline

    plain = load_pipeline(folder, dtype="bf16", text_cache=False).encode(["a photo of a cat"])
    pipe = load_pipeline(folder, dtype="bf16")
    for _ in range(2):  # computed and stored, then read back (float32 on disk)
        emb = pipe.encode(["a photo of a cat"])
        assert emb.context.dtype == torch.bfloat16
        assert torch.equal(emb.context, plain.context) and torch.equal(emb.pooled, plain.pooled)


def _run(pipe, prompts):
    return pipe(prompts, negative_prompt="blurry", steps=2, guidance=4.0, size=(32, 32), seed=1)


def test_prompt_embeddings_are_cached_on_disk_and_reused_without_the_encoders(folder, tmp_path, monkeypatch):
    from genlab.systems.t2i.sd3 import SD3Pipeline, load_pipeline

    prompts = ["a photo of a cat", "a red car"]
    plain = _run(load_pipeline(folder, text_cache=False), prompts)
    assert not (tmp_path / "cache" / "t2i-text").exists()

    first = _run(load_pipeline(folder), prompts)
    stores = sorted((tmp_path / "cache" / "t2i-text").glob("sd3-*"))
    assert len(stores) == 3  # one per encoder: CLIP-L, CLIP-G, T5
    for store in stores:  # the two prompts and the negative one, on disk
        for what in ("context", "pooled"):
            assert len(json.loads((store / what / "index.json").read_text())["rows"]) == 3

    loaded = []
    real_load = SD3Pipeline.load_encoder
    monkeypatch.setattr(SD3Pipeline, "load_encoder", lambda self, name: loaded.append(name) or real_load(self, name))
    again = _run(load_pipeline(folder), prompts)
    assert loaded == []  # every prompt was on disk: no encoder was loaded
    _run(load_pipeline(folder), ["a new prompt"])
    assert loaded == ["clip_l", "clip_g", "t5"]  # one new prompt: each encoder once, for it alone
    torch.testing.assert_close(first, plain, atol=1e-5, rtol=0)
    torch.testing.assert_close(again, plain, atol=1e-5, rtol=0)

    # an encoder's file rewritten (new weights): its identity changes, so it gets a store of its own
    weights = next((folder / "text_encoder").glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes())
    loaded.clear()
    _run(load_pipeline(folder), prompts)
    assert loaded == ["clip_l"]
    assert len(list((tmp_path / "cache" / "t2i-text").glob("sd3-*"))) == 4
