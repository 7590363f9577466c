"""The whole pipeline on the toy world: translate -> best-first search -> g++ -> tests."""

from tests.helpers import run_genlab
from tests.systems.spoc import toy


def test_eval_end_to_end_on_a_toy_split(tmp_path):
    data = toy.build(tmp_path)
    out = tmp_path / "eval.jsonl"
    args = ["spoc", "eval", "--data", str(data), "--split", "testp", "--all", "--budget", "10", "--methods",
            "best_first,compiler", "--cache", str(tmp_path / "cache"), "--out", str(out), "--workers", "2",
            "--no-progress"]
    result = run_genlab(*args, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "best-first, no localisation" in result.stdout and "paper" in result.stdout
    lines = out.read_text().splitlines()
    assert len(lines) == 2
    # every pseudocode line has an exact training template with copying: both programs are solved
    assert "100.0" in result.stdout.split("best-first, no localisation")[1].split("\n")[0]
    again = run_genlab(*args, timeout=600)  # resumes: nothing left to do
    assert again.returncode == 0 and len(out.read_text().splitlines()) == 2
    only = run_genlab(*args[:-1], "--translate-only", timeout=600)  # no search: the translator's figures alone
    assert only.returncode == 0, only.stderr
    assert "line accuracy" in only.stdout and "@1 100.0%" in only.stdout and "oracle coverage" in only.stdout
    assert len(out.read_text().splitlines()) == 2


def test_bad_tsv_is_one_clear_error(tmp_path):
    bad = tmp_path / "bad.tsv"
    bad.write_text("text\tcode\tworkerid\tprobid\tsubid\tline\tindent\nx\ty\t1\tP\t1\tnope\t0\n")
    result = run_genlab("spoc", "eval", "--tsv", str(bad), "--testcases", str(tmp_path), "--data", str(tmp_path),
                        "--cache", str(tmp_path / "c"))
    assert result.returncode == 2
    assert "bad.tsv:2: field 'line' expected an integer" in result.stderr


def test_program_selection_by_ids_file(tmp_path):
    import argparse

    from genlab.systems.spoc.cli import _programs

    data = toy.build(tmp_path)
    ids = tmp_path / "ids.txt"
    ids.write_text("# a comment\nMAX-20-01\n")
    args = argparse.Namespace(ids=str(ids), all=False, subset=None, seed=0, tsv=None, split="testp")
    assert [p.uid for p in _programs(args, data / "test" / "spoc-testp.tsv")] == ["MAX-20-01"]
