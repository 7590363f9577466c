"""`genlab insertion ...` sub-commands. Keep imports inside the command functions."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

PRESETS = ("tiny", "toy")


def _preset(name: str, steps: int | None = None, pool: int | None = None):
    from dataclasses import replace

    from genlab.systems.insertion import config

    cfg = {"tiny": config.tiny, "toy": config.toy}[name]()
    if steps is not None:
        cfg = replace(cfg, train=replace(cfg.train, steps=steps))
    if pool is not None:
        cfg = replace(cfg, train=replace(cfg.train, pool=pool))
    return cfg


def _threads():
    import torch

    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))


def _readers(cfg, args, progress=True):
    from genlab.systems.insertion import metrics

    rc = metrics.ReaderConfig(size=cfg.size)
    if getattr(args, "reader_steps", None):
        from dataclasses import replace

        rc = replace(rc, steps=args.reader_steps)
    return metrics.load_or_train_readers(rc, progress=progress)


def _settings(cfg, args):
    from dataclasses import replace

    s = cfg.sample
    if getattr(args, "steps_sample", None):
        s = replace(s, steps=args.steps_sample)
    if getattr(args, "scale", None) is not None:
        s = replace(s, scale_scene=args.scale, scale_person=args.scale)
    if getattr(args, "scale_scene", None) is not None:
        s = replace(s, scale_scene=args.scale_scene)
    if getattr(args, "scale_person", None) is not None:
        s = replace(s, scale_person=args.scale_person)
    return s


def _save_grid(path: Path, rows: list, settings: dict, scale: int = 3) -> None:
    import numpy as np
    from PIL import Image

    from genlab.core.io import atomic_path
    from genlab.systems.insertion.insert import save_png

    img = np.concatenate([np.concatenate(list(r), 1) for r in rows], 0)
    im = Image.fromarray((np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8))
    im = im.resize((im.width * scale, im.height * scale), Image.NEAREST)
    with atomic_path(path) as tmp:
        save_png(tmp, np.asarray(im), settings)


def run_train(args: argparse.Namespace) -> int:
    from genlab.systems.insertion import train

    _threads()
    cfg = _preset(args.preset, args.steps, args.pool)
    pool = train.pairs_pool(args.pairs, cfg) if args.pairs else None  # checked before any training work
    _, _, history = train.train(cfg, out_dir=args.out, progress=not args.quiet, pool=pool, log_every=args.log_every)
    train.write_history(Path(args.out) / "history.json", history)
    print(f"saved {Path(args.out) / 'model.safetensors'}")
    return 0


def run_eval(args: argparse.Namespace) -> int:
    from genlab.core.io import atomic_write_text
    from genlab.systems.insertion import evaluate, train
    from genlab.systems.insertion.pipeline import InsertionPipeline

    _threads()
    model, ae, cfg = train.load_model(args.run)
    pipe = InsertionPipeline(model, ae, cfg.ref_size, config=cfg)
    report = evaluate.evaluate(pipe, cfg, _readers(cfg, args, progress=not args.quiet), n_pairs=args.pairs,
                               n_swap=args.swap, settings=_settings(cfg, args), progress=False)
    text = json.dumps(report, indent=1)
    if args.out:
        atomic_write_text(args.out, text + "\n")
    print(text)
    return 0


def run_sample(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from genlab.systems.insertion import evaluate, pairs, train
    from genlab.systems.insertion.pipeline import InsertionPipeline

    _threads()
    model, ae, cfg = train.load_model(args.run)
    pipe = InsertionPipeline(model, ae, cfg.ref_size, config=cfg)
    pcfg = train.pair_config(cfg)
    mode = "half" if args.mode == "partial" else ("swap" if args.swap else "same")
    held_out = pairs.eval_pairs(args.n, pcfg, seed=evaluate.EVAL_SEED + args.seed, mode=mode)
    batch = pairs.collate(held_out)
    ref = None if args.mode in ("person_hallucination", "unconditional") else batch["reference"]
    settings = _settings(cfg, args)
    out = pipe.sample(batch["scene"], batch["mask"], ref, mode=args.mode, settings=settings,
                      generator=torch.Generator().manual_seed(args.seed), progress=not args.quiet).images
    rows = []
    for p, img in zip(held_out, evaluate.to_numpy(out)):
        r = torch.nn.functional.interpolate(torch.from_numpy(p.reference).permute(2, 0, 1)[None],
                                            size=(cfg.size, cfg.size), mode="nearest")[0].permute(1, 2, 0).numpy()
        rows.append([p.scene, r, img, p.target])
    record = {"genlab": "insertion sample", "run": str(args.run), "mode": args.mode, "n": args.n, "seed": args.seed,
              "swap": args.swap, "steps": settings.steps, "scale_scene": settings.scale_scene,
              "scale_person": settings.scale_person, "composite": settings.composite,
              "columns": f"scene | reference | {args.mode} | original frame"}
    _save_grid(Path(args.out), rows, record)
    print(f"wrote {args.out}: columns scene | reference | {args.mode} | original frame ({len(held_out)} rows)")
    return int(not np.isfinite(out.numpy()).all())


def run_demo(args: argparse.Namespace) -> int:
    """Train the toy (or resume), evaluate against the paste baseline, write report + samples."""
    import time

    from genlab.core.io import atomic_write_text
    from genlab.systems.insertion import evaluate, train
    from genlab.systems.insertion.pipeline import InsertionPipeline

    _threads()
    out = Path(args.out)
    cfg = _preset(args.preset, args.steps)
    t0 = time.time()
    readers = _readers(cfg, args, progress=not args.quiet)
    model, ae, history = train.train(cfg, out_dir=out, progress=not args.quiet)
    t_train = time.time() - t0
    pipe = InsertionPipeline(model, ae, cfg.ref_size, config=cfg)
    report = evaluate.evaluate(pipe, cfg, readers, n_pairs=args.pairs, n_swap=args.swap, settings=_settings(cfg, args),
                               progress=not args.quiet)
    report["train_seconds"] = round(t_train, 1)
    report["train_steps"] = cfg.train.steps
    report["loss_curve"] = [[h["step"], round(h["loss"], 4)] for h in history]
    atomic_write_text(out / "report.json", json.dumps(report, indent=1) + "\n")
    ins, paste = report["insertion"]["affordance"], report["paste"]["affordance"]
    print(f"affordance: ours {ins:.3f} | paste {paste:.3f} | scene dropped "
          f"{report['scene_hallucination']['affordance']:.3f} | person hallucination "
          f"{report['person_hallucination']['affordance']:.3f} | ground truth {report['ground_truth']['affordance']:.3f}")
    print(f"PCKh@0.5 ours {report['insertion']['pckh@0.5']:.3f}, identity colour error "
          f"{report['insertion']['identity_error']:.3f} (paste {report['paste']['identity_error']:.3f})")
    print(f"report: {out / 'report.json'}")
    return 0


def run_pairs(args: argparse.Namespace) -> int:
    from genlab.systems.insertion import pairs

    if args.video:
        from genlab.systems.insertion import real

        summary = real.write_real_pairs(args.video, args.out, size=args.size, seed=args.seed,
                                        max_frames=args.max_frames, stride=args.stride, progress=not args.quiet)
        print(json.dumps(summary, indent=1))
        return 0
    cfg = pairs.PairConfig(size=args.size, ref_size=args.size // 2)
    m = pairs.write_shards(args.out, seed=args.seed, n_pairs=args.n, shard_size=args.shard_size, cfg=cfg,
                           mode=args.mode, progress=not args.quiet)
    print(f"{len(m['shards'])} shards in {args.out}")
    return 0


def run_insert(args: argparse.Namespace) -> int:
    from genlab.errors import GenlabError
    from genlab.systems.insertion import insert
    from genlab.systems.insertion.convert import load_pipeline

    _threads()
    if args.size is not None and args.size < 8:
        raise GenlabError(f"--size {args.size}: expected >= 8")
    scales = insert.parse_guidance(args.guidance) if args.guidance is not None else (None, None)
    settings = insert.InsertSettings(mode=args.mode, steps=args.steps, scale_scene=scales[0], scale_person=scales[1],
                                     seed=args.seed, num=args.num, size=args.size, composite=args.composite)
    inputs = insert.read_inputs(args.scene, args.person, args.box, args.mask, args.mode)  # before the weights
    pipe = load_pipeline(args.weights)
    result = insert.insert(pipe, inputs, settings, weights=str(args.weights), progress=not args.quiet)
    written = insert.write_outputs(result, args.out)
    print(f"wrote {written[0]} (scene | reference | {len(result.photos)} result(s)) and "
          f"{', '.join(str(p) for p in written[1:])}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("insertion", help="Affordance-aware human insertion (Putting People in Their Place, Kulal et al. 2023).")
    sub = parser.add_subparsers(dest="command", metavar="<command>", required=True)

    def sampling(p):
        p.add_argument("--steps-sample", type=int, default=None, help="DDIM steps (preset default)")
        p.add_argument("--scale", type=float, default=None, help="the paper's single guidance scale")
        p.add_argument("--scale-scene", type=float, default=None)
        p.add_argument("--scale-person", type=float, default=None)
        p.add_argument("--reader-steps", type=int, default=None,
                       help="training steps of the keypoint reader (cached per config; default 1200)")

    def quiet(p):
        p.add_argument("--quiet", action="store_true", help="no progress bars")

    p = sub.add_parser("insert", help="put the person of one photo into another photo (your own files)")
    p.add_argument("--scene", required=True, help="the scene photo (JPEG/PNG; EXIF rotation applied)")
    p.add_argument("--person", default=None, help="a photo of the person to insert (cut out with MediaPipe)")
    p.add_argument("--box", default=None, help="x0,y0,x1,y1 in the scene photo's pixels: where the person goes")
    p.add_argument("--mask", default=None, help="a mask PNG the size of the scene (white = where the person goes)")
    p.add_argument("--mode", choices=("insert", "person-hallucination", "scene-hallucination"), default="insert")
    p.add_argument("--weights", required=True,
                   help="the official checkpoint (.ckpt/.safetensors), a diffusers-style folder (unet/, vae/, "
                        "image_encoder/, projection.safetensors) or a genlab run folder")
    p.add_argument("--steps", type=int, default=None, help="DDIM steps (the weights' default: 200 for real weights)")
    p.add_argument("--guidance", default=None, help="S (the paper's single scale) or S,P (scene, person)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--num", type=int, default=1, help="results drawn (different noise)")
    p.add_argument("--size", type=int, default=None, help="model image side (default: the weights' own, 256 for real)")
    p.add_argument("--composite", action="store_true",
                   help="keep the photo's pixels outside the mask (the official sampler does not)")
    p.add_argument("--out", default="insertion.png", help="overview PNG; each result also goes to OUT-K.png")
    quiet(p)
    p.set_defaults(func=run_insert)

    p = sub.add_parser("demo", help="train the toy, evaluate vs the paste baseline (slow tier: the full run)")
    p.add_argument("--out", default="runs/insertion_demo")
    p.add_argument("--preset", choices=PRESETS, default="toy")
    p.add_argument("--steps", type=int, default=None, help="training steps (preset default)")
    p.add_argument("--pairs", type=int, default=200, help="held-out pairs (fixed by seed)")
    p.add_argument("--swap", type=int, default=0, help="cross-clip swap pairs for FID")
    sampling(p)
    quiet(p)
    p.set_defaults(func=run_demo)

    p = sub.add_parser("train", help="train on toy pairs, or on pair folders (resumes from --out)")
    p.add_argument("--out", required=True)
    p.add_argument("--preset", choices=PRESETS, default="toy")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--pool", type=int, default=None, help="toy training pairs rendered once (preset default)")
    p.add_argument("--pairs", action="append", default=None, metavar="DIR",
                   help="train on the pairs in DIR (written by `insertion pairs`, toy or --video); repeat to mix")
    p.add_argument("--log-every", type=int, default=10, help="steps per loss record in OUT/history.json")
    quiet(p)
    p.set_defaults(func=run_train)

    p = sub.add_parser("sample", help="sample held-out toy pairs into a PNG grid")
    p.add_argument("--run", required=True, help="folder written by train/demo")
    p.add_argument("--out", required=True, help="PNG file")
    p.add_argument("--mode", default="insertion", choices=("insertion", "person_hallucination",
                                                             "scene_hallucination", "partial", "unconditional"))
    p.add_argument("--n", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--swap", action="store_true", help="references from other clips")
    sampling(p)
    quiet(p)
    p.set_defaults(func=run_sample)

    p = sub.add_parser("eval", help="JSON report: affordance, PCKh@0.5, identity colour, FID; vs paste")
    p.add_argument("--run", required=True)
    p.add_argument("--pairs", type=int, default=200)
    p.add_argument("--swap", type=int, default=0)
    p.add_argument("--out", default=None, help="also write the JSON here")
    sampling(p)
    quiet(p)
    p.set_defaults(func=run_eval)

    p = sub.add_parser("pairs", help="write seeded, resumable pair shards (toy, or real from a video)")
    p.add_argument("--out", required=True)
    p.add_argument("--n", type=int, default=1024)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--shard-size", type=int, default=256)
    p.add_argument("--mode", choices=("same", "swap", "half"), default="same")
    p.add_argument("--video", default=None, help="build real pairs from this video with MediaPipe")
    p.add_argument("--max-frames", type=int, default=None)
    p.add_argument("--stride", type=int, default=1, help="--video: use every STRIDE-th frame")
    quiet(p)
    p.set_defaults(func=run_pairs)
