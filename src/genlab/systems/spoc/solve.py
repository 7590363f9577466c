"""`genlab spoc solve`: a plain pseudocode file -> a C++ program that passes the given examples.

The file has one statement a line; indentation (tabs, or spaces in a consistent unit) gives the
blocks. The lines become the body of `main` (the official format's unannotated `int main() {`,
`return 0;` and `}` rows are added here), then the usual search runs with the user's examples as
the public tests and no hidden tests: a program found passes those examples, nothing more is known.
"""

from __future__ import annotations

import heapq
import math
import re
from pathlib import Path

from genlab.errors import GenlabError
from genlab.systems.spoc.data import Line, Program, TestCase, parse_testcases
from genlab.systems.spoc.harness import stitch
from genlab.systems.spoc.translate import Candidate


def read_pseudocode(path: str | Path) -> Program:
    """Parse a pseudocode file into a program whose lines sit inside `main` (checked: UTF-8, not
    empty, indentation by tabs or spaces but not both, spaces in multiples of one unit)."""
    path = Path(path)
    if not path.is_file():
        raise GenlabError(f"pseudocode file not found: {path}")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise GenlabError(f"{path}: expected UTF-8 text, got a byte 0x{err.object[err.start]:02x} at offset {err.start}") from None
    rows = [(no, raw.rstrip()) for no, raw in enumerate(text.splitlines(), start=1) if raw.strip()]
    if not rows:
        raise GenlabError(f"{path}: empty file, expected one pseudocode statement a line")
    kinds: dict[str, int] = {}  # indentation character -> first line using it
    widths = []
    for no, raw in rows:
        lead = raw[: len(raw) - len(raw.lstrip(" \t"))]
        if " " in lead and "\t" in lead:
            raise GenlabError(f"{path}:{no}: indentation mixes tabs and spaces")
        if lead:
            kinds.setdefault(lead[0], no)
            widths.append(len(lead))
    if len(kinds) > 1:
        first, later = sorted(kinds, key=kinds.get)
        name = {" ": "spaces", "\t": "tabs"}
        raise GenlabError(f"{path}:{kinds[later]}: indentation by {name[later]} here, by {name[first]} on line {kinds[first]}")
    unit = 1 if "\t" in kinds else (math.gcd(*widths) if widths else 1)
    lines = [Line("", "int main() {", 0)]
    for _, raw in rows:
        depth = (len(raw) - len(raw.lstrip(" \t"))) // unit
        lines.append(Line(raw.strip(), "", depth + 1))
    lines += [Line("", "return 0;", 1), Line("", "}", 0)]
    return Program(path.stem, "0", "user", tuple(lines), str(path))


def read_examples(tests: str | Path | None, examples: list[tuple[str, str]] | None) -> list[TestCase]:
    """Test cases from an official-format file (`--tests`) and/or `--example IN OUT` pairs of files."""
    cases = parse_testcases(tests) if tests else []
    for inp, out in examples or []:
        pair = []
        for name in (inp, out):
            p = Path(name)
            if not p.is_file():
                raise GenlabError(f"--example: file not found: {p}")
            pair.append(p.read_text(encoding="utf-8", errors="replace"))
        cases.append(TestCase(pair[0], pair[1]))
    if not cases:
        raise GenlabError("give the examples to check candidates against: --tests FILE or --example IN OUT")
    return cases


def changed_lines(choice: list[int] | None, program: Program) -> list[int]:
    """1-based positions among the user's lines where the program uses other than the top-1 candidate."""
    if choice is None:
        return []
    user = [i for i, line in enumerate(program.lines) if line.annotated]
    return [k + 1 for k, i in enumerate(user) if choice[i] != 0]


_UNDECLARED = re.compile(r"'(\w+)' was not declared in this scope")


def undeclared_hint(compile_errors: list[str]) -> str | None:
    """When every compilation failed and g++ named the same undeclared variables in each: a line saying so
    and how to declare them (SPoC's pseudocode declares variables in lines of its own), else None."""
    if not compile_errors:
        return None
    common = set.intersection(*(set(_UNDECLARED.findall(message)) for message in compile_errors))
    if not common:
        return None
    names = ", ".join(sorted(common))
    return (f"g++ found {names} undeclared in all {len(compile_errors)} compilations: the translation is line by "
            f"line, so declare variables in a line of the pseudocode (e.g. `create integers {names}`)")


def readable(source: str) -> str:
    """A stitched program laid out for a reader: the closing braces `stitch` puts at the start of the next
    line (`} } cout << x;`, which keeps one source line per pseudocode line for g++'s line numbers) and at the
    end of the last one go on lines of their own at their block's indentation; `} else` (and a do-loop's
    `} while`) stay together. Tokens are unchanged."""
    out: list[str] = []
    opened: list[tuple[str, str]] = []  # (indentation, text) of each line whose `{` is still open
    for line in source.rstrip("\n").split("\n"):
        indent, rest = line[: len(line) - len(line.lstrip("\t"))], line.strip()
        if not rest:
            out.append("")
            continue
        while rest.startswith("}") and opened:
            after = rest[1:].lstrip()
            if after.startswith("else") or (after.startswith("while") and opened[-1][1].startswith("do")):
                indent = opened.pop()[0]  # `} else ...` stays one line, at its block's indentation
                break
            out.append(opened.pop()[0] + "}")
            rest = after
        closing = 0  # ` }` at the end of the last line: the blocks still open
        while rest.endswith(" }") and len(opened) > closing and not rest.endswith("{ }"):
            rest, closing = rest[:-2].rstrip(), closing + 1
        if rest:
            out.append(indent + rest)
            if rest.endswith("{"):
                opened.append((indent, rest))
        out += [opened.pop()[0] + "}" for _ in range(min(closing, len(opened)))]
    return "\n".join(out) + "\n"


def top_programs(program: Program, cands: list[list[Candidate]], k: int) -> list[tuple[float, str]]:
    """The k most likely whole programs (summed log-probs, in best-first order), not compiled."""
    indents = [line.indent for line in program.lines]
    start = tuple(0 for _ in cands)
    heap = [(-sum(c[0].logprob for c in cands), start)]
    seen, out = {start}, []
    while heap and len(out) < k:
        neg, choice = heapq.heappop(heap)
        out.append((-neg, stitch([cands[i][j].code for i, j in enumerate(choice)], indents)))
        for i in range(len(choice)):
            if choice[i] + 1 < len(cands[i]):
                nxt = choice[:i] + (choice[i] + 1,) + choice[i + 1:]
                if nxt not in seen:
                    seen.add(nxt)
                    score = neg + cands[i][choice[i]].logprob - cands[i][choice[i] + 1].logprob
                    heapq.heappush(heap, (score, nxt))
    return out
