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


class SVDModel(nn.Module):
    """VideoUNet + (tiny) image encoder + interpolation mask embedding."""

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
                image_keep: torch.Tensor | None = None, **cond) -> torch.Tensor:
        """`net`, with the built-in image encoder run inside: `image` (B, 3, H, W) -> the context token,
        zeroed where `image_keep` (B,) is 0 (CFG dropout). Training calls this, so one forward reaches every
        trainable parameter (what DDP needs)."""
        if image is not None:
            token = self.encode_image_token(image)  # (B, 1, D)
            cond["context"] = token if image_keep is None else token * image_keep[:, None, None].to(token.dtype)
        return self.net(z_in, c_noise, **cond)

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
                            start_token: torch.Tensor, end_token: torch.Tensor, added_cond: torch.Tensor,
                            num_frames: int) -> dict:
        """Interpolation (App. D.5): concat [z_s, m, ..., m, z_e] + a mask channel; context = 2 tokens."""
        if self.mask_embedding is None:
            raise GenlabError("SVDModel: interp_conditioning needs a model built with mode='interp'")
        if num_frames < 3:
            raise GenlabError(f"interpolation needs num_frames >= 3 (start, middle, end), got {num_frames}")
        b, c, h, w = start_latent.shape
        mid = self.mask_embedding[None, None, :, None, None].expand(b, num_frames - 2, c, h, w)
        lat = torch.cat([start_latent[:, None], mid, end_latent[:, None]], dim=1)  # (B, T, C, h, w)
        mask = torch.zeros(b, num_frames, 1, h, w, dtype=lat.dtype, device=lat.device)
        mask[:, 0] = mask[:, -1] = 1.0
        return {"context": torch.cat([start_token, end_token], dim=1), "added_cond": added_cond,
                "concat": torch.cat([lat, mask], dim=2)}

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
