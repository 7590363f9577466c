"""Best-first search over per-line candidates under a compilation budget (SPoC section 4).

A program is a choice of one candidate per line; its score is the sum of the chosen log-probs.
Best-first pops the highest-scoring unseen choice from a heap, pushes its neighbours (one line
moved to its next candidate), compiles it and runs the public tests; the first program that passes
them ends the search, and whether it also passes the hidden tests is reported.

Error localisation, after a compile error (each compilation counts against the budget):
- `compiler`: g++'s first error line, mapped back to the pseudocode line (the nearest translated
  line at or before it); that line's current candidate is blacklisted.
- `multiclass`: a learned localiser (error message + program -> offending line) picks the line;
  its candidate is blacklisted.
- `prefix`: the program prefix up to the compiler's line (closed by the stitcher) is compiled; if it
  fails, every choice sharing that prefix of candidates is pruned.
Blacklisted choices are never compiled: neighbours step over blacklisted candidates, and a queued
choice that became blocked is repaired (moved to the next allowed candidates) instead.
Implementation detail, not a change to the budget or to the order of the search: the next `lookahead`
choices in heap order are queued, and queued choices are syntax-checked together in one g++ run
(`Harness.check_many`); each still counts as one compilation when the search reaches it. Best-first
checks the whole queue at once. A localising method blacklists after each compile error, which
usually blocks most of the queue, so it checks only choices still unblocked when the search reaches
them, in chunks that double while no checked choice gets blocked and halve when one does
(`adaptive_check`; a batch of 32 costs about 6 single checks, so checking 32 to use 1 was the
bottleneck of the localisation methods).
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from genlab.systems.spoc.data import Program
from genlab.systems.spoc.harness import Harness, first_error_line, source_line_to_index, stitch
from genlab.systems.spoc.translate import Candidate

METHODS = ("best_first", "compiler", "multiclass", "prefix")


@dataclass(frozen=True)
class SearchConfig:
    budget: int = 100
    method: str = "best_first"
    max_candidates: int = 100  # M
    max_pops: int = 200_000  # bound on heap pops (blacklisted choices are popped without compiling)
    lookahead: int = 32  # next choices queued and syntax-checked together (Harness.check_many)
    adaptive_check: bool = True  # localising methods: check unblocked queued choices in adaptive chunks


@dataclass
class SearchResult:
    method: str
    passed_public: bool = False
    passed_hidden: bool = False
    used: int = 0  # compilations used until success (or the whole budget)
    top1_status: str = ""  # status of the first program (all top-1 candidates)
    choice: list[int] | None = None
    statuses: list[str] = field(default_factory=list)
    source: str = ""

    def success_at(self, budget: int) -> bool:
        return self.passed_hidden and self.used <= budget


Localiser = Callable[[list[str], list[int], list[int], str], int | None]
"""(codes, indents, translated line indices, compile error) -> blamed line index, or None."""


def program_source(program: Program, cands: list[list[Candidate]], choice: Sequence[int]) -> tuple[str, list[str]]:
    codes = [cands[i][choice[i]].code for i in range(len(program.lines))]
    return stitch(codes, [line.indent for line in program.lines]), codes


def compiler_line(codes: list[str], indents: list[int], translated: list[int], message: str) -> int | None:
    """g++'s first error line -> the nearest translated line at or before it (else the first after)."""
    line_no = first_error_line(message)
    if line_no is None or not translated:
        return None
    index = source_line_to_index(line_no)
    before = [i for i in translated if i <= index]
    if before:
        return before[-1]
    return translated[0]


def search(program: Program, cands: list[list[Candidate]], harness: Harness, config: SearchConfig = SearchConfig(),
           localiser: Localiser | None = None, tests: dict | None = None) -> SearchResult:
    """Run one search method on one program. `tests` overrides the test files (see Harness.evaluate)."""
    if config.method not in METHODS:
        raise ValueError(f"unknown search method {config.method!r}; expected one of {METHODS}")
    if config.method == "multiclass" and localiser is None:
        raise ValueError("the multiclass method needs a localiser")
    n = len(program.lines)
    indents = [line.indent for line in program.lines]
    cands = [c[: config.max_candidates] for c in cands]
    translated = [i for i in range(n) if len(cands[i]) > 1 or program.lines[i].annotated]
    logp = [[c.logprob for c in cs] for cs in cands]

    result = SearchResult(config.method)
    blacklist: set[tuple[int, int]] = set()  # (line, candidate)
    bad_prefixes: set[tuple[int, ...]] = set()  # choices of lines 0..k that cannot compile
    prefix_lengths: set[int] = set()

    start = tuple([0] * n)
    heap = [(-sum(lp[0] for lp in logp), start)]
    seen = {start}
    pops = 0
    buffer: deque = deque()  # [choice, source, codes, checked] popped, not yet evaluated
    adaptive = config.adaptive_check and config.method != "best_first"
    chunk = 0  # adaptive: choices per syntax-check batch (1, then doubling / halving)
    wasted = False  # adaptive: a checked choice got blocked since the last batch

    def allowed(i: int, j: int) -> int | None:
        """Line i's first candidate at index >= j that is not blacklisted."""
        while j < len(cands[i]) and (i, j) in blacklist:
            j += 1
        return j if j < len(cands[i]) else None

    def score(choice: tuple[int, ...]) -> float:
        return -sum(logp[i][j] for i, j in enumerate(choice))

    def push(choice: tuple[int, ...]) -> None:
        if choice not in seen:
            seen.add(choice)
            heapq.heappush(heap, (score(choice), choice))

    def bad_prefix(choice: tuple[int, ...]) -> int:
        """Length of a pruned prefix of `choice`, or 0."""
        return next((k for k in sorted(prefix_lengths) if choice[:k] in bad_prefixes), 0)

    def blocked(choice: tuple[int, ...]) -> bool:
        return any((i, choice[i]) in blacklist for i in translated) or bad_prefix(choice) > 0

    def refill() -> None:
        """Pop the next `lookahead` unblocked choices in score order and syntax-check them in batches.

        Neighbours move one line to its next candidate that is not blacklisted. A choice that became
        blocked after it was queued is repaired instead: its blacklisted lines move on to their next
        allowed candidate, or, under a pruned prefix, each line of the prefix moves on in turn.
        """
        nonlocal pops
        while heap and len(buffer) < min(config.lookahead, config.budget) and pops < config.max_pops:
            _, choice = heapq.heappop(heap)
            pops += 1
            k = bad_prefix(choice)
            if k:
                for i in translated:
                    if i < k and (j := allowed(i, choice[i] + 1)) is not None:
                        push(choice[:i] + (j,) + choice[i + 1:])
                continue
            if any((i, choice[i]) in blacklist for i in translated):
                fixed = list(choice)
                for i in translated:
                    if (i, fixed[i]) in blacklist:
                        j = allowed(i, fixed[i])
                        if j is None:
                            break
                        fixed[i] = j
                else:
                    push(tuple(fixed))
                continue
            for i in range(n):
                if (j := allowed(i, choice[i] + 1)) is not None:
                    push(choice[:i] + (j,) + choice[i + 1:])
            buffer.append([choice, *program_source(program, cands, choice), False])

    def check_ahead() -> None:
        """Syntax-check queued unchecked choices (all of them, or an adaptive chunk of unblocked ones)."""
        nonlocal chunk, wasted
        if adaptive:
            chunk = max(1, chunk // 2) if wasted else max(1, min(config.lookahead, chunk * 2))
            wasted = False
            todo = [e for e in buffer if not e[3] and not blocked(e[0])][:chunk]
        else:
            todo = [e for e in buffer if not e[3]]
        checks = harness.check_many([e[1] for e in todo])
        for e in todo:
            e[3] = True
        if config.method == "prefix":  # the prefixes the search will compile next, checked in one go too
            prefixes = []
            for e, (ok, message) in zip(todo, checks):
                blamed = None if ok else compiler_line(e[2], indents, translated, message)
                if blamed is not None:
                    prefixes.append(prefix_source(e[2], indents, blamed))
            if prefixes:
                harness.check_many(prefixes)

    while result.used < config.budget:
        if not buffer:
            refill()
            if not buffer:
                break
        choice, source, codes, checked = buffer[0]
        if blocked(choice):  # blacklisted after it was queued
            buffer.popleft()
            wasted = wasted or checked
            continue
        if not checked and config.lookahead > 1:
            check_ahead()
        buffer.popleft()
        ev = harness.evaluate(source, program.probid, tests)
        result.used += 1
        result.statuses.append(ev.status)
        if result.used == 1:
            result.top1_status = ev.status
        if ev.passed_public:
            result.passed_public, result.passed_hidden = True, ev.passed_hidden
            result.choice, result.source = list(choice), source
            return result
        if ev.status != "compile_error" or config.method == "best_first":
            continue
        if config.method == "compiler":
            blamed = compiler_line(codes, indents, translated, ev.compile_error)
        elif config.method == "multiclass":
            blamed = localiser(codes, indents, translated, ev.compile_error)
        else:  # prefix
            blamed = compiler_line(codes, indents, translated, ev.compile_error)
            if blamed is None or result.used >= config.budget:
                continue
            ok, _ = harness.compile_check(prefix_source(codes, indents, blamed))
            result.used += 1
            result.statuses.append("prefix_ok" if ok else "prefix_error")
            if not ok:
                bad_prefixes.add(choice[: blamed + 1])
                prefix_lengths.add(blamed + 1)
            continue
        if blamed is not None and blamed in translated:
            blacklist.add((blamed, choice[blamed]))
    result.used = min(result.used, config.budget)
    return result


def prefix_source(codes: list[str], indents: list[int], last: int) -> str:
    """Lines 0..last, then an empty statement at the next line's indentation (so an open block
    header keeps its body), all blocks closed by the stitcher."""
    nxt = indents[last + 1] if last + 1 < len(indents) else indents[last]
    return stitch(list(codes[: last + 1]) + [";"], list(indents[: last + 1]) + [nxt])
