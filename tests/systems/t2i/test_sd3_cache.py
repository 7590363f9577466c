"""Pretrained SD3's prompt embeddings on disk: computed once per encoder and prompt, reused without loading the
encoder, same images; another encoder file or a changed prompt is another entry."""

from __future__ import annotations

import pytest
import torch

from tests.systems.t2i import sd3_tiny

pytest.importorskip("diffusers")


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.setenv("GENLAB_CACHE", str(tmp_path / "cache"))
    return sd3_tiny.save_folder(sd3_tiny.components(), tmp_path / "pipe")


def _run(pipe, prompts):
    return pipe(prompts, negative_prompt="blurry", steps=2, guidance=4.0, size=(32, 32), seed=1)


def test_prompt_embeddings_are_cached_on_disk_and_reused_without_the_encoders(folder, tmp_path, monkeypatch):
    from genlab.systems.t2i.sd3 import SD3Pipeline, load_pipeline

    prompts = ["a photo of a cat", "a red car"]
    plain = _run(load_pipeline(folder, text_cache=False), prompts)
    assert not (tmp_path / "cache" / "text-embeddings").exists()

    first = _run(load_pipeline(folder), prompts)
    stores = sorted((tmp_path / "cache" / "text-embeddings").iterdir())
    assert len(stores) == 3  # one per encoder: CLIP-L, CLIP-G, T5
    for store in stores:  # the two prompts and the negative one, on disk
        assert len(list(store.glob("*.safetensors"))) == 3 and (store / "identity.txt").is_file()

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
    assert len(list((tmp_path / "cache" / "text-embeddings").iterdir())) == 4


def test_a_broken_cache_entry_is_recomputed(folder, tmp_path):
    from genlab.systems.t2i.sd3 import load_pipeline

    pipe = load_pipeline(folder)
    ref = pipe.encode(["a photo of a cat"])
    for f in (tmp_path / "cache" / "text-embeddings").rglob("*.safetensors"):
        f.write_bytes(f.read_bytes()[:20])  # truncated
    emb = pipe.encode(["a photo of a cat"])
    torch.testing.assert_close(emb.context, ref.context)
    torch.testing.assert_close(emb.pooled, ref.pooled)
