"""Motion programs: typed primitives, segments, loops and programs, their text form and execution.

A program is a sequence of statements. A `Segment` lasts `duration` frames and holds one primitive
per joint; all joints share the segment's boundaries. A `Loop` holds its iterations, each a tuple of
K segments (the loop body has K phases); its mean body and per-phase distributions are derived from
the iterations, so a loop can be re-counted, sampled and continued.

Within a segment, local time u = (t - start) / duration runs over [0, 1); a primitive's "end" is its
position at u = 1, i.e. at the first frame of the next segment. Timing is linear or quadratic:
progress s(u) = u + accel * u * (u - 1), so s(0) = 0, s(1) = 1 and accel = 0 is constant speed.
  Stationary: p(u) = point
  Line:       p(u) = start + (end - start) * s(u)                     (total-least-squares direction)
  Circle:     p(u) = center + radius * (cos th, sin th), th = theta0 + (theta1 - theta0) * s(u)
Coordinates are normalised: body height 1, image axes (x right, y down); `scale` and `origin` map
back to pixels (pixel = origin + scale * normalised).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import ClassVar

import numpy as np

from genlab.core.pose.skeletons import get_skeleton
from genlab.errors import GenlabError

KINDS = ("stationary", "line", "circle")


def progress(u: np.ndarray, accel: float) -> np.ndarray:
    """s(u) = u + accel * u * (u - 1): linear (accel 0) or quadratic timing with s(0)=0, s(1)=1."""
    return u + accel * u * (u - 1.0)


@dataclass(frozen=True)
class Stationary:
    point: tuple[float, float]
    kind: ClassVar[str] = "stationary"

    def __call__(self, u: np.ndarray) -> np.ndarray:
        u = np.asarray(u, dtype=np.float64)
        return np.broadcast_to(np.asarray(self.point, dtype=np.float64), u.shape + (2,)).copy()

    def params(self) -> np.ndarray:
        return np.asarray(self.point, dtype=np.float64)

    @classmethod
    def from_params(cls, v) -> Stationary:
        return cls((float(v[0]), float(v[1])))

    def span(self) -> float:
        return 0.0


@dataclass(frozen=True)
class Line:
    start: tuple[float, float]
    end: tuple[float, float]
    accel: float = 0.0
    kind: ClassVar[str] = "line"

    def __call__(self, u: np.ndarray) -> np.ndarray:
        s = progress(np.asarray(u, dtype=np.float64), self.accel)[..., None]
        a, b = np.asarray(self.start), np.asarray(self.end)
        return a + (b - a) * s

    def params(self) -> np.ndarray:
        return np.asarray([*self.start, *self.end, self.accel], dtype=np.float64)

    @classmethod
    def from_params(cls, v) -> Line:
        return cls((float(v[0]), float(v[1])), (float(v[2]), float(v[3])), float(v[4]))

    def span(self) -> float:
        return float(math.dist(self.start, self.end))


@dataclass(frozen=True)
class Circle:
    center: tuple[float, float]
    radius: float
    theta0: float
    theta1: float
    accel: float = 0.0
    kind: ClassVar[str] = "circle"

    def __call__(self, u: np.ndarray) -> np.ndarray:
        s = progress(np.asarray(u, dtype=np.float64), self.accel)
        th = self.theta0 + (self.theta1 - self.theta0) * s
        return np.stack([self.center[0] + self.radius * np.cos(th), self.center[1] + self.radius * np.sin(th)], -1)

    def params(self) -> np.ndarray:
        return np.asarray([*self.center, self.radius, self.theta0, self.theta1, self.accel], dtype=np.float64)

    @classmethod
    def from_params(cls, v) -> Circle:
        return cls((float(v[0]), float(v[1])), float(v[2]), float(v[3]), float(v[4]), float(v[5]))

    def span(self) -> float:
        """Arc length travelled."""
        return float(abs(self.radius * (self.theta1 - self.theta0)))


Primitive = Stationary | Line | Circle
PRIMITIVE_TYPES: dict[str, type] = {"stationary": Stationary, "line": Line, "circle": Circle}


def descriptor(prim: Primitive) -> np.ndarray:
    """(6,) start, middle and end points of a primitive: the loop detector's per-joint descriptor."""
    return prim(np.array([0.0, 0.5, 1.0])).reshape(6)


@dataclass(frozen=True)
class Segment:
    duration: float  # frames; fitted programs use whole frames
    primitives: tuple[Primitive, ...]  # one per joint

    def __post_init__(self):
        if not self.duration > 0:
            raise GenlabError(f"segment duration must be > 0 frames, got {self.duration}")

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(p.kind for p in self.primitives)

    def descriptors(self) -> np.ndarray:
        """(J, 6) start/middle/end per joint."""
        return np.stack([descriptor(p) for p in self.primitives])

    def __call__(self, u: np.ndarray) -> np.ndarray:
        """Positions (len(u), J, 2) at local times u in [0, 1]."""
        return np.stack([p(u) for p in self.primitives], axis=-2)


@dataclass(frozen=True)
class PhaseStats:
    """Distribution of one loop phase over the loop's iterations."""

    duration_mean: float
    duration_std: float
    type_probs: np.ndarray  # (J, 3) over KINDS
    descriptor_mean: np.ndarray  # (J, 6)
    descriptor_std: np.ndarray  # (J, 6)
    param_mean: tuple[dict, ...]  # per joint: kind -> mean parameter vector
    param_std: tuple[dict, ...]  # per joint: kind -> std of the parameter vector


@dataclass(frozen=True)
class Loop:
    iterations: tuple[tuple[Segment, ...], ...]

    def __post_init__(self):
        if not self.iterations:
            raise GenlabError("a loop needs at least one iteration")
        k = len(self.iterations[0])
        if k == 0 or any(len(it) != k for it in self.iterations):
            raise GenlabError("every loop iteration must hold the same number (>= 1) of segments")

    @property
    def count(self) -> int:
        return len(self.iterations)

    @property
    def body_size(self) -> int:
        return len(self.iterations[0])

    @property
    def duration(self) -> float:
        return float(sum(s.duration for it in self.iterations for s in it))

    def segments(self) -> Iterator[Segment]:
        for it in self.iterations:
            yield from it

    def phase_stats(self) -> list[PhaseStats]:
        out = []
        for k in range(self.body_size):
            segs = [it[k] for it in self.iterations]
            durs = np.array([s.duration for s in segs])
            J = len(segs[0].primitives)
            probs = np.zeros((J, 3))
            desc = np.stack([s.descriptors() for s in segs])  # (n, J, 6)
            pmean, pstd = [], []
            for j in range(J):
                by_kind: dict[str, list[np.ndarray]] = {}
                for s in segs:
                    by_kind.setdefault(s.primitives[j].kind, []).append(s.primitives[j].params())
                for kind, vs in by_kind.items():
                    probs[j, KINDS.index(kind)] = len(vs) / len(segs)
                pmean.append({kd: np.mean(vs, 0) for kd, vs in by_kind.items()})
                pstd.append({kd: np.std(vs, 0) for kd, vs in by_kind.items()})
            out.append(PhaseStats(float(durs.mean()), float(durs.std()), probs, desc.mean(0), desc.std(0),
                                  tuple(pmean), tuple(pstd)))
        return out

    def mean_body(self) -> tuple[Segment, ...]:
        """The loop body: per phase, the mean duration and per joint the most common primitive type
        with the mean of its parameters over the iterations of that type."""
        body = []
        for st in self.phase_stats():
            prims = []
            for j in range(st.type_probs.shape[0]):
                kind = KINDS[int(np.argmax(st.type_probs[j]))]
                prims.append(PRIMITIVE_TYPES[kind].from_params(st.param_mean[j][kind]))
            body.append(Segment(st.duration_mean, tuple(prims)))
        return tuple(body)

    def sample_iteration(self, rng: np.random.Generator, temperature: float = 1.0) -> tuple[Segment, ...]:
        """Draw one iteration from the per-phase distributions (type, parameters, duration)."""
        body = []
        for st in self.phase_stats():
            dur = max(1.0, st.duration_mean + temperature * st.duration_std * rng.standard_normal())
            prims = []
            for j in range(st.type_probs.shape[0]):
                kind = KINDS[int(rng.choice(3, p=st.type_probs[j]))]
                v = st.param_mean[j][kind] + temperature * st.param_std[j][kind] * rng.standard_normal(
                    st.param_mean[j][kind].shape)
                prims.append(PRIMITIVE_TYPES[kind].from_params(v))
            body.append(Segment(float(round(dur)), tuple(prims)))
        return tuple(body)


@dataclass(frozen=True)
class Missing:
    """A run of frames where the pose was lost: the program says so instead of inventing motion.
    Executes to NaN; no primitive spans it."""

    duration: float

    def __post_init__(self):
        if not self.duration > 0:
            raise GenlabError(f"missing run duration must be > 0 frames, got {self.duration}")


Statement = Segment | Loop | Missing
Piece = Segment | Missing


@dataclass(frozen=True)
class Program:
    statements: tuple[Statement, ...]
    skeleton: str = "coco17"
    fps: float = 30.0
    scale: float = 1.0  # pixels per body height
    origin: tuple[float, float] = (0.0, 0.0)  # pixel position of the normalised origin
    meta: dict = field(default_factory=dict, compare=False)

    @property
    def num_joints(self) -> int:
        return len(next(self.segments()).primitives)

    @property
    def duration(self) -> float:
        return float(sum(s.duration for s in self.pieces()))

    @property
    def num_frames(self) -> int:
        return int(math.ceil(self.duration - 1e-9))

    @property
    def loops(self) -> list[Loop]:
        return [s for s in self.statements if isinstance(s, Loop)]

    def segments(self) -> Iterator[Segment]:
        """The fitted segments in time order (loops unrolled; missing runs skipped)."""
        for piece in self.pieces():
            if isinstance(piece, Segment):
                yield piece

    def pieces(self) -> Iterator[Piece]:
        """Segments and missing runs in time order (loops unrolled): the program's timeline."""
        for st in self.statements:
            if isinstance(st, Loop):
                yield from st.segments()
            else:
                yield st

    def boundaries(self) -> np.ndarray:
        """Start frame of every piece (segment or missing run), plus the end of the last.
        Equals the segment boundaries when nothing is missing."""
        return np.concatenate([[0.0], np.cumsum([s.duration for s in self.pieces()])])

    def missing_spans(self) -> list[tuple[float, float]]:
        """(start frame, end frame) of every `missing` run."""
        b = self.boundaries()
        return [(float(b[i]), float(b[i + 1])) for i, p in enumerate(self.pieces()) if isinstance(p, Missing)]

    def loop_spans(self) -> list[tuple[float, float, int]]:
        """(start frame, end frame, count) of every loop."""
        out, t = [], 0.0
        for st in self.statements:
            if isinstance(st, Loop):
                out.append((t, t + st.duration, st.count))
            t += st.duration
        return out

    def to_pixels(self, xy: np.ndarray) -> np.ndarray:
        return np.asarray(self.origin) + self.scale * xy

    # text form -----------------------------------------------------------------------------
    def to_text(self) -> str:
        return format_program(self)

    @staticmethod
    def from_text(text: str) -> Program:
        return parse_program(text)


def execute(program: Program, rate: float = 1.0, pixels: bool = False, t: np.ndarray | None = None) -> np.ndarray:
    """Run a program: keypoints (N, J, 2) at `rate` samples per frame (any sub-frame rate), or at
    the explicit frame times `t`. Normalised coordinates unless `pixels`."""
    if t is None:
        if not rate > 0:
            raise GenlabError(f"execute: rate must be > 0 samples per frame, got {rate}")
        n = int(math.ceil(program.duration * rate - 1e-9))
        t = np.arange(n) / rate
    t = np.asarray(t, dtype=np.float64)
    J = program.num_joints
    out = np.full(t.shape + (J, 2), np.nan)  # NaN stays over missing runs
    pieces = list(program.pieces())
    starts = program.boundaries()
    idx = np.clip(np.searchsorted(starts, t, side="right") - 1, 0, len(pieces) - 1)
    for i in np.unique(idx):
        seg = pieces[i]
        if isinstance(seg, Segment):
            sel = idx == i
            out[sel] = seg((t[sel] - starts[i]) / seg.duration)
    return program.to_pixels(out) if pixels else out


# ---------------------------------------------------------------------------------------------
# Text form. One line per joint; `end` closes segment / iteration / loop blocks.
#   program skeleton=coco17 fps=30 scale=412.5 origin=(884.1,497.2)
#   segment 12
#     nose stationary (0.01,-0.9)
#     left_ankle line (0.08,-0.02) -> (0.22,-0.02) accel=0
#     left_wrist circle center=(0.11,-0.8) radius=0.33 theta=(1.5708,-1.0472) accel=0
#   end
#   loop 5
#     iteration
#       segment 12 ... end
#     end
#   end
#   missing 40          (the pose was lost for 40 frames: no motion is claimed there)

def _f(v: float) -> str:
    return f"{float(v):.7g}"


def _pt(p) -> str:
    return f"({_f(p[0])},{_f(p[1])})"


def _format_prim(name: str, p: Primitive) -> str:
    if isinstance(p, Stationary):
        return f"{name} stationary {_pt(p.point)}"
    if isinstance(p, Line):
        return f"{name} line {_pt(p.start)} -> {_pt(p.end)} accel={_f(p.accel)}"
    return (f"{name} circle center={_pt(p.center)} radius={_f(p.radius)} "
            f"theta=({_f(p.theta0)},{_f(p.theta1)}) accel={_f(p.accel)}")


def format_program(program: Program) -> str:
    joints = get_skeleton(program.skeleton).joints
    lines = [f"program skeleton={program.skeleton} fps={_f(program.fps)} scale={_f(program.scale)} "
             f"origin={_pt(program.origin)}"]

    def seg_lines(seg: Segment, ind: str) -> None:
        lines.append(f"{ind}segment {_f(seg.duration)}")
        for j, p in enumerate(seg.primitives):
            lines.append(f"{ind}  {_format_prim(joints[j], p)}")
        lines.append(f"{ind}end")

    for st in program.statements:
        if isinstance(st, Loop):
            lines.append(f"loop {st.count}")
            for it in st.iterations:
                lines.append("  iteration")
                for seg in it:
                    seg_lines(seg, "    ")
                lines.append("  end")
            lines.append("end")
        elif isinstance(st, Missing):
            lines.append(f"missing {_f(st.duration)}")
        else:
            seg_lines(st, "")
    return "\n".join(lines) + "\n"


_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?inf|nan"
_PT = rf"\(\s*({_NUM})\s*,\s*({_NUM})\s*\)"
_RE_STAT = re.compile(rf"^(\w+) stationary {_PT}$")
_RE_LINE = re.compile(rf"^(\w+) line {_PT} -> {_PT} accel=({_NUM})$")
_RE_CIRC = re.compile(rf"^(\w+) circle center={_PT} radius=({_NUM}) theta=\(({_NUM}),({_NUM})\) accel=({_NUM})$")
_RE_HEAD = re.compile(rf"^program skeleton=(\w+) fps=({_NUM}) scale=({_NUM}) origin={_PT}$")


def parse_program(text: str) -> Program:
    """Parse the text form back into a Program (inverse of `format_program`)."""
    lines = [(i + 1, ln.strip()) for i, ln in enumerate(text.splitlines())]
    lines = [(i, ln) for i, ln in lines if ln and not ln.startswith("#")]
    if not lines:
        raise GenlabError("motion program text is empty")
    i0, head = lines[0]
    m = _RE_HEAD.match(head)
    if not m:
        raise GenlabError(f"line {i0}: expected 'program skeleton=... fps=... scale=... origin=(x,y)', got {head!r}")
    skel = get_skeleton(m.group(1))
    joints = skel.joints
    pos = 1

    def err(msg: str):
        ln = lines[pos][0] if pos < len(lines) else lines[-1][0]
        return GenlabError(f"line {ln}: {msg}")

    def parse_segment() -> Segment:
        nonlocal pos
        _, ln = lines[pos]
        parts = ln.split()
        if len(parts) != 2 or parts[0] != "segment":
            raise err(f"expected 'segment DURATION', got {ln!r}")
        dur = float(parts[1])
        pos += 1
        prims: list[Primitive] = []
        while pos < len(lines) and lines[pos][1] != "end":
            _, ln = lines[pos]
            if mm := _RE_STAT.match(ln):
                name, prim = mm.group(1), Stationary((float(mm.group(2)), float(mm.group(3))))
            elif mm := _RE_LINE.match(ln):
                g = [float(x) for x in mm.groups()[1:]]
                name, prim = mm.group(1), Line((g[0], g[1]), (g[2], g[3]), g[4])
            elif mm := _RE_CIRC.match(ln):
                g = [float(x) for x in mm.groups()[1:]]
                name, prim = mm.group(1), Circle((g[0], g[1]), g[2], g[3], g[4], g[5])
            else:
                raise err(f"cannot parse primitive {ln!r}")
            if len(prims) >= len(joints) or name != joints[len(prims)]:
                want = joints[len(prims)] if len(prims) < len(joints) else "end"
                raise err(f"expected joint {want!r}, got {name!r}")
            prims.append(prim)
            pos += 1
        if pos >= len(lines):
            raise err("segment is not closed by 'end'")
        if len(prims) != len(joints):
            raise err(f"segment has {len(prims)} joints, skeleton {skel.name} has {len(joints)}")
        pos += 1
        return Segment(dur, tuple(prims))

    statements: list[Statement] = []
    while pos < len(lines):
        _, ln = lines[pos]
        if ln.startswith("segment"):
            statements.append(parse_segment())
        elif ln.startswith("missing"):
            parts = ln.split()
            try:
                statements.append(Missing(float(parts[1])))
            except (IndexError, ValueError):
                raise err(f"expected 'missing FRAMES', got {ln!r}") from None
            if len(parts) != 2:
                raise err(f"expected 'missing FRAMES', got {ln!r}")
            pos += 1
        elif ln.startswith("loop"):
            parts = ln.split()
            if len(parts) != 2 or not parts[1].isdigit():
                raise err(f"expected 'loop COUNT', got {ln!r}")
            count = int(parts[1])
            pos += 1
            its = []
            while pos < len(lines) and lines[pos][1] == "iteration":
                pos += 1
                segs = []
                while pos < len(lines) and lines[pos][1].startswith("segment"):
                    segs.append(parse_segment())
                if pos >= len(lines) or lines[pos][1] != "end":
                    raise err("iteration is not closed by 'end'")
                pos += 1
                its.append(tuple(segs))
            if pos >= len(lines) or lines[pos][1] != "end":
                raise err("loop is not closed by 'end'")
            pos += 1
            if len(its) != count:
                raise err(f"loop says {count} iterations but holds {len(its)}")
            statements.append(Loop(tuple(its)))
        else:
            raise err(f"expected 'segment', 'loop' or 'missing', got {ln!r}")
    if not any(isinstance(st, (Segment, Loop)) for st in statements):
        raise GenlabError("motion program has no statements")
    return Program(tuple(statements), skel.name, float(m.group(2)), float(m.group(3)),
                   (float(m.group(4)), float(m.group(5))))


# ---------------------------------------------------------------------------------------------
# Editing: each returns a new Program.

def set_loop_count(program: Program, loop_index: int, count: int) -> Program:
    """Change the count of the `loop_index`-th loop: drop trailing iterations or append mean bodies."""
    if count < 1:
        raise GenlabError(f"loop count must be >= 1, got {count}")
    loops = [i for i, s in enumerate(program.statements) if isinstance(s, Loop)]
    if not 0 <= loop_index < len(loops):
        raise GenlabError(f"program has {len(loops)} loops; no loop {loop_index}")
    si = loops[loop_index]
    loop: Loop = program.statements[si]
    its = list(loop.iterations[:count])
    body = loop.mean_body()
    while len(its) < count:
        its.append(body)
    sts = list(program.statements)
    sts[si] = Loop(tuple(its))
    return replace(program, statements=tuple(sts))


def edit_primitive(program: Program, segment_index: int, joint: int, **changes) -> Program:
    """Replace fields of one joint's primitive in the `segment_index`-th segment (flattened order),
    e.g. `edit_primitive(p, 3, 9, radius=0.4)`; a `primitive=` keyword replaces it outright."""
    flat = list(program.segments())
    if not 0 <= segment_index < len(flat):
        raise GenlabError(f"program has {len(flat)} segments; no segment {segment_index}")
    counter = 0
    new_sts = []
    for st in program.statements:
        if isinstance(st, Loop):
            its = []
            for it in st.iterations:
                segs = []
                for seg in it:
                    segs.append(_edit_seg(seg, joint, changes) if counter == segment_index else seg)
                    counter += 1
                its.append(tuple(segs))
            new_sts.append(Loop(tuple(its)))
        elif isinstance(st, Missing):
            new_sts.append(st)
        else:
            new_sts.append(_edit_seg(st, joint, changes) if counter == segment_index else st)
            counter += 1
    return replace(program, statements=tuple(new_sts))


def _edit_seg(seg: Segment, joint: int, changes: dict) -> Segment:
    if not 0 <= joint < len(seg.primitives):
        raise GenlabError(f"segment has {len(seg.primitives)} joints; no joint {joint}")
    prims = list(seg.primitives)
    if "primitive" in changes:
        prims[joint] = changes["primitive"]
    else:
        try:
            prims[joint] = replace(prims[joint], **changes)
        except TypeError as e:
            raise GenlabError(f"cannot edit {prims[joint].kind} primitive: {e}") from None
    return Segment(seg.duration, tuple(prims))


def splice(program: Program, start: int, stop: int, statements: tuple[Statement, ...]) -> Program:
    """Replace statements[start:stop] by `statements` (insert with start == stop, delete with ())."""
    if not 0 <= start <= stop <= len(program.statements):
        raise GenlabError(f"splice range {start}:{stop} outside 0..{len(program.statements)}")
    sts = program.statements[:start] + tuple(statements) + program.statements[stop:]
    if not sts:
        raise GenlabError("splice would leave an empty program")
    return replace(program, statements=sts)
