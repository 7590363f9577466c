"""`genlab insertion ...`: commands registered, bad input is one clear line and nothing is written."""

from __future__ import annotations


def test_commands_are_registered(genlab_cli):
    r = genlab_cli("insertion", "--help")
    assert r.returncode == 0, r.stderr
    for cmd in ("demo", "train", "sample", "eval", "pairs"):
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
