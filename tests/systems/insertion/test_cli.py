"""`genlab insertion ...`: commands registered, bad input is one clear line and nothing is written."""

from __future__ import annotations

import pytest


def test_commands_are_registered(genlab_cli):
    r = genlab_cli("insertion", "--help")
    assert r.returncode == 0, r.stderr
    for cmd in ("insert", "demo", "train", "sample", "eval", "pairs"):
        assert cmd in r.stdout


def test_missing_run_is_one_clear_error(genlab_cli, tmp_path):
    r = genlab_cli("insertion", "sample", "--run", str(tmp_path / "none"), "--out", str(tmp_path / "x.png"))
    assert r.returncode == 2
    assert r.stderr.strip().startswith("genlab: error:") and "no trained model" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x.png").exists()


def test_pairs_command_writes_resumable_shards(genlab_cli, tmp_path):
    r = genlab_cli("insertion", "pairs", "--out", str(tmp_path), "--n", "5", "--shard-size", "4", "--size", "32")
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in tmp_path.glob("shard-*.npz")) == ["shard-00000.npz", "shard-00001.npz"]


@pytest.mark.slow
def test_train_sample_eval_through_the_cli(genlab_cli, tmp_path):
    """Three CLI processes (train, sample, eval with reader training): 80-260 s on the loaded machine."""
    import json

    env = {"GENLAB_CACHE": str(tmp_path / "cache")}
    run = tmp_path / "run"
    r = genlab_cli("insertion", "train", "--preset", "tiny", "--steps", "2", "--pool", "16", "--out", str(run),
                   env=env)
    assert r.returncode == 0, r.stderr
    png = tmp_path / "grid.png"
    r = genlab_cli("insertion", "sample", "--run", str(run), "--out", str(png), "--n", "2", "--steps-sample", "2",
                   "--mode", "partial", env=env)
    assert r.returncode == 0, r.stderr
    assert png.stat().st_size > 0
    r = genlab_cli("insertion", "eval", "--run", str(run), "--pairs", "4", "--steps-sample", "2", "--reader-steps", "2",
                   "--out", str(tmp_path / "report.json"), env=env)
    assert r.returncode == 0, r.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    for key in ("ground_truth", "paste", "insertion", "scene_hallucination", "person_hallucination"):
        assert 0.0 <= report[key]["affordance"] <= 1.0


@pytest.mark.parametrize("command", ["insert", "demo", "train", "sample", "eval", "pairs"])
def test_long_commands_take_quiet(command, capsys):
    from tests.helpers import run_cli_inprocess

    code, out, _ = run_cli_inprocess(["insertion", command, "--help"], capsys)
    assert code == 0 and "--quiet" in out and "--no-progress" not in out
