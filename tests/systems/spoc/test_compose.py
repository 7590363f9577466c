"""Composed lines (head + tail, conjunctions), written-differently forms, and merged translator lists."""

import math

from genlab.systems.spoc.compose import ComposeConfig, ComposingTranslator, variants
from genlab.systems.spoc.lexer import canonical
from genlab.systems.spoc.translate import Candidate, MergedTranslator, RetrievalTranslator

PAIRS = [("for i = 0 to n exclusive", "for (int i = 0; i < n; i++) {"), ("set s to s + a[i]", "s = s + a[i];"),
         ("if x is 0", "if (x == 0) {"), ("if y is greater than k", "if (y > k) {"), ("read n", "cin >> n;"),
         ("print x", "cout << x << endl;"), ("increment c", "c++;")]


def _keys(cands):
    return [canonical(c.code) for c in cands]


def test_head_tail_and_conjunctions_are_composed_from_parts():
    base = RetrievalTranslator(PAIRS)
    plain = base.translate(["for j = 0 to m exclusive, set t to t + b[j]", "if p is 0 and q is greater than r"], 100)
    composed = ComposingTranslator(base).translate(
        ["for j = 0 to m exclusive, set t to t + b[j]", "if p is 0 and q is greater than r"], 100)
    loop_body = [canonical("for (int j = 0; j < m; j++) t = t + b[j];"),
                 canonical("for (int j = 0; j < m; j++) { t = t + b[j]; }")]
    both = canonical("if (p == 0 && q > r) {")
    assert not set(loop_body) & set(_keys(plain[0])) and both not in _keys(plain[1])  # no training line has these
    assert set(loop_body) <= set(_keys(composed[0])) and both in _keys(composed[1])
    for cands in composed:
        assert abs(sum(math.exp(c.logprob) for c in cands) - 1.0) < 1e-6
        assert len(set(_keys(cands))) == len(cands)


def test_variants_are_other_forms_of_the_same_line_ranked_below_it():
    assert set(variants("for (int i = 0; i < n; i++) {")) >= {"for (i = 0; i < n; i++) {", "for (int i = 0; i < n; ++i) {"}
    assert "s += a[i];" in variants("s = s + a[i];") and "s = s + a[i];" in variants("s += a[i];")
    assert {"++c;", "c += 1;"} <= set(variants("c++;")) and "if (k > 1) ++d;" in variants("if (k > 1) d++;")
    assert "cout << x;" in variants("cout << x << endl;") and "cout << x << endl;" in variants("cout << x;")
    assert variants("cin >> n;") == []
    tr = ComposingTranslator(RetrievalTranslator(PAIRS), ComposeConfig(variants=0.1))
    keys = _keys(tr.translate(["increment d"], 100)[0])
    assert keys[0] == canonical("d++;") and canonical("++d;") in keys[1:]
    assert canonical('cout << "Ron" << endl;') in _keys(tr.translate(["print Ron"], 100)[0])


class Fixed:
    """A translator that always proposes the same list."""

    def __init__(self, name, cands):
        self.name, self.cands = name, cands

    def fingerprint(self):
        return self.name

    def translate(self, texts, m):
        return [list(self.cands) for _ in texts]


def test_merged_list_is_a_reweighted_mixture():
    a = Fixed("a", [Candidate("x = 1;", math.log(0.6)), Candidate("x = 2;", math.log(0.4))])
    b = Fixed("b", [Candidate("x=2;", math.log(0.9)), Candidate("y = 3;", math.log(0.1))])
    (merged,) = MergedTranslator([(a, 0.5), (b, 0.5)]).translate(["set x"], 10)
    probs = {canonical(c.code): math.exp(c.logprob) for c in merged}
    assert list(probs) == [canonical("x = 2;"), canonical("x = 1;"), canonical("y = 3;")]  # both propose x = 2
    assert abs(probs[canonical("x = 2;")] - 0.65) < 1e-9 and abs(probs[canonical("y = 3;")] - 0.05) < 1e-9
    assert MergedTranslator([(a, 0.5), (b, 0.5)]).fingerprint() != MergedTranslator([(a, 0.7), (b, 0.3)]).fingerprint()
