"""`genlab video ...` sub-commands. Keep imports inside the command functions.

The curation pipeline registers `genlab video curate` from `curation/cli.py`.
  genlab video demo [--fast] [--out DIR]          sprites moving at the motion-bucket speed (CPU)
  genlab video train --stage image|video|finetune|... --out DIR [--init W] [--steps N] [--device D] [--precision P]
  genlab video sample --weights DIR/STAGE --image PNG --out GIF [--frames T] [--steps N] [--motion-bucket B]
  genlab video convert --unet PATH --out DIR      sgm single file or diffusers folder -> our safetensors
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
    _add_run_options(train)
    train.set_defaults(func=_train)

    sample = sub.add_parser("sample", help="image-to-video with a trained toy model")
    sample.add_argument("--weights", required=True, help="folder with model.safetensors and config.json")
    sample.add_argument("--image", required=True, help="conditioning image (PNG/JPEG)")
    sample.add_argument("--out", required=True, help="output GIF")
    sample.add_argument("--frames", type=int, default=8)
    sample.add_argument("--steps", type=int, default=12)
    sample.add_argument("--motion-bucket", type=float, default=127.0)
    sample.add_argument("--fps-id", type=float, default=6.0)
    sample.add_argument("--min-guidance", type=float, default=1.0)
    sample.add_argument("--max-guidance", type=float, default=2.0)
    sample.add_argument("--decode-chunk", type=int, default=None)
    sample.add_argument("--seed", type=int, default=0)
    sample.set_defaults(func=_sample)

    conv = sub.add_parser("convert", help="load SVD UNet weights (sgm .safetensors or diffusers folder) and save ours")
    conv.add_argument("--unet", required=True, help="local sgm checkpoint file or diffusers folder")
    conv.add_argument("--preset", default="svd", choices=["svd", "svd_xt"])
    conv.add_argument("--out", required=True, help="output folder (model.safetensors + config.json)")
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
    from dataclasses import replace
    from pathlib import Path

    import torch

    from genlab.core.train import init_distributed, latest_checkpoint, shutdown_distributed
    from genlab.errors import GenlabError
    from genlab.systems.video import demo
    from genlab.systems.video.config import stage
    from genlab.systems.video.model import SVDModel
    from genlab.systems.video.train import encode_clips, heldout_loss, load_video_model, train_stage

    _check_run_options(args)
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
    if args.lora:
        from genlab.systems.video.lora import add_temporal_lora

        add_temporal_lora(model.unet, rank=args.lora)
        st = replace(st, train="lora")
    info = init_distributed(args.device)
    device = f"cuda:{info.local_rank}" if args.device == "cuda" else args.device  # one GPU per torchrun rank
    if device.startswith("cuda"):
        torch.cuda.set_device(device)
    ae, clips, _ = _toy_ae(args.toy, progress=not args.quiet and info.is_main)
    heldout = None
    if args.data:
        data, heldout = curated_data(args.data, curated, ae, progress=not args.quiet and info.is_main)
    else:
        data = encode_clips(clips.video, clips.bucket, ae, st.size, toy.sprite.fps_id)
    last = latest_checkpoint(Path(args.out) / st.name / "checkpoints")
    if last is not None and info.is_main:
        print(f"resuming stage {st.name} from {last}")
    losses = train_stage(model, ae, data, st, out_dir=args.out, checkpoint_every=args.checkpoint_every,
                         progress=not args.quiet, device=device, precision=args.precision,
                         gradient_checkpointing=args.gradient_checkpointing)
    shutdown_distributed()  # not on error: its barrier would hang this rank instead of letting torchrun stop all
    if info.is_main:
        print(f"stage {st.name}: {len(losses)} steps on {len(data.latents)} training windows, last loss {losses[-1]:.4f}; "
              f"weights in {args.out}/{st.name}/")
        if heldout is not None:
            print(f"held-out loss ({len(heldout.latents)} windows, fixed noise): "
                  f"{heldout_loss(model, ae, heldout, st):.4f}")
    return 0


def _sample(args: argparse.Namespace) -> int:
    from pathlib import Path

    import numpy as np
    import torch
    from PIL import Image

    from genlab.errors import GenlabError
    from genlab.systems.video.demo import write_gifs
    from genlab.systems.video.pipeline import SamplingConfig, sample_i2v
    from genlab.systems.video.train import load_video_model

    model = load_video_model(args.weights)
    if not Path(args.image).is_file():
        raise GenlabError(f"image not found: {args.image}")
    ae, _, cfg = _toy_ae("fast" if model.config.latent_channels == 3 else "full")  # the toy it was trained on
    cfg_size = cfg.sprite.size
    img = Image.open(args.image).convert("RGB").resize((cfg_size, cfg_size), Image.BICUBIC)
    x = torch.from_numpy(np.asarray(img)).float().permute(2, 0, 1)[None] / 127.5 - 1
    scfg = SamplingConfig(num_frames=args.frames, steps=args.steps, min_guidance=args.min_guidance,
                          max_guidance=args.max_guidance, fps_id=args.fps_id, motion_bucket_id=args.motion_bucket,
                          decode_chunk=args.decode_chunk, sigma_max=80.0)
    out = sample_i2v(model, ae, x, scfg, generator=torch.Generator().manual_seed(args.seed), progress=True)
    write_gifs(out.video, out.video, Path(args.out), n=1)
    print(f"wrote {args.out}")
    return 0


def _convert(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from safetensors.torch import save_file

    from genlab.core.io import atomic_path, atomic_write_text
    from genlab.core.nn import temporal
    from genlab.errors import GenlabError
    from genlab.systems.video.convert import load_unet

    src = Path(args.unet)
    if not src.exists():  # before building a 1.5B-parameter model
        raise GenlabError(f"checkpoint not found: {src} (give a local sgm .safetensors file or diffusers folder)")
    cfg = temporal.svd() if args.preset == "svd" else temporal.svd_xt()
    unet = temporal.VideoUNet(cfg)
    fmt = load_unet(unet, args.unet)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "unet.safetensors") as tmp:
        save_file({k: v.contiguous() for k, v in unet.state_dict().items()}, str(tmp))
    atomic_write_text(out / "unet_config.json", json.dumps(cfg.to_dict(), indent=1))
    print(f"converted {fmt} checkpoint {args.unet} -> {out}/unet.safetensors")
    return 0
