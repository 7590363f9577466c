"""The SVD model: the video UNet plus its conditioning (paper section 4, App. D; sgm `GeneralConditioner`).

Conditioning of an image-to-video sample (sgm names in brackets):
- vector [fps_id, motion_bucket_id, cond_aug]: each a 256-d sinusoidal embedding (16-d in tiny),
  concatenated, through an MLP, added to the timestep embedding (the UNet's `added_cond`);
- cross-attention context [cond_frames_without_noise]: the conditioning image as one token (CLIP ViT-H
  image embedding for real checkpoints; a small trainable encoder for toys);
- concat [cond_frames]: the VAE latent of the noise-augmented conditioning image, *unscaled* (the
  autoencoder's mode, not multiplied by its scale factor), repeated over all T frames and concatenated
  channel-wise to the network input after c_in scaling (sgm `OpenAIWrapper`).
The unconditional branch zeroes the context and the concat latent and keeps the vector (sgm
`force_uc_zero_embeddings`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from genlab.core.nn.temporal import VideoUNet
from genlab.errors import GenlabError
from genlab.systems.video.config import VideoModelConfig


class TinyImageEncoder(nn.Module):
    """Image (N, 3, H, W) in [-1, 1] -> one context token (N, 1, D): strided convs, mean pool, linear.

    Stands in for the frozen CLIP ViT-H image encoder at toy scale (trained with the UNet here)."""

    def __init__(self, out_dim: int, ch: int = 32, tokens: int = 1):
        super().__init__()
        self.tokens = tokens
        self.net = nn.Sequential(
            nn.Conv2d(3, ch, 3, stride=2, padding=1), nn.SiLU(),
            nn.Conv2d(ch, ch, 3, stride=2, padding=1), nn.SiLU(),
            nn.Conv2d(ch, ch, 3, padding=1), nn.SiLU(),
        )
        self.proj = nn.Linear(2 * ch, out_dim)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        h = self.net(image)  # (N, ch, H/4, W/4)
        pooled = torch.cat([h.mean(dim=(-1, -2)), h.amax(dim=(-1, -2))], dim=1)  # (N, 2ch)
        return self.proj(pooled)[:, None]  # (N, 1, D)


def build_text_encoder(config: VideoModelConfig):
    """t2v's text encoder: core.cond's BuiltinTextEncoder sized to the UNet's context (trainable, saved with
    the model), or a frozen CLIP text encoder from a local folder (its width must be the context width)."""
    from genlab.core.cond.text import BuiltinTextEncoder, CLIPTextEncoder

    ctx_dim = config.unet.unet.cross_attention_dim
    if config.text_encoder == "builtin":
        return BuiltinTextEncoder(dim=ctx_dim, heads=next(h for h in (4, 2, 1) if ctx_dim % h == 0))
    enc = CLIPTextEncoder(config.text_encoder)
    if enc.context_dim != ctx_dim:
        raise GenlabError(f"VideoModelConfig.text_encoder {config.text_encoder}: hidden size {enc.context_dim}, the "
                          f"UNet's cross_attention_dim is {ctx_dim}")
    return enc


class SVDModel(nn.Module):
    """VideoUNet + (tiny) image encoder + interpolation mask embedding + (t2v) text encoder."""

    def __init__(self, config: VideoModelConfig):
        super().__init__()
        config.validate()
        self.config = config
        self.unet = VideoUNet(config.unet)
        ctx_dim = config.unet.unet.cross_attention_dim
        self.image_encoder = (
            TinyImageEncoder(ctx_dim, config.encoder_channels) if config.image_encoder == "tiny" else None
        )
        if config.mode == "interp":  # learned latent for the frames to fill in (App. D.5)
            self.mask_embedding = nn.Parameter(torch.zeros(config.latent_channels))
        else:
            self.mask_embedding = None
        self.text_encoder = None  # trainable (builtin): a sub-module, saved with the model
        self._frozen_text: list = []  # a frozen local encoder: kept out of the state dict
        if config.mode == "t2v" and config.text_encoder != "none":
            enc = build_text_encoder(config)
            if enc.trainable:
                self.text_encoder = enc
            else:
                self._frozen_text.append(enc)

    def fsdp_units(self) -> list[nn.Module]:
        """FSDP2 units: every res block and (spatio-temporal) transformer of the UNet, each entered through
        its forward; the embeddings, conv in/out, resamplers and the image encoder stay with the root."""
        unet = self.unet
        levels = [*unet.down_blocks, unet.mid_block, *unet.up_blocks]
        return [m for level in levels for m in [*level.resnets, *(level.attentions or [])]]

    # --- the raw network, in the signature core/flow expects: net(net_input, net_time, **cond) ---
    def net(self, z_in: torch.Tensor, c_noise: torch.Tensor, *, context: torch.Tensor | None = None,
            added_cond: torch.Tensor | None = None, concat: torch.Tensor | None = None,
            image_only_indicator: torch.Tensor | None = None) -> torch.Tensor:
        """z_in = c_in x (B, T, C, h, w), c_noise (B,) -> F (B, T, C, h, w) (v-prediction)."""
        x = z_in if concat is None else torch.cat([z_in, concat.to(z_in.dtype)], dim=2)  # (B, T, C_in, h, w)
        return self.unet(x, c_noise, context, added_cond, image_only_indicator)

    def forward(self, z_in: torch.Tensor, c_noise: torch.Tensor, *, image: torch.Tensor | None = None,
                image_keep: torch.Tensor | None = None, end_image: torch.Tensor | None = None,
                text_ids: torch.Tensor | None = None, **cond) -> torch.Tensor:
        """`net`, with the built-in encoders run inside: `image` (B, 3, H, W) -> the context token (and
        `end_image` -> a second one, interpolation), or `text_ids` (B, L) -> the text tokens; zeroed where
        `image_keep` (B,) is 0 (CFG dropout). Training calls this, so one forward reaches every trainable
        parameter (what DDP needs)."""
        token = None
        if image is not None:
            token = self.encode_image_token(image)  # (B, 1, D)
            if end_image is not None:
                token = torch.cat([token, self.encode_image_token(end_image)], dim=1)  # (B, 2, D)
        elif text_ids is not None:
            token = self.encode_text(text_ids)  # (B, L, D)
        if token is not None:
            cond["context"] = token if image_keep is None else token * image_keep[:, None, None].to(token.dtype)
        return self.net(z_in, c_noise, **cond)

    # --- text (t2v) ---
    @property
    def has_text_encoder(self) -> bool:
        return self.text_encoder is not None or bool(self._frozen_text)

    def _text(self):
        if self.text_encoder is not None:
            return self.text_encoder
        if self._frozen_text:
            return self._frozen_text[0]
        raise GenlabError("SVDModel: this model has no text encoder (a t2v model with text_encoder 'builtin' or a "
                          "local CLIP folder); pass context tokens")

    def tokenize(self, prompts: list[str]) -> torch.Tensor:
        """Prompts -> token ids (B, L) of the model's text encoder."""
        return self._text().tokenize(list(prompts))["input_ids"]

    def encode_text(self, text_ids: torch.Tensor) -> torch.Tensor:
        """Token ids (B, L) -> context tokens (B, L, D)."""
        enc = self._text()
        if self.text_encoder is None:
            enc.to(text_ids.device)
        return enc.encode_tokens({"input_ids": text_ids}).context

    # --- conditioning ---
    def encode_image_token(self, image: torch.Tensor) -> torch.Tensor:
        if self.image_encoder is None:
            raise GenlabError("SVDModel: this model uses an external image encoder; pass context tokens")
        return self.image_encoder(image)

    @staticmethod
    def added_ids(batch: int, fps_id: float | torch.Tensor, motion_bucket_id: float | torch.Tensor,
                  cond_aug: float | torch.Tensor, device=None) -> torch.Tensor:
        """[fps_id, motion_bucket_id, cond_aug] -> (B, 3), in sgm's order."""
        cols = [torch.as_tensor(v, dtype=torch.float32, device=device).reshape(-1).expand(batch)
                for v in (fps_id, motion_bucket_id, cond_aug)]
        return torch.stack(cols, dim=1)

    def conditioning(self, image_latent: torch.Tensor, context: torch.Tensor, added_cond: torch.Tensor,
                     num_frames: int) -> dict:
        """I2V conditions: concat latent (B, C, h, w) repeated to (B, T, C, h, w), context, vector."""
        concat = image_latent[:, None].expand(-1, num_frames, *image_latent.shape[1:])
        return {"context": context, "added_cond": added_cond, "concat": concat}

    def interp_conditioning(self, start_latent: torch.Tensor, end_latent: torch.Tensor,
                            start_token: torch.Tensor | None, end_token: torch.Tensor | None,
                            added_cond: torch.Tensor, num_frames: int) -> dict:
        """Interpolation (App. D.5): concat [z_s, m, ..., m, z_e] + a mask channel; context = 2 tokens (None
        when the tokens are computed inside `forward`, as in training)."""
        if self.mask_embedding is None:
            raise GenlabError("SVDModel: interp_conditioning needs a model built with mode='interp'")
        if num_frames < 3:
            raise GenlabError(f"interpolation needs num_frames >= 3 (start, middle, end), got {num_frames}")
        b, c, h, w = start_latent.shape
        mid = self.mask_embedding[None, None, :, None, None].expand(b, num_frames - 2, c, h, w)
        lat = torch.cat([start_latent[:, None], mid, end_latent[:, None]], dim=1)  # (B, T, C, h, w)
        mask = torch.zeros(b, num_frames, 1, h, w, dtype=lat.dtype, device=lat.device)
        mask[:, 0] = mask[:, -1] = 1.0
        context = None if start_token is None else torch.cat([start_token, end_token], dim=1)
        return {"context": context, "added_cond": added_cond, "concat": torch.cat([lat, mask], dim=2)}

    @staticmethod
    def unconditional(cond: dict) -> dict:
        """sgm's force_uc_zero_embeddings: zero context and concat latent, keep the vector."""
        out = dict(cond)
        for k in ("context", "concat"):
            if out.get(k) is not None:
                out[k] = torch.zeros_like(out[k])
        return out


def resize_frames(video: torch.Tensor, size: int) -> torch.Tensor:
    """(N, T, C, H, W) -> (N, T, C, size, size), area-averaged (lower-resolution stages)."""
    n, t = video.shape[:2]
    if video.shape[-1] == size:
        return video
    out = F.interpolate(video.flatten(0, 1), size=(size, size), mode="area")
    return out.reshape(n, t, *out.shape[1:])


class CLIPImageTokens(nn.Module):
    """SVD's image conditioning: a CLIP vision tower (transformers `CLIPVisionModelWithProjection`) -> (B, 1, D).

    The reference preprocessing (sgm, diffusers): the full-resolution image in [-1, 1] is shrunk to the encoder's
    size with the anti-aliased resize (Gaussian pre-blur, bicubic, align_corners), mapped to [0, 1] and
    normalised with CLIP's mean/std."""

    MEAN = (0.48145466, 0.4578275, 0.40821073)
    STD = (0.26862954, 0.26130258, 0.27577711)

    def __init__(self, encoder: nn.Module, size: int, mean=MEAN, std=STD):
        super().__init__()
        self.encoder, self.size = encoder, size
        self.mean, self.std = tuple(float(m) for m in mean), tuple(float(s) for s in std)

    @classmethod
    def from_local(cls, path) -> CLIPImageTokens:
        from pathlib import Path

        folder = Path(path)
        if not (folder / "config.json").is_file():
            raise GenlabError(f"CLIP image encoder: no config.json in {folder} (give a local "
                              "CLIPVisionModelWithProjection folder, e.g. the SVD repo's image_encoder/)")
        from transformers import CLIPVisionModelWithProjection

        enc = CLIPVisionModelWithProjection.from_pretrained(str(folder), local_files_only=True).eval()
        return cls(enc, int(enc.config.image_size))

    def pixel_values(self, image: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [-1, 1] -> the encoder's normalised input (B, 3, size, size)."""
        from genlab.core.cond.image import antialiased_resize

        x = (antialiased_resize(image, (self.size, self.size)) + 1.0) / 2.0
        mean = x.new_tensor(self.mean)[None, :, None, None]
        std = x.new_tensor(self.std)[None, :, None, None]
        return (x - mean) / std

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        dtype = next(self.encoder.parameters()).dtype
        # the resize and normalisation in float32 (as diffusers), then the tower in its own dtype
        return self.encoder(pixel_values=self.pixel_values(image.float()).to(dtype)).image_embeds[:, None]


def convert_mode(model: SVDModel, mode: str, text_encoder: str = "builtin") -> SVDModel:
    """A model conditioned for `mode`, initialised from `model` (the paper starts its text-to-video and
    interpolation models from the video model): every weight of the same name and shape is copied; conv_in's
    kernels for the input channels both have are copied and the others start at zero, so new conditioning
    channels start as a no-op and dropped ones are cut."""
    from genlab.systems.video.config import with_mode

    new = SVDModel(with_mode(model.config, mode, text_encoder))
    own, src = new.state_dict(), model.state_dict()
    with torch.no_grad():
        for key, value in own.items():
            if key in src and src[key].shape == value.shape:
                value.copy_(src[key])
        w_new, w_old = own["unet.conv_in.weight"], src["unet.conv_in.weight"]
        c = min(w_new.shape[1], w_old.shape[1], model.config.latent_channels)
        w_new.zero_()
        w_new[:, :c] = w_old[:, :c]  # the noisy latent's channels come first in every mode
        if "t2v" not in (mode, model.config.mode):  # i2v <-> interp: both have conditioning latents next
            w_new[:, c:2 * c] = w_old[:, c:2 * c]
    return new.train(model.training)
