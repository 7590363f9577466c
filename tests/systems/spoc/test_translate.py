import json

import pytest

from genlab.systems.spoc.data import SPLITS, load_tsv, seeded_subset
from genlab.systems.spoc.lexer import canonical, tokens
from genlab.systems.spoc.translate import (
    RetrievalConfig,
    RetrievalTranslator,
    candidates_for,
    line_accuracy,
    oracle_coverage,
    training_pairs,
)
from tests.helpers import SHARED_DATA

PAIRS = [("read n", "cin >> n;"), ("read a and b", "cin >> a >> b;"), ("print x", "cout << x << endl;"),
         ("set s to s + a[i]", "s = s + a[i];"), ("print \"YES\"", 'cout << "YES" << endl;'),
         ("for i = 0 to n exclusive", "for (int i = 0; i < n; i++) {"), ("declare integer k", "int k;"),
         ("print n - 1", "cout << n - 1 << endl;")]


def test_lexer_and_canonical_forms():
    assert tokens('cout << "a b" << x[i] + 1e9;') == ["cout", "<<", '"a b"', "<<", "x", "[", "i", "]", "+", "1e9", ";"]
    assert canonical("} else {") == ("else",) and canonical("x  =  1 ;") == ("x", "=", "1", ";")


def test_copying_fills_identifiers_literals_and_expressions():
    tr = RetrievalTranslator(PAIRS)
    (c1,), (c2,), (c3,), (c4,) = [x[:1] for x in tr.translate(
        ["read q", "for j = 0 to m exclusive", 'print "NO"', "print (p + q) * 2"], 5)]
    assert canonical(c1.code) == canonical("cin >> q;")
    assert canonical(c2.code) == canonical("for (int j = 0; j < m; j++) {")
    assert canonical(c3.code) == canonical('cout << "NO" << endl;')
    assert canonical(c4.code) == canonical("cout << (p + q) * 2 << endl;")  # a whole expression copied
    nocopy = RetrievalTranslator(PAIRS, RetrievalConfig(copy=False))
    assert canonical(nocopy.translate(["read q"], 1)[0][0].code) == canonical("cin >> n;")


def test_candidates_are_sorted_distinct_and_normalised():
    import math

    cands = RetrievalTranslator(PAIRS).translate(["print k"], 10)[0]
    lps = [c.logprob for c in cands]
    assert lps == sorted(lps, reverse=True)
    assert len({canonical(c.code) for c in cands}) == len(cands)
    assert abs(sum(math.exp(x) for x in lps) - 1.0) < 1e-6


def test_candidates_cached_on_disk(tmp_path):
    from tests.systems.spoc import toy

    data = toy.build(tmp_path)
    programs = load_tsv(data / SPLITS["testp"])
    tr = RetrievalTranslator(training_pairs(load_tsv(data / SPLITS["train-eval"])))
    first = candidates_for(tr, programs, 5, tmp_path)
    files = list(tmp_path.glob("candidates-*.json"))
    assert len(files) == 1 and "read a and b" in json.loads(files[0].read_text())

    class Exploding:
        name = tr.name

        def fingerprint(self):
            return tr.fingerprint()

        def translate(self, texts, m):
            raise AssertionError("should have come from the cache")

    assert candidates_for(Exploding(), programs, 5, tmp_path) == first
    assert line_accuracy(programs, first)[1] == 1.0  # every line has an exact training template
    assert oracle_coverage(programs, first) == 1.0


@pytest.mark.slow
def test_real_data_copying_beats_no_copying_on_line_top1():
    split = SHARED_DATA / "spoc" / "train" / "split"
    if not split.is_dir():
        pytest.skip(f"SPoC data not found at {split}")
    train = training_pairs(load_tsv(split / "spoc-train-eval.tsv"))
    test = seeded_subset(load_tsv(split / "spoc-train-test.tsv"), 200, 0)
    acc = {}
    for copy in (True, False):
        cands = candidates_for(RetrievalTranslator(train, RetrievalConfig(copy=copy)), test, 100)
        acc[copy] = line_accuracy(test, cands)
    print("line accuracy with copying", acc[True], "without", acc[False])
    assert acc[True][1] > acc[False][1] + 0.10
