"""The whole pipeline on the toy world: translate -> best-first search -> g++ -> tests."""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from genlab.systems.spoc.harness import sandbox_uids
from genlab.systems.spoc.sandbox import processes_of
from tests.helpers import ROOT, assert_user_error, run_cli_inprocess, run_genlab
from tests.systems.spoc import toy


def test_eval_end_to_end_on_a_toy_split(tmp_path):
    data = toy.build(tmp_path)
    out = tmp_path / "eval.jsonl"
    args = ["spoc", "eval", "--data", str(data), "--split", "testp", "--all", "--budget", "10", "--methods",
            "best_first,compiler", "--cache", str(tmp_path / "cache"), "--out", str(out), "--workers", "2",
            "--quiet"]
    result = run_genlab(*args, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "best-first, no localisation" in result.stdout and "paper" in result.stdout
    lines = out.read_text().splitlines()
    assert len(lines) == 2
    # every pseudocode line has an exact training template with copying: both programs are solved
    assert "100.0" in result.stdout.split("best-first, no localisation")[1].split("\n")[0]
    assert "search time" in result.stdout and all("seconds" in json.loads(x)["compiler"] for x in lines)
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


@pytest.mark.parametrize("flag,value,needle", [("--ids", "/missing", "--ids: file not found: /missing"),
                                               ("--methods", "best_first,foo", "--methods"),
                                               ("--budget", "0", "--budget"),
                                               ("--budgets", "1,x", "--budgets")])
def test_bad_eval_arguments_are_one_line_errors_before_any_work(tmp_path, capsys, monkeypatch, flag, value, needle):
    from genlab.systems.spoc import cli

    def no_translator(*args, **kwargs):
        raise AssertionError("the translator ran before the arguments were checked")

    monkeypatch.setattr(cli, "build_translator", no_translator)
    data = toy.build(tmp_path)
    code, _, err = run_cli_inprocess(["spoc", "eval", "--data", str(data), "--cache", str(tmp_path / "c"), flag, value],
                                     capsys)
    assert_user_error(code, err, needle, value)


def _sandboxed_processes(pid: int) -> list[int]:
    """Processes the eval started (as root: its sandbox uids; else: candidates seen as /box/prog)."""
    if os.geteuid() == 0:
        return processes_of(sandbox_uids(pid))
    found = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if (d / "cmdline").read_bytes().startswith(b"/box/prog"):
                    found.append(int(d.name))
            except OSError:
                pass
    return found


def _session_members(sid: int) -> list[int]:
    found = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
                if int(stat[stat.rindex(")") + 2:].split()[3]) == sid:
                    found.append(int(d.name))
            except (OSError, ValueError, IndexError):
                pass
    return found


@pytest.mark.parametrize("signum,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_one_signal_stops_eval_and_leaves_nothing(tmp_path, signum, code):
    if shutil.which("bwrap") is None or shutil.which("g++") is None:
        pytest.skip("bubblewrap or g++ missing")
    data = toy.build(tmp_path)
    tsv = (data / "test" / "spoc-testp.tsv").read_text().splitlines(keepends=True)
    # every candidate of SUM sleeps (an unannotated line keeps its gold code): runs hit the wall limit
    tsv.insert(2, "\tsleep(100);\t01\tSUM\t10\t0\t1\n")
    (data / "test" / "spoc-testp.tsv").write_text("".join(tsv))
    cache = tmp_path / "cache"
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    before = set(Path(tempfile.gettempdir()).glob("spoc-*"))
    proc = subprocess.Popen([sys.executable, "-m", "genlab", "spoc", "eval", "--data", str(data), "--all", "--budget", "50",
                             "--methods", "best_first", "--cache", str(cache), "--out", str(tmp_path / "e.jsonl"),
                             "--workers", "2", "--quiet"], env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not _sandboxed_processes(proc.pid) and proc.poll() is None:
            time.sleep(0.1)
        assert proc.poll() is None and _sandboxed_processes(proc.pid), "no candidate was running"
        start = time.monotonic()
        proc.send_signal(signum)
        proc.wait(timeout=30)
        elapsed = time.monotonic() - start
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == code, proc.stderr.read()[-2000:]
    assert elapsed < 10.0
    assert _session_members(proc.pid) == [] and _sandboxed_processes(proc.pid) == []
    assert set(Path(tempfile.gettempdir()).glob("spoc-*")) == before
    assert list((cache / "work").glob(f"{proc.pid}-*")) == []  # the run folders went with it


def test_eval_warns_when_programs_overlap_the_training_data(tmp_path, capsys):
    data = toy.build(tmp_path)
    code, out, err = run_cli_inprocess(["spoc", "eval", "--data", str(data), "--tsv",
                                        str(data / "train" / "split" / "spoc-train-eval.tsv"), "--testcases",
                                        str(data / "testcases"), "--cache", str(tmp_path / "c"), "--translate-only"], capsys)
    assert code == 0, err
    assert "warning: 2 of 2 programs are also in the translator's training data" in out


def test_train_builds_the_translator_in_the_cache_and_translate_uses_it(tmp_path, capsys):
    data, cache = toy.build(tmp_path), tmp_path / "cache"
    code, out, err = run_cli_inprocess(["spoc", "translate", "--data", str(data), "--cache", str(cache), "read z"], capsys)
    assert code == 0 and "no trained translator" in out and "genlab spoc train" in out
    code, out, err = run_cli_inprocess(["spoc", "train", "--data", str(data), "--cache", str(cache), "--only", "translator",
                                        "--preset", "tiny", "--steps", "2", "--quiet"], capsys)
    assert code == 0, err
    assert (cache / "seq2seq" / "model.json").is_file() and (cache / "seq2seq" / "resume.safetensors").is_file()
    code, out, err = run_cli_inprocess(["spoc", "translate", "--data", str(data), "--cache", str(cache), "read z"], capsys)
    assert code == 0 and "no trained translator" not in out and "cin >> z;" in out
    code, _, err = run_cli_inprocess(["spoc", "train", "--data", str(data), "--cache", str(cache), "--splits", "nope"], capsys)
    assert_user_error(code, err, "--splits", "nope")
