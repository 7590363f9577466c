"""Autoencoders: shapes, identity, the small AE learns and its cache round-trips."""

from __future__ import annotations

import time

import pytest
import torch

from genlab.core.autoencoders import pixel, small
from genlab.errors import GenlabError


def _blobs(n: int, size: int, seed: int = 0) -> torch.Tensor:
    """Smooth random images in [-1, 1]: a few coloured Gaussian blobs on a gradient."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    imgs = []
    for _ in range(n):
        img = torch.rand(3, 1, 1, generator=g) * 0.5 * (xx + yy)[None] - 0.5
        for _ in range(2):
            c = torch.rand(2, generator=g)
            col = torch.rand(3, 1, 1, generator=g) * 2 - 1
            img = img + col * torch.exp(-((xx - c[0]) ** 2 + (yy - c[1]) ** 2) / 0.02)[None]
        imgs.append(img.clamp(-1, 1))
    return torch.stack(imgs)


def test_pixel_identity():
    ae = pixel.PixelIdentity(3)
    x = torch.randn(2, 3, 8, 8)
    assert torch.equal(ae.decode(ae.encode(x)), x)


def test_small_ae_shapes_f4_and_bad_input():
    ae = small.SmallAE(small.tiny(channels=(8, 8, 8)))
    assert ae.encode(torch.randn(2, 3, 32, 32)).shape == (2, 4, 8, 8)
    assert ae.encode(torch.randn(1, 3, 64, 64)).shape == (1, 4, 16, 16)
    assert ae.decode(torch.randn(1, 4, 16, 16)).shape == (1, 3, 64, 64)
    with pytest.raises(GenlabError, match="divisible by 4"):
        ae.encode(torch.randn(1, 3, 30, 32))


def test_small_ae_trains_caches_and_reloads(tmp_path):
    torch.set_num_threads(1)
    images = _blobs(64, 16)
    cfg = small.tiny(channels=(16, 16, 16), steps=150, batch_size=16, lr=3e-3)
    model = small.train_or_load(cfg, images, cache_dir=tmp_path)
    with torch.no_grad():
        z = model.encode(images)
        rec = model.decode(z)
    assert abs(z.std().item() - 1.0) < 0.05  # unit-scale latent
    assert small.psnr(rec, images) > 20.0  # learned something (an untrained AE gives about 5 dB)
    t0 = time.perf_counter()
    again = small.train_or_load(cfg, images, cache_dir=tmp_path)
    assert time.perf_counter() - t0 < 2.0  # cached: loaded, not retrained
    assert again.config == model.config  # the config read back from JSON equals the trained one
    with torch.no_grad():
        torch.testing.assert_close(again.decode(again.encode(images)), rec)
