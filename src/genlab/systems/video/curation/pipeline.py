"""The curation pipeline: per video probe -> cuts -> scenes -> clips -> clip scores; then one table,
filters, a report and histograms.

Output folder:
  records/<video_id>.json   rows of one finished video (the resume marker; written atomically)
  clips/<video_id>/<clip_id>.mp4|.mkv
  clips.parquet             every row (clips, failed videos), sorted by clip_id, with keep/removed_by
  report.json, report.md    what each stage and filter removed
  histograms/<score>.png    one per score, with the thresholds drawn

`process_video` never raises for a bad video: it returns one row with status "failed" and the
reason. It runs inline or in a process pool; the Ray Data pipeline (`ray_pipeline.py`) runs its two
halves (`plan_video`, `score_clips`) in its tasks and writes the same table.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from genlab.core.data.video import VideoReadError, VideoSource, iter_frames, keyframe_times_from_pts
from genlab.core.io import atomic_write_text
from genlab.core.procs import exit_with_parent
from genlab.errors import GenlabError
from genlab.systems.video.curation import stages as st
from genlab.systems.video.curation.captioning import CaptionerStage, SummaryStage
from genlab.systems.video.curation.clipping import (
    clip_suffix,
    copyable_container,
    editlist_possible,
    keyframe_times_by_index,
    plan_clip,
    scenes_from_cuts,
    write_clip,
)
from genlab.systems.video.curation.config import CurationConfig, Threshold

VIDEO_EXTENSIONS = {".mp4", ".mkv", ".avi", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".ts", ".flv", ".wmv"}

# every row has every column, so the pool and the Ray path give identical tables
COLUMNS = [
    "clip_id", "video_id", "video_path", "status", "error", "clip_index", "clip_path", "clip_method",
    "start_frame", "end_frame", "start_s", "end_s", "duration_s", "start_by", "end_by",
    "video_duration_s", "fps", "width", "height", "codec", "bit_rate", "container", "size_bytes",
    "num_frames", "num_cuts", "num_scenes", "scene_s_dropped", "motion_score", "camera_motion", "text_ratio",
    "text_ratio_max", "key_hash", "dup_of",
    "clip_embedding", "aesthetic_score", "caption", "summary", "clip_score",
]
SCORES = ["duration_s", "motion_score", "text_ratio", "aesthetic_score", "clip_score"]


def columns(config: CurationConfig) -> list[str]:
    """The table's columns: COLUMNS with one `caption_<name>` per extra captioner after `caption`."""
    i = COLUMNS.index("caption") + 1
    return [*COLUMNS[:i], *(f"caption_{c.name}" for c in config.embeddings.captioners), *COLUMNS[i:]]


def video_id_for(path: str | os.PathLike) -> str:
    """Stable id: file stem + 8 hex of the absolute path (two `a.mp4` in different folders differ)."""
    p = Path(path).resolve()
    stem = "".join(c if c.isalnum() or c in "-_" else "_" for c in p.stem)[:48] or "video"
    return f"{stem}-{hashlib.sha1(str(p).encode()).hexdigest()[:8]}"


def find_videos(inputs: list[str | os.PathLike]) -> list[Path]:
    """Files as given; folders searched recursively for video extensions. Sorted, unique."""
    out: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            out += [f for f in sorted(p.rglob("*")) if f.is_file() and f.suffix.lower() in VIDEO_EXTENSIONS]
        elif p.exists():
            out.append(p)
        else:
            raise GenlabError(f"input {item}: no such file or folder")
    seen, unique = set(), []
    for f in out:
        key = str(f.resolve())
        if key not in seen:
            seen.add(key)
            unique.append(f)
    return unique


def _empty_row(video_id: str, path: str) -> dict[str, Any]:
    row = dict.fromkeys(COLUMNS)
    row.update(clip_id=video_id, video_id=video_id, video_path=str(path), clip_index=-1)
    return row


def clip_stages(config: CurationConfig) -> list:
    """The clip stages this config enables, in order (later stages may read earlier fields)."""
    stages: list = [st.MotionStage(config.motion), st.KeyHashStage()]
    if config.text.enabled:
        stages.append(st.TextStage(config.text))
    emb = config.embeddings
    if emb.clip_path:
        stages.append(st.ClipEmbeddingStage(emb))
        if emb.aesthetic_path:
            stages.append(st.AestheticStage(emb))
    if emb.caption_path:
        stages.append(st.CaptionStage(emb))
    stages += [CaptionerStage(c, emb.caption_max_tokens) for c in emb.captioners]
    if emb.summariser_path:
        stages.append(SummaryStage(emb.summariser_path, emb.summary_max_tokens))
    if emb.clip_path and (emb.caption_path or emb.summariser_path):
        stages.append(st.ClipScoreStage(emb))
    return stages


CPU_STAGES = ("motion", "key_hash", "text")  # the rest load models (CLIP, aesthetic head, captioner)

_STAGES_CACHE: dict = {}


def clip_stages_cached(config: CurationConfig) -> list:
    key = repr(config)
    if key not in _STAGES_CACHE:
        _STAGES_CACHE[key] = clip_stages(config)
    return _STAGES_CACHE[key]


def sample_clip_frames(path, clips: list[dict], config: CurationConfig, threads: int) -> list[st.ClipFrames]:
    """One decoding pass: every clip's 2 fps samples and the frame after each (only those frames are
    converted to arrays). Clips are sorted by start and do not overlap."""
    rate = config.motion.sample_fps
    targets: list[list[float]] = []
    for c in clips:
        n = max(1, int(math.floor((c["end_s"] - c["start_s"]) * rate + 1e-6)))
        targets.append([c["start_s"] + k / rate for k in range(n)])
    out = [st.ClipFrames([], rate, c["start_s"], c["end_s"], following=[]) for c in clips]
    state = {"clip": 0, "next": 0, "want_following": False}
    eps = 1e-6

    def clip_at(time):
        j = state["clip"]
        while j < len(clips) and time >= clips[j]["end_s"] - eps:
            j += 1
        state["clip"] = j
        if j < len(clips) and time >= clips[j]["start_s"] - eps:
            return j
        return None

    def want(index, time):
        j = clip_at(time)
        if j is None:
            return False
        if state["want_following"]:
            return True
        k = len(out[j].samples)
        return k < len(targets[j]) and time >= targets[j][k] - eps

    for frame in iter_frames(path, max_side=config.sample_max_side, want=want, threads=threads):
        j = clip_at(frame.time)
        if state["want_following"]:
            state["want_following"] = False
            prev = state["next"]
            if j == prev and frame.image is not None:
                out[prev].following[-1] = frame
        if j is None or frame.image is None:
            if state["clip"] >= len(clips):
                break
            continue
        k = len(out[j].samples)
        if k < len(targets[j]) and frame.time >= targets[j][k] - eps:
            out[j].samples.append(frame)
            out[j].following.append(None)
            while len(out[j].samples) < len(targets[j]) and targets[j][len(out[j].samples)] <= frame.time + eps:
                targets[j].pop(len(out[j].samples))  # a gap in the stream: skip targets already passed
            state["want_following"], state["next"] = True, j
    return out


def grid_clip_frames(path, clips: list[dict], config: CurationConfig) -> list[st.ClipFrames]:
    """The samples the single-pass grid of the cut pass gave these clips (a resumed clip planned
    with one): the same grid and conversions over a pass that stops after the last clip."""
    grid = st.SampleGrid(config.motion.sample_fps, config.sample_max_side)
    last = max(c["end_frame"] for c in clips)
    for frame in iter_frames(path, want=lambda index, time: False, extra_max_side=grid.max_side,
                             want_extra=grid.want, threads=config.decode_threads):
        if frame.extra is not None:
            grid.add(frame)
        if frame.index >= last:
            break
    return [grid.clip_frames(c["start_frame"], c["end_frame"], c["start_s"], c["end_s"]) for c in clips]


def _grid_for(record: dict, config: CurationConfig) -> st.SampleGrid | None:
    """A SampleGrid when the video's 2 fps samples (+ following frames) fit in `single_pass_mb`."""
    from genlab.core.data.video import scaled_size

    if config.single_pass_mb <= 0:
        return None
    w, h = scaled_size(record["width"], record["height"], config.sample_max_side)
    duration = record["video_duration_s"] or 0.0
    if duration <= 0:
        return None
    megabytes = duration * config.motion.sample_fps * 2 * w * h * 3 / 1e6
    return st.SampleGrid(config.motion.sample_fps, config.sample_max_side) if megabytes <= config.single_pass_mb else None


def _timer(timings: dict[str, float]):
    """`timed(name, fn, *args)`: wall seconds in timings[name], CPU seconds (with children) in "cpu:" + name."""
    clock = time.perf_counter

    def timed(name, fn, *args):
        t, c = clock(), _cpu_seconds()
        try:
            return fn(*args)
        finally:
            timings[name] = timings.get(name, 0.0) + clock() - t
            timings["cpu:" + name] = timings.get("cpu:" + name, 0.0) + _cpu_seconds() - c

    return timed


def plan_video(path: str | os.PathLike, config: CurationConfig, out_dir: str | os.PathLike,
               timings: dict[str, float] | None = None) -> tuple[list[dict], list | None]:
    """Probe, cuts, scenes and clip files of one video: its clip rows before the clip stages, and
    their 2 fps samples when the cut pass kept them (else None: `score_clips` samples them). A
    failed or clip-less video gives its one final row and no frames. Never raises for bad input."""
    out_dir = Path(out_dir)
    timed = _timer({} if timings is None else timings)
    vid = video_id_for(path)
    record = _empty_row(vid, str(path))
    record["path"] = str(path)
    source = VideoSource(path)  # one open input for the probe, the cut pass and every stream copy
    try:
        record.update(timed("probe", st.ProbeStage(source), record))
        grid = _grid_for(record, config)
        record.update(timed("cuts", st.CutStage(config.cuts, threads=config.decode_threads, grid=grid, source=source),
                            record))
        frame_times = record.pop("_frame_times")
        frame_pts = record.pop("_frame_pts")
        fps = record["fps"] or (len(frame_times) / record["video_duration_s"] if record["video_duration_s"] else 25.0)
        frame_dt = 1.0 / fps
        cut_facts = {"detectors": record.pop("_detectors"), "dark": record.pop("_dark"),
                     "max_clip_s": config.clips.max_clip_s, "scores": record.pop("_scores"),
                     "transitions": record.pop("_dissolves")}
        all_scenes = scenes_from_cuts(record["cuts"], frame_times, fps, 0.0, **cut_facts)
        scenes = scenes_from_cuts(record["cuts"], frame_times, fps, config.clips.min_clip_s, **cut_facts)
        record["num_scenes"] = len(all_scenes)
        # time in scenes too short to be clips, dark frames (fades), plus the starts a stream copy
        # skipped (added below)
        dark_s = sum(float(frame_times[min(b, len(frame_times)) - 1] - frame_times[a]) + frame_dt
                     for a, b in cut_facts["dark"])
        record["scene_s_dropped"] = float(sum(sc.end_s - sc.start_s for sc in all_scenes)
                                          - sum(sc.end_s - sc.start_s for sc in scenes) + dark_s)
        stream = record.pop("_stream_info")
        copy_ok = copyable_container(record["container"])
        # keyframes and the stream start were noted during the cut pass (no second demuxing pass)
        if copy_ok:
            keyframes = keyframe_times_from_pts(stream["keyframe_pts"], stream["start_pts"], stream["time_base"])
        else:  # AVI: frames are matched to packets through the decoder's pts of the cut pass
            keyframes = keyframe_times_by_index(stream["keyframe_pts"], frame_pts, frame_times)
        start_offset = stream["start_offset_s"]
        editlist_ok = config.clips.write_clips and editlist_possible(record["codec"], record["container"])
        clips = []
        for i, scene in enumerate(scenes):
            plan = plan_clip(scene, keyframes, config.clips, frame_dt, editlist_ok=editlist_ok)
            if plan.method == "skip":
                record["scene_s_dropped"] += scene.end_s - scene.start_s
                continue
            record["scene_s_dropped"] += plan.start_s - scene.start_s
            row = {k: record.get(k) for k in COLUMNS}
            start_frame = int(np.searchsorted(frame_times, plan.start_s - 0.25 * frame_dt))
            row.update(
                clip_id=f"{vid}_{i:04d}", clip_index=i, status="ok", clip_method=plan.method,
                start_by=scene.start_by, end_by=scene.end_by,
                start_frame=start_frame, end_frame=scene.end_frame, start_s=float(plan.start_s),
                end_s=float(plan.end_s), duration_s=float(plan.end_s - plan.start_s),
            )
            if config.clips.write_clips:
                rel = Path("clips") / vid / f"{row['clip_id']}{clip_suffix(record['codec'], plan.method)}"
                method = timed("clip", write_clip, path, out_dir / rel, plan, config.clips, frame_dt,
                               start_offset, (start_frame, scene.end_frame), copy_ok, frame_pts, source,
                               config.decode_threads)
                if method != plan.method:  # the packets did not allow a copy: re-encoded from the scene start
                    rel = rel.with_suffix(".mp4")
                    row.update(clip_method=method)
                row["clip_path"] = str(rel)
            clips.append(row)
        for row in clips:
            row.update(num_scenes=record["num_scenes"], scene_s_dropped=record["scene_s_dropped"])
        if not clips:
            row = {k: record.get(k) for k in COLUMNS}
            row.update(status="no_clips", error=f"no scene of at least {config.clips.min_clip_s} s")
            return [{k: plain(row.get(k)) for k in COLUMNS}], None
        frames = None
        if grid is not None:
            frames = [grid.clip_frames(c["start_frame"], c["end_frame"], c["start_s"], c["end_s"]) for c in clips]
        return clips, frames
    except VideoReadError as err:
        return [{**_empty_row(vid, str(path)), "status": "failed", "error": err.reason}], None
    except Exception as err:  # noqa: BLE001 - any failure of one video is recorded, the run goes on
        return [{**_empty_row(vid, str(path)), "status": "failed", "error": f"{type(err).__name__}: {err}"}], None
    finally:
        source.close()


def score_clips(path, clips: list[dict], frames: list | None, config: CurationConfig,
                timings: dict[str, float] | None = None, stages: list | None = None) -> list[dict]:
    """The clip stages (`stages`, default: all this config enables) on planned clip rows (`frames`:
    their samples, or None to sample them in one decoding pass); returns the finished rows. A
    failure is the video's one failed row."""
    timed = _timer({} if timings is None else timings)
    try:
        stages = clip_stages_cached(config) if stages is None else stages
        if frames is None:
            frames = timed("sample", sample_clip_frames, path, clips, config, config.decode_threads)
        for row, clip_frames in zip(clips, frames):
            for stage in stages:
                row.update(timed(stage.name, stage, row, clip_frames))
        return [{k: plain(r.get(k)) for k in columns(config)} for r in clips]
    except VideoReadError as err:
        return [{**_empty_row(video_id_for(path), str(path)), "status": "failed", "error": err.reason}]
    except Exception as err:  # noqa: BLE001
        return [{**_empty_row(video_id_for(path), str(path)), "status": "failed", "error": f"{type(err).__name__}: {err}"}]


def process_video(path: str | os.PathLike, config: CurationConfig, out_dir: str | os.PathLike,
                  timings: dict[str, float] | None = None) -> list[dict]:
    """Curate one video; returns its rows (and writes records/<video_id>.json). Never raises for bad input.

    `timings`, when given, receives the wall seconds of each stage and, under "cpu:<stage>", its CPU
    seconds including child processes (for the benchmark: CPU time is robust to a loaded machine)."""
    timings = {} if timings is None else timings
    clips, frames = plan_video(path, config, out_dir, timings)
    rows = clips if clips[0]["status"] != "ok" else score_clips(path, clips, frames, config, timings)
    rows = [{k: plain(r.get(k)) for k in columns(config)} for r in rows]
    atomic_write_text(record_path(out_dir, path), json.dumps(rows))
    return rows


def _cpu_seconds() -> float:
    """CPU seconds of this process and its finished children (ffmpeg re-encodes)."""
    import resource

    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def plain(v):
    """JSON/Parquet-friendly scalars (no numpy types, NaN -> None)."""
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    return v


def record_path(out_dir: Path, path: str | os.PathLike) -> Path:
    """A finished video's rows: the resume marker of the pool and of Ray."""
    return Path(out_dir) / "records" / f"{video_id_for(path)}.json"


def load_record(out_dir: Path, path: str | os.PathLike) -> list[dict] | None:
    f = record_path(out_dir, path)
    if not f.is_file():
        return None
    try:
        return json.loads(f.read_text())
    except json.JSONDecodeError:
        return None  # a damaged record is redone


def _check_processing_config(config: CurationConfig, out_dir: Path) -> None:
    """Resume only into a folder made with the same processing settings (filters may change freely)."""
    from dataclasses import replace

    fingerprint = repr(replace(config, filters=(), workers=1))
    marker = out_dir / "records" / "_config.txt"
    if marker.is_file():
        if marker.read_text() != fingerprint:
            raise GenlabError(
                f"{out_dir}: its finished videos were processed with other settings (stages, cuts, clips); "
                "filters and --workers may change on resume, anything else needs a new --out")
    else:
        atomic_write_text(marker, fingerprint)


def init_worker(watch_parent: bool = True):
    """A worker process (pool, Ray worker): one thread everywhere, like decode-only."""
    if watch_parent:
        exit_with_parent()  # a killed run must not leave workers writing clips beside its restart
    os.environ["OMP_NUM_THREADS"] = "1"
    import cv2

    cv2.setNumThreads(1)


def run(inputs: list, config: CurationConfig, out_dir: str | os.PathLike, *, use_ray: bool = False,
        progress: bool = True, ray_address: str | None = None, ray_workers: int | None = None,
        ray_gpus: float = 0.0) -> dict:
    """Curate `inputs` (files or folders) into `out_dir`; finished videos are never redone. When
    every video fails, that failure is the error and an `out_dir` this run created is removed."""
    out_dir = Path(out_dir)
    videos = find_videos(inputs)
    if not videos:
        raise GenlabError(f"no video files found in {[str(i) for i in inputs]}")
    created = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    _check_processing_config(config, out_dir)
    t0 = time.perf_counter()
    todo = [v for v in videos if not record_path(out_dir, v).is_file()]
    # with Ray, the driver never holds whole rows: Ray reads the records itself (a re-filter, with
    # nothing left to process, reads them here and starts no Ray)
    if (use_ray or ray_address) and todo:
        from genlab.systems.video.curation.ray_pipeline import run_ray

        summary = run_ray(videos, config, out_dir, progress, created=created, address=ray_address,
                          workers=ray_workers, gpus=ray_gpus)
    else:
        done = {str(v): load_record(out_dir, v) for v in videos}
        todo = [v for v in videos if done[str(v)] is None]
        done.update(_run_pool(todo, config, out_dir, progress))
        summary = conclude([r for v in videos for r in done[str(v)]], config, out_dir, created)
    summary.update(videos=len(videos), processed=len(todo), resumed=len(videos) - len(todo),
                   wall_s=time.perf_counter() - t0)
    return summary


def conclude(rows: list[dict], config: CurationConfig, out_dir: Path, created: bool, write_rows=None) -> dict:
    """Every video's rows -> filters, table, report (`finish`); when every video failed, that
    failure is the error (and an `out_dir` this run `created` is removed)."""
    if all(r["status"] == "failed" for r in rows):  # nothing to filter: say why, in one line
        first = rows[0]
        more = f" (and {len(rows) - 1} more failed videos)" if len(rows) > 1 else ""
        if created:
            shutil.rmtree(out_dir, ignore_errors=True)
        raise GenlabError(f"{first['video_path']}: {first['error']}{more}")
    return finish(rows, config, out_dir, write_rows)


def _pool_start_method() -> str:
    """"fork" (fast; what the CLI gets: it has not imported OpenCV when the pool starts), or
    "forkserver" once this process has imported OpenCV: a fork taken after OpenCV started its
    thread pool can leave a worker deadlocked on the copied pool's locks (seen: the worker's
    cv2.setNumThreads hung after the benchmark's inline runs). With "forkserver" a script that
    calls `run(..., workers > 1)` needs the `if __name__ == "__main__":` guard."""
    import sys

    return "forkserver" if "cv2" in sys.modules else "fork"


# imported by every pool worker before its first video (PyAV, the OCR runtime); not cv2 (nor
# rapidocr, which imports it): cv2 in this process decides the start method (`_pool_start_method`)
WORKER_MODULES = ("av", "onnxruntime", "genlab.systems.video.curation.cuts", "genlab.systems.video.curation.clipping")


def largest_first(videos: list) -> list:
    """Videos by file size, largest first: workers that take the long ones first finish together
    (the run does not wait on one worker's last long video)."""
    def size(v):
        try:
            return os.path.getsize(v)
        except OSError:
            return 0

    return sorted(videos, key=size, reverse=True)


def worker_pool(workers: int) -> ProcessPoolExecutor:
    """The process pool `run` uses: `workers` processes started with `_pool_start_method`, each
    initialised by `init_worker` (one thread, dies with its parent)."""
    import importlib
    import multiprocessing

    method = _pool_start_method()
    context = multiprocessing.get_context(method)
    # the modules every worker imports before its first video, imported once where the workers
    # start from instead of once per worker: in this process (fork: workers inherit them), or in
    # the forkserver (cv2 too: imported, never run there, so no OpenCV thread pool is forked)
    if method == "forkserver":
        context.set_forkserver_preload([__name__, *WORKER_MODULES, "cv2", "rapidocr_onnxruntime.ch_ppocr_det"])
    else:
        for name in WORKER_MODULES:
            importlib.import_module(name)
    return ProcessPoolExecutor(workers, mp_context=context, initializer=init_worker)


def _run_pool(todo, config, out_dir, progress) -> dict[str, list[dict]]:
    from tqdm import tqdm

    results = {}
    bar = tqdm(total=len(todo), desc="curate", unit="video", disable=not progress)
    if config.workers <= 1 or len(todo) <= 1:
        for v in todo:
            results[str(v)] = process_video(v, config, out_dir)
            bar.update()
    else:
        with worker_pool(config.workers) as pool:
            futures = {pool.submit(process_video, v, config, out_dir): v for v in largest_first(todo)}
            for fut in as_completed(futures):
                results[str(futures[fut])] = fut.result()
                bar.update()
    bar.close()
    return results


def check_ray_address(address: str, timeout_s: float = 5.0) -> None:
    """A quick TCP connect to HOST:PORT (or ray://HOST:PORT) so that an unreachable cluster is one
    clear error in seconds (`ray.init` keeps retrying for minutes). "auto" is left to Ray."""
    import socket

    if address == "auto":
        return
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not host or not port.isdigit():
        raise GenlabError(f"--ray-address: expected HOST:PORT, ray://HOST:PORT or auto, got {address!r}")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as err:
        raise GenlabError(f"--ray-address {address}: no Ray cluster reachable there ({err.strerror or err})") from err


# ---------------------------------------------------------------------------------------------
# table, filters, report, histograms


def resolve_thresholds(rows: list[dict], filters: tuple[Threshold, ...]) -> list[dict]:
    """Absolute bounds for each filter (percentiles computed over the clips that have the score)."""
    resolved = []
    for f in filters:
        if f.field not in COLUMNS:
            raise GenlabError(f"filter field {f.field!r}: expected one of {SCORES}")
        values = np.array([r[f.field] for r in rows if r["status"] == "ok" and r.get(f.field) is not None], float)
        if len(values) == 0 and not any(r["status"] == "ok" for r in rows):
            resolved.append({**asdict(f), "lower": None, "upper": None})  # no clip at all: nothing to filter
            continue
        if len(values) == 0:
            raise GenlabError(f"filter on {f.field!r}: no clip has this score (is its stage enabled?)")
        lo = [v for v in (f.min, None if f.min_pct is None else float(np.percentile(values, f.min_pct))) if v is not None]
        hi = [v for v in (f.max, None if f.max_pct is None else float(np.percentile(values, f.max_pct))) if v is not None]
        resolved.append({**asdict(f), "lower": max(lo) if lo else None, "upper": min(hi) if hi else None})
    return resolved


def mark_duplicates(rows: list[dict], max_bits: float = 6.0) -> None:
    """`dup_of` = the clip_id of the first clip (in clip_id order) whose key frames hash within
    `max_bits` differing bits of 64 on average (the group's original); None for originals. Every
    clip is compared with every earlier one: fine for thousands of clips, not for millions."""
    ok = sorted((r for r in rows if r["status"] == "ok" and r.get("key_hash")), key=lambda r: r["clip_id"])
    for r in rows:
        r["dup_of"] = None
    if not ok:
        return
    width = max(len(r["key_hash"]) for r in ok)
    bits = np.array([np.unpackbits(np.frombuffer(bytes.fromhex(r["key_hash"].ljust(width, "0")), np.uint8))
                     for r in ok])
    frames = width / 16  # 16 hex digits per 64-bit frame hash
    for i in range(1, len(ok)):
        near = np.flatnonzero((bits[:i] != bits[i]).sum(axis=1) / frames <= max_bits)
        if len(near):
            first = ok[int(near[0])]
            ok[i]["dup_of"] = first["dup_of"] or first["clip_id"]


def apply_filters(rows: list[dict], resolved: list[dict]) -> None:
    """Set keep / removed_by (the first filter a clip fails; a missing score fails)."""
    for r in rows:
        r["keep"], r["removed_by"] = r["status"] == "ok", None if r["status"] == "ok" else r["status"]
        if not r["keep"]:
            continue
        for f in resolved:
            v = r.get(f["field"])
            if v is None or (f["lower"] is not None and v < f["lower"]) or (f["upper"] is not None and v > f["upper"]):
                r["keep"], r["removed_by"] = False, f["field"]
                break
        if r["keep"] and r.get("dup_of"):  # a near-duplicate of a clip kept or not: one copy is enough
            r["keep"], r["removed_by"] = False, "dup_of"


def table_schema(config: CurationConfig):
    """The Arrow schema of clips.parquet (the pool and Ray write the same one)."""
    import pyarrow as pa

    types = {
        "clip_index": pa.int64(), "start_frame": pa.int64(), "end_frame": pa.int64(), "width": pa.int64(),
        "height": pa.int64(), "bit_rate": pa.int64(), "size_bytes": pa.int64(), "num_frames": pa.int64(),
        "num_cuts": pa.int64(), "num_scenes": pa.int64(), "clip_embedding": pa.list_(pa.float32()), "keep": pa.bool_(),
    }
    strings = {"clip_id", "video_id", "video_path", "status", "error", "clip_path", "clip_method", "codec",
               "start_by", "end_by", "camera_motion", "key_hash", "dup_of",
               "container", "caption", "summary", "removed_by"}

    def kind(c):
        return types.get(c, pa.string() if c in strings or c.startswith("caption_") else pa.float64())

    return pa.schema([pa.field(c, kind(c)) for c in [*columns(config), "keep", "removed_by"]])


def rows_table(rows: list[dict], schema):
    """Rows (plain dicts, any order) -> an Arrow table of `schema`, sorted by clip_id."""
    import pyarrow as pa

    rows = sorted(rows, key=lambda r: r["clip_id"])
    return pa.Table.from_pylist([{c: r.get(c) for c in schema.names} for r in rows], schema=schema)


def write_table(rows: list[dict], path: Path, config: CurationConfig) -> None:
    import pyarrow.parquet as pq

    from genlab.core.io import atomic_path

    table = rows_table(rows, table_schema(config))
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def histograms(rows: list[dict], resolved: list[dict], folder: Path) -> list[str]:
    """One PNG per score: its histogram over the run's clips, the filter bounds as dashed lines.
    Drawn on bare `Figure`s with fixed margins, the bins as one filled step patch and the title at
    a fixed height: pyplot's figure manager, `tight_layout`, a patch per bar and the title's search
    for the tick labels were most of a run's closing work, which is serial however many workers
    curated."""
    from matplotlib.figure import Figure

    from genlab.core.io import atomic_path

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name in SCORES:
        values = np.array([r[name] for r in rows if r["status"] == "ok" and r.get(name) is not None], float)
        if len(values) == 0:
            continue
        fig = Figure(figsize=(5, 3.2), dpi=100)
        ax = fig.add_axes((0.13, 0.15, 0.83, 0.76))  # room for the tick labels, the axis labels and the title
        counts, edges = np.histogram(values, bins=min(50, max(5, len(values) // 2)))
        ax.stairs(counts, edges, fill=True, color="#4a7fb5")  # one patch, not a bar patch per bin
        for f in resolved:
            if f["field"] == name:
                for b in (f["lower"], f["upper"]):
                    if b is not None:
                        ax.axvline(b, color="#c0392b", ls="--")
        ax.set_xlabel(name)
        ax.set_ylabel("clips")
        ax.set_title(f"{name} (n={len(values)})", y=1.0)  # a fixed y: no search for the tick labels' extent
        with atomic_path(folder / f"{name}.png") as tmp:
            fig.savefig(tmp, format="png")
        written.append(f"{name}.png")
    return written


def finish(rows: list[dict], config: CurationConfig, out_dir: Path, write_rows=None) -> dict:
    """Filter, write the table, the report and the histograms. Cheap: rerun to change thresholds.
    `write_rows(rows)` writes clips.parquet instead of `write_table` (the Ray path: its `rows` hold
    only the columns the filters and the report read; Ray joins their decisions to the full rows)."""
    resolved = resolve_thresholds(rows, config.filters)
    mark_duplicates(rows)
    apply_filters(rows, resolved)
    if write_rows is None:
        write_table(rows, out_dir / "clips.parquet", config)
    else:
        write_rows(rows)
    ok = [r for r in rows if r["status"] == "ok"]
    failed = [r for r in rows if r["status"] == "failed"]
    per_video = {}
    for r in rows:
        per_video.setdefault(r["video_id"], r)
    stages = []
    remaining = len(ok)
    for f in resolved:
        removed = sum(1 for r in ok if r["removed_by"] == f["field"])
        fails_alone = sum(1 for r in ok if r.get(f["field"]) is None
                          or (f["lower"] is not None and r[f["field"]] < f["lower"])
                          or (f["upper"] is not None and r[f["field"]] > f["upper"]))
        stages.append({"filter": f, "removed": removed, "would_remove_alone": fails_alone,
                       "remaining": (remaining := remaining - removed)})
    report = {
        "videos": len({r["video_id"] for r in rows}),
        "videos_failed": [{"video": r["video_path"], "error": r["error"]} for r in failed],
        "videos_without_clips": sum(1 for r in rows if r["status"] == "no_clips"),
        "clips": len(ok), "clips_kept": sum(1 for r in ok if r["keep"]),
        "clip_methods": {m: sum(1 for r in ok if r["clip_method"] == m) for m in ("copy", "copy_editlist", "reencode")},
        "scenes": sum(v["num_scenes"] or 0 for v in per_video.values()),
        "scenes_dropped": sum(v["num_scenes"] or 0 for v in per_video.values()) - len(ok),
        "seconds_of_video": float(sum(v["video_duration_s"] or 0 for v in per_video.values() if v["status"] != "failed")),
        "seconds_dropped_by_clipping": float(sum(v["scene_s_dropped"] or 0 for v in per_video.values())),
        "seconds_in_clips": float(sum(r["duration_s"] for r in ok)),
        "seconds_kept": float(sum(r["duration_s"] for r in ok if r["keep"])),
        "filters": stages,
        "duplicates_removed": sum(1 for r in ok if r["removed_by"] == "dup_of"),
        "histograms": histograms(rows, resolved, out_dir / "histograms"),
    }
    atomic_write_text(out_dir / "report.json", json.dumps(report, indent=2))
    atomic_write_text(out_dir / "report.md", report_markdown(report))
    return report


def report_markdown(report: dict) -> str:
    lines = ["# Curation report", "",
             f"- videos: {report['videos']} ({len(report['videos_failed'])} failed, "
             f"{report['videos_without_clips']} without clips)",
             f"- probe/decode: {len(report['videos_failed'])} videos failed (below); "
             f"{report['seconds_of_video']:.1f} s of readable video",
             f"- cuts: {report['scenes']} scenes; clipping dropped {report['scenes_dropped']} scenes too short "
             f"and {report['seconds_dropped_by_clipping']:.1f} s (short scenes, starts skipped to a keyframe)",
             f"- clips: {report['clips']} ({report['clip_methods']['copy']} stream copies, "
             f"{report['clip_methods']['copy_editlist']} stream copies with an edit list, "
             f"{report['clip_methods']['reencode']} re-encoded), {report['seconds_in_clips']:.1f} s",
             f"- near-duplicates removed (`dup_of`): {report['duplicates_removed']}",
             f"- kept: {report['clips_kept']} clips, {report['seconds_kept']:.1f} s", "",
             "| filter | bounds | removed | would remove alone | remaining |", "|---|---|---|---|---|"]
    for s in report["filters"]:
        f = s["filter"]
        lo = "" if f["lower"] is None else f">= {f['lower']:.4g}"
        hi = "" if f["upper"] is None else f"<= {f['upper']:.4g}"
        pct = " ".join(x for x in (f"min_pct {f['min_pct']}" if f["min_pct"] is not None else "",
                                   f"max_pct {f['max_pct']}" if f["max_pct"] is not None else "") if x)
        lines.append(f"| {f['field']} | {lo} {hi} {('(' + pct + ')') if pct else ''} | {s['removed']} | "
                     f"{s['would_remove_alone']} | {s['remaining']} |")
    if report["videos_failed"]:
        lines += ["", "## Failed videos", ""] + [f"- {v['video']}: {v['error']}" for v in report["videos_failed"]]
    return "\n".join(lines) + "\n"
