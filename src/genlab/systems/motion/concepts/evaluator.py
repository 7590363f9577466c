"""An in-repo action classifier on trimmed concept instances: the feature extractor of our FID
and the judge of "synthesised samples are classified as the requested concept".

A small 1-D conv net over the normalised 13-joint features, resampled to 32 frames. It is trained
on a separate seed stream of the synthetic dataset (mirrored performers included), never on the
test set. Its 64-d penultimate activations are the FID features (as in Action2Motion / ACTOR,
whose own extractor is not available here).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from genlab.systems.motion.concepts.config import ConceptConfig
from genlab.systems.motion.concepts.model import normalise
from genlab.systems.motion.concepts.programs import resample

FRAMES = 32


def clip_features(keypoints: np.ndarray, cfg: ConceptConfig, already_normalised: bool = False) -> np.ndarray:
    """(T, 17, 2) -> (F, 32) classifier input."""
    if already_normalised:
        feats = np.asarray(keypoints)[:, list(cfg.joints)].reshape(len(keypoints), -1)
    else:
        feats = normalise(keypoints, cfg).feats
    return resample(feats, FRAMES).T.astype(np.float32)


@dataclass
class ActionClassifier:
    net: object  # torch.nn.Module
    names: tuple[str, ...]
    cfg: ConceptConfig

    def _forward(self, clips: list[np.ndarray], normalised: bool):
        import torch

        x = torch.from_numpy(np.stack([clip_features(c, self.cfg, normalised) for c in clips]))
        with torch.no_grad():
            feats = self.net[:-1](x)
            logits = self.net[-1](feats)
        return feats.numpy(), logits.numpy()

    def features(self, clips: list[np.ndarray], normalised: bool = False) -> np.ndarray:
        return self._forward(clips, normalised)[0]

    def predict(self, clips: list[np.ndarray], normalised: bool = False) -> list[str]:
        return [self.names[i] for i in self._forward(clips, normalised)[1].argmax(1)]


def train_classifier(names: tuple[str, ...], per_class: int = 60, epochs: int = 40, seed: int = 5005,
                     cfg: ConceptConfig | None = None) -> ActionClassifier:
    import torch
    from torch import nn

    from genlab.systems.motion.concepts.dataset import make_example

    cfg = cfg or ConceptConfig()
    torch.manual_seed(seed)
    clips, ys = [], []
    for ci, c in enumerate(names):
        rng = np.random.default_rng([seed, ci])
        for _ in range(per_class):
            clips.append(clip_features(make_example(rng, c).keypoints, cfg))
            ys.append(ci)
    x = torch.from_numpy(np.stack(clips))
    y = torch.tensor(ys)
    F = x.shape[1]
    net = nn.Sequential(
        nn.Conv1d(F, 64, 5, padding=2), nn.ReLU(),  # (B, 64, 32)
        nn.Conv1d(64, 64, 5, padding=2, stride=2), nn.ReLU(),  # (B, 64, 16)
        nn.Conv1d(64, 64, 3, padding=1, stride=2), nn.ReLU(),  # (B, 64, 8)
        nn.AdaptiveAvgPool1d(1), nn.Flatten(),  # (B, 64): FID features
        nn.Linear(64, len(names)),
    )
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        perm = torch.randperm(len(y), generator=g)
        for i in range(0, len(y), 32):
            idx = perm[i:i + 32]
            loss = nn.functional.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    return ActionClassifier(net, tuple(names), cfg)
