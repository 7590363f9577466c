"""`genlab motion ...` sub-commands. Keep imports inside the command functions.

Motion concepts register `genlab motion concepts ...` from `concepts/cli.py`.
"""

from __future__ import annotations

import argparse

from genlab.systems.motion.concepts import cli as concepts_cli


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("motion", help="Motion programs (Kulal et al. 2021) and motion concepts.")
    sub = parser.add_subparsers(dest="command", metavar="<command>", required=True)

    p = sub.add_parser("extract", help="video -> MediaPipe keypoints -> program, reconstruction, stick-figure video")
    p.add_argument("video")
    p.add_argument("--roi", help="x,y,w,h region (pixels of the full frame) holding the one person to track")
    p.add_argument("-o", "--out", default="outputs/motion/extract")
    p.add_argument("--scale", type=float, default=0.5, help="resize the (cropped) frames before pose estimation")
    p.add_argument("--max-frames", type=int, default=None)
    p.add_argument("--start", type=int, default=0, help="first frame of the fit (pose runs on all frames)")
    p.add_argument("--end", type=int, default=None, help="end frame of the fit (exclusive)")
    p.add_argument("--min-reps", type=int, default=3, help="fewest repetitions a loop needs")
    p.add_argument("--no-video", action="store_true", help="skip the stick-figure video")
    p.set_defaults(func=_extract)

    p = sub.add_parser("fit", help="keypoints (.npy/.json/OpenPose dir/.bvh) -> program text, summary, plot")
    p.add_argument("input")
    p.add_argument("-o", "--out", default="outputs/motion/fit")
    p.add_argument("--fps", type=float, default=30.0)
    p.add_argument("--skeleton", default=None, help="layout of the input (default: from the joint count)")
    p.add_argument("--preset", choices=("default", "video"), default="default")
    p.add_argument("--min-reps", type=int, default=None)
    p.add_argument("--no-video", action="store_true")
    p.set_defaults(func=_fit)

    p = sub.add_parser("render", help="program text -> stick-figure video (.mp4/.gif) at any rate")
    p.add_argument("program")
    p.add_argument("-o", "--out", default="outputs/motion/render.mp4")
    p.add_argument("--rate", type=float, default=1.0, help="samples per frame (2 = twice the frame rate)")
    p.add_argument("--keypoints", help="optional .npy of input keypoints drawn beside the program")
    p.set_defaults(func=_render)

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
    p.set_defaults(func=_eval)

    concepts_cli.register(sub)


def _summary(program, keypoints) -> dict:
    from genlab.systems.motion.apps import reconstruction_error

    segs = list(program.segments())
    kinds = [k for s in segs for k in s.kinds]
    return dict(
        frames=program.num_frames, segments=len(segs),
        loops=[dict(start=a, end=b, count=n) for a, b, n in program.loop_spans()],
        primitive_counts={k: kinds.count(k) for k in ("stationary", "line", "circle")},
        reconstruction_error_px=reconstruction_error(program, keypoints),
        body_height_px=program.scale, penalty=program.meta.get("penalty"),
    )


def _write_outputs(out, program, keypoints, fps, video: bool) -> None:
    import json
    from pathlib import Path

    import numpy as np

    from genlab.core.io import atomic_write_text
    from genlab.systems.motion.program import execute
    from genlab.systems.motion.render import draw_frames, plot_program, write_video

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "program.txt", program.to_text())
    rec = execute(program, pixels=True)
    np.save(out / "reconstruction.npy", rec)
    summary = _summary(program, keypoints)
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2))
    plot_program(program, keypoints, out / "plot.png")
    if video:
        frames = draw_frames([keypoints, rec], program.skeleton, labels=["input", "program"])
        write_video(frames, out / "stick.mp4", fps=fps)
    loops = ", ".join(f"x{lp['count']} over frames {lp['start']:.0f}-{lp['end']:.0f}" for lp in summary["loops"]) or "none"
    print(f"{summary['frames']} frames, {summary['segments']} segments, loops: {loops}; "
          f"reconstruction error {summary['reconstruction_error_px']:.2f} px; wrote {out}/")


def _extract(args: argparse.Namespace) -> int:
    from pathlib import Path

    import numpy as np

    from genlab.core.pose.mediapipe_pose import estimate_video, parse_roi
    from genlab.core.pose.skeletons import MEDIAPIPE33
    from genlab.systems.motion.config import video
    from genlab.systems.motion.pipeline import fit_program

    roi = parse_roi(args.roi)
    track = estimate_video(args.video, roi=roi, scale=args.scale, max_frames=args.max_frames)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "keypoints_mediapipe33.npy", track.xy)
    coco = MEDIAPIPE33.to_coco17(track.xy)[args.start : args.end]
    np.save(out / "keypoints_coco17.npy", coco)
    print(f"pose found in {int(track.found.sum())}/{len(track.found)} frames")
    program = fit_program(coco, video(args.min_reps), fps=track.fps)
    _write_outputs(out, program, coco, track.fps, not args.no_video)
    return 0


def _fit(args: argparse.Namespace) -> int:
    import dataclasses

    from genlab.systems.motion.config import FitConfig, video
    from genlab.systems.motion.io import load_keypoints
    from genlab.systems.motion.pipeline import fit_program

    track = load_keypoints(args.input, args.skeleton, args.fps).coco17()
    cfg = video() if args.preset == "video" else FitConfig()
    if args.min_reps is not None:
        cfg = dataclasses.replace(cfg, loop=dataclasses.replace(cfg.loop, min_reps=args.min_reps))
    program = fit_program(track.xy, cfg, fps=track.fps)
    _write_outputs(args.out, program, track.xy, track.fps, not args.no_video)
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

    import numpy as np

    from genlab.systems.motion.program import execute
    from genlab.systems.motion.render import draw_frames, write_video

    program = _read_program(Path(args.program))
    rec = execute(program, rate=args.rate, pixels=True)
    seqs, labels = [rec], ["program"]
    if args.keypoints:
        kp = np.load(args.keypoints)
        if args.rate != 1.0:
            kp = np.repeat(kp, int(round(args.rate)), axis=0) if args.rate >= 1 else kp[:: int(round(1 / args.rate))]
        seqs, labels = [kp, rec], ["input", "program"]
    write_video(draw_frames(seqs, program.skeleton, labels=labels), args.out, fps=program.fps * args.rate)
    print(f"wrote {args.out} ({rec.shape[0]} frames at {args.rate}x)")
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
    from genlab.systems.motion.acceptance import fit_scores, interpolation_errors, prediction_errors
    from genlab.systems.motion.synthetic import SynthConfig, synthetic_set

    seqs = synthetic_set(args.n, seed=args.seed)
    fs = fit_scores(seqs)
    print(f"fit on {args.n} sequences: " + ", ".join(f"{k} {v:.3f}" for k, v in fs.items()))
    long = synthetic_set(args.n, seed=args.seed + 1, cfg=SynthConfig(count=(5, 8)))
    for g in (10, 20):
        r = interpolation_errors(long, g)
        print(f"interpolation gap {g}: program {r['program']:.4f} vs cubic spline {r['spline']:.4f} (body heights)")
    for h in (15, 30):
        r = prediction_errors(long, h)
        print(f"prediction horizon {h}: program {r['program']:.4f} vs constant velocity {r['constant_velocity']:.4f}")
    return 0
