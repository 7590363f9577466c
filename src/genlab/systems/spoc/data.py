"""SPoC data: the official TSV format and the per-problem test cases.

TSV columns (tab-separated, one header row, no quoting): text, code, workerid, probid, subid, line,
indent. One row per program line; a program starts where `line` returns to 0. An empty `text`
marks a line that was not annotated (`int main() {`, `}`, `return 0;`): the gold code is used
as is. Test cases: `<dir>/<probid>/<probid>_testcases_{public,hidden}.txt`, each test being the
input, a line `###ENDINPUT###`, the expected output and a line `###ENDOUTPUT###`.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from pathlib import Path

from genlab.errors import GenlabError

COLUMNS = ("text", "code", "workerid", "probid", "subid", "line", "indent")
END_INPUT = "###ENDINPUT###"
END_OUTPUT = "###ENDOUTPUT###"


@dataclass(frozen=True)
class Line:
    text: str  # pseudocode; "" when the line was not annotated
    code: str  # gold C++ line
    indent: int

    @property
    def annotated(self) -> bool:
        return self.text != ""


@dataclass(frozen=True)
class Program:
    probid: str
    subid: str
    workerid: str
    lines: tuple[Line, ...]
    source: str = ""  # "file:row" of the program's first row, for messages

    @property
    def uid(self) -> str:
        """Unique id: (probid, subid) is not unique (several workers annotated some submissions)."""
        return f"{self.probid}-{self.subid}-{self.workerid}"

    @property
    def annotated_indices(self) -> list[int]:
        return [i for i, line in enumerate(self.lines) if line.annotated]


@dataclass(frozen=True)
class TestCase:
    input: str
    output: str


def _int_field(value: str, path: Path, row: int, field: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise GenlabError(f"{path}:{row}: field '{field}' expected an integer, got {value!r}") from None
    if number < 0:
        raise GenlabError(f"{path}:{row}: field '{field}' expected a non-negative integer, got {number}")
    return number


def load_tsv(path: str | Path) -> list[Program]:
    """Parse an official SPoC TSV into programs; errors name the file, row and field."""
    path = Path(path)
    if not path.is_file():
        raise GenlabError(f"SPoC TSV not found: {path}")
    with open(path, encoding="utf-8", newline="") as f:
        rows = f.read().split("\n")
    if rows and rows[-1] == "":
        rows.pop()
    if not rows:
        raise GenlabError(f"{path}: empty file, expected a header with columns {list(COLUMNS)}")
    header = rows[0].rstrip("\r").split("\t")
    if tuple(header) != COLUMNS:
        raise GenlabError(f"{path}:1: header expected columns {list(COLUMNS)}, got {header}")
    programs: list[Program] = []
    current: list[Line] = []
    key: tuple[str, str, str] | None = None
    start = 0

    def flush() -> None:
        if current:
            programs.append(Program(key[0], key[1], key[2], tuple(current), f"{path}:{start}"))

    for row_no, raw in enumerate(rows[1:], start=2):
        raw = raw.rstrip("\r")
        fields = raw.split("\t")
        if len(fields) != len(COLUMNS):
            raise GenlabError(
                f"{path}:{row_no}: expected {len(COLUMNS)} tab-separated fields {list(COLUMNS)}, got {len(fields)}"
            )
        text, code, workerid, probid, subid, line_s, indent_s = fields
        line_no = _int_field(line_s, path, row_no, "line")
        indent = _int_field(indent_s, path, row_no, "indent")
        if not probid:
            raise GenlabError(f"{path}:{row_no}: field 'probid' is empty")
        if line_no == 0:
            flush()
            current, key, start = [], (probid, subid, workerid), row_no
        elif key is None:
            raise GenlabError(f"{path}:{row_no}: field 'line' expected 0 for a program's first row, got {line_no}")
        elif line_no != len(current):
            raise GenlabError(f"{path}:{row_no}: field 'line' expected {len(current)} (next line), got {line_no}")
        elif (probid, subid) != key[:2]:
            raise GenlabError(
                f"{path}:{row_no}: field 'probid'/'subid' changed inside a program "
                f"(expected {key[0]}/{key[1]}, got {probid}/{subid}) without 'line' returning to 0"
            )
        current.append(Line(text.strip(), code.strip(), indent))
    flush()
    return programs


def parse_testcases(path: str | Path) -> list[TestCase]:
    """Read one `*_testcases_*.txt` file."""
    path = Path(path)
    if not path.is_file():
        raise GenlabError(f"test case file not found: {path}")
    cases: list[TestCase] = []
    inp: list[str] = []
    out: list[str] = []
    state = "input"
    with open(path, encoding="utf-8", errors="replace") as f:
        for row_no, line in enumerate(f, start=1):
            stripped = line.rstrip("\r\n")
            if stripped == END_INPUT:
                if state != "input":
                    raise GenlabError(f"{path}:{row_no}: {END_INPUT} inside an expected output")
                state = "output"
            elif stripped == END_OUTPUT:
                if state != "output":
                    raise GenlabError(f"{path}:{row_no}: {END_OUTPUT} before {END_INPUT}")
                cases.append(TestCase("".join(inp), "".join(out)))
                inp, out, state = [], [], "input"
            else:
                (inp if state == "input" else out).append(line)
    if state == "output" or any(s.strip() for s in inp):
        raise GenlabError(f"{path}: last test case is not closed by {END_OUTPUT}")
    if not cases:
        raise GenlabError(f"{path}: no test cases (expected blocks ending in {END_INPUT} / {END_OUTPUT})")
    return cases


def load_testcases(testcases_dir: str | Path, probid: str, kind: str) -> list[TestCase]:
    """kind: 'public' (used by the search) or 'hidden' (used for evaluation)."""
    if kind not in ("public", "hidden"):
        raise GenlabError(f"test case kind expected 'public' or 'hidden', got {kind!r}")
    return parse_testcases(test_file(testcases_dir, probid, kind))


def test_file(testcases_dir: str | Path, probid: str, kind: str) -> Path:
    return Path(testcases_dir) / probid / f"{probid}_testcases_{kind}.txt"


DATA_ENV = "GENLAB_SPOC_DATA"


def default_data_dir() -> Path:
    """`$GENLAB_SPOC_DATA`, else `../shared/data/spoc` beside the project (the checkout holding `src/`)."""
    import os

    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser()
    project = Path(__file__).resolve().parents[4]
    return project.parent / "shared" / "data" / "spoc"


SPLITS = {
    "testp": "test/spoc-testp.tsv",
    "train-eval": "train/split/spoc-train-eval.tsv",
    "train-test": "train/split/spoc-train-test.tsv",
    "train-extra": "train/extra/spoc-testw-train.tsv",  # TestW minus TestP's problems (training only)
}
TRAIN_SPLITS = ("train-eval", "train-test", "train-extra")


# --- the committed evaluation subset -------------------------------------------------------------

SUBSET_FILE = Path(__file__).with_name("testp_subset200.txt")


def seeded_subset(programs: list[Program], n: int, seed: int = 0) -> list[Program]:
    """A fixed subset: sort by uid, shuffle with `seed`, keep the first n (order kept)."""
    if n >= len(programs):
        return list(programs)
    ordered = sorted(programs, key=lambda p: p.uid)
    rng = random.Random(seed)
    chosen = set(p.uid for p in rng.sample(ordered, n))
    return [p for p in programs if p.uid in chosen]


def committed_subset_ids() -> list[str]:
    lines = (line.strip() for line in SUBSET_FILE.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def select_ids(programs: list[Program], ids: list[str]) -> list[Program]:
    by_uid = {p.uid: p for p in programs}
    missing = [i for i in ids if i not in by_uid]
    if missing:
        raise GenlabError(f"{len(missing)} program ids of the subset are not in the TSV, e.g. {missing[:3]}")
    return [by_uid[i] for i in ids]


def ids_checksum(ids: list[str]) -> str:
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()[:16]
