"""SVD model contracts: conditioning, EDM preconditioning, stage training, bit-identical resume, image-stage bypass."""

from __future__ import annotations

import math

import pytest
import torch

from genlab.core.autoencoders.pixel import PixelIdentity
from genlab.core.flow.formulation import edm_v
from genlab.core.train import load_checkpoint
from genlab.errors import GenlabError
from genlab.systems.video.config import VideoModelConfig, stage, tiny
from genlab.systems.video.data import SpriteConfig, make_clips
from genlab.systems.video.demo import demo_model
from genlab.systems.video.model import SVDModel
from genlab.systems.video.train import TrainData, load_video_model, train_stage


def _small_model(latent_channels: int = 3, seed: int = 0) -> SVDModel:
    torch.manual_seed(seed)
    return SVDModel(demo_model(latent_channels, (16, 16)))


def _data(n: int = 8, size: int = 8, frames: int = 3) -> TrainData:
    clips = make_clips(SpriteConfig(size=size, frames=frames, sprite=2, max_speed=1.0), n, seed=0)
    return TrainData(clips.video, clips.video[:, 0], clips.bucket)


def test_edm_preconditioning_is_svds():
    """core/flow's edm_v at sigma: c_skip = 1/(s^2+1), c_out = -s/sqrt(s^2+1), c_in = 1/sqrt(s^2+1),
    c_noise = ln(s)/4 (paper eq. 11-14 with sigma_data = 1); expressed on z = x / sqrt(1+s^2)."""
    f = edm_v(-1.2, 1.0)
    for sigma in (0.01, 0.5, 3.0, 60.0):
        t = f.path.t_from_sigma(torch.tensor(sigma, dtype=torch.float64))
        c = f.edm_coefficients(t)
        a = 1 / math.sqrt(1 + sigma**2)
        # flow states the coefficients on z = a x: c_skip(z) z = c_skip(x) x, so c_skip(x) = a c_skip(z)
        assert math.isclose(float(c.c_skip) * a, 1 / (sigma**2 + 1), rel_tol=1e-9)
        assert math.isclose(float(c.c_out), -sigma / math.sqrt(sigma**2 + 1), rel_tol=1e-9)
        assert math.isclose(float(c.c_in) * a, 1 / math.sqrt(sigma**2 + 1), rel_tol=1e-9)
        assert math.isclose(float(c.c_noise), 0.25 * math.log(sigma), rel_tol=1e-9, abs_tol=1e-12)


def test_conditioning_shapes_and_unconditional_branch():
    model = _small_model()
    img = torch.randn(2, 3, 8, 8)
    token = model.encode_image_token(img)
    assert token.shape == (2, 1, 32)
    ids = model.added_ids(2, 6, torch.tensor([10.0, 200.0]), 0.02)
    assert ids.tolist() == [[6.0, 10.0, pytest.approx(0.02)], [6.0, 200.0, pytest.approx(0.02)]]
    cond = model.conditioning(img, token, ids, num_frames=4)
    assert cond["concat"].shape == (2, 4, 3, 8, 8)
    assert torch.equal(cond["concat"][:, 3], img)  # the same latent on every frame
    un = model.unconditional(cond)
    assert un["concat"].abs().sum() == 0 and un["context"].abs().sum() == 0 and torch.equal(un["added_cond"], ids)
    out = model.net(torch.randn(2, 4, 3, 8, 8), torch.zeros(2), **cond)
    assert out.shape == (2, 4, 3, 8, 8)


def test_interpolation_mode_and_config_errors():
    cfg = tiny(mode="interp", latent_channels=4)
    model = SVDModel(cfg)
    z = torch.randn(1, 4, 8, 8)
    tok = torch.randn(1, 1, 32)
    cond = model.interp_conditioning(z, z, tok, tok, model.added_ids(1, 6, 0, 0.02), num_frames=5)
    assert cond["concat"].shape == (1, 5, 5, 8, 8) and cond["context"].shape == (1, 2, 32)
    assert cond["concat"][0, :, 4, 0, 0].tolist() == [1, 0, 0, 0, 1]  # mask channel
    assert model.net(torch.randn(1, 5, 4, 8, 8), torch.zeros(1), **cond).shape == (1, 5, 4, 8, 8)
    with pytest.raises(GenlabError, match="in_channels=8"):
        SVDModel(VideoModelConfig(unet=tiny(mode="t2v").unet, mode="i2v"))
    with pytest.raises(GenlabError, match="interp"):
        SVDModel(tiny()).interp_conditioning(z, z, tok, tok, None, 5)


def test_image_stage_trains_only_the_spatial_path():
    model = _small_model()
    before = {n: p.clone() for n, p in model.unet.named_parameters()}
    temporal = {n for n, _ in model.unet.named_parameters() if any(
        k in n for k in ("temporal_res_block", "temporal_transformer_blocks", "time_pos_embed", "time_mixer"))}
    train_stage(model, PixelIdentity(3), _data(), stage("image", steps=2, batch_size=2, frames=3, size=8))
    changed = {n for n, p in model.unet.named_parameters() if not torch.equal(p, before[n])}
    assert changed and not (changed & temporal)  # image_only_indicator = 1 bypasses every temporal layer


def assert_same_state(a, b, where: str = "") -> None:
    """Nested checkpoint states equal: tensors torch.equal, everything else ==."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            assert_same_state(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_state(x, y, f"{where}.{i}")
    else:
        assert a == b, where


def test_resume_after_a_checkpoint_is_bit_identical(tmp_path):
    """Stopped right after its step-2 checkpoint (later files removed) and resumed from a model with other
    weights, a stage ends torch.equal to an uninterrupted run: model, EMA, optimizer state, losses.
    (The SIGKILL version through `genlab video train` is in test_cli_video, slow tier.)"""
    st = stage("i2v", steps=4, batch_size=2, frames=3, size=8, lr=1e-3, ema_decay=0.9)
    data, ae = _data(), PixelIdentity(3)
    straight = _small_model()
    losses = train_stage(straight, ae, data, st, out_dir=tmp_path / "straight", checkpoint_every=2)
    assert len(losses) == 4 and all(math.isfinite(x) for x in losses)
    train_stage(_small_model(), ae, data, st, out_dir=tmp_path / "cut", checkpoint_every=2)
    cut = tmp_path / "cut" / "i2v"
    for name in ("checkpoints/step_00000004.safetensors", "model.safetensors", "ema.safetensors", "history.json"):
        (cut / name).unlink()
    resumed = _small_model(seed=1)  # other weights: only the checkpoint can make it equal
    assert train_stage(resumed, ae, data, st, out_dir=tmp_path / "cut", checkpoint_every=2) == losses
    final = "checkpoints/step_00000004.safetensors"
    a, b = load_checkpoint(tmp_path / "straight" / "i2v" / final), load_checkpoint(cut / final)
    for key in ("model", "ema", "optimizer", "step", "history"):
        assert_same_state(a[key], b[key], key)
    assert a["optimizer"]["state"], "optimizer state is empty"
    for (n, x), y in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(x, y), n
    loaded = load_video_model(cut)  # the stage's result: its EMA, with the config beside it
    for (n, x), y in zip(resumed.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(x, y), n


def test_temporal_lora_starts_as_identity_trains_only_adapters_and_merges():
    from genlab.systems.video.lora import add_temporal_lora, merge_lora

    model = _small_model().eval()
    x = torch.randn(1, 3, 3, 8, 8)
    cond = model.conditioning(torch.randn(1, 3, 8, 8), torch.randn(1, 1, 32), model.added_ids(1, 6, 100, 0.02), 3)
    with torch.no_grad():
        base = model.net(x, torch.zeros(1), **cond)
    names = add_temporal_lora(model.unet, rank=4)
    assert names and all("temporal_transformer_blocks" in n for n in names)
    with torch.no_grad():
        assert torch.equal(model.net(x, torch.zeros(1), **cond), base)  # B = 0: unchanged
    before = {n: p.clone() for n, p in model.named_parameters()}
    train_stage(model, PixelIdentity(3), _data(), stage("i2v", steps=2, batch_size=2, frames=3, size=8, train="lora"))
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed and all("lora_" in n for n in changed)
    model.eval()
    with torch.no_grad():
        adapted = model.net(x, torch.zeros(1), **cond)
        merge_lora(model.unet)
        merged = model.net(x, torch.zeros(1), **cond)
    assert (adapted - base).abs().max() > 0
    torch.testing.assert_close(merged, adapted, rtol=1e-4, atol=1e-5)


def test_text_to_video_and_missing_paths(tmp_path):
    from genlab.core.autoencoders.kl import DiffusersKL
    from genlab.systems.video.model import CLIPImageTokens
    from genlab.systems.video.pipeline import SamplingConfig, sample_t2v

    model = SVDModel(tiny(mode="t2v", latent_channels=3)).eval()
    cfg = SamplingConfig(num_frames=2, steps=2, min_guidance=1.0, max_guidance=2.0)
    out = sample_t2v(model, PixelIdentity(3), torch.randn(1, 4, 32), 8, 8, cfg,
                     generator=torch.Generator().manual_seed(0))
    assert out.video.shape == (1, 2, 3, 8, 8) and out.nfe == 2
    with pytest.raises(GenlabError, match="prompt"):
        sample_t2v(model, PixelIdentity(3), None, 8, 8, cfg)
    with pytest.raises(GenlabError, match="CLIP"):
        CLIPImageTokens.from_local(tmp_path / "no_clip")
    with pytest.raises(GenlabError, match="AutoencoderKL"):
        DiffusersKL.from_local(tmp_path / "no_vae")


def test_interpolation_sampling_contract():
    from genlab.systems.video.pipeline import SamplingConfig, sample_interpolation

    model = SVDModel(tiny(mode="interp", latent_channels=3)).eval()
    cfg = SamplingConfig(num_frames=5, steps=2, min_guidance=1.0, max_guidance=2.0)
    a, b = torch.zeros(1, 3, 8, 8), torch.ones(1, 3, 8, 8)
    out = sample_interpolation(model, PixelIdentity(3), a, b, cfg, generator=torch.Generator().manual_seed(0))
    assert out.video.shape == (1, 5, 3, 8, 8)
    with pytest.raises(GenlabError, match="mode='interp'"):
        sample_interpolation(_small_model(), PixelIdentity(3), a, b, cfg)


def test_lora_run_saves_merged_weights_and_adapters_that_reload(tmp_path):
    """`train="lora"`: ema.safetensors holds the merged model (plain keys, loads with load_video_model) and
    lora.safetensors the adapters; base + load_lora samples the same latents as the merged export (1e-5);
    a LoRA given to another base is a clear key-mismatch error."""
    from genlab.systems.video.lora import add_temporal_lora, load_lora
    from genlab.systems.video.pipeline import SamplingConfig, sample_i2v

    ae = PixelIdentity(3)
    model = _small_model()
    add_temporal_lora(model.unet, rank=4)
    train_stage(model, ae, _data(), stage("i2v", steps=3, batch_size=2, frames=3, size=8, lr=1e-2, train="lora"),
                out_dir=tmp_path)
    merged = load_video_model(tmp_path / "i2v")
    assert not any("lora_" in k for k in merged.state_dict())
    adapted = load_lora(_small_model(), tmp_path / "i2v" / "lora.safetensors").eval()
    cfg = SamplingConfig(num_frames=3, steps=3, min_guidance=1.0, max_guidance=2.0)
    image = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(1)) * 2 - 1

    def latents(m):
        return sample_i2v(m, ae, image, cfg, generator=torch.Generator().manual_seed(0)).latents

    a, b, base = latents(adapted), latents(merged), latents(_small_model().eval())
    assert (a - b).abs().max() <= 1e-5 and (a - base).abs().max() > 1e-4
    with pytest.raises(GenlabError, match="another model"):
        load_lora(SVDModel(demo_model(3, (16, 32))), tmp_path / "i2v" / "lora.safetensors")
    with pytest.raises(GenlabError, match="no LoRA config"):
        load_lora(_small_model(), tmp_path / "i2v" / "ema.safetensors")
