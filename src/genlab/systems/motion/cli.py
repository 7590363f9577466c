"""`genlab motion ...` sub-commands. Keep imports inside the command functions.

Motion concepts register `genlab motion concepts ...` from `concepts/cli.py`.
"""

from __future__ import annotations

import argparse

from genlab.systems.motion.concepts import cli as concepts_cli


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("motion", help="Motion programs (Kulal et al. 2021) and motion concepts.")
    sub = parser.add_subparsers(dest="command", metavar="<command>", required=True)

    p = sub.add_parser("extract", help="video -> MediaPipe keypoints -> program, plot, overlay on the video")
    p.add_argument("video")
    p.add_argument("--roi", help="x,y,w,h region (pixels of the full frame) holding the one person to track")
    p.add_argument("-o", "--out", default="outputs/motion/extract")
    p.add_argument("--scale", type=float, default=0.5, help="resize the (cropped) frames before pose estimation")
    p.add_argument("--max-frames", type=int, default=None)
    p.add_argument("--start", type=int, default=0, help="first frame of the fit (pose runs on all frames)")
    p.add_argument("--end", type=int, default=None, help="end frame of the fit (exclusive)")
    p.add_argument("--min-reps", type=int, default=3, help="fewest repetitions a loop needs (default 3)")
    p.add_argument("--no-swap-repair", action="store_true", help="keep MediaPipe's left/right labels as they are")
    p.add_argument("--no-video", action="store_true", help="skip the overlay and stick-figure videos")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_extract)

    p = sub.add_parser("fit", help="keypoints (.npy/.npz/.json/OpenPose dir/.bvh/.trc) -> program, summary, plot")
    _input_args(p)
    p.add_argument("-o", "--out", default="outputs/motion/fit")
    p.add_argument("--video", help="the video the keypoints come from: the program is drawn over its frames "
                                   "(overlay.mp4; rows are matched to video frames by their frame ids)")
    p.add_argument("--no-video", action="store_true", help="skip the videos")
    p.set_defaults(func=_fit)

    p = sub.add_parser("render", help="program text -> stick-figure video (.mp4/.gif) at any rate")
    p.add_argument("program")
    p.add_argument("-o", "--out", default="outputs/motion/render.mp4")
    p.add_argument("--rate", type=float, default=1.0,
                   help="output frames per input frame (1.5 -> round(1.5 T) frames; first and last poses kept)")
    p.add_argument("--keypoints", help="optional keypoint file drawn beside the program, on the same clock")
    p.set_defaults(func=_render)

    p = sub.add_parser("fill", help="keypoints -> the same keypoints with short lost runs filled from the fitted program")
    _input_args(p)
    p.add_argument("-o", "--out", required=True, help="keypoints out: .npy (with confidences), .npz or .trc")
    p.set_defaults(func=_fill)

    p = sub.add_parser("interpolate", help="keypoints -> every lost frame filled (loops played across long gaps)")
    _input_args(p)
    p.add_argument("-o", "--out", required=True, help="keypoints out: .npy, .npz or .trc")
    p.set_defaults(func=_interpolate)

    p = sub.add_parser("predict", help="keypoints -> the next --horizon frames continued from the program")
    _input_args(p)
    p.add_argument("--horizon", type=int, default=30, help="frames to predict past the last one")
    p.add_argument("-o", "--out", required=True, help="predicted keypoints: .npy, .npz or .trc")
    p.set_defaults(func=_predict)

    p = sub.add_parser("synth", help="a seeded synthetic sequence: keypoints .npy + ground-truth program")
    p.add_argument("motion", help="jumping_jack, arm_circle, squat, walk (or any registered motion)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--count", type=int, default=None)
    p.add_argument("-o", "--out", default="outputs/motion/synth")
    p.set_defaults(func=_synth)

    p = sub.add_parser("edit", help="edit a program: loop count, splice out statements")
    p.add_argument("program")
    p.add_argument("--loop-count", action="append", default=[], metavar="I=N", help="set loop I's count to N")
    p.add_argument("--delete", action="append", default=[], type=int, metavar="S", help="delete statement S")
    p.add_argument("-o", "--out", required=True)
    p.set_defaults(func=_edit)

    p = sub.add_parser("eval", help="acceptance figures on seeded synthetic sequences")
    p.add_argument("-n", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_eval)

    concepts_cli.register(sub)


_PRESET_HELP = ("fit thresholds. 'video': a pose detector's keypoints (AlphaPose, OpenPose, MediaPipe, .trc, "
                ".npy/.npz with confidences): higher noise floor, looser loop matching. 'default': synthetic or "
                "motion capture (.bvh, .npy without confidences). 'auto' (default) picks by the input")


def _input_args(p: argparse.ArgumentParser) -> None:
    """The keypoint input and how to read and fit it (fit, fill, interpolate, predict)."""
    p.add_argument("input", help=".npy/.npz, AlphaPose .json, OpenPose folder or .json, .bvh, .trc")
    p.add_argument("--fps", type=float, default=30.0, help="frame rate when the file does not say (default 30)")
    p.add_argument("--skeleton", default=None, help="layout of the input (default: from the joint count)")
    p.add_argument("--person", default=None, help="track id in a multi-person file (default: the longest track)")
    p.add_argument("--preset", choices=("auto", "default", "video"), default="auto", help=_PRESET_HELP)
    p.add_argument("--min-reps", type=int, default=None, help="fewest repetitions a loop needs (preset: 3)")
    p.add_argument("--no-swap-repair", action="store_true",
                   help="keep a detector's left/right labels as they are (default: repair swaps)")


def _load_track(args):
    """(COCO-17 track with swaps repaired, FitConfig, preset name, frames swapped back)."""
    import dataclasses

    import numpy as np

    from genlab.systems.motion.config import PRESET_FOR_KIND, PRESETS
    from genlab.systems.motion.io import load_keypoints
    from genlab.systems.motion.repair import repair_swaps

    track = load_keypoints(args.input, args.skeleton, args.fps, person=args.person).coco17()
    name = PRESET_FOR_KIND[track.kind] if args.preset == "auto" else args.preset
    cfg = PRESETS[name]()
    if args.min_reps is not None:
        cfg = dataclasses.replace(cfg, loop=dataclasses.replace(cfg.loop, min_reps=args.min_reps))
    swapped = np.zeros(track.xy.shape[0], bool)
    if track.kind == "detector" and not args.no_swap_repair:
        xy, conf, swapped = repair_swaps(track.xy, track.skeleton, track.conf)
        track = dataclasses.replace(track, xy=xy, conf=conf)
    return track, cfg, name, swapped


def _summary(program, keypoints, used=None) -> dict:
    from genlab.systems.motion.apps import reconstruction_error

    segs = list(program.segments())
    kinds = [k for s in segs for k in s.kinds]
    meta = program.meta
    return dict(
        frames=program.num_frames, segments=len(segs),
        loops=[dict(start=a, end=b, count=n, similarity=round(sim, 3))
               for (a, b, n), sim in zip(program.loop_spans(), meta.get("loop_similarity", []))],
        missing=[dict(start=a, end=b) for a, b in program.missing_spans()],
        lost_frames=meta.get("lost_frames", 0), missing_frames=meta.get("missing_frames", 0),
        bridged_frames=meta.get("bridged_frames", 0), mean_confidence=meta.get("mean_confidence"),
        primitive_counts={k: kinds.count(k) for k in ("stationary", "line", "circle")},
        reconstruction_error_px=reconstruction_error(program, keypoints, used),
        body_height_px=program.scale, penalty=meta.get("penalty"),
    )


def _write_outputs(out, program, keypoints, fps, video: bool, extra: dict | None = None,
                   source_video: str | None = None, frame_ids=None, used=None) -> None:
    import json
    from pathlib import Path

    import numpy as np

    from genlab.core.io import atomic_write_text
    from genlab.systems.motion.program import execute
    from genlab.systems.motion.render import draw_frames, draw_overlay, plot_program, write_video

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "program.txt", program.to_text())
    rec = execute(program, pixels=True)
    np.save(out / "reconstruction.npy", rec)
    summary = {**_summary(program, keypoints, used), **(extra or {})}
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2))
    plot_program(program, keypoints, out / "plot.png")
    if video:
        frames = draw_frames([keypoints, rec], program.skeleton, labels=["input", "program"])
        write_video(frames, out / "stick.mp4", fps=fps)
        if source_video:
            ids = np.arange(len(keypoints)) if frame_ids is None else np.asarray(frame_ids)
            write_video(draw_overlay(source_video, [keypoints, rec], ids, program.skeleton), out / "overlay.mp4", fps=fps)
    loops = ", ".join(f"x{lp['count']} over frames {lp['start']:.0f}-{lp['end']:.0f}" for lp in summary["loops"]) or "none"
    conf = summary["mean_confidence"]
    print(f"{summary['frames']} frames ({summary['missing_frames']} missing, {summary['bridged_frames']} bridged"
          f"{f', mean confidence {conf:.2f}' if conf is not None else ''}), {summary['segments']} segments, "
          f"loops: {loops}; reconstruction error {summary['reconstruction_error_px']:.2f} px; wrote {out}/")


def _extract(args: argparse.Namespace) -> int:
    from pathlib import Path

    import numpy as np

    from genlab.core.pose.mediapipe_pose import estimate_video, parse_roi
    from genlab.core.pose.skeletons import MEDIAPIPE33
    from genlab.systems.motion.config import video
    from genlab.systems.motion.io import write_keypoints
    from genlab.systems.motion.pipeline import fit_program
    from genlab.systems.motion.repair import repair_swaps

    roi = parse_roi(args.roi)
    track = estimate_video(args.video, roi=roi, scale=args.scale, max_frames=args.max_frames, progress=not args.quiet)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    xy, vis, swapped = track.xy, track.visibility, np.zeros(len(track.xy), bool)
    if not args.no_swap_repair:
        xy, vis, swapped = repair_swaps(xy, "mediapipe33", vis)
    write_keypoints(out / "keypoints_mediapipe33.npy", xy, vis, track.fps, "mediapipe33")
    sl = slice(args.start, args.end)
    coco, conf = MEDIAPIPE33.to_coco17(xy)[sl], MEDIAPIPE33.to_coco17(vis[..., None])[..., 0][sl]
    write_keypoints(out / "keypoints_coco17.npy", coco, conf, track.fps)
    print(f"pose found in {int(track.found.sum())}/{len(track.found)} frames; "
          f"left/right swaps repaired in {int(swapped[sl].sum())}")
    program = fit_program(coco, video(args.min_reps), fps=track.fps, conf=conf)
    frame_ids = np.arange(len(xy))[sl]
    extra = dict(input=dict(source=str(args.video), kind="detector", first_frame_id=int(frame_ids[0])),
                 preset="video", swaps_repaired=int(swapped[sl].sum()))
    _write_outputs(out, program, coco, track.fps, not args.no_video, extra, args.video, frame_ids,
                   conf >= video().min_conf)
    return 0


def _fit(args: argparse.Namespace) -> int:
    from genlab.systems.motion.pipeline import fit_program

    track, cfg, name, swapped = _load_track(args)
    program = fit_program(track.xy, cfg, fps=track.fps, conf=track.conf, missing=track.lost)
    extra = dict(input=track.describe(), preset=name, swaps_repaired=int(swapped.sum()))
    _write_outputs(args.out, program, track.xy, track.fps, not args.no_video, extra, args.video, track.frame_ids,
                   track.conf >= cfg.min_conf)
    return 0


def _fill(args: argparse.Namespace) -> int:
    import numpy as np

    from genlab.systems.motion.io import write_keypoints
    from genlab.systems.motion.pipeline import fit_program
    from genlab.systems.motion.program import execute

    track, cfg, _, _ = _load_track(args)
    program = fit_program(track.xy, cfg, fps=track.fps, conf=track.conf, missing=track.lost)
    rec = execute(program, pixels=True)[: len(track.xy)]
    gap = ~np.isfinite(track.xy).all(-1) & np.isfinite(rec).all(-1)  # missing points the program covers
    xy = np.where(gap[..., None], rec, track.xy)
    conf = np.where(gap, 0.0, track.conf)  # filled points say they were not observed
    write_keypoints(args.out, xy, conf, track.fps, frame_ids=track.frame_ids)
    left = int((~np.isfinite(xy).all(-1)).any(-1).sum())
    print(f"filled {int(gap.any(-1).sum())} frames from the program ({left} left missing: runs longer than "
          f"{cfg.max_gap} frames); wrote {args.out}")
    return 0


def _interpolate(args: argparse.Namespace) -> int:
    import numpy as np

    from genlab.systems.motion.apps import interpolate
    from genlab.systems.motion.io import write_keypoints

    track, cfg, _, _ = _load_track(args)
    miss = track.lost | ~np.isfinite(track.xy).all((1, 2))
    filled, _ = interpolate(track.xy, miss, cfg)
    write_keypoints(args.out, filled, np.where(miss[:, None], 0.0, track.conf), track.fps, frame_ids=track.frame_ids)
    print(f"interpolated {int(miss.sum())} frames; wrote {args.out}")
    return 0


def _predict(args: argparse.Namespace) -> int:
    import numpy as np

    from genlab.systems.motion.apps import predict
    from genlab.systems.motion.io import write_keypoints

    track, cfg, _, _ = _load_track(args)
    pred, _ = predict(track.xy, args.horizon, cfg)
    ids = track.frame_ids[-1] + 1 + np.arange(args.horizon)
    write_keypoints(args.out, pred, np.zeros(pred.shape[:2]), track.fps, frame_ids=ids)
    print(f"predicted frames {int(ids[0])}-{int(ids[-1])}; wrote {args.out}")
    return 0


def _read_program(path):
    """A motion program file; every problem with it is one GenlabError naming the file."""
    from genlab.errors import GenlabError
    from genlab.systems.motion.program import Program

    if not path.is_file():
        raise GenlabError(f"program not found: {path}")
    try:
        return Program.from_text(path.read_text())
    except UnicodeDecodeError:
        raise GenlabError(f"{path}: not a motion program (not UTF-8 text)") from None
    except GenlabError as err:
        raise GenlabError(f"{path}: {err}") from None


def _render(args: argparse.Namespace) -> int:
    from pathlib import Path

    from genlab.errors import GenlabError
    from genlab.systems.motion.io import load_keypoints
    from genlab.systems.motion.program import execute
    from genlab.systems.motion.render import draw_frames, frame_clock, resample, write_video

    if not args.rate > 0:
        raise GenlabError(f"--rate must be > 0, got {args.rate}")
    program = _read_program(Path(args.program))
    # one clock for everything drawn: n frames spanning input frames 0 .. T-1, first and last kept
    T = program.num_frames
    t = frame_clock(T, args.rate)
    n = len(t)
    rec = execute(program, pixels=True, t=t)
    seqs, labels, view = [rec], ["program"], [execute(program, pixels=True)]
    if args.keypoints:
        kp = load_keypoints(args.keypoints).coco17().xy
        if kp.shape[0] != T:
            raise GenlabError(f"--keypoints has {kp.shape[0]} frames, the program {T}")
        seqs, labels, view = [resample(kp, t), rec], ["input", "program"], [kp, view[0]]
    fps = program.fps * (n - 1) / max(T - 1, 1) if n > 1 else program.fps
    # the view is fitted to the frames themselves, so renders at any rate frame the figure alike
    write_video(draw_frames(seqs, program.skeleton, labels=labels, view=view), args.out, fps=fps)
    print(f"wrote {args.out} ({n} frames for {T} input frames, {fps:.3g} fps)")
    return 0


def _synth(args: argparse.Namespace) -> int:
    from pathlib import Path

    import numpy as np

    from genlab.core.io import atomic_write_text
    from genlab.systems.motion.synthetic import make_sequence

    seq = make_sequence(args.motion, args.seed, count=args.count)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "keypoints.npy", seq.keypoints)
    atomic_write_text(out / "program_true.txt", seq.program.to_text())
    print(f"{args.motion} seed {args.seed}: {seq.keypoints.shape[0]} frames, {seq.loop_counts[0]} repetitions; wrote {out}/")
    return 0


def _edit(args: argparse.Namespace) -> int:
    from pathlib import Path

    from genlab.core.io import atomic_write_text
    from genlab.errors import GenlabError
    from genlab.systems.motion.program import set_loop_count, splice

    program = _read_program(Path(args.program))
    for item in args.loop_count:
        try:
            i, n = (int(v) for v in item.split("="))
        except ValueError:
            raise GenlabError(f"--loop-count expects I=N (integers), got {item!r}") from None
        program = set_loop_count(program, i, n)
    for s in sorted(args.delete, reverse=True):
        program = splice(program, s, s + 1, ())
    atomic_write_text(args.out, program.to_text())
    print(f"wrote {args.out}: {program.num_frames} frames, loops {[lp.count for lp in program.loops]}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    import tempfile

    from genlab.systems.motion.acceptance import (
        fit_scores,
        gap_scores,
        interpolation_errors,
        prediction_errors,
    )
    from genlab.systems.motion.synthetic import SynthConfig, synthetic_set

    seqs = synthetic_set(args.n, seed=args.seed)
    fs = fit_scores(seqs, progress=not args.quiet)
    print(f"fit on {args.n} sequences: " + ", ".join(f"{k} {v:.3f}" for k, v in fs.items()))
    with tempfile.TemporaryDirectory() as work:
        gs = gap_scores(seqs, work, progress=not args.quiet)
    print("with a tracker's gaps, dropped frames and 10% low-confidence joints (frames >= 5 from the gap): "
          + ", ".join(f"{k} {gs['gapped'][k]:.3f} (clean {gs['clean'][k]:.3f})" for k in gs["gapped"]))
    long = synthetic_set(args.n, seed=args.seed + 1, cfg=SynthConfig(count=(5, 8)))
    for g in (10, 20):
        r = interpolation_errors(long, g)
        print(f"interpolation gap {g}: program {r['program']:.4f} vs cubic spline {r['spline']:.4f} (body heights)")
    for h in (15, 30):
        r = prediction_errors(long, h)
        print(f"prediction horizon {h}: program {r['program']:.4f} vs constant velocity {r['constant_velocity']:.4f}")
    return 0
