"""`genlab spoc ...` sub-commands. Keep imports inside the command functions."""

from __future__ import annotations

import argparse
import contextlib


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("spoc", help="SPoC: search-based pseudocode to C++ (Kulal et al. 2019).")
    sub = parser.add_subparsers(dest="command", metavar="<command>", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--data", default=None,
                       help="SPoC data folder (default: $GENLAB_SPOC_DATA, else ../shared/data/spoc beside the project)")
        p.add_argument("--split", default="testp", choices=["testp", "train-eval", "train-test"])
        p.add_argument("--tsv", default=None, help="any TSV in the official format (overrides --split)")
        p.add_argument("--testcases", default=None, help="test case folder (default: DATA/testcases)")
        p.add_argument("--subset", type=int, default=None,
                       help="a seeded subset of N programs (default for testp: the committed 200)")
        p.add_argument("--all", action="store_true", help="every program of the split")
        p.add_argument("--ids", default=None, help="a file of program ids (probid-subid-workerid), one per line")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--cache", default=None, help="compile/run/candidate cache (default: $GENLAB_CACHE/spoc)")
        p.add_argument("--workers", type=int, default=0, help="parallel compilations (default: all cores)")
        insecure(p)

    def insecure(p: argparse.ArgumentParser) -> None:
        p.add_argument("--insecure", action="store_true",
                       help="compile and run candidates without the bubblewrap sandbox (said on every run)")

    ev = sub.add_parser("eval", help="search methods on a split; success at budgets, line accuracy, oracle")
    common(ev)
    ev.add_argument("--budget", type=int, default=100)
    ev.add_argument("--budgets", default="1,10,100", help="budgets to report (add 1000 with --budget 1000)")
    ev.add_argument("--methods", default="best_first,compiler,multiclass,prefix")
    ev.add_argument("--translator", default="auto", choices=TRANSLATORS,
                    help="auto: retrieval merged with the seq2seq of `genlab spoc train` when built, else retrieval")
    ev.add_argument("--model", default=None, help="seq2seq checkpoint folder (default: CACHE/seq2seq) or local causal LM path")
    ev.add_argument("--localiser", default=None, help="localiser folder (default: CACHE/localiser)")
    ev.add_argument("--m", type=int, default=100, help="candidates per line")
    ev.add_argument("--out", default=None, help="JSON lines of per-program results (resumable)")
    ev.add_argument("--quiet", action="store_true", help="no progress bar")
    ev.add_argument("--translate-only", action="store_true",
                    help="no search: line accuracy and oracle coverage of the translator's candidates")
    ev.add_argument("--summary-only", action="store_true",
                    help="only summarise the programs already in --out (label: the completed prefix)")
    ev.set_defaults(func=_eval)

    sanity = sub.add_parser("sanity", help="gold programs through the harness: share passing hidden tests")
    common(sanity)
    sanity.set_defaults(func=_sanity)

    loc = sub.add_parser("train-localiser", help="train the multiclass error localiser on training compile failures")
    loc.add_argument("--data", default=None)
    loc.add_argument("--cache", default=None)
    loc.add_argument("--workers", type=int, default=0)
    loc.add_argument("--programs", type=int, default=1025, help="training programs used (train-test split)")
    loc.add_argument("--per-program", type=int, default=2)
    loc.add_argument("--out", default=None, help="output folder (default: CACHE/localiser)")
    insecure(loc)
    loc.set_defaults(func=_train_localiser)

    sv = sub.add_parser("solve", help="a plain pseudocode file -> a C++ program that passes the given examples")
    sv.add_argument("pseudocode", help="text file: one statement a line, blocks by indentation (tabs or spaces)")
    sv.add_argument("--tests", default=None, help="examples in the official format (input ###ENDINPUT### output ###ENDOUTPUT###)")
    sv.add_argument("--example", nargs=2, action="append", metavar=("IN_FILE", "OUT_FILE"),
                    help="one example: an input file and its expected output (repeatable)")
    sv.add_argument("--budget", type=int, default=100, help="compilations at most")
    sv.add_argument("--method", default="prefix", choices=["prefix", "compiler", "best-first", "multiclass"])
    sv.add_argument("--out", default=None, help="write the program found here")
    sv.add_argument("--data", default=None, help="SPoC data folder for the translator (as for eval)")
    sv.add_argument("--cache", default=None)
    sv.add_argument("--m", type=int, default=100, help="candidates per line")
    sv.add_argument("--translator", default="auto", choices=TRANSLATORS)
    sv.add_argument("--model", default=None, help="seq2seq checkpoint folder (default: CACHE/seq2seq)")
    sv.add_argument("--workers", type=int, default=0)
    sv.add_argument("--quiet", action="store_true", help="no line per compilation")
    insecure(sv)
    sv.set_defaults(func=_solve)

    tr = sub.add_parser("translate", help="top-M candidates for pseudocode lines, or whole programs for a file")
    tr.add_argument("text", nargs="*", help="pseudocode lines")
    tr.add_argument("--file", default=None, help="a pseudocode file (as for solve): also print whole programs")
    tr.add_argument("--programs", type=int, default=3, help="with --file: the K most likely whole programs")
    tr.add_argument("--data", default=None)
    tr.add_argument("--m", type=int, default=5)
    tr.add_argument("--translator", default="auto", choices=TRANSLATORS)
    tr.add_argument("--model", default=None)
    tr.add_argument("--cache", default=None)
    tr.set_defaults(func=_translate)

    s2s = sub.add_parser("train", help="build the trained artefacts (seq2seq translator, multiclass localiser) in the cache")
    s2s.add_argument("--data", default=None)
    s2s.add_argument("--cache", default=None, help="default: $GENLAB_CACHE/spoc")
    s2s.add_argument("--only", default=None, choices=["translator", "localiser"], help="build one artefact only")
    s2s.add_argument("--out", default=None, help="seq2seq checkpoint folder (default: CACHE/seq2seq)")
    s2s.add_argument("--preset", default="small", choices=["tiny", "small", "paper"])
    s2s.add_argument("--minutes", type=float, default=120.0,
                     help="wall-clock budget of this run; a later run resumes from the last checkpoint")
    s2s.add_argument("--steps", type=int, default=None, help="stop after this many steps in all (checkpoint every 250)")
    s2s.add_argument("--splits", default=None, help="training splits (default: every train split the data folder has)")
    s2s.add_argument("--workers", type=int, default=0, help="parallel compilations for the localiser")
    s2s.add_argument("--programs", type=int, default=1025, help="localiser: training programs used (train-test split)")
    s2s.add_argument("--per-program", type=int, default=2)
    s2s.add_argument("--quiet", action="store_true", help="no progress bar")
    insecure(s2s)
    s2s.set_defaults(func=_train)


# --- helpers ----------------------------------------------------------------------------------------


def _paths(args):
    from pathlib import Path

    from genlab.errors import GenlabError
    from genlab.systems.spoc.data import SPLITS, default_data_dir
    from genlab.systems.spoc.harness import default_cache_dir

    data = Path(args.data) if getattr(args, "data", None) else default_data_dir()
    tsv = Path(args.tsv) if getattr(args, "tsv", None) else data / SPLITS[getattr(args, "split", "testp")]
    tests = Path(args.testcases) if getattr(args, "testcases", None) else data / "testcases"
    cache = Path(args.cache) if getattr(args, "cache", None) else default_cache_dir()
    if not tsv.is_file():
        raise GenlabError(f"TSV not found: {tsv} (give --data, set $GENLAB_SPOC_DATA, or give --tsv)")
    return data, tsv, tests, cache


def _programs(args, tsv):
    from genlab.systems.spoc.data import committed_subset_ids, load_tsv, seeded_subset, select_ids

    programs = load_tsv(tsv)
    if args.ids:
        from genlab.errors import GenlabError

        try:
            return select_ids(programs, _read_ids(args.ids))
        except GenlabError as err:
            raise GenlabError(f"--ids {args.ids}: {err}") from None
    if args.all:
        return programs
    if args.subset is not None:
        return seeded_subset(programs, args.subset, args.seed)
    if args.tsv is None and args.split == "testp":
        return select_ids(programs, committed_subset_ids())
    return programs


def _read_ids(path: str) -> list[str]:
    """The program ids of an --ids file, checked before any data is read (one probid-subid-workerid a line)."""
    import re
    from pathlib import Path

    from genlab.errors import GenlabError

    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise GenlabError(f"--ids: file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise GenlabError(f"--ids: cannot read {path} as UTF-8 text of program ids: {err}") from None
    ids = [x.strip() for x in text.splitlines() if x.strip() and not x.strip().startswith("#")]
    if not ids:
        raise GenlabError(f"--ids {path}: no program ids (expected one probid-subid-workerid a line)")
    bad = [x for x in ids if not re.fullmatch(r"[A-Za-z0-9]+-[A-Za-z0-9]+-[A-Za-z0-9]+", x)]
    if bad:
        raise GenlabError(f"--ids {path}: {len(bad)} line(s) are not probid-subid-workerid ids, e.g. {bad[0]!r}")
    return ids


def _eval_arguments(args) -> tuple[list[str], list[int]]:
    """(methods, budgets) from the eval arguments, checked before anything heavy runs."""
    from genlab.errors import GenlabError
    from genlab.systems.spoc.search import METHODS

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise GenlabError(f"--methods: expected a comma-separated list of {', '.join(METHODS)}, got {args.methods!r}")
    if args.budget < 1:
        raise GenlabError(f"--budget: expected a positive number of compilations, got {args.budget}")
    if args.m < 1:
        raise GenlabError(f"--m: expected at least 1 candidate per line, got {args.m}")
    if args.workers < 0:
        raise GenlabError(f"--workers: expected 0 (all cores) or more, got {args.workers}")
    try:
        budgets = [int(b) for b in args.budgets.split(",") if b.strip()]
    except ValueError:
        raise GenlabError(f"--budgets: expected comma-separated integers, got {args.budgets!r}") from None
    budgets = [b for b in budgets if 1 <= b <= args.budget] or [args.budget]
    if args.ids:
        _read_ids(args.ids)
    return methods, budgets


@contextlib.contextmanager
def _sigterm_as_exit():
    """SIGTERM unwinds like Ctrl-C (runs stopped, scratch removed) and exits 143."""
    import signal

    def handler(signum, frame):
        raise SystemExit(128 + signum)

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (in-process callers): leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


TRANSLATORS = ["auto", "retrieval", "retrieval-plain", "retrieval-nocopy", "seq2seq", "merged", "lm"]


def trained_translator_dir(cache):
    """Where `genlab spoc train` puts the seq2seq translator (read by eval / solve / translate)."""
    return cache / "seq2seq"


def build_translator(kind: str, data, exclude_split: str | None = None, model: str | None = None, cache=None):
    """Translator trained on the train splits we have (train-eval + train-test + the TestW extra when the
    data folder has it, minus `exclude_split`).

    retrieval: retrieval with copying, composed lines and written-differently forms (`compose.py`);
    retrieval-plain: retrieval with copying alone; seq2seq: the trained copy-attention model; merged:
    both, one re-scored list per line; auto: merged when `genlab spoc train` has built the seq2seq
    translator in the cache, else retrieval (saying how to build it)."""
    from pathlib import Path

    from genlab.errors import GenlabError
    from genlab.systems.spoc.data import SPLITS, TRAIN_SPLITS, load_tsv
    from genlab.systems.spoc.translate import RetrievalConfig, RetrievalTranslator, training_pairs

    if kind == "auto":
        trained = Path(model) if model else (trained_translator_dir(cache) if cache is not None else None)
        if model is not None or (trained is not None and (trained / "model.json").is_file()):
            kind, model = "merged", str(trained)  # a --model given is loaded (and checked), never ignored
        else:
            print(f"no trained translator in {trained}: using retrieval alone (build it with `genlab spoc train`)")
            kind, model = "retrieval", None
    if model is not None and kind.startswith("retrieval"):
        raise GenlabError(f"--model {model}: only --translator seq2seq, merged or lm reads a model, not {kind}")
    if kind.startswith("retrieval") or kind == "merged":
        seq2seq = None
        if kind == "merged":
            if model is None:
                raise GenlabError("--translator merged needs --model PATH (or `genlab spoc train` for the default)")
            from genlab.systems.spoc.seq2seq import Seq2SeqTranslator

            seq2seq = Seq2SeqTranslator.load(model)  # checked before the retrieval index is built
        train = []
        for split in TRAIN_SPLITS:
            optional = split == "train-extra"
            if split != exclude_split and not (optional and not (data / SPLITS[split]).is_file()):
                train += load_tsv(data / SPLITS[split])
        retrieval = RetrievalTranslator(training_pairs(train), RetrievalConfig(copy=kind != "retrieval-nocopy"))
        if kind in ("retrieval-plain", "retrieval-nocopy"):
            return retrieval
        from genlab.systems.spoc.compose import ComposingTranslator

        composed = ComposingTranslator(retrieval)
        if kind == "retrieval":
            return composed
        from genlab.systems.spoc.translate import MergedTranslator

        return MergedTranslator([(composed, MERGE_WEIGHTS[0]), (seq2seq, MERGE_WEIGHTS[1])], cache)
    if model is None:
        raise GenlabError(f"--translator {kind} needs --model PATH")
    if kind == "seq2seq":
        from genlab.systems.spoc.seq2seq import Seq2SeqTranslator

        return Seq2SeqTranslator.load(model)
    from genlab.systems.spoc.lm import CausalLMTranslator

    shots = []
    for split in ("train-eval", "train-test"):
        if split != exclude_split:
            shots += training_pairs(load_tsv(data / SPLITS[split])[:2])
    return CausalLMTranslator(model, examples=shots[:8])


MERGE_WEIGHTS = (0.7, 0.3)  # retrieval, seq2seq: mixture weights of the merged list


# --- commands ---------------------------------------------------------------------------------------


def _eval(args) -> int:
    from pathlib import Path

    from genlab.errors import GenlabError
    from genlab.systems.spoc.data import ids_checksum
    from genlab.systems.spoc.evaluate import run_eval, summarise
    from genlab.systems.spoc.harness import Harness, HarnessConfig
    from genlab.systems.spoc.translate import candidates_for

    methods, budgets = _eval_arguments(args)
    data, tsv, tests, cache = _paths(args)
    programs = _programs(args, tsv)
    localiser = None
    if "multiclass" in methods and not args.translate_only:
        from genlab.systems.spoc.localiser import MulticlassLocaliser

        loc_dir = Path(args.localiser) if args.localiser else cache / "localiser"
        if (loc_dir / "localiser.json").is_file():
            localiser = MulticlassLocaliser.load(loc_dir)
        else:
            print(f"no localiser at {loc_dir}: skipping 'multiclass' (build it with `genlab spoc train`)")
            methods.remove("multiclass")
    if not methods:
        raise GenlabError(f"--methods: no method left to run from {args.methods!r}")
    exclude = args.split if args.tsv is None and args.split != "testp" else None
    overlap = _training_overlap(data, programs, exclude)
    if overlap:
        print(f"warning: {overlap} of {len(programs)} programs are also in the translator's training data: "
              "these figures are not comparable with the paper's (which are on TestP)")
    comparable = args.tsv is None and args.split == "testp" and not overlap  # the paper's figures are TestP's
    translator = build_translator(args.translator, data, exclude, args.model, cache)
    cands = candidates_for(translator, programs, args.m, cache)
    if args.translate_only:
        from genlab.systems.spoc.translate import line_accuracy, oracle_coverage

        acc = line_accuracy(programs, cands)
        print(f"{len(programs)} programs from {tsv}; translator {translator.name}, M = {args.m}\n"
              "line accuracy (gold among top-k, canonical tokens): "
              + ", ".join(f"@{k} {100 * v:.1f}%" for k, v in acc.items())
              + f"\ntop-M oracle coverage (every gold line among the candidates): {100 * oracle_coverage(programs, cands):.1f}%")
        return 0
    out = Path(args.out) if args.out else Path("runs/spoc") / f"eval-{tsv.stem}-{translator.name}-b{args.budget}-{ids_checksum([p.uid for p in programs])}.jsonl"
    print(f"{len(programs)} programs from {tsv} (ids checksum {ids_checksum([p.uid for p in programs])}); "
          f"translator {translator.name}; methods {methods}; budget {args.budget}; results -> {out}")
    if args.summary_only:
        from genlab.systems.spoc.evaluate import load_records

        records = load_records(out, programs, methods, args.budget)
        print(f"summary only: {len(records)} of {len(programs)} programs have every method in {out}")
    else:
        with _sigterm_as_exit(), Harness(tests, cache, HarnessConfig(workers=args.workers, insecure=args.insecure)) as harness:
            records = run_eval(programs, cands, harness, out, methods, args.budget, localiser,
                               workers=harness.workers, progress=not args.quiet)
    text, _ = summarise(records, programs, cands, methods, budgets, paper=comparable)
    print(text)
    return 0


def _training_overlap(data, programs, exclude_split: str | None) -> int:
    """How many of `programs` (by probid + subid) the retrieval translator was built from."""
    from genlab.systems.spoc.data import SPLITS, TRAIN_SPLITS, load_tsv

    seen = set()
    for split in TRAIN_SPLITS:
        if split != exclude_split and (data / SPLITS[split]).is_file():
            seen.update((p.probid, p.subid) for p in load_tsv(data / SPLITS[split]))
    return sum((p.probid, p.subid) in seen for p in programs)


def _sanity(args) -> int:
    from genlab.systems.spoc.harness import Harness, HarnessConfig, stitch

    data, tsv, tests, cache = _paths(args)
    programs = _programs(args, tsv)
    with _sigterm_as_exit(), Harness(tests, cache, HarnessConfig(workers=args.workers, insecure=args.insecure)) as harness:
        evs = harness.evaluate_many([(stitch([l.code for l in p.lines], [l.indent for l in p.lines]), p.probid)
                                     for p in programs])
    ok = sum(e.passed_hidden for e in evs)
    print(f"gold programs passing their hidden tests: {ok}/{len(programs)} = {100.0 * ok / max(len(programs), 1):.1f}%")
    for p, e in zip(programs, evs):
        if not e.passed_hidden:
            reason = e.detail or e.compile_error.strip().split("\n")[-1][:200]
            first_err = next((x for x in e.compile_error.split("\n") if "error:" in x), "")
            print(f"  {p.uid}: {e.status} {reason if not first_err else first_err[:200]}")
    return 0


def _train_localiser(args) -> int:
    import random
    from pathlib import Path

    from genlab.systems.spoc.data import load_tsv
    from genlab.systems.spoc.harness import Harness, HarnessConfig
    from genlab.systems.spoc.localiser import MulticlassLocaliser, make_examples
    from genlab.systems.spoc.translate import candidates_for

    args.split, args.tsv, args.testcases = "train-test", None, None
    data, tsv, tests, cache = _paths(args)
    programs = load_tsv(tsv)[: args.programs]
    translator = build_translator("retrieval", data, exclude_split="train-test")
    cands = candidates_for(translator, programs, 100, cache)
    with _sigterm_as_exit(), Harness(tests, cache, HarnessConfig(workers=args.workers, insecure=args.insecure)) as harness:
        examples = make_examples(programs, cands, harness, per_program=args.per_program)
    random.Random(0).shuffle(examples)
    n_val = max(1, len(examples) // 5)
    val, train = examples[:n_val], examples[n_val:]
    model = MulticlassLocaliser()
    model.fit(train)
    from genlab.systems.spoc.search import compiler_line

    base = sum(compiler_line(e.codes, e.indents, e.translated, e.message) == e.label for e in val) / len(val)
    print(f"{len(examples)} compile failures; held-out accuracy: multiclass {100 * model.accuracy(val):.1f}%, "
          f"compiler-reported line {100 * base:.1f}%")
    out = Path(args.out) if args.out else cache / "localiser"
    model.save(out)
    print(f"saved {out}")
    return 0


def _solve(args) -> int:
    from pathlib import Path

    from genlab.core.io import atomic_write_text
    from genlab.errors import GenlabError
    from genlab.systems.spoc.data import default_data_dir
    from genlab.systems.spoc.harness import Harness, HarnessConfig, default_cache_dir
    from genlab.systems.spoc.search import SearchConfig, search
    from genlab.systems.spoc.solve import (
        changed_lines,
        read_examples,
        read_pseudocode,
        readable,
        undeclared_hint,
    )
    from genlab.systems.spoc.translate import candidates_for

    if args.budget < 1:
        raise GenlabError(f"--budget: expected a positive number of compilations, got {args.budget}")
    program = read_pseudocode(args.pseudocode)
    examples = read_examples(args.tests, args.example)
    data = Path(args.data) if args.data else default_data_dir()
    cache = Path(args.cache) if args.cache else default_cache_dir()
    method = args.method.replace("-", "_")
    localiser = None
    if method == "multiclass":
        from genlab.systems.spoc.localiser import MulticlassLocaliser

        if not (cache / "localiser" / "localiser.json").is_file():
            raise GenlabError(f"--method multiclass: no localiser in {cache / 'localiser'}; build it with "
                              "`genlab spoc train` or choose another --method")
        localiser = MulticlassLocaliser.load(cache / "localiser")
    translator = build_translator(args.translator, data, model=args.model, cache=cache)
    cands = candidates_for(translator, [program], args.m, cache)[program.uid]
    user = [i for i, line in enumerate(program.lines) if line.annotated]

    errors: list[str | None] = []  # g++'s message per compilation (None: it compiled)

    def show(k, queued, ev, blamed) -> None:
        errors.append(None if ev.compiled else ev.compile_error)
        if args.quiet:
            return
        swaps = [f"line {n + 1}: {cands[i][queued.choice[i]].code}" for n, i in enumerate(user) if queued.choice[i]]
        blame = f", line {user.index(blamed) + 1} blamed" if blamed in user else ""
        verdict = "passes the examples" if ev.passed_public else ev.status.replace("_", " ")
        print(f"#{k} {verdict}{blame}" + (f"  [{'; '.join(swaps)}]" if swaps else "  [top-1 candidates]"), flush=True)

    tests = {"public": examples, "hidden": []}
    with _sigterm_as_exit(), Harness(None, cache, HarnessConfig(workers=args.workers, insecure=args.insecure)) as harness:
        result = search(program, [cands[i] for i in range(len(program.lines))], harness,
                        SearchConfig(budget=args.budget, method=method), localiser, tests, on_step=show)
    if not result.passed_public:
        print(f"no program passing the {len(examples)} example(s) within {result.used} compilations")
        hint = None if None in errors else undeclared_hint(errors)
        if hint:
            print(hint)
        return 1
    changed = changed_lines(result.choice, program)
    print(readable(result.source), end="")
    print(f"found after {result.used} compilation(s); it passes the {len(examples)} given example(s) (not a proof"
          f" of correctness); lines changed from the top-1 translation: {changed or 'none'}")
    if args.out:
        atomic_write_text(args.out, readable(result.source))
        print(f"written to {args.out}")
    return 0


def _translate(args) -> int:
    from pathlib import Path

    from genlab.errors import GenlabError
    from genlab.systems.spoc.data import default_data_dir
    from genlab.systems.spoc.translate import Candidate

    if not args.text and not args.file:
        raise GenlabError("give pseudocode lines or --file PSEUDOCODE")
    program = None
    texts = list(args.text)
    if args.file:
        from genlab.systems.spoc.solve import read_pseudocode

        program = read_pseudocode(args.file)
        texts = [line.text for line in program.lines if line.annotated]
    data = Path(args.data) if args.data else default_data_dir()
    from genlab.systems.spoc.harness import default_cache_dir

    cache = Path(args.cache) if args.cache else default_cache_dir()
    translator = build_translator(args.translator, data, model=args.model, cache=cache)
    per_line = translator.translate(texts, args.m)
    for text, cands in zip(texts, per_line):
        print(text)
        for c in cands:
            print(f"  {c.logprob:8.3f}  {c.code}")
    if program is not None:
        from genlab.systems.spoc.solve import top_programs

        it = iter(per_line)
        cands = [next(it) if line.annotated else [Candidate(line.code, 0.0)] for line in program.lines]
        for k, (logprob, source) in enumerate(top_programs(program, cands, args.programs), start=1):
            print(f"\n// program {k}, log-prob {logprob:.3f} (not compiled)\n{source}", end="")
    return 0


def _train(args) -> int:
    """The seq2seq translator into CACHE/seq2seq (resumable), then the multiclass localiser."""
    from pathlib import Path

    from genlab.errors import GenlabError
    from genlab.systems.spoc.data import SPLITS, TRAIN_SPLITS, default_data_dir, load_tsv
    from genlab.systems.spoc.harness import default_cache_dir
    from genlab.systems.spoc.seq2seq import presets, train_seq2seq
    from genlab.systems.spoc.translate import training_pairs

    data = Path(args.data) if args.data else default_data_dir()
    cache = Path(args.cache) if args.cache else default_cache_dir()
    if args.minutes <= 0:
        raise GenlabError(f"--minutes: expected a positive number, got {args.minutes}")
    if args.only != "localiser":
        splits = [x.strip() for x in args.splits.split(",")] if args.splits else [
            x for x in TRAIN_SPLITS if (data / SPLITS[x]).is_file()]
        unknown = [x for x in splits if x not in SPLITS]
        if unknown:
            raise GenlabError(f"--splits: expected names among {', '.join(TRAIN_SPLITS)}, got {unknown[0]!r}")
        programs = [p for split in splits for p in load_tsv(data / SPLITS[split])]
        out = Path(args.out) if args.out else trained_translator_dir(cache)
        print(f"seq2seq translator: {len(programs)} programs ({', '.join(splits)}), preset {args.preset} -> {out}")
        train_seq2seq(training_pairs(programs), presets()[args.preset], out, minutes=args.minutes,
                      max_steps=args.steps, progress=not args.quiet, save_every=250)
        print(f"saved {out} (eval, solve and translate use it from there)")
    if args.only != "translator":
        args.out = None
        return _train_localiser(args)
    return 0
