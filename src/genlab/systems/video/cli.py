"""`genlab video ...` sub-commands. Keep imports inside the command functions.

The curation pipeline registers `genlab video curate` from `curation/cli.py`.
  genlab video demo [--fast] [--out DIR]          sprites moving at the motion-bucket speed (CPU)
  genlab video train --stage image|video|finetune|... --out DIR [--steps N] [--frames T] [--size S]
  genlab video sample --weights DIR --image PNG --out GIF [--frames T] [--steps N] [--motion-bucket B]
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
    demo.set_defaults(func=_demo)

    train = sub.add_parser("train", help="train one stage of the toy video model (resumable)")
    train.add_argument("--stage", required=True, help="image | video | video_hr | i2v | finetune | t2v_finetune | interp")
    train.add_argument("--out", required=True, help="run folder; an existing checkpoint there is resumed")
    train.add_argument("--init", default=None, help="weights (model.safetensors) of the previous stage")
    train.add_argument("--steps", type=int, default=300)
    train.add_argument("--frames", type=int, default=8)
    train.add_argument("--size", type=int, default=32)
    train.add_argument("--batch-size", type=int, default=8)
    train.add_argument("--lr", type=float, default=1e-3)
    train.add_argument("--lora", type=int, default=0, help="rank > 0: train LoRA adapters on the temporal attention only")
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


def _demo(args: argparse.Namespace) -> int:
    import json

    import torch

    from genlab.systems.video import demo

    torch.set_num_threads(max(1, torch.get_num_threads()))
    cfg = demo.fast() if args.fast else demo.full()
    result = demo.run(cfg, out_dir=args.out, progress=True)
    print(json.dumps(result.to_dict(), indent=1))
    print(f"wrote {args.out}/samples.gif and {args.out}/metrics.json")
    return 0


def _toy_ae(size: int):
    from genlab.systems.video import demo

    cfg = demo.full()
    from genlab.systems.video import data as D

    clips = D.make_clips(cfg.sprite, cfg.n_train, seed=cfg.seed)
    return demo._autoencoder(cfg, clips, progress=True), clips, cfg


def _train(args: argparse.Namespace) -> int:
    from dataclasses import replace
    from pathlib import Path

    from genlab.systems.video import demo
    from genlab.systems.video.config import stage
    from genlab.systems.video.model import SVDModel
    from genlab.systems.video.train import load_weights, save_checkpoint, train_stage  # noqa: F401

    st = stage(args.stage, steps=args.steps, frames=args.frames, size=args.size, batch_size=args.batch_size,
               lr=args.lr)
    ae, clips, cfg = _toy_ae(args.size)
    model = SVDModel(cfg.model)
    if args.init:
        load_weights(model, args.init)
    if args.lora:
        from genlab.systems.video.lora import add_temporal_lora

        add_temporal_lora(model.unet, rank=args.lora)
        st = replace(st, train="lora")
    data = demo._stage_data(clips, ae, st.size, cfg.sprite.fps_id)
    losses = train_stage(model, ae, data, st, out_dir=Path(args.out), progress=True)
    print(f"stage {st.name}: {len(losses)} steps, last loss {losses[-1]:.4f}; weights in {args.out}/{st.name}/")
    return 0


def _sample(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    import numpy as np
    import torch
    from PIL import Image

    from genlab.errors import GenlabError
    from genlab.systems.video.config import VideoModelConfig
    from genlab.systems.video.demo import write_gifs
    from genlab.systems.video.model import SVDModel
    from genlab.systems.video.pipeline import SamplingConfig, sample_i2v
    from genlab.systems.video.train import load_weights

    folder = Path(args.weights)
    if not (folder / "config.json").is_file():
        raise GenlabError(f"{folder}: no config.json (give a folder written by `genlab video train`)")
    model = SVDModel(VideoModelConfig.from_dict(json.loads((folder / "config.json").read_text())))
    load_weights(model, folder / "model.safetensors")
    model.eval()
    if not Path(args.image).is_file():
        raise GenlabError(f"image not found: {args.image}")
    ae, _, cfg = _toy_ae(cfg_size := 32)
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
