"""Configs of the video model (SVD): network, conditioning mode, and the training stages of App. D.

All frozen dataclasses; presets are functions. The per-stage noise distributions
(log sigma ~ N(P_mean, P_std^2)) are transcribed from the paper (see ../shared/notes/svd.md, section 3).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from genlab.core.nn import temporal
from genlab.core.nn.temporal import VideoUNetConfig
from genlab.errors import GenlabError

MODES = ("i2v", "t2v", "interp")


@dataclass(frozen=True)
class VideoModelConfig:
    """The UNet plus how it is conditioned.

    mode i2v: in_channels = 2 * latent (noisy latent + conditioning-frame latent), 1 image token;
    t2v: in_channels = latent, text tokens; interp: 2 * latent + 1 (mask channel), 2 image tokens.
    `image_encoder`: "tiny" = a small trainable image encoder built in (toys); "external" = the caller
    provides the context tokens (CLIP ViT-H image embeddings for real SVD checkpoints).
    `text_encoder` (t2v only): "builtin" = core.cond's small trainable hashed-word encoder (toys), a local
    CLIP text-encoder folder (frozen, its penultimate layer as SD2.1), or "none" (the caller gives tokens).
    """

    unet: VideoUNetConfig = field(default_factory=temporal.svd)
    mode: str = "i2v"
    latent_channels: int = 4
    image_encoder: str = "external"
    encoder_channels: int = 32  # tiny encoder width
    text_encoder: str = "none"

    def validate(self) -> None:
        if self.mode not in MODES:
            raise GenlabError(f"VideoModelConfig.mode must be one of {MODES}, got {self.mode!r}")
        expected = {"i2v": 2 * self.latent_channels, "t2v": self.latent_channels,
                    "interp": 2 * self.latent_channels + 1}[self.mode]
        if self.unet.unet.in_channels != expected:
            raise GenlabError(
                f"VideoModelConfig: mode {self.mode} with {self.latent_channels} latent channels needs "
                f"unet.in_channels={expected}, got {self.unet.unet.in_channels}"
            )
        if self.unet.unet.num_added_ids != 3:
            raise GenlabError("VideoModelConfig: the UNet needs 3 added ids [fps_id, motion_bucket_id, cond_aug]")
        if self.image_encoder not in ("tiny", "external"):
            raise GenlabError(f"VideoModelConfig.image_encoder must be 'tiny' or 'external', got {self.image_encoder!r}")
        if self.text_encoder != "none" and self.mode != "t2v":
            raise GenlabError(f"VideoModelConfig.text_encoder {self.text_encoder!r} needs mode 't2v', got {self.mode!r}")

    def to_dict(self) -> dict:
        return {"unet": self.unet.to_dict(), "mode": self.mode, "latent_channels": self.latent_channels,
                "image_encoder": self.image_encoder, "encoder_channels": self.encoder_channels,
                "text_encoder": self.text_encoder}

    @classmethod
    def from_dict(cls, d: dict) -> VideoModelConfig:
        rest = {k: v for k, v in d.items() if k != "unet"}
        unknown = sorted(set(rest) - set(cls.__dataclass_fields__))
        if unknown:
            raise GenlabError(f"VideoModelConfig: unknown fields {unknown}")
        return cls(unet=VideoUNetConfig.from_dict(d["unet"]), **rest)


def tiny(mode: str = "i2v", latent_channels: int = 4) -> VideoModelConfig:
    """A CPU-sized SVD: channels (32, 64), attention on the first level, context 32, added ids 3 x 16."""
    in_ch = {"i2v": 2 * latent_channels, "t2v": latent_channels, "interp": 2 * latent_channels + 1}[mode]
    unet = temporal.tiny(in_channels=in_ch, out_channels=latent_channels, addition_time_embed_dim=16,
                         num_heads=(4, 8))
    return VideoModelConfig(unet=replace(unet, num_frames=8), mode=mode, latent_channels=latent_channels,
                            image_encoder="tiny")


def in_channels_for(mode: str, latent_channels: int) -> int:
    """i2v: noisy + conditioning-frame latent; t2v: noisy latent only; interp: noisy + [z_s, m.., z_e] + mask."""
    if mode not in MODES:
        raise GenlabError(f"mode must be one of {MODES}, got {mode!r}")
    return {"i2v": 2 * latent_channels, "t2v": latent_channels, "interp": 2 * latent_channels + 1}[mode]


def with_mode(cfg: VideoModelConfig, mode: str, text_encoder: str = "builtin") -> VideoModelConfig:
    """The same network conditioned for `mode`: in_channels set accordingly (App. D.5 for interp), and
    for t2v a text encoder in the cross-attention (`text_encoder`)."""
    unet = replace(cfg.unet.unet, in_channels=in_channels_for(mode, cfg.latent_channels))
    return replace(cfg, unet=replace(cfg.unet, unet=unet), mode=mode,
                   text_encoder=text_encoder if mode == "t2v" else "none")


def svd() -> VideoModelConfig:
    """SVD img2vid (14 frames): SD2.1-sized UNet, CLIP ViT-H image token (external), 4-channel f8 latent."""
    return VideoModelConfig(unet=temporal.svd(), mode="i2v")


def svd_xt() -> VideoModelConfig:
    """SVD-XT (25 frames)."""
    return VideoModelConfig(unet=temporal.svd_xt(), mode="i2v")


# ----------------------------------------------------------------------------------------------------
# training stages (paper App. D)


@dataclass(frozen=True)
class StageConfig:
    """One training stage: what data, which noise distribution, how long."""

    name: str
    p_mean: float
    p_std: float
    image_only: bool = False  # stage I: single frames with image_only_indicator = 1
    frames: int = 8
    size: int = 32  # frame side in pixels
    steps: int = 500
    batch_size: int = 8
    lr: float = 1e-3
    cond_aug_mean: float = -3.0  # log sigma_aug ~ N(-3.0, 0.5^2) (App. D.4)
    cond_aug_std: float = 0.5
    uncond_prob: float = 0.1  # drop the image conditioning (zeros), for classifier-free guidance
    train: str = "all"  # "all" | "temporal" (spatial path frozen) | "lora" (LoRA adapters on temporal attention)
    ema_decay: float = 0.0  # 0 = no EMA
    seed: int = 0


# (P_mean, P_std) per stage as published; keys are `genlab video train --stage` choices
PAPER_STAGES: dict[str, tuple[float, float]] = {
    "image": (-1.2, 1.0),  # stage I: image model finetuned to EDM
    "video": (-1.2, 1.0),  # stage II: video pretraining, "standard EDM noise schedule"
    "video_hr": (0.0, 1.0),  # stage II at higher resolution
    "t2v": (0.5, 1.4),  # stage III text-to-video
    "i2v": (0.7, 1.6),  # image-to-video at base resolution
    "finetune": (1.0, 1.6),  # image-to-video high quality (SVD / SVD-XT)
    "interp": (1.0, 1.2),  # frame interpolation
}


# which model each stage trains: the text-to-video and interpolation stages change the conditioning
STAGE_MODE = {"t2v": "t2v", "interp": "interp"}
RENAMED_STAGES = {"t2v_finetune": "t2v"}
INTERP_FRAMES = 5  # the paper's interpolation model: 5 frames, the first and last given (App. D.5)


def stage_mode(name: str) -> str:
    """The VideoModelConfig.mode a stage trains: t2v, interp, or i2v (every other stage)."""
    return STAGE_MODE.get(name, "i2v")


def stage(name: str, **overrides) -> StageConfig:
    if name in RENAMED_STAGES:
        raise GenlabError(f"stage {name!r} was renamed: use {RENAMED_STAGES[name]!r} (it trains the text-to-video "
                          "model, not the image-to-video one with that stage's noise)")
    if name not in PAPER_STAGES:
        raise GenlabError(f"unknown stage {name!r}; choose from {sorted(PAPER_STAGES)}")
    p_mean, p_std = PAPER_STAGES[name]
    cfg = StageConfig(name=name, p_mean=p_mean, p_std=p_std, image_only=name == "image")
    return replace(cfg, **overrides)
