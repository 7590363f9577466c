"""Curation throughput: seconds of video processed per second of wall time, per stage and end to end.

Peers measured in the same run on the same files:
- PySceneDetect's own CLI (`scenedetect -i FILE detect-adaptive` and `detect-content`, its defaults:
  OpenCV backend, automatic downscale) for the cut stage;
- PyAV decode-only (every frame decoded, nothing converted) as the physical limit;
Goals: the cut stage cheaper than the CLI; end to end a large fraction of the decode limit; on a
20-video synthetic corpus, a pool of 2 workers well ahead of one process (no Ray running) and Ray at
2 workers close to the pool (both with Ray up) (`--corpus`).

    nice python benchmarks/curation_throughput.py [--workers 2] [--files ...] [--data DIR]

Timings on a shared machine are noisy: compare ratios within one run, not absolute numbers across runs.
Ours and the peers are timed interleaved (decode-only, CLI adaptive, CLI content, ours, then again,
`--repeats` rounds) and each figure is the median of its rounds, so a change in machine load moves
both sides of a ratio. Every figure is given as wall time and as CPU time (this process and its
children, e.g. ffmpeg); on a loaded machine the CPU-time ratios are the steadier measure of the work
done. Everything runs on one thread (OpenCV, ONNX Runtime, PyAV) like decode-only.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from dataclasses import replace  # noqa: E402

from genlab.core.data.video import probe  # noqa: E402
from genlab.systems.video.curation import synthetic  # noqa: E402
from genlab.systems.video.curation.config import default  # noqa: E402
from genlab.systems.video.curation.pipeline import process_video, run  # noqa: E402


def cpu_seconds() -> float:
    """CPU seconds of this process (all threads) and its finished children."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def decode_only(path) -> None:
    import av

    with av.open(str(path)) as c:
        s = c.streams.video[0]
        s.thread_type = "SLICE"
        s.codec_context.thread_count = 1
        for _ in c.decode(s):
            pass


def scenedetect_cli(path, detector: str) -> None:
    exe = shutil.which("scenedetect") or str(Path(sys.executable).parent / "scenedetect")
    with tempfile.TemporaryDirectory() as tmp:
        r = subprocess.run([exe, "-q", "-i", str(path), "-o", tmp, detector], capture_output=True, text=True,
                           env={**os.environ, "OMP_NUM_THREADS": "1"})
    if r.returncode != 0:
        raise RuntimeError(f"scenedetect failed on {path}: {r.stderr[-300:]}")


def stage_times(path, config, out) -> dict[str, float]:
    """`process_video` of one file; its per-stage wall and CPU seconds."""
    timings: dict[str, float] = {}
    process_video(path, config, out, timings=timings)
    return timings


def interleaved(named: dict, repeats: int) -> dict[str, list[tuple]]:
    """Every function of `named` once per round (A, B, C, A, B, C, ...); name -> [(wall, CPU, result)]."""
    runs: dict[str, list[tuple]] = {name: [] for name in named}
    for r in range(repeats):
        for name, fn in named.items():
            t, c = time.perf_counter(), cpu_seconds()
            result = fn(r)
            runs[name].append((time.perf_counter() - t, cpu_seconds() - c, result))
    return runs


def medians(runs: list[tuple]) -> tuple[float, float]:
    return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)


class TreeCPU:
    """CPU seconds of this process and every descendant (pool workers, a forkserver's children,
    Ray's raylet, workers and actors), read from /proc every `period` s in a thread: a process
    that ends between two reads loses at most `period` s of its CPU."""

    def __init__(self, period: float = 0.2):
        import threading

        self.period, self.seen, self.stop = period, {}, threading.Event()
        self.tick = os.sysconf("SC_CLK_TCK")
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _read(self) -> None:
        parents, cpu = {}, {}
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(pid)] = int(fields[1])
            cpu[int(pid)] = (int(fields[11]) + int(fields[12])) / self.tick  # utime + stime
        me = os.getpid()
        for pid in cpu:
            p, hops = pid, 0
            while p not in (me, 0, 1) and p in parents and hops < 64:
                p, hops = parents[p], hops + 1
            if p == me:
                self.seen[pid] = cpu[pid]

    def _loop(self) -> None:
        while not self.stop.wait(self.period):
            self._read()

    def __enter__(self):
        self._read()
        self.start = dict(self.seen)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
        self._read()
        self.cpu = sum(v - self.start.get(pid, 0.0) for pid, v in self.seen.items())


def timed_tree(fn):
    """fn() -> (wall s, CPU s of the process tree, result)."""
    t = time.perf_counter()
    with TreeCPU() as tree:
        result = fn()
    return time.perf_counter() - t, tree.cpu, result


def warm_worker(_=None) -> float:
    """What a worker does before its first video: build the stages and load the OCR model (one
    text-stage call on a blank frame). Returns this process's CPU seconds since it started."""
    import numpy as np

    from genlab.core.data.video import Frame
    from genlab.systems.video.curation.pipeline import clip_stages_cached
    from genlab.systems.video.curation.stages import ClipFrames

    blank = ClipFrames([Frame(0, 0.0, np.zeros((90, 160, 3), np.uint8))], 2.0, 0.0, 0.5)
    for stage in clip_stages_cached(default()):
        if stage.name == "text":
            stage({}, blank)
    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime


def startup_costs_pool(workers: int) -> list[float]:
    from genlab.systems.video.curation.pipeline import worker_pool

    with worker_pool(workers) as ex:
        return list(ex.map(warm_worker, range(workers)))


def startup_costs(workers: int) -> dict[str, tuple[float, float]]:
    """Start-up alone (wall, CPU s of the process tree): a pool of `workers` as `run` makes it,
    until its workers have their models."""
    wall, cpu, _ = timed_tree(lambda: startup_costs_pool(workers))
    return {f"pool of {workers} until models loaded": (wall, cpu)}


def corpus_table(tmp: Path, workers: int, repeats: int, videos: int = 20) -> dict[str, float]:
    """One process, a pool of `workers` and Ray with `workers` CPUs on a seeded synthetic corpus
    (`synthetic.corpus`: cuts and fades, dips to black, dissolves, camera moves), in two interleaved
    phases:
    1. one process and the pool, with no Ray on the machine (as a user of the pool runs it): an idle
       Ray cluster takes 6-7% of a core (raylet, GCS, idle workers), which slows a pool that needs
       both cores of a 2-core machine and not one process, which leaves a core free;
    2. the pool and Ray, both with Ray up. Ray is started once beforehand, as a cluster that
       `--ray-address` joins is (`ray.init`, timed apart, is not in the figure), and its task workers
       stay up between rounds: the first Ray round starts them (imports, OCR model; its time is
       printed apart, the median is of warm rounds when `repeats` >= 3).
    A pool starts its workers in every run. Wall and CPU seconds of the whole process tree (workers,
    Ray's processes)."""
    import logging

    import ray

    t = time.perf_counter()
    files = synthetic.corpus(tmp / "corpus", videos=videos, seed=1000)
    made = time.perf_counter() - t
    seconds = sum(probe(f).duration_s for f in files)
    one, pool = default(), replace(default(), workers=workers)
    pool_name, ray_name = f"pool, {workers} workers", f"ray, {workers} CPUs"
    pool_up = pool_name + " (Ray up)"
    costs = startup_costs(workers)

    def rounds(named: dict) -> dict[str, list[tuple]]:
        runs: dict[str, list[tuple]] = {name: [] for name in named}
        for r in range(repeats):
            for name, fn in named.items():
                runs[name].append(timed_tree(lambda fn=fn, r=r: fn(r)))
        return runs

    runs = rounds({
        "one process": lambda r: run(files, one, tmp / f"c1-{r}", progress=False),
        pool_name: lambda r: run(files, pool, tmp / f"cp-{r}", progress=False),
    })
    t = time.perf_counter()
    ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    ray_start = time.perf_counter() - t
    try:
        runs |= rounds({
            pool_up: lambda r: run(files, pool, tmp / f"cq-{r}", progress=False),
            ray_name: lambda r: run(files, pool, tmp / f"cr-{r}", use_ray=True, progress=False),
        })
        phases = [rs[2]["ray_phases"] for rs in runs[ray_name]]
    finally:
        ray.shutdown()
    base = medians(runs["one process"])[0]
    pool_wall, pool_up_wall = medians(runs[pool_name])[0], medians(runs[pool_up])[0]
    print(f"\ncorpus: {len(files)} synthetic videos (made in {made:.0f} s), {seconds:.0f} s of video, "
          f"{repeats} interleaved rounds per phase (medians); CPU s = this process and all its descendants")
    print(f"  {'run':28s} {'wall s':>7s} {'x one process':>13s} {'x pool':>7s} {'CPU s':>7s}")
    for name, rs in runs.items():
        wall, cpu = medians(warm(rs) if name == ray_name else rs)
        ref = pool_up_wall if name in (pool_up, ray_name) else pool_wall
        print(f"  {name:28s} {wall:7.2f} {base / wall:13.2f} {ref / wall:7.2f} {cpu:7.2f}")
    print("  phase 1: one process and the pool, interleaved, no Ray running; phase 2: the pool and Ray, "
          "interleaved, Ray up (its x pool is against the pool of phase 2)")
    print(f"  start-up alone: ray.init {ray_start:.1f} s wall (before phase 2, not in the figures); " + "; ".join(
        f"{k} {w:.2f} s wall, {c:.2f} CPU s" for k, (w, c) in costs.items()))
    print("  Ray's rounds (wall s, CPU s): " + ", ".join(f"{w:.2f} / {c:.2f}" for w, c, _ in runs[ray_name])
          + " (the first starts Ray's task workers: imports, OCR model; later rounds reuse them; the table's"
          " Ray row is the median of the later rounds)")
    print("  Ray's phases (wall s, medians): " + ", ".join(
        f"{k} {statistics.median(p[k] for p in phases):.2f}" for k in phases[0]))
    ray_wall = medians(warm(runs[ray_name]))[0]
    return {"pool_x_one": base / pool_wall, "ray_x_pool": pool_up_wall / ray_wall}


def warm(rounds: list[tuple]) -> list[tuple]:
    """Ray's rounds after the first, which starts its task workers (all of them when fewer than 3)."""
    return rounds[1:] if len(rounds) >= 3 else rounds


def _decode_pool(files, workers: int) -> None:
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(decode_only, files))


def print_bars(files: dict | None, corpus: dict | None) -> None:
    """The issue's bars against this run's figures (CPU ratios for the files, wall for the corpus)."""
    checks = []
    if files:
        checks += [("cut stage: x less CPU than `scenedetect detect-adaptive`", files["cut_less_cpu"], 1.5),
                   ("end to end / decode-only (CPU)", files["e2e_x_decode"], 0.40)]
    if corpus:
        checks += [("corpus: pool of 2 / one process (wall, no Ray running)", corpus["pool_x_one"], 1.6),
                   ("corpus: Ray at 2 CPUs / pool of 2 (wall, Ray up for both)", corpus["ray_x_pool"], 0.9)]
    print("\nbars:")
    for name, value, bar in checks:
        print(f"  {name:58s} {value:5.2f}  (bar >= {bar}: {'met' if value >= bar else 'NOT met'})")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", nargs="*", default=None)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5, help="interleaved rounds; each figure is their median")
    ap.add_argument("--corpus", action="store_true", help="also time the 20-video corpus: 1 process, pool, Ray")
    ap.add_argument("--corpus-only", action="store_true", help="only the corpus table")
    ap.add_argument("--corpus-videos", type=int, default=20, help="videos in the synthetic corpus (6-16 s each)")
    ap.add_argument("--data", default=os.environ.get("GENLAB_SHARED_DATA", str(ROOT.parent / "shared" / "data")),
                    help="the shared data folder (default: $GENLAB_SHARED_DATA, else ../shared/data beside the checkout)")
    args = ap.parse_args()
    import cv2

    cv2.setNumThreads(1)  # one thread, like decode-only and the pool's workers (CPU times compare)
    tmp = Path(tempfile.mkdtemp(prefix="curation-bench-"))
    try:
        if args.files:
            files = [Path(f) for f in args.files]
        else:
            shared = Path(args.data)
            synth = tmp / "synthetic_cuts_320x180.mp4"
            synthetic.cuts_video(synth, seed=0)
            files = [shared / "video" / "opencv_vtest_480x360.avi", shared / "video" / "sports2d_demo.mp4", synth]
        config = default()
        process_video(files[-1], config, tmp / "warm-up")  # loads the OCR model once, like a long run
        if args.corpus_only:
            print_bars(None, corpus_table(tmp, args.workers, args.repeats, args.corpus_videos))
            return
        rows = []
        totals: dict[str, float] = {}
        total_video = 0.0
        decode_name, e2e_name = "decode-only (PyAV)", "end to end (1 process)"
        for f in files:
            info = probe(f)
            dur = info.duration_s
            total_video += dur
            runs = interleaved({
                decode_name: lambda r, f=f: decode_only(f),
                "scenedetect CLI adaptive": lambda r, f=f: scenedetect_cli(f, "detect-adaptive"),
                "scenedetect CLI content": lambda r, f=f: scenedetect_cli(f, "detect-content"),
                e2e_name: lambda r, f=f: stage_times(f, config, tmp / f"out-{f.stem}-{r}"),
            }, args.repeats)
            timings: dict[str, float] = {}
            for name, rs in runs.items():
                timings[name], timings["cpu:" + name] = medians(rs)
            # stage times: the median of each stage over the rounds
            stage_runs = [r[2] for r in runs[e2e_name]]
            for k in stage_runs[0]:
                timings[k] = statistics.median(st.get(k, 0.0) for st in stage_runs)
            for k, v in timings.items():
                totals[k] = totals.get(k, 0.0) + v
            rows.append((f.name, f"{info.width}x{info.height} {info.codec} {info.fps:.0f}fps {dur:.1f}s", dur, timings))

        # the whole set through the process pool (what `genlab video curate --workers N` does), and
        # decode-only of the same files in a pool of the same size (the limit on the same cores)
        pool_cfg = replace(config, workers=args.workers)
        pool_runs = interleaved({
            "pool": lambda r: run(files, pool_cfg, tmp / f"pool-{r}", progress=False),
            "decode pool": lambda r: _decode_pool(files, args.workers),
        }, args.repeats)
        pool_wall, decode_pool_wall = medians(pool_runs["pool"])[0], medians(pool_runs["decode pool"])[0]

        order = [decode_name, "probe", "cuts", "scenedetect CLI adaptive", "scenedetect CLI content",
                 "clip", "sample", "motion", "text", e2e_name]
        head = f"  {'stage':28s} {'wall s':>7s} {'video s/s':>9s} {'x decode':>8s} {'CPU s':>7s} {'x decode CPU':>12s}"

        def line(k, t, dur):
            return (f"  {k:28s} {t[k]:7.2f} {dur / max(t[k], 1e-9):9.1f} {t[decode_name] / max(t[k], 1e-9):8.2f} "
                    f"{t['cpu:' + k]:7.2f} {t['cpu:' + decode_name] / max(t['cpu:' + k], 1e-9):12.2f}")

        print(f"\nCuration throughput (seconds of video per second; higher is better), medians of {args.repeats} "
              "interleaved rounds.")
        print("Wall-time ratios move with machine load; CPU-time ratios (this process + children) are steadier.")
        print("load average " + ", ".join(f"{x:.1f}" for x in os.getloadavg()) + f", {os.cpu_count()} cores")
        for name, desc, dur, timings in rows:
            print(f"\n{name}: {desc}")
            print(head)
            for k in order:
                if k in timings:
                    print(line(k, timings, dur))
            print(f"  cut stage vs scenedetect CLI (wall): {timings['scenedetect CLI adaptive'] / timings['cuts']:.2f}x "
                  f"(adaptive), {timings['scenedetect CLI content'] / timings['cuts']:.2f}x (content) faster "
                  f"while running 6 detectors at 3 rates")
        print(f"\nall files: {total_video:.1f} s of video")
        print(head)
        for k in order:
            if k in totals:
                print(line(k, totals, total_video))
        print(f"  {'pool, ' + str(args.workers) + ' workers':28s} {pool_wall:7.2f} {total_video / pool_wall:9.1f} "
              f"{decode_pool_wall / pool_wall:8.2f}   (x decode-only pool of {args.workers}: {decode_pool_wall:.2f} s)")
        print(f"\ncut stage / scenedetect CLI (adaptive) speed: wall {totals['scenedetect CLI adaptive'] / totals['cuts']:.2f}x, "
              f"CPU {totals['cpu:scenedetect CLI adaptive'] / totals['cpu:cuts']:.2f}x; "
              f"end to end / decode limit: wall {totals[decode_name] / totals[e2e_name]:.2f}, "
              f"CPU {totals['cpu:' + decode_name] / totals['cpu:' + e2e_name]:.2f} (1 process); "
              f"pool of {args.workers} vs decode pool of {args.workers}: {decode_pool_wall / pool_wall:.2f}")
        bars = {"cut_less_cpu": totals["cpu:scenedetect CLI adaptive"] / totals["cpu:cuts"],
                "e2e_x_decode": totals["cpu:" + decode_name] / totals["cpu:" + e2e_name]}
        print_bars(bars, corpus_table(tmp, args.workers, args.repeats, args.corpus_videos) if args.corpus else None)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
