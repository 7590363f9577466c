"""A small video classifier of the toy sprite clips, trained here on clean clips: the judge of text-to-video
samples (is the sprite the class the prompt asked for?) and the feature extractor for a Fréchet distance
between generated and real clips (core/eval `frechet_distance`), as FVD uses a video network's features.

Heads: the sprite class (colour, which fixes the direction) and the speed (px/frame). Features are the
penultimate activations (after ReLU). Deterministic: fixed seed, fixed data, fixed order.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from genlab.errors import GenlabError
from genlab.systems.video.data import COLOURS, SpriteConfig, make_clips


@dataclass(frozen=True)
class ClassifierConfig:
    channels: tuple[int, int] = (16, 32)
    features: int = 32
    clips: int = 2048
    steps: int = 300
    batch_size: int = 32
    lr: float = 3e-3
    seed: int = 7


class SpriteClassifier(nn.Module):
    """(N, T, 3, H, W) in [-1, 1] -> class logits (N, 4) and speed (N,); two 3D conv blocks, pooled over
    time and space (mean and max), a linear feature layer."""

    def __init__(self, config: ClassifierConfig):
        super().__init__()
        c1, c2 = config.channels
        self.conv = nn.Sequential(
            nn.Conv3d(3, c1, 3, padding=1), nn.ReLU(), nn.MaxPool3d((1, 2, 2)),
            nn.Conv3d(c1, c2, 3, padding=1), nn.ReLU(), nn.MaxPool3d((1, 2, 2)),
        )
        self.fc = nn.Linear(2 * c2, config.features)
        self.head = nn.Linear(config.features, len(COLOURS) + 1)

    def features(self, video: torch.Tensor) -> torch.Tensor:
        if video.ndim != 5 or video.shape[2] != 3:
            raise GenlabError(f"sprite classifier: expected clips (N, T, 3, H, W), got {tuple(video.shape)}")
        h = self.conv(video.clamp(-1, 1).transpose(1, 2))  # (N, c2, T, H/4, W/4)
        pooled = torch.cat([h.mean(dim=(2, 3, 4)), h.amax(dim=(2, 3, 4))], dim=1)
        return torch.relu(self.fc(pooled))

    def forward(self, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.head(self.features(video))
        return out[:, :-1], out[:, -1]

    @torch.no_grad()
    def predict(self, video: torch.Tensor, batch: int = 128) -> torch.Tensor:
        return torch.cat([self(video[i:i + batch])[0].argmax(1) for i in range(0, len(video), batch)])

    @torch.no_grad()
    def embed(self, video: torch.Tensor, batch: int = 128) -> torch.Tensor:
        return torch.cat([self.features(video[i:i + batch]) for i in range(0, len(video), batch)])


def train_classifier(sprite: SpriteConfig, config: ClassifierConfig | None = None,
                     progress: bool = False) -> tuple[SpriteClassifier, float]:
    """Trained on `config.clips` clean clips (seed config.seed); returns it and its accuracy on 256
    held-out clips (another seed)."""
    from tqdm.auto import tqdm

    config = config or ClassifierConfig()
    torch.manual_seed(config.seed)
    clips = make_clips(sprite, config.clips, seed=config.seed)
    model = SpriteClassifier(config)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    g = torch.Generator().manual_seed(config.seed)
    for _ in tqdm(range(config.steps), desc="sprite classifier", disable=not progress, leave=False):
        idx = torch.randint(0, len(clips), (config.batch_size,), generator=g)
        logits, speed = model(clips.video[idx])
        loss = nn.functional.cross_entropy(logits, clips.colour[idx]) + nn.functional.mse_loss(speed, clips.speed[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    model.eval()
    test = make_clips(sprite, 256, seed=config.seed + 1000)
    accuracy = float((model.predict(test.video) == test.colour).float().mean())
    return model, accuracy
