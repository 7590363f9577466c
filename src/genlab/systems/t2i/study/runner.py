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

from genlab.core.eval import classifier as C
from genlab.core.io import atomic_write_text
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
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "config.json", json.dumps(_jsonable(asdict(cfg)), indent=1))
    clf, record = C.train_or_load(cfg.classifier, progress=progress)
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
        with cf.ProcessPoolExecutor(max_workers=cfg.workers, mp_context=mp.get_context("spawn")) as pool:
            futures = [pool.submit(_worker, job) for job in jobs]
            for fut in cf.as_completed(futures):
                results.append(fut.result())
                bar.update()
    bar.close()
    results.sort(key=lambda r: (r["formulation"], r["seed"]))
    summary = report.write_report(results, config_summary(cfg) | {"classifier_test_accuracy": record["test_accuracy"]},
                                  out)
    return summary


def _jsonable(obj):
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (int, float, str, bool)) or obj is None:
        return obj
    return repr(obj)
