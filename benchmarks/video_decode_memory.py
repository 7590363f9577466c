"""Extra peak memory of SVD's full-width temporal VAE decoder per decode chunk (CPU, process peak RSS).

    PYTHONPATH=src python benchmarks/video_decode_memory.py CHUNK DTYPE [--height 144 --width 256]

Builds `TemporalDecoder(TemporalDecoderConfig())` (SVD's decoder, random weights) and decodes one chunk of
latents at height x width pixels; prints the rise of the process's peak RSS and that figure scaled to 576x1024
by pixel count (activations grow with pixels). Run each setting in a fresh process: peak RSS never goes down.
"""

from __future__ import annotations

import argparse
import resource
import time

import torch

from genlab.core.autoencoders.temporal_decoder import TemporalDecoder, TemporalDecoderConfig


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("chunk", type=int)
    ap.add_argument("dtype", choices=["float32", "bfloat16", "float16"])
    ap.add_argument("--height", type=int, default=144)
    ap.add_argument("--width", type=int, default=256)
    args = ap.parse_args()
    torch.set_num_threads(1)
    dtype = getattr(torch, args.dtype)
    dec = TemporalDecoder(TemporalDecoderConfig()).to(dtype).eval()
    z = torch.randn(1, args.chunk, 4, args.height // 8, args.width // 8, dtype=dtype)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    with torch.no_grad():
        dec.decode_video(z, args.chunk)
    extra = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 2**20  # KiB -> GiB
    scale = 576 * 1024 / (args.height * args.width)
    print(f"chunk {args.chunk} {args.dtype}: extra peak RSS {extra:.3f} GiB at {args.height}x{args.width}, "
          f"x{scale:g} = {extra * scale:.2f} GiB at 576x1024; {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
