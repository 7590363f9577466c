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
