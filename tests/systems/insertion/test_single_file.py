"""Single-file (LDM-layout) checkpoints: SD-1.5-inpainting's and the official affordance-insertion one.

The test writes a tiny checkpoint in the LDM layout from diffusers/transformers models with its own
diffusers -> LDM renaming (below, independent of the loader, which uses diffusers' LDM -> diffusers
converter), then checks that the loaded UNet, CLIP, projection and VAE compute what the originals do."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from genlab.errors import GenlabError
from genlab.systems.insertion import config
from genlab.systems.insertion.encoder import ViTConfig

diffusers = pytest.importorskip("diffusers")
transformers = pytest.importorskip("transformers")

RES = {"norm1": "in_layers.0", "conv1": "in_layers.2", "time_emb_proj": "emb_layers.1", "norm2": "out_layers.0",
       "conv2": "out_layers.3", "conv_shortcut": "skip_connection"}
VAE_RES = {"conv_shortcut": "nin_shortcut"}
VAE_ATTN = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}


def _move(src: dict, out: dict, old: str, new: str, rename: dict | None = None, conv: bool = False) -> None:
    for k, v in src.items():
        if not k.startswith(old + "."):
            continue
        rest = k[len(old) + 1:]
        for a, b in (rename or {}).items():
            if rest.startswith(a + "."):
                rest = b + rest[len(a):]
                break
        out[new + "." + rest] = v[..., None, None] if conv and v.ndim == 2 else v


def ldm_unet(d: dict, layers: int, attn: tuple[bool, ...]) -> dict:
    """diffusers UNet2DConditionModel state -> openaimodel.UNetModel names (SD-1.x layout)."""
    out: dict = {}
    for old, new in (("time_embedding.linear_1", "time_embed.0"), ("time_embedding.linear_2", "time_embed.2"),
                     ("conv_in", "input_blocks.0.0"), ("conv_norm_out", "out.0"), ("conv_out", "out.2")):
        _move(d, out, old, new)
    n = len(attn)
    for i in range(n):
        for j in range(layers):
            k = 1 + i * (layers + 1) + j
            _move(d, out, f"down_blocks.{i}.resnets.{j}", f"input_blocks.{k}.0", RES)
            _move(d, out, f"down_blocks.{i}.attentions.{j}", f"input_blocks.{k}.1")
        _move(d, out, f"down_blocks.{i}.downsamplers.0.conv", f"input_blocks.{(i + 1) * (layers + 1)}.0.op")
    _move(d, out, "mid_block.resnets.0", "middle_block.0", RES)
    _move(d, out, "mid_block.attentions.0", "middle_block.1")
    _move(d, out, "mid_block.resnets.1", "middle_block.2", RES)
    for i, a in enumerate(attn[::-1]):
        for j in range(layers + 1):
            k = i * (layers + 1) + j
            _move(d, out, f"up_blocks.{i}.resnets.{j}", f"output_blocks.{k}.0", RES)
            _move(d, out, f"up_blocks.{i}.attentions.{j}", f"output_blocks.{k}.1")
        _move(d, out, f"up_blocks.{i}.upsamplers.0", f"output_blocks.{i * (layers + 1) + layers}.{2 if a else 1}")
    assert len(out) == len(d), sorted(set(d))[:5]
    return {"model.diffusion_model." + k: v for k, v in out.items()}


def ldm_vae(d: dict, n: int, layers: int) -> dict:
    """diffusers AutoencoderKL state -> ldm.models.autoencoder names."""
    out: dict = {}
    for part in ("encoder", "decoder"):
        for name in ("conv_in", "conv_out"):
            _move(d, out, f"{part}.{name}", f"{part}.{name}")
        _move(d, out, f"{part}.conv_norm_out", f"{part}.norm_out")
        _move(d, out, f"{part}.mid_block.resnets.0", f"{part}.mid.block_1", VAE_RES)
        _move(d, out, f"{part}.mid_block.resnets.1", f"{part}.mid.block_2", VAE_RES)
        _move(d, out, f"{part}.mid_block.attentions.0", f"{part}.mid.attn_1", VAE_ATTN, conv=True)
    for i in range(n):
        for j in range(layers):
            _move(d, out, f"encoder.down_blocks.{i}.resnets.{j}", f"encoder.down.{i}.block.{j}", VAE_RES)
        _move(d, out, f"encoder.down_blocks.{i}.downsamplers.0.conv", f"encoder.down.{i}.downsample.conv")
        for j in range(layers + 1):
            _move(d, out, f"decoder.up_blocks.{i}.resnets.{j}", f"decoder.up.{n - 1 - i}.block.{j}", VAE_RES)
        _move(d, out, f"decoder.up_blocks.{i}.upsamplers.0.conv", f"decoder.up.{n - 1 - i}.upsample.conv")
    for name in ("quant_conv", "post_quant_conv"):
        _move(d, out, name, name)
    assert len(out) == len(d), sorted(set(d))[:5]
    return {"first_stage_model." + k: v for k, v in out.items()}


def _models():
    torch.manual_seed(0)
    unet = diffusers.UNet2DConditionModel(
        sample_size=8, in_channels=9, out_channels=4, block_out_channels=(8, 16),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        layers_per_block=1, attention_head_dim=2, cross_attention_dim=16, norm_num_groups=4).eval()
    vit = ViTConfig(image_size=32, patch_size=8, hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                    num_attention_heads=4)
    clip = transformers.CLIPVisionModel(transformers.CLIPVisionConfig(
        image_size=vit.image_size, patch_size=vit.patch_size, hidden_size=vit.hidden_size,
        intermediate_size=vit.intermediate_size, num_hidden_layers=vit.num_hidden_layers,
        num_attention_heads=vit.num_attention_heads)).eval()
    vae = diffusers.AutoencoderKL(down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                                  block_out_channels=(32, 32), layers_per_block=1, latent_channels=4).eval()
    return unet, vit, clip, vae


def _base(unet, vit):
    from genlab.systems.insertion.convert import unet_config_from_diffusers

    base = config.sd15_inpainting()
    return replace(base, model=replace(base.model, unet=unet_config_from_diffusers(dict(unet.config)), vit=vit))


def _checkpoint(unet, clip, vae, projection: bool) -> dict:
    sd = ldm_unet(unet.state_dict(), 1, (True, False))
    vision = {k.removeprefix("vision_model."): v for k, v in clip.state_dict().items()}
    sd |= {f"cond_stage_model.transformer.vision_model.{k}": v for k, v in vision.items()}
    sd |= ldm_vae(vae.state_dict(), 2, 1)
    if projection:
        g = torch.Generator().manual_seed(1)
        for i, shape in ((0, (16, 32)), (2, (16, 16))):
            sd[f"model.diffusion_model.context_proj_embed.{i}.weight"] = torch.randn(shape, generator=g)
            sd[f"model.diffusion_model.context_proj_embed.{i}.bias"] = torch.randn(shape[0], generator=g)
    return sd


@pytest.mark.parametrize("suffix", [".safetensors", ".ckpt"])
def test_official_layout_single_file_loads_every_part(tmp_path, suffix):
    from genlab.core.train import save_weights
    from genlab.systems.insertion.convert import load_single_file

    unet, vit, clip, vae = _models()
    sd = _checkpoint(unet, clip, vae, projection=True)
    path = tmp_path / f"affordance{suffix}"
    if suffix == ".safetensors":
        save_weights(path, sd)
    else:
        torch.save({"state_dict": sd, "global_step": 1}, path)  # a Lightning checkpoint
    pipe = load_single_file(path, base=_base(unet, vit))
    model, ae, cfg = pipe.model, pipe.ae, pipe.config
    x, ctx, t = torch.randn(2, 9, 8, 8), torch.randn(2, 17, 16), torch.tensor([3.0, 900.0])
    img = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(model.unet(x, t, context=ctx), unet(x, t, encoder_hidden_states=ctx).sample,
                                   atol=1e-4, rtol=0)
        torch.testing.assert_close(model.ref_encoder(img), clip(pixel_values=img).last_hidden_state, atol=1e-4, rtol=0)
        tok = torch.randn(1, 5, 32)
        w0, b0 = sd["model.diffusion_model.context_proj_embed.0.weight"], sd["model.diffusion_model.context_proj_embed.0.bias"]
        w2, b2 = sd["model.diffusion_model.context_proj_embed.2.weight"], sd["model.diffusion_model.context_proj_embed.2.bias"]
        torch.testing.assert_close(model.ref_proj(tok), torch.nn.functional.silu(tok @ w0.T + b0) @ w2.T + b2)
        torch.testing.assert_close(ae.decode(ae.encode(img)), vae.decode(vae.encode(img).latent_dist.mode()).sample,
                                   atol=1e-4, rtol=0)
    assert cfg.model.unet.in_channels == 9 and cfg.model.latent_channels == 4 and ae.scaling_factor == 0.18215
    assert cfg.model.mask_resize == "nearest" and not cfg.sample.composite  # as the official model and sampler
    assert pipe.ref_size == vit.image_size


def test_sd_inpainting_single_file_needs_clip_and_bad_files_are_one_clear_error(tmp_path):
    from genlab.core.train import save_weights
    from genlab.systems.insertion.convert import load_single_file

    unet, vit, clip, vae = _models()
    sd = {k: v for k, v in _checkpoint(unet, clip, vae, projection=False).items() if not k.startswith("cond_stage")}
    save_weights(tmp_path / "sd.safetensors", sd)
    with pytest.raises(GenlabError, match="clip_folder"):
        load_single_file(tmp_path / "sd.safetensors", base=_base(unet, vit))
    clip.save_pretrained(tmp_path / "clip")
    with pytest.raises(GenlabError, match="no reference projection"):  # SD-inpainting is not the insertion model
        load_single_file(tmp_path / "sd.safetensors", tmp_path / "clip", base=_base(unet, vit))
    model = load_single_file(tmp_path / "sd.safetensors", tmp_path / "clip", base=_base(unet, vit),
                             untrained_projection=True).model
    img = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(model.ref_encoder(img), clip(pixel_values=img).last_hidden_state, atol=1e-4, rtol=0)
    save_weights(tmp_path / "other.safetensors", {"foo": torch.zeros(1)})
    with pytest.raises(GenlabError, match="not an SD/LDM"):
        load_single_file(tmp_path / "other.safetensors")
    (tmp_path / "junk.ckpt").write_bytes(b"not a pickle")
    with pytest.raises(GenlabError, match="not a readable"):
        load_single_file(tmp_path / "junk.ckpt")
    with pytest.raises(GenlabError, match="not found"):
        load_single_file(tmp_path / "missing.ckpt")
