"""Extra peak memory of SVD's full-width temporal VAE decoder per decode chunk (CPU, process peak RSS).

    PYTHONPATH=src python benchmarks/video_decode_memory.py CHUNK DTYPE [--height 144 --width 256]

Builds `TemporalDecoder(TemporalDecoderConfig())` (SVD's decoder, random weights) and decodes one chunk of
latents at height x width pixels; prints the rise of the process's peak RSS and that figure scaled to 576x1024
by pixel count (activations grow with pixels). Peak = Linux VmHWM, reset to the current RSS just before the
decode; run each setting in a fresh process all the same (the allocator keeps what it has freed).
"""

from __future__ import annotations

import argparse
import time

import torch

from genlab.core.autoencoders.temporal_decoder import TemporalDecoder, TemporalDecoderConfig
from genlab.core.procs import peak_rss_bytes, reset_peak_rss, rss_bytes


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
    reset_peak_rss()  # VmHWM from here (not ru_maxrss: it keeps a forking parent's peak)
    base = rss_bytes()
    t0 = time.perf_counter()
    with torch.no_grad():
        dec.decode_video(z, args.chunk)
    extra = (peak_rss_bytes() - base) / 2**30
    scale = 576 * 1024 / (args.height * args.width)
    print(f"chunk {args.chunk} {args.dtype}: extra peak RSS {extra:.3f} GiB at {args.height}x{args.width}, "
          f"x{scale:g} = {extra * scale:.2f} GiB at 576x1024; {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
