"""Lines + indentation -> a C++ program; compile with g++ (precompiled header); run in a sandbox.

- `stitch` builds the program: the fixed preamble of the official stitcher, then one physical line
  per pseudocode line, with braces placed from the indentation (a candidate's own leading `}` and
  trailing `{` are dropped and re-derived, so `} else {` and a bare `else` stitch the same way).
- `Harness.evaluate(source, probid)` compiles once, runs the public tests and, if they pass, the
  hidden ones. Results are cached by the hash of (flags, source) in memory and in a SQLite file, so
  every search method shares them (each method still counts its own budget).
- Candidates run through a small C launcher (`sandbox_launcher.c`, compiled once into the cache):
  PID + network namespaces, unprivileged uid when root, rlimits on CPU, memory, file size and
  processes, a wall-clock timeout that kills the whole process group, output capped.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import threading
import time
from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from genlab.core.io import cache_dir
from genlab.errors import GenlabError
from genlab.systems.spoc.data import TestCase, load_testcases
from genlab.systems.spoc.sandbox import LAUNCHER_C

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
        raise ValueError(f"stitch: {len(codes)} code lines but {len(indents)} indents")
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
    cxx: str = "g++"
    flags: tuple[str, ...] = ("-std=gnu++11", "-O1", "-w", "-fmax-errors=20")
    use_pch: bool = True
    workers: int = 0  # 0 = os.cpu_count()
    compile_timeout_s: float = 30.0
    cpu_s: int = 2  # per test case (RLIMIT_CPU)
    wall_s: float = 5.0  # per test case, kills the process group
    memory_mb: int = 1024  # RLIMIT_AS
    output_mb: int = 16  # RLIMIT_FSIZE on the stdout file
    nproc: int = 64  # RLIMIT_NPROC (per uid)
    # Uid the candidates run as when we are root. 0 = a private unprivileged uid per worker thread
    # (100000 + 32 * (pid % 20000) + slot): RLIMIT_NPROC counts processes per uid, so sandboxes that
    # share `nobody` (65534) can starve each other (a fork bomb in one makes execve fail in another).
    sandbox_uid: int = 0
    max_tests: int = 0  # 0 = all tests of the file


@dataclass
class RunResult:
    status: str  # ok | timeout | output_limit | runtime_error | launch_error
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
        # absolute: g++ runs in a per-program temporary directory
        self.cache_dir = (Path(cache_dir) if cache_dir else default_cache_dir()).resolve()
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self.workers = config.workers or os.cpu_count() or 1
        self.stats = HarnessStats()
        self._tests: dict[tuple[str, str], list[TestCase]] = {}
        self._mem: dict[str, Evaluation] = {}
        self._db_lock = threading.Lock()
        self._db = sqlite3.connect(str(self.cache_dir / "results.sqlite"), check_same_thread=False, timeout=60)
        with self._db_lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("CREATE TABLE IF NOT EXISTS results (key TEXT PRIMARY KEY, value TEXT)")
            self._db.commit()
        self._pool = ThreadPoolExecutor(max_workers=self.workers)
        self._slots = threading.local()
        self._next_slot = 0
        self.pch_dir = self._build_pch() if config.use_pch else None
        self.launcher = self._build_launcher()

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        with self._db_lock:
            self._db.close()

    def __enter__(self) -> Harness:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- one-off builds (PCH, launcher), guarded by a file lock against concurrent processes
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
        pch_dir = self.cache_dir / f"pch-{self._flags_key()}"
        gch = pch_dir / "spoc_pre.h.gch"
        with self._file_lock("pch"):
            if not gch.exists():
                pch_dir.mkdir(parents=True, exist_ok=True)
                (pch_dir / "spoc_pre.h").write_text("#include <bits/stdc++.h>\n")
                tmp = pch_dir / f".spoc_pre.h.gch.{os.getpid()}"
                cmd = [self.config.cxx, *self._pch_flags(), "-x", "c++-header", str(pch_dir / "spoc_pre.h"),
                       "-o", str(tmp)]
                proc = subprocess.run(cmd, capture_output=True, text=True)
                if proc.returncode != 0:
                    raise GenlabError(f"building the precompiled header failed ({' '.join(cmd)}): {proc.stderr[-500:]}")
                os.replace(tmp, gch)
        return pch_dir

    def _build_launcher(self) -> Path:
        digest = hashlib.sha256(LAUNCHER_C.encode()).hexdigest()[:12]
        exe = self.cache_dir / f"sandbox-launcher-{digest}"
        with self._file_lock("launcher"):
            if not exe.exists():
                cc = shutil.which("gcc") or self.config.cxx
                tmp = exe.with_name(exe.name + f".{os.getpid()}")
                proc = subprocess.run([cc, "-O2", "-x", "c", "-", "-o", str(tmp)], input=LAUNCHER_C,
                                      capture_output=True, text=True)
                if proc.returncode != 0:
                    raise GenlabError(f"building the sandbox launcher failed: {proc.stderr[-500:]}")
                os.chmod(tmp, 0o755)
                os.replace(tmp, exe)
        return exe

    # -- cache
    def _key(self, *parts: str) -> str:
        h = hashlib.sha256()
        for part in (self.config.cxx, *self.config.flags, str(self.config.use_pch), *parts):
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
    def _compile(self, source: str, workdir: Path, link: bool = True) -> tuple[bool, str]:
        src = workdir / "prog.cpp"
        src.write_text(source)
        cmd = [self.config.cxx, *self.config.flags]
        if self.pch_dir is not None:
            cmd += ["-include", str(self.pch_dir / "spoc_pre.h")]
        cmd += [str(src), "-o", str(workdir / "prog")] if link else ["-fsyntax-only", str(src)]
        start = time.perf_counter()
        try:
            proc = subprocess.run(cmd, capture_output=True, cwd=workdir, timeout=self.config.compile_timeout_s,
                                  start_new_session=True)
            ok, message = proc.returncode == 0, proc.stderr.decode("utf-8", errors="replace")
        except subprocess.TimeoutExpired:
            ok, message = False, f"g++ timeout after {self.config.compile_timeout_s} s"
        with self.stats.lock:
            self.stats.compiles += 1
            self.stats.compile_seconds += time.perf_counter() - start
        return ok, message.replace(str(src), "prog.cpp")

    def compile_check(self, source: str) -> tuple[bool, str]:
        """Does `source` compile (no linking)? Cached. Used by prefix pruning."""
        key = self._key("syntax", source)
        hit = self._cache_get(key)
        if hit is not None:
            return hit.status != "compile_error", hit.compile_error
        with tempfile.TemporaryDirectory(prefix="spoc-") as tmp:
            ok, message = self._compile(source, Path(tmp), link=False)
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
        with tempfile.TemporaryDirectory(prefix="spoc-") as tmp:
            src_path = Path(tmp) / "batch.cpp"
            src_path.write_text(text)
            cmd = [self.config.cxx, *self.config.flags, "-fmax-errors=0"]
            if self.pch_dir is not None:
                cmd += ["-include", str(self.pch_dir / "spoc_pre.h")]
            cmd += ["-fsyntax-only", str(src_path)]
            start = time.perf_counter()
            try:
                proc = subprocess.run(cmd, capture_output=True, cwd=tmp, timeout=self.config.compile_timeout_s * 4)
                message = proc.stderr.decode("utf-8", errors="replace").replace(str(src_path), "batch.cpp")
            except subprocess.TimeoutExpired:
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
        if proc.returncode != 0 and all(" error: " not in t for t in texts):
            return [self.compile_check(s) for s in group]  # an error we could not attribute
        out = []
        for src, text_k in zip(group, texts):
            ok = " error: " not in text_k
            self._cache_put(self._key("syntax", src), Evaluation("pass" if ok else "compile_error", "" if ok else text_k))
            out.append((ok, "" if ok else text_k))
        return out

    # -- run
    def _uid(self) -> int:
        if self.config.sandbox_uid:
            return self.config.sandbox_uid
        slot = getattr(self._slots, "slot", None)
        if slot is None:
            with self.stats.lock:
                slot = self._slots.slot = self._next_slot % 32
                self._next_slot += 1
        return sandbox_uids()[slot]

    def run_binary(self, binary: Path, stdin_data: str, workdir: Path, expected_bytes: int = 0) -> RunResult:
        cfg = self.config
        out_cap = max(cfg.output_mb << 20, 0)
        in_path, out_path = workdir / "stdin.txt", workdir / "stdout.txt"
        in_path.write_text(stdin_data)
        uid = self._uid()
        cmd = [str(self.launcher), str(cfg.cpu_s), str(cfg.memory_mb << 20), str(out_cap), str(cfg.nproc),
               str(uid), str(binary)]
        start = time.perf_counter()
        with open(in_path, "rb") as fin, open(out_path, "wb") as fout:
            try:
                proc = subprocess.Popen(cmd, stdin=fin, stdout=fout, stderr=subprocess.DEVNULL, cwd=workdir,
                                        start_new_session=True, close_fds=True)
            except OSError as err:
                return RunResult("launch_error", -1, str(err).encode())
            try:
                code = proc.wait(timeout=cfg.wall_s)
                timed_out = False
            except subprocess.TimeoutExpired:
                timed_out = True
                _kill_group(proc.pid)
                code = proc.wait()
                if os.geteuid() == 0:  # candidates ran under their own uid: wait out the namespace teardown
                    _wait_until_gone(uid)
            _kill_group(proc.pid)  # anything the candidate left in its group
        seconds = time.perf_counter() - start
        with self.stats.lock:
            self.stats.runs += 1
        size = out_path.stat().st_size
        with open(out_path, "rb") as f:
            stdout = f.read(min(size, out_cap))
        if timed_out or code in (128 + signal.SIGXCPU, 128 + signal.SIGKILL):
            return RunResult("timeout", code, stdout, seconds)
        if code == 128 + signal.SIGXFSZ or size >= out_cap:
            return RunResult("output_limit", code, b"", seconds)
        if code in (125, 126, 127):
            return RunResult("launch_error", code, stdout, seconds)
        if code != 0:
            return RunResult("runtime_error", code, stdout, seconds)
        return RunResult("ok", 0, stdout, seconds)

    def testcases(self, probid: str, kind: str) -> list[TestCase]:
        key = (probid, kind)
        if key not in self._tests:
            if self.testcases_dir is None:
                raise GenlabError("no test case directory given to the harness")
            cases = load_testcases(self.testcases_dir, probid, kind)
            if self.config.max_tests:
                cases = cases[: self.config.max_tests]
            self._tests[key] = cases
        return self._tests[key]

    def _run_tests(self, binary: Path, cases: list[TestCase], workdir: Path) -> tuple[bool, str]:
        for k, case in enumerate(cases):
            result = self.run_binary(binary, case.input, workdir, len(case.output))
            if result.status != "ok":
                return False, f"test {k}: {result.status} (exit {result.exit_code})"
            if not outputs_match(result.stdout, case.output):
                return False, f"test {k}: wrong output"
        return True, ""

    def evaluate(self, source: str, probid: str, tests: dict[str, list[TestCase]] | None = None) -> Evaluation:
        """Compile `source`, run the public tests, then the hidden ones if public passed. Cached.

        `tests` overrides the files ({'public': [...], 'hidden': [...]}); its content is part of the key.
        """
        extra = json.dumps({k: [(c.input, c.output) for c in v] for k, v in tests.items()}) if tests else ""
        key = self._key("eval", probid, extra, str(self.config.max_tests), source)
        hit = self._cache_get(key)
        if hit is not None:
            return hit
        start = time.perf_counter()
        syntax = self._mem.get(self._key("syntax", source))
        if syntax is not None and syntax.status == "compile_error":  # known from a batch check
            ev = Evaluation("compile_error", compile_error=syntax.compile_error)
            self._cache_put(key, ev)
            return ev
        with tempfile.TemporaryDirectory(prefix="spoc-") as tmp:
            workdir = Path(tmp)
            os.chmod(workdir, 0o777)  # the sandbox uid writes nothing here but may need to enter it
            ok, message = self._compile(source, workdir)
            if not ok:
                ev = Evaluation("compile_error", compile_error=message)
            else:
                os.chmod(workdir / "prog", 0o755)
                public = tests["public"] if tests else self.testcases(probid, "public")
                passed, detail = self._run_tests(workdir / "prog", public, workdir)
                if not passed:
                    ev = Evaluation("public_fail", detail=detail)
                else:
                    hidden = tests["hidden"] if tests else self.testcases(probid, "hidden")
                    passed, detail = self._run_tests(workdir / "prog", hidden, workdir)
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


def sandbox_uids() -> range:
    """This process's 32 private sandbox uids (one per worker slot; see HarnessConfig.sandbox_uid)."""
    base = 100000 + 32 * (os.getpid() % 20000)
    return range(base, base + 32)


def processes_of(uids: Collection[int]) -> list[int]:
    """PIDs of the processes whose real uid is in `uids` (read from /proc)."""
    wanted = {str(u) for u in uids}
    found = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                status = (d / "status").read_text()
            except OSError:
                continue
            fields = next((x for x in status.split("\n") if x.startswith("Uid:")), "").split()
            if len(fields) > 1 and fields[1] in wanted:
                found.append(int(d.name))
    return found


def _wait_until_gone(uid: int, timeout_s: float = 5.0) -> None:
    """Killing the launcher tears its PID namespace down asynchronously (a fork bomb takes a while):
    return only once no process of the sandbox uid is left, so a finished run leaves nothing behind."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and processes_of([uid]):
        time.sleep(0.02)


def _kill_group(pgid: int) -> None:
    """SIGKILL the whole process group (the launcher's session; the PID namespace does the rest)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
