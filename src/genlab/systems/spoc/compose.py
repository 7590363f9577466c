"""Line-level composition: candidates for long pseudocode lines built from their parts.

A training pair rarely matches a long line as a whole ("for i = 1 to m, set f[i] to 1", "if a is 0 and
b is 0 and s is 2"), but its parts are common. `ComposingTranslator` wraps any translator and adds:
- head + tail: a block header and the statement after the first top-level comma, joined both ways
  (`for (...) stmt;` and `for (...) { stmt; }`);
- conjunctions: the condition of an `if` / `while` / `else if` split at its `and` / `or` words, each
  part translated as `if PART`, the conditions joined with `&&` / `||`.
A composed candidate's weight is `weight x` the product of its parts' probabilities; the merged list is
re-normalised, so the base translator's confident lines keep their order at the top.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from genlab.systems.spoc.lexer import canonical, tokens
from genlab.systems.spoc.translate import Candidate, Translator, normalise

_HEADS = {"for", "if", "while", "loop", "in", "start", "else", "repeat", "iterate", "when", "until", "do"}
_COND_KEYS = ("else if", "if", "while")
_COND = re.compile(r"^\s*(?:\}\s*)?(?:else\s+)?(?:if|while)\s*\((.*)\)\s*\{?\s*$")
_CONJ = {"and": "&&", "or": "||", "&&": "&&", "||": "||"}


@dataclass(frozen=True)
class ComposeConfig:
    weight: float = 0.5  # a composed candidate's weight relative to the product of its parts' probabilities
    per_part: int = 4  # candidates kept per part
    max_parts: int = 4  # conjunctions with more parts are not composed
    variants: float = 0.1  # weight of the written-differently forms of each candidate (0: none)
    variant_top: int = 20  # candidates whose variants are added


class ComposingTranslator:
    def __init__(self, base: Translator, config: ComposeConfig = ComposeConfig()):
        self.base, self.config = base, config
        self.name = base.name + "+compose"

    def fingerprint(self) -> str:
        digest = hashlib.sha256(repr((VERSION, self.config)).encode()).hexdigest()[:8]
        return f"{self.base.fingerprint()}-compose{digest}"

    def translate(self, texts: Sequence[str], m: int) -> list[list[Candidate]]:
        plans = [_plans(t, self.config.max_parts) for t in texts]
        parts = sorted({p for plan in plans for _, ps in plan for p in ps} - set(texts))
        base = self.base.translate(list(texts) + parts, m)
        table = dict(zip(list(texts) + parts, base))
        out = []
        for text, plan in zip(texts, plans):
            scored = {canonical(c.code): (c.code, math.exp(c.logprob)) for c in table[text]}
            for kind, ps in plan:
                for code, w in self._compose(kind, [table[p][: self.config.per_part] for p in ps]):
                    key = canonical(code)
                    old = scored.get(key)
                    scored[key] = (old[0] if old else code, (old[1] if old else 0.0) + self.config.weight * w)
            if self.config.variants > 0:
                for code, w in sorted(scored.values(), key=lambda cw: -cw[1])[: self.config.variant_top]:
                    for var in variants(code):
                        key = canonical(var)
                        if key not in scored:
                            scored[key] = (var, self.config.variants * w)
                for code in _literal_prints(text):
                    scored.setdefault(canonical(code), (code, self.config.variants * 0.1))
            out.append(normalise(scored, m))
        return out

    def _compose(self, kind: str, lists: list[list[Candidate]]) -> list[tuple[str, float]]:
        if kind == "head-tail":
            heads, tails = lists
            out = []
            for h, t in itertools.product(heads, tails):
                head, tail = h.code.strip(), t.code.strip()
                if not head.endswith("{") or tail.endswith("{") or tail.startswith("}"):
                    continue
                head = head[:-1].rstrip()
                w = math.exp(h.logprob + t.logprob)
                out += [(f"{head} {tail}", w), (f"{head} {{ {tail} }}", w)]
            return out
        key, joins = kind.split(":")
        conds = [[(m.group(1).strip(), c.logprob) for c in cs if (m := _COND.match(c.code))] for cs in lists]
        out = []
        for combo in itertools.product(*conds):
            expr = combo[0][0]
            for op, (cond, _) in zip(joins.split(","), combo[1:]):
                expr += f" {op} {cond}"
            prefix = {"if": "if", "while": "while", "else if": "} else if"}[key]
            out.append((f"{prefix} ({expr}) {{", math.exp(sum(lp for _, lp in combo))))
        return out


_S = r"(^|[;{)] )"  # where a statement starts: the line's start or after `)`, `{`, `;`
_VARIANT_RULES = [  # (pattern, replacement) on a whole code line; each gives one more form
    (re.compile(r"^for \(int (\w+) ="), r"for (\1 ="),
    (re.compile(r"^for \((\w+) ="), r"for (int \1 ="),
    (re.compile(r"; (\w+)\+\+\)"), r"; ++\1)"),
    (re.compile(r"; \+\+(\w+)\)"), r"; \1++)"),
    (re.compile(r"; (\w+)--\)"), r"; --\1)"),
    (re.compile(_S + r"(\w+)\+\+;"), r"\1++\2;"),
    (re.compile(_S + r"(\w+)\+\+;"), r"\1\2 += 1;"),
    (re.compile(_S + r"\+\+(\w+);"), r"\1\2++;"),
    (re.compile(_S + r"(\w+)--;"), r"\1--\2;"),
    (re.compile(_S + r"(\w+)--;"), r"\1\2 -= 1;"),
    (re.compile(_S + r"([\w\[\]. ]+?) = \2 ([-+*/%]) ([^;]+);"), r"\1\2 \3= \4;"),
    (re.compile(_S + r"([\w\[\]. ]+?) ([-+*/%])= ([^;]+);"), r"\1\2 = \2 \3 \4;"),
    (re.compile(r"^(cout << .+) << endl;$"), r"\1;"),
    (re.compile(r"^(cout << .+) << endl;$"), r'\1 << "\\n";'),
    (re.compile(r'^(cout << .+)(?<! << endl)(?<! << "\\n");$'), r"\1 << endl;"),
]


def variants(code: str, depth: int = 2) -> list[str]:
    """Other common ways of writing the same line (`i++` / `++i`, `a = a + b` / `a += b`, with or
    without `endl`, a `for` with or without declaring its variable)."""
    line = code.strip()
    out: list[str] = []
    frontier = [line]
    for _ in range(depth):  # rules composed up to `depth` times
        grown = []
        for form in frontier:
            for pattern, repl in _VARIANT_RULES:
                new = pattern.sub(repl, form, count=1)
                if new != line and new not in out:
                    out.append(new)
                    grown.append(new)
        frontier = grown
    return out


_PRINT_WORDS = {"print", "output", "display", "write", "show", "return"}


def _literal_prints(text: str) -> list[str]:
    """`print Ron` -> `cout << "Ron" << endl;`: the rest of a print line as a string."""
    words = text.split(None, 1)
    if len(words) < 2 or words[0].lower() not in _PRINT_WORDS or words[0].lower() == "return" or '"' in words[1]:
        return []
    rest = words[1].strip()
    return [f'cout << "{rest}" << endl;', f'cout << "{rest}";']


def _plans(text: str, max_parts: int) -> list[tuple[str, list[str]]]:
    """The compositions tried for one line: [(kind, part texts)]."""
    toks = tokens(text)
    if not toks:
        return []
    plans: list[tuple[str, list[str]]] = []
    low = [t.lower() for t in toks]
    depth = 0
    for i, t in enumerate(toks):  # head, tail at the first top-level comma after a block word
        depth += t in "([" and len(t) == 1
        depth -= t in ")]" and len(t) == 1
        if t == "," and depth == 0:  # a line with a comma is not a bare condition
            if low[0] in _HEADS and 0 < i < len(toks) - 1:
                plans.append(("head-tail", [_join(toks[:i]), _join(toks[i + 1:])]))
            return plans
    return _conjunctions(toks, max_parts)


def _conjunctions(toks: list[str], max_parts: int) -> list[tuple[str, list[str]]]:
    low = [t.lower() for t in toks]
    for key in _COND_KEYS:
        n = len(key.split())
        if low[:n] == key.split():
            break
    else:
        return []
    parts, ops, cur, depth = [], [], [], 0
    for t, lt in zip(toks[n:], low[n:]):
        depth += t in "([" and len(t) == 1
        depth -= t in ")]" and len(t) == 1
        if depth == 0 and lt in _CONJ and cur:
            parts.append(cur)
            ops.append(_CONJ[lt])
            cur = []
        else:
            cur.append(t)
    if cur:
        parts.append(cur)
    if not 2 <= len(parts) <= max_parts or any(not p for p in parts):
        return []
    return [(f"{key}:{','.join(ops)}", ["if " + _join(p) for p in parts])]


def _join(toks: list[str]) -> str:
    return " ".join(toks)


VERSION = "1"
