"""Writing generated clips: H.264 MP4 through PyAV (yuv420p, plays in browsers) and an optional GIF.

Both are written atomically (temporary name, then rename). The MP4 carries the sampling settings in its
`comment` metadata tag, as our PNGs carry them in a text chunk.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import numpy as np

from genlab.core.io import atomic_path
from genlab.errors import GenlabError


def _check(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise GenlabError(f"video frames: expected (T, H, W, 3) uint8, got {frames.shape} {frames.dtype}")
    return frames


def write_mp4(path: str | os.PathLike, frames: np.ndarray, fps: float, crf: int = 12,
              comment: str | None = None) -> Path:
    """(T, H, W, 3) uint8 RGB -> H.264 MP4 at `fps` frames per second. Odd sizes are padded by one pixel
    (edge-replicated) because 4:2:0 chroma needs even sides. `crf` 0..51 (lower = closer to the frames)."""
    import av

    frames = _check(frames)
    if fps <= 0:
        raise GenlabError(f"--fps must be > 0, got {fps}")
    t, h, w, _ = frames.shape
    pad_h, pad_w = h % 2, w % 2
    if pad_h or pad_w:
        frames = np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    path = Path(path)
    with atomic_path(path) as tmp:
        with av.open(str(tmp), "w", format="mp4") as out:
            if comment:
                out.metadata["comment"] = comment
            stream = out.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
            stream.width, stream.height = w + pad_w, h + pad_h
            stream.pix_fmt = "yuv420p"
            stream.options = {"crf": str(int(crf)), "preset": "medium"}
            for img in frames:
                out.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")))
            out.mux(stream.encode())
    return path


def read_mp4(path: str | os.PathLike) -> tuple[np.ndarray, float]:
    """(T, H, W, 3) uint8 RGB and the stream's frame rate (for tests and checks)."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        rate = float(stream.average_rate or stream.guessed_rate)
    return np.stack(frames), rate


def write_gif(path: str | os.PathLike, frames: np.ndarray, fps: float) -> Path:
    """(T, H, W, 3) uint8 -> looping GIF at 1000/fps ms per frame (GIF rounds delays to 10 ms)."""
    from PIL import Image

    frames = _check(frames)
    images = [Image.fromarray(f) for f in frames]
    with atomic_path(Path(path)) as tmp:
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:],
                       duration=max(20, round(1000 / fps)), loop=0)
    return Path(path)
