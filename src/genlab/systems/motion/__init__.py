"""Motion programs (Hierarchical Motion Understanding via Motion Programs, Kulal et al. 2021).

Stable public API (the concepts system builds on it):

    from genlab.systems.motion import fit_program, execute, FitConfig, Program, Segment, Loop
    prog = fit_program(keypoints, FitConfig())     # (T, J, 2) pixels -> Program (normalised units)
    xy = execute(prog, rate=2.0)                   # (2T, J, 2) at any sub-frame rate
    xy_px = execute(prog, pixels=True)             # back to pixels
    text = prog.to_text(); Program.from_text(text) # readable text form that parses back

Types (frozen dataclasses, `program.py`): primitives `Stationary`, `Line`, `Circle` (per joint, local
time u in [0, 1), timing s(u) = u + accel*u*(u-1)); `Segment(duration, primitives)`;
`Loop(iterations)` with `mean_body()`, `phase_stats()` and `sample_iteration(rng)`;
`Program(statements, skeleton, fps, scale, origin)`. Editing: `set_loop_count`, `edit_primitive`,
`splice`. Fitting internals: `fit.fit_windows` (closed-form, vectorised primitive fits and the
selection rules), `fit.segment_sequence` (DP), `loops.detect_loops`.

Synthetic data (`synthetic.py`): `make_sequence(motion, seed, SynthConfig())`, `synthetic_set(n, seed)`;
motions are `MotionSpec`s in the `MOTIONS` registry (`register_motion` adds more; helpers `rest_pose`,
`move`, `hold`, `arc_about`, `line_to`, `end_pose`, `start_pose`).
Skeletons: `genlab.core.pose.skeletons` (COCO17, HALPE26, MEDIAPIPE33).
"""

from genlab.systems.motion.config import FitConfig, LoopConfig
from genlab.systems.motion.pipeline import fill_gaps, fit_normalised, fit_program, prepare
from genlab.systems.motion.program import (
    KINDS,
    Circle,
    Line,
    Loop,
    PhaseStats,
    Primitive,
    Program,
    Segment,
    Stationary,
    descriptor,
    edit_primitive,
    execute,
    format_program,
    parse_program,
    set_loop_count,
    splice,
)
from genlab.systems.motion.synthetic import (
    MOTIONS,
    MotionSpec,
    MotionStyle,
    SynthConfig,
    SyntheticSequence,
    make_sequence,
    register_motion,
    synthetic_set,
)

__all__ = [
    "KINDS", "Circle", "FitConfig", "Line", "Loop", "LoopConfig", "MOTIONS", "MotionSpec", "MotionStyle",
    "PhaseStats", "Primitive", "Program", "Segment", "Stationary", "SynthConfig", "SyntheticSequence",
    "descriptor", "edit_primitive", "execute", "fill_gaps", "fit_normalised", "fit_program", "format_program",
    "make_sequence", "parse_program", "prepare", "register_motion", "set_loop_count", "splice", "synthetic_set",
]
