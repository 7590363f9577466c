from genlab.systems.spoc.data import Line, Program
from genlab.systems.spoc.data import TestCase as Case
from genlab.systems.spoc.search import SearchConfig, compiler_line, prefix_source, program_form, search
from genlab.systems.spoc.translate import Candidate

TESTS = {"public": [Case("1 2\n", "3\n"), Case("5 5\n", "10\n")], "hidden": [Case("-1 1\n", "0\n")]}

PROGRAM = Program("SUM", "1", "01", (
    Line("", "int main() {", 0), Line("declare a and b", "int a, b;", 1), Line("read a and b", "cin >> a >> b;", 1),
    Line("print a + b", "cout << a + b << endl;", 1), Line("", "return 0;", 1), Line("", "}", 0)))
CANDS = [
    [Candidate("int main() {", 0.0)],
    [Candidate("int a, b;", -0.2), Candidate("long long a, b;", -0.3)],
    [Candidate("cin >> a >> c;", -0.1), Candidate("cin >> a >> b;", -1.0)],  # top-1 does not compile
    [Candidate("cout << a - b << endl;", -0.1), Candidate("cout << a + b << endl;", -0.5)],  # top-1 is wrong
    [Candidate("return 0;", 0.0)], [Candidate("}", 0.0)],
]


def test_best_first_finds_what_top_one_misses(harness):
    plain = search(PROGRAM, CANDS, harness, SearchConfig(budget=100, method="best_first"), tests=TESTS)
    assert plain.top1_status == "compile_error"
    assert plain.passed_public and plain.passed_hidden
    # score order: 000 100 001 101 (compile errors), 010 110 (wrong output), 011 passes
    assert plain.used == 7 and plain.choice == [0, 0, 1, 1, 0, 0]
    assert plain.success_at(10) and not plain.success_at(1)


def test_compiler_line_blacklists_the_failing_candidate(harness):
    res = search(PROGRAM, CANDS, harness, SearchConfig(budget=100, method="compiler"), tests=TESTS)
    assert res.passed_hidden and res.used == 4  # 000 (error at line 2 -> blacklisted), 010, 110, 011


def test_prefix_pruning_and_budget(harness):
    res = search(PROGRAM, CANDS, harness, SearchConfig(budget=100, method="prefix"), tests=TESTS)
    assert res.passed_hidden
    assert res.statuses.count("prefix_error") >= 1
    short = search(PROGRAM, CANDS, harness, SearchConfig(budget=3, method="best_first"), tests=TESTS)
    assert not short.passed_public and short.used == 3


def test_multiclass_uses_the_given_localiser(harness):
    calls = []

    def blame_read_line(codes, indents, translated, message):
        calls.append(message)
        return 2

    res = search(PROGRAM, CANDS, harness, SearchConfig(budget=100, method="multiclass"), blame_read_line, tests=TESTS)
    assert res.passed_hidden and res.used == 4 and calls


def test_compiler_line_maps_to_translated_lines():
    msg = "prog.cpp:7:5: error: expected ';'"  # source line 7 = program line 2 (preamble is 4 lines)
    assert compiler_line([], [], [1, 2, 3], msg) == 2
    assert compiler_line([], [], [3, 4], msg) == 3  # nothing translated before: the first translated line
    assert compiler_line([], [], [1], "no line") is None


def test_prefix_source_keeps_an_open_header_valid():
    src = prefix_source(["int main() {", "for (int i = 0; i < 3; i++)", "cout << i;"], [0, 1, 2], 1)
    assert src.count("{") == src.count("}") and ";" in src.split("for")[1]


def test_adaptive_checks_change_nothing_but_the_work(harness, monkeypatch):
    """Localising methods check only choices still unblocked, in adaptive chunks: same search, fewer checks."""
    checked = []
    check_many = harness.check_many

    def recording(sources, *args, **kwargs):
        checked.append(len(sources))
        return check_many(sources, *args, **kwargs)

    monkeypatch.setattr(harness, "check_many", recording)
    for method in ("best_first", "compiler", "prefix"):
        checked.clear()
        whole = search(PROGRAM, CANDS, harness, SearchConfig(method=method, adaptive_check=False), tests=TESTS)
        n_whole = sum(checked)
        checked.clear()
        lazy = search(PROGRAM, CANDS, harness, SearchConfig(method=method), tests=TESTS)
        assert (lazy.used, lazy.choice, lazy.statuses, lazy.passed_hidden) == \
            (whole.used, whole.choice, whole.statuses, whole.passed_hidden)
        if method == "compiler":  # 000 fails at line 2: the queued 100, 001, 101 are blocked, never checked
            assert sum(checked) < n_whole and checked[0] == 1
        if method == "best_first":  # nothing is ever blacklisted: the whole queue in one batch
            assert sum(checked) == n_whole


INC = Program("INC", "1", "01", (
    Line("", "int main() {", 0), Line("", "int a, b;", 1), Line("", "cin >> a >> b;", 1),
    Line("increment a", "a++;", 1), Line("add b to a", "a += b;", 1), Line("print a", "cout << a << endl;", 1),
    Line("", "return 0;", 1), Line("", "}", 0)))
INC_CANDS = [
    [Candidate("int main() {", 0.0)], [Candidate("int a, b;", 0.0)], [Candidate("cin >> a >> b;", 0.0)],
    [Candidate("a++;", -0.1), Candidate("++a;", -0.2)],  # the same statement written two ways
    [Candidate("a += c;", -0.1), Candidate("a += b;", -1.0)],  # top-1 does not compile
    [Candidate("cout << a - 1 << endl;", -0.1), Candidate("cout << a << endl;", -0.3)],  # top-1 is wrong
    [Candidate("return 0;", 0.0)], [Candidate("}", 0.0)],
]
INC_TESTS = {"public": [Case("1 2\n", "4\n"), Case("5 5\n", "11\n")], "hidden": [Case("-1 1\n", "1\n")]}


def test_program_form_groups_only_what_cannot_change_meaning():
    assert program_form("\tx++;\n") == program_form("  ++x ;\n") == program_form("++ x;\n")
    assert program_form("for (int i = 0; i < n; i++) {") == program_form("for (int i=0; i<n; ++i) {")
    assert program_form("if (a) b--;") == program_form("if (a) --b;")
    for a, b in [("y = x++;", "y = ++x;"), ("return x++;", "return ++x;"), ("f(x++);", "f(++x);"),
                 ('cout << "x++;";', 'cout << "++x;";'), ("x++;\ny;", "x++; y;"), ("a - -b;", "a --b;"),
                 ("while (n--) {", "while (--n) {")]:
        assert program_form(a) != program_form(b), (a, b)


def test_the_same_program_is_compiled_once(harness):
    """The budget counts distinct programs: 100 is 000 with `++a;` for `a++;`, so it is skipped, not compiled.
    Score order 000 100 001 101 010 110 011 111; 011 passes."""
    seen = []
    for method, used, skipped in [("best_first", 4, 3), ("compiler", 3, 1), ("prefix", 5, 2)]:
        res = search(INC, INC_CANDS, harness, SearchConfig(method=method), tests=INC_TESTS,
                     on_step=lambda k, q, ev, blamed: seen.append(program_form(q.source)))
        assert res.passed_hidden and res.choice == [0, 0, 0, 0, 1, 1, 0, 0], method
        # best-first: 000 001 010 011 compiled; prefix: 000 (+ its prefix), 101 (its prefix is 000's: reused), 010, 011
        assert (res.used, res.skipped) == (used, skipped), method
        assert len(seen) == len(set(seen)), method  # no program compiled twice
        seen.clear()


def test_program_form_writes_a_cout_newline_one_way_where_only_flushing_differs():
    same = ['cout << a << endl;', "cout << a << '\\n';", 'cout << a << "\\n";', 'cout<<a<<endl ;']
    assert len({program_form(s) for s in same}) == 1
    assert program_form('if (x) cout << a << endl << b;') == program_form('if (x) cout << a << "\\n" << b;')
    for a, b in [("cout << (a << '\\n');", 'cout << (a << "\\n");'),  # a shift, not an insertion
                 ("cout << x ? a : b << '\\n';", 'cout << x ? a : b << "\\n";'),  # b << '\n' after `?:`
                 ("ios::sync_with_stdio(0); cout << a << endl;", 'ios::sync_with_stdio(0); cout << a << "\\n";'),
                 ("int endl = 1; cout << endl;", 'int endl = 1; cout << "\\n";'),  # endl redefined
                 ('printf("%d", a); fork(); cout << endl;', 'printf("%d", a); fork(); cout << "\\n";'),
                 ("cout << a << endl;", "cout << a;")]:
        assert program_form(a) != program_form(b), (a, b)
