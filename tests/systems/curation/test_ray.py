"""The Ray Data path gives the same Parquet table as the process pool (slow: Ray starts slowly)."""

from __future__ import annotations

import shutil

import pyarrow.parquet as pq
import pytest

from genlab.systems.video.curation import synthetic
from tests.helpers import run_genlab

pytestmark = pytest.mark.slow


def test_ray_table_equals_pool_table(tmp_path, small_cuts, bad_videos):
    inputs = tmp_path / "in"
    inputs.mkdir()
    shutil.copy(small_cuts[0], inputs / "cuts.mp4")
    synthetic.motion_video(inputs / "moving.mp4", 1.5, seed=8, seconds=2.5)
    shutil.copy(bad_videos / "truncated.mp4", inputs / "truncated.mp4")
    common = ["--preset", "tiny", "--workers", "2", "--quiet", "--min-pct", "motion_score=25"]
    pool = run_genlab("video", "curate", str(inputs), "--out", str(tmp_path / "pool"), *common)
    assert pool.returncode == 0, pool.stderr
    ray = run_genlab("video", "curate", str(inputs), "--out", str(tmp_path / "ray"), "--ray", *common)
    assert ray.returncode == 0, ray.stderr
    a = pq.read_table(tmp_path / "pool" / "clips.parquet")
    b = pq.read_table(tmp_path / "ray" / "clips.parquet")
    assert a.num_rows == len(small_cuts[1].hard_cuts) + len(small_cuts[1].fades) + 1 + 1 + 1
    assert a.column("clip_id").to_pylist() == sorted(a.column("clip_id").to_pylist())
    assert a.equals(b), (a.to_pandas().compare(b.to_pandas()))
    for name in ("cuts", "moving"):
        assert any(p.name.startswith(name) for p in (tmp_path / "ray" / "clips").iterdir())


def test_ray_equals_pool_on_shared_videos_and_a_corpus(tmp_path, shared_data):
    """Default preset (OCR included), real videos and a seeded synthetic corpus; `--ray` alone
    takes every local core; Ray writes the table itself."""
    import os

    inputs = tmp_path / "in"
    synthetic.corpus(inputs / "corpus", videos=4, seed=2000)
    for name in ("opencv_vtest_480x360.avi", "sports2d_demo.mp4"):
        shutil.copy(shared_data / "video" / name, inputs / name)
    pool = run_genlab("video", "curate", str(inputs), "--out", str(tmp_path / "pool"), "--workers", "2", "--quiet")
    assert pool.returncode == 0, pool.stderr
    ray = run_genlab("video", "curate", str(inputs), "--out", str(tmp_path / "ray"), "--ray", "--quiet")
    assert ray.returncode == 0, ray.stderr
    assert f"Ray: {os.cpu_count()} CPUs" in ray.stdout, ray.stdout
    a = pq.read_table(tmp_path / "pool" / "clips.parquet")
    b = pq.read_table(tmp_path / "ray" / "clips.parquet")
    assert a.num_rows > 10 and len(set(a.column("video_id").to_pylist())) == 6
    assert a.equals(b), (a.to_pandas().compare(b.to_pandas()))
    assert not list((tmp_path / "ray").glob(".*.tmp"))  # the table was written atomically


def test_ray_run_interrupted_part_way_resumes_without_redoing(tmp_path):
    """Ctrl-C a `--ray` run once some clips are scored; the rerun redoes none of them."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from tests.helpers import ROOT

    inputs = tmp_path / "in"
    for i in range(6):
        synthetic.motion_video(inputs / f"m{i}.mp4", 1.0 + i, seed=60 + i, seconds=6.0, size=(160, 90))
    out = tmp_path / "out"
    args = [sys.executable, "-m", "genlab", "video", "curate", str(inputs), "--out", str(out), "--ray",
            "--workers", "1", "--preset", "tiny", "--no-text", "--quiet"]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    records = out / "records"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and len(list(records.glob("m*/m*_0000.json"))) < 2 and proc.poll() is None:
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=120)
    finished = {p: p.stat().st_mtime_ns for p in records.glob("m*/m*_0000.json")}  # scored clips
    assert 2 <= len(finished) < 6, finished
    again = run_genlab("video", "curate", str(inputs), "--out", str(out), "--ray", "--workers", "2",
                       "--preset", "tiny", "--no-text", "--quiet")
    assert again.returncode == 0, again.stderr
    assert all(p.stat().st_mtime_ns == t for p, t in finished.items())
    assert len(list(records.glob("m*/m*_0000.json"))) == 6
    assert pq.read_table(out / "clips.parquet").num_rows == 6


def test_ray_resumes_per_clip(tmp_path, small_cuts):
    """A video whose Ray run stopped between clips: finished clips and clip files are not redone."""
    import json

    from genlab.systems.video.curation.pipeline import video_id_for

    inputs = tmp_path / "in"
    inputs.mkdir()
    shutil.copy(small_cuts[0], inputs / "cuts.mp4")
    synthetic.motion_video(inputs / "moving.mp4", 1.5, seed=9, seconds=2.5, size=(160, 90))
    common = ["--preset", "tiny", "--workers", "2", "--quiet", "--no-filters"]
    out = tmp_path / "out"
    first = run_genlab("video", "curate", str(inputs), "--out", str(out), "--ray", *common)
    assert first.returncode == 0, first.stderr
    table = pq.read_table(out / "clips.parquet")
    # as if killed while scoring: the video is unfinished and two of its clips were not scored yet
    vid = video_id_for(inputs / "cuts.mp4")
    folder = out / "records" / vid
    (out / "records" / f"{vid}.json").unlink()
    plan = json.loads((folder / "_plan.json").read_text())["clips"]
    assert len(plan) == len(small_cuts[1].hard_cuts) + len(small_cuts[1].fades) + 1
    for clip in plan[2:4]:
        (folder / f"{clip['clip_id']}.json").unlink()
    kept = {p: p.stat().st_mtime_ns for p in [*folder.glob("*.json"), *(out / "clips" / vid).iterdir()]}
    again = run_genlab("video", "curate", str(inputs), "--out", str(out), "--ray", *common)
    assert again.returncode == 0, again.stderr
    assert "processed 1, resumed 1" in again.stdout, again.stdout
    assert all(p.stat().st_mtime_ns == t for p, t in kept.items())  # plan, clip files, finished clips
    assert all((folder / f"{clip['clip_id']}.json").is_file() for clip in plan)
    assert pq.read_table(out / "clips.parquet").equals(table)
    # killed after its last clip, before the video's record: the record is made, nothing scored again
    (out / "records" / f"{vid}.json").unlink()
    kept = {p: p.stat().st_mtime_ns for p in folder.glob("*.json")}
    last = run_genlab("video", "curate", str(inputs), "--out", str(out), "--ray", *common)
    assert last.returncode == 0, last.stderr
    assert all(p.stat().st_mtime_ns == t for p, t in kept.items())
    assert (out / "records" / f"{vid}.json").is_file()
    assert pq.read_table(out / "clips.parquet").equals(table)


def test_ray_resumes_a_pool_folder(tmp_path, small_cuts):
    """A folder the pool left unfinished is finished by `--ray`: the pool's videos are not redone."""
    from genlab.systems.video.curation.pipeline import video_id_for

    inputs = tmp_path / "in"
    inputs.mkdir()
    shutil.copy(small_cuts[0], inputs / "cuts.mp4")
    synthetic.motion_video(inputs / "moving.mp4", 1.5, seed=9, seconds=2.5, size=(160, 90))
    common = ["--preset", "tiny", "--quiet", "--no-text"]
    out = tmp_path / "out"
    first = run_genlab("video", "curate", str(inputs), "--out", str(out), *common)
    assert first.returncode == 0, first.stderr
    table = pq.read_table(out / "clips.parquet")
    (out / "records" / f"{video_id_for(inputs / 'moving.mp4')}.json").unlink()  # as if killed before it
    kept = out / "records" / f"{video_id_for(inputs / 'cuts.mp4')}.json"
    stamp = kept.stat().st_mtime_ns
    again = run_genlab("video", "curate", str(inputs), "--out", str(out), "--ray", "--workers", "2", *common)
    assert again.returncode == 0, again.stderr
    assert "processed 1, resumed 1" in again.stdout, again.stdout
    assert kept.stat().st_mtime_ns == stamp
    assert pq.read_table(out / "clips.parquet").equals(table)

