"""Scenes from cuts, and clip files written without re-encoding where keyframes allow.

A stream copy can only start on a keyframe. When a keyframe lies at the scene start or at most
`max_snap_s` after it, the clip is copied from that keyframe (the scene loses those first frames).
Otherwise, when the clip is an MP4 file of a source with real presentation times, it is copied from
the keyframe before the scene start and an MP4 edit list hides that preroll ("copy_editlist": the
file holds the preroll's packets, but ffmpeg/PyAV/OpenCV decode exactly the scene's frames, as after
`ffmpeg -ss T -i SRC -c copy OUT.mp4`); only when that is impossible either (Matroska output, AVI
source, B-frames reordering across the clip end) is it re-encoded (libx264) from the exact first
frame, or, with `reencode=False`, skipped. Encoders usually put a keyframe on a hard cut, so most
clips of edited video are plain copies.
"""

from __future__ import annotations

import bisect
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genlab.core.data.video import VideoSource
from genlab.core.io import atomic_path
from genlab.errors import GenlabError
from genlab.systems.video.curation.config import ClipConfig

# codecs an .mp4 holds; anything else is copied into .mkv
_MP4_CODECS = {"h264", "hevc", "av1", "vp9", "mpeg4"}


@dataclass(frozen=True)
class Scene:
    start_frame: int
    end_frame: int  # exclusive
    start_s: float
    end_s: float  # start time of the first frame after the scene
    # what made each boundary: "start"/"end" of the video, a cut detector ("content@1/1", "fade",
    # "dissolve", ...), "fade" where dark frames were dropped, "max_len" for a split of a long shot
    start_by: str = "start"
    end_by: str = "end"


def scenes_from_cuts(cuts: list[int], frame_times: np.ndarray, fps: float, min_clip_s: float,
                     detectors: list[str] | None = None, dark: list[tuple[int, int]] = (),
                     max_clip_s: float | None = None, scores=None,
                     transitions: list[tuple[int, int]] = ()) -> list[Scene]:
    """Scenes between cuts, without the dark frames (`dark`: [first, end) runs, never in a clip),
    shots longer than `max_clip_s` split at their frames of least change (`scores`: each frame's
    content score against the previous one), never inside `transitions` ([first, last] frames of
    dissolves), then only those of at least `min_clip_s`."""
    n = len(frame_times)
    frame_dt = 1.0 / fps if fps > 0 else 0.04
    names = dict(zip(cuts, detectors or ["cut"] * len(cuts)))
    bounds = [(0, "start"), *[(c, names[c]) for c in sorted(cuts) if 0 < c < n], (n, "end")]
    pieces: list[tuple[int, int, str, str]] = []
    for (a, by_a), (b, by_b) in zip(bounds[:-1], bounds[1:]):
        for da, db in dark:  # cut the dark runs out
            if db <= a or da >= b:
                continue
            if da > a:
                pieces.append((a, da, by_a, "fade"))
            a, by_a = max(a, db), "fade"
        if b > a:
            pieces.append((a, b, by_a, by_b))
    if max_clip_s:
        max_frames = max(1, int(np.floor(max_clip_s * fps + 1e-6)))
        cost = np.zeros(n) if scores is None else np.asarray(scores, dtype=np.float64).copy()
        for a, b in transitions:
            cost[max(0, a):b + 2] = np.inf  # no split inside a transition (nor on its first frame after)
        pieces = [p for piece in pieces for p in _split_long(piece, max_frames, cost)]
    out = []
    for a, b, by_a, by_b in pieces:
        start = float(frame_times[a])
        end = float(frame_times[b]) if b < n else float(frame_times[-1]) + frame_dt
        if end - start >= min_clip_s - 1e-6:
            out.append(Scene(a, b, start, end, by_a, by_b))
    return out


def _split_long(piece: tuple[int, int, str, str], max_frames: int, scores: np.ndarray) -> list[tuple[int, int, str, str]]:
    """Split [a, b) into the fewest parts of at most `max_frames`, each split at the frame of least
    change (lowest score; ties: nearest the equal split) within 20% of where an equal split would
    put it (and where the rest still fits)."""
    a, b, by_a, by_b = piece
    out = []
    while b - a > max_frames:
        parts = -(-(b - a) // max_frames)
        target = a + (b - a) / parts
        # late enough that the rest still fits in parts - 1 clips, early enough for this one to fit
        lo = max(a + 1, int(a + 0.8 * (target - a)), b - (parts - 1) * max_frames)
        hi = min(a + max_frames, int(np.ceil(a + 1.2 * (target - a))))
        frames = np.arange(lo, hi + 1)
        window = scores[lo:hi + 1]
        if len(window) and np.isfinite(window).any():
            split = int(frames[np.lexsort((np.abs(frames - target), window))[0]])  # least change, then nearest the target
        else:  # all in a transition: the last frame before it (one more, shorter part)
            free = np.flatnonzero(np.isfinite(scores[a + 1:hi + 1]))
            split = a + 1 + int(free[-1]) if len(free) else hi
        out.append((a, split, by_a, "max_len"))
        a, by_a = split, "max_len"
    out.append((a, b, by_a, by_b))
    return out


def ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


@dataclass(frozen=True)
class ClipPlan:
    method: str  # "copy" | "copy_editlist" | "reencode" | "skip"
    start_s: float  # actual start of the clip in the source (the first frame it shows)
    end_s: float
    key_s: float | None = None  # copy_editlist: the keyframe before start_s the packets start from


def copyable_container(container: str) -> bool:
    """Containers whose packets carry real presentation times (AVI does not: B-frames get guessed
    times, so a pts-based copy would be off by the reorder delay)."""
    from genlab.core.data.video import has_presentation_times

    return has_presentation_times(container)


def plan_clip(scene: Scene, keyframes: list[float], cfg: ClipConfig, frame_dt: float,
              copy_ok: bool = True, editlist_ok: bool = False) -> ClipPlan:
    """How to write `scene`: "copy" from a keyframe at most `max_snap_s` into it; else, when
    `editlist_ok` (MP4 output, source with real presentation times) and `cfg.editlist`,
    "copy_editlist" from the keyframe before it, frame-exact; else "reencode" (or "skip")."""
    eps = 0.25 * frame_dt
    i = bisect.bisect_left(keyframes, scene.start_s - eps)
    if copy_ok and i < len(keyframes):
        key = keyframes[i]
        if key <= scene.start_s + cfg.max_snap_s + eps and scene.end_s - key >= cfg.min_clip_s - eps:
            return ClipPlan("copy", key, scene.end_s)
    if copy_ok and editlist_ok and cfg.editlist and i > 0:
        return ClipPlan("copy_editlist", scene.start_s, scene.end_s, key_s=keyframes[i - 1])
    if cfg.reencode:
        return ClipPlan("reencode", scene.start_s, scene.end_s)
    return ClipPlan("skip", scene.start_s, scene.end_s)


def clip_suffix(codec: str, method: str) -> str:
    return ".mp4" if method == "reencode" or codec in _MP4_CODECS else ".mkv"


def editlist_possible(codec: str, container: str) -> bool:
    """A "copy_editlist" clip needs MP4 output (Matroska has no edit lists that players honour
    for video) and a source whose packets carry real presentation times."""
    return clip_suffix(codec, "copy") == ".mp4" and copyable_container(container)


def _input(src, source: VideoSource | None):
    """A context giving the input container: `source`'s (left open) or `src` opened for this copy."""
    from contextlib import nullcontext

    import av

    return nullcontext(source.container()) if source is not None else av.open(str(src))


class NeedsReencode(Exception):
    """The GOP structure does not allow a clean stream copy of this range."""


def copy_clip(src: str | os.PathLike, dst: str | os.PathLike, plan: ClipPlan, frame_dt: float,
              source: VideoSource | None = None) -> int:
    """Remux the packets whose presentation time lies in [start, end) (video only), starting on the
    keyframe at `plan.start_s` ("copy") or at `plan.key_s` ("copy_editlist": the packets from that
    keyframe to the scene start are kept with negative timestamps, and the MP4 muxer writes an edit
    list that starts presentation at the scene start). Raises NeedsReencode when a kept frame comes
    after a dropped one in decode order (a B-frame that may reference a frame beyond the end) or
    when no keyframe starts it. Returns the number of packets written. `source`: an open `src` to reuse."""
    import av

    dst = Path(dst)
    with _input(src, source) as inp:
        ist = inp.streams.video[0]
        tb = ist.time_base
        t0 = ist.start_time or 0
        shift = t0 + int(round(plan.start_s / tb))  # the first presented frame gets pts 0
        start_pts = shift if plan.key_s is None else t0 + int(round(plan.key_s / tb))
        end_pts = t0 + int(round((plan.end_s - 0.5 * frame_dt) / tb))  # frames starting before the next scene
        tol = max(1, int(round(0.25 * frame_dt / tb)))
        if plan.key_s is not None and dst.suffix != ".mp4":
            raise NeedsReencode("an edit list needs MP4 output")
        inp.seek(start_pts + tol, stream=ist, backward=True, any_frame=False)
        with atomic_path(dst) as tmp:
            fmt = "mp4" if dst.suffix == ".mp4" else "matroska"
            with av.open(str(tmp), "w", format=fmt) as out:
                ost = out.add_stream_from_template(ist)
                started, dropped_tail, written = False, False, 0
                for pkt in inp.demux(ist):
                    if pkt.pts is None or pkt.size == 0:
                        continue
                    if not started:
                        if pkt.is_keyframe and abs(pkt.pts - start_pts) <= tol:
                            started = True
                        elif pkt.pts > start_pts + tol and pkt.dts is not None and pkt.dts > start_pts + tol:
                            raise NeedsReencode("no keyframe at the planned start")
                        else:
                            continue
                    if pkt.dts is not None and pkt.dts > end_pts:
                        break
                    if pkt.pts < start_pts - tol:
                        continue  # open-GOP leading frame of the previous scene
                    if pkt.pts > end_pts:
                        dropped_tail = True
                        continue
                    if dropped_tail:
                        raise NeedsReencode("B-frames reorder across the clip end")
                    pkt.pts -= shift
                    if pkt.dts is not None:
                        pkt.dts -= shift
                    pkt.stream = ost
                    out.mux(pkt)
                    written += 1
                if not started or written == 0:
                    raise NeedsReencode("nothing to copy")
    return written


def _pts_index(frame_pts: list[int | None] | None) -> dict[int, int] | None:
    """packet pts -> presentation index, when every decoded frame has a distinct pts (else None)."""
    if not frame_pts or any(p is None for p in frame_pts):
        return None
    index = {p: i for i, p in enumerate(frame_pts)}
    return index if len(index) == len(frame_pts) else None


def keyframe_times_by_index(keyframe_pts: list[int], frame_pts, frame_times) -> list[float]:
    """Keyframe times for containers without real presentation times (AVI): a decoded frame's pts is
    the (guessed, decode-order) pts of the packet that held it, so a keyframe packet's pts names its
    frame in presentation order. `keyframe_pts`: the keyframe packets' pts (noted during the cut
    pass, see `iter_frames(stream_info=)`). Empty when the mapping is not usable."""
    index = _pts_index(frame_pts)
    if index is None:
        return []
    found = [index.get(p) for p in keyframe_pts]
    return sorted(float(frame_times[i]) for i in found if i is not None)


def copy_clip_by_index(src: str | os.PathLike, dst: str | os.PathLike, first: int, end: int,
                       frame_pts: list[int | None], fps: float, source: VideoSource | None = None) -> int:
    """Stream-copy frames [first, end) (presentation order) of a container without real presentation
    times (AVI with B-frames): `frame_pts` (from the decoding pass) tells which packet holds which
    frame. The clip's packets must be contiguous in decode order and start on a keyframe (then no
    frame in it references one outside); they get pts = presentation index and dts = decode index
    (shifted by the reorder delay). Raises NeedsReencode otherwise. Returns the packets written."""
    from fractions import Fraction

    import av

    index = _pts_index(frame_pts)
    if index is None:
        raise NeedsReencode("frames have no distinct decoder timestamps")
    want = {frame_pts[i]: i for i in range(first, end)}
    dst = Path(dst)
    with _input(src, source) as inp:
        ist = inp.streams.video[0]
        inp.seek(frame_pts[first], stream=ist, backward=True, any_frame=False)
        items = []
        for pkt in inp.demux(ist):
            if pkt.size == 0 or pkt.pts is None:
                continue
            i = want.get(pkt.pts)
            if i is None:
                if items:
                    raise NeedsReencode("the clip's packets are not contiguous in decode order")
                continue
            if not items and not pkt.is_keyframe:
                raise NeedsReencode("the clip does not start on a keyframe packet")
            items.append((pkt, i - first))
            if len(items) == end - first:
                break
        if len(items) != end - first:
            raise NeedsReencode(f"found {len(items)} of {end - first} packets")
        delay = max(0, max(j - p for j, (_, p) in enumerate(items)))
        rate = Fraction(fps).limit_denominator(100000)
        with atomic_path(dst) as tmp:
            fmt = "mp4" if dst.suffix == ".mp4" else "matroska"
            with av.open(str(tmp), "w", format=fmt) as out:
                ost = out.add_stream_from_template(ist)
                for j, (pkt, p) in enumerate(items):
                    pkt.time_base = 1 / rate
                    pkt.pts, pkt.dts, pkt.duration = p, j - delay, 1
                    pkt.stream = ost
                    out.mux(pkt)
    return len(items)


def write_clip(src: str | os.PathLike, dst: str | os.PathLike, plan: ClipPlan, cfg: ClipConfig,
               frame_dt: float, start_offset_s: float = 0.0, frames: tuple[int, int] | None = None,
               exact_seek: bool = True, frame_pts: list[int | None] | None = None,
               source: VideoSource | None = None, threads: int = 1) -> str:
    """Write one clip (video stream only, atomically); returns the method used ("copy",
    "copy_editlist" or "reencode").

    Copies with PyAV when the plan says so and the packets allow it, otherwise re-encodes with the
    ffmpeg binary of imageio-ffmpeg (libx264). `frames` = (first, end) frame indices of the clip:
    with `exact_seek` (containers with real timestamps) ffmpeg seeks to the start time and stops
    after end - first frames; without it frames are selected by index from the file start, and a
    copy (given `frame_pts` from the decoding pass) maps packets to frames by index. A re-encode decodes
    and encodes on `threads` threads: one per worker like every other stage (ffmpeg's default, a thread
    per core and more, oversubscribes a pool that already has a worker per core), and x264's output then
    does not depend on the machine's core count."""
    dst = Path(dst)
    if plan.method == "copy_editlist":
        try:
            copy_clip(src, dst, plan, frame_dt, source)
            return "copy_editlist"
        except NeedsReencode:
            if not cfg.reencode:
                raise
            plan = ClipPlan("reencode", plan.start_s, plan.end_s)
    elif plan.method == "copy":
        try:
            if exact_seek:
                copy_clip(src, dst, plan, frame_dt, source)
            elif frames is not None and frame_pts is not None:
                copy_clip_by_index(src, dst, frames[0], frames[1], frame_pts, 1.0 / frame_dt, source)
            else:
                raise NeedsReencode("no presentation times and no frame index")
            return "copy"
        except NeedsReencode:
            if not cfg.reencode:
                raise
    elif plan.method != "reencode":
        raise GenlabError(f"write_clip: method {plan.method!r} writes nothing")
    duration = max(frame_dt, plan.end_s - plan.start_s - 0.5 * frame_dt)
    start = plan.start_s + start_offset_s
    enc = ["-threads", str(threads), "-c:v", "libx264", "-preset", cfg.preset, "-crf", str(cfg.crf), "-pix_fmt", "yuv420p"]
    if frames is not None and not exact_seek:
        first, end = frames
        args = ["-threads", str(threads), "-i", str(src), "-map", "0:v:0", "-vf", f"select='between(n\\,{first}\\,{end - 1})',setpts=N/FRAME_RATE/TB",
                "-fps_mode", "passthrough", "-frames:v", str(end - first), *enc]
    else:
        count = ["-frames:v", str(frames[1] - frames[0])] if frames is not None else []
        args = ["-ss", f"{start:.6f}", "-threads", str(threads), "-i", str(src), "-t", f"{duration:.6f}", *count, "-map", "0:v:0", *enc]
    with atomic_path(dst.with_suffix(".mp4")) as tmp:
        cmd = [ffmpeg_exe(), "-nostdin", "-v", "error", "-y", "-filter_threads", str(threads), *args, "-an", "-sn", "-dn", "-f", "mp4", str(tmp)]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"ffmpeg failed writing {dst.name}: {result.stderr.strip()[-300:]}")
    return "reencode"
