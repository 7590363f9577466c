"""Converter: sgm names -> ours, diffusers folders, unmapped keys named."""

from __future__ import annotations

import pytest
import torch

from genlab.core.nn import temporal
from genlab.errors import GenlabError
from genlab.systems.video import convert

KNOWN = {  # sgm key -> our key, written out by hand from the SVD checkpoint layout (tiny: 2 levels, L=2)
    "time_embed.0.weight": "time_embedding.linear_1.weight",
    "label_emb.0.2.bias": "add_embedding.linear_2.bias",
    "input_blocks.0.0.weight": "conv_in.weight",
    "input_blocks.1.0.in_layers.2.weight": "down_blocks.0.resnets.0.spatial_res_block.conv1.weight",
    "input_blocks.1.0.time_stack.in_layers.2.weight": "down_blocks.0.resnets.0.temporal_res_block.conv1.weight",
    "input_blocks.1.0.time_mixer.mix_factor": "down_blocks.0.resnets.0.time_mixer.mix_factor",
    "input_blocks.2.1.time_stack.0.attn1.to_q.weight":
        "down_blocks.0.attentions.1.temporal_transformer_blocks.0.attn1.to_q.weight",
    "input_blocks.2.1.time_pos_embed.2.weight": "down_blocks.0.attentions.1.time_pos_embed.linear_2.weight",
    "input_blocks.3.0.op.weight": "down_blocks.0.downsamplers.0.conv.weight",
    "input_blocks.4.0.skip_connection.weight": "down_blocks.1.resnets.0.spatial_res_block.conv_shortcut.weight",
    "middle_block.1.proj_in.weight": "mid_block.attentions.0.proj_in.weight",
    "middle_block.2.emb_layers.1.weight": "mid_block.resnets.1.spatial_res_block.time_emb_proj.weight",
    "output_blocks.2.1.conv.weight": "up_blocks.0.upsamplers.0.conv.weight",
    "output_blocks.3.1.transformer_blocks.0.ff.net.0.proj.weight":
        "up_blocks.1.attentions.0.transformer_blocks.0.ff.net.0.proj.weight",
    "output_blocks.5.0.out_layers.3.bias": "up_blocks.1.resnets.2.spatial_res_block.conv2.bias",
    "out.2.weight": "conv_out.weight",
}


def test_known_sgm_keys_map_to_our_names():
    cfg = temporal.tiny()
    own = set(temporal.VideoUNet(cfg).state_dict())
    for sgm, ours in KNOWN.items():
        assert convert.sgm_key_to_ours(sgm, cfg) == ours
        assert ours in own


def test_every_parameter_has_exactly_one_sgm_key_and_a_full_checkpoint_round_trips(tmp_path):
    from safetensors.torch import save_file

    cfg = temporal.tiny()
    model = temporal.VideoUNet(cfg)
    own = model.state_dict()
    # enumerate the sgm grammar: every candidate key that maps somewhere
    candidates = _candidate_sgm_keys(cfg, own)
    inverse = {}
    for sgm in candidates:
        ours = convert.sgm_key_to_ours(sgm, cfg)
        if ours in own:
            assert ours not in inverse, f"two sgm keys map to {ours}"
            inverse[ours] = sgm
    assert set(inverse) == set(own)
    torch.manual_seed(0)
    sgm_sd = {convert.SGM_PREFIX + inverse[k]: torch.randn_like(v) for k, v in own.items()}
    sgm_sd["conditioner.embedders.0.weight"] = torch.zeros(1)  # other parts of a full checkpoint are ignored
    path = tmp_path / "svd_tiny.safetensors"
    save_file(sgm_sd, str(path))
    fresh = temporal.VideoUNet(cfg)
    assert convert.load_unet(fresh, path) == "sgm"
    for k, v in fresh.state_dict().items():
        assert torch.equal(v, sgm_sd[convert.SGM_PREFIX + inverse[k]])
    # an unknown key inside the UNet is named
    sgm_sd[convert.SGM_PREFIX + "input_blocks.1.0.mystery.weight"] = torch.zeros(1)
    save_file(sgm_sd, str(path))
    with pytest.raises(GenlabError, match="mystery"):
        convert.load_unet(temporal.VideoUNet(cfg), path)


def _candidate_sgm_keys(cfg, own) -> list[str]:
    """Build sgm-style keys by substituting our suffixes into sgm block prefixes (a generous superset)."""
    suffixes = set()
    for k in own:
        parts = k.split(".")
        for i in range(len(parts)):
            suffixes.add(".".join(parts[i:]))
    inner = set()
    rev = {"norm1.": "in_layers.0.", "conv1.": "in_layers.2.", "time_emb_proj.": "emb_layers.1.",
           "norm2.": "out_layers.0.", "conv2.": "out_layers.3.", "conv_shortcut.": "skip_connection."}
    for s in suffixes:
        for a, b in rev.items():
            if s.startswith("spatial_res_block." + a):
                inner.add(b + s[len("spatial_res_block." + a):])
            if s.startswith("temporal_res_block." + a):
                inner.add("time_stack." + b + s[len("temporal_res_block." + a):])
        if s.startswith("temporal_transformer_blocks."):
            inner.add("time_stack." + s[len("temporal_transformer_blocks."):])
        if s.startswith("time_pos_embed.linear_"):
            inner.add(f"time_pos_embed.{0 if s[22] == '1' else 2}." + s[24:])
        if s.startswith(("norm.", "proj_in.", "proj_out.", "transformer_blocks.", "time_mixer.", "conv.")):
            inner.add(s)
        if s.startswith("conv."):
            inner.add("op." + s[len("conv."):])  # sgm's Downsample conv is `op`
    keys = ["time_embed.0.weight", "time_embed.0.bias", "time_embed.2.weight", "time_embed.2.bias",
            "label_emb.0.0.weight", "label_emb.0.0.bias", "label_emb.0.2.weight", "label_emb.0.2.bias",
            "out.0.weight", "out.0.bias", "out.2.weight", "out.2.bias", "input_blocks.0.0.weight",
            "input_blocks.0.0.bias"]
    for i in range(1, 8):
        for j in range(3):
            keys += [f"input_blocks.{i}.{j}.{s}" for s in inner]
            keys += [f"output_blocks.{i - 1}.{j}.{s}" for s in inner]
    for j in range(3):
        keys += [f"middle_block.{j}.{s}" for s in inner]
    return keys


def test_diffusers_folder_loads_and_reports_missing(tmp_path):
    from safetensors.torch import save_file

    cfg = temporal.tiny()
    src = temporal.VideoUNet(cfg)
    folder = tmp_path / "unet"
    folder.mkdir()
    sd = {k: v.contiguous() for k, v in src.state_dict().items()}
    save_file(sd, str(folder / "diffusion_pytorch_model.safetensors"))
    dst = temporal.VideoUNet(cfg)
    assert convert.load_unet(dst, tmp_path) == "diffusers"
    assert all(torch.equal(a, b) for a, b in zip(src.state_dict().values(), dst.state_dict().values()))
    del sd["conv_in.weight"]
    save_file(sd, str(folder / "diffusion_pytorch_model.safetensors"))
    with pytest.raises(GenlabError, match="conv_in.weight"):
        convert.load_unet(temporal.VideoUNet(cfg), tmp_path)
    with pytest.raises(GenlabError, match="not found"):
        convert.load_unet(temporal.VideoUNet(cfg), tmp_path / "nope.safetensors")


def test_one_table_maps_both_ways_for_the_image_unet_too():
    """`video=False` (an SD-style 2D UNet in sgm names): every key goes to sgm and back through the same table."""
    from genlab.core.nn.unet import UNet2D

    cfg = temporal.tiny()
    keys = UNet2D(cfg.unet).state_dict()
    sgm = {k: convert.ours_key_to_sgm(k, cfg, video=False) for k in keys}
    assert None not in sgm.values() and len(set(sgm.values())) == len(keys)
    assert sgm["down_blocks.0.resnets.0.conv1.weight"] == "input_blocks.1.0.in_layers.2.weight"
    assert all(convert.sgm_key_to_ours(v, cfg, video=False) == k for k, v in sgm.items())
    assert convert.sgm_key_to_ours("input_blocks.1.0.time_stack.in_layers.2.weight", cfg, video=False) is None
