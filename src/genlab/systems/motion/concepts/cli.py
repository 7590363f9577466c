"""`genlab motion concepts ...`. Keep imports inside the command functions."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("concepts", help="Programmatic motion concepts (Kulal et al. 2022).")
    sub = parser.add_subparsers(dest="concepts_command", metavar="<command>", required=True)

    p = sub.add_parser("make-data", help="write synthetic sequences (.npz: keypoints + spans or action list)")
    p.add_argument("--split", default="val", choices=["lists", "unlabelled", "val", "test"])
    p.add_argument("--n", type=int, default=5)
    p.add_argument("--lists-only", action="store_true", help="store the action list, not the spans")
    p.add_argument("--out", required=True)
    p.set_defaults(func=_make_data)

    p = sub.add_parser("fit", help="learn concepts from your examples and/or the built-in ones (+ list-only sequences)")
    p.add_argument("--examples", help="your concepts: a folder with a folder per label of example files (any "
                                      "keypoint format or video), or a .jsonl of {file, label, start, end, count}")
    p.add_argument("--builtin", default=None, metavar="NAMES",
                   help="built-in exercises to learn too: 'all' or comma-separated names (default: all "
                        "without --examples, none with it)")
    p.add_argument("--k", type=int, default=5, help="built-in examples per concept (synthetic pool)")
    p.add_argument("--lists", nargs="*", default=None,
                   help="weak supervision: .npz files with an action list, or one .jsonl of "
                        "{\"file\": ..., \"actions\": [...]} (default: --n-lists synthetic ones)")
    p.add_argument("--n-lists", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="model .json")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_fit)

    p = sub.add_parser("describe", help="action list, spans and counts of a sequence")
    p.add_argument("model")
    p.add_argument("sequence", help="keypoints (.npy/.npz, AlphaPose .json, OpenPose folder, .trc, .bvh) or a video")
    p.add_argument("--json", help="also write the description as JSON here")
    p.add_argument("--fps", type=float, default=30.0, help="frame rate when the file does not say")
    p.add_argument("--roi", help="video only: x,y,w,h region holding the one person to track")
    p.add_argument("--quiet", action="store_true", help="no progress bar (video input)")
    p.set_defaults(func=_describe)

    p = sub.add_parser("align", help="forced alignment of an ordered action list")
    p.add_argument("model")
    p.add_argument("sequence")
    p.add_argument("--actions", required=True, help="comma-separated concept names, in order")
    p.add_argument("--fps", type=float, default=30.0, help="frame rate when the file does not say")
    p.set_defaults(func=_align)

    p = sub.add_parser("synthesise", help="keypoints (and a stick-figure video) from a description")
    p.add_argument("model")
    p.add_argument("description", help="description .json or DSL text file")
    p.add_argument("--out", required=True, help="keypoints .npy (normalised: body height 1)")
    p.add_argument("--video", help="stick-figure .mp4 (H.264) or .gif")
    p.add_argument("--program", help="also write the motion program of the result (text) here")
    p.add_argument("--mirrored", action="store_true")
    p.add_argument("--temperature", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_synthesise)

    p = sub.add_parser("edit", help="synthesise a description, apply one edit, write keypoints, description, video")
    p.add_argument("model")
    p.add_argument("description", help="description .json or DSL text file")
    p.add_argument("op", choices=["insert", "delete", "replace", "recount", "retime"])
    p.add_argument("index", type=int, help="the action to edit (insert: the position)")
    p.add_argument("--concept", help="insert / replace: the concept")
    p.add_argument("--count", type=int, help="insert / recount: iterations")
    p.add_argument("--duration", type=int, help="retime (and insert, optional): frames")
    p.add_argument("--out", required=True, help="edited keypoints .npy (normalised: body height 1)")
    p.add_argument("--video", help="stick-figure .mp4 (H.264) or .gif of the edited motion")
    p.add_argument("--program", help="also write the motion program of the result (text) here")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_edit)

    p = sub.add_parser("demo", help="learn from 1 example per concept, describe, synthesise, edit, render")
    p.add_argument("--out", default="outputs/concepts_demo")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_demo)


def _make_data(args) -> int:
    from pathlib import Path

    from genlab.systems.motion.concepts import dataset

    seqs = dataset.sequences(args.split, args.n)
    for i, s in enumerate(seqs):
        path = Path(args.out) / f"{args.split}_{i:03d}.npz"
        if args.lists_only:
            dataset.save_sequence(path, s.keypoints, actions=s.description.concepts)
        else:
            dataset.save_sequence(path, s.keypoints, description=s.description)
    print(f"wrote {len(seqs)} sequences to {args.out}")
    return 0


def _fit(args) -> int:
    from genlab.errors import GenlabError
    from genlab.systems.motion.concepts import dataset
    from genlab.systems.motion.concepts.config import ConceptConfig
    from genlab.systems.motion.concepts.learn import learn

    if args.k < 1:
        raise GenlabError(f"--k must be >= 1, got {args.k}")
    builtin = args.builtin if args.builtin is not None else ("none" if args.examples else "all")
    names = dataset.NAMES if builtin == "all" else () if builtin == "none" else tuple(
        n.strip() for n in builtin.split(",") if n.strip())
    unknown = [n for n in names if n not in dataset.NAMES]
    if unknown:
        raise GenlabError(f"--builtin: unknown exercise(s) {unknown}; built-in: {', '.join(dataset.NAMES)}")
    examples = dataset.few_shot(args.k, seed=args.seed, names=names) if names else []
    if args.examples:
        from genlab.systems.motion.concepts.inputs import load_examples

        own, notes = load_examples(args.examples)
        clash = sorted({e.concept for e in own} & set(names))
        if clash:
            raise GenlabError(f"--examples: label(s) {clash} are also built-in; rename them or leave them out of --builtin")
        print("\n".join(notes))
        examples += own
    if not examples:
        raise GenlabError("nothing to learn: give --examples, or --builtin all / some names")
    if args.lists:
        seqs = list_sequences(args.lists)
    else:
        seqs = dataset.list_only(dataset.sequences("lists", args.n_lists, seed=args.seed)) if args.n_lists else []
    model, logs = learn(examples, ConceptConfig(), seqs, progress=not args.quiet)
    model.save(args.out)
    for log in logs:
        print(f"{log.stage}: objective {[round(v, 1) for v in log.objective]}")
    print(f"saved {args.out} ({len(model.concepts)} concepts)")
    return 0


def list_sequences(paths: list[str]):
    """`--lists`: .npz files holding an action list (or a description), or one .jsonl of
    {"file": keypoints of any supported kind, "actions": [names in order]}."""
    import json
    from pathlib import Path

    import numpy as np

    from genlab.errors import GenlabError
    from genlab.systems.motion.concepts import dataset
    from genlab.systems.motion.concepts.inputs import load_input
    from genlab.systems.motion.concepts.learn import ListSequence

    seqs = []
    for path in paths:
        if Path(path).suffix.lower() == ".jsonl":
            for n, line in enumerate(Path(path).read_text().splitlines(), start=1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                    f, acts = Path(rec["file"]), [str(a) for a in rec["actions"]]
                except (json.JSONDecodeError, KeyError, TypeError) as e:
                    raise GenlabError(f"{path} line {n}: expected {{\"file\": ..., \"actions\": [...]}}: {e}") from None
                kp = load_input(f if f.is_absolute() else Path(path).parent / f).keypoints
                if not np.isfinite(kp).all():
                    raise GenlabError(f"{f}: a list-supervised sequence must not have long missing runs")
                seqs.append(ListSequence(kp, tuple(acts)))
            continue
        kp, desc, acts = dataset.load_sequence(path)
        acts = acts if acts is not None else (desc.concepts if desc is not None else None)
        if acts is None:
            raise GenlabError(f"{path}: holds neither an action list nor a description")
        seqs.append(ListSequence(kp, tuple(acts)))
    return seqs


def _describe(args) -> int:
    from genlab.core.io import atomic_write_text
    from genlab.systems.motion.concepts.inputs import describe_input, load_input
    from genlab.systems.motion.concepts.model import ConceptModel

    model = ConceptModel.load(args.model)
    inp = load_input(args.sequence, fps=args.fps, roi=args.roi, progress=not args.quiet)
    desc = describe_input(model, inp, args.sequence)
    print(desc.to_dsl(), end="")
    if args.json:
        atomic_write_text(args.json, desc.to_json())
    return 0


def _align(args) -> int:
    from genlab.errors import GenlabError
    from genlab.systems.motion.concepts.inputs import load_input
    from genlab.systems.motion.concepts.model import ConceptModel

    model = ConceptModel.load(args.model)
    actions = [a.strip() for a in args.actions.split(",") if a.strip()]
    inp = load_input(args.sequence, fps=args.fps)
    if not inp.observed.all():
        raise GenlabError(f"{args.sequence}: {int((~inp.observed).sum())} frames are missing in runs too long to fill; "
                          f"align needs every frame (cut the input, or use describe)")
    print(model.align(inp.keypoints, actions, where=args.sequence).to_dsl(), end="")
    return 0


def _read_description(path: str):
    from pathlib import Path

    from genlab.errors import GenlabError
    from genlab.systems.motion.concepts.description import Description

    p = Path(path)
    if not p.is_file():
        raise GenlabError(f"{path}: no such file")
    text = p.read_text()
    if text.lstrip().startswith("{"):
        return Description.from_json(text, where=path)
    return Description.from_dsl(text, where=path)


def _synthesise(args) -> int:
    import numpy as np

    from genlab.core.io import atomic_path
    from genlab.systems.motion.concepts.model import ConceptModel
    from genlab.systems.motion.concepts.render import render_video
    from genlab.systems.motion.concepts.synth import synthesise

    model = ConceptModel.load(args.model)
    desc = _read_description(args.description)
    syn = synthesise(model, desc, mirrored=args.mirrored, temperature=args.temperature, seed=args.seed)
    with atomic_path(args.out) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, syn.keypoints)
    if args.video:
        render_video(syn.keypoints, args.video, labels=desc.frame_labels())
    _write_program(args.program, syn.keypoints)
    print(f"wrote {args.out} ({desc.n_frames} frames)")
    return 0


def _write_program(path: str | None, keypoints) -> None:
    """The motion program (`genlab motion` text form) of synthesised keypoints, when asked for."""
    if path:
        from genlab.core.io import atomic_write_text
        from genlab.systems.motion.pipeline import fit_program

        atomic_write_text(path, fit_program(keypoints).to_text())


def _edit(args) -> int:
    from pathlib import Path

    import numpy as np

    from genlab.core.io import atomic_path, atomic_write_text
    from genlab.systems.motion.concepts.model import ConceptModel
    from genlab.systems.motion.concepts.render import render_video
    from genlab.systems.motion.concepts.synth import edit, synthesise

    model = ConceptModel.load(args.model)
    desc = _read_description(args.description)
    syn = synthesise(model, desc, seed=args.seed)
    new, span = edit(model, syn, args.op, args.index, concept=args.concept, count=args.count,
                     duration=args.duration, seed=args.seed)
    with atomic_path(args.out) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, new.keypoints)
    atomic_write_text(Path(args.out).with_suffix(".description.txt"), new.description.to_dsl())
    if args.video:
        render_video(new.keypoints, args.video, labels=new.description.frame_labels())
    _write_program(args.program, new.keypoints)
    print(f"{args.op} {args.index}: frames {span[0]}..{span[1]} changed; wrote {args.out} "
          f"and {Path(args.out).with_suffix('.description.txt').name}")
    return 0


def _demo(args) -> int:
    from pathlib import Path

    from genlab.core.io import atomic_write_text
    from genlab.systems.motion.concepts import dataset, metrics
    from genlab.systems.motion.concepts.config import ConceptConfig
    from genlab.systems.motion.concepts.learn import learn
    from genlab.systems.motion.concepts.programs import concept_text, loop_from_text
    from genlab.systems.motion.concepts.render import render_video
    from genlab.systems.motion.concepts.synth import edit, synthesise

    out = Path(args.out)
    examples = dataset.few_shot(1)
    model, _ = learn(examples, ConceptConfig(), progress=not args.quiet)
    model.save(out / "model.json")
    seq = dataset.sequences("val", 1)[0]
    pred = model.describe(seq.keypoints)
    print("true:     ", seq.description.to_dsl().splitlines()[1:])
    print("described:", pred.to_dsl().splitlines()[1:])
    print(f"NormED {metrics.norm_edit_distance(pred.concepts, seq.description.concepts):.3f}")
    atomic_write_text(out / "description.txt", pred.to_dsl())
    c = model.concepts[0]
    atomic_write_text(out / f"concept_{c.name}.txt", concept_text(c.name, loop_from_text(c.program), c.count_probs))
    syn = synthesise(model, pred, mirrored=seq.mirrored)
    render_video(syn.keypoints, out / "synthesis.mp4", labels=pred.frame_labels())
    edited, span = edit(model, syn, "replace", 0, concept=model.names[-1] if pred.actions[0].concept !=
                        model.names[-1] else model.names[0])
    render_video(edited.keypoints, out / "edited.mp4", labels=edited.description.frame_labels())
    print(f"edited frames {span[0]}..{span[1]}; wrote {out}/model.json, description.txt, synthesis.mp4, edited.mp4")
    return 0
