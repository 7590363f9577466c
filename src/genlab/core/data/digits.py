"""scikit-learn's bundled 8x8 digits (1,797 images, 16 grey levels): tiny real data for demos and tests."""

from __future__ import annotations

import numpy as np

from genlab.core.data.mnist import ImageSet


def load_digits() -> ImageSet:
    """Digits as uint8 images in 0..255 (the original 0..16 levels scaled by 255/16) with labels."""
    from sklearn.datasets import load_digits as _load

    d = _load()
    images = np.clip(np.rint(d.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    return ImageSet(images, d.target.astype(np.int64))
