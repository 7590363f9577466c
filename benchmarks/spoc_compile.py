"""SPoC compile throughput: plain serial g++ (the peer) vs our harness, with and without the sandbox.

    PYTHONPATH=src python benchmarks/spoc_compile.py [--n 8] [--rounds 3] [--workers 2]

Rows (programs per second; every row runs once per round, rows interleaved within a round, so a change
of machine load hits all rows alike; medians over rounds; ratios to the plain g++ median):
  plain g++          one `g++ prog.cpp -o prog` after another on the host, no precompiled header
  PCH, serial        our flags with the precompiled bits/stdc++.h, one at a time, in the sandbox
  PCH + parallel     the same over the harness's worker pool (compile + link), sandbox / --insecure
  batch check        candidate programs through `Harness.check_many` (one g++ run per 32), sandbox / --insecure
  cache hit          the batch's programs again (results keyed by the source hash)
  search             candidates evaluated per second by best-first search (budget 100) on a real program
The last column divides a sandboxed row by its --insecure twin of the same rounds.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from genlab.systems.spoc.data import SPLITS, committed_subset_ids, default_data_dir, load_tsv, select_ids  # noqa: E402
from genlab.systems.spoc.harness import Harness, HarnessConfig, stitch  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=8, help="programs per row and round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--data", default=None, help="SPoC data folder (default: as `genlab spoc`)")
    args = ap.parse_args()
    data = Path(args.data) if args.data else default_data_dir()
    programs = select_ids(load_tsv(data / SPLITS["testp"]), committed_subset_ids())
    rng = random.Random(0)
    gold = [stitch([line.code for line in p.lines], [line.indent for line in p.lines]) for p in programs]
    tag = iter(range(10**9))

    def fresh(k: int) -> list[str]:  # programs nobody compiled before (a comment makes each source unique)
        return [src + f"// fresh {next(tag)}\n" for src in rng.sample(gold, k)]

    def candidates(k: int) -> list[str]:  # as the search sees them: gold with a line or two broken, most fail
        out = []
        for p in rng.sample(programs, k):
            codes = [line.code for line in p.lines]
            for j in rng.sample(p.annotated_indices, min(2, len(p.annotated_indices))):
                codes[j] = codes[j].replace(";", "", 1) if rng.random() < 0.5 else codes[j]
            out.append(stitch(codes, [line.indent for line in p.lines]) + f"// cand {next(tag)}\n")
        return out

    caches = [Path(tempfile.mkdtemp(prefix="spoc-bench-")) for _ in range(2)]
    try:
        sandboxed = Harness(data / "testcases", caches[0], HarnessConfig(workers=args.workers))
        insecure = Harness(data / "testcases", caches[1], HarnessConfig(workers=args.workers, insecure=True))
        from genlab.systems.spoc.cli import build_translator
        from genlab.systems.spoc.search import SearchConfig, search
        from genlab.systems.spoc.translate import candidates_for

        searched = rng.sample(programs, args.rounds)
        cands = candidates_for(build_translator("retrieval", data), searched, 100, caches[0])
        small = max(2, args.n // 4)
        last_batch: list[str] = []

        def plain() -> int:
            with tempfile.TemporaryDirectory() as tmp:
                for src in fresh(small):
                    (Path(tmp) / "p.cpp").write_text(src)
                    subprocess.run(["g++", "-std=gnu++11", "-O1", "-w", "p.cpp", "-o", "p"], cwd=tmp, check=True)
            return small

        def pch_serial() -> int:
            for src in fresh(small):
                with sandboxed.run_folder() as (folder, slot):
                    sandboxed.compile(src, folder, slot)  # one gold program of 200 does not compile: timed alike
            return small

        def parallel(harness: Harness) -> Callable[[], int]:
            def compile_one(src: str) -> bool:
                with harness.run_folder() as (folder, slot):
                    return harness.compile(src, folder, slot)[0]

            def row() -> int:
                srcs = fresh(args.n)
                for f in [harness._pool.submit(compile_one, s) for s in srcs]:
                    f.result()
                return len(srcs)
            return row

        def batch(harness: Harness) -> Callable[[], int]:
            def row() -> int:
                nonlocal last_batch
                srcs = candidates(args.n * 4)
                harness.check_many(srcs)
                if harness is sandboxed:
                    last_batch = srcs
                return len(srcs)
            return row

        def cache_hit() -> int:
            sandboxed.check_many(last_batch)
            return len(last_batch)

        round_no = 0

        def search_row() -> int:
            p = searched[round_no]
            return search(p, cands[p.uid], sandboxed, SearchConfig(budget=100, method="best_first")).used

        rows: list[tuple[str, Callable[[], int]]] = [
            ("plain g++, serial (peer)", plain),
            ("PCH, serial", pch_serial),
            (f"PCH + parallel ({args.workers} workers)", parallel(sandboxed)),
            (f"PCH + parallel ({args.workers} workers), --insecure", parallel(insecure)),
            (f"batch syntax check ({args.n * 4} candidates)", batch(sandboxed)),
            (f"batch syntax check ({args.n * 4} candidates), --insecure", batch(insecure)),
            ("cache hit (the batch again)", cache_hit),
            ("search: candidates evaluated (best-first, budget 100)", search_row),
        ]
        rates: dict[str, list[float]] = {name: [] for name, _ in rows}
        counts: dict[str, int] = {name: 0 for name, _ in rows}
        for round_no in range(args.rounds):  # noqa: B007 - search_row reads it
            for name, fn in rows:
                start = time.perf_counter()
                k = fn()
                rates[name].append(k / (time.perf_counter() - start))
                counts[name] += k
        sandboxed.close()
        insecure.close()
    finally:
        for cache in caches:
            shutil.rmtree(cache, ignore_errors=True)
    median = {name: statistics.median(r) for name, r in rates.items()}
    plain_rate = median[rows[0][0]]
    print(f"{args.rounds} interleaved rounds; medians of programs per second")
    print(f"{'row':62s}{'programs':>9s}{'per s':>10s}{'x plain':>9s}{'sandbox / --insecure':>22s}")
    for name, _ in rows:
        twin = median.get(f"{name}, --insecure")
        vs = f"{median[name] / twin:22.2f}" if twin else ""
        print(f"{name:62s}{counts[name]:9d}{median[name]:10.3g}{median[name] / plain_rate:9.3g}{vs}")


if __name__ == "__main__":
    main()
