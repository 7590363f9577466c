"""Descriptions: what a sequence shows, as an ordered list of (concept, start, end, count).

Level 3 of the hierarchy (keypoints -> primitives -> concepts -> description). Two text forms,
both round-trip exactly:

JSON::

    {"schema": "genlab.concepts.description", "version": 1, "n_frames": 300,
     "actions": [{"concept": "squat", "start": 0, "end": 90, "count": 3, "score": 0.0}]}

DSL (each action is a named for-loop over its concept's loop body; spans are half-open)::

    description frames=300 version=1
      squat[0:90]: for _ in range(3)
      jumping_jack[96:180]: for _ in range(4)  # score=1.25

Frames not covered by an action are idle (standing, transitions).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from genlab.errors import GenlabError

SCHEMA = "genlab.concepts.description"
VERSION = 1
IDLE = "idle"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Action:
    """One concept instance: frames [start, end) performing `count` iterations of `concept`."""

    concept: str
    start: int
    end: int
    count: int
    score: float = 0.0  # decoder confidence (higher is surer); 0 for ground truth

    @property
    def length(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class Description:
    n_frames: int
    actions: tuple[Action, ...] = field(default_factory=tuple)

    @property
    def concepts(self) -> list[str]:
        """The action list (transcript): concept names in order, idle excluded."""
        return [a.concept for a in self.actions]

    def frame_labels(self, idle: str = IDLE) -> list[str]:
        labels = [idle] * self.n_frames
        for a in self.actions:
            labels[a.start:a.end] = [a.concept] * a.length
        return labels

    def validate(self, vocabulary: Iterable[str] | None = None, where: str = "description") -> Description:
        """Raise GenlabError on an unknown concept, count < 1 or spans out of order; return self."""
        vocab = None if vocabulary is None else set(vocabulary)
        if self.n_frames < 0:
            raise GenlabError(f"{where}: n_frames must be >= 0, got {self.n_frames}")
        prev_end = 0
        for i, a in enumerate(self.actions):
            at = f"{where}: action {i} ({a.concept!r})"
            if not _NAME.match(a.concept) or a.concept == IDLE:
                raise GenlabError(f"{at}: concept name must be an identifier other than 'idle'")
            if vocab is not None and a.concept not in vocab:
                raise GenlabError(f"{at}: unknown concept; expected one of {sorted(vocab)}")
            if a.count < 1:
                raise GenlabError(f"{at}: count must be >= 1, got {a.count}")
            if not (prev_end <= a.start < a.end <= self.n_frames):
                raise GenlabError(
                    f"{at}: span [{a.start}, {a.end}) must be non-empty, ordered, non-overlapping "
                    f"and inside [0, {self.n_frames})"
                )
            if not math.isfinite(a.score):
                raise GenlabError(f"{at}: score must be finite, got {a.score}")
            prev_end = a.end
        return self

    # ---------------------------------------------------------------- JSON
    def to_dict(self) -> dict:
        return {
            "schema": SCHEMA,
            "version": VERSION,
            "n_frames": self.n_frames,
            "actions": [
                {"concept": a.concept, "start": a.start, "end": a.end, "count": a.count, "score": a.score}
                for a in self.actions
            ],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    @classmethod
    def from_dict(cls, data: dict, where: str = "description") -> Description:
        if not isinstance(data, dict):
            raise GenlabError(f"{where}: expected a JSON object, got {type(data).__name__}")
        if data.get("schema") != SCHEMA:
            raise GenlabError(f"{where}: field 'schema' must be {SCHEMA!r}, got {data.get('schema')!r}")
        if data.get("version") != VERSION:
            raise GenlabError(
                f"{where}: schema version {data.get('version')!r} is not supported; expected {VERSION}"
            )
        try:
            actions = tuple(
                Action(str(a["concept"]), int(a["start"]), int(a["end"]), int(a["count"]),
                       float(a.get("score", 0.0)))
                for a in data["actions"]
            )
            desc = cls(int(data["n_frames"]), actions)
        except (KeyError, TypeError, ValueError) as err:
            raise GenlabError(f"{where}: malformed action or n_frames field ({err!r})") from None
        return desc.validate(where=where)

    @classmethod
    def from_json(cls, text: str, where: str = "description") -> Description:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise GenlabError(f"{where}: not valid JSON ({err})") from None
        return cls.from_dict(data, where)

    # ---------------------------------------------------------------- DSL
    def to_dsl(self) -> str:
        lines = [f"description frames={self.n_frames} version={VERSION}"]
        for a in self.actions:
            line = f"  {a.concept}[{a.start}:{a.end}]: for _ in range({a.count})"
            if a.score != 0.0:
                line += f"  # score={a.score!r}"
            lines.append(line)
        return "\n".join(lines) + "\n"

    @classmethod
    def from_dsl(cls, text: str, where: str = "description") -> Description:
        lines = [ln for ln in text.splitlines() if ln.strip()]
        if not lines:
            raise GenlabError(f"{where}: empty DSL text")
        head = re.fullmatch(r"description frames=(\d+) version=(\d+)", lines[0].strip())
        if head is None:
            raise GenlabError(
                f"{where}: line 1 must read 'description frames=N version=V', got {lines[0].strip()!r}"
            )
        if int(head.group(2)) != VERSION:
            raise GenlabError(f"{where}: schema version {head.group(2)} is not supported; expected {VERSION}")
        pattern = re.compile(
            r"(\w+)\[(-?\d+):(-?\d+)\]: for _ in range\((-?\d+)\)(?:\s+# score=(\S+))?"
        )
        actions = []
        for lineno, line in enumerate(lines[1:], start=2):
            m = pattern.fullmatch(line.strip())
            if m is None:
                raise GenlabError(
                    f"{where}: line {lineno} must read 'concept[start:end]: for _ in range(count)', "
                    f"got {line.strip()!r}"
                )
            score = float(m.group(5)) if m.group(5) else 0.0
            actions.append(Action(m.group(1), int(m.group(2)), int(m.group(3)), int(m.group(4)), score))
        return cls(int(head.group(1)), tuple(actions)).validate(where=where)


def from_frame_labels(labels: Sequence[str], counts: Sequence[int] | None = None,
                      idle: str = IDLE) -> Description:
    """Runs of equal non-idle labels become actions (count 1 unless `counts` gives one per run)."""
    actions = []
    t, n = 0, len(labels)
    while t < n:
        u = t
        while u < n and labels[u] == labels[t]:
            u += 1
        if labels[t] != idle:
            k = len(actions)
            actions.append(Action(labels[t], t, u, 1 if counts is None else int(counts[k])))
        t = u
    return Description(n, tuple(actions))
