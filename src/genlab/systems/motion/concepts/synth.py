"""Synthesis from descriptions and editing.

`synthesise(model, description)` executes every action's concept program (its motion `Loop`
body, mean or sampled) for `count` iterations stretched to the action's span, and fills idle
frames with the rest pose. Joins are smoothed: at every statement boundary and at both ends of
an action the jump is removed by a linear ramp over a few frames, so the trajectory is
continuous. Each action is synthesised independently of the others (it starts and ends at rest),
so an edit re-executes only the edited action: other frames are copied, bit-identical (moved in
time when the edit changes the length).

Edits: insert, delete, replace (concept), recount, retime (new duration). Coordinates are
normalised (body height 1, ground at y = 0, y down); `to_pixels` maps them to an image.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from genlab.errors import GenlabError
from genlab.systems.motion.concepts.description import Action, Description
from genlab.systems.motion.concepts.programs import loop_from_text
from genlab.systems.motion.program import Loop, Program, execute

RAMP = 6  # frames over which a join's jump is spread


@dataclass(frozen=True)
class Synthesis:
    keypoints: np.ndarray  # (T, 17, 2) normalised
    description: Description
    pieces: tuple[np.ndarray, ...]  # frames of each action (for edits)
    mirrored: bool = False


def _rest(model) -> np.ndarray:
    rest = model.meta.get("rest_pose")
    if rest is None:
        raise GenlabError("concept model has no rest pose / programs; fit it with programs (learn.attach_programs)")
    return np.asarray(rest, dtype=np.float64)


def _ramp_fix(x: np.ndarray, frame: int, jump: np.ndarray, forward: bool = True) -> None:
    """Remove `jump` at `frame`: subtract it fully there, fading linearly over RAMP frames."""
    n = min(RAMP, len(x) - frame) if forward else min(RAMP, frame + 1)
    w = 1.0 - np.arange(n) / n
    if forward:
        x[frame:frame + n] -= w[:, None, None] * jump
    else:
        x[frame - n + 1:frame + 1] -= w[::-1, None, None] * jump


def synthesise_action(model, concept: str, count: int, n_frames: int, *, mirrored: bool = False,
                      temperature: float = 0.0, seed: int = 0) -> np.ndarray:
    """`count` iterations of `concept` in exactly `n_frames` frames, starting and ending at rest."""
    c = model.concepts[model.index(concept, "description")]
    if count < 1:
        raise GenlabError(f"{concept}: count must be >= 1, got {count}")
    if n_frames < count * 2:
        raise GenlabError(f"{concept}: {n_frames} frames cannot hold {count} iterations")
    if not c.program:
        raise GenlabError(f"concept {concept!r} has no program; fit it with learn.attach_programs")
    loop: Loop = loop_from_text(c.program)
    rng = np.random.default_rng(seed)
    body = loop.mean_body()
    its = tuple(body if temperature == 0 else loop.sample_iteration(rng, temperature) for _ in range(count))
    prog = Program((Loop(its),), "coco17")
    t = np.arange(n_frames) * prog.duration / n_frames
    x = execute(prog, t=t)
    # Smooth joins at statement boundaries (the mean/sampled statements need not meet exactly).
    bounds = prog.boundaries()[1:-1]
    segs = list(prog.segments())
    for k, b in enumerate(bounds):
        frame = int(np.searchsorted(t, b))
        if 0 < frame < n_frames:
            jump = segs[k + 1](np.array([0.0]))[0] - segs[k](np.array([1.0]))[0]
            _ramp_fix(x, frame, jump)
    rest = _rest(model)
    _ramp_fix(x, 0, x[0] - rest)
    _ramp_fix(x, n_frames - 1, x[-1] - rest, forward=False)
    if mirrored:
        from genlab.core.pose.skeletons import COCO17

        x = COCO17.mirror(x)
    return x


def synthesise(model, description: Description, *, mirrored: bool = False, temperature: float = 0.0,
               seed: int = 0, start_pose: np.ndarray | None = None) -> Synthesis:
    """Keypoints for a description (its spans fix the timing; counts fix the iterations)."""
    description.validate(model.names)
    rest = _rest(model)
    out = np.repeat(rest[None], description.n_frames, axis=0)
    pieces = []
    for i, a in enumerate(description.actions):
        piece = synthesise_action(model, a.concept, a.count, a.length, mirrored=mirrored,
                                  temperature=temperature, seed=seed * 1000 + i)
        out[a.start:a.end] = piece
        pieces.append(piece)
    if start_pose is not None:
        start_pose = np.asarray(start_pose, dtype=np.float64)
        if start_pose.shape != (17, 2) or not np.isfinite(start_pose).all():
            raise GenlabError(f"start pose must be a finite (17, 2) array, got shape {start_pose.shape}")
        _ramp_fix(out, 0, start_pose - out[0])
        out[0] = start_pose
    return Synthesis(out, description, tuple(pieces), mirrored)


def to_pixels(keypoints: np.ndarray, origin=(320.0, 440.0), height: float = 360.0) -> np.ndarray:
    return np.asarray(origin) + height * keypoints


# ------------------------------------------------------------------------------ editing
def _shift(a: Action, by: int) -> Action:
    return replace(a, start=a.start + by, end=a.end + by)


def edit(model, syn: Synthesis, op: str, index: int, *, concept: str | None = None, count: int | None = None,
         duration: int | None = None, gap: int = 8, seed: int = 0) -> tuple[Synthesis, tuple[int, int]]:
    """Apply one edit and re-execute only the edited action. Returns the new synthesis and the
    edited span [start, end) in the new frames (frames before it are unchanged, frames after it
    are the old ones moved by the change in length)."""
    acts = list(syn.description.actions)
    n = len(acts)
    if op != "insert" and not 0 <= index < n:
        raise GenlabError(f"edit {op}: no action {index}; the description has {n}")
    delta = 0
    if op == "insert":
        if concept is None or count is None:
            raise GenlabError("edit insert needs a concept and a count")
        model.index(concept, "edit insert")
        if not 0 <= index <= n:
            raise GenlabError(f"edit insert: index must be in 0..{n}, got {index}")
        c = model.concepts[model.index(concept)]
        length = duration or int(round(count * np.exp(c.log_dur_mu)))
        start = acts[index - 1].end + gap if index > 0 else 0
        new = Action(concept, start, start + length, count)
        delta = length + gap
        acts = acts[:index] + [new] + [_shift(a, delta) for a in acts[index:]]
        edited = index
    elif op == "delete":
        a = acts[index]
        nxt = acts[index + 1].start if index + 1 < n else syn.description.n_frames
        delta = -(nxt - a.start)
        acts = acts[:index] + [_shift(b, delta) for b in acts[index + 1:]]
        edited = None
        span = (a.start, a.start)
    elif op in ("replace", "recount", "retime"):
        a = acts[index]
        new_concept = concept if op == "replace" else a.concept
        if new_concept is None:
            raise GenlabError("edit replace needs a concept")
        model.index(new_concept, f"edit {op}")
        new_count = count if op == "recount" else a.count
        if new_count is None or new_count < 1:
            raise GenlabError(f"edit {op}: count must be >= 1, got {new_count}")
        if op == "retime":
            if duration is None or duration < new_count * 2:
                raise GenlabError(f"edit retime: duration must be >= {2 * new_count} frames, got {duration}")
            length = duration
        elif op == "recount":
            length = int(round(a.length * new_count / a.count))
        else:
            length = a.length
        delta = length - a.length
        acts = acts[:index] + [Action(new_concept, a.start, a.start + length, new_count)] + [
            _shift(b, delta) for b in acts[index + 1:]]
        edited = index
    else:
        raise GenlabError(f"unknown edit {op!r}; expected insert, delete, replace, recount or retime")
    new_desc = Description(syn.description.n_frames + delta, tuple(acts)).validate(model.names)
    rest = _rest(model)
    out = np.repeat(rest[None], new_desc.n_frames, axis=0)
    old_pieces = list(syn.pieces)
    if op == "insert":
        old_pieces.insert(index, None)
    elif op == "delete":
        old_pieces.pop(index)
    pieces = []
    for i, a in enumerate(new_desc.actions):
        if i == edited:
            piece = synthesise_action(model, a.concept, a.count, a.length, mirrored=syn.mirrored, seed=seed)
            span = (a.start, a.end)
        else:
            piece = old_pieces[i]
        out[a.start:a.end] = piece
        pieces.append(piece)
    # Frames before the first action keep any start-pose blend of the old synthesis.
    first = min([a.start for a in new_desc.actions] + [new_desc.n_frames, span[0]])
    out[:first] = syn.keypoints[:first]
    return Synthesis(out, new_desc, tuple(pieces), syn.mirrored), span


def max_join_jump(keypoints: np.ndarray, description: Description) -> tuple[float, float]:
    """(largest mean-joint jump at an action boundary, 95th percentile of per-frame motion)."""
    step = np.linalg.norm(np.diff(keypoints, axis=0), axis=-1).mean(-1)  # (T-1,)
    joins = []
    for a in description.actions:
        for b in (a.start, a.end):
            if 0 < b < len(keypoints):
                joins.append(step[b - 1])
    return (max(joins) if joins else 0.0), float(np.percentile(step, 95))
