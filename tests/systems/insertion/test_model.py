"""Model contracts: parity of the image encoder and the 2C+1 UNet with transformers/diffusers,
gradients reach every trained parameter, condition dropout, bad input, save/load."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from genlab.errors import GenlabError
from genlab.systems.insertion import config
from genlab.systems.insertion.encoder import ViTConfig, load_clip_vision
from genlab.systems.insertion.model import InsertionModel, SpaceToDepth
from genlab.systems.insertion.pipeline import InsertionPipeline


def _tiny_vit():
    return ViTConfig(image_size=32, patch_size=8, hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                     num_attention_heads=4)


def test_clip_vision_parity_with_transformers(tmp_path):
    transformers = pytest.importorskip("transformers")
    c = _tiny_vit()
    hf_cfg = transformers.CLIPVisionConfig(image_size=c.image_size, patch_size=c.patch_size, hidden_size=c.hidden_size,
                                           intermediate_size=c.intermediate_size, num_hidden_layers=c.num_hidden_layers,
                                           num_attention_heads=c.num_attention_heads, hidden_act="quick_gelu")
    torch.manual_seed(0)
    hf = transformers.CLIPVisionModel(hf_cfg).eval()
    hf.save_pretrained(tmp_path)  # a local transformers folder, as real weights would be
    ours = load_clip_vision(tmp_path)
    x = torch.randn(2, 3, c.image_size, c.image_size)
    with torch.no_grad():
        want = hf(pixel_values=x).last_hidden_state
        got = ours(x)
    assert got.shape == (2, 1 + 16, c.hidden_size)
    assert (got - want).abs().max().item() <= 1e-4
    assert (ours.pooled(got) - hf(pixel_values=x).pooler_output).abs().max().item() <= 1e-4


def test_missing_or_mismatched_encoder_weights_are_one_clear_error(tmp_path):
    transformers = pytest.importorskip("transformers")
    with pytest.raises(GenlabError, match="config.json"):
        load_clip_vision(tmp_path)
    c = _tiny_vit()
    hf_cfg = transformers.CLIPVisionConfig(image_size=c.image_size, patch_size=c.patch_size, hidden_size=c.hidden_size,
                                           intermediate_size=c.intermediate_size, num_hidden_layers=c.num_hidden_layers,
                                           num_attention_heads=c.num_attention_heads)
    transformers.CLIPVisionModel(hf_cfg).save_pretrained(tmp_path)
    import json

    raw = json.loads((tmp_path / "config.json").read_text())
    raw["num_hidden_layers"] = 3  # config says 3 layers, weights hold 2
    (tmp_path / "config.json").write_text(json.dumps(raw))
    with pytest.raises(GenlabError, match="missing .*encoder.layers.2"):
        load_clip_vision(tmp_path)


def test_inpainting_unet_parity_with_diffusers():
    diffusers = pytest.importorskip("diffusers")
    from genlab.core.nn.unet import load_diffusers_unet2d_state_dict

    cfg = config.tiny()
    u = cfg.model.unet
    torch.manual_seed(0)
    ref = diffusers.UNet2DConditionModel(
        sample_size=16, in_channels=u.in_channels, out_channels=u.out_channels, block_out_channels=u.block_out_channels,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        layers_per_block=u.layers_per_block, attention_head_dim=u.num_heads, cross_attention_dim=u.cross_attention_dim,
        norm_num_groups=u.norm_num_groups, use_linear_projection=u.use_linear_projection,
    ).eval()
    model = InsertionModel(cfg.model).eval()
    load_diffusers_unet2d_state_dict(model.unet, ref.state_dict())
    x = torch.randn(2, u.in_channels, 16, 16)
    ctx = torch.randn(2, 17, u.cross_attention_dim)
    t = torch.tensor([10.0, 700.0])
    with torch.no_grad():
        want = ref(x, t, encoder_hidden_states=ctx).sample
        got = model.unet(x, t, context=ctx)
    assert (got - want).abs().max().item() <= 1e-4


def test_gradients_reach_every_trained_parameter_and_shapes():
    cfg = config.tiny()
    model = InsertionModel(cfg.model)
    torch.nn.init.normal_(model.unet.conv_out.weight, std=0.02)  # zero-init would block gradients upstream
    n, c = 2, cfg.model.latent_channels
    z = torch.randn(n, c, 16, 16)
    out = model(z, torch.tensor([3.0, 500.0]), scene=torch.randn_like(z), mask=torch.ones(n, 1, 16, 16),
                reference=torch.rand(n, 3, cfg.ref_size, cfg.ref_size) * 2 - 1)
    assert out.shape == z.shape
    out.square().mean().backward()
    dead = [k for k, p in model.named_parameters() if p.requires_grad and (p.grad is None or p.grad.abs().sum() == 0)]
    assert not dead, dead
    # a frozen encoder (CLIP) gets no gradient
    frozen = InsertionModel(replace(cfg.model, train_encoder=False))
    assert not any(p.requires_grad for p in frozen.ref_encoder.parameters())
    with pytest.raises(ValueError, match="2C\\+1"):
        replace(cfg.model, unet=replace(cfg.model.unet, in_channels=9))


def test_space_to_depth_is_exact():
    ae = SpaceToDepth(2)
    x = torch.randn(2, 3, 8, 8)
    assert ae.encode(x).shape == (2, 12, 4, 4)
    torch.testing.assert_close(ae.decode(ae.encode(x)), x)


def _pipe():
    cfg = config.tiny()
    torch.manual_seed(0)
    return InsertionPipeline(InsertionModel(cfg.model), SpaceToDepth(2), cfg.ref_size), cfg


def test_bad_inputs_are_one_clear_error():
    pipe, cfg = _pipe()
    s = replace(cfg.sample, steps=2)
    scene = torch.zeros(1, 3, 32, 32)
    mask = torch.zeros(1, 1, 32, 32)
    mask[..., 8:24, 10:20] = 1
    ref = torch.rand(1, 3, 16, 16) - 0.5
    assert pipe.sample(scene, mask, ref, settings=s).images.shape == (1, 3, 32, 32)
    with pytest.raises(GenlabError, match="divisible"):
        pipe.sample(torch.zeros(1, 3, 30, 30), torch.ones(1, 1, 30, 30), ref, settings=s)
    with pytest.raises(GenlabError, match="mask is empty"):
        pipe.sample(scene, torch.zeros_like(mask), ref, settings=s)
    with pytest.raises(GenlabError, match="whole image"):
        pipe.sample(scene, torch.ones_like(mask), ref, settings=s)
    with pytest.raises(GenlabError, match="no person"):
        pipe.sample(scene, mask, torch.zeros_like(ref), settings=s)
    with pytest.raises(GenlabError, match="NaN"):
        pipe.sample(scene.clone().fill_(float("nan")), mask, ref, settings=s)
    with pytest.raises(GenlabError, match="mode"):
        pipe.sample(scene, mask, ref, mode="magic", settings=s)
    # the full mask is fine where there is no scene; no reference is fine for person hallucination
    assert pipe.sample(scene, torch.ones_like(mask), ref, mode="scene_hallucination", settings=s).nfe == 2
    assert pipe.sample(scene, mask, None, mode="person_hallucination", settings=s).nfe == 2


def test_the_reference_is_encoded_once_per_sample_and_matches_encoding_every_step():
    pipe, cfg = _pipe()
    calls = []
    pipe.model.ref_encoder.register_forward_hook(lambda *_: calls.append(1))
    mask = torch.zeros(2, 1, 32, 32)
    mask[..., 8:24, 10:20] = 1
    scene, ref = torch.rand(2, 3, 32, 32) - 0.5, torch.rand(2, 3, 16, 16) - 0.5
    s = replace(cfg.sample, steps=4)
    out = pipe.sample(scene, mask, ref, settings=s, generator=torch.Generator().manual_seed(0))
    assert len(calls) == 2  # the person and the grey "no person", not once per step and condition
    pipe.sample(scene, mask, ref, settings=s)
    assert len(calls) == 3  # the dropped conditions are constants: encoded once per pipeline
    calls.clear()

    class PerStep(torch.nn.Module):  # the network fed raw reference images: encodes at every call
        def __init__(self, model):
            super().__init__()
            self.inner, self.config = model, model.config

        def encode_reference(self, reference):
            return reference

        def forward(self, z_t, timestep, scene, mask, reference=None, context=None):
            return self.inner(z_t, timestep, scene, mask, reference=context)

    slow = InsertionPipeline(PerStep(pipe.model), pipe.ae, cfg.ref_size)
    want = slow.sample(scene, mask, ref, settings=s, generator=torch.Generator().manual_seed(0))
    assert len(calls) == 4  # one batched encoder call per step
    torch.testing.assert_close(out.latents, want.latents, atol=1e-5, rtol=1e-5)


def test_nan_latents_are_reported():
    pipe, cfg = _pipe()

    class BadAE(SpaceToDepth):
        def encode(self, x):
            return super().encode(x) * float("nan")

    pipe.ae = BadAE(2)
    mask = torch.zeros(1, 1, 32, 32)
    mask[..., 4:12, 4:12] = 1
    with pytest.raises(GenlabError, match="NaN"):
        pipe.sample(torch.zeros(1, 3, 32, 32), mask, torch.rand(1, 3, 16, 16) - 0.5,
                    settings=replace(cfg.sample, steps=2))


def test_load_pretrained_from_local_folders(tmp_path):
    diffusers = pytest.importorskip("diffusers")
    transformers = pytest.importorskip("transformers")
    from genlab.systems.insertion.convert import load_pretrained

    torch.manual_seed(0)
    unet = diffusers.UNet2DConditionModel(
        sample_size=8, in_channels=9, out_channels=4, block_out_channels=(8, 16),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        layers_per_block=1, attention_head_dim=2, cross_attention_dim=16, norm_num_groups=4,
    ).eval()
    unet.save_pretrained(tmp_path / "sd" / "unet")
    diffusers.AutoencoderKL(block_out_channels=(8, 8), down_block_types=("DownEncoderBlock2D",) * 2,
                            up_block_types=("UpDecoderBlock2D",) * 2, norm_num_groups=4,
                            latent_channels=4).save_pretrained(tmp_path / "sd" / "vae")
    c = _tiny_vit()
    transformers.CLIPVisionModel(transformers.CLIPVisionConfig(
        image_size=c.image_size, patch_size=c.patch_size, hidden_size=c.hidden_size,
        intermediate_size=c.intermediate_size, num_hidden_layers=c.num_hidden_layers,
        num_attention_heads=c.num_attention_heads)).save_pretrained(tmp_path / "clip")
    with pytest.raises(GenlabError, match="projection"):  # the part the paper trains must be given
        load_pretrained(tmp_path / "sd", tmp_path / "clip")
    pipe = load_pretrained(tmp_path / "sd", tmp_path / "clip", untrained_projection=True)
    model, cfg = pipe.model, pipe.config
    assert pipe.factor == 2 and pipe.ref_size == c.image_size and cfg.model.mask_resize == "nearest"
    assert cfg.model.latent_channels == 4 and cfg.model.unet.in_channels == 9
    x = torch.randn(1, 9, 8, 8)
    ctx = torch.randn(1, 17, 16)
    with torch.no_grad():
        torch.testing.assert_close(model.unet(x, 5.0, context=ctx), unet(x, 5.0, encoder_hidden_states=ctx).sample,
                                   atol=1e-4, rtol=0)
        tokens = model.encode_reference(torch.rand(1, 3, 32, 32) * 2 - 1)
    assert tokens.shape == (1, 17, 16)  # all 1 + 16 patch tokens, projected to the UNet's width
    with pytest.raises(GenlabError, match="not found"):
        load_pretrained(tmp_path / "nowhere", tmp_path / "clip")


def test_training_data_is_encoded_once_and_cached(tmp_path, monkeypatch):
    """Pairs are rendered and encoded once per (pair settings, autoencoder weights): no data work per step."""
    from genlab.systems.insertion import train

    monkeypatch.setenv("GENLAB_CACHE", str(tmp_path))
    cfg = config.tiny()
    ae = SpaceToDepth(2)
    a = train.training_data(cfg, ae, n=6)
    files = list((tmp_path / "insertion").glob("pool-*.safetensors"))
    assert len(files) == 1
    assert a["z"].shape == (6, 12, 16, 16) and a["mask"].shape == (6, 1, 16, 16)
    assert a["reference"].shape == (6, 3, cfg.ref_size, cfg.ref_size)
    def no_render(*args, **kw):
        raise RuntimeError("rendered again despite the cache")

    monkeypatch.setattr(train, "build_pool", no_render)
    b = train.training_data(cfg, ae, n=6)
    for k in a:
        torch.testing.assert_close(a[k], b[k])
    with pytest.raises(RuntimeError, match="rendered again"):  # another autoencoder is another cache entry
        train.training_data(cfg, SpaceToDepth(1), n=6)


def test_the_reference_moves_the_output_at_init():
    """Unit-scale context tokens (the projection's LayerNorm): swapping the reference must move the
    output by a visible fraction of what swapping the scene does. Without the norm this ratio was 0.028
    (context std 0.07; trained models then ignored the person); with it 0.15."""
    from genlab.systems.insertion import pairs

    cfg = config.tiny()
    torch.manual_seed(0)
    model = InsertionModel(cfg.model)
    torch.nn.init.normal_(model.unet.conv_out.weight, std=0.02)  # undo the zero-init so outputs differ
    b = pairs.collate(pairs.eval_pairs(8, pairs.PairConfig(size=cfg.size, ref_size=cfg.ref_size)))
    ae = SpaceToDepth(2)
    z_scene = ae.encode(b["scene"] * (1 - b["mask"]))
    mask = torch.nn.functional.adaptive_max_pool2d(b["mask"], z_scene.shape[-2:])
    z, t = torch.randn_like(z_scene), torch.full((8,), 500.0)
    with torch.no_grad():
        ctx = model.encode_reference(b["reference"])
        o = model(z, t, scene=z_scene, mask=mask, context=ctx)
        o_ref = model(z, t, scene=z_scene, mask=mask, reference=b["reference"].roll(1, 0))
        o_scene = model(z, t, scene=z_scene.roll(1, 0), mask=mask, context=ctx)
    assert abs(float(ctx.std()) - 1) < 0.05
    assert float((o - o_ref).abs().mean() / (o - o_scene).abs().mean()) > 0.08


def test_the_paper_projection_is_linear_silu_linear_and_the_toys_add_a_norm():
    from genlab.systems.insertion.encoder import ReferenceProjection, load_state_strict

    assert config.tiny().model.ref_norm and config.toy().model.ref_norm and not config.sd15_inpainting().model.ref_norm
    paper = ReferenceProjection(16, 8)  # an fc1/fc2 file (the paper's projection) loads strictly
    load_state_strict(paper, {k: torch.zeros_like(v) for k, v in paper.state_dict().items()}, "fc1/fc2 file")
    assert sorted(paper.state_dict()) == ["fc1.bias", "fc1.weight", "fc2.bias", "fc2.weight"]
    paper = ReferenceProjection(16, 8)
    tokens = torch.randn(2, 5, 16)
    torch.testing.assert_close(paper(tokens), paper.fc2(torch.nn.functional.silu(paper.fc1(tokens))))
    normed = ReferenceProjection(16, 8, norm=True)
    out = normed(tokens)
    torch.testing.assert_close(out.mean(-1), torch.zeros(2, 5), atol=1e-5, rtol=0)


def test_runs_saved_before_the_mask_resize_field_load_as_trained(tmp_path):
    """A run whose config predates `mask_resize` / `set_alpha_to_one` was trained with max-pooled masks."""
    import json

    from genlab.systems.insertion import train

    cfg = config.tiny()
    train.save_model(tmp_path, InsertionModel(cfg.model), SpaceToDepth(2), cfg)
    path = tmp_path / "model.json"
    raw = json.loads(path.read_text())
    assert raw["model"].pop("mask_resize") == "max" and raw["sample"].pop("set_alpha_to_one") is True
    path.write_text(json.dumps(raw))
    _, _, loaded = train.load_model(tmp_path)
    assert loaded.model.mask_resize == "max" and loaded.sample.set_alpha_to_one
    assert config.sd15_inpainting().model.mask_resize == "nearest"  # real weights: nearest, as trained
