"""A small MNIST classifier we train ourselves: the feature extractor for Fréchet distance and the judge of
conditional accuracy in the SD3 formulation study.

Deterministic (fixed seed, one thread, fixed data order) and cached: weights are stored as safetensors with
a JSON record (config, test accuracy) under $GENLAB_CACHE/classifiers, keyed by the config and the data.
`default()` reaches >= 98% on the MNIST test set (about 99%); `quick()` is a few-second version for tests.
Features are the 128-d penultimate activations (after ReLU), like FID's pool features.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from genlab.core.io import atomic_write_text
from genlab.core.io import cache_dir as shared_cache_dir
from genlab.errors import GenlabError


@dataclass(frozen=True)
class ClassifierConfig:
    channels: tuple[int, int] = (16, 32)
    features: int = 128
    epochs: int = 2
    batch_size: int = 128
    lr: float = 1e-3
    train_images: int = 60_000  # first n of the training set
    seed: int = 0


def default() -> ClassifierConfig:
    return ClassifierConfig()


def quick() -> ClassifierConfig:
    return ClassifierConfig(channels=(8, 16), features=64, epochs=1, train_images=10_000, lr=3e-3)


class MNISTClassifier(nn.Module):
    """conv3x3-ReLU-pool x2 -> Linear(features) -> ReLU -> Linear(10). Input (B, 1, 28, 28) in [0, 1]."""

    def __init__(self, config: ClassifierConfig):
        super().__init__()
        c1, c2 = config.channels
        self.conv = nn.Sequential(
            nn.Conv2d(1, c1, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (B, c1, 14, 14)
            nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (B, c2, 7, 7)
        )
        self.fc = nn.Linear(c2 * 49, config.features)
        self.head = nn.Linear(config.features, 10)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.fc(self.conv(x - 0.1307).flatten(1)))  # (B, features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))  # (B, 10) logits


def to_input(images) -> torch.Tensor:
    """uint8 (N, 28, 28) or float in [0, 1] (N, 28, 28) / (N, 1, 28, 28) -> float (N, 1, 28, 28)."""
    x = torch.as_tensor(np.asarray(images)) if not isinstance(images, torch.Tensor) else images
    x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4 or x.shape[1:] != (1, 28, 28):
        raise GenlabError(f"classifier input: expected (N, 1, 28, 28) images, got shape {tuple(x.shape)}")
    return x


@torch.no_grad()
def batched(fn, x: torch.Tensor, batch: int = 1000) -> torch.Tensor:
    return torch.cat([fn(x[i : i + batch]) for i in range(0, len(x), batch)])


def _key(config: ClassifierConfig, train_images: np.ndarray, train_labels: np.ndarray) -> str:
    h = hashlib.sha256(json.dumps(asdict(config), sort_keys=True).encode())
    h.update(np.ascontiguousarray(train_images[: config.train_images]).tobytes())
    h.update(np.ascontiguousarray(train_labels[: config.train_images]).tobytes())
    return h.hexdigest()[:16]


def train(config: ClassifierConfig, images: np.ndarray, labels: np.ndarray, progress: bool = False) -> MNISTClassifier:
    """Deterministic training (seeded init and order, single thread for the duration)."""
    from tqdm.auto import tqdm

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(config.seed)
        model = MNISTClassifier(config)
        x = to_input(images[: config.train_images])
        y = torch.as_tensor(labels[: config.train_images], dtype=torch.long)
        opt = torch.optim.Adam(model.parameters(), lr=config.lr)
        g = torch.Generator().manual_seed(config.seed)
        steps = config.epochs * ((len(x) + config.batch_size - 1) // config.batch_size)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=config.lr * 3, total_steps=steps)
        bar = tqdm(total=steps, disable=not progress, desc="mnist classifier", leave=False)
        for _ in range(config.epochs):
            order = torch.randperm(len(x), generator=g)
            for i in range(0, len(x), config.batch_size):
                idx = order[i : i + config.batch_size]
                loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                bar.update()
        bar.close()
    finally:
        torch.set_num_threads(threads)
    return model.eval()


def accuracy(model: MNISTClassifier, images, labels) -> float:
    pred = batched(model, to_input(images)).argmax(1).numpy()
    return float((pred == np.asarray(labels)).mean())


def default_cache_dir() -> Path:
    return shared_cache_dir("classifiers")


def train_or_load(
    config: ClassifierConfig | None = None, cache_dir: str | os.PathLike | None = None, progress: bool = False
) -> tuple[MNISTClassifier, dict]:
    """The cached MNIST classifier for `config` and its record {"config", "test_accuracy", "key"}."""
    from safetensors.torch import load_file

    from genlab.core.data.mnist import load_mnist
    from genlab.core.train.checkpoint import save_weights

    config = config or default()
    train_set, test_set = load_mnist("train"), load_mnist("test")
    key = _key(config, train_set.images, train_set.labels)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    weights, record_path = cache / f"mnist_classifier_{key}.safetensors", cache / f"mnist_classifier_{key}.json"
    if weights.is_file() and record_path.is_file():
        model = MNISTClassifier(config)
        try:
            model.load_state_dict(load_file(weights))
            return model.eval(), json.loads(record_path.read_text())
        except Exception:  # a corrupt cache entry is retrained, never trusted
            pass
    model = train(config, train_set.images, train_set.labels, progress=progress)
    record = {"config": asdict(config), "test_accuracy": accuracy(model, test_set.images, test_set.labels), "key": key}
    text = json.dumps(record, indent=1)
    save_weights(weights, model.state_dict())
    atomic_write_text(record_path, text)
    return model, json.loads(text)  # the record as every later call reads it back (tuples become lists)
