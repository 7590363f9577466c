"""Pairs written by `genlab insertion pairs` (toy shards and real pairs from a video) share one shard
format and train through `genlab insertion train --pairs`."""

from __future__ import annotations

import json

import numpy as np
import pytest

from genlab.systems.insertion import pairs
from tests.helpers import assert_user_error, run_cli_inprocess


@pytest.fixture(scope="module")
def real_pairs(shared_data, tmp_path_factory):
    """Real pairs from the Sports2D video at the `tiny` preset's sizes (32 px, 16 px references)."""
    pytest.importorskip("mediapipe")
    from genlab.cli import main

    out = tmp_path_factory.mktemp("real") / "pairs"
    code = main(["insertion", "pairs", "--video", str(shared_data / "video" / "sports2d_demo.mp4"), "--size", "32",
                 "--max-frames", "60", "--stride", "3", "--out", str(out), "--quiet"])
    assert code == 0
    return out


def test_video_pairs_are_read_back_in_range(real_pairs):
    """Real pairs used to be stored as floats in [0, 1] and read back / 255 (at most 0.0039)."""
    found, settings = pairs.read_pairs(real_pairs)
    assert settings["source"] == "video" and settings["config"]["size"] == 32 and len(found) >= 8
    for p in found:
        assert p.target.shape == (32, 32, 3) and p.reference.shape == (16, 16, 3)
        assert 0.0 <= p.target.min() and p.target.max() <= 1.0
        assert p.target.max() > 0.3 and p.target.mean() > 0.1  # daylight park, not 1/255 of it
        assert set(np.unique(p.mask)) <= {0.0, 1.0} and p.mask.any()
        assert np.allclose(p.scene[p.mask > 0.5], 128 / 255)  # masked pixels grey
        assert np.allclose(p.reference[0, 0], 128 / 255, atol=0.02)  # person centred on grey
    with np.load(real_pairs / "shard-00000.npz") as z:  # the toy's format: uint8
        assert all(z[k].dtype == np.uint8 for k in pairs.SHARD_KEYS)
    summary = json.loads((real_pairs / "summary.json").read_text())
    assert summary["train_pairs"] == len(found)


def test_text_file_named_mp4_is_one_line(tmp_path, capsys):
    (tmp_path / "clip.mp4").write_text("not a video\n")
    code, _, err = run_cli_inprocess(["insertion", "pairs", "--video", str(tmp_path / "clip.mp4"),
                                      "--out", str(tmp_path / "out")], capsys)
    assert_user_error(code, err, "clip.mp4", "not a readable video")
    assert not (tmp_path / "out").exists()


def test_train_refuses_pairs_of_another_size(real_pairs, tmp_path, capsys):
    code, _, err = run_cli_inprocess(["insertion", "train", "--preset", "toy", "--pairs", str(real_pairs),
                                      "--out", str(tmp_path / "run"), "--steps", "1", "--quiet"], capsys)
    assert_user_error(code, err, "--pairs", "32 px", "64 px")
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_train_on_video_and_toy_pairs_lowers_the_loss(real_pairs, tmp_path, capsys):
    """`train --pairs` on real pairs mixed with toy shards, 50 steps of the tiny preset: the mean loss of
    the last 10 steps is <= 0.9x the first 10's."""
    toy = tmp_path / "toy"
    code, _, err = run_cli_inprocess(["insertion", "pairs", "--out", str(toy), "--n", "48", "--size", "32",
                                      "--quiet"], capsys)
    assert code == 0, err
    run = tmp_path / "run"
    code, out, err = run_cli_inprocess(["insertion", "train", "--preset", "tiny", "--steps", "50", "--pairs",
                                        str(real_pairs), "--pairs", str(toy), "--out", str(run), "--quiet"], capsys)
    assert code == 0, err
    history = json.loads((run / "history.json").read_text())
    assert [h["step"] for h in history] == [10, 20, 30, 40, 50]  # each record: the mean of its 10 steps
    first, last = history[0]["loss"], history[-1]["loss"]
    print(f"train --pairs: mean loss steps 1-10 {first:.4f}, 41-50 {last:.4f} (ratio {last / first:.3f})")
    assert last <= 0.9 * first
    assert (run / "model.safetensors").is_file()
