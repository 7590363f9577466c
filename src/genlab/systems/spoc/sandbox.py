"""The judge's sandbox: bubblewrap around every compilation and every run of a candidate.

Each run gets new mount, PID, network, IPC, UTS (and cgroup) namespaces; a root made of read-only
binds of `/usr` (with the `/bin`, `/lib`, `/lib64` links) and of only the files the run needs; a
private size-capped tmpfs `/tmp`; a fresh `/proc` and a minimal `/dev`. As root the command runs as an
unprivileged uid (setpriv: no capabilities, no new privileges); as an ordinary user it runs as that
user but sees none of the user's files. stdin/stdout/stderr are descriptors the harness opened.

Limits on the whole process tree: a cgroup per run slot (memory + pids, v1 or v2) where one can be
made (root, or a delegated v2 subtree); otherwise RLIMIT_AS x RLIMIT_NPROC per process (the harness
says so once). A small C launcher, compiled once into the cache, joins the cgroups, sets the rlimits
and PR_SET_PDEATHSIG, then execs bwrap: when the harness dies, bwrap dies, and with it (its
--die-with-parent and the PID namespace) everything inside. A timeout kills the launcher's process
group, which takes the namespace down, compiler included; `run` returns only once it is gone.

Without bubblewrap nothing runs unless the caller asks for `insecure` (the same launcher with rlimits
only, on the host's filesystem).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from genlab.errors import GenlabError

INSTALL_HINT = ("bubblewrap (bwrap) is needed to compile and run untrusted C++ safely: install it with "
                "`apt-get install bubblewrap` (Debian/Ubuntu) or `dnf install bubblewrap`, or pass --insecure "
                "to run without a sandbox")

LAUNCHER_C = r"""/* genlab SPoC launcher: join cgroups, set rlimits, die with the parent, exec the sandbox.
 *
 * usage: launcher CPU_S AS_BYTES FSIZE_BYTES NPROC N_PROCS_FILES PROCS_FILE... COMMAND ARGS...
 * Writes its pid into each cgroup PROCS_FILE (before exec, so nothing escapes the limit), sets
 * RLIMIT_CPU/AS/FSIZE/NPROC (0 = leave as is) and RLIMIT_CORE = 0, asks for SIGKILL when its parent
 * thread dies, then execs COMMAND (bwrap). Exit 125 when it cannot set itself up.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

static void limit(int resource, rlim_t value) {
    struct rlimit rl = {value, value};
    if (value) setrlimit(resource, &rl);
}

int main(int argc, char **argv) {
    if (argc < 7) { fprintf(stderr, "usage: launcher CPU AS FSIZE NPROC N FILES... CMD...\n"); return 125; }
    pid_t parent = getppid();
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent) return 125;
    int n = atoi(argv[5]);
    if (n < 0 || 6 + n >= argc) return 125;
    char pid[32];
    snprintf(pid, sizeof pid, "%d\n", (int)getpid());
    for (int i = 0; i < n; i++) {
        FILE *f = fopen(argv[6 + i], "w");
        if (!f || fputs(pid, f) < 0 || fclose(f) != 0) { perror(argv[6 + i]); return 125; }
    }
    limit(RLIMIT_CPU, strtoull(argv[1], NULL, 10));
    limit(RLIMIT_AS, strtoull(argv[2], NULL, 10));
    limit(RLIMIT_FSIZE, strtoull(argv[3], NULL, 10));
    limit(RLIMIT_NPROC, strtoull(argv[4], NULL, 10));
    struct rlimit core = {0, 0};
    setrlimit(RLIMIT_CORE, &core);
    execv(argv[6 + n], argv + 6 + n);
    perror(argv[6 + n]);
    return 125;
}
"""

SETUP_ATTEMPTS = 4  # bwrap failing to set a run up (before the command starts) is retried, then an error

# Inside the sandbox: where the run's folder and the precompiled header appear.
BOX = "/box"
PCH = "/pch"


@dataclass(frozen=True)
class Limits:
    cpu_s: int  # RLIMIT_CPU per process
    wall_s: float  # the whole run; then the tree is killed
    memory_mb: int  # the whole tree (cgroup), else per process (RLIMIT_AS)
    output_mb: int  # RLIMIT_FSIZE: any one file written, stdout included
    nproc: int  # the whole tree (pids cgroup), else per uid (RLIMIT_NPROC)
    tmp_mb: int = 64  # size of the private /tmp


@dataclass
class Outcome:
    code: int  # exit status, 128 + signal when killed, 125 when the sandbox itself failed
    timed_out: bool
    memory_killed: bool
    seconds: float


# --- cgroups: limits on the whole tree ----------------------------------------------------------------


class TreeLimits:
    """One cgroup per run slot with memory and pids limits (v1: the memory + pids hierarchies; v2: one
    node), made under this process's own cgroup as `genlab-spoc-PID/slot-K` and removed by `close`.
    Folders of dead harnesses (SIGKILL) are removed by the next one."""

    def __init__(self, parents: dict[str, Path], version: int):
        self.version = version
        self.parents = parents  # controller -> this process's cgroup folder
        name = f"genlab-spoc-{os.getpid()}-{secrets.token_hex(4)}"  # one per harness, even in one process
        self.roots = {c: p / name for c, p in parents.items()}
        self._made: set[int] = set()
        for controller, parent in parents.items():
            _remove_stale(parent)
            self.roots[controller].mkdir(exist_ok=True)

    @staticmethod
    def detect() -> TreeLimits | None:
        """The cgroups this process may make, or None (an ordinary user without delegation)."""
        own = _own_cgroups()
        base = Path("/sys/fs/cgroup")
        attempts = []
        if (base / "cgroup.controllers").is_file() and "" in own:  # v2 unified
            attempts.append(({"unified": base / own[""].lstrip("/")}, 2))
        if "memory" in own and "pids" in own and (base / "memory").is_dir() and (base / "pids").is_dir():
            attempts.append(({c: base / c / own[c].lstrip("/") for c in ("memory", "pids")}, 1))
        for parents, version in attempts:
            try:
                limits = TreeLimits(parents, version)
                limits.prepare(0, 64 << 20, 8)  # can we set limits and enter (checked by the probe run)?
                return limits
            except OSError:
                continue
        return None

    def slot_dirs(self, slot: int) -> list[Path]:
        return [root / f"slot-{slot}" for root in self.roots.values()]

    def procs_files(self, slot: int) -> list[str]:
        return [str(d / "cgroup.procs") for d in self.slot_dirs(slot)]

    def prepare(self, slot: int, memory_bytes: int, pids: int) -> None:
        """Create the slot's cgroups (once) and set their limits for the next run."""
        if self.version == 2:
            root = self.roots["unified"]
            if slot not in self._made:
                (self.parents["unified"] / "cgroup.subtree_control").write_text("+memory +pids")
                (root / "cgroup.subtree_control").write_text("+memory +pids")
            node = root / f"slot-{slot}"
            node.mkdir(exist_ok=True)
            (node / "memory.max").write_text(str(memory_bytes))
            with contextlib.suppress(OSError):
                (node / "memory.swap.max").write_text("0")
            _set_pids_max(node, pids)
        else:
            mem = self.roots["memory"] / f"slot-{slot}"
            mem.mkdir(exist_ok=True)
            # memsw (memory + swap) must stay >= the memory limit: two passes set both in either direction
            files = [mem / "memory.limit_in_bytes", mem / "memory.memsw.limit_in_bytes"]
            files = [f for f in files if f.exists()]
            for _ in range(2):
                for f in files:
                    with contextlib.suppress(OSError):
                        f.write_text(str(memory_bytes))
            if int(files[0].read_text()) > memory_bytes:
                raise OSError(f"cannot set {files[0]}")
            pid_dir = self.roots["pids"] / f"slot-{slot}"
            pid_dir.mkdir(exist_ok=True)
            _set_pids_max(pid_dir, pids)
        self._made.add(slot)

    def oom_kills(self, slot: int) -> int:
        """How many processes of the slot the kernel killed for memory so far."""
        name = "memory.events" if self.version == 2 else "memory.oom_control"
        root = self.roots["unified" if self.version == 2 else "memory"]
        with contextlib.suppress(OSError):
            for line in (root / f"slot-{slot}" / name).read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
        return 0

    def pids(self, slot: int) -> list[int]:
        found: set[int] = set()
        for d in self.slot_dirs(slot):
            with contextlib.suppress(OSError):
                found.update(int(x) for x in (d / "cgroup.procs").read_text().split())
        return sorted(found)

    def empty(self, slot: int, timeout_s: float = 10.0) -> bool:
        """SIGKILL whatever is left in the slot until nothing is; False if it would not go."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            left = self.pids(slot)
            if not left:
                return True
            for pid in left:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.01)
        return not self.pids(slot)

    def close(self) -> None:
        for slot in self._made:
            self.empty(slot, timeout_s=2.0)
        for root in self.roots.values():
            _rmdir_tree(root)


def _set_pids_max(folder: Path, pids: int) -> None:
    """pids.max for the next run: `pids` more than the slot's current charge. Tasks of a finished run
    stay charged for a while after they are gone from /proc (measured: 1-3 per run, up to ~27 under
    load), and would otherwise make bwrap's clone fail with EAGAIN ("Creating new namespace failed")."""
    current = (folder / "pids.current").read_text().strip()
    (folder / "pids.max").write_text(str(pids + (int(current) if current.isdigit() else 0)))


def _own_cgroups() -> dict[str, str]:
    """{controller: path} of this process ('' for the v2 hierarchy)."""
    out = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            for c in controllers.split(","):
                out[c] = path
    return out


def _rmdir_tree(root: Path) -> None:
    """cgroup folders are removed with rmdir, deepest first (their files cannot be unlinked)."""
    if not root.is_dir():
        return
    for d in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        with contextlib.suppress(OSError):
            d.rmdir()
    with contextlib.suppress(OSError):
        root.rmdir()


def _remove_stale(parent: Path) -> None:
    for d in parent.glob("genlab-spoc-*-*"):
        pid = d.name.split("-")[2]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            for procs in d.rglob("cgroup.procs"):
                with contextlib.suppress(OSError, ValueError):
                    for p in procs.read_text().split():
                        os.kill(int(p), signal.SIGKILL)
            _rmdir_tree(d)


# --- the sandbox ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bind:
    host: Path
    inside: str
    writable: bool = False


class Sandbox:
    """Runs commands jailed by bubblewrap, with limits; one run per slot at a time."""

    def __init__(self, cache: Path, insecure: bool = False, uid_base: int = 0):
        self.root = os.geteuid() == 0
        self.bwrap = shutil.which("bwrap")
        self.insecure = insecure
        if self.bwrap is None and not insecure:
            raise GenlabError(INSTALL_HINT)
        self.setpriv = shutil.which("setpriv") if self.root else None
        if self.root and self.setpriv is None:
            raise GenlabError("setpriv (util-linux) is needed to drop root inside the sandbox: apt-get install util-linux")
        self.uid_base = uid_base
        self.launcher = _build_launcher(cache)
        self.tree = TreeLimits.detect() if not insecure else None
        self._live: dict[int, subprocess.Popen] = {}
        self._lock = threading.Lock()
        self.stopping = False
        if not insecure:
            self._probe()

    # -- description, printed by the harness once
    def describe(self) -> str:
        if self.insecure:
            return ("spoc sandbox: INSECURE (--insecure): candidates and the compiler run on this machine's "
                    "filesystem with rlimits only")
        who = "an unprivileged uid per slot" if self.root else f"uid {os.geteuid()} (not root: no uid switch)"
        if self.tree is not None:
            limits = f"cgroup v{self.tree.version} memory + pids limits on the whole process tree"
        else:
            limits = "no cgroup can be made here: memory and process limits are RLIMIT_AS per process x RLIMIT_NPROC"
        return f"spoc sandbox: bubblewrap, {who}; {limits}"

    def uid(self, slot: int) -> int:
        return self.uid_base + slot if self.root else os.geteuid()

    def _probe(self) -> None:
        """One trivial run, so that a bwrap that cannot start (no user namespaces) is one clear error."""
        limits = Limits(cpu_s=5, wall_s=20.0, memory_mb=256, output_mb=1, nproc=16)
        with open(os.devnull, "rb") as fin, open(os.devnull, "wb") as fout:
            err = _anonymous_file(self.launcher.parent)
            out = self.run(["/bin/true"], [], limits, slot=0, stdin=fin, stdout=fout, stderr=err)
            if out.code != 0:
                err.seek(0)
                message = err.read(2000).decode("utf-8", errors="replace").strip().replace("\n", " ")
                raise GenlabError(f"bubblewrap cannot start a sandbox here (exit {out.code}: {message}); "
                                  "user namespaces may be disabled (sysctl kernel.unprivileged_userns_clone=1), "
                                  "or pass --insecure")
            err.close()

    def _argv(self, command: Sequence[str], binds: Sequence[Bind], limits: Limits, uid: int, cwd: str,
              info_fd: int) -> list[str]:
        argv = [self.bwrap, "--info-fd", str(info_fd), "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
                "--unshare-cgroup-try", "--die-with-parent", "--new-session", "--hostname", "spoc",
                "--ro-bind", "/usr", "/usr"]
        if not self.root:  # bwrap makes a user namespace anyway; forbid the candidate nesting another one
            argv[3:3] = ["--unshare-user", "--disable-userns"]
        for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
            target = Path("/") / name
            if target.is_symlink():
                argv += ["--symlink", os.readlink(target), f"/{name}"]
            elif target.is_dir():
                argv += ["--ro-bind", str(target), f"/{name}"]
        if Path("/etc/ld.so.cache").is_file():  # library search cache only: no other file of /etc
            argv += ["--ro-bind", "/etc/ld.so.cache", "/etc/ld.so.cache"]
        argv += ["--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--size", str(limits.tmp_mb << 20),
                 "--tmpfs", "/tmp"]
        for b in binds:
            argv += ["--bind" if b.writable else "--ro-bind", str(b.host), b.inside]
        argv += ["--remount-ro", "/", "--chdir", cwd, "--setenv", "PATH", "/usr/bin:/bin",
                 "--setenv", "LC_ALL", "C", "--setenv", "TMPDIR", "/tmp", "--unsetenv", "HOME", "--"]
        if self.root:
            argv += [self.setpriv, f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--inh-caps=-all",
                     "--bounding-set=-all", "--no-new-privs", "--"]
        return argv + list(command)

    def _insecure_argv(self, command: Sequence[str], binds: Sequence[Bind], uid: int, compiler: bool) -> list[str]:
        """The pre-sandbox harness: paths on the host; as root, g++ as root and candidates as `uid`."""
        host = {b.inside: str(b.host) for b in binds}
        argv = [next((h + c[len(i):] for i, h in host.items() if c == i or c.startswith(i + "/")), c) for c in command]
        argv[0] = shutil.which(argv[0]) or argv[0]  # the launcher execs without a PATH search
        if self.root and not compiler:
            argv = [shutil.which("setpriv") or "setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
                    "--", *argv]
        return argv

    def run(self, command: Sequence[str], binds: Sequence[Bind], limits: Limits, slot: int, stdin, stdout, stderr,
            cwd: str = "/tmp", compiler: bool = False) -> Outcome:
        """Run `command` (paths as seen inside) jailed; stdin/stdout/stderr are open files of the caller.
        `compiler`: the command is g++ (only --insecure mode as root treats it differently)."""
        uid = self.uid(slot)
        files: list[str] = []
        memory = limits.memory_mb << 20
        nproc = limits.nproc
        if self.tree is not None:
            self.tree.prepare(slot, memory, limits.nproc)
            files = self.tree.procs_files(slot)
            oom_before = self.tree.oom_kills(slot)
            nproc = limits.nproc + 8  # the pids cgroup bounds the tree; this only stops a runaway uid
        elif not self.root:
            nproc = limits.nproc + len(_processes_of_uid(uid))  # RLIMIT_NPROC counts all of the user's processes
        for attempt in range(SETUP_ATTEMPTS):
            out, started, message = self._run_once(command, binds, limits, slot, uid, files, memory, nproc, stdin,
                                                   stdout, stderr, cwd, compiler)
            if started:
                out.memory_killed = self.tree is not None and self.tree.oom_kills(slot) > oom_before
                return out
            for f in (stdin, stdout, stderr):  # nothing ran: start again from clean files
                if hasattr(f, "truncate"):
                    with contextlib.suppress(OSError):  # /dev/null cannot be truncated
                        f.seek(0)
                        if f is not stdin:
                            f.truncate()
            time.sleep(0.05 * 2 ** attempt)
        raise GenlabError(f"the sandbox could not start a run {SETUP_ATTEMPTS} times (bwrap exit {out.code}{message}); "
                          "is the machine out of processes or namespaces?")

    def _run_once(self, command, binds, limits, slot, uid, files, memory, nproc, stdin, stdout, stderr, cwd,
                  compiler) -> tuple[Outcome, bool, str]:
        """(outcome, whether bwrap got the command started, bwrap's complaint when it did not)."""
        info_r, info_w = os.pipe()
        try:
            if self.insecure:
                argv = self._insecure_argv(command, binds, uid, compiler)
                cwd_host = next((str(b.host) for b in binds if b.inside == cwd), None)
            else:
                argv = self._argv(command, binds, limits, uid, cwd, info_fd=info_w)
                cwd_host = None
            full = [str(self.launcher), str(limits.cpu_s), str(memory), str(limits.output_mb << 20), str(nproc),
                    str(len(files)), *files, *argv]
            start = time.perf_counter()
            with self._lock:
                if self.stopping:
                    raise Interrupted("the harness is stopping")
                proc = subprocess.Popen(full, stdin=stdin, stdout=stdout, stderr=stderr, start_new_session=True,
                                        close_fds=True, cwd=cwd_host, pass_fds=(info_w,),
                                        env={"PATH": "/usr/bin:/bin", "LC_ALL": "C"})
                self._live[proc.pid] = proc
            os.close(info_w)
            info_w = -1
            try:
                try:
                    code = proc.wait(timeout=limits.wall_s)
                    timed_out = False
                except subprocess.TimeoutExpired:
                    timed_out = True
                    _kill_group(proc.pid)
                    code = proc.wait()
                if self.insecure:  # no PID namespace: daemons the candidate left in its group
                    _kill_group(proc.pid)
                self._wait_gone(proc.pid, slot, uid)
            finally:
                with self._lock:
                    self._live.pop(proc.pid, None)
            os.set_blocking(info_r, False)
            try:
                info = os.read(info_r, 4096)
            except BlockingIOError:  # a writer is still open: bwrap got that far
                info = b"?"
        finally:
            os.close(info_r)
            if info_w >= 0:
                os.close(info_w)
        if code < 0:
            code = 128 - code
        started = self.insecure or timed_out or bool(info)
        message = ""
        if not started and hasattr(stderr, "seek"):
            stderr.seek(0)
            message = ": " + stderr.read(300).decode("utf-8", errors="replace").strip()
        return Outcome(code, timed_out, False, time.perf_counter() - start), started, message

    def _wait_gone(self, pgid: int, slot: int, uid: int) -> None:
        """Return once nothing of the run is left (PID namespace teardown is asynchronous)."""
        if self.tree is not None:
            if not self.tree.empty(slot):
                raise RuntimeError(f"spoc sandbox: processes of slot {slot} would not die")
        elif self.root:
            deadline = time.monotonic() + 10.0
            while time.monotonic() < deadline and _processes_of_uid(uid):
                for pid in _processes_of_uid(uid):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                time.sleep(0.01)
        else:
            deadline = time.monotonic() + 10.0
            while time.monotonic() < deadline and _group_members(pgid):
                _kill_group(pgid)
                time.sleep(0.01)

    def stop(self) -> None:
        """Kill every run in flight and refuse new ones (Ctrl-C, SIGTERM)."""
        with self._lock:
            self.stopping = True
            live = list(self._live)
        for pid in live:
            _kill_group(pid)

    def close(self) -> None:
        self.stop()
        if self.tree is not None:
            self.tree.close()


class Interrupted(RuntimeError):
    """A run was asked for after `Sandbox.stop`."""


def _anonymous_file(folder: Path):
    import tempfile

    return tempfile.TemporaryFile(dir=folder)


def _build_launcher(cache: Path) -> Path:
    """Compile the launcher once per content into the cache (a file lock guards concurrent harnesses)."""
    import fcntl

    digest = hashlib.sha256(LAUNCHER_C.encode()).hexdigest()[:12]
    exe = cache / f"sandbox-launcher-{digest}"
    with open(cache / "launcher.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not exe.exists():
            cc = shutil.which("gcc") or shutil.which("cc") or "g++"
            tmp = exe.with_name(exe.name + f".{os.getpid()}")
            proc = subprocess.run([cc, "-O2", "-x", "c", "-", "-o", str(tmp)], input=LAUNCHER_C,
                                  capture_output=True, text=True)
            if proc.returncode != 0:
                raise GenlabError(f"building the sandbox launcher with {cc} failed: {proc.stderr[-500:]}")
            os.chmod(tmp, 0o755)
            os.replace(tmp, exe)
    return exe


def _processes_of_uid(uid: int) -> list[int]:
    return processes_of([uid])


def processes_of(uids) -> list[int]:
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
            if len(fields) > 1 and fields[1] in wanted and "\nState:\tZ" not in status:
                found.append(int(d.name))
    return found


def _group_members(pgid: int) -> list[int]:
    """Live processes of process group `pgid`."""
    found = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = (d / "stat").read_text()
                fields = stat[stat.rindex(")") + 2:].split()
                if int(fields[2]) == pgid and fields[0] != "Z":
                    found.append(int(d.name))
    return found


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


@contextlib.contextmanager
def scratch_folder(parent: Path, insecure: bool = False) -> Iterator[Path]:
    """A private folder for this harness's runs, `parent/PID-XXXX` (0700); leftovers of dead harnesses
    (SIGKILL) are removed first. --insecure as root: candidates see host paths, so the folder is a
    traversable (0711) one in the temporary folder."""
    import tempfile

    if insecure and os.geteuid() == 0:
        folder = Path(tempfile.mkdtemp(prefix="spoc-insecure-"))
        os.chmod(folder, 0o711)
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return
    parent.mkdir(parents=True, exist_ok=True)
    for d in parent.glob("*-*"):
        pid = d.name.split("-", 1)[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(d, ignore_errors=True)
    folder = Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=parent))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
