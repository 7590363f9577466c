"""Training on curated clips: the motion-bucket map, fps from the table, the latent cache, `genlab video curate`
on the shared videos then `genlab video train --data` from the CLI, and fine-tuning lowering held-out loss."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from genlab.core.autoencoders.pixel import PixelIdentity
from genlab.systems.video import curated
from genlab.systems.video.curated import CuratedClipsConfig, curated_data, motion_bucket
from tests.helpers import assert_user_error, run_cli_inprocess, run_genlab


def test_motion_bucket_map_is_monotone_in_0_255():
    scores = torch.tensor([0.0, 0.01, 0.5, 1.0, 3.0, 10.0, 50.0, 1e3, 1e6])
    b = motion_bucket(scores, 10.0)
    assert b[0] == 0 and (b[1:] > b[:-1]).all() and (b < 255).all()
    assert float(motion_bucket(10.0, 10.0)) == pytest.approx(127.5)
    assert float(motion_bucket(-1.0, 10.0)) == 0  # a negative score is treated as still


def _table(folder, rows):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), folder / "clips.parquet")


def test_fps_and_bucket_come_from_the_table_and_latents_are_cached(tmp_path, monkeypatch):
    from genlab.systems.video.curation.synthetic import write_video

    monkeypatch.setenv("GENLAB_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    write_video(tmp_path / "clips" / "a.mp4", [rng.integers(0, 255, (24, 32, 3), dtype=np.uint8) for _ in range(32)])
    row = {"clip_id": "a_0000", "status": "ok", "clip_path": "clips/a.mp4", "fps": 30.0, "motion_score": 4.0, "keep": True}
    _table(tmp_path, [row, {**row, "clip_id": "b_0000", "keep": False}])
    cfg = CuratedClipsConfig(frames=2, size=8, heldout_every=0)
    train, held = curated_data(tmp_path, cfg, PixelIdentity(3))
    assert held is None and train.latents.shape == (4, 2, 3, 8, 8)  # 32 frames at stride round(30/7)=4 -> 4 windows
    assert torch.equal(train.fps_id, torch.full((4,), 30 / 4 - 1))  # sgm's fps_id: the sampled frame rate - 1
    assert torch.allclose(train.buckets, torch.full((4,), 255 * 4 / 14))
    assert len(list((tmp_path / "cache" / "video_train").glob("*.safetensors"))) == 1

    def no_decode(*args, **kwargs):
        raise AssertionError("decoded again despite the cache")

    monkeypatch.setattr(curated, "decode_windows", no_decode)
    again, _ = curated_data(tmp_path, cfg, PixelIdentity(3))
    assert torch.equal(again.latents, train.latents)
    monkeypatch.undo()
    monkeypatch.setenv("GENLAB_CACHE", str(tmp_path / "cache"))
    _table(tmp_path, [{**row, "fps": 10.0}])  # the table changed: a new cache entry, fps from the new table
    ten, _ = curated_data(tmp_path, cfg, PixelIdentity(3))
    assert torch.equal(ten.fps_id, torch.full((16,), 9.0)) and ten.latents.shape[0] == 16


@pytest.fixture(scope="module")
def curated_shared(tmp_path_factory, shared_data):
    """`genlab video curate` on the shared videos (tiny preset, no OCR): 3 kept clips, about 15 s."""
    out = tmp_path_factory.mktemp("curated") / "out"
    res = run_genlab("video", "curate", str(shared_data / "video"), "--out", str(out), "--preset", "tiny", "--no-text",
                     "--quiet", env={"OMP_NUM_THREADS": "1"})
    assert res.returncode == 0, res.stderr[-2000:]
    return out


def test_curate_shared_videos_then_train_from_the_cli(curated_shared, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("GENLAB_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "run"
    argv = ["video", "train", "--data", str(curated_shared), "--toy", "fast", "--stage", "i2v", "--frames", "4",
            "--size", "16", "--steps", "3", "--batch-size", "4", "--out", str(out), "--quiet"]
    code, stdout, err = run_cli_inprocess(argv, capsys)
    assert code == 0, err
    assert "3 steps on" in stdout and "held-out loss" in stdout
    held = float(stdout.split("held-out loss")[1].split(":")[1].split()[0])
    assert math.isfinite(held) and held > 0
    assert (out / "i2v" / "ema.safetensors").is_file() and (out / "i2v" / "checkpoints" / "step_00000003.safetensors").is_file()
    # a table with no kept clip: one line, before any work
    import pyarrow as pa
    import pyarrow.parquet as pq

    empty = tmp_path / "empty"
    empty.mkdir()
    table = pq.read_table(curated_shared / "clips.parquet")
    pq.write_table(table.set_column(table.column_names.index("keep"), "keep",
                                    pa.array([False] * table.num_rows)), empty / "clips.parquet")
    code, _, err = run_cli_inprocess([*argv[:3], str(empty), *argv[4:-3], "--out", str(tmp_path / "run2"), "--quiet"],
                                     capsys)
    assert_user_error(code, err, "clips.parquet", "no kept clip")
    assert not (tmp_path / "run2").exists()


@pytest.mark.slow
def test_fine_tuning_the_toy_on_curated_clips_lowers_heldout_loss(curated_shared, tmp_path, monkeypatch):
    """The fast toy trained on sprites, then fine-tuned on windows of the shared videos: the loss on held-out
    windows (fixed noise) drops."""
    from genlab.systems.video import demo
    from genlab.systems.video.config import stage
    from genlab.systems.video.model import SVDModel
    from genlab.systems.video.train import encode_clips, heldout_loss, train_stage

    monkeypatch.setenv("GENLAB_CACHE", str(tmp_path / "cache"))
    torch.set_num_threads(1)
    toy = demo.fast()
    ae = PixelIdentity(3)
    torch.manual_seed(0)
    model = SVDModel(toy.model)
    sprites = demo.training_clips(toy)
    train_stage(model, ae, encode_clips(sprites.video, sprites.bucket, ae, 16, toy.sprite.fps_id),
                stage("i2v", steps=50, batch_size=8, lr=2e-3, frames=4, size=16))
    st = stage("finetune", steps=80, batch_size=8, lr=1e-3, frames=4, size=16, ema_decay=0.99)
    train, held = curated_data(curated_shared, CuratedClipsConfig(frames=4, size=16), ae)
    assert held is not None and len(held.latents) >= 10
    before = heldout_loss(model, ae, held, st)
    train_stage(model, ae, train, st, gradient_checkpointing=True)
    after = heldout_loss(model, ae, held, st)
    print(f"held-out loss on {len(held.latents)} windows: {before:.4f} -> {after:.4f}")
    assert after < 0.8 * before, (before, after)


def test_external_image_encoder_tokens_are_cached_and_train(tmp_path, monkeypatch):
    """An SVD-style model (external CLIP image encoder) trains on curated clips: the CLIP tokens of each
    window's first frame are computed once, cached with the latents, and fed as context."""
    import transformers

    from genlab.core.nn import temporal
    from genlab.systems.video.config import VideoModelConfig, stage
    from genlab.systems.video.curation.synthetic import write_video
    from genlab.systems.video.model import CLIPImageTokens, SVDModel
    from genlab.systems.video.train import train_stage

    monkeypatch.setenv("GENLAB_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    write_video(tmp_path / "clips" / "a.mp4", [rng.integers(0, 255, (16, 16, 3), dtype=np.uint8) for _ in range(12)],
                fps=7)
    _table(tmp_path, [{"clip_id": "a", "status": "ok", "clip_path": "clips/a.mp4", "fps": 7.0, "motion_score": 1.0,
                       "keep": True}])
    torch.manual_seed(0)
    clip = transformers.CLIPVisionModelWithProjection(transformers.CLIPVisionConfig(
        hidden_size=32, projection_dim=32, num_hidden_layers=1, num_attention_heads=2, image_size=16,
        intermediate_size=37, patch_size=8)).eval()
    tokens = CLIPImageTokens(clip, 16)
    train, held = curated_data(tmp_path, CuratedClipsConfig(frames=3, size=8, heldout_every=0), PixelIdentity(3),
                               image_encoder=tokens)
    assert held is None and train.context.shape == (4, 1, 32)
    with torch.no_grad():
        assert torch.allclose(train.context, tokens(train.first_frames), atol=1e-6)
    unet = temporal.tiny(in_channels=6, out_channels=3, addition_time_embed_dim=16, num_heads=(4, 8))
    model = SVDModel(VideoModelConfig(unet=unet, mode="i2v", latent_channels=3, image_encoder="external"))
    losses = train_stage(model, PixelIdentity(3), train, stage("i2v", steps=2, batch_size=2, frames=3, size=8))
    assert len(losses) == 2 and all(math.isfinite(x) for x in losses)


def test_stage_data_selection_keeps_the_best_clips_for_fine_tuning():
    from genlab.errors import GenlabError
    from genlab.systems.video.config import PAPER_STAGES
    from genlab.systems.video.curated import STAGE_SELECTION, select_rows

    rows = [{"clip_id": c, "motion_score": m} for c, m in zip("abcd", (1.0, 4.0, 2.0, 3.0))]
    assert select_rows(rows, CuratedClipsConfig()) == rows
    assert [r["clip_id"] for r in select_rows(rows, CuratedClipsConfig(selection="quality"))] == ["b", "d"]
    scored = [{**r, "aesthetic_score": a} for r, a in zip(rows, (9.0, 1.0, 8.0, 2.0))]  # aesthetics first
    assert [r["clip_id"] for r in select_rows(scored, CuratedClipsConfig(selection="quality"))] == ["a", "c"]
    assert set(STAGE_SELECTION) == set(PAPER_STAGES) and STAGE_SELECTION["video"] == "all"
    assert STAGE_SELECTION["finetune"] == "quality"
    with pytest.raises(GenlabError, match="selection"):
        CuratedClipsConfig(selection="best")
