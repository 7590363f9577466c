"""Motion programs (Hierarchical Motion Understanding via Motion Programs, Kulal et al. 2021).

Stable public API (the concepts system builds on it):

    from genlab.systems.motion import fit_program, execute, FitConfig, Program, Segment, Loop
    prog = fit_program(keypoints, FitConfig())     # (T, J, 2) pixels -> Program (normalised units)
    prog = fit_program(xy, preset_for("detector"), conf=c)  # a pose detector's track and its confidences
    xy = execute(prog, rate=2.0)                   # (2T, J, 2) at any sub-frame rate
    xy_px = execute(prog, pixels=True)             # back to pixels
    text = prog.to_text(); Program.from_text(text) # readable text form that parses back

Types (frozen dataclasses, `program.py`): primitives `Stationary`, `Line`, `Circle` (per joint, local
time u in [0, 1), timing s(u) = u + accel*u*(u-1)); `Segment(duration, primitives)`;
`Missing(duration)` (the pose was lost: no motion claimed);
`Loop(iterations)` with `mean_body()`, `phase_stats()` and `sample_iteration(rng)`;
`Program(statements, skeleton, fps, scale, origin)`. Editing: `set_loop_count`, `edit_primitive`,
`splice`. Fitting at given boundaries: `fit_segments(X, boundaries, cfg)` -> Segments. Fitting internals: `fit.fit_windows` (closed-form, vectorised primitive fits and the
selection rules), `fit.segment_sequence` (DP), `loops.detect_loops`.

Synthetic data (`synthetic.py`): `make_sequence(motion, seed, SynthConfig())`, `synthetic_set(n, seed)`;
motions are `MotionSpec`s in the `MOTIONS` registry (`register_motion` adds more; helpers `rest_pose`,
`move`, `hold`, `arc_about`, `line_to`, `end_pose`, `start_pose`).
Skeletons: `genlab.core.pose.skeletons` (COCO17, HALPE26, MEDIAPIPE33).
"""

import importlib

# Public name -> defining module. Imported on first use (PEP 562), so that importing the CLI,
# which lives in this package, stays cheap.
_EXPORTS = {
    "Circle": "genlab.systems.motion.program",
    "FitConfig": "genlab.systems.motion.config",
    "KINDS": "genlab.systems.motion.program",
    "Line": "genlab.systems.motion.program",
    "Loop": "genlab.systems.motion.program",
    "Missing": "genlab.systems.motion.program",
    "LoopConfig": "genlab.systems.motion.config",
    "MOTIONS": "genlab.systems.motion.synthetic",
    "MotionSpec": "genlab.systems.motion.synthetic",
    "MotionStyle": "genlab.systems.motion.synthetic",
    "PhaseStats": "genlab.systems.motion.program",
    "Primitive": "genlab.systems.motion.program",
    "Program": "genlab.systems.motion.program",
    "Segment": "genlab.systems.motion.program",
    "Stationary": "genlab.systems.motion.program",
    "SynthConfig": "genlab.systems.motion.synthetic",
    "SyntheticSequence": "genlab.systems.motion.synthetic",
    "descriptor": "genlab.systems.motion.program",
    "edit_primitive": "genlab.systems.motion.program",
    "execute": "genlab.systems.motion.program",
    "fill_gaps": "genlab.systems.motion.pipeline",
    "fit_normalised": "genlab.systems.motion.pipeline",
    "fit_segments": "genlab.systems.motion.fit",
    "fit_program": "genlab.systems.motion.pipeline",
    "format_program": "genlab.systems.motion.program",
    "make_sequence": "genlab.systems.motion.synthetic",
    "parse_program": "genlab.systems.motion.program",
    "prepare": "genlab.systems.motion.pipeline",
    "preset_for": "genlab.systems.motion.config",
    "register_motion": "genlab.systems.motion.synthetic",
    "set_loop_count": "genlab.systems.motion.program",
    "splice": "genlab.systems.motion.program",
    "synthetic_set": "genlab.systems.motion.synthetic",
}


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "KINDS", "Circle", "FitConfig", "Line", "Loop", "LoopConfig", "MOTIONS", "Missing", "MotionSpec", "MotionStyle",
    "PhaseStats", "Primitive", "Program", "Segment", "Stationary", "SynthConfig", "SyntheticSequence",
    "descriptor", "edit_primitive", "execute", "fill_gaps", "fit_normalised", "fit_program",
    "fit_segments", "format_program",
    "make_sequence", "parse_program", "prepare", "preset_for", "register_motion", "set_loop_count", "splice", "synthetic_set",
]
