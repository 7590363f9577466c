"""Timing shared by the benchmarks (run as scripts, so `from _timing import interleaved, threads_line`).

Ours and the peer are timed in turns (A, B, A, B, ...) and each side's median is reported, so a change in
machine load during the run moves both sides alike instead of moving the ratio.

    times = interleaved({"genlab": ours_step, "diffusers": ref_step}, repeats=5)   # {name: median seconds}
    print(threads_line())   # torch threads, OMP_NUM_THREADS, cores, load average: print it beside the table
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable


def interleaved(fns: dict[str, Callable[[], object]], repeats: int, warmup: int = 1,
                clock: Callable[[], float] = time.perf_counter) -> dict[str, float]:
    """Median time of each `fn()`, timed in turns: `warmup` untimed rounds, then `repeats` rounds
    of one call each in the dict's order (A, B, A, B, ...). `clock` is wall time by default;
    `time.process_time` (this process's CPU time) suits one-thread runs on a machine shared with others,
    where wall time also counts the time other processes held the core."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = clock()
            fn()
            times[name].append(clock() - t0)
    return {name: statistics.median(ts) for name, ts in times.items()}


def threads_line() -> str:
    """One line stating what the figures depend on: torch's thread counts, OMP_NUM_THREADS, cores, load."""
    import torch

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    return (f"threads: torch {torch.get_num_threads()} intra-op / {torch.get_num_interop_threads()} inter-op, "
            f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, {os.cpu_count()} cores, "
            f"load average {load} (timed interleaved: A, B, A, B, medians)")


def interleaved_medians(fns: list[Callable[[], object]], repeats: int,
                        clock: Callable[[], float] = time.perf_counter) -> list[float]:
    """`interleaved` for a list: the medians in the list's order (kept for callers written against it)."""
    medians = interleaved({str(i): fn for i, fn in enumerate(fns)}, repeats, clock=clock)
    return [medians[str(i)] for i in range(len(fns))]
