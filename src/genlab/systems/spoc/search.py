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
The budget counts distinct programs compiled: a choice whose program is the same as one already
compiled in this search, up to `program_form` (tokens, and `i++;` / `++i;` as a whole statement or a
`for` step), is skipped without compiling or spending the budget (`SearchResult.skipped`); a prefix
check of a prefix already checked reuses its verdict. The paper's beam lists hold distinct token
sequences, so its programs are distinct; our merged lists add written-differently forms of a line
(`compose.variants`), which made some programs the same one compiled twice.
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

from genlab.errors import GenlabError
from genlab.systems.spoc.data import Program
from genlab.systems.spoc.harness import Evaluation, Harness, first_error_line, source_line_to_index, stitch
from genlab.systems.spoc.lexer import is_identifier, tokens
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
    skipped: int = 0  # choices not compiled: the same program (program_form) as one compiled before

    def success_at(self, budget: int) -> bool:
        return self.passed_hidden and self.used <= budget


Localiser = Callable[[list[str], list[int], list[int], str], int | None]
"""(codes, indents, translated line indices, compile error) -> blamed line index, or None."""


def program_source(program: Program, cands: list[list[Candidate]], choice: Sequence[int]) -> tuple[str, list[str]]:
    codes = [cands[i][choice[i]].code for i in range(len(program.lines))]
    return stitch(codes, [line.indent for line in program.lines]), codes


_STATEMENT_START = {";", "{", "}", ")", "else"}
# operators that bind looser than `<<` (and `>>`, as tight): after one, the rest is not `cout`'s insertion chain
_ENDS_CHAIN = {"<", ">", "<=", ">=", "==", "!=", "&", "^", "|", "&&", "||", "?", ":", "=", "+=", "-=", "*=", "/=",
               "%=", "&=", "|=", "^=", "<<=", ">>=", ",", ">>", "{", "}", ";"}
_NEWLINES = {"endl", "'\\n'", '"\\n"'}
# where flushing can change the bytes written or their order: no newline grouping in such a program
_FLUSH_SENSITIVE = {"sync_with_stdio", "_exit", "_Exit", "quick_exit", "system", "fork", "popen", "define"}


def program_form(source: str) -> str:
    """The program up to changes that cannot alter its output: each line's tokens joined by one space
    (string and char literals stay whole); an increment or decrement whose value is discarded, `x++;` as a
    whole statement or `x++)` as a `for` step, written prefix (`++x`); and in a `cout << ...;` statement,
    `<< endl` and `<< '\\n'` written `<< "\\n"`. The last only where every `cout` is followed by `<<` and
    every `endl` follows `<<` (nobody redefined them) and the program has none of `sync_with_stdio`, `_exit`,
    `system`, `fork`, `#define`...: then the only difference is when the buffer is flushed, not what is
    written or in which order. Comments are not removed, so two programs that differ in one stay distinct
    (grouping is only ever conservative)."""
    lines = [tokens(line) for line in source.split("\n")]
    flat = [t for toks in lines for t in toks]
    newlines = not _FLUSH_SENSITIVE.intersection(flat) and all(
        (t != "cout" or flat[k + 1: k + 2] == ["<<"]) and (t != "endl" or flat[k - 1: k] == ["<<"])
        for k, t in enumerate(flat))
    out = []
    for toks in lines:
        for k in range(len(toks) - 2):
            x, op, end = toks[k], toks[k + 1], toks[k + 2]
            if op in ("++", "--") and is_identifier(x) and (
                    (end == ";" and (k == 0 or toks[k - 1] in _STATEMENT_START))
                    or (end == ")" and k > 0 and toks[k - 1] == ";")):
                toks[k], toks[k + 1] = op, x
        if newlines:
            _newlines_as_strings(toks)
        out.append(" ".join(toks))
    return "\n".join(out)


def _newlines_as_strings(toks: list[str]) -> None:
    """In place: `endl` / `'\\n'` -> `"\\n"` where `<<` inserts it into `cout` (a statement starting with
    `cout`, the `<<` at the statement's bracket depth, no looser operator before it)."""
    for start, t in enumerate(toks):
        if t != "cout" or (start > 0 and toks[start - 1] not in _STATEMENT_START):
            continue
        depth = 0
        for k in range(start + 1, len(toks)):
            tok = toks[k]
            if depth == 0 and tok in _ENDS_CHAIN:
                break
            depth += tok in ("(", "[")
            depth -= tok in (")", "]")
            if depth < 0:
                break
            if depth == 0 and tok == "<<" and k + 2 < len(toks) and toks[k + 1] in _NEWLINES \
                    and toks[k + 2] in ("<<", ";"):
                toks[k + 1] = '"\\n"'


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
           localiser: Localiser | None = None, tests: dict | None = None, on_step: StepHook | None = None) -> SearchResult:
    """Run one search method on one program. `tests` overrides the test files (see Harness.evaluate);
    `on_step(k, queued, evaluation, blamed line or None)` is called after each compilation."""
    if config.method not in METHODS:
        raise GenlabError(f"unknown search method {config.method!r}; expected one of {METHODS}")
    if config.method == "multiclass" and localiser is None:
        raise GenlabError("the multiclass method needs a localiser")
    return BestFirstSearch(program, cands, harness, config, localiser, tests, on_step).run()


@dataclass
class Queued:
    """A choice popped from the heap and waiting for its compilation."""

    choice: tuple[int, ...]  # candidate index per line
    source: str  # the stitched program
    codes: list[str]  # the chosen code per line
    checked: bool = False  # syntax-checked ahead (Harness.check_many)


StepHook = Callable[[int, Queued, Evaluation, "int | None"], None]


class BestFirstSearch:
    """The state of one search: the heap of choices, what localisation ruled out, the queue ahead."""

    def __init__(self, program: Program, cands: list[list[Candidate]], harness: Harness, config: SearchConfig,
                 localiser: Localiser | None, tests: dict | None, on_step: StepHook | None = None):
        self.program, self.harness, self.config, self.localiser, self.tests = program, harness, config, localiser, tests
        self.on_step = on_step
        n = len(program.lines)
        self.indents = [line.indent for line in program.lines]
        self.cands = [c[: config.max_candidates] for c in cands]
        self.translated = [i for i in range(n) if len(self.cands[i]) > 1 or program.lines[i].annotated]
        self.logp = [[c.logprob for c in cs] for cs in self.cands]
        self.result = SearchResult(config.method)
        self.blacklist: set[tuple[int, int]] = set()  # (line, candidate)
        self.bad_prefixes: set[tuple[int, ...]] = set()  # choices of lines 0..k that cannot compile
        self.prefix_lengths: set[int] = set()
        start = tuple([0] * n)
        self.heap = [(self.score(start), start)]
        self.seen = {start}
        self.pops = 0  # heap pops so far (bounded by config.max_pops)
        self.queue: deque[Queued] = deque()
        self.compiled: set[str] = set()  # program_form of every program compiled so far
        self.prefix_checked: dict[str, bool] = {}  # program_form of a checked prefix -> it compiles
        self.adaptive = config.adaptive_check and config.method != "best_first"
        self.chunk = 0  # adaptive: choices per syntax-check batch (1, then doubling / halving)
        self.wasted = False  # adaptive: a checked choice got blocked since the last batch

    # -- choices
    def score(self, choice: tuple[int, ...]) -> float:
        return -sum(self.logp[i][j] for i, j in enumerate(choice))

    def push(self, choice: tuple[int, ...]) -> None:
        if choice not in self.seen:
            self.seen.add(choice)
            heapq.heappush(self.heap, (self.score(choice), choice))

    def allowed(self, i: int, j: int) -> int | None:
        """Line i's first candidate at index >= j that is not blacklisted."""
        while j < len(self.cands[i]) and (i, j) in self.blacklist:
            j += 1
        return j if j < len(self.cands[i]) else None

    def bad_prefix(self, choice: tuple[int, ...]) -> int:
        """Length of a pruned prefix of `choice`, or 0."""
        return next((k for k in sorted(self.prefix_lengths) if choice[:k] in self.bad_prefixes), 0)

    def blacklisted(self, choice: tuple[int, ...]) -> bool:
        return any((i, choice[i]) in self.blacklist for i in self.translated)

    def blocked(self, choice: tuple[int, ...]) -> bool:
        return self.blacklisted(choice) or self.bad_prefix(choice) > 0

    # -- the queue ahead
    def refill(self) -> None:
        """Pop the next `lookahead` unblocked choices in score order into the queue.

        Neighbours move one line to its next candidate that is not blacklisted. A choice that became
        blocked after it was pushed is repaired instead: its blacklisted lines move on to their next
        allowed candidate, or, under a pruned prefix, each line of the prefix moves on in turn.
        """
        cfg = self.config
        while self.heap and len(self.queue) < min(cfg.lookahead, cfg.budget) and self.pops < cfg.max_pops:
            _, choice = heapq.heappop(self.heap)
            self.pops += 1
            if k := self.bad_prefix(choice):
                for i in self.translated:
                    if i < k and (j := self.allowed(i, choice[i] + 1)) is not None:
                        self.push(choice[:i] + (j,) + choice[i + 1:])
            elif self.blacklisted(choice):
                self.push_repaired(choice)
            else:
                for i in range(len(choice)):
                    if (j := self.allowed(i, choice[i] + 1)) is not None:
                        self.push(choice[:i] + (j,) + choice[i + 1:])
                self.queue.append(Queued(choice, *program_source(self.program, self.cands, choice)))

    def push_repaired(self, choice: tuple[int, ...]) -> None:
        fixed = list(choice)
        for i in self.translated:
            if (i, fixed[i]) in self.blacklist:
                j = self.allowed(i, fixed[i])
                if j is None:
                    return
                fixed[i] = j
        self.push(tuple(fixed))

    def check_ahead(self) -> None:
        """Syntax-check queued unchecked choices (all of them, or an adaptive chunk of unblocked ones)."""
        if self.adaptive:
            self.chunk = max(1, self.chunk // 2) if self.wasted else max(1, min(self.config.lookahead, self.chunk * 2))
            self.wasted = False
            todo = [q for q in self.queue if not q.checked and not self.blocked(q.choice)][: self.chunk]
        else:
            todo = [q for q in self.queue if not q.checked]
        checks = self.harness.check_many([q.source for q in todo])
        for q in todo:
            q.checked = True
        if self.config.method == "prefix":  # the prefixes the search will compile next, checked in one go too
            prefixes = []
            for q, (ok, message) in zip(todo, checks):
                blamed = None if ok else compiler_line(q.codes, self.indents, self.translated, message)
                if blamed is not None:
                    prefixes.append(prefix_source(q.codes, self.indents, blamed))
            if prefixes:
                self.harness.check_many(prefixes)

    # -- the search
    def run(self) -> SearchResult:
        result, cfg = self.result, self.config
        while result.used < cfg.budget:
            if not self.queue:
                self.refill()
                if not self.queue:
                    break
            head = self.queue[0]
            if self.blocked(head.choice):  # ruled out after it was queued
                self.queue.popleft()
                self.wasted = self.wasted or head.checked
                continue
            form = program_form(head.source)
            if form in self.compiled:  # the same program again: nothing new to learn, no budget spent
                self.queue.popleft()
                result.skipped += 1
                continue
            if not head.checked and cfg.lookahead > 1:
                self.check_ahead()
            self.queue.popleft()
            self.compiled.add(form)
            ev = self.harness.evaluate(head.source, self.program.probid, self.tests)
            result.used += 1
            result.statuses.append(ev.status)
            if result.used == 1:
                result.top1_status = ev.status
            blamed = None
            if ev.status == "compile_error" and cfg.method != "best_first":
                blamed = self.localise(head, ev.compile_error)
            if self.on_step is not None:
                self.on_step(result.used, head, ev, blamed)
            if ev.passed_public:
                result.passed_public, result.passed_hidden = True, ev.passed_hidden
                result.choice, result.source = list(head.choice), head.source
                return result
        result.used = min(result.used, cfg.budget)
        return result

    def localise(self, head: Queued, message: str) -> int | None:
        """After a compile error: blacklist the blamed line's candidate, or (prefix) prune the prefix.
        Returns the blamed line."""
        if self.config.method == "compiler":
            blamed = compiler_line(head.codes, self.indents, self.translated, message)
        elif self.config.method == "multiclass":
            blamed = self.localiser(head.codes, self.indents, self.translated, message)
        else:  # prefix: one more compilation, of the program up to the compiler's line
            blamed = compiler_line(head.codes, self.indents, self.translated, message)
            if blamed is None or self.result.used >= self.config.budget:
                return blamed
            prefix = prefix_source(head.codes, self.indents, blamed)
            form = program_form(prefix)
            ok = self.prefix_checked.get(form)
            if ok is None:  # a prefix checked before is not compiled (or counted) again
                ok, _ = self.harness.compile_check(prefix)
                self.prefix_checked[form] = ok
                self.result.used += 1
                self.result.statuses.append("prefix_ok" if ok else "prefix_error")
            if not ok:
                self.bad_prefixes.add(head.choice[: blamed + 1])
                self.prefix_lengths.add(blamed + 1)
            return blamed
        if blamed is not None and blamed in self.translated:
            self.blacklist.add((blamed, head.choice[blamed]))
        return blamed


def prefix_source(codes: list[str], indents: list[int], last: int) -> str:
    """Lines 0..last, then an empty statement at the next line's indentation (so an open block
    header keeps its body), all blocks closed by the stitcher."""
    nxt = indents[last + 1] if last + 1 < len(indents) else indents[last]
    return stitch(list(codes[: last + 1]) + [";"], list(indents[: last + 1]) + [nxt])
