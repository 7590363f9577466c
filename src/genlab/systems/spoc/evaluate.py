"""`genlab spoc eval`: every search method on a set of programs; resumable JSON lines; a summary table."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path

from tqdm import tqdm

from genlab.systems.spoc.data import Program
from genlab.systems.spoc.harness import Harness
from genlab.systems.spoc.search import Localiser, SearchConfig, search
from genlab.systems.spoc.translate import Candidate, gold_rank, line_accuracy, oracle_coverage

# The paper's TestP figures (project page), from a model trained on about 4x our training data.
PAPER = {
    "top_one": 17.8,
    ("best_first", 10): 26.5, ("best_first", 100): 32.5,
    ("compiler", 10): 28.0, ("compiler", 100): 32.5,
    ("multiclass", 10): 28.4, ("multiclass", 100): 34.2,
    ("prefix", 10): 25.3, ("prefix", 100): 33.0,
    "oracle": 55.2, "line@1": 84.0,
}
METHOD_NAMES = {"best_first": "best-first, no localisation", "compiler": "compiler-reported line",
                "multiclass": "multiclass localiser", "prefix": "prefix-based pruning"}


def evaluate_program(program: Program, cands: list[list[Candidate]], harness: Harness, methods: Sequence[str],
                     budget: int, localiser: Localiser | None = None) -> dict:
    record = {"uid": program.uid, "probid": program.probid, "lines": len(program.lines),
              "gold_ranks": [gold_rank(c, line.code) if line.annotated else -1
                             for line, c in zip(program.lines, cands)]}
    for method in methods:
        start = time.perf_counter()
        res = search(program, cands, harness, SearchConfig(budget=budget, method=method), localiser)
        d = asdict(res)
        d["seconds"] = round(time.perf_counter() - start, 2)  # wall time, with the shared compile/run cache
        d.pop("source")
        d["statuses"] = _compress(d["statuses"])
        record[method] = d
    return record


def _compress(statuses: list[str]) -> dict:
    out: dict[str, int] = {}
    for s in statuses:
        out[s] = out.get(s, 0) + 1
    return out


def run_eval(programs: Sequence[Program], cands: dict[str, list[list[Candidate]]], harness: Harness,
             out_path: str | Path, methods: Sequence[str], budget: int, localiser: Localiser | None = None,
             workers: int = 2, progress: bool = True) -> list[dict]:
    """Evaluate programs not yet in `out_path` (JSON lines, appended as each finishes); return all records."""
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    done: dict[str, dict] = {}  # uid -> merged record (methods may come from several runs)
    if out_path.exists():
        for line in out_path.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by an interruption
            if rec.get("budget") == budget:
                done.setdefault(rec["uid"], {}).update(rec)
    todo = [p for p in programs if not all(m in done.get(p.uid, {}) for m in methods)]
    lock = threading.Lock()
    bar = tqdm(total=len(programs), initial=len(programs) - len(todo), desc="spoc eval", disable=not progress)

    def one(p: Program) -> None:
        missing = [m for m in methods if m not in done.get(p.uid, {})]
        rec = evaluate_program(p, cands[p.uid], harness, missing, budget, localiser)
        rec["budget"] = budget
        with lock:
            with open(out_path, "a") as f:
                f.write(json.dumps(rec) + "\n")
            done.setdefault(p.uid, {}).update(rec)
            bar.update(1)
            ok = sum(r.get(methods[0], {}).get("passed_hidden", False) for r in done.values())
            bar.set_postfix({methods[0]: f"{ok}/{len(done)}"})  # the first method's successes so far

    pool = ThreadPoolExecutor(max_workers=max(1, workers))
    try:
        for fut in [pool.submit(one, p) for p in todo]:
            fut.result()
    except BaseException:  # Ctrl-C, SIGTERM, an error: stop the runs in flight instead of finishing the queue
        harness.stop()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    finally:
        bar.close()
    pool.shutdown()
    return [done[p.uid] for p in programs if all(m in done.get(p.uid, {}) for m in methods)]


def load_records(out_path: str | Path, programs: Sequence[Program], methods: Sequence[str], budget: int) -> list[dict]:
    """Merged records of `out_path` for the programs that have every method (in program order)."""
    done: dict[str, dict] = {}
    out_path = Path(out_path)
    if out_path.exists():
        for line in out_path.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if rec.get("budget") == budget:
                done.setdefault(rec["uid"], {}).update(rec)
    return [done[p.uid] for p in programs if all(m in done.get(p.uid, {}) for m in methods)]


def summarise(records: Sequence[dict], programs: Sequence[Program], cands: dict[str, list[list[Candidate]]],
              methods: Sequence[str], budgets: Sequence[int] = (1, 10, 100), paper: bool = True) -> tuple[str, dict]:
    """The table; `paper`: print the paper's TestP figures beside ours (only meaningful on TestP)."""
    n = len(records)
    figures: dict = {"programs": n}
    lines = [f"SPoC evaluation on {n} programs (success = the first program passing the public tests also"
             " passes the hidden ones)", ""]
    header = f"{'method':32s}" + "".join(f"{'@' + str(b):>9s}" for b in budgets) + ("   paper @10 / @100" if paper else "")
    lines.append(header)
    top = 100.0 * sum(r[methods[0]]["top1_status"] == "pass" for r in records) / max(n, 1)
    figures["top_one"] = top
    lines.append(f"{'top-one (all rank-1 lines)':32s}{top:9.1f}"
                 + (" " * 9 * (len(budgets) - 1) + f"   {PAPER['top_one']}" if paper else ""))
    for m in methods:
        row = f"{METHOD_NAMES.get(m, m):32s}"
        for b in budgets:
            v = 100.0 * sum(r[m]["passed_hidden"] and r[m]["used"] <= b for r in records) / max(n, 1)
            figures[f"{m}@{b}"] = v
            row += f"{v:9.1f}"
        if paper:
            row += f"   {PAPER.get((m, 10), '-')} / {PAPER.get((m, 100), '-')}"
        lines.append(row)
    timed = [m for m in methods if records and all("seconds" in r[m] for r in records)]
    if timed:  # older records have no time
        for m in timed:
            figures[f"{m}_seconds"] = sum(r[m]["seconds"] for r in records)
        lines += ["", "search time (wall seconds summed over programs; the compile/run cache is shared, so a"
                  " method run after another reuses its compilations): "
                  + ", ".join(f"{m} {figures[f'{m}_seconds']:.0f} s" for m in timed)]
    done = {r["uid"] for r in records}
    progs = [p for p in programs if p.uid in done]
    acc = line_accuracy(progs, cands)
    figures["line_accuracy"] = acc
    figures["oracle"] = 100.0 * oracle_coverage(progs, cands)
    lines += ["", "line accuracy (gold among top-k, canonical tokens): "
              + ", ".join(f"@{k} {100 * v:.1f}%" for k, v in acc.items())
              + (f"   (paper @1: {PAPER['line@1']}%)" if paper else ""),
              f"top-M oracle coverage (every gold line among the candidates): {figures['oracle']:.1f}%"
              + (f"   (paper: {PAPER['oracle']}%)" if paper else "")]
    return "\n".join(lines), figures
