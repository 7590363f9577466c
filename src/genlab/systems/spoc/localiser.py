"""A learned multiclass error localiser: (compile error message, program) -> offending line.

The paper trains a network on compile failures made by putting one wrong translation candidate into
an otherwise gold training program; the label is that line. We do the same and score every
translated line with a linear model over hashed features of (error kind, offset from g++'s reported
line, identifiers quoted in the message and whether the line uses or declares them, the line's first
tokens); a softmax over the program's translated lines is trained with cross-entropy.
Saved as safetensors + JSON config.
"""

from __future__ import annotations

import random
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from genlab.errors import GenlabError
from genlab.systems.spoc.data import Program
from genlab.systems.spoc.harness import Harness, first_error_line, source_line_to_index, stitch
from genlab.systems.spoc.lexer import canonical
from genlab.systems.spoc.translate import Candidate

_QUOTED = re.compile(r"[‘'`]([^’'`]+)[’'`]")
_TYPES = {"int", "long", "char", "string", "double", "float", "bool", "short", "unsigned", "void", "auto",
          "vector", "map", "set", "pair", "const", "struct", "queue", "stack", "deque", "priority_queue"}


@dataclass(frozen=True)
class LocaliserConfig:
    buckets: int = 1 << 15
    epochs: int = 30
    lr: float = 0.05
    weight_decay: float = 1e-5
    seed: int = 0


@dataclass
class Example:
    codes: list[str]
    indents: list[int]
    translated: list[int]
    message: str
    label: int


def error_kind(message: str) -> str:
    """The first error's text with quoted names and numbers abstracted (`‘x’ was not declared...`)."""
    for line in message.split("\n"):
        if " error: " in line:
            text = line.split(" error: ", 1)[1]
            text = _QUOTED.sub("Q", text)
            return re.sub(r"\d+", "0", text)[:60]
    return "none"


def _first_error_names(message: str) -> list[str]:
    for line in message.split("\n"):
        if " error: " in line:
            return [q for q in _QUOTED.findall(line.split(" error: ", 1)[1]) if re.match(r"[A-Za-z_]\w*$", q)]
    return []


def line_features(codes: Sequence[str], indents: Sequence[int], i: int, message: str) -> list[str]:
    kind = error_kind(message)
    line_no = first_error_line(message)
    c = source_line_to_index(line_no) if line_no is not None else None
    off = "none" if c is None else str(max(-6, min(6, i - c)))
    toks = list(canonical(codes[i]))
    first = toks[0] if toks else "<empty>"
    feats = [f"off={off}", f"kind={kind}|off={off}", f"first={first}", f"kind={kind}|first={first}",
             f"off={off}|first={first}"]
    names = _first_error_names(message)
    for q in names[:3]:
        uses = q in toks
        declares = uses and any(t in _TYPES for t in toks[: toks.index(q)])
        feats += [f"uses={uses}|off={off}", f"declares={declares}", f"kind={kind}|uses={uses}",
                  f"kind={kind}|declares={declares}"]
    if c is not None and 0 <= c < len(codes):
        feats.append(f"pair={first}|{(list(canonical(codes[c])) or ['<empty>'])[0]}|{off}")
    depth_change = (indents[i + 1] if i + 1 < len(indents) else 0) - indents[i]
    feats.append(f"kind={kind}|opens={depth_change > 0}")
    feats.append(f"ntok={min(len(toks), 12)}|off={off}")
    return feats


def _hash(feature: str, buckets: int) -> int:
    return zlib.crc32(feature.encode()) % buckets


class MulticlassLocaliser:
    def __init__(self, config: LocaliserConfig = LocaliserConfig()):
        self.config = config
        self.weight = torch.zeros(config.buckets)

    def _ids(self, ex_codes, indents, translated, message) -> list[list[int]]:
        return [[_hash(f, self.config.buckets) for f in line_features(ex_codes, indents, i, message)]
                for i in translated]

    def scores(self, codes, indents, translated, message) -> torch.Tensor:
        ids = self._ids(codes, indents, translated, message)
        return torch.stack([self.weight[torch.tensor(row)].sum() for row in ids])

    def __call__(self, codes: list[str], indents: list[int], translated: list[int], message: str) -> int | None:
        if not translated:
            return None
        return translated[int(torch.argmax(self.scores(codes, indents, translated, message)))]

    def fit(self, examples: Sequence[Example]) -> list[float]:
        torch.manual_seed(self.config.seed)
        data = []
        for ex in examples:
            if ex.label in ex.translated:
                rows = self._ids(ex.codes, ex.indents, ex.translated, ex.message)
                data.append((rows, ex.translated.index(ex.label)))
        if not data:
            raise GenlabError("no usable localiser training examples")
        weight = torch.zeros(self.config.buckets, requires_grad=True)
        opt = torch.optim.Adam([weight], lr=self.config.lr, weight_decay=self.config.weight_decay)
        losses = []
        rng = random.Random(self.config.seed)
        for _ in range(self.config.epochs):
            rng.shuffle(data)
            total = 0.0
            for start in range(0, len(data), 64):
                batch = data[start: start + 64]
                loss = 0.0
                for rows, label in batch:
                    flat = torch.tensor([j for row in rows for j in row])
                    seg = torch.tensor([k for k, row in enumerate(rows) for _ in row])
                    s = torch.zeros(len(rows)).index_add(0, seg, weight[flat])  # [n_lines]
                    loss = loss + torch.nn.functional.cross_entropy(s[None], torch.tensor([label]))
                loss = loss / len(batch)
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += loss.item() * len(batch)
            losses.append(total / len(data))
        self.weight = weight.detach()
        return losses

    def accuracy(self, examples: Sequence[Example]) -> float:
        ok = sum(self(ex.codes, ex.indents, ex.translated, ex.message) == ex.label for ex in examples)
        return ok / max(len(examples), 1)

    def save(self, directory: str | Path) -> None:
        """`localiser.safetensors` + `localiser.json` (the config) in `directory`."""
        from genlab.core.train import save_weights

        save_weights(Path(directory) / "localiser.safetensors", {"weight": self.weight}, self.config)

    @classmethod
    def load(cls, directory: str | Path) -> MulticlassLocaliser:
        from genlab.core.train import config_from_dict, load_weights

        directory = Path(directory)
        if not (directory / "localiser.json").is_file():
            raise GenlabError(f"no localiser at {directory} (expected localiser.json + localiser.safetensors)")
        tensors, config = load_weights(directory / "localiser.safetensors")
        model = cls(config_from_dict(LocaliserConfig, config or {}, str(directory / "localiser.json")))
        weight = tensors.get("weight")
        if weight is None or weight.shape != (model.config.buckets,):
            got = None if weight is None else tuple(weight.shape)
            raise GenlabError(f"{directory}: weight shape expected ({model.config.buckets},), got {got}")
        model.weight = weight
        return model


def make_examples(programs: Sequence[Program], cands: dict[str, list[list[Candidate]]], harness: Harness,
                  per_program: int = 2, top: int = 10, seed: int = 0, progress: bool = True) -> list[Example]:
    """Compile failures of gold training programs with one line replaced by a wrong candidate."""
    rng = random.Random(seed)
    jobs = []
    for p in programs:
        translated = p.annotated_indices
        if not translated:
            continue
        for _ in range(per_program):
            i = rng.choice(translated)
            gold = canonical(p.lines[i].code)
            wrong = [c.code for c in cands[p.uid][i][:top] if canonical(c.code) != gold]
            if not wrong:
                continue
            codes = [line.code for line in p.lines]
            codes[i] = rng.choice(wrong)
            indents = [line.indent for line in p.lines]
            jobs.append((codes, indents, translated, i, stitch(codes, indents)))
    examples = []
    chunk = 256
    for start in tqdm(range(0, len(jobs), chunk), desc="localiser data", disable=not progress):
        part = jobs[start: start + chunk]
        for (codes, indents, translated, i, _), (ok, message) in zip(part, harness.check_many([j[4] for j in part])):
            if not ok:
                examples.append(Example(codes, indents, translated, message, i))
    return examples
