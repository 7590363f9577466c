"""`genlab video curate INPUT... --out DIR`. Keep imports inside the command functions."""

from __future__ import annotations

import argparse

PRESETS = ("default", "tiny")


def _bound(text: str) -> tuple[str, float]:
    field, sep, value = text.partition("=")
    if not sep or not field:
        raise argparse.ArgumentTypeError(f"expected FIELD=VALUE (e.g. motion_score=0.5), got {text!r}")
    try:
        return field, float(value)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{text!r}: value {value!r} is not a number") from err


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "curate", help="Curate videos into clips with scores (SVD data curation: cuts, motion, text, CLIP).",
        description="Split videos at cuts into clips, score them, filter by thresholds; resumable.",
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="video files or folders (searched recursively)")
    p.add_argument("--out", required=True, help="output folder (clips/, clips.parquet, report.md, histograms/)")
    p.add_argument("--preset", choices=PRESETS, default="default")
    p.add_argument("--workers", type=int, default=None,
                   help="process pool size (default 1: in-process); with --ray the local Ray's CPUs (default: all)")
    p.add_argument("--ray", action="store_true",
                   help="run the videos as a Ray Data map on a local Ray (every core, or --workers N)")
    p.add_argument("--ray-address", default=None, metavar="ADDRESS",
                   help="join this Ray cluster (e.g. ray://head:10001, or auto) instead of a local Ray")
    p.add_argument("--ray-gpus", type=float, default=0.0, metavar="G",
                   help="GPUs per Ray actor of the model stages (CLIP, aesthetic, caption)")
    p.add_argument("--min", dest="mins", type=_bound, action="append", default=[], metavar="FIELD=V",
                   help="keep clips with FIELD >= V (absolute); replaces the preset's filters")
    p.add_argument("--max", dest="maxs", type=_bound, action="append", default=[], metavar="FIELD=V")
    p.add_argument("--min-pct", dest="min_pcts", type=_bound, action="append", default=[], metavar="FIELD=P",
                   help="keep clips with FIELD >= its P-th percentile over the run")
    p.add_argument("--max-pct", dest="max_pcts", type=_bound, action="append", default=[], metavar="FIELD=P")
    p.add_argument("--no-filters", action="store_true", help="keep every clip (scores only)")
    p.add_argument("--no-text", action="store_true", help="skip the OCR text-ratio stage")
    p.add_argument("--no-clips", action="store_true", help="do not write clip files (table only)")
    p.add_argument("--min-clip-s", type=float, default=None, help="shortest scene that becomes a clip")
    p.add_argument("--clip-model", default=None, help="local CLIPModel folder: clip embeddings (+ aesthetic, clip score)")
    p.add_argument("--aesthetic-head", default=None, help="safetensors linear/MLP head on CLIP embeddings")
    p.add_argument("--caption-model", default=None, help="local image-to-text model folder (BLIP-style)")
    p.add_argument("--captioner", dest="captioners", action="append", default=[], metavar="NAME=PATH",
                   help="one more caption column, caption_NAME: a local image-to-text folder (middle frame) or a "
                        ".py file defining caption(frames) (e.g. a video captioner); repeatable")
    p.add_argument("--summariser", default=None, metavar="PATH",
                   help="merge each clip's captions into `summary`: a local causal-LM folder or a .py file "
                        "defining summarise(captions)")
    p.add_argument("--max-clip-s", type=float, default=None,
                   help="split shots longer than this (seconds) at their frames of least change")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run_curate)


def build_config(args: argparse.Namespace):
    from dataclasses import replace

    from genlab.errors import GenlabError
    from genlab.systems.video.curation import config as presets
    from genlab.systems.video.curation.captioning import check_path

    cfg = {"default": presets.default, "tiny": presets.tiny}[args.preset]()
    bounds: dict[str, dict] = {}
    for key, items in (("min", args.mins), ("max", args.maxs), ("min_pct", args.min_pcts), ("max_pct", args.max_pcts)):
        for field, value in items:
            if key.endswith("pct") and not 0 <= value <= 100:
                raise GenlabError(f"--{key.replace('_', '-')} {field}: percentile must be in [0, 100], got {value}")
            bounds.setdefault(field, {})[key] = value
    if args.no_filters:
        cfg = replace(cfg, filters=())
    elif bounds:
        cfg = replace(cfg, filters=tuple(presets.Threshold(f, **b) for f, b in bounds.items()))
    if args.workers is not None and args.workers < 1:
        raise GenlabError(f"--workers: expected >= 1, got {args.workers}")
    cfg = replace(cfg, workers=args.workers or 1)
    if args.no_text:
        cfg = replace(cfg, text=replace(cfg.text, enabled=False),
                      filters=tuple(f for f in cfg.filters if f.field not in ("text_ratio", "text_ratio_max")))
    clips = cfg.clips
    if args.no_clips:
        clips = replace(clips, write_clips=False)
    if args.min_clip_s is not None:
        clips = replace(clips, min_clip_s=args.min_clip_s)
    if args.max_clip_s is not None:
        if args.max_clip_s <= clips.min_clip_s:
            raise GenlabError(f"--max-clip-s: expected more than the shortest clip ({clips.min_clip_s} s), got {args.max_clip_s}")
        clips = replace(clips, max_clip_s=args.max_clip_s)
    cfg = replace(cfg, clips=clips, embeddings=replace(
        cfg.embeddings, clip_path=args.clip_model, aesthetic_path=args.aesthetic_head,
        caption_path=args.caption_model, captioners=_captioners(args.captioners), summariser_path=args.summariser))
    if args.summariser:
        check_path(args.summariser, "--summariser")
        if not (args.caption_model or args.captioners):
            raise GenlabError("--summariser needs captions to merge: give --caption-model or --captioner")
    if args.ray_gpus < 0:
        raise GenlabError(f"--ray-gpus: expected >= 0, got {args.ray_gpus}")
    if args.aesthetic_head and not args.clip_model:
        raise GenlabError("--aesthetic-head needs --clip-model (it scores CLIP image embeddings)")
    return cfg


def _captioners(items: list[str]) -> tuple:
    """`NAME=PATH` items -> Captioner configs (names: letters, digits, _; unique; paths exist)."""
    import re

    from genlab.errors import GenlabError
    from genlab.systems.video.curation.captioning import check_path
    from genlab.systems.video.curation.config import Captioner

    out = []
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not re.fullmatch(r"[a-z0-9_]+", name) or not path:
            raise GenlabError(f"--captioner: expected NAME=PATH with NAME of a-z, 0-9, _ (e.g. video=cap.py), got {item!r}")
        if name in {c.name for c in out}:
            raise GenlabError(f"--captioner {name}: given twice")
        check_path(path, f"--captioner {name}")
        out.append(Captioner(name, path))
    return tuple(out)


def run_curate(args: argparse.Namespace) -> int:
    from genlab.systems.video.curation.pipeline import run

    cfg = build_config(args)
    report = run(args.inputs, cfg, args.out, use_ray=args.ray, progress=not args.quiet,
                 ray_address=args.ray_address, ray_workers=args.workers, ray_gpus=args.ray_gpus)
    failed = len(report["videos_failed"])
    print(f"videos {report['videos']} (processed {report['processed']}, resumed {report['resumed']}, "
          f"failed {failed}); clips {report['clips']}, kept {report['clips_kept']} "
          f"({report['seconds_kept']:.1f} of {report['seconds_in_clips']:.1f} s); "
          f"table {args.out}/clips.parquet, report {args.out}/report.md"
          + (f"; Ray: {report['ray_cpus']:g} CPUs" if "ray_cpus" in report else ""))
    return 0
