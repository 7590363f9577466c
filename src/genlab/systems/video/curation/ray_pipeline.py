"""The curation as a Ray Data pipeline that writes clips.parquet itself, resumable per clip.

    videos --map_batches(curate_videos, CPU tasks: probe, cuts, clip files, motion, key hash, OCR)-->
           --map_batches(ModelScorer, actors with `num_gpus`: CLIP, aesthetic, captions; only if enabled)-->
           rows (Arrow blocks of the table's schema, kept by Ray: `materialize`, spilled to disk if large)
    driver: the columns the filters and the report read (no embeddings, no captions) -> thresholds,
            near-duplicates, keep / removed_by per clip
           --one Ray task on the blocks (join the decisions, sort by clip_id)--> clips.parquet

A curator task takes a whole video: its 2 fps samples stay in the task's memory between the cut pass
and the clip stages (one decoding pass, nothing pickled between operators). Its `VideoCurator` and
models (the OCR detector) load once per Ray worker process, not per video: Ray keeps its task
workers between tasks and between the runs of one driver, and the table is written by the same
warm processes (curator actors were new processes every run, and so was the worker that wrote the
table after them). It writes `records/<video_id>/_plan.json` (the clip rows before scoring) after
the clip files, then `records/<video_id>/<clip_id>.json` as each clip is scored by the last stage,
then `records/<video_id>.json` (the pool's resume marker: either path resumes the other's folder).
A rerun reads finished videos and clips from their records and scores only the rest (a resumed
clip's samples are decoded again on the same grid: the same table, tested).
"""

from __future__ import annotations

import json
import os
import pickle
import time
from pathlib import Path

import numpy as np

from genlab.core.io import atomic_write_text
from genlab.errors import GenlabError
from genlab.systems.video.curation.config import CurationConfig
from genlab.systems.video.curation.pipeline import (
    CPU_STAGES,
    check_ray_address,
    clip_stages_cached,
    columns,
    conclude,
    grid_clip_frames,
    init_worker,
    largest_first,
    load_record,
    plain,
    plan_video,
    record_path,
    rows_table,
    sample_clip_frames,
    score_clips,
    table_schema,
    video_id_for,
)

# columns the driver reads back (filters, duplicates, report): everything but embeddings and captions
HEAVY = ("clip_embedding", "caption", "summary")


def _plain_rows(rows: list[dict], config: CurationConfig) -> list[dict]:
    """JSON round trip: plain Python values, as the pool's records hold them."""
    return json.loads(json.dumps([{k: plain(r.get(k)) for k in columns(config)} for r in rows]))


def _clip_dir(out: Path, path: str) -> Path:
    return out / "records" / video_id_for(path)


def _finish_video(out: Path, path: str, plan: list[dict]) -> None:
    """The video's record, once every clip of its plan has its own record."""
    folder = _clip_dir(out, path)
    rows = []
    for clip in plan:
        f = folder / f"{clip['clip_id']}.json"
        if not f.is_file():
            return
        rows.append(json.loads(f.read_text()))
    atomic_write_text(record_path(out, path), json.dumps(rows))


class VideoCurator:
    """Whole videos -> their rows (`curate_videos`, one per Ray worker process). Plans each video
    (or reads its plan) and runs the CPU clip stages on the clips not scored yet; `last`: no model
    stage follows (it writes the clip records and returns Arrow rows of the table)."""

    def __init__(self, config: CurationConfig, out: str, last: bool):
        init_worker(watch_parent=False)
        self.config, self.out, self.last = config, Path(out), last
        self.stages = [s for s in clip_stages_cached(config) if s.name in CPU_STAGES]
        self.schema = table_schema(config)

    def video(self, path: str) -> list[tuple[dict, bytes]]:
        """(row, pickled samples for the model stages or b"" when the row is final) of one video."""
        record = load_record(self.out, path)
        if record is not None:  # finished before (by Ray or by the pool)
            return [(r, b"") for r in record]
        folder = _clip_dir(self.out, path)
        plan_file = folder / "_plan.json"
        frames = None
        if plan_file.is_file():
            plan = json.loads(plan_file.read_text())
        else:
            clips, frames = plan_video(path, self.config, self.out)
            plan = {"grid": frames is not None, "clips": _plain_rows(clips, self.config)}  # grid: samples from the cut pass
            atomic_write_text(plan_file, json.dumps(plan))
        clips = plan["clips"]
        if clips[0]["status"] != "ok":  # a failed or clip-less video: its plan is its row
            atomic_write_text(record_path(self.out, path), json.dumps(clips))
            return [(clips[0], b"")]
        done = {c["clip_id"]: json.loads((folder / f"{c['clip_id']}.json").read_text()) for c in clips
                if (folder / f"{c['clip_id']}.json").is_file()}
        todo = [i for i, c in enumerate(clips) if c["clip_id"] not in done]
        sampled = {}
        if frames is not None:
            sampled = {i: frames[i] for i in todo}
        elif todo and plan["grid"]:  # resumed: the samples the cut pass's grid gave them
            sampled = dict(zip(todo, grid_clip_frames(path, [clips[i] for i in todo], self.config)))
        elif todo:  # a long video's second pass
            sampled = dict(zip(todo, sample_clip_frames(path, [clips[i] for i in todo], self.config,
                                                       self.config.decode_threads)))
        out = []
        for i, clip in enumerate(clips):
            if i not in sampled:
                out.append((done[clip["clip_id"]], b""))
                continue
            row = _plain_rows(score_clips(path, [dict(clip)], [sampled[i]], self.config, stages=self.stages),
                              self.config)[0]
            if row["status"] == "failed":  # as in the pool: a failure is the video's one row
                atomic_write_text(record_path(self.out, path), json.dumps([row]))
                return [(row, b"")]
            if self.last:  # resume marker of this clip, as soon as it is scored
                atomic_write_text(folder / f"{row['clip_id']}.json", json.dumps(row))
                out.append((row, b""))
            else:
                out.append((row, pickle.dumps(sampled[i])))
        if self.last or not todo:  # (every clip done before: the run that scored them was killed before this)
            _finish_video(self.out, path, clips)
        return out

    def __call__(self, batch: dict):
        pairs = [pair for path in batch["path"] for pair in self.video(str(path))]
        if self.last:
            return rows_table([r for r, _ in pairs], self.schema)
        return {"row": np.array([json.dumps(r) for r, _ in pairs], dtype=object),
                "frames": np.array([f for _, f in pairs], dtype=object)}


_CURATORS: dict = {}


def curate_videos(batch: dict, config: CurationConfig, out: str, last: bool):
    """Ray Data task: `VideoCurator` on a batch of videos, made once per worker process (its stages,
    the OCR model) and kept for the next tasks of this run that the process runs."""
    key = (repr(config), out, last)
    if key not in _CURATORS:
        _CURATORS.clear()
        _CURATORS[key] = VideoCurator(config, out, last)
    return _CURATORS[key](batch)


class ModelScorer:
    """Ray Data actor: the model stages (CLIP, aesthetic, captions) on the clips the curator scored;
    writes their records (and the video's once all its clips are in); returns Arrow rows."""

    def __init__(self, config: CurationConfig, out: str):
        self.config, self.out = config, Path(out)
        self.stages = [s for s in clip_stages_cached(config) if s.name not in CPU_STAGES]
        self.schema = table_schema(config)

    def __call__(self, batch: dict):
        rows = []
        for text, frames in zip(batch["row"], batch["frames"]):
            row = json.loads(text)
            if len(frames):  # not finished before
                path = row["video_path"]
                row = _plain_rows(score_clips(path, [row], [pickle.loads(frames)], self.config, stages=self.stages),
                                  self.config)[0]
                if row["status"] == "failed":  # the video's one row (its other clips are dropped in `_decide`)
                    atomic_write_text(record_path(self.out, path), json.dumps([row]))
                else:
                    folder = _clip_dir(self.out, path)
                    atomic_write_text(folder / f"{row['clip_id']}.json", json.dumps(row))
                    _finish_video(self.out, path, json.loads((folder / "_plan.json").read_text())["clips"])
            rows.append(row)
        return rows_table(rows, self.schema)


def _decide(table, decisions: dict, schema):
    """The whole table (one block): the driver's filter decisions (clip_id -> dup_of, keep,
    removed_by) joined to the full rows, sorted by clip_id. Rows of a video that failed in a model
    stage, other than its failed row, are dropped (as the pool does)."""
    import pyarrow as pa

    ids = table.column("clip_id").to_pylist()
    kept = [i for i, c in enumerate(ids) if c in decisions]
    table = table.take(pa.array(kept, pa.int64()))
    ids = [ids[i] for i in kept]
    for k, name in enumerate(("dup_of", "keep", "removed_by")):
        column = pa.array([decisions[c][k] for c in ids], schema.field(name).type)
        table = table.set_column(schema.get_field_index(name), name, column)
    return table.cast(schema).sort_by("clip_id")


def _write_blocks(decisions: dict, schema, path: str, *blocks) -> None:
    """Ray task: the dataset's blocks (Arrow tables, resolved by Ray on the worker) joined to the
    decisions (`_decide`) and written, atomically, as one Parquet file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from genlab.core.io import atomic_path

    table = _decide(pa.concat_tables(blocks), decisions, schema)
    with atomic_path(Path(path)) as tmp:
        pq.write_table(table, tmp)


def _write_table(ds, rows: list[dict], schema, out: Path) -> None:
    """clips.parquet from the full rows in `ds` and the decisions in `rows`, written by one Ray task
    on the materialized blocks (one file, as the pool's table; the rows never pass through the
    driver). A Ray Data job (repartition, map, write_parquet) did the same in 0.13-0.18 s on the
    benchmark corpus, most of it the executor's start; Ray's distributed sort costs ~20 s on small runs."""
    import ray

    failed = {r["video_id"] for r in rows if r["status"] == "failed"}
    decisions = {r["clip_id"]: (r["dup_of"], r["keep"], r["removed_by"]) for r in rows
                 if r["video_id"] not in failed or r["clip_id"] == r["video_id"]}
    write = ray.remote(num_cpus=1)(_write_blocks)
    ray.get(write.remote(decisions, schema, str(out / "clips.parquet"), *ds.to_arrow_refs()))


def _light_rows(ds, names: list[str]) -> list[dict]:
    """The rows of a materialized dataset, only `names`: its blocks (a video's rows each) fetched
    one at a time, the other columns dropped at once (a few small columns per clip: a Ray task per
    block would cost more than the transfer)."""
    import ray

    rows = []
    for ref in ds.to_arrow_refs():
        rows += ray.get(ref).select(names).to_pylist()
    return rows


def run_ray(videos, config: CurationConfig, out_dir, progress: bool = True, created: bool = False,
            address: str | None = None, workers: int | None = None, gpus: float = 0.0) -> dict:
    """Curate `videos` with Ray Data into `out_dir` (clips, records, clips.parquet, report); returns
    the report (`pipeline.finish`).

    `address`: join that Ray cluster ("auto": the one this machine belongs to; unreachable: a
    GenlabError). Otherwise a running Ray (`ray.init` before calling, or RAY_ADDRESS) is used, or a
    local one with `workers` CPUs (default: every core) is started and stopped. `workers` curator
    tasks at once (default: the cluster's CPUs); `gpus` per model actor (CLIP/caption)."""
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
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = progress
        ctx.print_on_execution_start = False
        # the operators are sized here (tasks in flight, CPUs per task, one model actor); Ray Data's
        # reservation of half the CPUs per operator would run one curator task on two CPUs
        ctx.op_resource_reservation_enabled = False
        cpus = float(ray.cluster_resources().get("CPU", 1))
        curators = max(1, min(len(videos), workers or int(cpus)))
        models = any(s.name not in CPU_STAGES for s in clip_stages_cached(config))
        share = min(1.0, cpus / (curators + models))  # curators (and the model actor) share the CPUs
        schema = table_schema(config)
        ds = ray.data.from_items([{"path": str(v)} for v in largest_first(videos)], override_num_blocks=len(videos))
        # `curators` tasks run at once. When they fill the CPUs, twice as many are in flight:
        # Ray starts a queued video the moment a worker is free, where Ray Data's executor would
        # notice the finished task up to 0.1 s later (a gap per video: 0.8x the pool's speed
        # instead of 1.0x on the benchmark's corpus); the CPUs still run only `curators` at once
        room = int((cpus - models * share) / share + 1e-9)  # curator tasks the CPUs can run at once
        ds = ds.map_batches(curate_videos, fn_args=(config, str(out), not models), batch_size=1,
                            compute=ray.data.TaskPoolStrategy(size=2 * curators if room <= curators else curators),
                            num_cpus=share)
        if models:
            ds = ds.map_batches(ModelScorer, fn_constructor_args=(config, str(out)), batch_size=1,
                                compute=ray.data.ActorPoolStrategy(size=1), num_cpus=share, num_gpus=gpus)
        t0 = time.perf_counter()
        ds = ds.materialize()  # every row, in Ray's object store (not in the driver)
        t1 = time.perf_counter()
        light = [n for n in schema.names if n not in HEAVY and not n.startswith("caption_")]
        rows = _light_rows(ds, light)
        t2 = time.perf_counter()
        summary = conclude(rows, config, out, created, lambda decided: _write_table(ds, decided, schema, out))
        # wall seconds of each phase (the benchmark prints them)
        phases = {"curate": t1 - t0, "read filter columns": t2 - t1, "filters, table, report": time.perf_counter() - t2}
        return {**summary, "ray_cpus": cpus, "ray_phases": phases}
    finally:
        if started:
            ray.shutdown()
