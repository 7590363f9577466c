"""The curation as a Ray Data streaming pipeline, stage by stage, resumable per clip.

    videos --flat_map(plan, CPU task)--> clip rows (+ their 2 fps samples)
           --map_batches(clip scorer, CPU actors: motion, key hash, OCR)-->
           --map_batches(clip scorer, actors with `num_gpus`: CLIP, aesthetic, caption; only if enabled)-->
           rows streamed to the driver (`iter_rows`, never the whole dataset at once)

The plan task writes `records/<video_id>/_plan.json` (the clip rows before scoring) after writing
the clip files; the last scorer writes `records/<video_id>/<clip_id>.json` per finished clip. A
rerun skips planned videos and finished clips (a clip whose samples were not kept is sampled again
by itself). When every clip of a video is done the driver writes `records/<video_id>.json`, the
marker the pool path resumes from too: the table is the pool's (tested).
"""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np

from genlab.core.io import atomic_write_text
from genlab.errors import GenlabError
from genlab.systems.video.curation.config import CurationConfig
from genlab.systems.video.curation.pipeline import (
    COLUMNS,
    CPU_STAGES,
    check_ray_address,
    clip_stages_cached,
    grid_clip_frames,
    init_worker,
    plain,
    plan_video,
    sample_clip_frames,
    score_clips,
    video_id_for,
)


def _plain_rows(rows: list[dict]) -> list[dict]:
    """JSON round trip: plain Python values, as the pool's records hold them."""
    return json.loads(json.dumps([{k: plain(r.get(k)) for k in COLUMNS} for r in rows]))


def _clip_dir(out: Path, path: str) -> Path:
    return out / "records" / video_id_for(path)


def _plan(item: dict, config: CurationConfig, out: Path) -> list[dict]:
    """One video -> the rows of its clips still to score (none when all are done)."""
    path = item["path"]
    folder = _clip_dir(out, path)
    plan_file = folder / "_plan.json"
    frames = None
    if plan_file.is_file():
        plan = json.loads(plan_file.read_text())
    else:
        clips, frames = plan_video(path, config, out)
        plan = {"grid": frames is not None, "clips": _plain_rows(clips)}  # grid: samples from the cut pass
        atomic_write_text(plan_file, json.dumps(plan))
    clips = plan["clips"]
    if clips[0]["status"] != "ok":
        return []  # a failed or clip-less video: its plan is its row
    todo = []
    for i, clip in enumerate(clips):
        if not (folder / f"{clip['clip_id']}.json").is_file():
            todo.append({"path": path, "row": json.dumps(clip), "grid": plan["grid"],
                         "frames": pickle.dumps(frames[i]) if frames is not None else b""})
    return todo


class ClipScorer:
    """Ray Data actor: one group of clip stages on each row; `last` writes the clip's record."""

    def __init__(self, config: CurationConfig, out: str, group: str, last: bool):
        self.config, self.out, self.last = config, Path(out), last
        every = clip_stages_cached(config)
        self.stages = [s for s in every if (s.name in CPU_STAGES) == (group == "cpu")]
        if group == "cpu":
            init_worker(watch_parent=False)

    def __call__(self, batch: dict) -> dict:
        rows, frames_out = [], []
        for path, row, grid, frames in zip(batch["path"], batch["row"], batch["grid"], batch["frames"]):
            clip = json.loads(row)
            if clip["status"] == "ok":  # a failed row from an earlier group passes through
                sampled = [pickle.loads(frames)] if len(frames) else None
                if sampled is None and grid:  # resumed: the samples the cut pass's grid gave it
                    sampled = grid_clip_frames(path, [clip], self.config)
                elif sampled is None:  # a long video's second pass, for this clip
                    sampled = sample_clip_frames(path, [clip], self.config, self.config.decode_threads)
                frames = pickle.dumps(sampled[0])
                clip = _plain_rows(score_clips(path, [clip], sampled, self.config, stages=self.stages))[0]
                if self.last and clip["status"] == "ok":
                    atomic_write_text(_clip_dir(self.out, path) / f"{clip['clip_id']}.json", json.dumps(clip))
            rows.append(json.dumps(clip))
            frames_out.append(b"" if self.last else frames)
        return {"path": batch["path"], "row": np.array(rows, dtype=object), "grid": batch["grid"],
                "frames": np.array(frames_out, dtype=object)}


def _video_rows(path: str, out: Path, streamed: dict[str, dict]) -> list[dict]:
    """A video's final rows from its plan and clip records (`streamed`: rows of this run by clip_id;
    a failed one, keyed by its video id, stands for the whole video, as in `process_video`)."""
    folder = _clip_dir(out, path)
    plan = json.loads((folder / "_plan.json").read_text())["clips"]
    if plan[0]["status"] != "ok":
        return plan
    if video_id_for(path) in streamed:
        return [streamed[video_id_for(path)]]
    rows = []
    for clip in plan:
        row = streamed.get(clip["clip_id"])
        if row is None:
            row = json.loads((folder / f"{clip['clip_id']}.json").read_text())
        if row["status"] == "failed":
            return [row]
        rows.append(row)
    return rows


def run_ray(todo, config: CurationConfig, out_dir, progress: bool = True, address: str | None = None,
            workers: int | None = None, gpus: float = 0.0) -> dict[str, list[dict]]:
    """Curate `todo` with Ray Data; returns {path: rows} and writes each video's record.

    `address`: join that Ray cluster ("auto": the one this machine belongs to; unreachable: a
    GenlabError). Otherwise a running Ray (`ray.init` before calling, or RAY_ADDRESS) is used, or a
    local one with `workers` CPUs (default: every core) is started and stopped. `workers` CPU
    actors score clips (default: the cluster's CPUs); `gpus` per model actor (CLIP/caption)."""
    if not todo:
        return {}
    import logging

    import ray

    out = Path(out_dir)
    started = False
    if address is not None or not ray.is_initialized():
        options = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
        try:
            if address is not None:
                check_ray_address(address)
                ray.init(address=address, **options)
            else:
                ray.init(num_cpus=workers or os.cpu_count() or 1, **options)
        except (ConnectionError, RuntimeError) as err:
            raise GenlabError(f"--ray-address {address}: cannot join a Ray cluster there ({str(err).splitlines()[0]})") from err
        started = True
    try:
        from tqdm import tqdm

        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.print_on_execution_start = False
        cpus = float(ray.cluster_resources().get("CPU", 1))
        actors = max(1, workers or int(cpus))
        models = any(s.name not in CPU_STAGES for s in clip_stages_cached(config))
        # actors hold their CPUs for the whole run: together at most half of them, so that plan
        # tasks (half a CPU each) always find room (with all CPUs held by actors, nothing is planned)
        share = min(1.0, cpus / 2 / (actors + models))
        ds = ray.data.from_items([{"path": str(v)} for v in todo], override_num_blocks=len(todo))
        # fractions of a CPU: planning (decode + cuts) and scoring overlap on every core
        ds = ds.flat_map(_plan, fn_args=(config, out), num_cpus=0.5)
        ds = ds.map_batches(ClipScorer, fn_constructor_args=(config, str(out), "cpu", not models),
                            batch_size=1, compute=ray.data.ActorPoolStrategy(size=actors), num_cpus=share)
        if models:
            ds = ds.map_batches(ClipScorer, fn_constructor_args=(config, str(out), "model", True),
                                batch_size=1, compute=ray.data.ActorPoolStrategy(size=1), num_cpus=share,
                                num_gpus=gpus)
        streamed: dict[str, dict] = {}
        results: dict[str, list[dict]] = {}

        def finish_video(path: str) -> None:  # its record, the resume marker, once every clip is in
            try:
                rows = _video_rows(path, out, streamed)
            except FileNotFoundError:
                return  # clips still to come
            atomic_write_text(out / "records" / f"{video_id_for(path)}.json", json.dumps(rows))
            results[path] = rows

        with tqdm(desc="curate (ray)", unit="clip", disable=not progress) as bar:
            for item in ds.select_columns(["row"]).iter_rows():
                row = json.loads(item["row"])
                streamed[row["clip_id"]] = row  # a failed video's row has the video id as clip_id
                finish_video(row["video_path"])
                bar.update()
        for v in todo:  # videos with nothing left to score: failed, clip-less, or all clips done before
            if str(v) not in results:
                finish_video(str(v))
        missing = [str(v) for v in todo if str(v) not in results]
        if missing:
            raise GenlabError(f"Ray run ended without the clips of {missing[0]} ({len(missing)} videos unfinished)")
        return results
    finally:
        if started:
            ray.shutdown()
