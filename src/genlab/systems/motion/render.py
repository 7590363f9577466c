"""Stick-figure videos and plots of keypoints and programs."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from genlab.core.io import atomic_path
from genlab.core.pose.skeletons import get_skeleton
from genlab.errors import GenlabError
from genlab.systems.motion.program import Program

_COLORS = [(200, 40, 40), (40, 90, 200), (40, 160, 60)]  # per sequence drawn side by side (BGR order unused)


def draw_frames(sequences: list[np.ndarray], skeleton: str = "coco17", size: int = 384,
                labels: list[str] | None = None, colors: list[tuple[int, int, int]] | None = None,
                view: list[np.ndarray] | None = None) -> np.ndarray:
    """Render (T, J, 2) sequences as stick figures, one panel each, side by side: uint8 (T, H, W, 3).
    Every panel shares one view fitted to all sequences (or to the points in `view`), so they can be
    compared."""
    import cv2

    skel = get_skeleton(skeleton)
    T = max(s.shape[0] for s in sequences)
    pts = np.concatenate([s.reshape(-1, 2) for s in (view or sequences)])
    pts = pts[np.isfinite(pts).all(1)]
    if pts.size == 0:
        raise GenlabError("nothing to draw: every keypoint is NaN")
    lo, hi = pts.min(0), pts.max(0)
    span = float(max(hi - lo)) * 1.1 + 1e-9
    center = (lo + hi) / 2
    scale = size / span
    colors = colors or _COLORS
    frames = np.full((T, size, size * len(sequences), 3), 255, np.uint8)
    for k, seq in enumerate(sequences):
        color = colors[k % len(colors)]
        for t in range(min(T, seq.shape[0])):
            img = frames[t, :, k * size : (k + 1) * size]
            p = (seq[t] - center) * scale + size / 2
            for a, b in skel.bones:
                if np.isfinite(p[[a, b]]).all():
                    cv2.line(img, tuple(int(v) for v in p[a]), tuple(int(v) for v in p[b]), color, 2, cv2.LINE_AA)
            for q in p:
                if np.isfinite(q).all():
                    cv2.circle(img, (int(q[0]), int(q[1])), 3, (30, 30, 30), -1, cv2.LINE_AA)
            if labels:
                cv2.putText(img, labels[k], (8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
            cv2.putText(img, str(t), (8, size - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (90, 90, 90), 1, cv2.LINE_AA)
    return frames


def frame_clock(num_frames: int, rate: float) -> np.ndarray:
    """Times (in input frames) of the frames of a render at `rate` output frames per input frame:
    round(T * rate) of them, evenly spread from the first input frame to the last, so that every
    sequence drawn at these times starts and ends in step."""
    n = max(1, int(round(num_frames * rate)))
    return np.linspace(0.0, num_frames - 1.0, n)


def resample(keypoints: np.ndarray, t: np.ndarray) -> np.ndarray:
    """(T, J, 2) keypoints at frame times t (linear between frames; NaN where a neighbour is)."""
    kp = np.asarray(keypoints, np.float64)
    i0 = np.clip(np.floor(t).astype(int), 0, len(kp) - 1)
    i1 = np.minimum(i0 + 1, len(kp) - 1)
    a = (t - i0)[:, None, None]
    return kp[i0] * (1 - a) + kp[i1] * a


def write_video(frames: np.ndarray, path: str | Path, fps: float = 30.0) -> Path:
    """uint8 (T, H, W, 3) RGB -> H.264 .mp4 (yuv420p, through PyAV: browsers play it) or .gif,
    written atomically. Odd sizes are padded by one white pixel (yuv420p needs even sizes)."""
    from fractions import Fraction

    path = Path(path)
    if path.suffix.lower() not in (".mp4", ".gif"):
        raise GenlabError(f"video output must end in .mp4 or .gif, got {path.name}")
    frames = np.asarray(frames, np.uint8)
    if frames.ndim != 4 or frames.shape[0] == 0 or frames.shape[-1] != 3:
        raise GenlabError(f"video frames must be (T>0, H, W, 3) uint8, got shape {frames.shape}")
    with atomic_path(path) as tmp:
        if path.suffix.lower() == ".gif":
            from PIL import Image

            ims = [Image.fromarray(f) for f in frames]
            ims[0].save(tmp, format="GIF", save_all=True, append_images=ims[1:], duration=int(1000 / fps), loop=0)
        else:
            import av

            h, w = frames.shape[1:3]
            frames = np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), constant_values=255)
            with av.open(str(tmp), "w", format="mp4") as out:
                stream = out.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
                stream.width, stream.height = frames.shape[2], frames.shape[1]
                stream.pix_fmt = "yuv420p"
                stream.options = {"crf": "20", "preset": "veryfast"}
                for f in frames:
                    out.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")))
                out.mux(stream.encode())
    return path


def draw_overlay(video: str | Path, sequences: list[np.ndarray], frame_ids: np.ndarray, skeleton: str = "coco17",
                 colors: list[tuple[int, int, int]] | None = None, max_side: int = 960) -> np.ndarray:
    """The source video's frames `frame_ids` with (T, J, 2) pixel sequences drawn over them (one
    colour each; NaN points are not drawn): uint8 (T, H, W, 3) RGB, scaled so the longer side is at
    most `max_side`."""
    import av
    import cv2

    skel = get_skeleton(skeleton)
    colors = colors or [(40, 200, 60), (230, 60, 40)]
    want = {int(f): i for i, f in enumerate(frame_ids)}
    out: list[np.ndarray | None] = [None] * len(frame_ids)
    try:
        container = av.open(str(video))
    except Exception as e:  # av raises its own error types
        raise GenlabError(f"cannot open video {video}: {e}") from None
    with container:
        for n, frame in enumerate(container.decode(video=0)):
            if n > max(want):
                break
            if n not in want:
                continue
            img = frame.to_ndarray(format="rgb24")
            k = min(1.0, max_side / max(img.shape[:2]))
            if k < 1.0:
                img = cv2.resize(img, (round(img.shape[1] * k), round(img.shape[0] * k)), interpolation=cv2.INTER_AREA)
            img = np.ascontiguousarray(img)
            for c, seq in enumerate(sequences):
                p = seq[want[n]] * k
                for a, b in skel.bones:
                    if np.isfinite(p[[a, b]]).all():
                        cv2.line(img, tuple(int(v) for v in p[a]), tuple(int(v) for v in p[b]), colors[c % len(colors)], 2,
                                 cv2.LINE_AA)
            cv2.putText(img, f"frame {n}", (8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
            out[want[n]] = img
    got = [f for f in out if f is not None]
    if not got:
        raise GenlabError(f"{video}: none of frames {int(min(want))}..{int(max(want))} could be decoded")
    blank = np.zeros_like(got[0])
    return np.stack([f if f is not None else blank for f in out])


def plot_program(program: Program, keypoints: np.ndarray | None, path: str | Path,
                 joints: tuple[str, ...] = ("left_wrist", "right_wrist", "left_ankle", "right_ankle")) -> Path:
    """x and y over time of a few joints: input dots, program line, segment boundaries, loop spans
    shaded gold, missing runs grey, and a strip of primitive types (stationary grey, line blue,
    circle orange)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from genlab.systems.motion.program import execute

    skel = get_skeleton(program.skeleton)
    rec = execute(program, rate=4.0, pixels=True)
    t_rec = np.arange(rec.shape[0]) / 4.0
    fig, axes = plt.subplots(len(joints) + 1, 1, figsize=(10, 2.0 * len(joints) + 1.2), sharex=True)
    bounds = program.boundaries()
    for ax, name in zip(axes[:-1], joints):
        j = skel.index(name)
        for c, lab in ((0, "x"), (1, "y")):
            if keypoints is not None:
                ax.plot(np.arange(len(keypoints)), keypoints[:, j, c], ".", ms=2, alpha=0.5)
            ax.plot(t_rec, rec[:, j, c], "-", lw=1, label=f"{lab} program")
        for b in bounds:
            ax.axvline(b, color="k", lw=0.3, alpha=0.4)
        for a, b, n in program.loop_spans():
            ax.axvspan(a, b, color="gold", alpha=0.15)
            ax.text(a, ax.get_ylim()[1], f"x{n}", fontsize=7, va="top")
        for a, b in program.missing_spans():
            ax.axvspan(a, b, color="grey", alpha=0.2)
        ax.set_ylabel(name, fontsize=8)
    kind_colors = {"stationary": (0.7, 0.7, 0.7), "line": (0.2, 0.4, 0.8), "circle": (0.9, 0.5, 0.1)}
    strip = np.ones((skel.num_joints, int(np.ceil(bounds[-1])), 3))
    for s, seg in enumerate(program.pieces()):  # missing runs stay white
        for j, k in enumerate(getattr(seg, "kinds", ())):
            strip[j, int(bounds[s]) : int(np.ceil(bounds[s + 1]))] = kind_colors[k]
    axes[-1].imshow(strip, aspect="auto", interpolation="nearest", extent=(0, bounds[-1], skel.num_joints, 0))
    axes[-1].set_ylabel("types", fontsize=8)
    axes[-1].set_xlabel("frame")
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip(".") or "png", dpi=100)
    plt.close(fig)
    return path
