"""The study's network: the t2i system's MM-DiT with a learned class token as its "text" stream.

SD3's study conditions on captions "a photo of a <class>"; on MNIST a class token carries the same
information. Index 10 is the learned null class used for classifier-free guidance.
"""

from __future__ import annotations

import torch
from torch import nn

from genlab.core.flow.formulation import Formulation
from genlab.systems.t2i.study.config import NetConfig

NULL_CLASS = 10


def time_scale(formulation: Formulation) -> float:
    """EDM's c_noise = ln(sigma)/4 spans about [-1.5, 1.1]; scaled by 250 it spans the same range of the
    sinusoidal embedding as the other formulations' 1000 t (a linear rescale, EDM's c_noise up to scale)."""
    return 250.0 if formulation.prediction == "edm" else 1.0


class StudyNet(nn.Module):
    """forward(x (B, 1, 28, 28), net_time (B,), labels (B,) in 0..10) -> (B, 1, 28, 28)."""

    def __init__(self, cfg: NetConfig, time_scale: float = 1.0):
        super().__init__()
        from genlab.systems.t2i.config import MMDiTConfig
        from genlab.systems.t2i.model import MMDiT

        self.cfg, self.time_scale = cfg, float(time_scale)
        self.backbone = MMDiT(MMDiTConfig(
            depth=cfg.depth, hidden_size=cfg.hidden_size, num_heads=cfg.num_heads, patch_size=cfg.patch_size,
            in_channels=1, out_channels=1, context_dim=cfg.cond_dim, pooled_dim=cfg.cond_dim,
            pos_embed_max_size=cfg.image_size // cfg.patch_size,
        ))
        self.class_token = nn.Embedding(NULL_CLASS + 1, cfg.cond_dim)  # (11, cond_dim)
        self.class_pooled = nn.Embedding(NULL_CLASS + 1, cfg.cond_dim)
        nn.init.normal_(self.class_token.weight, std=0.02)
        nn.init.normal_(self.class_pooled.weight, std=0.02)

    def forward(self, x: torch.Tensor, net_time: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        context = self.class_token(labels)[:, None]  # (B, 1, cond_dim)
        pooled = self.class_pooled(labels)  # (B, cond_dim)
        return self.backbone(x, net_time * self.time_scale, context, pooled)  # (B, 1, H, W)
