"""The optional CLIP stages (embedding, aesthetic head, caption, CLIP score) on tiny local models."""

from __future__ import annotations

import numpy as np
import pytest

from genlab.core.data.video import Frame
from genlab.errors import GenlabError
from genlab.systems.video.curation.config import EmbeddingConfig
from genlab.systems.video.curation.stages import (
    AestheticStage,
    CaptionStage,
    ClipEmbeddingStage,
    ClipFrames,
    ClipScoreStage,
)
from tests.systems.curation.tiny_models import make_tiny_models


def _clip(seed):
    rng = np.random.default_rng(seed)
    return ClipFrames([Frame(i, i / 2, rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)) for i in range(5)], 2.0, 0, 2.5)


def test_clip_stages_on_tiny_local_models(tmp_path):
    import torch
    from safetensors.torch import save_file
    from transformers import CLIPModel, CLIPProcessor

    clip_dir, blip_dir = make_tiny_models(tmp_path)
    w0, b0, w2, b2 = torch.randn(4, 16), torch.randn(4), torch.randn(1, 4), torch.randn(1)
    save_file({"layers.0.weight": w0, "layers.0.bias": b0, "layers.2.weight": w2, "layers.2.bias": b2},
              str(tmp_path / "aesthetic.safetensors"))
    cfg = EmbeddingConfig(clip_path=str(clip_dir), caption_path=str(blip_dir),
                          aesthetic_path=str(tmp_path / "aesthetic.safetensors"))
    frames = _clip(0)
    record = {}
    for stage in (ClipEmbeddingStage(cfg), AestheticStage(cfg), CaptionStage(cfg), ClipScoreStage(cfg)):
        record.update(stage(record, frames))
    emb = torch.tensor(record["clip_embedding"])
    assert emb.shape == (16,) and float(emb.norm()) == pytest.approx(1.0, abs=1e-5)

    # parity with transformers directly: normalised mean of the first/middle/last image features
    model, proc = CLIPModel.from_pretrained(clip_dir).eval(), CLIPProcessor.from_pretrained(clip_dir)
    picked = [np.ascontiguousarray(f.image[..., ::-1]) for f in frames.pick(3)]
    assert [f.index for f in frames.pick(3)] == [0, 2, 4]
    with torch.no_grad():
        feats = model.get_image_features(pixel_values=proc(images=picked, return_tensors="pt")["pixel_values"])
        feats = getattr(feats, "pooler_output", feats)
        expected = torch.nn.functional.normalize(torch.nn.functional.normalize(feats, dim=-1).mean(0), dim=-1)
        assert torch.allclose(emb, expected, atol=1e-5)
        # the aesthetic head: linear layers in index order, nothing between them (LAION v1/v2 form)
        assert record["aesthetic_score"] == pytest.approx(float((emb @ w0.T + b0) @ w2.T + b2), abs=1e-4)
        assert isinstance(record["caption"], str)
        text = proc(text=[record["caption"]], return_tensors="pt", padding=True)
        t = model.get_text_features(input_ids=text["input_ids"], attention_mask=text["attention_mask"])
        t = torch.nn.functional.normalize(getattr(t, "pooler_output", t), dim=-1)[0]
        assert record["clip_score"] == pytest.approx(float(t @ emb), abs=1e-5)

    other = ClipEmbeddingStage(cfg)({}, _clip(1))["clip_embedding"]
    assert not np.allclose(other, record["clip_embedding"])


def test_models_load_only_from_local_folders(tmp_path):
    stage = ClipEmbeddingStage(EmbeddingConfig(clip_path="openai/clip-vit-base-patch32"))
    with pytest.raises(GenlabError, match="embeddings.clip_path: expected a local model folder"):
        stage({}, _clip(0))


@pytest.mark.slow
def test_cli_with_clip_stages_and_percentile_filter(tmp_path):
    import pyarrow.parquet as pq
    import torch
    from safetensors.torch import save_file

    from genlab.systems.video.curation import synthetic
    from tests.helpers import run_genlab

    clip_dir, blip_dir = make_tiny_models(tmp_path / "models")
    save_file({"layers.0.weight": torch.randn(1, 16), "layers.0.bias": torch.zeros(1)}, str(tmp_path / "aes.safetensors"))
    truth = synthetic.cuts_video(tmp_path / "in" / "cuts.mp4", seed=4, n_hard=5, n_fades=0, shot_frames=(40, 50))
    result = run_genlab("video", "curate", str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--preset", "tiny",
                        "--clip-model", str(clip_dir), "--aesthetic-head", str(tmp_path / "aes.safetensors"),
                        "--caption-model", str(blip_dir), "--min-pct", "aesthetic_score=50", "--no-text", "--quiet")
    assert result.returncode == 0, result.stderr
    rows = pq.read_table(tmp_path / "out" / "clips.parquet").to_pylist()
    assert len(rows) == len(truth.hard_cuts) + 1
    assert all(len(r["clip_embedding"]) == 16 and r["caption"] is not None and r["clip_score"] is not None for r in rows)
    assert all(r["text_ratio"] is None for r in rows)
    kept = [r for r in rows if r["keep"]]
    assert 0 < len(kept) < len(rows)
    assert all(r["removed_by"] == "aesthetic_score" for r in rows if not r["keep"])
    assert (tmp_path / "out" / "histograms" / "aesthetic_score.png").exists()
    # the Ray pipeline, its model stages on their own actor pool: the same table
    ray = run_genlab("video", "curate", str(tmp_path / "in"), "--out", str(tmp_path / "ray"), "--preset", "tiny",
                     "--clip-model", str(clip_dir), "--aesthetic-head", str(tmp_path / "aes.safetensors"),
                     "--caption-model", str(blip_dir), "--min-pct", "aesthetic_score=50", "--no-text", "--quiet",
                     "--ray", "--workers", "2")
    assert ray.returncode == 0, ray.stderr
    assert pq.read_table(tmp_path / "ray" / "clips.parquet").equals(pq.read_table(tmp_path / "out" / "clips.parquet"))
