"""SPoC compile throughput: plain serial g++ vs our harness (PCH + parallel + batch syntax checks + cache).

    PYTHONPATH=src python benchmarks/spoc_compile.py [--n 16] [--workers 2]

Rows (programs per second, ratio to plain serial g++ measured in the same run):
  plain g++          one `g++ prog.cpp -o prog` after another, no precompiled header
  PCH, serial        our flags with the precompiled bits/stdc++.h, one at a time
  PCH + parallel     the same over the harness's worker pool (compile + link)
  batch syntax check candidate programs checked through `Harness.check_many` (one g++ run per 32)
  cache hit          the same programs again (results keyed by the source hash)
  search             candidates evaluated per second by best-first search (budget 100) on real programs
"""

from __future__ import annotations

import argparse
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from genlab.systems.spoc.data import SPLITS, committed_subset_ids, default_data_dir, load_tsv, select_ids  # noqa: E402
from genlab.systems.spoc.harness import Harness, HarnessConfig, stitch  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=16, help="programs per row")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--search-programs", type=int, default=2)
    args = ap.parse_args()
    data = default_data_dir()
    programs = select_ids(load_tsv(data / SPLITS["testp"]), committed_subset_ids())
    rng = random.Random(0)
    gold = [stitch([line.code for line in p.lines], [line.indent for line in p.lines]) for p in programs]
    cache = Path(tempfile.mkdtemp(prefix="spoc-bench-"))
    rows = []
    try:
        harness = Harness(data / "testcases", cache, HarnessConfig(workers=args.workers))
        # each row gets programs nobody compiled before (a comment makes the source unique)
        def fresh(tag: str, k: int) -> list[str]:
            return [src + f"// {tag} {i}\n" for i, src in enumerate(rng.sample(gold, k))]

        plain_n = max(4, args.n // 4)
        srcs = fresh("plain", plain_n)
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            for src in srcs:
                (Path(tmp) / "p.cpp").write_text(src)
                subprocess.run(["g++", "-std=gnu++11", "-O1", "-w", "p.cpp", "-o", "p"], cwd=tmp, check=True)
            plain = plain_n / (time.perf_counter() - t)
        rows.append(("plain g++, serial", plain_n, plain))

        srcs = fresh("pch", plain_n)
        t = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            for src in srcs:
                ok, msg = harness._compile(src, Path(tmp))
                assert ok, msg
        rows.append(("PCH, serial", plain_n, plain_n / (time.perf_counter() - t)))

        srcs = fresh("par", args.n)

        def compile_one(src: str) -> bool:
            with tempfile.TemporaryDirectory() as tmp:
                return harness._compile(src, Path(tmp))[0]

        t = time.perf_counter()
        assert all(f.result() for f in [harness._pool.submit(compile_one, s) for s in srcs])
        rows.append((f"PCH + parallel ({harness.workers} workers)", args.n, args.n / (time.perf_counter() - t)))

        # candidate programs as the search sees them: gold with a few lines broken, most fail to compile
        cand = []
        for i, p in enumerate(rng.sample(programs, args.n * 4)):
            codes = [line.code for line in p.lines]
            for j in rng.sample(p.annotated_indices, min(2, len(p.annotated_indices))):
                codes[j] = codes[j].replace(";", "", 1) if rng.random() < 0.5 else codes[j]
            cand.append(stitch(codes, [line.indent for line in p.lines]) + f"// cand {i}\n")
        t = time.perf_counter()
        res = harness.check_many(cand)
        rows.append((f"batch syntax check ({sum(not ok for ok, _ in res)}/{len(cand)} fail)", len(cand),
                     len(cand) / (time.perf_counter() - t)))
        t = time.perf_counter()
        harness.check_many(cand)
        rows.append(("cache hit (same candidates again)", len(cand), len(cand) / (time.perf_counter() - t)))

        from genlab.systems.spoc.cli import build_translator
        from genlab.systems.spoc.search import SearchConfig, search
        from genlab.systems.spoc.translate import candidates_for

        chosen = rng.sample(programs, args.search_programs)
        cands = candidates_for(build_translator("retrieval", data), chosen, 100, cache)
        used, t = 0, time.perf_counter()
        for p in chosen:
            used += search(p, cands[p.uid], harness, SearchConfig(budget=100, method="best_first")).used
        rows.append((f"search: candidates evaluated ({len(chosen)} programs)", used, used / (time.perf_counter() - t)))
        harness.close()
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    print(f"{'row':48s}{'programs':>9s}{'per s':>11s}{'x plain':>10s}")
    for name, n, rate in rows:
        print(f"{name:48s}{n:9d}{rate:11.4g}{rate / plain:10.4g}")
    print("(shared 2-core machine loaded by 7 other helpers: absolute rates are noisy; ratios are same-run)")


if __name__ == "__main__":
    main()
