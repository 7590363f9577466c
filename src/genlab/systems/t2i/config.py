"""Configs of the t2i system: the MM-DiT, the DiT baselines, text conditioning and training.

Presets are functions. The paper's family (SD3 section 5.1) ties everything to the depth d:
hidden = 64 d, heads = d (head dim 64); `mmdit_depth(d)` builds that family. The released models'
shapes: `sd3_medium()` (d = 24, 2B), `sd3_5_medium()` (d = 24, MMDiT-X: a second image-only attention
in blocks 0-12, RMS QK-norm, 384^2 position table), `sd3_5_large()` and `sd3_5_large_turbo()` (d = 38,
8B, RMS QK-norm). Their `sampling` field holds the published inference settings (Stability's
reference `sd3_infer.py` CONFIGS). `tiny()` and `digits()` are the small ones the tests and
`genlab demo` train on CPU.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Literal

from genlab.core.train import TrainConfig
from genlab.errors import GenlabError

QKNorm = Literal["rms", "ln"] | None


@dataclass(frozen=True)
class MMDiTConfig:
    depth: int = 2
    hidden_size: int = 64
    num_heads: int = 2
    patch_size: int = 2
    in_channels: int = 16
    out_channels: int = 16
    context_dim: int = 4096  # width of the text token sequence (diffusers: joint_attention_dim)
    pooled_dim: int = 2048  # width of the pooled text vector
    pos_embed_max_size: int = 192  # side of the sin-cos table, centre-cropped to the input's token grid
    pos_embed_base_size: float | None = None  # None: integer positions; diffusers SD3: sample_size / patch
    qk_norm: QKNorm = None
    mlp_ratio: float = 4.0
    freq_dim: int = 256
    # MMDiT-X (SD3.5-Medium): blocks whose image stream adds an image-only self-attention (diffusers:
    # dual_attention_layers; sd3.5 reference: x_block_self_attn_layers)
    dual_attention_layers: tuple[int, ...] = ()

    def __post_init__(self):
        if self.depth < 1:
            raise GenlabError(f"MMDiTConfig.depth: expected >= 1, got {self.depth}")
        bad = [i for i in self.dual_attention_layers if not 0 <= i < self.depth]
        if bad or len(set(self.dual_attention_layers)) != len(self.dual_attention_layers):
            raise GenlabError(f"MMDiTConfig.dual_attention_layers: expected distinct block indices in 0..{self.depth - 1}, "
                              f"got {list(self.dual_attention_layers)}")
        if self.hidden_size % self.num_heads:
            raise GenlabError(f"MMDiTConfig: hidden_size {self.hidden_size} not divisible by num_heads {self.num_heads}")
        if (self.hidden_size // self.num_heads) % 2 or self.hidden_size % 4:
            raise GenlabError(f"MMDiTConfig: hidden_size {self.hidden_size} must be divisible by 4 (sin-cos table)")
        if self.qk_norm not in (None, "rms", "ln"):
            raise GenlabError(f"MMDiTConfig.qk_norm: expected None, 'rms' or 'ln', got {self.qk_norm!r}")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads


@dataclass(frozen=True)
class DiTConfig:
    """The baselines of SD3 Fig. 4: "concat" (text tokens join the image sequence, one set of weights)
    and "cross" (CrossDiT: image tokens cross-attend to the text after self-attention)."""

    variant: Literal["concat", "cross"] = "concat"
    depth: int = 2
    hidden_size: int = 64
    num_heads: int = 2
    patch_size: int = 2
    in_channels: int = 16
    out_channels: int = 16
    context_dim: int = 4096
    pooled_dim: int = 2048
    pos_embed_max_size: int = 192
    qk_norm: QKNorm = None
    mlp_ratio: float = 4.0
    freq_dim: int = 256

    def __post_init__(self):
        if self.variant not in ("concat", "cross"):
            raise GenlabError(f"DiTConfig.variant: expected 'concat' or 'cross', got {self.variant!r}")
        if self.hidden_size % self.num_heads or self.hidden_size % 4:
            raise GenlabError(f"DiTConfig: hidden_size {self.hidden_size} must divide by num_heads and by 4")


@dataclass(frozen=True)
class TextConfig:
    """Which text encoder(s) condition the model. Several encoders are concatenated SD3-style
    (sequences along tokens, pooled vectors along channels), each dropped independently for CFG."""

    encoders: tuple[str, ...] = ("builtin",)  # "builtin" | "minilm" | "clip:<local path>" | "t5:<local path>"
    dropout: float = 0.1  # per encoder, replaced by zeros (SD3: 0.464 for each of 3 encoders)
    max_length: int = 16  # token length of the built-in encoder (and MiniLM)
    builtin_dim: int = 64
    builtin_vocab: int = 512  # hashed word buckets
    builtin_layers: int = 1


@dataclass(frozen=True)
class SamplingDefaults:
    """Inference settings a released model was published with (pretrained sampling)."""

    steps: int = 28
    guidance: float = 7.0  # CFG scale; <= 1 turns CFG (and skip-layer guidance) off
    skip_layers: tuple[int, ...] = ()  # skip-layer guidance: the blocks left out of the extra pass
    slg_scale: float = 2.8
    slg_start: float = 0.01  # fractions of the steps (diffusers' rule: start * N < i < stop * N)
    slg_stop: float = 0.2


@dataclass(frozen=True)
class T2IConfig:
    """Everything a t2i run needs: backbone, text, data shape and training."""

    model: MMDiTConfig | DiTConfig = field(default_factory=MMDiTConfig)
    text: TextConfig = field(default_factory=TextConfig)
    image_size: tuple[int, int] = (8, 8)  # (H, W) of what the backbone sees (pixels or latents)
    logit_mean: float = 0.0  # rf/lognorm(m, s) training density (SD3's best: m = 0, s = 1)
    logit_std: float = 1.0
    shift: float = 1.0  # resolution shift alpha, used for sampling (and training t when != 1)
    train: TrainConfig = field(default_factory=TrainConfig)
    sampling: SamplingDefaults = field(default_factory=SamplingDefaults)

    def __post_init__(self):
        h, w = self.image_size
        p = self.model.patch_size
        if h % p or w % p:
            raise GenlabError(f"image_size {h}x{w} is not divisible by the patch size {p}")
        if h // p > self.model.pos_embed_max_size or w // p > self.model.pos_embed_max_size:
            raise GenlabError(f"image_size {h}x{w} needs a {h // p}x{w // p} token grid, more than "
                              f"pos_embed_max_size={self.model.pos_embed_max_size}")


def mmdit_depth(depth: int, **overrides) -> MMDiTConfig:
    """The paper's scaling family: hidden = 64 d, heads = d, 16-channel f8 latents, 2x2 patches."""
    return MMDiTConfig(**{"depth": depth, "hidden_size": 64 * depth, "num_heads": depth, **overrides})


def sd3_medium_model() -> MMDiTConfig:
    return mmdit_depth(24, pos_embed_max_size=192, pos_embed_base_size=64)


def sd3_5_medium_model() -> MMDiTConfig:
    """MMDiT-X: dual attention in blocks 0-12, as the published transformer/config.json."""
    return mmdit_depth(24, pos_embed_max_size=384, pos_embed_base_size=64, qk_norm="rms",
                       dual_attention_layers=tuple(range(13)))


def sd3_5_large_model() -> MMDiTConfig:
    return mmdit_depth(38, pos_embed_max_size=192, pos_embed_base_size=64, qk_norm="rms")


# ----------------------------------------------------------------------------- run presets
def tiny() -> T2IConfig:
    """Seconds on a CPU: the contract tests' model."""
    model = MMDiTConfig(depth=2, hidden_size=32, num_heads=2, patch_size=2, in_channels=1, out_channels=1,
                        context_dim=32, pooled_dim=32, pos_embed_max_size=8)
    text = TextConfig(builtin_dim=32, builtin_vocab=128, max_length=8, builtin_layers=0)
    return T2IConfig(model=model, text=text, image_size=(8, 8),
                     train=TrainConfig(steps=20, batch_size=16, lr=2e-3, warmup_steps=5, ema_decay=0.99,
                                       log_every=5))


def digits() -> T2IConfig:
    """`genlab demo`: sklearn's 8x8 digits, captions "a handwritten digit seven", a few CPU minutes."""
    model = MMDiTConfig(depth=3, hidden_size=64, num_heads=4, patch_size=2, in_channels=1, out_channels=1,
                        context_dim=64, pooled_dim=64, pos_embed_max_size=8)
    text = TextConfig(builtin_dim=64, builtin_vocab=256, max_length=6, builtin_layers=1, dropout=0.1)
    return T2IConfig(model=model, text=text, image_size=(8, 8),
                     train=TrainConfig(steps=800, batch_size=32, lr=2e-3, warmup_steps=50, grad_clip=1.0,
                                       ema_decay=0.995, log_every=20, checkpoint_every=200))


def digits_fast() -> T2IConfig:
    """A 60-second version of `digits()` for the fast test tier."""
    cfg = digits()
    return replace(cfg, train=replace(cfg.train, steps=300, warmup_steps=30, checkpoint_every=0))


def sd3_medium() -> T2IConfig:
    """SD3-medium's MM-DiT shape at 1024^2 (128x128x16 latents); CLIP-L + CLIP-G + T5 must be given.
    Sampling: diffusers' StableDiffusion3Pipeline defaults (28 steps, CFG 7, the scheduler's shift 3)."""
    return T2IConfig(model=sd3_medium_model(), text=TextConfig(encoders=(), dropout=0.464), image_size=(128, 128),
                     shift=3.0, train=TrainConfig(lr=1e-4, warmup_steps=1000, batch_size=1))


def sd3_5_medium() -> T2IConfig:
    """SD3.5-Medium (MMDiT-X). Published: shift 3, 50 steps, CFG 5; with skip-layer guidance on blocks
    7, 8, 9 (scale 2.5, steps 1 % - 20 %) the reference lowers CFG to 4, which is the default here."""
    return replace(sd3_medium(), model=sd3_5_medium_model(),
                   sampling=SamplingDefaults(steps=50, guidance=4.0, skip_layers=(7, 8, 9), slg_scale=2.5,
                                             slg_start=0.01, slg_stop=0.2))


def sd3_5_large() -> T2IConfig:
    """SD3.5-Large (8B). Published: shift 3, 40 steps, CFG 4.5."""
    return replace(sd3_medium(), model=sd3_5_large_model(), sampling=SamplingDefaults(steps=40, guidance=4.5))


def sd3_5_large_turbo() -> T2IConfig:
    """SD3.5-Large-Turbo (timestep-distilled 8B, the Large shapes). Published: shift 3, 4 steps, no CFG."""
    return replace(sd3_medium(), model=sd3_5_large_model(), sampling=SamplingDefaults(steps=4, guidance=1.0))


PRESETS: dict[str, Callable[[], T2IConfig]] = {
    "tiny": tiny, "digits": digits, "digits_fast": digits_fast, "sd3_medium": sd3_medium,
    "sd3_5_medium": sd3_5_medium, "sd3_5_large": sd3_5_large, "sd3_5_large_turbo": sd3_5_large_turbo,
}


def preset(name: str) -> T2IConfig:
    """A run preset by name (the CLI's --preset); unknown names are a GenlabError listing the known ones."""
    if name not in PRESETS:
        raise GenlabError(f"unknown preset {name!r}; expected one of {', '.join(sorted(PRESETS))}")
    return PRESETS[name]()


def with_minilm(cfg: T2IConfig) -> T2IConfig:
    """Swap the built-in text encoder for the frozen all-MiniLM-L6-v2 (384-d tokens and pooled vector)."""
    return replace(cfg, model=replace(cfg.model, context_dim=384, pooled_dim=384),
                   text=replace(cfg.text, encoders=("minilm",)))
