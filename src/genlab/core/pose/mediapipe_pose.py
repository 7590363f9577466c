"""MediaPipe Pose (mediapipe==0.10.21) on images and videos: 33 keypoints for one person per frame.

Only `model_complexity=1` is supported: its model ships inside the wheel, the other complexities
download weights at run time. MediaPipe tracks a single person, so pass a region of interest
(`roi=(x, y, w, h)` in pixels) when several people are in view. Keypoints come back in pixels of
the full frame, NaN where no pose was found.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genlab.errors import GenlabError


@dataclass(frozen=True)
class PoseTrack:
    xy: np.ndarray  # (T, 33, 2) pixels, NaN where no pose was found
    visibility: np.ndarray  # (T, 33) in [0, 1], 0 where no pose
    fps: float
    size: tuple[int, int]  # (width, height) of the video frames
    skeleton: str = "mediapipe33"

    @property
    def found(self) -> np.ndarray:
        return np.isfinite(self.xy).all(axis=(1, 2))


class MediaPipePose:
    """`with MediaPipePose() as pose: xy, vis = pose(rgb_uint8)`; (33, 2) pixels or None."""

    def __init__(self, model_complexity: int = 1, static_image_mode: bool = False,
                 min_detection_confidence: float = 0.5, min_tracking_confidence: float = 0.5):
        if model_complexity != 1:
            raise GenlabError(
                f"MediaPipe Pose model_complexity={model_complexity} is not available offline; only 1 ships in the wheel"
            )
        try:
            import mediapipe as mp
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise GenlabError(f"MediaPipe is not installed (pip install mediapipe==0.10.21 --no-deps): {e}") from None
        self._pose = mp.solutions.pose.Pose(
            static_image_mode=static_image_mode, model_complexity=1, enable_segmentation=False,
            min_detection_confidence=min_detection_confidence, min_tracking_confidence=min_tracking_confidence,
        )

    def __call__(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
        if rgb.ndim != 3 or rgb.shape[2] != 3:
            raise GenlabError(f"MediaPipe Pose needs an RGB uint8 image (H, W, 3), got shape {rgb.shape}")
        res = self._pose.process(rgb)
        if res.pose_landmarks is None:
            return None
        h, w = rgb.shape[:2]
        lm = res.pose_landmarks.landmark
        xy = np.array([[p.x * w, p.y * h] for p in lm], dtype=np.float64)
        vis = np.array([p.visibility for p in lm], dtype=np.float64)
        return xy, vis

    def close(self) -> None:
        self._pose.close()

    def __enter__(self) -> MediaPipePose:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def parse_roi(text: str | None) -> tuple[int, int, int, int] | None:
    if text is None:
        return None
    try:
        x, y, w, h = (int(round(float(v))) for v in text.split(","))
    except ValueError:
        raise GenlabError(f"--roi must be x,y,w,h in pixels, got {text!r}") from None
    if w <= 0 or h <= 0 or x < 0 or y < 0:
        raise GenlabError(f"--roi needs x, y >= 0 and w, h > 0, got {text!r}")
    return x, y, w, h


def estimate_video(path: str | Path, roi: tuple[int, int, int, int] | None = None, scale: float = 0.5,
                   max_frames: int | None = None, progress: bool = True) -> PoseTrack:
    """Run MediaPipe Pose over a video (decoded with PyAV), optionally inside `roi` of the full
    frame and at `scale` of the original resolution (0.5 is faster and finds as many poses)."""
    import av

    path = Path(path)
    if not path.is_file():
        raise GenlabError(f"video not found: {path}")
    try:
        container = av.open(str(path))
    except Exception as e:  # av raises its own error types
        raise GenlabError(f"cannot open video {path}: {e}") from None
    with container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate or 30.0)
        total = stream.frames or None
        xs, vs = [], []
        size = None
        it = container.decode(stream)
        if progress:
            from tqdm import tqdm

            it = tqdm(it, total=max_frames or total, desc="pose", unit="frame")
        with MediaPipePose() as pose:
            for i, frame in enumerate(it):
                if max_frames is not None and i >= max_frames:
                    break
                img = frame.to_ndarray(format="rgb24")
                size = (img.shape[1], img.shape[0])
                x0 = y0 = 0
                if roi is not None:
                    x0, y0, w, h = roi
                    if x0 >= img.shape[1] or y0 >= img.shape[0]:
                        raise GenlabError(f"--roi {roi} lies outside the {img.shape[1]}x{img.shape[0]} frame")
                    img = img[y0 : y0 + h, x0 : x0 + w]
                if scale != 1.0:
                    import cv2

                    small = cv2.resize(img, (max(1, round(img.shape[1] * scale)), max(1, round(img.shape[0] * scale))),
                                       interpolation=cv2.INTER_AREA)
                else:
                    small = img
                out = pose(small)
                if out is None:
                    xs.append(np.full((33, 2), np.nan))
                    vs.append(np.zeros(33))
                else:
                    xy, vis = out
                    xs.append(xy / scale + np.array([x0, y0]))
                    vs.append(vis)
    if not xs:
        raise GenlabError(f"video {path} has no decodable frames")
    return PoseTrack(np.stack(xs), np.stack(vs), fps, size)
