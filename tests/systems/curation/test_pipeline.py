"""Fast end to end: the CLI on small synthetic videos plus bad files -> clips, table, report, resume."""

from __future__ import annotations

import json
import shutil

import av
import pyarrow.parquet as pq
import pytest

from genlab.errors import GenlabError
from genlab.systems.video.curation import synthetic
from genlab.systems.video.curation.config import Threshold, tiny
from genlab.systems.video.curation.pipeline import apply_filters, resolve_thresholds, run, video_id_for
from tests.helpers import assert_user_error, run_cli_inprocess, run_genlab


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, small_cuts, bad_videos):
    folder = tmp_path_factory.mktemp("inputs")
    shutil.copy(small_cuts[0], folder / "cuts.mp4")
    synthetic.motion_video(folder / "static.mp4", 0.0, seed=5, seconds=2.5)
    synthetic.motion_video(folder / "moving.mp4", 2.0, seed=6, seconds=2.5)
    for f in bad_videos.iterdir():
        shutil.copy(f, folder / f.name)
    return folder, small_cuts[1]


def test_curate_end_to_end_and_resume(inputs, tmp_path):
    folder, truth = inputs
    out = tmp_path / "out"
    result = run_genlab("video", "curate", str(folder), "--out", str(out), "--preset", "tiny",
                        "--workers", "2", "--min", "motion_score=5.0", "--quiet")
    assert result.returncode == 0, result.stderr
    table = pq.read_table(out / "clips.parquet").to_pylist()
    assert [r["clip_id"] for r in table] == sorted(r["clip_id"] for r in table)
    by_status = {}
    for r in table:
        by_status.setdefault(r["status"], []).append(r)
    # the four bad inputs are recorded with their reasons, the run went on
    failed = {r["video_path"].rsplit("/", 1)[-1]: r["error"] for r in by_status["failed"]}
    assert set(failed) == {"zero.mp4", "notvideo.mp4", "truncated.mp4", "truncated_faststart.mp4", "noframes.avi"}, failed
    assert "empty file" in failed["zero.mp4"] and "no decodable frames" in failed["noframes.avi"]
    clips = by_status["ok"]
    cut_clips = [r for r in clips if r["video_path"].endswith("cuts.mp4")]
    assert len(cut_clips) == len(truth.hard_cuts) + len(truth.fades) + 1
    for r in cut_clips:  # every clip file holds exactly its frames
        with av.open(str(out / r["clip_path"])) as c:
            assert sum(1 for _ in c.decode(video=0)) == r["end_frame"] - r["start_frame"]
    assert any(r["clip_method"] == "copy" for r in cut_clips)
    assert all(r["num_scenes"] == len(cut_clips) and r["scene_s_dropped"] >= 0 for r in cut_clips)
    static = next(r for r in clips if r["video_path"].endswith("static.mp4"))
    moving = next(r for r in clips if r["video_path"].endswith("moving.mp4"))
    assert static["motion_score"] < 1.0 and not static["keep"] and static["removed_by"] == "motion_score"
    assert moving["motion_score"] == pytest.approx(60.0, rel=0.15) and moving["keep"]
    report = json.loads((out / "report.json").read_text())
    assert report["filters"][0]["removed"] >= 1 and len(report["videos_failed"]) == 5
    assert report["scenes"] == report["clips"] + report["scenes_dropped"] and report["seconds_of_video"] > 15
    assert (out / "histograms" / "motion_score.png").stat().st_size > 1000
    assert "| motion_score |" in (out / "report.md").read_text()

    # resume: nothing is redone (records untouched), new thresholds only re-filter
    mtimes = {p.name: p.stat().st_mtime_ns for p in (out / "records").iterdir()}
    again = run_genlab("video", "curate", str(folder), "--out", str(out), "--preset", "tiny",
                       "--max-pct", "motion_score=50", "--quiet")
    assert again.returncode == 0, again.stderr
    assert "processed 0, resumed 8" in again.stdout
    assert mtimes == {p.name: p.stat().st_mtime_ns for p in (out / "records").iterdir()}


def test_interrupted_run_redoes_only_unfinished(inputs, tmp_path):
    folder, _ = inputs
    out = tmp_path / "out"
    videos = [folder / "static.mp4", folder / "moving.mp4"]
    first = run([videos[0]], tiny(), out, progress=False)
    assert (first["processed"], first["resumed"]) == (1, 0)
    record = out / "records" / f"{video_id_for(videos[0])}.json"
    stamp = record.stat().st_mtime_ns
    (out / "records" / f"{video_id_for(videos[1])}.json").write_text("{half-written")  # a damaged record
    second = run(videos, tiny(), out, progress=False)
    assert (second["processed"], second["resumed"]) == (1, 1)
    assert record.stat().st_mtime_ns == stamp
    assert second["clips"] == 2
    # other processing settings would mix two kinds of rows in one table: refused
    from dataclasses import replace

    with pytest.raises(GenlabError, match="processed with other settings"):
        run(videos, replace(tiny(), motion=replace(tiny().motion, max_side=160)), out, progress=False)


def test_percentile_and_absolute_filters():
    rows = [{"clip_id": str(i), "status": "ok", "motion_score": float(i), "text_ratio": 0.01 * i} for i in range(11)]
    rows.append({"clip_id": "x", "status": "failed", "motion_score": None, "text_ratio": None})
    resolved = resolve_thresholds(rows, (Threshold("motion_score", min_pct=20), Threshold("text_ratio", max=0.08)))
    assert resolved[0]["lower"] == pytest.approx(2.0) and resolved[1]["upper"] == 0.08
    apply_filters(rows, resolved)
    kept = [r["clip_id"] for r in rows if r["keep"]]
    assert kept == ["2", "3", "4", "5", "6", "7", "8"]
    assert rows[0]["removed_by"] == "motion_score" and rows[10]["removed_by"] == "text_ratio"
    assert rows[-1]["removed_by"] == "failed"
    with pytest.raises(GenlabError, match="no clip has this score"):
        resolve_thresholds(rows, (Threshold("aesthetic_score", min=5),))


def test_cli_bad_arguments_are_one_line_errors(tmp_path):
    result = run_genlab("video", "curate", str(tmp_path / "missing.mp4"), "--out", str(tmp_path / "o"))
    assert result.returncode == 2 and "no such file or folder" in result.stderr


def test_curate_on_a_non_video_reports_the_decode_failure(tmp_path, capsys):
    bad = tmp_path / "notes.mp4"
    bad.write_text("not a video\n" * 10)
    code, _, err = run_cli_inprocess(["video", "curate", str(bad), "--out", str(tmp_path / "o"), "--quiet"], capsys)
    assert_user_error(code, err, "notes.mp4", "not a readable video")
    assert not (tmp_path / "o").exists()  # nothing left behind


def test_max_clip_s_must_exceed_the_shortest_clip(tmp_path, capsys):
    code, _, err = run_cli_inprocess(["video", "curate", str(tmp_path), "--out", str(tmp_path / "o"),
                                      "--max-clip-s", "0.5"], capsys)
    assert_user_error(code, err, "--max-clip-s")


def test_unreachable_ray_address_is_one_line(tmp_path, capsys):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    synthetic.motion_video(tmp_path / "a.mp4", 1.0, seed=1, seconds=1.0, size=(64, 36))
    code, _, err = run_cli_inprocess(["video", "curate", str(tmp_path / "a.mp4"), "--out", str(tmp_path / "o"),
                                      "--ray-address", f"127.0.0.1:{port}", "--quiet"], capsys)
    assert_user_error(code, err, "--ray-address", "no Ray cluster reachable")


def test_ray_refilter_of_a_finished_folder_starts_no_ray(tmp_path, capsys, monkeypatch):
    """Nothing left to process: `--ray` only re-filters (the records are read here, no Ray start)."""
    from genlab.systems.video.curation import ray_pipeline

    synthetic.motion_video(tmp_path / "in" / "m.mp4", 2.0, seed=3, seconds=2.5, size=(96, 64))
    argv = ["video", "curate", str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--preset", "tiny",
            "--no-text", "--quiet"]
    code, _, err = run_cli_inprocess(argv, capsys)
    assert code == 0, err
    monkeypatch.setattr(ray_pipeline, "run_ray", lambda *a, **k: pytest.fail("Ray started for a re-filter"))
    code, out, err = run_cli_inprocess([*argv, "--ray", "--min", "motion_score=1e6"], capsys)
    assert code == 0, err
    assert "processed 0, resumed 1" in out and "kept 0" in out, out
    assert not any(pq.read_table(tmp_path / "out" / "clips.parquet").column("keep").to_pylist())
