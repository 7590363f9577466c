"""2D UNet: parity with diffusers' UNet2DConditionModel on the same random weights, contract tests."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from genlab.core.nn import unet
from genlab.errors import GenlabError


def _diffusers_unet(cfg: unet.UNetConfig):
    diffusers = pytest.importorskip("diffusers")
    down = tuple("CrossAttnDownBlock2D" if a else "DownBlock2D" for a in cfg.attention_levels)
    up = tuple("CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(cfg.attention_levels))
    return diffusers.UNet2DConditionModel(
        sample_size=16, in_channels=cfg.in_channels, out_channels=cfg.out_channels,
        down_block_types=down, up_block_types=up, block_out_channels=cfg.block_out_channels,
        layers_per_block=cfg.layers_per_block, attention_head_dim=cfg.num_heads,
        cross_attention_dim=cfg.cross_attention_dim, norm_num_groups=cfg.norm_num_groups,
        use_linear_projection=cfg.use_linear_projection, transformer_layers_per_block=cfg.transformer_layers,
        norm_eps=cfg.norm_eps,
    ).eval()


@pytest.mark.parametrize(
    "cfg",
    [
        unet.tiny(),  # diffusers' own test config
        # insertion's shape: 2C+1 input channels, linear projections, 3 levels, 2 transformer layers
        unet.tiny(in_channels=9, out_channels=4, block_out_channels=(8, 16, 16), attention_levels=(True, True, False),
               num_heads=(2, 4, 4), layers_per_block=2, use_linear_projection=True, transformer_layers=2,
               cross_attention_dim=12),
    ],
)
def test_parity_with_diffusers_unet2d(cfg):
    torch.manual_seed(0)
    ref = _diffusers_unet(cfg)
    with torch.no_grad():
        for p in ref.parameters():  # non-zero everywhere (diffusers zero-inits nothing here, but be sure)
            p.add_(0.05 * torch.randn_like(p))
    ours = unet.UNet2D(cfg).eval()
    unet.load_diffusers_unet2d_state_dict(ours, ref.state_dict())
    x = torch.randn(2, cfg.in_channels, 16, 16)
    t = torch.tensor([3.0, 700.0])
    ctx = torch.randn(2, 5, cfg.cross_attention_dim)
    with torch.no_grad():
        expected = ref(x, t, encoder_hidden_states=ctx).sample
        got = ours(x, t, ctx)
    assert got.shape == (2, cfg.out_channels, 16, 16)
    assert (got - expected).abs().max().item() < 1e-5


def test_state_dict_keys_match_diffusers_names():
    cfg = unet.tiny()
    ref = _diffusers_unet(cfg)
    ours = unet.UNet2D(cfg)
    theirs = {k for k in ref.state_dict() if not k.endswith("to_out.1.weight")}
    assert set(ours.state_dict()) == theirs


def test_gradients_reach_every_parameter_and_checkpointing_gives_same_gradients():
    torch.manual_seed(0)
    cfg = unet.tiny(cross_attention_dim=8)
    model = unet.UNet2D(cfg)
    x, ctx = torch.randn(2, 4, 8, 8), torch.randn(2, 3, 8)

    def grads():
        model.zero_grad()
        model(x, torch.tensor([1.0, 2.0]), ctx).square().mean().backward()
        return {n: p.grad.clone() for n, p in model.named_parameters()}

    g0 = grads()
    assert all(g.abs().sum() > 0 for g in g0.values()), [n for n, g in g0.items() if g.abs().sum() == 0]
    model.gradient_checkpointing = True
    g1 = grads()
    for n in g0:
        torch.testing.assert_close(g0[n], g1[n], rtol=0, atol=1e-6)


def test_ff_chunking_same_output():
    torch.manual_seed(0)
    model = unet.UNet2D(unet.tiny()).eval()
    x, ctx = torch.randn(3, 4, 8, 8), torch.randn(3, 2, 8)
    with torch.no_grad():
        a = model(x, 5.0, ctx)
        model.set_ff_chunk_size(1)
        b = model(x, 5.0, ctx)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def test_bad_inputs_are_one_line_errors():
    model = unet.UNet2D(unet.tiny())
    with pytest.raises(GenlabError, match="divisible by 2"):
        model(torch.randn(1, 4, 9, 8), 1.0, torch.randn(1, 1, 8))
    with pytest.raises(GenlabError, match="in_channels=4"):
        model(torch.randn(1, 3, 8, 8), 1.0, torch.randn(1, 1, 8))
    with pytest.raises(GenlabError, match="num_heads"):
        unet.UNet2D(replace(unet.tiny(), num_heads=(2,)))


def test_config_round_trip():
    cfg = unet.tiny(addition_time_embed_dim=4, num_added_ids=3)
    assert unet.UNetConfig.from_dict(cfg.to_dict()) == cfg
    model = unet.UNet2D(cfg)
    out = model(torch.randn(2, 4, 8, 8), 1.0, torch.randn(2, 1, 8), added_cond=torch.randn(2, 3))
    assert out.shape == (2, 4, 8, 8)
