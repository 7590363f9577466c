"""`genlab video ...` sub-commands. Keep imports inside the command functions.

The curation pipeline registers `genlab video curate` from `curation/cli.py`.
  genlab video demo [--fast] [--out DIR]          sprites moving at the motion-bucket speed (CPU)
  genlab video train --stage image|video|finetune|... --out DIR [--init RUN/STAGE] [--data CURATION_OUT] [--steps N]
  genlab video train --pretrained PATH --data CURATION_OUT --stage finetune --out DIR [--lora RANK]  (fine-tune an SVD)
  genlab video sample --pretrained PATH --image PNG --out MP4 [--frames T] [--fps F] [--motion-bucket B] [--gif] ...
  genlab video sample --weights RUN/finetune --image PNG --out MP4     (a toy model from `video train`)
  genlab video sample --pretrained PATH [--weights RUN/STAGE] [--lora RUN/STAGE/lora.safetensors[:SCALE]] ...
  genlab video convert --pretrained PATH --to genlab|diffusers|single_file --out DST
"""

from __future__ import annotations

import argparse

from genlab.systems.video.curation import cli as curation_cli


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("video", help="Latent video diffusion (Stable Video Diffusion) and curation.")
    sub = parser.add_subparsers(dest="command", metavar="<command>", required=True)
    curation_cli.register(sub)

    demo = sub.add_parser("demo", help="train SVD's three stages in miniature on moving sprites and measure motion")
    demo.add_argument("--fast", action="store_true", help="the one-minute version (fast test tier)")
    demo.add_argument("--out", default="outputs/video_demo", help="output folder (GIF, metrics.json, checkpoints)")
    _add_run_options(demo)
    demo.set_defaults(func=_demo)

    train = sub.add_parser("train", help="train one stage of the toy video model (resumable, DDP under torchrun)")
    train.add_argument("--stage", required=True, help="image | video | video_hr | i2v | finetune | t2v_finetune | interp")
    train.add_argument("--out", required=True, help="run folder; the stage writes OUT/STAGE/, resuming a checkpoint there")
    train.add_argument("--init", default=None,
                       help="weights to start from: a stage folder of an earlier run (its ema.safetensors) or a .safetensors file")
    train.add_argument("--pretrained", default=None, metavar="PATH",
                       help="fine-tune a pretrained SVD (diffusers folder, official single file or genlab folder) on "
                            "--data; its VAE and CLIP image encoder stay frozen and encode the clips")
    train.add_argument("--preset", choices=["svd", "svd_xt"], default=None,
                       help="--pretrained single file: its architecture (default: from its name)")
    train.add_argument("--data", default=None, metavar="CURATION_OUT",
                       help="train on the kept clips of a `genlab video curate --out` folder instead of sprites")
    train.add_argument("--toy", default="full", choices=["full", "fast"],
                       help="model size and latent space: full = the demo's f4 AE and UNet, fast = pixels and a smaller "
                            "UNet; without --data also the sprites (32x32 / 8x8)")
    train.add_argument("--steps", type=int, default=300)
    train.add_argument("--frames", type=int, default=None, help="frames per clip (default: the toy's)")
    train.add_argument("--size", type=int, default=None, help="frame side in pixels (default: the toy's)")
    train.add_argument("--batch-size", type=int, default=8, help="per process")
    train.add_argument("--lr", type=float, default=1e-3)
    train.add_argument("--ema-decay", type=float, default=0.9999,
                       help="the stage's result is this EMA of the weights (0: the raw weights)")
    train.add_argument("--gradient-checkpointing", action=argparse.BooleanOptionalAction, default=True,
                       help="recompute UNet blocks in the backward pass: less activation memory, each block run twice")
    train.add_argument("--motion-half", type=float, default=10.0,
                       help="--data: the motion_score that maps to motion bucket 127.5 (255 m / (m + this))")
    train.add_argument("--checkpoint-every", type=int, default=100, help="steps between checkpoints (0: only at the end)")
    train.add_argument("--lora", type=int, default=0, help="rank > 0: train LoRA adapters on the temporal attention only")
    train.add_argument("--parallel", choices=["ddp", "fsdp"], default="ddp",
                       help="under torchrun: DDP (replicated weights) or FSDP2 (weights, gradients and optimizer "
                            "state sharded over the ranks)")
    _add_run_options(train)
    train.set_defaults(func=_train)

    sample = sub.add_parser("sample", help="image-to-video: a pretrained SVD / SVD-XT (--pretrained) or a toy model (--weights)")
    sample.add_argument("--pretrained", help="diffusers SVD folder, the official svd(_xt).safetensors, or a genlab "
                                             "folder from `video convert`")
    sample.add_argument("--weights", help="a stage folder from `genlab video train` (RUN/STAGE, its ema.safetensors): "
                                          "a toy alone, or with --pretrained the fine-tuned model of that base")
    sample.add_argument("--lora", action="append", default=[], metavar="FILE[:SCALE]",
                        help="a lora.safetensors from `video train --lora`, merged into the model at SCALE (default "
                             "1); repeat to stack several")
    sample.add_argument("--image", required=True, help="conditioning image (PNG/JPEG/...; alpha over white, grey expanded)")
    sample.add_argument("--out", required=True, help="output .mp4 (H.264)")
    sample.add_argument("--gif", action="store_true", help="also write a GIF beside the MP4")
    sample.add_argument("--frames", type=int, default=None, help="frames (default: the model's trained length)")
    sample.add_argument("--fps", type=float, default=7.0, help="frame rate of the MP4; SVD is conditioned on fps - 1")
    sample.add_argument("--motion-bucket", type=float, default=127.0, help="0..255, higher = more motion")
    sample.add_argument("--noise-aug", type=float, default=0.02, help="noise added to the conditioning image")
    sample.add_argument("--steps", type=int, default=None, help="Euler steps (default: 25 SVD, 30 SVD-XT, 12 toy)")
    sample.add_argument("--min-guidance", type=float, default=None, help="guidance at the first frame")
    sample.add_argument("--max-guidance", type=float, default=None, help="guidance at the last frame")
    sample.add_argument("--decode-chunk", type=int, default=None, help="frames decoded at once (less memory; default all)")
    sample.add_argument("--size", default=None, help="HxW of the video, multiples of 64 (default: the trained 576x1024)")
    sample.add_argument("--preset", choices=["svd", "svd_xt"], default=None,
                        help="architecture of a single file (default: from its name)")
    sample.add_argument("--dtype", choices=["float32", "float16", "bfloat16"], default="float32")
    sample.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    sample.add_argument("--seed", type=int, default=0, help="seeds torch.Generator('cpu'), as diffusers on CPU")
    sample.add_argument("--crf", type=int, default=12, help="H.264 quality, 0..51 (lower = larger and closer)")
    sample.add_argument("--quiet", action="store_true", help="no progress bar")
    sample.set_defaults(func=_sample)

    conv = sub.add_parser("convert", help="convert a pretrained SVD between diffusers, the official single file "
                                          "and genlab's folder")
    conv.add_argument("--pretrained", required=True, help="diffusers folder, single .safetensors file or genlab folder")
    conv.add_argument("--to", required=True, choices=["genlab", "diffusers", "single_file"])
    conv.add_argument("--out", required=True, help="new folder (genlab, diffusers) or .safetensors file (single_file)")
    conv.add_argument("--preset", choices=["svd", "svd_xt"], default=None,
                      help="architecture of a single-file input (default: from its name)")
    conv.add_argument("--quiet", action="store_true", help="no progress bar")
    conv.set_defaults(func=_convert)


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"],
                        help="bf16 autocast (CPU or CUDA), fp16 autocast + grad scaling (CUDA only)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def _check_run_options(args: argparse.Namespace) -> None:
    from genlab.errors import GenlabError

    if args.precision == "fp16" and not args.device.startswith("cuda"):
        raise GenlabError(f"--precision fp16 needs --device cuda (got --device {args.device}); use bf16 or fp32 on CPU")


def _demo(args: argparse.Namespace) -> int:
    import json

    from genlab.systems.video import demo

    _check_run_options(args)

    cfg = demo.fast() if args.fast else demo.full()
    result = demo.run(cfg, out_dir=args.out, progress=not args.quiet, device=args.device, precision=args.precision)
    print(json.dumps(result.to_dict(), indent=1))
    print(f"wrote {args.out}/samples.gif and {args.out}/metrics.json")
    return 0


def _toy_ae(toy: str = "full", progress: bool = True):
    from genlab.systems.video import demo

    cfg = demo.fast() if toy == "fast" else demo.full()
    clips = demo.training_clips(cfg)
    return demo.toy_autoencoder(cfg, clips, progress=progress), clips, cfg


def _train(args: argparse.Namespace) -> int:
    import torch

    from genlab.errors import GenlabError
    from genlab.systems.video import demo
    from genlab.systems.video.config import stage
    from genlab.systems.video.model import SVDModel
    from genlab.systems.video.train import encode_clips, load_video_model

    _check_run_options(args)
    if args.pretrained:
        return _train_pretrained(args)
    init = load_video_model(args.init) if args.init else None  # the user's file first, before any work
    toy = demo.fast() if args.toy == "fast" else demo.full()
    st = stage(args.stage, steps=args.steps, frames=args.frames or toy.sprite.frames,
               size=args.size or toy.sprite.size, batch_size=args.batch_size, lr=args.lr, ema_decay=args.ema_decay)
    if args.data:  # the table is checked before any work: no kept clip is a clear error
        from genlab.systems.video.curated import STAGE_SELECTION, CuratedClipsConfig, curated_data, kept_rows

        kept_rows(args.data)
        curated = CuratedClipsConfig(frames=st.frames, size=st.size, motion_half=args.motion_half,
                                     selection=STAGE_SELECTION[st.name])
    torch.manual_seed(st.seed)
    model = init if init is not None else SVDModel(toy.model)
    if model.config.latent_channels != toy.model.latent_channels:
        raise GenlabError(f"--init {args.init}: a model with {model.config.latent_channels} latent channels, "
                          f"the --toy {args.toy} latent space has {toy.model.latent_channels}")
    st = _with_lora(model, st, args.lora)
    info, device = _start_ranks(args.device)
    ae, clips, _ = _toy_ae(args.toy, progress=not args.quiet and info.is_main)
    heldout = None
    if args.data:
        data, heldout = curated_data(args.data, curated, ae, progress=not args.quiet and info.is_main)
    else:
        data = encode_clips(clips.video, clips.bucket, ae, st.size, toy.sprite.fps_id)
    _fit(args, model, ae, data, heldout, st, info, device)
    return 0


def _with_lora(model, st, rank: int):
    """--lora RANK > 0: adapters on the temporal attention, the stage trains only them."""
    from dataclasses import replace

    if not rank:
        return st
    from genlab.systems.video.lora import add_temporal_lora

    add_temporal_lora(model.unet, rank=rank)
    return replace(st, train="lora")


def _start_ranks(device_arg: str):
    """(DistInfo, this rank's device): torchrun's process group if any, one GPU per rank."""
    import torch

    from genlab.core.train import init_distributed

    info = init_distributed(device_arg)
    device = f"cuda:{info.local_rank}" if device_arg == "cuda" else device_arg
    if device.startswith("cuda"):
        torch.cuda.set_device(device)
    return info, device


def _fit(args: argparse.Namespace, model, ae, data, heldout, st, info, device) -> list[float]:
    """Train the stage (resuming OUT/STAGE/checkpoints), close the process group, print the result."""
    from pathlib import Path

    from genlab.core.train import latest_checkpoint, shutdown_distributed
    from genlab.systems.video.train import heldout_loss, train_stage

    last = latest_checkpoint(Path(args.out) / st.name / "checkpoints")
    if last is not None and info.is_main:
        print(f"resuming stage {st.name} from {last}")
    losses = train_stage(model, ae, data, st, out_dir=args.out, checkpoint_every=args.checkpoint_every,
                         progress=not args.quiet, device=device, precision=args.precision,
                         gradient_checkpointing=args.gradient_checkpointing, parallel=args.parallel)
    shutdown_distributed()  # not on error: its barrier would hang this rank instead of letting torchrun stop all
    if info.is_main:
        print(f"stage {st.name}: {len(losses)} steps on {len(data.latents)} training windows, last loss {losses[-1]:.4f}; "
              f"weights in {args.out}/{st.name}/")
        if heldout is not None:
            print(f"held-out loss ({len(heldout.latents)} windows, fixed noise): "
                  f"{heldout_loss(model, ae, heldout, st):.4f}")
    return losses


def _train_pretrained(args: argparse.Namespace) -> int:
    """`video train --pretrained PATH --data CURATION_OUT`: fine-tune an SVD (all weights, or --lora adapters);
    its VAE encodes the clips and the conditioning frames, its CLIP tower the image tokens (both frozen)."""
    from pathlib import Path

    from genlab.errors import GenlabError
    from genlab.systems.video import pretrained
    from genlab.systems.video.config import stage
    from genlab.systems.video.curated import STAGE_SELECTION, CuratedClipsConfig, curated_data, kept_rows
    from genlab.systems.video.train import video_weights_file

    if not args.data:
        raise GenlabError("--pretrained: give --data CURATION_OUT (a `genlab video curate --out` folder to fine-tune on)")
    fmt = pretrained.detect_format(args.pretrained)  # the user's files first, before any work
    preset = {"svd": pretrained.svd, "svd_xt": pretrained.svd_xt}[args.preset]() if args.preset else None
    if fmt == "single_file":
        pretrained.check_single_file(Path(args.pretrained), preset or pretrained.preset_for_file(Path(args.pretrained)))
    if args.init:
        video_weights_file(args.init)
    kept_rows(args.data)
    c = pretrained.load(args.pretrained, config=preset)
    if args.init:  # e.g. the video stage's result, fine-tuned further
        _use_finetuned(c, args.init)
    size = args.size or min(c.config.resolution)
    f = c.ae.downsample_factor * c.model.unet.config.downsample_factor
    if size % f:
        raise GenlabError(f"--size {size}: must be a multiple of {f} for this model (VAE x UNet downsampling)")
    st = stage(args.stage, steps=args.steps, frames=args.frames or c.config.trained_frames, size=size,
               batch_size=args.batch_size, lr=args.lr, ema_decay=args.ema_decay)
    curated = CuratedClipsConfig(frames=st.frames, size=st.size, motion_half=args.motion_half,
                                 selection=STAGE_SELECTION[st.name])
    st = _with_lora(c.model, st, args.lora)
    info, device = _start_ranks(args.device)
    c.ae.to(device), c.clip.to(device)
    data, heldout = curated_data(args.data, curated, c.ae, progress=not args.quiet and info.is_main,
                                 image_encoder=c.clip)
    _fit(args, c.model, c.ae, data, heldout, st, info, device)
    if info.is_main:
        use = f"--lora {args.out}/{st.name}/lora.safetensors" if args.lora else f"--weights {args.out}/{st.name}"
        print(f"sample it: genlab video sample --pretrained {args.pretrained} {use} --image PNG --out MP4")
    return 0


def _parse_size(text: str | None) -> tuple[int, int] | None:
    from genlab.errors import GenlabError

    if text is None:
        return None
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise GenlabError(f"--size must be HxW (e.g. 576x1024), got {text!r}") from None
    if h <= 0 or w <= 0:
        raise GenlabError(f"--size must be positive, got {text!r}")
    return h, w


def _check_sample_args(args: argparse.Namespace) -> None:
    from pathlib import Path

    from genlab.errors import GenlabError

    if Path(args.out).suffix.lower() != ".mp4":
        raise GenlabError(f"--out {args.out}: must end in .mp4 (add --gif for a GIF beside it)")
    for name in ("frames", "steps", "decode_chunk"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise GenlabError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    if args.fps <= 1:
        raise GenlabError(f"--fps must be > 1 (SVD is conditioned on fps - 1), got {args.fps}")
    if not 0 <= args.crf <= 51:
        raise GenlabError(f"--crf must be in 0..51, got {args.crf}")


def _write_outputs(args: argparse.Namespace, video, settings: dict) -> None:
    import json
    from pathlib import Path

    from genlab.systems.video.export import write_gif, write_mp4
    from genlab.systems.video.pipeline import to_uint8_frames

    frames = to_uint8_frames(video[0])
    write_mp4(args.out, frames, args.fps, crf=args.crf, comment=json.dumps(settings))
    print(f"wrote {args.out} ({frames.shape[0]} frames, {frames.shape[2]}x{frames.shape[1]}, {args.fps:g} fps)")
    if args.gif:
        gif = Path(args.out).with_suffix(".gif")
        write_gif(gif, frames, args.fps)
        print(f"wrote {gif}")


def _peak_memory(device) -> str:
    import torch

    from genlab.core.procs import peak_rss_bytes

    text = f"peak RSS {peak_rss_bytes() / 2**30:.2f} GiB"
    if torch.device(device).type == "cuda":
        text += f", peak GPU memory {torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB"
    return text


def _lora_files(specs: list[str]) -> list[tuple[str, float]]:
    """--lora FILE[:SCALE] -> (file, scale), each file checked as a LoRA file now (before any model loads)."""
    from pathlib import Path

    from genlab.errors import GenlabError
    from genlab.systems.video.lora import read_lora

    out = []
    for spec in specs:
        path, scale = spec, 1.0
        head, sep, tail = spec.rpartition(":")
        if sep and not Path(spec).exists():
            try:
                path, scale = head, float(tail)
            except ValueError:
                raise GenlabError(f"--lora {spec}: expected FILE or FILE:SCALE with a number SCALE") from None
        read_lora(path)
        out.append((path, scale))
    return out


def _apply_loras(model, loras: list[tuple[str, float]]) -> None:
    from genlab.systems.video.lora import apply_lora

    for path, scale in loras:
        apply_lora(model, path, scale)


def _sample(args: argparse.Namespace) -> int:
    from genlab.errors import GenlabError
    from genlab.systems.video import pipeline

    if not args.pretrained and not args.weights:
        raise GenlabError("video sample: give --pretrained PATH (an SVD) or --weights RUN/STAGE (a toy), or both")
    image = pipeline.load_image(args.image)  # the user's files first: a bad image fails in a second
    args.lora = _lora_files(args.lora)
    if args.weights:
        from genlab.systems.video.train import video_weights_file

        video_weights_file(args.weights)
    if not args.pretrained:
        _check_sample_args(args)
        return _sample_toy(args, image)
    import time
    import warnings
    from pathlib import Path

    import torch

    from genlab.errors import GenlabError
    from genlab.systems.video import pretrained

    fmt = pretrained.detect_format(args.pretrained)
    preset = {"svd": pretrained.svd, "svd_xt": pretrained.svd_xt}[args.preset]() if args.preset else None
    if fmt == "single_file":
        pretrained.check_single_file(Path(args.pretrained), preset or pretrained.preset_for_file(Path(args.pretrained)))
    _check_sample_args(args)
    size = _parse_size(args.size)
    dtype = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[args.dtype]
    try:
        device = torch.device(args.device)
    except RuntimeError:
        raise GenlabError(f"--device {args.device!r}: not a torch device (cpu, cuda, cuda:1, ...)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise GenlabError(f"--device {args.device}: CUDA is not available on this machine")
    t0 = time.perf_counter()
    c = pretrained.load(args.pretrained, config=preset, device=device, dtype=dtype)
    if args.weights:
        _use_finetuned(c, args.weights)
    _apply_loras(c.model, args.lora)
    load_s = time.perf_counter() - t0
    xt = c.config.trained_frames > 14
    defaults = pipeline.svd_xt_sampling() if xt else pipeline.svd_sampling()
    h, w = size or c.config.resolution
    f = c.ae.downsample_factor * c.model.unet.config.downsample_factor
    if h % f or w % f:
        raise GenlabError(f"--size {h}x{w}: height and width must be multiples of {f}")
    cfg = pipeline.SamplingConfig(
        num_frames=args.frames or c.config.trained_frames, steps=args.steps or defaults.steps,
        min_guidance=defaults.min_guidance if args.min_guidance is None else args.min_guidance,
        max_guidance=defaults.max_guidance if args.max_guidance is None else args.max_guidance,
        fps_id=args.fps - 1, motion_bucket_id=args.motion_bucket, cond_aug=args.noise_aug,
        decode_chunk=args.decode_chunk, preset_resolution=c.config.resolution)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = pipeline.image_to_video(c, image, cfg, size=(h, w), generator=torch.Generator("cpu").manual_seed(args.seed),
                                      progress=not args.quiet)
    for w_ in caught:
        print(f"warning: {w_.message}")
    settings = {"pretrained": str(args.pretrained), "image": str(args.image), "frames": cfg.num_frames,
                "fps": args.fps, "motion_bucket": args.motion_bucket, "noise_aug": args.noise_aug,
                "steps": cfg.steps, "min_guidance": cfg.min_guidance, "max_guidance": cfg.max_guidance,
                "size": [h, w], "seed": args.seed, "dtype": args.dtype, "weights": args.weights,
                "lora": [[str(p), sc] for p, sc in args.lora]}
    _write_outputs(args, out.video, settings)
    print(f"{c.config.name} ({c.source}) loaded in {load_s:.1f} s; {out.seconds['denoise'] / cfg.steps:.3f} s per "
          f"step ({cfg.steps} steps), decode {out.seconds['decode']:.2f} s; {_peak_memory(device)}")
    return 0


def _use_finetuned(c, weights: str) -> None:
    """Replace the base's SVDModel by the fine-tuned one of `video train --pretrained` (same architecture)."""
    from genlab.errors import GenlabError
    from genlab.systems.video.train import load_video_model

    model = load_video_model(weights)
    if model.config != c.model.config:
        raise GenlabError(f"--weights {weights}: a model of another architecture than the --pretrained base "
                          f"({model.config.unet.unet.block_out_channels} vs {c.model.config.unet.unet.block_out_channels} "
                          "channels, ...); give the base it was fine-tuned from")
    param = next(c.model.parameters())
    c.model = model.to(device=param.device, dtype=param.dtype).eval()


def _sample_toy(args: argparse.Namespace, image) -> int:
    import torch

    from genlab.systems.video.pipeline import SamplingConfig, pil_to_tensor, sample_i2v
    from genlab.systems.video.train import load_video_model

    model = load_video_model(args.weights)  # a stage folder of `video train` (its ema.safetensors) or a weights file
    _apply_loras(model, args.lora)
    toy = "fast" if model.config.latent_channels == 3 else "full"  # the latent space it was trained in
    ae, _, demo_cfg = _toy_ae(toy, progress=not args.quiet)
    size = demo_cfg.sprite.size
    x = pil_to_tensor(image.resize((size, size), resample=3))  # bicubic, as the toy was trained
    scfg = SamplingConfig(num_frames=args.frames or 8, steps=args.steps or 12,
                          min_guidance=1.0 if args.min_guidance is None else args.min_guidance,
                          max_guidance=2.0 if args.max_guidance is None else args.max_guidance, fps_id=args.fps - 1,
                          motion_bucket_id=args.motion_bucket, cond_aug=args.noise_aug,
                          decode_chunk=args.decode_chunk, sigma_max=80.0)
    out = sample_i2v(model, ae, x, scfg, generator=torch.Generator().manual_seed(args.seed), progress=not args.quiet)
    _write_outputs(args, out.video, {"weights": str(args.weights), "image": str(args.image), "seed": args.seed,
                                     "lora": [[str(p), sc] for p, sc in args.lora]})
    return 0


def _convert(args: argparse.Namespace) -> int:
    from pathlib import Path

    from genlab.errors import GenlabError
    from genlab.systems.video import pretrained

    out = Path(args.out)
    if out.exists():  # before reading gigabytes
        raise GenlabError(f"--out {out}: exists; give a new name")
    if args.to == "single_file" and out.suffix != ".safetensors":
        raise GenlabError(f"--out {out}: a single file must end in .safetensors")
    fmt = pretrained.detect_format(args.pretrained)
    preset = {"svd": pretrained.svd, "svd_xt": pretrained.svd_xt}[args.preset]() if args.preset else None
    if fmt == "single_file":
        pretrained.check_single_file(Path(args.pretrained), preset or pretrained.preset_for_file(Path(args.pretrained)))
    from tqdm import tqdm

    with tqdm(total=2, desc=f"convert {fmt} -> {args.to}", unit="stage", disable=args.quiet) as bar:
        c = pretrained.load(args.pretrained, config=preset)
        bar.update()
        pretrained.save(c, out, args.to)
        bar.update()
    print(f"converted {c.config.name} ({fmt}) {args.pretrained} -> {args.to} {out}")
    return 0
