"""Temporal layers and the video UNet: parity with diffusers, image_only_indicator, inflate, contracts."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from genlab.core.nn import temporal, unet
from genlab.errors import GenlabError


def _diffusers_svd_unet(cfg: temporal.VideoUNetConfig):
    diffusers = pytest.importorskip("diffusers")
    u = cfg.unet
    down = tuple("CrossAttnDownBlockSpatioTemporal" if a else "DownBlockSpatioTemporal" for a in u.attention_levels)
    up = tuple("CrossAttnUpBlockSpatioTemporal" if a else "UpBlockSpatioTemporal" for a in reversed(u.attention_levels))
    return diffusers.UNetSpatioTemporalConditionModel(
        sample_size=16, in_channels=u.in_channels, out_channels=u.out_channels, down_block_types=down,
        up_block_types=up, block_out_channels=u.block_out_channels, layers_per_block=u.layers_per_block,
        num_attention_heads=u.num_heads, cross_attention_dim=u.cross_attention_dim,
        addition_time_embed_dim=u.addition_time_embed_dim,
        projection_class_embeddings_input_dim=u.addition_time_embed_dim * u.num_added_ids,
        transformer_layers_per_block=u.transformer_layers, num_frames=cfg.num_frames,
    ).eval()


def _perturb(model: torch.nn.Module, scale: float = 0.05) -> None:
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn_like(p))


@pytest.mark.parametrize("frames", [1, 3])
def test_parity_with_diffusers_spatiotemporal_unet(frames):
    torch.manual_seed(0)
    cfg = temporal.tiny()
    ref = _diffusers_svd_unet(cfg)
    _perturb(ref)  # also moves every mix_factor away from 0.5
    ours = temporal.VideoUNet(cfg).eval()
    theirs = {k: v for k, v in ref.state_dict().items() if not k.endswith("to_out.1.weight")}
    assert set(theirs) == set(ours.state_dict())
    ours.load_state_dict(theirs)
    x = torch.randn(2, frames, 4, 16, 16)
    t = torch.tensor([0.3, -1.2])  # c_noise = 0.25 ln sigma
    ctx = torch.randn(2, 1, 32)
    ids = torch.tensor([[6.0, 127.0, 0.02], [10.0, 30.0, 0.1]])
    with torch.no_grad():
        expected = ref(x, t, ctx, ids).sample
        got = ours(x, t, ctx, ids)
    assert got.shape == expected.shape == (2, frames, 4, 16, 16)
    assert (got - expected).abs().max().item() < 1e-5


def _image_unet(**kw) -> unet.UNet2D:
    cfg = unet.tiny(block_out_channels=(8, 16), num_heads=(2, 4), use_linear_projection=True, layers_per_block=1,
                 addition_time_embed_dim=4, num_added_ids=3, **kw)
    torch.manual_seed(1)
    model = unet.UNet2D(cfg).eval()
    _perturb(model)
    return model


def test_image_only_indicator_reproduces_the_2d_unet():
    image = _image_unet()
    video = temporal.inflate(image).eval()
    _perturb(video)  # temporal layers non-trivial ...
    video.load_state_dict({**video.state_dict(), **{k: v for k, v in temporal.inflate(image).state_dict().items()
                                                   if temporal.spatial_key(k) is not None}})  # ... spatial = image
    image.double(), video.double()  # float64: what remains is round-off, so the bound is tight
    b, t = 2, 3
    x = torch.randn(b, t, 4, 8, 8, dtype=torch.float64)
    ctx = torch.randn(b, 2, 8, dtype=torch.float64)
    ids = torch.randn(b, 3, dtype=torch.float64)
    sigma_c = torch.tensor([0.1, 0.7], dtype=torch.float64)
    with torch.no_grad():
        per_frame = image(x.flatten(0, 1), sigma_c.repeat_interleave(t), ctx.repeat_interleave(t, 0),
                          ids.repeat_interleave(t, 0)).reshape(b, t, 4, 8, 8)
        as_images = video(x, sigma_c, ctx, ids, image_only_indicator=torch.ones(b, t, dtype=torch.float64))
        as_video = video(x, sigma_c, ctx, ids)
    # equal up to round-off (the video path batches the embeddings differently)
    assert (as_images - per_frame).abs().max().item() < 1e-12
    assert (as_video - per_frame).abs().max() > 1e-3  # the temporal layers do something on video


def test_frames_interact_only_through_temporal_layers():
    torch.manual_seed(0)
    video = temporal.VideoUNet(temporal.tiny()).eval()
    _perturb(video)
    x = torch.randn(1, 3, 4, 8, 8)
    ctx, ids = torch.randn(1, 1, 32), torch.randn(1, 3)
    x2 = x.clone()
    x2[:, 2] += 1.0  # change only the last frame
    with torch.no_grad():
        a, b = video(x, 0.1, ctx, ids), video(x2, 0.1, ctx, ids)
        assert (a[:, 0] - b[:, 0]).abs().max() > 1e-4  # information flows across frames
        video.set_alpha_override(1.0)
        a, b = video(x, 0.1, ctx, ids), video(x2, 0.1, ctx, ids)
        assert torch.equal(a[:, 0], b[:, 0])  # alpha = 1: frames independent


def test_alpha_blender_strategies():
    xs, xt = torch.ones(2, 4, 3), torch.zeros(2, 4, 3)
    ind = torch.tensor([[1.0, 0.0]])
    out = temporal.AlphaBlender(0.0, "learned_with_images")(xs, xt, ind)  # alpha = [1, sigmoid(0)=0.5]
    assert torch.allclose(out[:, 0, 0], torch.tensor([1.0, 0.5]))
    out = temporal.AlphaBlender(0.25, "fixed")(xs, xt)
    assert torch.allclose(out, torch.full_like(out, 0.25))
    out = temporal.AlphaBlender(0.0, "learned", switch=True)(torch.ones(1), torch.full((1,), 3.0))
    assert torch.allclose(out, torch.tensor([2.0]))  # 0.5 * temporal + 0.5 * spatial
    with pytest.raises(GenlabError, match="strategy"):
        temporal.AlphaBlender(0.5, "nonsense")


def test_inflate_rejects_a_different_config():
    image = _image_unet()
    other = temporal.VideoUNetConfig(unet=replace(image.config, norm_eps=1e-6))
    with pytest.raises(GenlabError, match="config"):
        temporal.inflate(image, other)


def test_video_unet_gradients_checkpointing_and_bad_input():
    torch.manual_seed(0)
    video = temporal.VideoUNet(temporal.tiny())
    x, ctx, ids = torch.randn(1, 2, 4, 8, 8), torch.randn(1, 1, 32), torch.randn(1, 3)

    def grads():
        video.zero_grad()
        video(x, 0.2, ctx, ids).square().mean().backward()
        return {n: p.grad.clone() for n, p in video.named_parameters() if p.grad is not None}

    g0 = grads()
    assert len(g0) == len(list(video.parameters()))
    video.gradient_checkpointing = True
    g1 = grads()
    for n in g0:
        torch.testing.assert_close(g0[n], g1[n], rtol=0, atol=1e-6)
    assert len(video.temporal_parameters()) > 0
    with pytest.raises(GenlabError, match="divisible"):
        video(torch.randn(1, 2, 4, 7, 8), 0.2, ctx, ids)
    with pytest.raises(GenlabError, match="num_frames"):
        video(torch.randn(1, 0, 4, 8, 8), 0.2, ctx, ids)
    with pytest.raises(GenlabError, match="added_cond"):
        video(x, 0.2, ctx, None)
    assert temporal.VideoUNetConfig.from_dict(temporal.tiny().to_dict()) == temporal.tiny()


def test_video_ff_chunking_over_frames_gives_the_same_output():
    torch.manual_seed(0)
    video = temporal.VideoUNet(temporal.tiny()).eval()
    x, ctx, ids = torch.randn(1, 4, 4, 8, 8), torch.randn(1, 1, 32), torch.randn(1, 3)
    with torch.no_grad():
        full = video(x, 0.1, ctx, ids)
        video.set_ff_chunk_size(1)  # spatial FF one frame at a time, temporal FF one pixel at a time
        chunked = video(x, 0.1, ctx, ids)
    torch.testing.assert_close(full, chunked, rtol=0, atol=1e-5)
