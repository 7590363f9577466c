"""Image preprocessing for image encoders: the anti-aliased downscale that sgm and diffusers apply before CLIP.

SVD's image conditioning (sgm `FrozenOpenCLIPImagePredictionEmbedder`, diffusers
`StableVideoDiffusionPipeline._encode_image`) shrinks the full-resolution frame to 224x224 with kornia's
`resize(antialias=True)`: a separable Gaussian blur whose sigma per axis is (factor - 1) / 2 (scikit-image's
rule), kernel size 2 * 2 sigma rounded to an odd integer >= 3, reflect padding, then bicubic interpolation
with align_corners=True. Skipping the blur changes a 576x1024 frame's CLIP input by up to 0.34 (in 0..1).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _gaussian_kernel(size: int, sigma: float, dtype: torch.dtype, device) -> torch.Tensor:
    """Normalised 1D Gaussian of odd `size`, centred."""
    x = torch.arange(size, dtype=dtype, device=device) - size // 2
    sig = torch.tensor(sigma, dtype=dtype, device=device)
    g = torch.exp(-x.pow(2) / (2 * sig.pow(2)))
    return g / g.sum()


def _blur_axis(x: torch.Tensor, kernel: torch.Tensor, axis: int) -> torch.Tensor:
    """Depthwise convolution of (N, C, H, W) along H (axis=2) or W (axis=3), reflect-padded to keep the size."""
    c, k = x.shape[1], kernel.numel()
    pad = (k - 1) // 2, k - 1 - (k - 1) // 2
    if axis == 3:
        weight, padding = kernel.reshape(1, 1, 1, k), (pad[0], pad[1], 0, 0)
    else:
        weight, padding = kernel.reshape(1, 1, k, 1), (0, 0, pad[0], pad[1])
    x = F.pad(x, padding, mode="reflect")
    return F.conv2d(x, weight.expand(c, 1, *weight.shape[2:]), groups=c)


def antialiased_resize(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, *size): Gaussian pre-blur (sigma = (H/h - 1)/2 per axis), then bicubic.

    Works in the image's own value range; sgm and diffusers call it on [-1, 1] images."""
    h, w = image.shape[-2:]
    sigmas = [max((h / size[0] - 1.0) / 2.0, 0.001), max((w / size[1] - 1.0) / 2.0, 0.001)]
    sizes = [int(max(2.0 * 2 * s, 3)) for s in sigmas]
    sizes = [k + 1 if k % 2 == 0 else k for k in sizes]  # odd kernels
    x = _blur_axis(image, _gaussian_kernel(sizes[1], sigmas[1], image.dtype, image.device), axis=3)
    x = _blur_axis(x, _gaussian_kernel(sizes[0], sigmas[0], image.dtype, image.device), axis=2)
    return F.interpolate(x, size=size, mode="bicubic", align_corners=True)
