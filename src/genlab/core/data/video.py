"""Video decoding with PyAV: probe a file, iterate (optionally resized) frames, list keyframes.

One place turns the many ways a video file can be broken (empty, not a container, no video
stream, no decodable frames, truncated) into one exception with a clear reason, so callers that
process many files can record the reason and go on.

Frame indices are the decoder's output order (presentation order), starting at 0; times are the
frame's presentation time in seconds relative to the stream start.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genlab.errors import GenlabError


class VideoReadError(GenlabError):
    """A video that cannot be read; `reason` is a short, human-readable cause."""

    def __init__(self, path: str | os.PathLike, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


@dataclass(frozen=True)
class VideoInfo:
    path: str
    container: str
    codec: str
    width: int
    height: int
    fps: float
    duration_s: float
    num_frames: int  # from the container header; 0 when it does not say
    bit_rate: int  # bits per second of the video stream (container rate when the stream has none)
    size_bytes: int


def _open(path: str | os.PathLike):
    import av

    path = Path(path)
    if not path.is_file():
        raise VideoReadError(path, "file not found")
    size = path.stat().st_size
    if size == 0:
        raise VideoReadError(path, "empty file (0 bytes)")
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except av.error.FFmpegError as err:  # InvalidDataError, moov atom not found, ...
        raise VideoReadError(path, f"not a readable video container ({_ffmpeg_message(err)})") from err
    if not container.streams.video:
        container.close()
        raise VideoReadError(path, "no video stream in the container")
    return container, size


class VideoSource:
    """One open input container for every pass over one video (probe, decoding, stream copies):
    each `av.open` probes the file, and for some codecs that decodes frames (~35 ms for a 1768x994
    VP9 MP4). Opened on first use with `_open`'s checks (a VideoReadError for an unreadable file);
    closed by `close()` or at the end of a `with` block. Who passes a source to `probe` or
    `iter_frames` keeps it open; they do not close it."""

    def __init__(self, path: str | os.PathLike):
        self.path, self._container, self.size_bytes = Path(path), None, 0

    def container(self):
        if self._container is None:
            self._container, self.size_bytes = _open(self.path)
        return self._container

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None

    def __enter__(self) -> VideoSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _opened(path: str | os.PathLike, source: VideoSource | None):
    """(container, file size, owned): `source`'s container, or `path` opened here (and to be closed
    by the caller); the size is the one `_open` measured."""
    if source is not None:
        container = source.container()  # opened on first use, which measures the size
        return container, source.size_bytes, False
    return *_open(path), True


def _ffmpeg_message(err: Exception) -> str:
    text = getattr(err, "strerror", None) or str(err)
    return str(text).strip().rstrip(".")


def has_presentation_times(container_format: str) -> bool:
    """Whether packets of this container carry real presentation times. AVI (and raw streams) do not:
    with B-frames their guessed times are out of order, so frame times come from index / fps."""
    return any(name in container_format.split(",") for name in ("mp4", "mov", "matroska", "webm"))


def _stream_fps(stream) -> float:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return float(rate) if rate else 0.0


def probe(path: str | os.PathLike, source: VideoSource | None = None) -> VideoInfo:
    """Read the container header (no decoding). Raises VideoReadError for unreadable files.
    `source`: an open input of `path` to read instead of opening it again."""
    container, size, owned = _opened(path, source)
    try:
        stream = container.streams.video[0]
        ctx = stream.codec_context
        fps = _stream_fps(stream)
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / 1_000_000
        else:
            duration = 0.0
        num_frames = int(stream.frames or 0)
        if duration <= 0 and num_frames and fps:
            duration = num_frames / fps
        bit_rate = int(stream.bit_rate or container.bit_rate or 0)
        if not bit_rate and duration > 0:
            bit_rate = int(8 * size / duration)
        if ctx.width <= 0 or ctx.height <= 0:
            raise VideoReadError(path, f"video stream has no frame size (got {ctx.width}x{ctx.height})")
        return VideoInfo(
            path=str(path), container=container.format.name, codec=ctx.name, width=ctx.width,
            height=ctx.height, fps=fps, duration_s=duration, num_frames=num_frames, bit_rate=bit_rate,
            size_bytes=size,
        )
    finally:
        if owned:
            container.close()


def scaled_size(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    """(w, h) with the long side at most `max_side`, both even (what swscale and codecs like)."""
    if not max_side or max(width, height) <= max_side:
        return width, height
    scale = max_side / max(width, height)
    return max(2, int(round(width * scale / 2)) * 2), max(2, int(round(height * scale / 2)) * 2)


@dataclass(frozen=True)
class Frame:
    index: int  # presentation order from 0
    time: float  # seconds from the stream start
    image: np.ndarray | None  # (H, W, 3) uint8 in `fmt`, or None when not requested
    extra: np.ndarray | None = None  # a second size of the same frame, when `want_extra` asked for it
    pts: int | None = None  # the decoder's pts (in AVI: the guessed pts of the packet that held it)


def iter_frames(
    path: str | os.PathLike, *, max_side: int | None = None, fmt: str = "bgr24",
    want=None, threads: int = 1, check_truncation: bool = True,
    extra_max_side: int | None = None, want_extra=None, image_fn=None, stream_info: dict | None = None,
    source: VideoSource | None = None,
) -> Iterator[Frame]:
    """Decode every frame in order; convert (and resize) only the frames `want(index, time)` accepts.
    Frames `want_extra(index, time)` accepts also get `extra`, the frame at `extra_max_side`
    (one decoding pass serving two consumers, e.g. cut detection and 2 fps scoring samples).
    `image_fn(av_frame)`, when given, makes `image` instead of `to_ndarray(fmt, max_side)` (e.g.
    `small_bgr`, which skips swscale).
    `stream_info`, when given, receives what a caller would otherwise open the file again for:
    "keyframe_pts" (pts of every keyframe packet, in decode order, as `keyframe_times` reads them),
    "start_pts" and "time_base" of the stream, and "start_offset_s" (stream start - container start).
    `source`: an open input of `path` to decode from (it must not have been read: a fresh `VideoSource`,
    or one that only probed).

    Raises VideoReadError when nothing decodes, when decoding fails part-way, or (with
    `check_truncation`) when clearly fewer frames decode than the container header declares.
    """
    import av
    from av.video.reformatter import VideoReformatter

    # one reformatter for the whole pass: `frame.to_ndarray(width=...)` makes a new one (and a new
    # swscale context) for every frame, which costs more than the conversion on small frames.
    # swscale runs on the decoder's thread budget: PyAV >= 17 otherwise starts a thread per core
    # for every conversion (the same pixels, more CPU, and a pool that already has a worker per core
    # oversubscribed)
    reformatter = VideoReformatter()

    def convert(frame, width=None, height=None):
        return reformatter.reformat(frame, format=fmt, width=width, height=height, threads=threads).to_ndarray()

    container, _, owned = _opened(path, source)
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO" if threads != 1 else "SLICE"
        stream.codec_context.thread_count = threads
        declared = int(stream.frames or 0)
        start = stream.start_time or 0
        tb = float(stream.time_base) if stream.time_base else 0.0
        fps = _stream_fps(stream)
        use_pts = has_presentation_times(container.format.name) or not fps
        size = None
        index = 0

        def decoded():  # what container.decode(stream) does, noting the keyframe packets on the way
            if stream_info is None:
                yield from container.decode(stream)
                return
            keys = stream_info["keyframe_pts"] = []
            stream_info.update(start_pts=start, time_base=tb, start_offset_s=(
                float(start * stream.time_base) - (container.start_time or 0) / 1_000_000 if tb else 0.0))
            for packet in container.demux(stream):
                if packet.is_keyframe and packet.pts is not None:
                    keys.append(packet.pts)
                yield from packet.decode()

        try:
            for frame in decoded():
                if use_pts and frame.pts is not None and tb:
                    time = (frame.pts - start) * tb
                else:
                    time = index / fps if fps else float(index)
                image = None
                if image_fn is not None:
                    if want is None or want(index, time):
                        image = image_fn(frame)
                elif want is None or want(index, time):
                    if size is None:
                        size = scaled_size(frame.width, frame.height, max_side)
                    if (frame.width, frame.height) == size:
                        image = convert(frame)
                    else:
                        image = convert(frame, size[0], size[1])
                extra = None
                if want_extra is not None and want_extra(index, time):
                    esize = scaled_size(frame.width, frame.height, extra_max_side)
                    if image is not None and image_fn is None and esize == size:
                        extra = image
                    elif esize == (frame.width, frame.height):
                        extra = convert(frame)
                    else:
                        extra = convert(frame, esize[0], esize[1])
                yield Frame(index, float(time), image, extra, frame.pts)
                index += 1
        except av.error.FFmpegError as err:
            raise VideoReadError(path, f"decoding failed after {index} frames ({_ffmpeg_message(err)})") from err
        if index == 0:
            raise VideoReadError(path, "video stream has no decodable frames")
        if check_truncation and declared > 0 and index < 0.95 * declared - 2:
            raise VideoReadError(path, f"truncated: decoded {index} of {declared} frames the header declares")
    finally:
        if owned:
            container.close()


def _plane(p) -> np.ndarray:
    """A frame's plane (`frame.planes[i]`) as a uint8 array, in place."""
    return np.frombuffer(p, np.uint8).reshape(p.height, p.line_size)[:, : p.width]


def small_size(width: int, height: int, max_side: int) -> tuple[int, int, int]:
    """(factor, w, h) for `small_bgr`: an integer factor bringing the long side near `max_side`
    (like PySceneDetect's integer downscale), w and h even."""
    factor = max(1, round(max(width, height) / max_side))
    return factor, max(2, (width // factor) // 2 * 2), max(2, (height // factor) // 2 * 2)


def small_bgr(frame, max_side: int, interpolation: int | None = None, threads: int = 1) -> np.ndarray:
    """A decoded PyAV frame as a small BGR image, fast: for 8-bit 4:2:0 frames the Y, U, V planes
    are read in place, shrunk by an integer factor (edge pixels beyond a multiple of the factor are
    cropped) and converted with cv2 (BT.601, limited range, as swscale's default); about 5x cheaper
    than swscale's scaled BGR conversion. The shrink is bilinear by default (cv2 INTER_LINEAR, what
    PySceneDetect's own downscale uses: a 2x2 box at factor 2, a sparse sample of the plane at larger
    factors, ~4x cheaper than a box filter on HD planes); `interpolation=cv2.INTER_AREA` gives the
    box filter. Other pixel formats go through swscale at the same size, on `threads` threads."""
    import cv2

    factor, w, h = small_size(frame.width, frame.height, max_side)
    if frame.format.name != "yuv420p":
        return frame.to_ndarray(format="bgr24", width=w, height=h, threads=threads)
    buf = np.empty((h * 3 // 2, w), np.uint8)
    uv = buf[h:].reshape(2, h // 2, w // 2)
    planes = frame.planes  # (PyAV builds the plane objects on every access)
    y = _plane(planes[0])[: h * factor, : w * factor]
    u = _plane(planes[1])[: h * factor // 2, : w * factor // 2]
    v = _plane(planes[2])[: h * factor // 2, : w * factor // 2]
    if factor == 1:
        buf[:h], uv[0], uv[1] = y, u, v
    else:
        mode = cv2.INTER_LINEAR if interpolation is None else interpolation
        cv2.resize(y, (w, h), dst=buf[:h], interpolation=mode)
        cv2.resize(u, (w // 2, h // 2), dst=uv[0], interpolation=mode)
        cv2.resize(v, (w // 2, h // 2), dst=uv[1], interpolation=mode)
    return cv2.cvtColor(buf, cv2.COLOR_YUV2BGR_I420)


def keyframe_times(path: str | os.PathLike) -> list[float]:
    """Presentation times (s, from stream start) of the keyframes, read from packets without decoding."""
    container, _ = _open(path)
    try:
        stream = container.streams.video[0]
        start = stream.start_time or 0
        tb = float(stream.time_base)
        pts = [packet.pts for packet in container.demux(stream) if packet.is_keyframe and packet.pts is not None]
        return keyframe_times_from_pts(pts, start, tb)
    finally:
        container.close()


def keyframe_times_from_pts(keyframe_pts: list[int], start_pts: int, time_base: float) -> list[float]:
    """`keyframe_times` from keyframe packet pts noted during a decoding pass (`iter_frames(stream_info=)`)."""
    return sorted((p - start_pts) * time_base for p in keyframe_pts)
