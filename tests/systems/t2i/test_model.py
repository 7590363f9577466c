"""MM-DiT: diffusers parity, contract (shapes, zero-init, gradients), converter key maps, baselines."""

from __future__ import annotations

import pytest
import torch

from genlab.errors import GenlabError
from genlab.systems.t2i import convert
from genlab.systems.t2i.config import MMDiTConfig, mmdit_depth, sd3_5_large_model, sd3_medium_model
from genlab.systems.t2i.model import MMDiT

diffusers = pytest.importorskip("diffusers")


def _small(qk_norm=None) -> MMDiTConfig:
    return MMDiTConfig(depth=3, hidden_size=32, num_heads=2, patch_size=2, in_channels=4, out_channels=4,
                       context_dim=24, pooled_dim=12, pos_embed_max_size=8, pos_embed_base_size=4.0, qk_norm=qk_norm)


def _randomise(module: torch.nn.Module, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            p.copy_(0.2 * torch.randn(p.shape, generator=g) + (1.0 if name.endswith("norm_q.weight") else 0.0))


@pytest.mark.parametrize("qk_norm", [None, "rms"])
def test_parity_with_diffusers_sd3_transformer(qk_norm):
    from diffusers import SD3Transformer2DModel

    cfg = _small(qk_norm)
    theirs = SD3Transformer2DModel(**convert.to_diffusers_config(cfg)).eval()
    _randomise(theirs)
    ours = MMDiT(cfg).eval()
    ours.load_state_dict(convert.from_diffusers(theirs.state_dict()), strict=True)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 4, 8, 12, generator=g)  # 4x6 tokens: a non-square crop of the 8x8 table
    ctx, pooled = torch.randn(2, 5, 24, generator=g), torch.randn(2, 12, generator=g)
    t = torch.tensor([12.0, 731.5])
    with torch.no_grad():
        ref = theirs(hidden_states=x, encoder_hidden_states=ctx, pooled_projections=pooled, timestep=t).sample
        out = ours(x, t, ctx, pooled)
    assert out.shape == ref.shape == x.shape
    assert ref.abs().mean() > 0.1  # a non-trivial output
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)


def test_our_sincos_table_equals_diffusers():
    from diffusers.models.embeddings import get_2d_sincos_pos_embed

    from genlab.core.nn.embeddings import sincos_2d_pos_embed

    ref = get_2d_sincos_pos_embed(48, 12, base_size=4, output_type="pt").float()
    torch.testing.assert_close(sincos_2d_pos_embed(48, 12, base_size=4), ref, rtol=0, atol=1e-6)


@pytest.mark.parametrize("make", [sd3_medium_model, sd3_5_large_model])
def test_converter_maps_real_sd3_configs_key_for_key_both_ways(make):
    from diffusers import SD3Transformer2DModel

    cfg = make()
    with torch.device("meta"):
        theirs = SD3Transformer2DModel(**convert.to_diffusers_config(cfg))
        ours = MMDiT(cfg)
    t_state, o_state = theirs.state_dict(), ours.state_dict()
    mapped = convert.from_diffusers(t_state)
    assert set(mapped) == set(o_state)
    assert all(mapped[k].shape == o_state[k].shape for k in o_state)
    back = convert.to_diffusers(o_state)
    assert set(back) == set(t_state)
    assert all(back[k].shape == t_state[k].shape for k in t_state)
    single = convert.to_single_file(o_state)
    assert all(k.startswith("model.diffusion_model.joint_blocks.") or k.split(".")[2] in
               {"pos_embed", "x_embedder", "t_embedder", "y_embedder", "context_embedder", "final_layer"} for k in single)
    assert convert.from_single_file({**single, "first_stage_model.decoder.conv_in.weight": 0}).keys() == o_state.keys()
    assert convert.config_from_state_dict(o_state) == MMDiTConfig(**{**cfg.__dict__, "pos_embed_base_size": None})
    n_params = sum(p.numel() for p in ours.parameters())
    assert abs(n_params - 36 * cfg.hidden_size ** 2 * cfg.depth) / n_params < 0.05  # notes: ~ 36 h^2 d


def test_tiny_model_round_trips_through_the_converter(tmp_path):
    from genlab.core.train import save_weights

    torch.manual_seed(0)
    model = MMDiT(_small("rms"))
    _randomise(model, 3)
    x, t, ctx, pooled = torch.randn(1, 4, 6, 6), torch.tensor([300.0]), torch.randn(1, 3, 24), torch.randn(1, 12)
    twice = MMDiT(_small("rms"))
    twice.load_state_dict(convert.from_diffusers(convert.to_diffusers(model.state_dict())))
    save_weights(tmp_path / "sd3.safetensors", convert.to_single_file(model.state_dict()))
    loaded = convert.load_pretrained(tmp_path / "sd3.safetensors")
    with torch.no_grad():
        ref = model(x, t, ctx, pooled)
        assert torch.equal(twice(x, t, ctx, pooled), ref)
        assert torch.equal(loaded(x, t, ctx, pooled), ref)


def test_adaln_zero_init_gradients_and_errors():
    cfg = _small()
    model = MMDiT(cfg)
    x, t, ctx, pooled = torch.randn(2, 4, 8, 8), torch.tensor([1.0, 999.0]), torch.randn(2, 5, 24), torch.randn(2, 12)
    assert torch.equal(model(x, t, ctx, pooled), torch.zeros_like(x))  # adaLN-Zero: the model starts at 0
    _randomise(model)
    model(x, t, ctx, pooled).square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    with pytest.raises(GenlabError, match="not divisible by the patch"):
        model(torch.randn(1, 4, 7, 8), t[:1], ctx[:1], pooled[:1])
    with pytest.raises(GenlabError, match="pos_embed_max_size"):
        model(torch.randn(1, 4, 20, 8), t[:1], ctx[:1], pooled[:1])


def test_paper_family_sizes():
    assert mmdit_depth(24).hidden_size == 1536 and mmdit_depth(24).num_heads == 24
    assert sd3_5_large_model().hidden_size == 2432 and sd3_5_large_model().qk_norm == "rms"
