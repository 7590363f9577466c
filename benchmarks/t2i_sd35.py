"""SD3.5 features of the pretrained pipeline: genlab vs diffusers, timed interleaved (A, B, A, B, medians).

A tiny random SD3.5-Medium-style pipeline (MMDiT-X in blocks 0-1 of 3, RMS QK-norm; the test components) is
saved to a temporary folder and both sides keep their parts loaded. Three cases, one image each, 64x64:
  plain        StableDiffusion3Pipeline, CFG 4
  slg          the same with skip-layer guidance on blocks 1, 2 (scale 2.5, window 0.01-0.2 by default)
  img2img      StableDiffusion3Img2ImgPipeline, strength 0.6
Prints seconds per image, the speed ratio (diffusers time / ours) and the largest pixel difference.

    PYTHONPATH=src python benchmarks/t2i_sd35.py [--threads 1] [--repeats 5] [--steps 28]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from _timing import interleaved, threads_line

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--steps", type=int, default=28)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    sys.path.insert(0, str(ROOT))
    from diffusers import StableDiffusion3Img2ImgPipeline, StableDiffusion3Pipeline
    from PIL import Image
    from tests.systems.t2i import sd3_tiny

    from genlab.core.flow.guidance import SkipLayerGuidance
    from genlab.systems.t2i.sd3 import load_pipeline

    y, x = np.mgrid[0:64, 0:64].astype(np.float32) / 64
    image = Image.fromarray((np.stack([x, y, 0.5 * x * y + 0.2], -1) * 255).astype(np.uint8))
    prompt, steps = ["a photo of a cat"], args.steps
    with tempfile.TemporaryDirectory() as tmp:
        parts = sd3_tiny.components(depth=3, qk_norm="rms_norm", dual_attention_layers=(0, 1))
        folder = sd3_tiny.save_folder(parts, Path(tmp) / "tiny-sd35")
        ours = load_pipeline(folder, keep_loaded=True)
        t2i = StableDiffusion3Pipeline.from_pretrained(str(folder), local_files_only=True)
        i2i = StableDiffusion3Img2ImgPipeline.from_pretrained(str(folder), local_files_only=True)
        for pipe in (t2i, i2i):
            pipe.set_progress_bar_config(disable=True)
        slg = SkipLayerGuidance((1, 2), scale=2.5)

        def theirs(pipe, **kw):
            with torch.no_grad():
                return pipe(prompt, height=64, width=64, num_inference_steps=steps, guidance_scale=4.0,
                            generator=torch.Generator("cpu").manual_seed(0), output_type="pt", **kw).images

        cases = {
            "plain": (lambda: ours(prompt, steps=steps, guidance=4.0, size=(64, 64)), lambda: theirs(t2i)),
            "slg": (lambda: ours(prompt, steps=steps, guidance=4.0, size=(64, 64), skip_layer_guidance=slg),
                    lambda: theirs(t2i, skip_guidance_layers=[1, 2], skip_layer_guidance_scale=2.5)),
            "img2img": (lambda: ours(prompt, steps=steps, guidance=4.0, size=(64, 64), init_image=image, strength=0.6),
                        lambda: theirs(i2i, image=image, strength=0.6)),
        }
        print(f"tiny SD3.5-Medium-style pipeline, 64x64, {steps} steps, CFG 4, parts loaded; {threads_line()}")
        print(f"{'case':10s} {'genlab s/image':>15s} {'diffusers s/image':>18s} {'speed ratio':>12s} {'max |diff|':>11s}")
        for name, (a, b) in cases.items():
            diff = float((a() - b()).abs().max())
            t = interleaved({"genlab": a, "diffusers": b}, args.repeats)
            print(f"{name:10s} {t['genlab']:15.3f} {t['diffusers']:18.3f} {t['diffusers'] / t['genlab']:11.2f}x "
                  f"{diff:11.1e}")


if __name__ == "__main__":
    main()
