"""Translators: one pseudocode line -> top-M C++ lines with log-probabilities.

Every translator has `name`, `fingerprint()` and `translate(texts, m) -> list[list[Candidate]]`
(candidates sorted best first, distinct by canonical tokens, log-probs normalised over the list).
`candidates_for(translator, programs, m, cache_dir)` caches their output on disk.

`RetrievalTranslator` (the default, CPU only): nearest training pairs by TF-IDF over abstracted
pseudocode tokens; with `copy=True`, identifiers and literals shared by a training pair's
pseudocode and code become placeholders, filled from the query (`read n` -> `cin >> n;` becomes
`read X0` -> `cin >> X0;`, so `read k` -> `cin >> k;`).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from genlab.core.io import atomic_write_text
from genlab.systems.spoc.data import Program
from genlab.systems.spoc.lexer import canonical, is_identifier, is_literal, spans, tokens


@dataclass(frozen=True)
class Candidate:
    code: str
    logprob: float


class Translator(Protocol):
    name: str

    def fingerprint(self) -> str: ...

    def translate(self, texts: Sequence[str], m: int) -> list[list[Candidate]]: ...


def training_pairs(programs: Sequence[Program]) -> list[tuple[str, str]]:
    return [(line.text, line.code) for p in programs for line in p.lines if line.annotated]


def normalise(scored: dict[tuple[str, ...], tuple[str, float]], m: int) -> list[Candidate]:
    """{canonical: (code, weight)} -> top-m Candidates with log-probs normalised over the kept ones."""
    items = sorted(scored.values(), key=lambda cw: -cw[1])[:m]
    total = sum(w for _, w in items) or 1.0
    return [Candidate(code, math.log(max(w / total, 1e-30))) for code, w in items]


# --- retrieval ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetrievalConfig:
    copy: bool = True
    neighbours: int = 300  # training pairs looked at per query
    temperature: float = 0.05  # weight = exp((cos - 1) / T)
    var_threshold: float = 0.5  # a pseudocode word is a variable if shared with the code this often
    runs: bool = True  # copy whole expressions (slots joined by operators) as one slot


class RetrievalTranslator:
    def __init__(self, pairs: Sequence[tuple[str, str]], config: RetrievalConfig = RetrievalConfig()):
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.config = config
        self.name = "retrieval" + ("" if config.copy else "-nocopy") + ("" if config.runs or not config.copy else "-tokens")
        self._digest = hashlib.sha256(json.dumps([VERSION, list(pairs), config.__dict__]).encode()).hexdigest()[:16]
        self._var_rate = self._variable_rates(pairs) if config.copy else {}
        self.templates: list[tuple[str, list[tuple[str, ...]]]] = []  # (code template, slot values)
        keys: list[str] = []
        for text, code in pairs:
            abstract, values = self._abstract(tokens(text))
            self.templates.append((self._code_template(code, values), values))
            keys.append(" ".join(abstract))
        self._vectorizer = TfidfVectorizer(analyzer=_ngrams, sublinear_tf=True, norm="l2")
        self._matrix = self._vectorizer.fit_transform(keys)  # [n_pairs, vocab], rows l2-normalised

    def fingerprint(self) -> str:
        return f"{self.name}-{self._digest}"

    @staticmethod
    def _variable_rates(pairs: Sequence[tuple[str, str]]) -> dict[str, float]:
        shared, total = Counter(), Counter()
        for text, code in pairs:
            code_toks = set(tokens(code))
            for tok in set(tokens(text)):
                if is_identifier(tok):
                    total[tok] += 1
                    shared[tok] += tok in code_toks
        return {tok: shared[tok] / total[tok] for tok in total}

    def _is_slot(self, tok: str) -> bool:
        if not self.config.copy or tok in _KEYWORDS:
            return False
        if is_literal(tok):
            return True
        return is_identifier(tok) and self._var_rate.get(tok, 1.0) >= self.config.var_threshold

    def _abstract(self, toks: list[str]) -> tuple[list[str], list[tuple[str, ...]]]:
        """Replace slots by X0, X1, ... (by first occurrence); return (abstract tokens, slot values).

        Token-level: each variable-like identifier or literal is a slot. With `runs`, a maximal run
        of slots joined by arithmetic operators and brackets (`a[i] + 1`, `(n - 1) / 2`) is one slot,
        so whole expressions are copied from the pseudocode.
        """
        groups: list[tuple[str, ...]] = []
        i = 0
        while i < len(toks):
            if self.config.runs and (self._is_slot(toks[i]) or toks[i] in _RUN_OPEN):
                j = i + 1
                while j < len(toks) and (toks[j] in _RUN_OPS or (self._is_slot(toks[j]) and (
                        toks[j - 1] in _RUN_OPS and toks[j - 1] not in ")]"))):  # no two operands in a row
                    j += 1
                run = _trim_run(toks[i:j])
                if run and any(self._is_slot(t) for t in run):
                    groups.append(tuple(run))
                    groups.extend((t,) for t in toks[i + len(run): j])
                    i = j
                    continue
            groups.append((toks[i],))
            i += 1
        values: list[tuple[str, ...]] = []
        out = []
        for g in groups:
            if len(g) > 1 or self._is_slot(g[0]):
                if g not in values:
                    values.append(g)
                out.append(f"\x00{values.index(g)}")
            else:
                out.append(g[0].lower())
        return out, values

    @staticmethod
    def _code_template(code: str, values: list[tuple[str, ...]]) -> str:
        """Code with each occurrence of slot value k (a token sequence) replaced by \\x00k\\x01."""
        if not values:
            return code
        sp = spans(code)
        toks = [t for _, _, t in sp]
        out, last, i = [], 0, 0
        order = sorted(range(len(values)), key=lambda k: -len(values[k]))  # longest match first
        while i < len(toks):
            for k in order:
                v = values[k]
                if tuple(toks[i: i + len(v)]) == v:
                    out.append(code[last: sp[i][0]] + f"\x00{k}\x01")
                    last = sp[i + len(v) - 1][1]
                    i += len(v)
                    break
            else:
                i += 1
        out.append(code[last:])
        return "".join(out)

    @staticmethod
    def _fill(template: str, values: list[tuple[str, ...]], fallback: list[tuple[str, ...]]) -> str:
        if "\x00" not in template:
            return template
        parts = template.split("\x00")
        out = [parts[0]]
        for part in parts[1:]:
            k_str, rest = part.split("\x01", 1)
            k = int(k_str)
            out.append(" ".join(values[k] if k < len(values) else fallback[k]) + rest)
        return "".join(out)

    def translate(self, texts: Sequence[str], m: int) -> list[list[Candidate]]:
        abstracts, values = zip(*(self._abstract(tokens(t)) for t in texts)) if texts else ((), ())
        queries = self._vectorizer.transform([" ".join(a) for a in abstracts])
        sims = (queries @ self._matrix.T).tocsr()  # [n_queries, n_pairs] cosine similarities
        results = []
        k = self.config.neighbours
        for row, vals in zip(range(sims.shape[0]), values):
            start, end = sims.indptr[row], sims.indptr[row + 1]
            cols, data = sims.indices[start:end], sims.data[start:end]
            if len(cols) > k:
                top = np.argpartition(-data, k)[:k]
                cols, data = cols[top], data[top]
            scored: dict[tuple[str, ...], tuple[str, float]] = {}
            weights: dict[tuple[str, ...], float] = defaultdict(float)
            for col, sim in zip(cols, data):
                template, train_values = self.templates[col]
                code = self._fill(template, list(vals), train_values)
                key = canonical(code)
                weights[key] += math.exp((float(sim) - 1.0) / self.config.temperature)
                if key not in scored:
                    scored[key] = (code, 0.0)
            for key, (code, _) in scored.items():
                scored[key] = (code, weights[key])
            results.append(normalise(scored, m) if scored else [Candidate(";", 0.0)])
        return results


# C++ words never treated as copyable variables: they carry the line's meaning for retrieval.
_KEYWORDS = set("""for if else while do return int long char string double float bool void break continue
true false cin cout endl vector map set pair const struct auto unsigned short switch case default new delete
sizeof class static getline printf scanf puts main""".split())
VERSION = "2"  # bump when the translation logic changes (part of the candidate cache key)
_RUN_OPS = {"+", "-", "*", "/", "%", "(", ")", "[", "]", "."}
_RUN_OPEN = {"(", "-"}


def _trim_run(run: list[str]) -> list[str]:
    """Drop trailing operators and trailing unmatched brackets; empty if brackets cannot balance."""
    run = list(run)
    while run and run[-1] in {"+", "-", "*", "/", "%", ".", "(", "["}:
        run.pop()
    while run:
        depth, ok = 0, True
        for t in run:
            depth += t in "([" and len(t) == 1
            depth -= t in ")]" and len(t) == 1
            ok = ok and depth >= 0
        if ok and depth == 0:
            break
        run.pop()
    if run and run[0] == "-" and len(run) == 1:
        return []
    return run


def _ngrams(key: str) -> list[str]:
    toks = key.split(" ")
    return toks + [a + " " + b for a, b in zip(toks, toks[1:])] + ["^ " + toks[0], toks[-1] + " $"]


# --- merging ------------------------------------------------------------------------------------


class MergedTranslator:
    """Several translators' lists for a line merged into one: a candidate's weight is the weighted sum
    of its probabilities under each translator (a mixture), so a line both propose rises; re-normalised."""

    def __init__(self, parts: Sequence[tuple[Translator, float]], cache_dir: str | Path | None = None):
        self.parts, self.cache_dir = list(parts), cache_dir  # each part's lists are cached on their own
        self.name = "+".join(t.name for t, _ in self.parts)

    def fingerprint(self) -> str:
        return "merged-" + "-".join(f"{t.fingerprint()}x{w:g}" for t, w in self.parts)

    def translate(self, texts: Sequence[str], m: int) -> list[list[Candidate]]:
        tables = [translate_cached(t, texts, m, self.cache_dir) for t, _ in self.parts]
        lists = [[table[text] for text in texts] for table in tables]
        out = []
        for per_line in zip(*lists):
            scored: dict[tuple[str, ...], tuple[str, float]] = {}
            for (_, w), cands in zip(self.parts, per_line):
                for c in cands:
                    key = canonical(c.code)
                    old = scored.get(key)
                    scored[key] = (old[0] if old else c.code, (old[1] if old else 0.0) + w * math.exp(c.logprob))
            out.append(normalise(scored, m))
        return out


# --- candidates on disk ---------------------------------------------------------------------------


def candidates_for(translator: Translator, programs: Sequence[Program], m: int,
                   cache_dir: str | Path | None = None) -> dict[str, list[list[Candidate]]]:
    """{program uid: per line candidates}; unannotated lines get their gold code with log-prob 0.

    Translations are cached per (translator fingerprint, m) in `cache_dir/candidates-*.json`.
    """
    texts = sorted({line.text for p in programs for line in p.lines if line.annotated})
    table = translate_cached(translator, texts, m, cache_dir)
    return {p.uid: [table[line.text] if line.annotated else [Candidate(line.code, 0.0)] for line in p.lines]
            for p in programs}


def translate_cached(translator: Translator, texts: Sequence[str], m: int,
                     cache_dir: str | Path | None = None) -> dict[str, list[Candidate]]:
    """{text: candidates}, translating only the texts not in `cache_dir/candidates-<fingerprint>-m<m>.json`."""
    store: dict[str, list[list[float | str]]] = {}
    path = None
    if cache_dir is not None:
        path = Path(cache_dir) / f"candidates-{translator.fingerprint()}-m{m}.json"
        if path.exists():
            store = json.loads(path.read_text())
    todo = sorted(set(texts) - set(store))
    if todo:
        for text, cands in zip(todo, translator.translate(todo, m)):
            store[text] = [[c.code, c.logprob] for c in cands]
        if path is not None:
            atomic_write_text(path, json.dumps(store))
    return {text: [Candidate(code, lp) for code, lp in store[text]] for text in texts}


def gold_rank(cands: list[Candidate], gold: str) -> int | None:
    """0-based rank of the gold line among candidates (canonical token match), or None."""
    target = canonical(gold)
    for r, c in enumerate(cands):
        if canonical(c.code) == target:
            return r
    return None


def line_accuracy(programs: Sequence[Program], cands: dict[str, list[list[Candidate]]],
                  ranks: Sequence[int] = (1, 5, 10, 100)) -> dict[int, float]:
    """Share of annotated lines whose gold code is among the top-k candidates."""
    hits = Counter()
    n = 0
    for p in programs:
        for line, cs in zip(p.lines, cands[p.uid]):
            if not line.annotated:
                continue
            n += 1
            r = gold_rank(cs, line.code)
            for k in ranks:
                hits[k] += r is not None and r < k
    return {k: hits[k] / max(n, 1) for k in ranks}


def oracle_coverage(programs: Sequence[Program], cands: dict[str, list[list[Candidate]]], m: int = 100) -> float:
    """Share of programs whose every annotated gold line is among the top-m candidates."""
    ok = 0
    for p in programs:
        ok += all(gold_rank(cs[:m], line.code) is not None
                  for line, cs in zip(p.lines, cands[p.uid]) if line.annotated)
    return ok / max(len(programs), 1)
