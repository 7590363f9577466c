"""`genlab t2i ...` sub-commands. Keep imports inside the command functions.

    genlab demo                                  # = genlab t2i demo: digits, sample grid + loss curve PNGs
    genlab t2i train --preset digits --out runs/digits [--steps N] [--text minilm]
    genlab t2i train --data photos/ --preset tiny --out runs/mine   # your captioned images, latent training
    torchrun --nproc_per_node 2 -m genlab t2i train ... [--parallel fsdp]   # DDP / FSDP2 (gloo on CPU)
    genlab t2i sample --model runs/digits --prompt "a handwritten digit seven" --out seven.png
    genlab t2i sample --pretrained sd3-folder-or-file --prompt "a photo of a cat" --out cat.png   # real SD3
    genlab t2i sample --pretrained sd3.5-medium --prompt ... --skip-layer-guidance 7,8,9 --guidance 4 --out x.png
    genlab t2i sample --pretrained sd3-folder --prompt ... --init-image in.png --strength 0.6 --out y.png  # img2img
    genlab t2i train --pretrained sd3-folder --data photos/ --lora 16 --out runs/lora   # LoRA, diffusers format
    genlab t2i sample --pretrained sd3-folder --lora runs/lora/lora.safetensors:0.8 --prompt ... --out x.png
    genlab t2i convert --src sd3.safetensors --to diffusers --out transformer/ [--lora FILE[:scale]]  # merged
"""

from __future__ import annotations

import argparse

from genlab.systems.t2i.study.cli import register_study

RELEASED = ("sd3_medium", "sd3_5_medium", "sd3_5_large", "sd3_5_large_turbo")  # presets with published settings


def _text_choice(value: str) -> str:
    if value in ("builtin", "minilm") or (value.startswith("sd3:") and len(value) > len("sd3:")):
        return value
    raise argparse.ArgumentTypeError(f"expected builtin, minilm or sd3:PATH, got {value!r}")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("t2i", help="Rectified-flow text-to-image with MM-DiT (SD3).")
    sub = parser.add_subparsers(dest="command", metavar="<command>", required=True)

    demo = sub.add_parser("demo", help="train a small MM-DiT on the embedded digits and write sample grids")
    add_demo_args(demo)
    demo.set_defaults(func=run_demo)
    register_study(sub)

    train = sub.add_parser("train", help="train on your captioned images (--data) or the embedded digits; resumes from --out")
    train.add_argument("--preset", default="digits", help="tiny, digits, digits_fast, ... (default digits)")
    train.add_argument("--out", required=True, help="run folder: checkpoints, model/ema weights, history")
    train.add_argument("--data", default=None,
                       help="image folder (same-stem .txt captions), .jsonl/.csv table, or WebDataset .tar shard(s)")
    train.add_argument("--image-column", default="image", help=".jsonl/.csv column with the image path")
    train.add_argument("--caption-column", default="caption", help=".jsonl/.csv column with the caption")
    train.add_argument("--require-captions", action="store_true", help="an image without a caption is an error")
    train.add_argument("--vae", default=None, help="diffusers AutoencoderKL folder or genlab autoencoder .safetensors "
                       "(default: train genlab's small autoencoder on the data first)")
    train.add_argument("--resolution", type=int, default=None,
                       help="bucket area ~ resolution^2 pixels (default 32; LoRA on pretrained SD3: 512)")
    train.add_argument("--no-buckets", action="store_true", help="one square bucket instead of aspect-ratio buckets")
    train.add_argument("--crop", choices=["center", "random"], default="center")
    train.add_argument("--grey", action="store_true", help="read images as one channel")
    train.add_argument("--ae-steps", type=int, default=1500, help="training steps of the small autoencoder")
    train.add_argument("--steps", type=int, default=None, help="override the preset's training steps")
    train.add_argument("--batch-size", type=int, default=None, help="per-process batch size")
    train.add_argument("--lr", type=float, default=None)
    train.add_argument("--schedule", choices=["constant", "cosine", "linear"], default=None, help="after warm-up")
    train.add_argument("--warmup-steps", type=int, default=None)
    train.add_argument("--grad-accum", type=int, default=None, help="micro-batches per step (batch size divisible)")
    train.add_argument("--gradient-checkpointing", action="store_true", help="recompute MM-DiT blocks in backward")
    train.add_argument("--precision", choices=["fp32", "bf16", "fp16"], default=None)
    train.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda:LOCAL_RANK if available)")
    train.add_argument("--parallel", choices=["ddp", "fsdp"], default=None, help="under torchrun (default ddp)")
    train.add_argument("--ema-decay", type=float, default=None)
    train.add_argument("--validation-prompt", action="append", default=[], help="rendered every --sample-every steps")
    train.add_argument("--sample-every", type=int, default=None, help="steps between samples/step_XXXXXX.png")
    train.add_argument("--checkpoint-every", type=int, default=None)
    train.add_argument("--seed", type=int, default=None)
    train.add_argument("--text", type=_text_choice, default="builtin",
                       help="text encoder: builtin, minilm, or sd3:PATH (a pretrained SD3's CLIP-L/G + T5, conditioning "
                            "exactly as the SD3 pipeline)")
    lora = train.add_argument_group("LoRA fine-tuning of pretrained SD3 (--pretrained PATH --data ... --lora RANK)")
    lora.add_argument("--pretrained", default=None, help="SD3: a diffusers folder or Stability's single .safetensors file")
    lora.add_argument("--lora", type=int, default=None, metavar="RANK", help="train LoRA adapters of this rank")
    lora.add_argument("--lora-alpha", type=float, default=None, help="LoRA alpha (default: the rank, scale 1)")
    lora.add_argument("--lora-targets", nargs="+", default=None, metavar="NAME",
                      help="diffusers module names or suffixes (default: attention q/k/v/out and MLPs of both streams)")
    train.add_argument("--quiet", action="store_true", help="no progress bars")
    train.set_defaults(func=run_train)

    sample = sub.add_parser("sample", help="prompts -> images: a genlab run (--model) or pretrained SD3 (--pretrained)")
    which = sample.add_mutually_exclusive_group(required=True)
    which.add_argument("--model", help="genlab run folder or weights .safetensors (with its .json)")
    which.add_argument("--pretrained", help="SD3: a diffusers folder or Stability's single .safetensors file")
    sample.add_argument("--prompt", action="append", default=[], help="repeat for several prompts")
    sample.add_argument("--out", required=True, help="PNG path (pretrained, several images: out-000.png, ...)")
    sample.add_argument("--num", type=int, default=1, help="images per prompt")
    sample.add_argument("--steps", type=int, default=None, help="sampling steps (default 20; pretrained 28)")
    sample.add_argument("--guidance", type=float, default=None, help="CFG scale (default 3; pretrained 7)")
    sample.add_argument("--shift", type=float, default=None, help="resolution shift alpha (default: config/scheduler)")
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--sampler", default="euler", choices=["euler", "heun"], help="--model only")
    sample.add_argument("--raw", action="store_true", help="--model: the raw weights instead of the EMA")
    sd3 = sample.add_argument_group("pretrained SD3 (--pretrained)")
    sd3.add_argument("--negative-prompt", default="", help="default: the empty prompt, encoded")
    sd3.add_argument("--size", default=None, help="HxW in pixels, multiples of 16 (default: the model's, 1024x1024)")
    sd3.add_argument("--no-t5", action="store_true", help="run without T5 (zeros in its place)")
    sd3.add_argument("--dtype", choices=["fp32", "bf16", "fp16"], default="fp32", help="weights' dtype")
    sd3.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, mps")
    sd3.add_argument("--clip-l", default=None, help="CLIP-L: clip_l.safetensors or a transformers folder")
    sd3.add_argument("--clip-g", default=None, help="CLIP-G: clip_g.safetensors or a transformers folder")
    sd3.add_argument("--t5", default=None, help="T5-XXL: t5xxl_fp16.safetensors (fp8 is upcast) or a folder")
    sd3.add_argument("--tokenizers", default=None, help="single files: folder with tokenizer/, tokenizer_2/, "
                     "tokenizer_3/ (default: the file's folder)")
    sd3.add_argument("--preset", default=None, choices=sorted(RELEASED),
                     help="the released model's published sampling settings (steps, guidance, shift, skip-layer "
                     "guidance) as defaults; flags given override them")
    sd3.add_argument("--skip-layer-guidance", default=None, metavar="LAYERS",
                     help="skip-layer guidance (SD3.5) on these comma-separated blocks, e.g. 7,8,9 (needs --guidance "
                     "> 1); 'none' turns a preset's off")
    sd3.add_argument("--slg-scale", type=float, default=None, help="skip-layer guidance scale (default 2.8)")
    sd3.add_argument("--slg-start", type=float, default=None, help="fraction of the steps where it starts (default 0.01)")
    sd3.add_argument("--slg-stop", type=float, default=None, help="fraction of the steps where it stops (default 0.2)")
    sd3.add_argument("--init-image", default=None, help="img2img: start from this picture (resized to --size, else "
                     "to its own size rounded down to multiples of 16)")
    sd3.add_argument("--strength", type=float, default=None, help="img2img: how much of the run to redo, in (0, 1] "
                     "(default 0.6)")
    sample.add_argument("--lora", action="append", default=[], metavar="FILE[:SCALE]",
                        help="a LoRA made by genlab, diffusers or PEFT (file or PEFT folder), repeatable")
    sample.add_argument("--quiet", action="store_true", help="no progress bar")
    sample.set_defaults(func=run_sample)

    conv = sub.add_parser("convert", help="MM-DiT weights between genlab/single-file and diffusers")
    conv.add_argument("--src", required=True, help="single .safetensors file or diffusers transformer folder")
    conv.add_argument("--to", choices=["diffusers", "single", "genlab"], required=True)
    conv.add_argument("--out", required=True)
    conv.add_argument("--lora", action="append", default=[], metavar="FILE[:SCALE]",
                      help="merge this LoRA into the weights before writing them (repeatable)")
    conv.set_defaults(func=run_convert)


def add_demo_args(p: argparse.ArgumentParser) -> None:
    """The options of `genlab t2i demo`; `genlab demo` takes the same."""
    p.add_argument("--out", default="outputs/demo", help="output folder (default outputs/demo)")
    p.add_argument("--steps", type=int, default=None, help="training steps (default: the digits preset's)")
    p.add_argument("--guidance", type=float, default=3.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _torch_threads() -> None:
    """One intra-op thread unless OMP_NUM_THREADS says otherwise: these models are tiny, and on a
    shared CPU several threads per process wait on each other (measured: 20x slower under load)."""
    import os

    import torch

    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(1)


def run_demo(args: argparse.Namespace) -> int:
    """The main job: train on sklearn digits, write samples.png (10 per digit) and loss.png."""
    from dataclasses import replace
    from pathlib import Path

    from genlab.systems.t2i import config as presets
    from genlab.systems.t2i.data import DIGIT_WORDS, digit_caption, load_digits
    from genlab.systems.t2i.pipeline import generate, save_grid
    from genlab.systems.t2i.train import train_t2i

    _torch_threads()
    out, steps, guidance = Path(args.out), args.steps, args.guidance
    cfg = presets.digits()
    if steps is not None:
        cfg = replace(cfg, train=replace(cfg.train, steps=steps))
    images, _, captions = load_digits()
    print(f"genlab demo: training an MM-DiT ({cfg.model.depth} joint blocks, hidden "
          f"{cfg.model.hidden_size}) with rectified flow + logit-normal t on {len(images)} digits for "
          f"{cfg.train.steps} steps -> {out}")
    run = train_t2i(cfg, images, captions, out / "run", progress=not args.quiet)
    prompts = [digit_caption(d) for d in range(10) for _ in range(10)]
    samples = generate(run.ema, prompts, steps=20, guidance_scale=guidance, seed=args.seed)
    grid = save_grid(samples, out / "samples.png", nrow=10, upscale=4)
    curve = save_loss_curve(run.history, out / "loss.png")
    print(f"samples: {grid} (row k = '{digit_caption(0)}' ... '{DIGIT_WORDS[9]}', guidance {guidance})")
    print(f"loss curve: {curve}; final loss {run.history[-1]['loss']:.4f}; weights: {out / 'run'}")
    return 0


def save_loss_curve(history: list[dict], path) -> object:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from genlab.core.io import atomic_path

    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=120)
    ax.plot([h["step"] for h in history], [h["loss"] for h in history], lw=1.2)
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (velocity MSE)")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path


def run_train(args: argparse.Namespace) -> int:
    import os
    from dataclasses import replace

    import torch

    from genlab.core.train import init_distributed, shutdown_distributed
    from genlab.errors import GenlabError
    from genlab.systems.t2i import config as presets
    from genlab.systems.t2i.data import load_digits
    from genlab.systems.t2i.train import train_on_data, train_t2i

    _torch_threads()
    if args.pretrained is not None or args.lora is not None:
        return _train_lora(args)
    cfg = presets.preset(args.preset)
    if args.text == "minilm":
        cfg = presets.with_minilm(cfg)
    elif args.text.startswith("sd3:"):
        from genlab.systems.t2i.sd3 import with_sd3_text

        cfg = with_sd3_text(cfg, args.text[len("sd3:"):])
    overrides = {k: v for k, v in {
        "steps": args.steps, "batch_size": args.batch_size, "checkpoint_every": args.checkpoint_every,
        "seed": args.seed, "lr": args.lr, "lr_schedule": args.schedule, "warmup_steps": args.warmup_steps,
        "grad_accum": args.grad_accum, "precision": args.precision, "parallel": args.parallel,
        "ema_decay": args.ema_decay}.items() if v is not None}
    cfg = replace(cfg, train=replace(cfg.train, **overrides))
    device = args.device
    if device is None:
        device = f"cuda:{os.environ.get('LOCAL_RANK', '0')}" if torch.cuda.is_available() else "cpu"
    if torch.device(device).type == "cuda" and not torch.cuda.is_available():
        raise GenlabError(f"--device {device}: CUDA is not available on this machine")
    if args.data is None and (cfg.model.in_channels != 1 or tuple(cfg.image_size) != (8, 8)):
        raise GenlabError(f"preset {args.preset!r} is not an 8x8 one-channel preset; without --data `genlab t2i "
                          "train` trains on the embedded digits (give --data PATH for your images)")
    info = init_distributed(device)
    if torch.device(device).type == "cuda":
        torch.cuda.set_device(torch.device(device))
    if args.data is None:
        images, _, captions = load_digits()
        run = train_t2i(cfg, images, captions, args.out, device=device, progress=not args.quiet)
    else:
        from genlab.systems.t2i.prepare import DataOptions

        opts = DataOptions(resolution=args.resolution or 32, image_column=args.image_column,
                           caption_column=args.caption_column, require_captions=args.require_captions,
                           aspect_buckets=not args.no_buckets, crop=args.crop, channels=1 if args.grey else 3,
                           ae_steps=args.ae_steps)
        every = args.sample_every if args.sample_every is not None else max(1, cfg.train.steps // 4)
        run = train_on_data(cfg, args.data, args.out, vae=args.vae, options=opts,
                            validation_prompts=args.validation_prompt or None, sample_every=every,
                            gradient_checkpointing=args.gradient_checkpointing, device=device,
                            progress=not args.quiet)
        if info.is_main:
            st = run.stats
            print(f"data: {st.images} images in buckets {st.per_bucket}; encoded this run {st.encoded}; "
                  f"skipped {st.skipped} (too small {st.too_small}; see {args.out}/skipped.jsonl); "
                  f"without caption {st.missing_captions}")
    shutdown_distributed()  # not on error: its barrier would hang this rank instead of letting torchrun stop all
    if info.is_main:
        print(f"trained {cfg.train.steps} steps; final loss {run.history[-1]['loss']:.4f}; weights in {args.out}")
    return 0


def _train_lora(args: argparse.Namespace) -> int:
    from genlab.errors import GenlabError
    from genlab.systems.t2i.finetune import (
        LoRAConfig,
        is_genlab_model,
        lora_train_config,
        train_lora,
        train_lora_genlab,
    )
    from genlab.systems.t2i.lora import DEFAULT_TARGETS
    from genlab.systems.t2i.prepare import DataOptions

    if args.pretrained is None or args.lora is None:
        raise GenlabError("LoRA fine-tuning needs --pretrained PATH (SD3, or a genlab run) and --lora RANK together")
    genlab_model = is_genlab_model(args.pretrained)
    if not genlab_model and args.data is None:
        raise GenlabError("LoRA fine-tuning of pretrained SD3 needs --data PATH (your captioned images)")
    unused = {"--vae": args.vae is not None and not genlab_model, "--text": args.text != "builtin",
              "--grey": args.grey and not genlab_model, "--parallel": args.parallel is not None,
              "--ema-decay": args.ema_decay is not None, "--validation-prompt": bool(args.validation_prompt),
              "--sample-every": args.sample_every is not None}
    if any(unused.values()):
        raise GenlabError(f"{', '.join(k for k, v in unused.items() if v)}: not used by LoRA fine-tuning "
                          "(the model's own autoencoder and text encoders, one process; sample with --lora afterwards)")
    if args.precision == "fp16" and (args.device or "cpu").startswith("cpu"):
        raise GenlabError("--precision fp16 needs a CUDA device; use bf16 or fp32 on CPU")
    lora = LoRAConfig(rank=args.lora, alpha=args.lora_alpha, targets=tuple(args.lora_targets or DEFAULT_TARGETS))
    overrides = {k: v for k, v in {
        "steps": args.steps, "batch_size": args.batch_size, "checkpoint_every": args.checkpoint_every,
        "seed": args.seed, "lr": args.lr, "lr_schedule": args.schedule, "warmup_steps": args.warmup_steps,
        "grad_accum": args.grad_accum, "precision": args.precision}.items() if v is not None}
    train = lora_train_config(**overrides)
    resolution = args.resolution or (32 if genlab_model else 512)  # 512: diffusers' SD3 LoRA script default
    opts = DataOptions(resolution=resolution, image_column=args.image_column, caption_column=args.caption_column,
                       require_captions=args.require_captions, aspect_buckets=not args.no_buckets, crop=args.crop,
                       channels=1 if args.grey else 3)
    common = dict(options=opts, gradient_checkpointing=args.gradient_checkpointing, device=args.device or "cpu",
                  progress=not args.quiet)
    if genlab_model:
        run = train_lora_genlab(args.pretrained, args.data, args.out, lora, train, vae=args.vae, **common)
    else:
        run = train_lora(args.pretrained, args.data, args.out, lora, train, **common)
    if run.stats is not None:
        print(f"data: {run.stats.images} images in buckets {run.stats.per_bucket}; skipped {run.stats.skipped}")
    print(f"trained {train.steps} LoRA steps (rank {lora.rank}, {len(run.layers)} layers); final loss "
          f"{run.history[-1]['loss']:.4f}; LoRA in {run.lora_path}")
    return 0


def run_sample(args: argparse.Namespace) -> int:
    from genlab.errors import GenlabError

    _torch_threads()
    if not args.prompt:
        raise GenlabError("empty prompt list: give at least one --prompt")
    if args.num < 1:
        raise GenlabError(f"--num: expected >= 1, got {args.num}")
    if args.pretrained:
        return _sample_pretrained(args)
    if args.skip_layer_guidance is not None or args.init_image is not None:
        raise GenlabError("--skip-layer-guidance and --init-image work with --pretrained (a genlab run: --model has neither)")
    from genlab.systems.t2i.pipeline import generate, load_model, save_grid

    loras = []
    if args.lora:  # read and checked before the model loads
        from genlab.systems.t2i.lora import parse_lora_arg, read_lora

        loras = [(read_lora(f), scale) for f, scale in map(parse_lora_arg, args.lora)]
    model = load_model(args.model, ema=not args.raw)
    if loras:
        from genlab.systems.t2i.lora import apply_lora

        for lora, scale in loras:
            apply_lora(model.backbone, lora, scale)
    prompts = [p for p in args.prompt for _ in range(args.num)]
    images = generate(model, prompts, steps=args.steps or 20, guidance_scale=3.0 if args.guidance is None else args.guidance,
                      shift=args.shift, seed=args.seed, sampler=args.sampler, progress=not args.quiet)
    path = save_grid(images, args.out, nrow=args.num if len(args.prompt) > 1 else None, upscale=4)
    print(f"wrote {path}")
    return 0


def parse_size(text: str | None) -> tuple[int, int] | None:
    """"1024x768" (height x width) or "512" (square) -> (H, W)."""
    if text is None:
        return None
    from genlab.errors import GenlabError

    parts = text.lower().replace("*", "x").split("x")
    try:
        hw = tuple(int(p) for p in parts)
    except ValueError:
        hw = ()
    if len(hw) == 1:
        hw = (hw[0], hw[0])
    if len(hw) != 2 or min(hw) <= 0:
        raise GenlabError(f"--size: expected HxW in pixels such as 1024x768, got {text!r}")
    return hw


def parse_layers(text: str | None) -> tuple[int, ...] | None:
    """"7,8,9" -> (7, 8, 9); "none" -> () (off)."""
    if text is None:
        return None
    if text.strip().lower() == "none":
        return ()
    from genlab.errors import GenlabError

    try:
        layers = tuple(int(p) for p in text.replace(" ", "").split(",") if p)
    except ValueError:
        layers = ()
    if not layers:
        raise GenlabError(f"--skip-layer-guidance: expected comma-separated block indices such as 7,8,9, got {text!r}")
    return layers


def check_preset_fits(name: str, cfg) -> None:
    """--preset NAME is for that released model's transformer: depth, width and MMDiT-X layers must agree."""
    from genlab.errors import GenlabError
    from genlab.systems.t2i.config import preset

    want = preset(name).model
    got = (cfg.depth, cfg.hidden_size, tuple(cfg.dual_attention_layers))
    if got != (want.depth, want.hidden_size, tuple(want.dual_attention_layers)):
        raise GenlabError(f"--preset {name}: its settings are for a {want.depth}-block, {want.hidden_size}-wide MM-DiT"
                          f"{' with MMDiT-X blocks' if want.dual_attention_layers else ''}; --pretrained has "
                          f"{cfg.depth} blocks, {cfg.hidden_size} wide{' with MMDiT-X blocks' if cfg.dual_attention_layers else ''}")


def _sample_pretrained(args: argparse.Namespace) -> int:
    from genlab.core.flow.guidance import SkipLayerGuidance
    from genlab.errors import GenlabError
    from genlab.systems.t2i.config import SamplingDefaults, preset
    from genlab.systems.t2i.lora import parse_lora_arg
    from genlab.systems.t2i.sd3 import img2img_start, load_pipeline, save_pngs

    size = parse_size(args.size)
    published = SamplingDefaults()  # diffusers' StableDiffusion3Pipeline defaults
    shift = args.shift
    if args.preset is not None:
        run = preset(args.preset)
        published, shift = run.sampling, run.shift if args.shift is None else args.shift
    layers = parse_layers(args.skip_layer_guidance)
    layers = published.skip_layers if layers is None else layers

    def pick(flag, default):
        return default if flag is None else flag

    slg = SkipLayerGuidance(layers, pick(args.slg_scale, published.slg_scale), pick(args.slg_start, published.slg_start),
                            pick(args.slg_stop, published.slg_stop)) if layers else None
    if args.strength is not None and args.init_image is None:
        raise GenlabError("--strength is for img2img: give --init-image too")
    strength = 0.6 if args.strength is None else args.strength
    steps = args.steps or published.steps
    if args.init_image is not None:
        img2img_start(steps, strength)  # before anything loads
    pipe = load_pipeline(args.pretrained, dtype=args.dtype, device=args.device, t5=not args.no_t5, clip_l=args.clip_l,
                         clip_g=args.clip_g, t5_path=args.t5, tokenizers=args.tokenizers,
                         loras=[parse_lora_arg(a) for a in args.lora])
    if args.preset is not None:
        check_preset_fits(args.preset, pipe.cfg)
    kw = dict(negative_prompt=args.negative_prompt, steps=steps, guidance=pick(args.guidance, published.guidance),
              shift=shift, size=size, seed=args.seed, skip_layer_guidance=slg, init_image=args.init_image,
              strength=strength)
    pipe.check_skip_layer_guidance(slg, kw["guidance"])
    pipe.check_size(*pipe.output_size(size, args.init_image))
    images = pipe(args.prompt, num_images=args.num, progress=not args.quiet, **kw)
    paths = save_pngs(images, args.out, pipe.settings(args.prompt, num_images=args.num, **kw))
    print(f"wrote {paths[0]}" + (f" ... {paths[-1]} ({len(paths)} images)" if len(paths) > 1 else ""))
    return 0


def run_convert(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from genlab.core.io import atomic_write_text
    from genlab.core.train import save_weights
    from genlab.systems.t2i import convert
    from genlab.systems.t2i.lora import check_lora, parse_lora_arg, read_lora

    loras = [(read_lora(f), scale) for f, scale in map(parse_lora_arg, args.lora)]  # checked before the weights load
    model = convert.load_pretrained(args.src)
    if loras:
        from genlab.core.nn.lora import merge_lora
        from genlab.systems.t2i.lora import apply_lora

        for lora, scale in loras:
            check_lora(lora, model.cfg)
            apply_lora(model, lora, scale)
        merge_lora(model)
    state = model.state_dict()
    out = Path(args.out)
    if args.to == "diffusers":
        atomic_write_text(out / "config.json", json.dumps(
            {"_class_name": "SD3Transformer2DModel", **convert.to_diffusers_config(model.cfg)}, indent=2) + "\n")
        save_weights(out / "diffusion_pytorch_model.safetensors", convert.to_diffusers(state))
    elif args.to == "single":
        save_weights(out, convert.to_single_file(state))
    else:
        save_weights(out, state, model.cfg)
    print(f"wrote {out}")
    return 0
