"""Acceptance figures on the real data (slow tier): harness sanity, search methods on the committed subset."""

import os
import re

import pytest

from tests.helpers import SHARED_DATA, run_genlab

DATA = SHARED_DATA / "spoc"
pytestmark = pytest.mark.slow


def _need_data():
    if not (DATA / "test" / "spoc-testp.tsv").is_file():
        pytest.skip(f"SPoC data not found at {DATA}")


def test_gold_programs_of_the_subset_pass_their_hidden_tests(tmp_path):
    _need_data()
    result = run_genlab("spoc", "sanity", "--data", str(DATA), "--cache", str(tmp_path / "cache"), "--workers", "2",
                        timeout=3600)
    assert result.returncode == 0, result.stderr
    print(result.stdout)
    ok, total = map(int, re.search(r"hidden tests: (\d+)/(\d+)", result.stdout).groups())
    assert total == 200 and ok / total >= 0.98


def test_search_beats_top_one_and_localisation_beats_plain(tmp_path):
    """Budget 100 on the committed 200-program subset (GENLAB_SPOC_ACCEPT_N=k for its first k)."""
    _need_data()
    n = os.environ.get("GENLAB_SPOC_ACCEPT_N")
    cache = str(tmp_path / "cache")
    # the multiclass localiser is trained first, into this run's own cache (eval skips a method without one)
    trained = run_genlab("spoc", "train-localiser", "--data", str(DATA), "--cache", cache, "--workers", "2",
                         timeout=3 * 3600)
    assert trained.returncode == 0, trained.stderr
    args = ["spoc", "eval", "--data", str(DATA), "--cache", cache, "--budget", "100", "--workers", "2",
            "--quiet", "--out", str(tmp_path / "eval.jsonl"), "--methods", "best_first,compiler,multiclass,prefix"]
    if n:
        args += ["--subset", n]
    result = run_genlab(*args, timeout=24 * 3600)
    assert result.returncode == 0, result.stderr
    print(result.stdout)
    rows = {m: [float(x) for x in re.search(rf"{m}\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)", result.stdout).groups()]
            for m in ("best-first, no localisation", "compiler-reported line", "multiclass localiser",
                      "prefix-based pruning")}
    top = float(re.search(r"top-one \(all rank-1 lines\)\s+([\d.]+)", result.stdout).group(1))
    plain = rows["best-first, no localisation"][2]
    assert plain > top
    assert max(rows[m][2] for m in ("compiler-reported line", "multiclass localiser", "prefix-based pruning")) > plain
