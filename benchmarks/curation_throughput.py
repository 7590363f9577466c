"""Curation throughput: seconds of video processed per second of wall time, per stage and end to end.

Peers measured in the same run on the same files:
- PySceneDetect's own CLI (`scenedetect -i FILE detect-adaptive` and `detect-content`, its defaults:
  OpenCV backend, automatic downscale) for the cut stage;
- PyAV decode-only (every frame decoded, nothing converted) as the physical limit;
Goals from issue 6: cut stage faster than the CLI; end to end >= 50% of the decode limit; >= 2x real
time on 480p with 2 cores.

    nice /work/venv/bin/python benchmarks/curation_throughput.py [--workers 2] [--files ...]

Timings on a shared machine are noisy: compare ratios within one run, not absolute numbers across runs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from genlab.core.data.video import probe  # noqa: E402
from genlab.systems.video.curation import synthetic  # noqa: E402
from genlab.systems.video.curation.config import default  # noqa: E402
from genlab.systems.video.curation.pipeline import process_video, run  # noqa: E402


def decode_only(path) -> float:
    import av

    t = time.perf_counter()
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        s.thread_type = "SLICE"
        s.codec_context.thread_count = 1
        for _ in c.decode(s):
            pass
    return time.perf_counter() - t


def scenedetect_cli(path, detector: str) -> float:
    exe = shutil.which("scenedetect") or str(Path(sys.executable).parent / "scenedetect")
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        r = subprocess.run([exe, "-q", "-i", str(path), "-o", tmp, detector], capture_output=True, text=True,
                           env={**os.environ, "OMP_NUM_THREADS": "1"})
        el = time.perf_counter() - t
    if r.returncode != 0:
        raise RuntimeError(f"scenedetect failed on {path}: {r.stderr[-300:]}")
    return el


def best(fn, repeats: int):
    return min(fn() for _ in range(repeats))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", nargs="*", default=None)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="curation-bench-"))
    try:
        if args.files:
            files = [Path(f) for f in args.files]
        else:
            shared = Path(os.environ.get("GENLAB_SHARED_DATA", ROOT.parent / "shared" / "data"))
            if not shared.is_dir():
                shared = Path("/work/shared/data")
            synth = tmp / "synthetic_cuts_320x180.mp4"
            synthetic.cuts_video(synth, seed=0)
            files = [shared / "video" / "opencv_vtest_480x360.avi", shared / "video" / "sports2d_demo.mp4", synth]
        config = default()
        rows = []
        totals: dict[str, float] = {}
        total_video = 0.0
        for f in files:
            info = probe(f)
            dur = info.duration_s
            total_video += dur
            dec = best(lambda f=f: decode_only(f), args.repeats)
            cli_a = best(lambda f=f: scenedetect_cli(f, "detect-adaptive"), args.repeats)
            cli_c = best(lambda f=f: scenedetect_cli(f, "detect-content"), args.repeats)
            timings: dict[str, float] = {}
            out = tmp / f"out-{f.stem}"
            t = time.perf_counter()
            process_video(f, config, out, timings=timings)
            e2e = time.perf_counter() - t
            timings.update({"decode-only (PyAV)": dec, "scenedetect CLI adaptive": cli_a,
                            "scenedetect CLI content": cli_c, "end to end (1 process)": e2e})
            for k, v in timings.items():
                totals[k] = totals.get(k, 0.0) + v
            rows.append((f.name, f"{info.width}x{info.height} {info.codec} {info.fps:.0f}fps {dur:.1f}s", dur, timings))

        # the whole set through the process pool (what `genlab video curate --workers N` does)
        out = tmp / "pool"
        t = time.perf_counter()
        run(files, config.__class__(**{**config.__dict__, "workers": args.workers}), out, progress=False)
        pool_wall = time.perf_counter() - t

        order = ["decode-only (PyAV)", "probe", "cuts", "scenedetect CLI adaptive", "scenedetect CLI content",
                 "clip", "sample", "motion", "text", "end to end (1 process)"]
        print("\nCuration throughput (seconds of video per wall second; higher is better). Shared, loaded machine.")
        for name, desc, dur, timings in rows:
            print(f"\n{name}: {desc}")
            print(f"  {'stage':28s} {'wall s':>8s} {'video s/s':>10s} {'x decode':>9s}")
            for k in order:
                if k in timings:
                    v = timings[k]
                    print(f"  {k:28s} {v:8.2f} {dur / max(v, 1e-9):10.1f} "
                          f"{timings['decode-only (PyAV)'] / max(v, 1e-9):9.2f}")
            print(f"  cut stage vs scenedetect CLI: {timings['scenedetect CLI adaptive'] / timings['cuts']:.2f}x "
                  f"(adaptive), {timings['scenedetect CLI content'] / timings['cuts']:.2f}x (content) faster "
                  f"while running 6 detectors at 3 rates")
        print(f"\nall files: {total_video:.1f} s of video")
        print(f"  {'stage':28s} {'wall s':>8s} {'video s/s':>10s} {'x decode':>9s}")
        for k in order:
            if k in totals:
                v = totals[k]
                print(f"  {k:28s} {v:8.2f} {total_video / v:10.1f} {totals['decode-only (PyAV)'] / v:9.2f}")
        print(f"  {'pool, ' + str(args.workers) + ' workers':28s} {pool_wall:8.2f} {total_video / pool_wall:10.1f} "
              f"{totals['decode-only (PyAV)'] / pool_wall:9.2f}")
        print(f"\ncut stage / scenedetect CLI (adaptive) speed: {totals['scenedetect CLI adaptive'] / totals['cuts']:.2f}x; "
              f"end to end / decode limit: {totals['decode-only (PyAV)'] / totals['end to end (1 process)']:.2f} "
              f"(1 process), {totals['decode-only (PyAV)'] / pool_wall:.2f} (pool vs 1-process decode)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
