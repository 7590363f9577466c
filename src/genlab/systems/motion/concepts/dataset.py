"""The synthetic motion-concepts dataset and loaders.

Fixed difficulty: keypoint jitter 2% of body height, 5% dropped frames, speed 0.7-1.5x,
amplitude 0.7-1.3x, 50% mirrored performers, transitions of 3-10 frames, 2-6 instances chained,
counts 2-8; exact labels (spans, counts, frame labels) kept through the frame drops. Performers
differ in body height (pixels) and position. Splits are generated from disjoint seed streams;
the test set is frozen by seed and by a checksum (`TEST_SHA256`) recorded before any tuning.

Loaders: keypoints with spans (`.npz` with keypoints + description JSON), keypoints with action
lists only, and a GolfDB-format loader (`load_golfdb`): the GolfDB annotation table (id, events
as 10 frame indices, ...) plus per-clip keypoint files. No GolfDB data or keypoints exist here; the
loader is tested on a small file in the same format.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genlab.core.pose.skeletons import COCO17
from genlab.errors import GenlabError
from genlab.systems.motion.concepts.description import Action, Description
from genlab.systems.motion.concepts.learn import Example, ListSequence
from genlab.systems.motion.concepts.motions import VOCABULARY, iteration, rest_keypoints
from genlab.systems.motion.program import Loop, Program, execute
from genlab.systems.motion.synthetic import MotionStyle, hold, line_to, move, rest_pose

NAMES = VOCABULARY


@dataclass(frozen=True)
class Difficulty:
    jitter: float = 0.02  # keypoint noise std, body heights
    drop: float = 0.05  # fraction of frames dropped
    speed: tuple[float, float] = (0.7, 1.5)
    amplitude: tuple[float, float] = (0.7, 1.3)
    accel: tuple[float, float] = (-0.4, 0.4)  # timing shape (the motion generator's style)
    mirror: float = 0.5
    transition: tuple[int, int] = (3, 10)
    instances: tuple[int, int] = (2, 6)
    count: tuple[int, int] = (2, 8)
    idle_stretch: float = 0.3  # chance of an extra idle stretch (15-45 frames) between instances
    lead: tuple[int, int] = (0, 15)  # idle frames before the first / after the last instance


@dataclass(frozen=True)
class Sequence:
    keypoints: np.ndarray  # (T, 17, 2) pixels, noisy, frames dropped
    clean: np.ndarray  # (T, 17, 2) pixels, noise free (same frames kept)
    description: Description  # ground truth spans and counts
    program: Program  # the generating program (normalised, before mirroring and drops)
    mirrored: bool
    body_height: float  # pixels


def _idle(n: int, rng: np.random.Generator):
    """Standing with a slight sway of the arms (two line segments), or still for short stretches."""
    p = rest_pose("front")
    if n < 8:
        return [hold(n, p)]
    dx = float(rng.uniform(-0.015, 0.015))
    q = dict(p)
    for j in ("left_wrist", "right_wrist", "left_elbow", "right_elbow"):
        q[j] = (p[j][0] + dx, p[j][1])
    half = n // 2
    return [move(half, p, {j: line_to(p[j], q[j]) for j in q if q[j] != p[j]}),
            move(n - half, q, {j: line_to(q[j], p[j]) for j in q if q[j] != p[j]})]


def _style(rng: np.random.Generator, diff: Difficulty) -> MotionStyle:
    return MotionStyle(amplitude=float(rng.uniform(*diff.amplitude)), speed=float(rng.uniform(*diff.speed)),
                       accel=float(rng.uniform(*diff.accel)), rng=rng)


def _finish(program: Program, labels: np.ndarray, rng: np.random.Generator, diff: Difficulty):
    """Execute, mirror, jitter, drop frames, place in pixels."""
    clean = execute(program)
    labels = labels[: len(clean)]
    mirrored = bool(rng.random() < diff.mirror)
    if mirrored:
        clean = COCO17.mirror(clean)
    noisy = clean + rng.normal(0.0, diff.jitter, clean.shape)
    keep = rng.random(len(clean)) >= diff.drop
    keep[0] = keep[-1] = True
    height = float(rng.uniform(200, 420))
    origin = np.array([rng.uniform(250, 1000), rng.uniform(450, 700)])
    to_px = lambda x: origin + height * x[keep]
    return to_px(noisy), to_px(clean), labels[keep], mirrored, height


def make_sequence(rng: np.random.Generator, diff: Difficulty = Difficulty(), names=NAMES) -> Sequence:
    """2-6 concept instances (no concept twice in a row), chained through transitions and idle."""
    n_inst = int(rng.integers(diff.instances[0], diff.instances[1] + 1))
    order: list[str] = []
    while len(order) < n_inst:
        c = str(rng.choice(names))
        if not order or order[-1] != c:
            order.append(c)
    statements, labels, counts = [], [], []

    def add(stmts, label):
        for st in stmts:
            statements.append(st)
            labels.extend([label] * int(round(st.duration)))

    p = rest_pose("front")
    lead = int(rng.integers(diff.lead[0], diff.lead[1] + 1))
    if lead:
        add(_idle(lead, rng), -1)
    for i, c in enumerate(order):
        if i > 0:
            add([hold(int(rng.integers(diff.transition[0], diff.transition[1] + 1)), p)], -1)
            if rng.random() < diff.idle_stretch:
                add(_idle(int(rng.integers(15, 46)), rng), -1)
        count = int(rng.integers(diff.count[0], diff.count[1] + 1))
        counts.append(count)
        style = _style(rng, diff)
        add([Loop(tuple(iteration(c, style) for _ in range(count)))], i)
    tail = int(rng.integers(diff.lead[0], diff.lead[1] + 1))
    if tail:
        add(_idle(tail, rng), -1)
    program = Program(tuple(statements), "coco17", 30.0, meta={"order": order, "counts": counts})
    kp, clean, lab, mirrored, height = _finish(program, np.array(labels), rng, diff)
    actions = []
    for i, c in enumerate(order):
        idx = np.nonzero(lab == i)[0]
        actions.append(Action(c, int(idx[0]), int(idx[-1]) + 1, counts[i]))
    return Sequence(kp, clean, Description(len(kp), tuple(actions)), program, mirrored, height)


def make_example(rng: np.random.Generator, concept: str, diff: Difficulty = Difficulty()) -> Example:
    """A trimmed example: one instance, no idle; same noise, speed, amplitude and mirroring."""
    count = int(rng.integers(diff.count[0], diff.count[1] + 1))
    style = _style(rng, diff)
    program = Program((Loop(tuple(iteration(concept, style) for _ in range(count))),), "coco17", 30.0)
    kp, _, _, _, _ = _finish(program, np.zeros(int(np.ceil(program.duration)), int), rng, diff)
    return Example(concept, kp, count)


REST = rest_keypoints


# Seed streams of the splits (disjoint): few-shot pools, list-only, unlabelled, validation, test.
SEEDS = {"fewshot": 1001, "lists": 2002, "unlabelled": 3003, "val": 4004, "test": 9009}
# sha256 of the frozen 100-sequence test set (see `checksum`), recorded before any tuning.
TEST_SHA256 = "6ecc47359f65b57358e2951f11610a5988711c00bfed331e8dd61a1365291e00"  # 100 seqs, 69,492 frames, 430 actions


def few_shot(k: int, seed: int = 0, names=NAMES) -> list[Example]:
    """k trimmed examples per concept; the first k of a fixed pool (nested: 1 in 2 in 5 ...)."""
    out = []
    for ci, c in enumerate(names):
        rng = np.random.default_rng([SEEDS["fewshot"], seed, ci])
        out += [make_example(rng, c) for _ in range(k)]
    return out


def sequences(split: str, n: int, seed: int = 0) -> list[Sequence]:
    if split not in SEEDS or split == "fewshot":
        raise GenlabError(f"unknown split {split!r}; expected one of lists, unlabelled, val, test")
    base = SEEDS[split] if split == "test" else SEEDS[split] + 17 * seed
    return [make_sequence(np.random.default_rng([base, i])) for i in range(n)]


def list_only(seqs: list[Sequence]) -> list[ListSequence]:
    return [ListSequence(s.keypoints, tuple(s.description.concepts)) for s in seqs]


def checksum(seqs: list[Sequence]) -> str:
    """sha256 over keypoints rounded to 1e-3 px and the descriptions (stable across BLAS/libm)."""
    h = hashlib.sha256()
    for s in seqs:
        h.update(np.round(s.keypoints, 3).astype(np.float64).tobytes())
        h.update(s.description.to_json().encode())
    return h.hexdigest()


def test_set(n: int = 100, verify: bool = True) -> list[Sequence]:
    seqs = sequences("test", n)
    if verify and n == 100 and TEST_SHA256 != "to be frozen" and checksum(seqs) != TEST_SHA256:
        raise GenlabError("the frozen concepts test set changed (checksum mismatch); do not tune on a new one")
    return seqs


# ------------------------------------------------------------------------------ loaders
def save_sequence(path: str | Path, keypoints: np.ndarray, description: Description | None = None,
                  actions: list[str] | None = None) -> None:
    """`.npz` with keypoints (T, 17, 2) and either a full description or an action list."""
    from genlab.core.io import atomic_path

    meta = {"description": description.to_dict() if description else None, "actions": actions}
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, keypoints=np.asarray(keypoints, np.float64), meta=np.array(json.dumps(meta)))


def load_sequence(path: str | Path) -> tuple[np.ndarray, Description | None, list[str] | None]:
    """Keypoints plus spans (description) or an action list only; NaN frames are an error."""
    from genlab.systems.motion.concepts.model import check_keypoints

    path = Path(path)
    if not path.is_file():
        raise GenlabError(f"{path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as z:
            kp = z["keypoints"]
            meta = json.loads(str(z["meta"])) if "meta" in z else {}
    except (OSError, ValueError, KeyError, EOFError) as err:
        raise GenlabError(f"{path}: not a concepts sequence file (.npz with 'keypoints'): {err}") from None
    kp = check_keypoints(kp, str(path))
    desc = Description.from_dict(meta["description"], str(path)) if meta.get("description") else None
    actions = meta.get("actions")
    if desc is not None and desc.n_frames != len(kp):
        raise GenlabError(f"{path}: description has {desc.n_frames} frames, keypoints have {len(kp)}")
    return kp, desc, (list(actions) if actions is not None else None)


GOLFDB_EVENTS = ("address", "toe_up", "mid_backswing", "top", "mid_downswing", "impact",
                 "mid_follow_through", "finish")


@dataclass(frozen=True)
class GolfClip:
    id: int
    keypoints: np.ndarray  # (T, 17, 2) of the trimmed clip
    description: Description  # one action per event interval: event i spans [e_i, e_{i+1})


def load_golfdb(table: str | Path, keypoint_dir: str | Path) -> list[GolfClip]:
    """GolfDB in its published layout: `golfDB.pkl`/CSV table with columns id, events (10 frame
    indices: clip start, the 8 events, clip end) and a keypoint file `<id>.npy` (T, 17, 2) per clip
    (keypoints must come from a pose estimator; GolfDB ships none). Reads the CSV form."""
    import csv

    table, keypoint_dir = Path(table), Path(keypoint_dir)
    if not table.is_file():
        raise GenlabError(f"GolfDB table {table}: no such file")
    clips = []
    with open(table, newline="") as f:
        for row_no, row in enumerate(csv.DictReader(f), start=2):
            try:
                cid = int(row["id"])
                events = [int(x) for x in row["events"].strip("[] ").replace(",", " ").split()]
            except (KeyError, ValueError) as err:
                raise GenlabError(f"{table}:{row_no}: needs columns 'id' and 'events' ({err!r})") from None
            if len(events) != 10 or sorted(events) != events:
                raise GenlabError(f"{table}:{row_no}: 'events' must be 10 increasing frame indices, got {events}")
            kp_path = keypoint_dir / f"{cid}.npy"
            if not kp_path.is_file():
                raise GenlabError(f"GolfDB clip {cid}: keypoint file {kp_path} not found")
            from genlab.systems.motion.concepts.model import check_keypoints

            kp = check_keypoints(np.load(kp_path), str(kp_path))
            ev = [e - events[0] for e in events[1:9]] + [events[9] - events[0]]
            if ev[-1] > len(kp):
                raise GenlabError(f"{kp_path}: {len(kp)} frames, but the events reach frame {ev[-1]}")
            actions = tuple(Action(GOLFDB_EVENTS[i], ev[i], max(ev[i + 1], ev[i] + 1), 1) for i in range(8))
            clips.append(GolfClip(cid, kp, Description(len(kp), actions).validate(GOLFDB_EVENTS, str(kp_path))))
    return clips
