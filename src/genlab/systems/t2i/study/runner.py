"""Run a whole study: cached classifier and reference statistics first, then every (formulation, seed) in
parallel processes (spawned, one torch thread each), then the report. Re-running resumes."""

from __future__ import annotations

import concurrent.futures as cf
import json
import multiprocessing as mp
import os
from dataclasses import asdict
from pathlib import Path

from tqdm.auto import tqdm

from genlab.core.eval import classifier
from genlab.core.io import atomic_write_text
from genlab.core.procs import exclusive_folder, exit_with_parent
from genlab.systems.t2i.study import report
from genlab.systems.t2i.study.config import StudyConfig
from genlab.systems.t2i.study.run import reference_stats, run_one


def config_summary(cfg: StudyConfig) -> dict:
    return {"name": cfg.name, "train_steps": cfg.train.steps, "batch": cfg.train.batch_size,
            "net": f"MM-DiT depth {cfg.net.depth}, hidden {cfg.net.hidden_size}, patch {cfg.net.patch_size}",
            "samples_per_setting": cfg.eval.num_samples, "steps": list(cfg.eval.steps),
            "guidance": list(cfg.eval.guidance)}


def _worker(args):
    os.environ["OMP_NUM_THREADS"] = "1"
    cfg, form, seed, out = args
    return run_one(cfg, form, seed, Path(out))


def run_study(cfg: StudyConfig, out: str | os.PathLike, progress: bool = True) -> dict:
    with exclusive_folder(out) as folder:
        return _run_study(cfg, folder, progress)


def _run_study(cfg: StudyConfig, out: Path, progress: bool) -> dict:
    atomic_write_text(out / "config.json", json.dumps(_jsonable(asdict(cfg)), indent=1))
    clf, record = classifier.train_or_load(cfg.classifier, progress=progress)
    atomic_write_text(out / "classifier.json", json.dumps(record, indent=1))
    reference_stats(cfg, clf, out)
    jobs = [(cfg, form, seed, str(out)) for form, seed in cfg.runs()]
    results = []
    bar = tqdm(total=len(jobs), disable=not progress, desc=f"study {cfg.name}")
    if cfg.workers <= 1:
        for job in jobs:
            results.append(_worker(job))
            bar.update()
    else:
        with cf.ProcessPoolExecutor(max_workers=cfg.workers, mp_context=mp.get_context("spawn"),
                                    initializer=exit_with_parent) as pool:
            futures = [pool.submit(_worker, job) for job in jobs]
            for fut in cf.as_completed(futures):
                results.append(fut.result())
                bar.update()
    bar.close()
    results.sort(key=lambda r: (r["formulation"], r["seed"]))
    summary = report.write_report(results, config_summary(cfg) | {"classifier_test_accuracy": record["test_accuracy"]},
                                  out)
    return summary


def collect(cfg: StudyConfig, out: str | os.PathLike) -> list[dict]:
    """Results of every finished (formulation, seed) run found on disk, for a report on a partial study."""
    from genlab.systems.t2i.study.run import run_dir, setting_name

    out = Path(out)
    results = []
    for form, seed in cfg.runs():
        folder = run_dir(out, form, seed)
        val_path = folder / "val.json"
        if not val_path.is_file():
            continue
        record = json.loads(val_path.read_text())
        evals = {}
        for ema in cfg.eval.ema:
            for steps in cfg.eval.steps:
                for scale in cfg.eval.guidance:
                    path = folder / "eval" / f"{setting_name(steps, scale, ema)}.json"
                    if path.is_file():
                        evals[path.stem] = json.loads(path.read_text())
        n_settings = len(cfg.eval.ema) * len(cfg.eval.steps) * len(cfg.eval.guidance)
        if record.get("done") and len(evals) == n_settings:
            results.append({"formulation": form.name, "seed": seed, "val": record["best"],
                            "train_seconds": record.get("train_seconds"), "evals": evals})
    return sorted(results, key=lambda r: (r["formulation"], r["seed"]))


def report_only(cfg: StudyConfig, out: str | os.PathLike) -> dict:
    """Write the report from whatever runs have finished (a partial study says so in its config line)."""
    results = collect(cfg, out)
    if not results:
        from genlab.errors import GenlabError

        raise GenlabError(f"no finished study runs under {out}/runs")
    rec_path = Path(out) / "classifier.json"
    acc = json.loads(rec_path.read_text())["test_accuracy"] if rec_path.is_file() else None
    extra = {"classifier_test_accuracy": acc, "finished_runs": f"{len(results)} of {len(cfg.runs())}"}
    return report.write_report(results, config_summary(cfg) | extra, Path(out))


def _jsonable(obj):
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (int, float, str, bool)) or obj is None:
        return obj
    return repr(obj)
