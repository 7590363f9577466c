"""Lines + indentation -> a C++ program; compile with g++ (precompiled header); run in a sandbox.

- `stitch` builds the program: the fixed preamble of the official stitcher, then one physical line
  per pseudocode line, with braces placed from the indentation (a candidate's own leading `}` and
  trailing `{` are dropped and re-derived, so `} else {` and a bare `else` stitch the same way).
- `Harness.evaluate(source, probid)` compiles once, runs the public tests and, if they pass, the
  hidden ones. Results are cached by the hash of (flags, source) in memory and in a SQLite file, so
  every search method shares them (each method still counts its own budget).
- g++ and the candidates run in the bubblewrap sandbox of `sandbox.py` (private read-only filesystem,
  PID/network/IPC namespaces, an unprivileged uid when root, limits on the whole process tree). The
  test cases never enter it: the harness reads them and hands each input over as an open file.
  Every run uses a slot (its own uid and cgroup) and a folder of the harness's private scratch folder
  under the cache; a verdict's cache key includes the test files' content and the sandbox settings.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import math
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from genlab.core.io import cache_dir
from genlab.errors import GenlabError
from genlab.systems.spoc.data import TestCase, load_testcases, test_file
from genlab.systems.spoc.sandbox import BOX, PCH, Bind, Limits, Sandbox, scratch_folder

PREAMBLE = "#include <bits/stdc++.h>\n\nusing namespace std;\n\n"
PREAMBLE_LINES = PREAMBLE.count("\n")


def default_cache_dir() -> Path:
    return cache_dir("spoc")


# --- stitching ------------------------------------------------------------------------------------


def strip_braces(code: str) -> tuple[str, bool]:
    """(core, opens): drop a leading `}` and a trailing `{`; `opens` says a `{` was dropped."""
    core = code.strip()
    opens = False
    if core.endswith("{") and not core.endswith("'{") and not core.endswith('"{'):
        core, opens = core[:-1].rstrip(), True
    while core.startswith("}"):
        core = core[1:].lstrip()
    return core, opens


_HEADER = re.compile(r"(if|else|for|while|do|switch|struct|class|union|enum|namespace|try|catch)\b")


def _opens_block(core: str, had_brace: bool) -> bool:
    """Does a line followed by deeper indentation open a block (vs. continue an expression)?"""
    if had_brace:
        return True
    if core.endswith(";") or core.endswith(","):
        return False
    return bool(_HEADER.match(core)) or core.endswith(")") or core == ""


def stitch(codes: list[str], indents: list[int]) -> str:
    """Program text for code lines at the given indentation; line i sits on PREAMBLE_LINES + i + 1.

    Braces come from the indentation: a block-opening line (control header, function head, or a
    line written with a trailing `{`) followed by deeper lines gets ` {`; the first later line at
    the header's indentation or less closes it with `} `. Deeper lines after a line that does not
    open a block (a continued expression) open nothing.
    """
    if len(codes) != len(indents):
        raise GenlabError(f"stitch: {len(codes)} code lines but {len(indents)} indents")
    out = PREAMBLE.split("\n")[:-1]
    stack: list[int] = []  # indentation of the lines whose `{` is still open
    for i, (code, indent) in enumerate(zip(codes, indents)):
        core, had_brace = strip_braces(code.replace("\n", " "))
        prefix = ""
        while stack and stack[-1] >= indent:
            stack.pop()
            prefix += "} "
        nxt = indents[i + 1] if i + 1 < len(indents) else 0
        suffix = ""
        if (nxt > indent and _opens_block(core, had_brace)) or had_brace:
            suffix = " {"
            stack.append(indent)
        out.append("\t" * indent + prefix + core + suffix)
    if stack:
        out[-1] += " }" * len(stack)
    return "\n".join(out) + "\n"


def source_line_to_index(line_no: int) -> int:
    """1-based line of the stitched source -> 0-based index of the program line (may be out of range)."""
    return line_no - PREAMBLE_LINES - 1


_ERR_LINE = re.compile(r"^[^:\n]*\.cpp:(\d+):(?:\d+:)? (?:fatal )?error:", re.M)


def first_error_line(message: str) -> int | None:
    """The source line of g++'s first reported error, or None."""
    match = _ERR_LINE.search(message)
    return int(match.group(1)) if match else None


# --- configuration and results --------------------------------------------------------------------


@dataclass(frozen=True)
class HarnessConfig:
    cxx: str = "g++"  # found on PATH inside the sandbox, which holds /usr only
    flags: tuple[str, ...] = ("-std=gnu++11", "-O1", "-w", "-fmax-errors=20")
    use_pch: bool = True
    workers: int = 0  # 0 = os.cpu_count()
    compile_timeout_s: float = 30.0  # wall and CPU time of one g++ run (the whole tree, cc1plus included)
    compile_memory_mb: int = 2048
    cpu_s: int = 2  # per test case (RLIMIT_CPU)
    wall_s: float = 5.0  # per test case, then the whole tree is killed
    memory_mb: int = 1024  # the candidate's whole process tree (cgroup), else per process (RLIMIT_AS)
    output_mb: int = 16  # RLIMIT_FSIZE on the stdout file
    nproc: int = 64  # processes of the tree (pids cgroup), else RLIMIT_NPROC of its uid
    max_tests: int = 0  # 0 = all tests of the file
    insecure: bool = False  # no bubblewrap: run on the host filesystem with rlimits only (said on every run)


@dataclass
class RunResult:
    status: str  # ok | timeout | memory_limit | output_limit | runtime_error | launch_error
    exit_code: int
    stdout: bytes = b""
    seconds: float = 0.0


@dataclass
class Evaluation:
    status: str  # compile_error | public_fail | hidden_fail | pass
    compile_error: str = ""
    detail: str = ""
    cached: bool = False
    seconds: float = 0.0

    @property
    def compiled(self) -> bool:
        return self.status != "compile_error"

    @property
    def passed_public(self) -> bool:
        return self.status in ("hidden_fail", "pass")

    @property
    def passed_hidden(self) -> bool:
        return self.status == "pass"


@dataclass
class HarnessStats:
    compiles: int = 0
    compile_seconds: float = 0.0
    cache_hits: int = 0
    runs: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


def outputs_match(got: bytes | str, expected: str) -> bool:
    """Compare by whitespace-separated tokens."""
    if isinstance(got, bytes):
        got = got.decode("utf-8", errors="replace")
    return got.split() == expected.split()


# --- the harness ----------------------------------------------------------------------------------


class Harness:
    def __init__(self, testcases_dir: str | Path | None, cache_dir: str | Path | None = None,
                 config: HarnessConfig = HarnessConfig()):
        self.config = config
        self.testcases_dir = Path(testcases_dir) if testcases_dir else None
        self.cache_dir = (Path(cache_dir) if cache_dir else default_cache_dir()).resolve()
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self.workers = config.workers or os.cpu_count() or 1
        self.stats = HarnessStats()
        self._tests: dict[tuple[str, str, int, int], list[TestCase]] = {}
        self._mem: dict[str, Evaluation] = {}
        self._db_lock = threading.Lock()
        self._db = sqlite3.connect(str(self.cache_dir / "results.sqlite"), check_same_thread=False, timeout=60)
        with self._db_lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("CREATE TABLE IF NOT EXISTS results (key TEXT PRIMARY KEY, value TEXT)")
            self._db.commit()
        self._exit = contextlib.ExitStack()
        try:
            self.sandbox = self._exit.enter_context(contextlib.closing(
                Sandbox(self.cache_dir, insecure=config.insecure, uid_base=sandbox_uids()[0])))
            self.scratch = self._exit.enter_context(scratch_folder(self.cache_dir / "work", config.insecure))
            if config.insecure or self.sandbox.tree is None:
                print(self.sandbox.describe(), file=sys.stderr)
            self._free_slots: list[int] = []
            self._slot_count = 0
            self._slot_lock = threading.Lock()
            self._pool = ThreadPoolExecutor(max_workers=self.workers)
            self.pch_dir: Path | None = None  # set after it is built (its build binds none)
            if config.use_pch:
                self.pch_dir = self._build_pch()
        except BaseException:
            self._exit.close()
            with self._db_lock:
                self._db.close()
            raise
        self._settings = json.dumps({"config": asdict(self.config) | {"workers": 0}, "sandbox": self.sandbox.describe()},
                                    sort_keys=True)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._exit.close()
        with self._db_lock:
            self._db.close()

    def stop(self) -> None:
        """Ctrl-C / SIGTERM: kill the runs in flight, refuse new ones, drop queued work."""
        self.sandbox.stop()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> Harness:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is not None:  # Ctrl-C or an error: do not let queued work run on
            self.stop()
        self.close()

    # -- slots (a uid and a cgroup each) and run folders
    @contextlib.contextmanager
    def run_folder(self):
        """(folder, slot): a fresh folder of the scratch area, writable by the slot's uid; removed after."""
        with self._slot_lock:
            if self._free_slots:
                slot = self._free_slots.pop()
            else:
                slot, self._slot_count = self._slot_count, self._slot_count + 1
                if slot >= len(sandbox_uids()):
                    raise RuntimeError(f"more than {len(sandbox_uids())} concurrent sandbox runs")
        folder = Path(tempfile.mkdtemp(prefix="run-", dir=self.scratch))
        try:
            if os.geteuid() == 0:
                uid = self.sandbox.uid(slot)
                os.chown(folder, uid, uid)
            yield folder, slot
        finally:
            shutil.rmtree(folder, ignore_errors=True)
            with self._slot_lock:
                self._free_slots.append(slot)

    def _compile_limits(self, factor: float = 1.0) -> Limits:
        t = self.config.compile_timeout_s * factor
        return Limits(cpu_s=max(1, math.ceil(t)), wall_s=t, memory_mb=self.config.compile_memory_mb, output_mb=int(128 * factor),
                      nproc=32, tmp_mb=512)

    def _run_limits(self) -> Limits:
        cfg = self.config
        return Limits(cpu_s=cfg.cpu_s, wall_s=cfg.wall_s, memory_mb=cfg.memory_mb, output_mb=cfg.output_mb,
                      nproc=cfg.nproc)

    def _gxx(self, folder: Path, slot: int, args: list[str], limits: Limits) -> tuple[int, str, bool]:
        """g++ ARGS in the sandbox with `folder` as /box: (exit code, stderr, timed out)."""
        binds = [Bind(folder, BOX, writable=True)]
        if self.pch_dir is not None:
            binds.append(Bind(self.pch_dir, PCH))
        with open(os.devnull, "rb") as fin, open(os.devnull, "wb") as fout, \
                tempfile.TemporaryFile(dir=self.scratch) as ferr:
            out = self.sandbox.run([self.config.cxx, *args], binds, limits, slot, fin, fout, ferr, cwd=BOX,
                                   compiler=True)
            ferr.seek(0)
            message = ferr.read(1 << 20).decode("utf-8", errors="replace")
        return out.code, message, out.timed_out or out.code in (128 + signal.SIGXCPU, 128 + signal.SIGKILL)

    # -- one-off builds (PCH), guarded by a file lock against concurrent processes
    def _flags_key(self) -> str:
        version = subprocess.run([self.config.cxx, "--version"], capture_output=True, text=True).stdout
        return hashlib.sha256((version + " ".join(self._pch_flags())).encode()).hexdigest()[:16]

    def _pch_flags(self) -> list[str]:
        return [f for f in self.config.flags if not f.startswith("-fmax-errors") and f != "-w"]

    @contextlib.contextmanager
    def _file_lock(self, name: str):
        with open(self.cache_dir / f"{name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def _build_pch(self) -> Path:
        """bits/stdc++.h precompiled in the sandbox (seen there as /pch/spoc_pre.h.gch)."""
        pch_dir = self.cache_dir / f"pch-{self._flags_key()}"
        gch = pch_dir / "spoc_pre.h.gch"
        with self._file_lock("pch"):
            if not gch.exists():
                pch_dir.mkdir(parents=True, exist_ok=True)
                header = pch_dir / "spoc_pre.h"
                header.write_text("#include <bits/stdc++.h>\n")
                os.chmod(header, 0o644)
                with self.run_folder() as (folder, slot):
                    (folder / "spoc_pre.h").write_text(header.read_text())
                    code, message, _ = self._gxx(folder, slot, [*self._pch_flags(), "-x", "c++-header",
                                                               "spoc_pre.h", "-o", "spoc_pre.h.gch"],
                                                 self._compile_limits(4.0))
                    built = folder / "spoc_pre.h.gch"
                    if code != 0 or built.is_symlink() or not built.is_file():
                        raise GenlabError(f"building the precompiled header failed (g++ exit {code}): {message[-500:]}")
                    tmp = pch_dir / f".spoc_pre.h.gch.{os.getpid()}"
                    shutil.copyfile(built, tmp)
                    os.chmod(tmp, 0o644)
                    os.replace(tmp, gch)
        return pch_dir

    # -- cache
    def _key(self, *parts: str) -> str:
        h = hashlib.sha256()
        for part in (self._settings, *parts):
            h.update(part.encode("utf-8", errors="replace") + b"\0")
        return h.hexdigest()

    def _cache_get(self, key: str) -> Evaluation | None:
        hit = self._mem.get(key)
        if hit is None:
            with self._db_lock:
                row = self._db.execute("SELECT value FROM results WHERE key = ?", (key,)).fetchone()
            if row is None:
                return None
            hit = Evaluation(**json.loads(row[0]))
            self._mem[key] = hit
        with self.stats.lock:
            self.stats.cache_hits += 1
        return Evaluation(hit.status, hit.compile_error, hit.detail, cached=True)

    def _cache_put(self, key: str, ev: Evaluation) -> None:
        self._mem[key] = ev
        value = json.dumps({"status": ev.status, "compile_error": ev.compile_error, "detail": ev.detail})
        with self._db_lock:
            self._db.execute("INSERT OR REPLACE INTO results VALUES (?, ?)", (key, value))
            self._db.commit()

    # -- compile
    def compile(self, source: str, folder: Path, slot: int, link: bool = True) -> tuple[bool, str]:
        """g++ on `source` in the sandbox; the binary is `folder/prog`. (ok, g++'s messages)."""
        (folder / "prog.cpp").write_text(source)
        cmd = list(self.config.flags)
        if self.pch_dir is not None:
            cmd += ["-include", f"{PCH}/spoc_pre.h"]
        cmd += ["prog.cpp", "-o", "prog"] if link else ["-fsyntax-only", "prog.cpp"]  # relative to /box: messages say prog.cpp
        start = time.perf_counter()
        code, message, timed_out = self._gxx(folder, slot, cmd, self._compile_limits())
        if timed_out:
            code, message = 1, f"g++ timeout after {self.config.compile_timeout_s} s"
        if code == 0 and link and ((folder / "prog").is_symlink() or not (folder / "prog").is_file()):
            code, message = 1, "g++ produced no program file"
        with self.stats.lock:
            self.stats.compiles += 1
            self.stats.compile_seconds += time.perf_counter() - start
        return code == 0, message

    def compile_check(self, source: str) -> tuple[bool, str]:
        """Does `source` compile (no linking)? Cached. Used by prefix pruning."""
        key = self._key("syntax", source)
        hit = self._cache_get(key)
        if hit is not None:
            return hit.status != "compile_error", hit.compile_error
        with self.run_folder() as (folder, slot):
            ok, message = self.compile(source, folder, slot, link=False)
        self._cache_put(key, Evaluation("pass" if ok else "compile_error", "" if ok else message))
        return ok, message

    def check_many(self, sources: list[str], batch: int = 32) -> list[tuple[bool, str]]:
        """`compile_check` for many sources at once: up to `batch` programs share one g++ run.

        Each program goes into its own namespace of one translation unit (the precompiled header is
        loaded once instead of once per program, about 20x less work per failing candidate); every
        error is attributed to the program whose lines it points at and renumbered as in that program
        alone. A program whose braces or brackets do not balance could derail the parser for the
        programs after it, so it only ever goes last in a batch; one with preprocessor lines is
        checked alone. Results share the cache of `compile_check`.
        """
        results: dict[int, tuple[bool, str]] = {}
        todo: list[int] = []
        for k, src in enumerate(sources):
            hit = self._cache_get(self._key("syntax", src))
            if hit is not None:
                results[k] = (hit.status != "compile_error", hit.compile_error)
            elif k not in todo and src not in (sources[j] for j in todo):
                todo.append(k)
        alone = [k for k in todo if "#" in sources[k][len(PREAMBLE):]]
        balanced = [k for k in todo if k not in alone and _balanced(sources[k])]
        unbalanced = [k for k in todo if k not in alone and k not in balanced]
        groups: list[list[int]] = []
        size = max(1, batch)
        for start in range(0, len(balanced), size - 1 if size > 1 else 1):
            groups.append(balanced[start: start + (size - 1 if size > 1 else 1)])
        for k in unbalanced:  # one unbalanced program at the end of a group
            if groups and len(groups[-1]) < size and not (groups[-1] and groups[-1][-1] in unbalanced):
                groups[-1].append(k)
            else:
                groups.append([k])
        group_futures = [(g, self._pool.submit(self._check_group, [sources[k] for k in g])) for g in groups]
        alone_futures = [(k, self._pool.submit(self.compile_check, sources[k])) for k in alone]
        for g, fut in group_futures:
            results.update(zip(g, fut.result()))
        for k, fut in alone_futures:
            results[k] = fut.result()
        for k, src in enumerate(sources):  # duplicates
            if k not in results:
                results[k] = results[next(j for j in results if sources[j] == src)]
        return [results[k] for k in range(len(sources))]

    def _check_group(self, group: list[str]) -> list[tuple[bool, str]]:
        if len(group) == 1:
            return [self.compile_check(group[0])]
        parts, starts = [], []
        line = 2  # line 1 is the #include
        for k, src in enumerate(group):
            lines = src.split("\n")
            if lines and lines[-1] == "":
                lines.pop()
            lines[0] = f"namespace spoc_c{k} {{ using namespace std;"
            for j in range(1, PREAMBLE_LINES):
                lines[j] = ""
            lines[-1] += f" }} // spoc_c{k}"
            starts.append(line)
            parts.append("\n".join(lines))
            line += len(lines)
        text = "#include <bits/stdc++.h>\n" + "\n".join(parts) + "\n"
        with self.run_folder() as (folder, slot):
            (folder / "batch.cpp").write_text(text)
            cmd = [*self.config.flags, "-fmax-errors=0"]
            if self.pch_dir is not None:
                cmd += ["-include", f"{PCH}/spoc_pre.h"]
            cmd += ["-fsyntax-only", "batch.cpp"]
            start = time.perf_counter()
            code, message, timed_out = self._gxx(folder, slot, cmd, self._compile_limits(4.0))
            if timed_out:
                return [self.compile_check(src) for src in group]
            with self.stats.lock:
                self.stats.compiles += 1
                self.stats.compile_seconds += time.perf_counter() - start
        per: list[list[str]] = [[] for _ in group]
        pending: list[str] = []
        owner = None
        for msg_line in message.split("\n"):
            m = re.match(r"batch\.cpp:(\d+):(.*)", msg_line)
            if m:
                n = int(m.group(1))
                owner = max((k for k, st in enumerate(starts) if st <= n), default=None)
                if owner is not None:
                    local = n - starts[owner] + 1
                    per[owner] += pending + [f"prog.cpp:{local}:{m.group(2)}"]
                    pending = []
                continue
            msg_line = re.sub(r"\bspoc_c\d+::", "", msg_line)
            if msg_line.startswith("batch.cpp"):
                pending = [msg_line.replace("batch.cpp", "prog.cpp")]
            elif owner is not None and not pending:
                per[owner].append(msg_line)
            else:
                pending.append(msg_line)
        texts = [re.sub(r"\bspoc_c\d+::", "", "\n".join(lines)) for lines in per]
        if code != 0 and all(" error: " not in t for t in texts):
            return [self.compile_check(s) for s in group]  # an error we could not attribute
        out = []
        for src, text_k in zip(group, texts):
            ok = " error: " not in text_k
            self._cache_put(self._key("syntax", src), Evaluation("pass" if ok else "compile_error", "" if ok else text_k))
            out.append((ok, "" if ok else text_k))
        return out

    # -- run
    def run_binary(self, binary: Path, stdin_data: str, slot: int) -> RunResult:
        """Run a compiled candidate on one input in the sandbox (the binary is bound read-only)."""
        if binary.is_symlink() or not binary.is_file():
            return RunResult("launch_error", 125, b"not a program file")
        out_cap = max(self.config.output_mb << 20, 0)
        with tempfile.TemporaryFile(dir=self.scratch) as fin, tempfile.TemporaryFile(dir=self.scratch) as fout:
            fin.write(stdin_data.encode())
            fin.seek(0)
            try:
                out = self.sandbox.run([f"{BOX}/prog"], [Bind(binary, f"{BOX}/prog")], self._run_limits(), slot,
                                       fin, fout, subprocess.DEVNULL)
            except OSError as err:
                return RunResult("launch_error", -1, str(err).encode())
            size = os.fstat(fout.fileno()).st_size
            fout.seek(0)
            stdout = fout.read(min(size, out_cap))
        with self.stats.lock:
            self.stats.runs += 1
        code = out.code
        if out.memory_killed:
            return RunResult("memory_limit", code, stdout, out.seconds)
        if out.timed_out or code in (128 + signal.SIGXCPU, 128 + signal.SIGKILL):
            return RunResult("timeout", code, stdout, out.seconds)
        if code == 128 + signal.SIGXFSZ or size >= out_cap:
            return RunResult("output_limit", code, b"", out.seconds)
        if code == 125:
            return RunResult("launch_error", code, stdout, out.seconds)
        if code != 0:
            return RunResult("runtime_error", code, stdout, out.seconds)
        return RunResult("ok", 0, stdout, out.seconds)

    def testcases(self, probid: str, kind: str) -> list[TestCase]:
        """The test cases of a problem, re-read when the file changes (its size or mtime)."""
        if self.testcases_dir is None:
            raise GenlabError("no test case directory given to the harness")
        path = test_file(self.testcases_dir, probid, kind)
        try:
            st = path.stat()
            key = (probid, kind, st.st_mtime_ns, st.st_size)
        except OSError:
            key = (probid, kind, -1, -1)
        if key not in self._tests:
            cases = load_testcases(self.testcases_dir, probid, kind)
            if self.config.max_tests:
                cases = cases[: self.config.max_tests]
            self._tests[key] = cases
        return self._tests[key]

    def _run_tests(self, binary: Path, cases: list[TestCase], slot: int) -> tuple[bool, str]:
        for k, case in enumerate(cases):
            result = self.run_binary(binary, case.input, slot)
            if result.status != "ok":
                return False, f"test {k}: {result.status} (exit {result.exit_code})"
            if not outputs_match(result.stdout, case.output):
                return False, f"test {k}: wrong output"
        return True, ""

    def evaluate(self, source: str, probid: str, tests: dict[str, list[TestCase]] | None = None) -> Evaluation:
        """Compile `source`, run the public tests, then the hidden ones if public passed. Cached.

        `tests` overrides the files ({'public': [...], 'hidden': [...]}). The content of the tests is
        part of the cache key (a changed hidden answer is judged again), as are the sandbox settings.
        """
        if tests is None:
            tests = {kind: self.testcases(probid, kind) for kind in ("public", "hidden")}
        content = json.dumps({k: [(c.input, c.output) for c in v] for k, v in sorted(tests.items())})
        key = self._key("eval", probid, hashlib.sha256(content.encode()).hexdigest(), str(self.config.max_tests),
                        source)
        hit = self._cache_get(key)
        if hit is not None:
            return hit
        start = time.perf_counter()
        syntax = self._mem.get(self._key("syntax", source))
        if syntax is not None and syntax.status == "compile_error":  # known from a batch check
            ev = Evaluation("compile_error", compile_error=syntax.compile_error)
            self._cache_put(key, ev)
            return ev
        with self.run_folder() as (folder, slot):
            ok, message = self.compile(source, folder, slot)
            if not ok:
                ev = Evaluation("compile_error", compile_error=message)
            else:
                passed, detail = self._run_tests(folder / "prog", tests["public"], slot)
                if not passed:
                    ev = Evaluation("public_fail", detail=detail)
                else:
                    passed, detail = self._run_tests(folder / "prog", tests["hidden"], slot)
                    ev = Evaluation("pass" if passed else "hidden_fail", detail=detail)
        if "launch_error" not in ev.detail:  # a harness failure, not the candidate's: do not remember it
            self._cache_put(key, ev)
        ev.seconds = time.perf_counter() - start
        return ev

    def evaluate_many(self, items: list[tuple[str, str]]) -> list[Evaluation]:
        """Evaluate (source, probid) pairs in parallel across `workers` threads (g++ runs as processes)."""
        futures = [self._pool.submit(self.evaluate, source, probid) for source, probid in items]
        return [f.result() for f in futures]

    def submit(self, source: str, probid: str):
        return self._pool.submit(self.evaluate, source, probid)


def _balanced(source: str) -> bool:
    """Do (), [] and {} balance on every line and {} over the program (literals ignored)?"""
    from genlab.systems.spoc.lexer import tokens

    depth = 0
    for line in source.split("\n"):
        toks = tokens(line)
        if toks.count("(") != toks.count(")") or toks.count("[") != toks.count("]"):
            return False
        if any(t[:1] in "\"'" and (len(t) < 2 or t[-1] != t[0]) for t in toks):
            return False  # an unterminated literal
        depth += toks.count("{") - toks.count("}")
        if depth < 0:
            return False
    return depth == 0


def sandbox_uids(pid: int | None = None) -> range:
    """The private sandbox uids of harness process `pid` (default: this one), one per run slot."""
    base = 100000 + 1024 * ((os.getpid() if pid is None else pid) % 4000)
    return range(base, base + 1024)
