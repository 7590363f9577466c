"""A toy SPoC world built by the tests themselves: a few problems, training pairs, test cases."""

from __future__ import annotations

from pathlib import Path

HEADER = "text\tcode\twork​erid\tprobid\tsubid\tline\tindent\n".replace("\u200b", "")

# (text, code, indent) per line; "" text = not annotated
SUM = [("", "int main() {", 0), ("declare integers a and b", "int a, b;", 1), ("read a and b", "cin >> a >> b;", 1),
       ("print a + b", "cout << a + b << endl;", 1), ("", "return 0;", 1), ("", "}", 0)]
MAX = [("", "int main() {", 0), ("declare integers x and y", "int x, y;", 1), ("read x and y", "cin >> x >> y;", 1),
       ("if x is greater than y", "if (x > y) {", 1), ("print x", "cout << x << endl;", 2),
       ("else", "} else {", 1), ("print y", "cout << y << endl;", 2), ("", "}", 1), ("", "return 0;", 1), ("", "}", 0)]
TRAIN = [
    [("", "int main() {", 0), ("declare integers n and m", "int n, m;", 1), ("read n and m", "cin >> n >> m;", 1),
     ("print n + m", "cout << n + m << endl;", 1), ("", "return 0;", 1), ("", "}", 0)],
    [("", "int main() {", 0), ("declare integers p and q", "int p, q;", 1), ("read p and q", "cin >> p >> q;", 1),
     ("if p is greater than q", "if (p > q) {", 1), ("print p", "cout << p << endl;", 2), ("else", "} else {", 1),
     ("print q", "cout << q << endl;", 2), ("", "}", 1), ("", "return 0;", 1), ("", "}", 0)],
    [("", "int main() {", 0), ("declare integer k", "int k;", 1), ("read k", "cin >> k;", 1),
     ("print k - 1", "cout << k - 1 << endl;", 1), ("print k", "cout << k;", 1), ("", "return 0;", 1), ("", "}", 0)],
]


def tsv(programs: list[tuple[str, str, list]]) -> str:
    rows = [HEADER]
    for probid, subid, lines in programs:
        for i, (text, code, indent) in enumerate(lines):
            rows.append(f"{text}\t{code}\t01\t{probid}\t{subid}\t{i}\t{indent}\n")
    return "".join(rows)


def tests_file(cases: list[tuple[str, str]]) -> str:
    return "".join(f"{i}###ENDINPUT###\n{o}###ENDOUTPUT###\n" for i, o in cases)


def build(root: Path) -> Path:
    """root/spoc with the official layout; returns the data folder."""
    data = root / "spoc"
    (data / "train" / "split").mkdir(parents=True)
    (data / "test").mkdir()
    (data / "train" / "split" / "spoc-train-eval.tsv").write_text(
        tsv([("T1", "1", TRAIN[0]), ("T2", "2", TRAIN[1])]))
    (data / "train" / "split" / "spoc-train-test.tsv").write_text(tsv([("T3", "3", TRAIN[2])]))
    (data / "test" / "spoc-testp.tsv").write_text(tsv([("SUM", "10", SUM), ("MAX", "20", MAX)]))
    cases = {"SUM": ([("1 2\n", "3\n"), ("5 5\n", "10\n")], [("-1 1\n", "0\n"), ("100 23\n", "123\n")]),
             "MAX": ([("1 2\n", "2\n"), ("7 3\n", "7\n")], [("5 5\n", "5\n"), ("-4 -9\n", "-4\n")])}
    for probid, (public, hidden) in cases.items():
        d = data / "testcases" / probid
        d.mkdir(parents=True)
        (d / f"{probid}_testcases_public.txt").write_text(tests_file(public))
        (d / f"{probid}_testcases_hidden.txt").write_text(tests_file(hidden))
    return data
