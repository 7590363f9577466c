"""Person segmentation behind one interface: `segmenter(image) -> mask`.

Every segmenter takes an RGB image (H, W, 3), uint8 or float in [0, 1], and returns a float32
mask (H, W) in [0, 1] (1 = person). Three implementations:

- `GivenMasks`: masks you already have (a renderer's, a dataset's), looked up by frame index.
- `MediaPipeSelfieSegmenter`: MediaPipe selfie segmentation (mediapipe==0.10.21, model inside the
  wheel, works offline). Imported lazily, so this module stays cheap.
- `ColourSegmenter`: pixels far from a known background, for toy worlds with flat backgrounds.

`largest_components` splits a mask into connected components so callers can keep one-person
frames only.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from genlab.errors import GenlabError


class PersonSegmenter(Protocol):
    def __call__(self, image: np.ndarray) -> np.ndarray: ...


def as_float_image(image: np.ndarray, name: str = "image") -> np.ndarray:
    """(H, W, 3) float32 in [0, 1] from uint8 or float input; precise error otherwise."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise GenlabError(f"{name}: expected an RGB array of shape (H, W, 3), got {image.shape}")
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255.0
    image = image.astype(np.float32)
    if not np.isfinite(image).all():
        raise GenlabError(f"{name}: contains NaN or inf values")
    return image


def as_uint8_image(image: np.ndarray, name: str = "image") -> np.ndarray:
    image = np.asarray(image)
    if image.dtype == np.uint8:
        if image.ndim != 3 or image.shape[2] != 3:
            raise GenlabError(f"{name}: expected an RGB array of shape (H, W, 3), got {image.shape}")
        return image
    return (np.clip(as_float_image(image, name), 0, 1) * 255 + 0.5).astype(np.uint8)


class GivenMasks:
    """Masks known in advance; call `seg.at(i)` or use it as an iterator-backed segmenter."""

    def __init__(self, masks: list[np.ndarray] | np.ndarray):
        self.masks = [np.asarray(m, dtype=np.float32) for m in masks]
        self._next = 0

    def at(self, index: int) -> np.ndarray:
        if not 0 <= index < len(self.masks):
            raise GenlabError(f"GivenMasks: frame {index} out of range (have {len(self.masks)} masks)")
        return self.masks[index]

    def __call__(self, image: np.ndarray) -> np.ndarray:
        mask = self.at(self._next)
        self._next += 1
        if mask.shape != np.asarray(image).shape[:2]:
            raise GenlabError(f"GivenMasks: mask shape {mask.shape} != image shape {np.asarray(image).shape[:2]}")
        return mask


class ColourSegmenter:
    """Person = pixels whose colour differs from the background image by more than `threshold`."""

    def __init__(self, background: np.ndarray, threshold: float = 0.08):
        self.background = as_float_image(background, "background")
        self.threshold = threshold

    def __call__(self, image: np.ndarray) -> np.ndarray:
        image = as_float_image(image)
        if image.shape != self.background.shape:
            raise GenlabError(f"ColourSegmenter: image {image.shape} != background {self.background.shape}")
        diff = np.abs(image - self.background).max(axis=-1)
        return (diff > self.threshold).astype(np.float32)


class MediaPipeSelfieSegmenter:
    """MediaPipe selfie segmentation (model_selection=1, the landscape model shipped in the wheel)."""

    def __init__(self, model_selection: int = 1):
        try:
            from mediapipe.python.solutions import selfie_segmentation
        except ImportError as err:  # pragma: no cover - depends on the environment
            raise GenlabError(
                "MediaPipeSelfieSegmenter needs mediapipe==0.10.21 (the `pose` extra, installed --no-deps)"
            ) from err
        self._seg = selfie_segmentation.SelfieSegmentation(model_selection=model_selection)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        result = self._seg.process(np.ascontiguousarray(as_uint8_image(image)))
        if result.segmentation_mask is None:
            return np.zeros(np.asarray(image).shape[:2], dtype=np.float32)
        return np.asarray(result.segmentation_mask, dtype=np.float32)

    def close(self) -> None:
        self._seg.close()

    def __enter__(self) -> MediaPipeSelfieSegmenter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def largest_components(mask: np.ndarray, threshold: float = 0.5) -> list[np.ndarray]:
    """Connected components of mask > threshold as boolean arrays, largest first."""
    from scipy import ndimage

    labels, n = ndimage.label(np.asarray(mask) > threshold)
    if n == 0:
        return []
    sizes = ndimage.sum_labels(np.ones_like(labels), labels, index=np.arange(1, n + 1))
    order = np.argsort(-sizes)
    return [labels == (i + 1) for i in order]


def bbox(mask: np.ndarray, threshold: float = 0.5) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1), exclusive upper bounds, of mask > threshold; None if empty."""
    ys, xs = np.nonzero(np.asarray(mask) > threshold)
    if len(xs) == 0:
        return None
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
