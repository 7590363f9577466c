"""The SD3 formulation study machinery, end to end at toy scale (fast tier) and study_small (slow tier)."""

import json

import pytest

from genlab.systems.t2i.study.config import preset, study_small
from genlab.systems.t2i.study.report import PAPER_TABLE1, rank_table, spearman


def test_presets_cover_the_issue():
    cfg = study_small()
    names = [f.name for f in cfg.formulations]
    for want in ("rf", "rf/lognorm(0.00, 1.00)", "rf/lognorm(0.50, 0.60)", "rf/lognorm(-0.50, 1.00)",
                 "rf/mode(1.29)", "rf/cosmap", "eps/linear", "v/cos", "edm(-1.20, 1.20)"):
        assert want in names
    runs = cfg.runs()
    assert len(runs) == 9 + 4  # rf and rf/lognorm(0, 1) with 3 seeds
    assert cfg.eval.steps == (5, 10, 25, 50) and cfg.eval.guidance == (1.0, 3.0) and cfg.eval.ema == (True, False)
    assert set(PAPER_TABLE1) <= set(names)


def test_rank_table_and_seed_choice():
    def run(name, seed, fd, acc):
        return {"formulation": name, "seed": seed, "evals": {"5_1_ema": {"fd": fd, "accuracy": acc}}}
    results = [run("a", 0, 1.0, 0.9), run("b", 0, 2.0, 0.8), run("a", 1, 3.0, 0.7)]
    assert rank_table(results) == {"a": 1.0, "b": 2.0}
    assert rank_table(results, {"a": 1}) == {"a": 2.0, "b": 1.0}
    assert spearman([1, 2, 3], [10, 20, 30]) == pytest.approx(1.0)


def test_tiny_study_end_to_end_and_resume(tmp_path, genlab_cli):
    pytest.importorskip("genlab.systems.t2i.model")
    out = tmp_path / "study"
    res = genlab_cli("t2i", "study", "--preset", "study_tiny", "--out", str(out), timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    data = json.loads((out / "summary.json").read_text())
    summary, results = data["summary"], data["results"]
    cfg = preset("study_tiny")
    assert summary["formulations"] == sorted(f.name for f in cfg.formulations)
    n_settings = len(cfg.eval.steps) * len(cfg.eval.guidance) * len(cfg.eval.ema)
    for r in results:
        assert len(r["evals"]) == n_settings
        for e in r["evals"].values():
            assert e["fd"] > 0 and 0.0 <= e["accuracy"] <= 1.0 and e["num_samples"] == cfg.eval.num_samples
        assert len(r["val"]["ema_levels"]) == 8
    assert all(1.0 <= v <= 2.0 for v in summary["ranks"]["all"].values())
    assert (out / "summary.md").read_text().count("|") > 10 and (out / "metrics_vs_steps.png").stat().st_size > 0
    # resume: a second call trains and samples nothing again
    evals = sorted(out.glob("runs/*/eval/*.json"))
    stamps = [p.stat().st_mtime_ns for p in evals]
    res2 = genlab_cli("t2i", "study", "--preset", "study_tiny", "--out", str(out), timeout=300)
    assert res2.returncode == 0, res2.stderr[-3000:]
    assert [p.stat().st_mtime_ns for p in evals] == stamps


def test_study_bad_preset(genlab_cli):
    res = genlab_cli("t2i", "study", "--preset", "nope")
    assert res.returncode == 2 and "unknown study preset" in res.stderr


@pytest.mark.slow
def test_study_small_acceptance(tmp_path, genlab_cli):
    """The full study_small (about 90 minutes on 2 dedicated cores): checks the machinery at scale and records
    the ranking; the paper's claims are compared in the README, not asserted (they may honestly disagree)."""
    pytest.importorskip("genlab.systems.t2i.model")
    out = tmp_path / "study_small"
    res = genlab_cli("t2i", "study", "--preset", "study_small", "--out", str(out), timeout=4 * 3600)
    assert res.returncode == 0, res.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())["summary"]
    print((out / "summary.md").read_text())
    assert summary["config"]["classifier_test_accuracy"] >= 0.98
    best = max(m["accuracy"] for m in summary["metrics"].values())
    assert best > 0.5  # well above chance (0.1): the models learned the classes
