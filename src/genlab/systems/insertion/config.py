"""Configs for insertion: the model (UNet 2C+1 -> C, reference encoder, projection), training and
sampling. Presets are functions: `tiny()` (fast tier, pixel space 32 px), `toy()` (the demo: 64 px
in the latent space of a small f4 autoencoder) and `sd15_inpainting()` (the paper's real model)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from genlab.core.nn.unet import UNetConfig
from genlab.errors import GenlabError
from genlab.systems.insertion.encoder import ViTConfig, clip_vit_l14, toy_vit


@dataclass(frozen=True)
class ModelConfig:
    latent_channels: int = 4  # C; the UNet takes 2C + 1 (noisy latent, masked-scene latent, mask)
    unet: UNetConfig = field(default_factory=UNetConfig)
    vit: ViTConfig = field(default_factory=clip_vit_l14)
    train_encoder: bool = False  # the toy trains its ViT; CLIP stays frozen
    space: str = "latent"  # "pixel" (toy: space-to-depth of the pixels) or "latent" (an autoencoder)
    patch: int = 1  # pixel space only: space-to-depth factor (latent_channels = 3 * patch^2)
    cls_only: bool = False  # Paint-by-Example-style: condition on the class token only (not all tokens)
    # What the UNet predicts on SD's linear schedule: "eps" (SD-1.5, the paper; needed for real weights)
    # or "v" (SD-2's v-prediction; the toys). With eps, x0_hat = (z - b eps_hat) / a multiplies eps errors
    # by b/a ~ 15 at the first DDIM steps: a small, young UNet's samples leave the data and end as
    # saturated speckle (README: one-pair overfit, final latent MSE 1.6 with eps vs 0.03 with v).
    prediction: str = "eps"
    # LayerNorm after the reference projection (Paint-by-Example / IP-Adapter style): the toys need it (their
    # context had std 0.07 and was ignored); the paper's projection is Linear-SiLU-Linear alone, so real
    # weights and a projection file with fc1/fc2 keep it off.
    ref_norm: bool = False
    # How the pixel mask reaches latent size: "nearest" (SD-inpainting and the official model were
    # trained with nearest interpolation) or "max" (max-pooling: a cell is masked if any of its pixels
    # is; the genlab toys were trained with it). Real weights must keep "nearest".
    mask_resize: str = "nearest"

    def __post_init__(self):
        if self.unet.in_channels != 2 * self.latent_channels + 1:
            raise GenlabError(f"ModelConfig: unet.in_channels must be 2C+1 = {2 * self.latent_channels + 1}, "
                             f"got {self.unet.in_channels}")
        if self.unet.out_channels != self.latent_channels:
            raise GenlabError(f"ModelConfig: unet.out_channels must be C = {self.latent_channels}")
        if self.prediction not in ("eps", "v"):
            raise GenlabError(f"ModelConfig.prediction must be 'eps' or 'v', got {self.prediction!r}")
        if self.mask_resize not in ("nearest", "max"):
            raise GenlabError(f"ModelConfig.mask_resize must be 'nearest' or 'max', got {self.mask_resize!r}")
        if self.space not in ("pixel", "latent"):
            raise GenlabError(f"ModelConfig.space must be 'pixel' or 'latent', got {self.space!r}")
        if self.space == "pixel" and self.latent_channels != 3 * self.patch**2:
            raise GenlabError(f"ModelConfig: pixel space with patch {self.patch} has {3 * self.patch**2} channels, "
                             f"got latent_channels={self.latent_channels}")


@dataclass(frozen=True)
class TrainSettings:
    steps: int = 2000
    batch_size: int = 32
    lr: float = 7.5e-5  # the paper's AdamW rate (fine-tuning SD); toys use more
    warmup_steps: int = 0
    ema_decay: float = 0.999
    p_drop_both: float = 0.1  # grey scene, all-ones mask, grey person
    p_drop_person: float = 0.1  # grey person only
    pool: int = 4096  # training pairs rendered once (toy)
    seed: int = 0
    checkpoint_every: int = 0


@dataclass(frozen=True)
class SampleSettings:
    steps: int = 200  # DDIM steps (the paper's default; the toy evaluates with 50)
    scale_scene: float = 4.0
    scale_person: float = 4.0
    # paste the unmasked scene back over the decoded image; the official sampler does not (real weights:
    # off), the toys' figures were measured with it on
    composite: bool = False
    # the last DDIM step lands on alpha_bar_0 (LDM's DDIM sampler, which the official code uses, and
    # SD-1.5's scheduler config: False) or on clean data (True: the toys' figures were measured so)
    set_alpha_to_one: bool = False


@dataclass(frozen=True)
class InsertionConfig:
    size: int = 64  # image side
    ref_size: int = 32  # reference crop side fed to the encoder (resized to vit.image_size)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainSettings = field(default_factory=TrainSettings)
    sample: SampleSettings = field(default_factory=SampleSettings)
    ae_steps: int = 1500  # the toy's small autoencoder (latent space only)


def _toy_unet(c: int, channels: tuple[int, ...], attn: tuple[bool, ...], ctx: int) -> UNetConfig:
    return UNetConfig(
        in_channels=2 * c + 1, out_channels=c, block_out_channels=channels, attention_levels=attn,
        layers_per_block=1, num_heads=tuple(max(1, ch // 32) for ch in channels), cross_attention_dim=ctx,
        use_linear_projection=True, norm_num_groups=8,
    )


def tiny(**overrides) -> InsertionConfig:
    """Fast tier: 32 px in pixel space folded 2x2 into channels (16x16x12), the toy's small UNet
    (32/64 channels, attention only at 8x8), a 1-layer ViT on 16 px references (17 tokens)."""
    vit = toy_vit(image_size=16, patch_size=4, hidden_size=48, intermediate_size=96, num_hidden_layers=1,
                  num_attention_heads=2)
    model = ModelConfig(latent_channels=12, unet=_toy_unet(12, (32, 64), (False, True), 64), vit=vit,
                        train_encoder=True, space="pixel", patch=2, prediction="v", ref_norm=True, mask_resize="max")
    cfg = InsertionConfig(
        size=32, ref_size=16, model=model,
        train=TrainSettings(steps=300, batch_size=32, lr=2e-3, warmup_steps=50, ema_decay=0.99, pool=1024),
        sample=SampleSettings(steps=20, scale_scene=2.0, scale_person=2.0, composite=True, set_alpha_to_one=True),
    )
    return replace(cfg, **overrides)


def toy(**overrides) -> InsertionConfig:
    """The demo: 64 px images, small f4 autoencoder (16x16x4 latents), a small UNet (32/64 channels,
    one res block per level, attention only at 8x8 and in the middle) and a tiny 2-layer ViT
    (65 tokens of 64) on 32 px references."""
    model = ModelConfig(latent_channels=4, unet=_toy_unet(4, (32, 64), (False, True), 64),
                        vit=toy_vit(hidden_size=64, intermediate_size=128, num_attention_heads=2),
                        train_encoder=True, space="latent", prediction="v",
                        ref_norm=True, mask_resize="max")
    cfg = InsertionConfig(
        size=64, ref_size=32, model=model,
        train=TrainSettings(steps=6000, batch_size=32, lr=1e-3, warmup_steps=100, ema_decay=0.999, pool=8192),
        sample=SampleSettings(steps=50, scale_scene=2.0, scale_person=2.0, composite=True, set_alpha_to_one=True),
    )
    return replace(cfg, **overrides)


def sd15_inpainting(**overrides) -> InsertionConfig:
    """The paper's model: SD-1.5-inpainting UNet (9 in channels), CLIP ViT-L/14 (257 tokens) -> 768."""
    unet = UNetConfig(in_channels=9, out_channels=4, block_out_channels=(320, 640, 1280, 1280),
                      attention_levels=(True, True, True, False), layers_per_block=2, num_heads=(8, 8, 8, 8),
                      cross_attention_dim=768, use_linear_projection=False, norm_num_groups=32)
    model = ModelConfig(latent_channels=4, unet=unet, vit=clip_vit_l14(), train_encoder=False, space="latent",
                        prediction="eps")
    cfg = InsertionConfig(size=256, ref_size=224, model=model, train=TrainSettings(lr=7.5e-5, batch_size=32),
                          sample=SampleSettings(steps=200, scale_scene=4.0, scale_person=4.0))
    return replace(cfg, **overrides)
