"""Stick-figure videos and plots of keypoints and programs."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from genlab.core.io import atomic_path
from genlab.core.pose.skeletons import get_skeleton
from genlab.errors import GenlabError
from genlab.systems.motion.program import KINDS, Program

_COLORS = [(200, 40, 40), (40, 90, 200), (40, 160, 60)]  # per sequence drawn side by side (BGR order unused)


def draw_frames(sequences: list[np.ndarray], skeleton: str = "coco17", size: int = 384,
                labels: list[str] | None = None, colors: list[tuple[int, int, int]] | None = None) -> np.ndarray:
    """Render (T, J, 2) sequences as stick figures, one panel each, side by side: uint8 (T, H, W, 3).
    Every panel shares one view fitted to all sequences so they can be compared."""
    import cv2

    skel = get_skeleton(skeleton)
    T = max(s.shape[0] for s in sequences)
    pts = np.concatenate([s.reshape(-1, 2) for s in sequences])
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


def write_video(frames: np.ndarray, path: str | Path, fps: float = 30.0) -> Path:
    """uint8 (T, H, W, 3) RGB -> .mp4 (mp4v) or .gif, written atomically."""
    path = Path(path)
    if path.suffix.lower() not in (".mp4", ".gif"):
        raise GenlabError(f"video output must end in .mp4 or .gif, got {path.name}")
    with atomic_path(path) as tmp:
        if path.suffix.lower() == ".gif":
            from PIL import Image

            ims = [Image.fromarray(f) for f in frames]
            ims[0].save(tmp, format="GIF", save_all=True, append_images=ims[1:], duration=int(1000 / fps), loop=0)
        else:
            import cv2

            tmp_mp4 = tmp.with_suffix(".mp4")
            h, w = frames.shape[1:3]
            vw = cv2.VideoWriter(str(tmp_mp4), cv2.VideoWriter_fourcc(*"mp4v"), float(fps), (w, h))
            if not vw.isOpened():
                raise GenlabError(f"OpenCV cannot write {path}")
            for f in frames:
                vw.write(f[..., ::-1])
            vw.release()
            tmp_mp4.replace(tmp)
    return path


def plot_program(program: Program, keypoints: np.ndarray | None, path: str | Path,
                 joints: tuple[str, ...] = ("left_wrist", "right_wrist", "left_ankle", "right_ankle")) -> Path:
    """x and y over time of a few joints: input dots, program line, segment boundaries, loop spans
    shaded, and a strip of primitive types (stationary grey, line blue, circle orange)."""
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
        ax.set_ylabel(name, fontsize=8)
    kind_colors = {"stationary": (0.7, 0.7, 0.7), "line": (0.2, 0.4, 0.8), "circle": (0.9, 0.5, 0.1)}
    strip = np.ones((skel.num_joints, int(np.ceil(bounds[-1])), 3))
    for s, seg in enumerate(program.segments()):
        for j, k in enumerate(seg.kinds):
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


def kinds_legend() -> str:
    return ", ".join(KINDS)
