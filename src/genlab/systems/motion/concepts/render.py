"""Stick-figure video of keypoints (COCO-17 bones), with the current action written on each frame."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from genlab.errors import GenlabError


def render_video(keypoints: np.ndarray, path: str | Path, labels: list[str] | None = None, fps: float = 30.0,
                 size: tuple[int, int] = (480, 480)) -> Path:
    """Write an H.264 .mp4 (or .gif) of (T, 17, 2) keypoints; normalised inputs (body height 1) are
    fitted into the frame. Written to a temporary name and renamed."""
    import cv2

    from genlab.core.pose.skeletons import COCO17

    kp = np.asarray(keypoints, dtype=np.float64)
    if kp.ndim != 3 or kp.shape[1:] != (17, 2) or len(kp) == 0:
        raise GenlabError(f"render: expected keypoints (frames, 17, 2), got {kp.shape}")
    W, H = size
    lo, hi = np.nanmin(kp.reshape(-1, 2), 0), np.nanmax(kp.reshape(-1, 2), 0)
    scale = 0.85 * min(W / max(hi[0] - lo[0], 1e-6), H / max(hi[1] - lo[1], 1e-6))
    off = np.array([W, H]) / 2 - scale * (lo + hi) / 2
    px = kp * scale + off
    frames = []
    for t in range(len(px)):
        img = np.full((H, W, 3), 255, np.uint8)
        for i, j in COCO17.bones:
            a, b = px[t, i], px[t, j]
            color = (200, 60, 40) if "left" in COCO17.joints[j] else (40, 60, 200)
            cv2.line(img, (int(a[0]), int(a[1])), (int(b[0]), int(b[1])), color, 3, cv2.LINE_AA)
        if labels is not None:
            cv2.putText(img, labels[t], (10, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (0, 0, 0), 2, cv2.LINE_AA)
        frames.append(img)
    from genlab.systems.motion.render import write_video

    # the motion system's writer: H.264 MP4 through PyAV (browsers play it) or GIF, atomic
    write_video(np.stack(frames)[..., ::-1], path, fps=fps)  # drawn in OpenCV's BGR order
    return path
