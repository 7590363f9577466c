"""The judge's sandbox under attack: every attack is contained, and nothing of a run is left behind.

As root (how CI runs) in this process, and as an ordinary user (uid 65534) in a subprocess.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from genlab.systems.spoc.data import TestCase as Case
from genlab.systems.spoc.harness import PREAMBLE, Harness, HarnessConfig, sandbox_uids
from genlab.systems.spoc.sandbox import processes_of
from tests.helpers import ROOT
from tests.systems.spoc import attacks

ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (as CI runs)")
NOBODY = 65534


def _leftovers(token: str) -> list[str]:
    """Processes of the run (compiler and candidates) and files it could have left on the host."""
    found = [f"pid {p}" for p in processes_of(sandbox_uids())] if os.geteuid() == 0 else []
    found += [f"pid {p}: {c}" for p, c in _jailed_processes()]
    found += [str(p) for d in ("/tmp", "/dev/shm", "/var/tmp") for p in Path(d).glob(f"*{token}*")]
    return found


def _jailed_processes() -> list[tuple[int, str]]:
    """This process's sandboxed commands still running (a candidate at /box/prog, or cc1plus), as root:
    by the harness's uids, so that other harnesses running at the same time (xdist) do not count."""
    if os.geteuid() != 0:
        return []
    out = []
    for pid in processes_of(sandbox_uids()):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if cmd.startswith("/box/prog") or "cc1plus" in cmd:
            out.append((pid, cmd))
    return out


@pytest.fixture(scope="module")
def attack_context(harness):
    folder = Path(tempfile.mkdtemp(prefix="genlab-attack-ctx-"))
    ctx, sockets = attacks.make_context(folder, secrets.token_hex(6), ROOT / "pyproject.toml",
                                        harness.config.memory_mb)
    yield ctx, sockets
    for s in sockets:
        s.close()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.parametrize("name", attacks.NAMES)
def test_attack_is_contained(harness, attack_context, name):
    ctx, sockets = attack_context
    scratch_before = set(harness.scratch.iterdir())
    out = attacks.run_attack(harness, name, ctx)
    assert attacks.contained(name, out, ctx, harness.sandbox.tree is not None) == "", out
    for s in sockets:  # nobody reached the host's sockets
        with pytest.raises(BlockingIOError):
            s.accept()
    assert _leftovers(ctx.token) == []
    assert set(harness.scratch.iterdir()) == scratch_before  # run folders are removed


@ROOT_ONLY
def test_tree_limits_are_cgroups_as_root(harness):
    assert harness.sandbox.tree is not None, harness.sandbox.describe()


def test_compile_timeout_kills_the_compiler_too(harness):
    """An include bomb keeps cc1plus busy forever; the timeout must take cc1plus down, not only g++."""
    bomb = "#if __INCLUDE_LEVEL__ < 40\n#include __FILE__\n#include __FILE__\n#endif\nint main() {}\n"
    config = HarnessConfig(workers=1, compile_timeout_s=2.0, memory_mb=256)
    with Harness(None, harness.cache_dir, config) as short:
        start = time.perf_counter()
        ev = short.evaluate(PREAMBLE + bomb, "P", {"public": [Case("", "")], "hidden": [Case("", "")]})
        elapsed = time.perf_counter() - start
    assert ev.status == "compile_error" and "timeout" in ev.compile_error, ev
    assert elapsed < 15.0
    assert _jailed_processes() == []


def test_a_changed_test_file_invalidates_the_cached_verdict(harness, tmp_path):
    tests = tmp_path / "tests" / "P"
    tests.mkdir(parents=True)
    (tests / "P_testcases_public.txt").write_text("3\n###ENDINPUT###\n3\n###ENDOUTPUT###\n")
    hidden = tests / "P_testcases_hidden.txt"
    hidden.write_text("4\n###ENDINPUT###\n4\n###ENDOUTPUT###\n")
    echo = PREAMBLE + "int main() { int n; cin >> n; cout << n; }\n"
    with Harness(tmp_path / "tests", harness.cache_dir, harness.config) as h:
        assert h.evaluate(echo, "P").status == "pass"
        hidden.write_text("4\n###ENDINPUT###\n5\n###ENDOUTPUT###\n")  # the hidden answer changes
        assert h.evaluate(echo, "P").status == "hidden_fail"
    with Harness(tmp_path / "tests", harness.cache_dir, harness.config) as h:  # and in a new process's view
        ev = h.evaluate(echo, "P")
        assert ev.status == "hidden_fail" and ev.cached


@ROOT_ONLY
def test_harness_sigkill_leaves_no_candidate_running(harness, tmp_path):
    cache = harness.cache_dir
    script = ("import sys\nfrom genlab.systems.spoc.data import TestCase\n"
              "from genlab.systems.spoc.harness import PREAMBLE, Harness, HarnessConfig\n"
              f"h = Harness(None, {str(cache)!r}, HarnessConfig(workers=1, cpu_s=60, wall_s=60.0))\n"
              "src = PREAMBLE + 'int main() { for (int i = 0; i < 3; i++) fork(); sleep(100); }'\n"
              "h.evaluate(src, 'P', {'public': [TestCase('', '')], 'hidden': [TestCase('', '')]})\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    proc = subprocess.Popen([sys.executable, "-c", script], env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(processes_of(sandbox_uids(proc.pid))) < 8:
            time.sleep(0.1)
        assert len(processes_of(sandbox_uids(proc.pid))) >= 8, "the candidate never started"
    finally:
        proc.kill()
        proc.wait()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and processes_of(sandbox_uids(proc.pid)):
        time.sleep(0.05)
    assert processes_of(sandbox_uids(proc.pid)) == []
    assert list((cache / "work").glob(f"{proc.pid}-*"))  # a SIGKILLed harness cannot clean up ...
    with Harness(None, cache, harness.config):  # ... so the next one does
        assert list((cache / "work").glob(f"{proc.pid}-*")) == []
        cgroups = [p for p in Path("/sys/fs/cgroup").glob(f"*/**/genlab-spoc-{proc.pid}-*")]
        assert cgroups == []


@ROOT_ONLY
def test_attacks_as_an_ordinary_user(harness):
    """The same attacks through a harness that runs as uid 65534: no uid switch, no cgroup (the
    documented fallback: RLIMIT_AS per process x RLIMIT_NPROC), and still nothing reachable."""
    if shutil.which("setpriv") is None or shutil.which("g++") is None:
        pytest.skip("setpriv or g++ missing")
    closed = [p for p in [ROOT, *ROOT.parents] if not p.stat().st_mode & 0o001]
    if closed:  # e.g. a checkout inside `mktemp -d` (0700): the unprivileged user cannot import the code
        pytest.skip(f"uid {NOBODY} cannot enter {closed[0]}, above this checkout")
    folder = Path(tempfile.mkdtemp(prefix="genlab-attack-user-"))
    try:
        token = secrets.token_hex(6)
        ctx, sockets = attacks.make_context(folder / "ctx", token, ROOT / "pyproject.toml", 256)
        cache = folder / "cache"
        cache.mkdir()
        for pch in harness.cache_dir.glob("pch-*"):  # the same flags: reuse the precompiled header
            shutil.copytree(pch, cache / pch.name)
        for p in [folder, *folder.rglob("*")]:
            os.lchown(p, NOBODY, NOBODY)
        ctx_file = folder / "ctx.json"
        ctx_file.write_text(attacks.context_json(ctx))
        env = {"PATH": "/usr/bin:/bin", "HOME": str(folder), "GENLAB_CACHE": str(cache),
               "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}", "PYTHONDONTWRITEBYTECODE": "1"}
        proc = subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", sys.executable,
                               "-m", "tests.systems.spoc.attacks", str(ctx_file), str(cache)],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        report = json.loads(proc.stdout.strip().splitlines()[-1])
        assert "RLIMIT_AS" in report.pop("_mode") and "RLIMIT_AS" in proc.stderr  # the fallback is said
        assert report == {name: "" for name in attacks.NAMES}
        assert [str(p) for d in ("/tmp", "/dev/shm") for p in Path(d).glob(f"*{token}*")] == []
        for s in sockets:
            with pytest.raises(BlockingIOError):
                s.accept()
            s.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_missing_bubblewrap_refuses_unless_insecure(tmp_path, monkeypatch, capsys):
    from genlab.errors import GenlabError

    monkeypatch.setenv("PATH", str(tmp_path))  # no bwrap (nor anything else) on PATH
    with pytest.raises(GenlabError, match="apt-get install bubblewrap.*--insecure"):
        Harness(None, tmp_path / "cache", HarnessConfig(workers=1, use_pch=False))


def test_sigkill_of_a_run_signal_is_a_clean_status(harness):
    """A candidate killing itself is a runtime error, not a timeout or a harness failure."""
    ev = harness.evaluate(PREAMBLE + "int main() { raise(SIGSEGV); }\n", "P",
                          {"public": [Case("", "")], "hidden": [Case("", "")]})
    assert ev.status == "public_fail" and "runtime_error" in ev.detail and str(128 + signal.SIGSEGV) in ev.detail


def test_insecure_mode_runs_and_says_so_on_every_run(harness, capfd):
    echo = PREAMBLE + "int main() { int n; cin >> n; cout << n; }\n"
    with Harness(None, harness.cache_dir, HarnessConfig(workers=1, insecure=True, memory_mb=256)) as h:
        assert h.evaluate(echo, "P", {"public": [Case("3\n", "3")], "hidden": [Case("4\n", "4")]}).status == "pass"
    assert "INSECURE" in capfd.readouterr().err


def test_a_sandbox_that_fails_to_start_is_retried_not_judged(harness, tmp_path, monkeypatch):
    """bwrap failing before the command starts (EAGAIN from clone under load) is the harness's
    problem: retried, and never reported or cached as the candidate's compile error."""
    marker = tmp_path / "failed-once"
    fake = tmp_path / "bwrap"
    fake.write_text(f"#!/bin/sh\nif [ ! -e {marker} ]; then touch {marker}\n"
                    "echo 'bwrap: Creating new namespace failed: Resource temporarily unavailable' >&2; exit 1; fi\n"
                    f"exec {harness.sandbox.bwrap} \"$@\"\n")
    fake.chmod(0o755)
    monkeypatch.setattr(harness.sandbox, "bwrap", str(fake))
    src = PREAMBLE + f"int main() {{ int n; cin >> n; cout << n; }} // {secrets.token_hex(4)}\n"
    ev = harness.evaluate(src, "P", {"public": [Case("3\n", "3")], "hidden": [Case("4\n", "4")]})
    assert marker.exists() and ev.status == "pass", ev
