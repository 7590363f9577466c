"""The reference-person image encoder: a CLIP vision transformer (ViT) with transformers' parameter
names, so `CLIPVisionModel` weights load with no renaming and the parity test compares both forward
passes; a tiny config of the same class is the trainable encoder of the toy.

    image (N, 3, S, S), CLIP-normalised -> patch conv (no bias) -> [CLS] + patches + positions
      -> pre_layrnorm -> L x (LN, self-attention, residual; LN, MLP quick_gelu, residual)
      -> last_hidden_state (N, 1 + (S/p)^2, D)      (257 tokens for ViT-L/14 at 224 px)

The paper conditions the UNet on all 257 tokens of the last layer through Linear-SiLU-Linear
(1024 -> 768); `ReferenceProjection` is that MLP.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional

from genlab.errors import GenlabError

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class ViTConfig:
    image_size: int = 224
    patch_size: int = 14
    hidden_size: int = 1024
    intermediate_size: int = 4096
    num_hidden_layers: int = 24
    num_attention_heads: int = 16
    layer_norm_eps: float = 1e-5
    hidden_act: str = "quick_gelu"  # CLIP's x * sigmoid(1.702 x); "gelu" for the toy is also fine

    @property
    def num_tokens(self) -> int:
        return 1 + (self.image_size // self.patch_size) ** 2


def clip_vit_l14(**overrides) -> ViTConfig:
    """openai/clip-vit-large-patch14 vision tower: 24 layers, 1024 wide, 257 tokens."""
    return replace(ViTConfig(), **overrides)


def toy_vit(**overrides) -> ViTConfig:
    """A tiny ViT for 32 px references: 4 px patches -> 65 tokens, 2 layers, 64 wide."""
    return replace(ViTConfig(image_size=32, patch_size=4, hidden_size=64, intermediate_size=128,
                             num_hidden_layers=2, num_attention_heads=4, hidden_act="gelu"), **overrides)


class _Embeddings(nn.Module):
    def __init__(self, c: ViTConfig):
        super().__init__()
        self.class_embedding = nn.Parameter(torch.randn(c.hidden_size) * 0.02)
        self.patch_embedding = nn.Conv2d(3, c.hidden_size, c.patch_size, c.patch_size, bias=False)
        self.position_embedding = nn.Embedding(c.num_tokens, c.hidden_size)
        # CLIP's own init (std 0.02): nn.Embedding's default N(0, 1) swamps the patch embeddings, so a
        # trained-from-scratch toy ViT saw its reference as a small perturbation of the positions
        nn.init.normal_(self.position_embedding.weight, std=0.02)
        self.register_buffer("position_ids", torch.arange(c.num_tokens)[None], persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.patch_embedding(x).flatten(2).transpose(1, 2)  # (N, P, D)
        cls = self.class_embedding.expand(x.shape[0], 1, -1)  # (N, 1, D)
        return torch.cat([cls, p], 1) + self.position_embedding(self.position_ids)  # (N, 1+P, D)


class _SelfAttention(nn.Module):
    def __init__(self, c: ViTConfig):
        super().__init__()
        d = c.hidden_size
        self.heads = c.num_attention_heads
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (nn.Linear(d, d) for _ in range(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t, d = x.shape
        q, k, v = (p(x).view(n, t, self.heads, d // self.heads).transpose(1, 2)
                   for p in (self.q_proj, self.k_proj, self.v_proj))  # (N, h, T, d/h)
        y = functional.scaled_dot_product_attention(q, k, v)  # (N, h, T, d/h)
        return self.out_proj(y.transpose(1, 2).reshape(n, t, d))


class _MLP(nn.Module):
    def __init__(self, c: ViTConfig):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(c.hidden_size, c.intermediate_size), nn.Linear(c.intermediate_size, c.hidden_size)
        self.act = c.hidden_act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc1(x)
        h = h * torch.sigmoid(1.702 * h) if self.act == "quick_gelu" else functional.gelu(h)
        return self.fc2(h)


class _Layer(nn.Module):
    def __init__(self, c: ViTConfig):
        super().__init__()
        self.layer_norm1 = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.self_attn = _SelfAttention(c)
        self.layer_norm2 = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.mlp = _MLP(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.self_attn(self.layer_norm1(x))
        return x + self.mlp(self.layer_norm2(x))


class _Encoder(nn.Module):
    def __init__(self, c: ViTConfig):
        super().__init__()
        self.layers = nn.ModuleList(_Layer(c) for _ in range(c.num_hidden_layers))


class CLIPVisionTransformer(nn.Module):
    """transformers' CLIPVisionTransformer (vision_model.*) with the same parameter names."""

    def __init__(self, config: ViTConfig):
        super().__init__()
        if config.image_size % config.patch_size:
            raise GenlabError(f"ViTConfig: image_size {config.image_size} not divisible by patch {config.patch_size}")
        self.config = config
        self.embeddings = _Embeddings(config)
        self.pre_layrnorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)  # sic (transformers' name)
        self.encoder = _Encoder(config)
        self.post_layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """pixel_values (N, 3, S, S), already normalised -> last_hidden_state (N, T, D)."""
        s = self.config.image_size
        if pixel_values.ndim != 4 or pixel_values.shape[1:] != (3, s, s):
            raise GenlabError(f"reference encoder: expected images (N, 3, {s}, {s}), got {tuple(pixel_values.shape)}")
        h = self.pre_layrnorm(self.embeddings(pixel_values))  # (N, T, D)
        for layer in self.encoder.layers:
            h = layer(h)
        return h

    def pooled(self, last_hidden_state: torch.Tensor) -> torch.Tensor:
        """CLIP's pooled output: post_layernorm of the class token (N, D)."""
        return self.post_layernorm(last_hidden_state[:, 0])


class ReferenceProjection(nn.Module):
    """Linear-SiLU-Linear from the image encoder's width to the UNet's cross-attention width (the paper),
    optionally followed by a LayerNorm (as Paint-by-Example's and IP-Adapter's image projections end):
    unit-scale tokens. Without it the toy's context had std 0.07, the cross-attention was uniform and
    tiny, and a trained model's output moved by 2e-4 (of std 0.3-0.8) when the reference was swapped."""

    def __init__(self, in_dim: int, out_dim: int, norm: bool = False):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(in_dim, out_dim), nn.Linear(out_dim, out_dim)
        self.norm = nn.LayerNorm(out_dim) if norm else nn.Identity()

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.norm(self.fc2(functional.silu(self.fc1(tokens))))  # (N, T, out_dim)


def normalise_for_clip(images: torch.Tensor, size: int) -> torch.Tensor:
    """images (N, 3, H, W) in [-1, 1] -> resized (bicubic) and CLIP-normalised (N, 3, size, size)."""
    x = (images + 1) / 2
    if x.shape[-1] != size or x.shape[-2] != size:
        x = functional.interpolate(x, size=(size, size), mode="bicubic", align_corners=False).clamp(0, 1)
    mean = torch.tensor(CLIP_MEAN, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


def load_clip_vision(path: str | Path, dtype: torch.dtype = torch.float32) -> CLIPVisionTransformer:
    """CLIP vision weights from a local transformers folder (config.json + model.safetensors), either a
    CLIPVisionModel or a full CLIPModel (vision_model.* keys are taken). Unmatched keys are listed."""
    from genlab.core.train import read_safetensors_folder

    path = Path(path)
    cfg_file = path / "config.json"
    if not cfg_file.is_file():
        raise GenlabError(f"CLIP vision: {cfg_file} not found (expected a local transformers folder)")
    raw = json.loads(cfg_file.read_text())
    vc = raw.get("vision_config", raw)
    fields = set(ViTConfig.__dataclass_fields__)
    config = ViTConfig(**{k: vc[k] for k in fields if k in vc})
    state = read_safetensors_folder(path, "CLIP vision", "a local transformers folder")
    model = CLIPVisionTransformer(config)
    load_state_strict(model, clip_vision_weights(state), f"CLIP vision ({path})")
    return model.to(dtype).eval()


def clip_vision_weights(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The vision tower's weights under our names, from a transformers CLIP state dict."""
    if any("vision_model." in k for k in state):  # CLIPModel / older CLIPVisionModel layouts
        return {k.split("vision_model.", 1)[1]: v for k, v in state.items() if "vision_model." in k}
    # transformers >= 5 saves CLIPVisionModel without the prefix
    return {k: v for k, v in state.items() if not k.startswith(("text_model.", "visual_projection", "text_projection",
                                                                 "logit_scale"))}


def load_state_strict(model: nn.Module, state: dict[str, torch.Tensor], what: str) -> None:
    """load_state_dict that names missing, unexpected and mis-shaped keys in one GenlabError."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [f"{k}: expected {tuple(own[k].shape)}, got {tuple(state[k].shape)}"
              for k in sorted(set(own) & set(state)) if own[k].shape != state[k].shape]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} keys (e.g. {missing[:5]})")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} keys (e.g. {unexpected[:5]})")
        if shapes:
            parts.append(f"shape mismatches: {shapes[:5]}")
        raise GenlabError(f"{what}: weights do not match the model: " + "; ".join(parts))
    model.load_state_dict(state)
