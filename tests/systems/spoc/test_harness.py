import os
import time

import pytest

from genlab.systems.spoc.data import TestCase as Case
from genlab.systems.spoc.harness import (
    PREAMBLE,
    PREAMBLE_LINES,
    first_error_line,
    outputs_match,
    sandbox_uids,
    source_line_to_index,
    stitch,
)
from genlab.systems.spoc.sandbox import processes_of

ECHO_TESTS = {"public": [Case("3\n", "3\n"), Case("7\n", "7\n")], "hidden": [Case("11\n", "11")]}


def test_stitch_places_braces_from_indentation():
    codes = ["int main() {", "int n;", "cin >> n;", "if (n > 0) {", "cout << 1;", "} else {", "cout << 2;", "}",
             "for (int i = 0; i < n; i++)", "cout << i;", "return 0;", "}"]
    indents = [0, 1, 1, 1, 2, 1, 2, 1, 1, 2, 1, 0]
    src = stitch(codes, indents)
    body = src.split("\n")[PREAMBLE_LINES:]
    assert src.startswith(PREAMBLE)
    assert body[0] == "int main() {"
    assert body[3].strip() == "if (n > 0) {" and body[5].strip() == "} else {"
    assert body[8].strip() == "for (int i = 0; i < n; i++) {"  # a missing brace is added
    assert body[10].strip() == "} return 0;"
    assert src.count("{") == src.count("}")
    # a bare `else` candidate and `} else {` stitch the same
    codes2 = list(codes)
    codes2[5] = "else"
    assert stitch(codes2, indents) == src


def test_stitch_continuation_lines_open_no_block():
    src = stitch(["int main() {", 'cout << "YES"', '<< "\\n";', "return 0;", "}"], [0, 1, 2, 1, 0])
    assert '"YES"\n' in src and "{" not in src.split("int main()")[1].split("\n", 1)[1]


def test_error_line_maps_back_to_program_line():
    msg = "prog.cpp: In function 'int main()':\nprog.cpp:9:16: error: 'x' was not declared in this scope\n"
    assert first_error_line(msg) == 9
    assert source_line_to_index(9) == 9 - PREAMBLE_LINES - 1
    assert first_error_line("no errors here") is None


def test_outputs_compared_by_whitespace_tokens():
    assert outputs_match(b"1 2\n3\n", "1\n2 3")
    assert not outputs_match(b"1 2 3 4", "1 2 3")


def _prog(body: str) -> str:
    return PREAMBLE + body + "\n"


def test_compile_run_and_cache(harness):
    ok = _prog("int main() { long long n; cin >> n; cout << n << endl; return 0; }")
    first = harness.evaluate(ok, "ECHO", ECHO_TESTS)
    assert first.status == "pass" and not first.cached
    again = harness.evaluate(ok, "ECHO", ECHO_TESTS)
    assert again.status == "pass" and again.cached
    bad = harness.evaluate(_prog("int main() { cout << x; }"), "ECHO", ECHO_TESTS)
    assert bad.status == "compile_error" and "x" in bad.compile_error
    idx = source_line_to_index(first_error_line(bad.compile_error))
    assert idx == 0
    wrong = harness.evaluate(_prog("int main() { int n; cin >> n; cout << n + 1; }"), "ECHO", ECHO_TESTS)
    assert wrong.status == "public_fail"
    hidden = harness.evaluate(_prog("int main() { int n; cin >> n; cout << (n > 10 ? 0 : n); }"), "ECHO", ECHO_TESTS)
    assert hidden.status == "hidden_fail" and hidden.passed_public


BAD = {
    "sleeps_forever": "int main() { sleep(1000); }",
    "escaping_children": "int main() { for (int i = 0; i < 8; i++) if (fork() == 0) { setsid(); sleep(1000); }"
                         " int n; cin >> n; cout << n; }",
    "unbounded_allocation": "int main() { vector<char*> v; while (true) { char* p = (char*)malloc(1 << 20);"
                            " if (!p) abort(); memset(p, 1, 1 << 20); v.push_back(p); } }",
    "gigabytes_of_output": "int main() { string s(1 << 16, 'x'); while (true) cout << s; }",
}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_candidates_fail_cleanly_and_leave_nothing(harness, name):
    start = time.perf_counter()
    ev = harness.evaluate(_prog(BAD[name]), "ECHO", ECHO_TESTS)
    elapsed = time.perf_counter() - start
    if name == "escaping_children":
        assert ev.status == "pass"  # the program itself is correct; its children must still be gone
    else:
        assert ev.status == "public_fail", ev
        assert any(k in ev.detail for k in ("timeout", "output_limit", "runtime_error")), ev.detail
    assert elapsed < 20.0  # limits: 1 s CPU, 3 s wall per test, plus compilation on a loaded machine
    time.sleep(0.2)
    assert processes_of(sandbox_uids()) == []  # nothing left under the harness's sandbox uids


@pytest.mark.skipif(os.geteuid() != 0, reason="uid switch needs root")
def test_candidates_run_unprivileged_alone_without_network(harness):
    src = _prog('int main() { cout << getuid() << " " << getpid() << " ";'
                ' ifstream f("/proc/net/dev"); string l; int n = 0; while (getline(f, l)) n++; cout << n; }')
    with harness.run_folder() as (folder, slot):
        ok, msg = harness.compile(src, folder, slot)
        assert ok, msg
        result = harness.run_binary(folder / "prog", "", slot)
    assert result.status == "ok", result
    uid, pid, net_lines = (int(x) for x in result.stdout.split())
    assert uid in sandbox_uids()  # not root
    assert pid <= 3  # inside its own PID namespace
    assert net_lines == 3  # header (2 lines) + loopback only
