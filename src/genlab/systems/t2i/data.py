"""The demo's data: scikit-learn's bundled 8x8 digits with captions "a handwritten digit seven"."""

from __future__ import annotations

import torch

from genlab.errors import GenlabError

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def digit_caption(label: int) -> str:
    return f"a handwritten digit {DIGIT_WORDS[int(label)]}"


def load_digits() -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """(images (1797, 1, 8, 8) in [-1, 1], labels (1797,), captions)."""
    try:
        from sklearn.datasets import load_digits as sk_load
    except ImportError:
        raise GenlabError("the digits demo needs scikit-learn (pip install 'genlab[t2i]')") from None
    d = sk_load()
    images = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0 * 2.0 - 1.0
    labels = torch.tensor(d.target, dtype=torch.long)
    return images, labels, [digit_caption(int(y)) for y in labels]
