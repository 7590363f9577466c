"""The official sgm single file: its committed key list (names and shapes, built from sgm's own code and configs
by data/make_sgm_keys.py) maps onto our modules on the meta device both ways; a tiny file round-trips."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from genlab.errors import GenlabError
from genlab.systems.video import pretrained

KEYS = Path(__file__).parent / "data" / "svd_single_file_keys.tsv"


def _official() -> dict[str, tuple[int, ...]]:
    rows = {}
    for line in KEYS.read_text().splitlines():
        if line.startswith("#"):
            continue
        name, shape = line.split("\t")
        rows[name] = tuple(int(s) for s in shape.split(",") if s)
    return rows


@pytest.mark.parametrize("preset", [pretrained.svd, pretrained.svd_xt])
def test_every_official_key_maps_both_ways_on_meta(preset):
    cfg = preset()
    official = _official()
    assert len(official) == 2446 and sum(k.startswith("model.diffusion_model.") for k in official) == 1428
    sd = {k: torch.empty(shape, device="meta") for k, shape in official.items()}
    parts = pretrained.single_file_parts(sd, cfg, KEYS.name)
    expected = pretrained.meta_parts(cfg)
    for name in ("model", "vae", "image_encoder"):
        assert set(parts[name]) == set(expected[name]), name
        bad = [k for k, v in parts[name].items() if v.shape != expected[name][k].shape]
        assert not bad, (name, bad[:5])
    # the other way: every tensor we write has an official name and shape; what we leave out is only SGM_UNUSED
    written = pretrained.to_single_file(expected, cfg)
    assert all(tuple(v.shape) == official[k] for k, v in written.items() if k in official)
    assert set(written) <= set(official)
    left = set(official) - set(written)
    assert left and all(k.startswith(pretrained.SGM_UNUSED) for k in left)
    assert not any(k.startswith(pretrained.SGM["clip"]) for k in left)  # the whole vision tower is written


def test_unknown_keys_are_named():
    cfg = pretrained.svd()
    sd = {k: torch.empty(shape, device="meta") for k, shape in _official().items()}
    sd["model.diffusion_model.input_blocks.1.0.mystery.weight"] = torch.empty(1, device="meta")
    with pytest.raises(GenlabError, match="mystery"):
        pretrained.single_file_parts(sd, cfg, "x")
    sd.pop("model.diffusion_model.input_blocks.1.0.mystery.weight")
    sd["cond_stage_model.transformer.weight"] = torch.empty(1, device="meta")
    with pytest.raises(GenlabError, match="cond_stage_model"):
        pretrained.single_file_parts(sd, cfg, "x")


def test_tiny_single_file_round_trip(tiny_svd, tmp_path):
    a = pretrained.load(tiny_svd[0])
    path = pretrained.save(a, tmp_path / "tiny_svd.safetensors", "single_file")
    assert pretrained.detect_format(path) == "single_file"
    b = pretrained.load(path, config=a.config)
    assert b.source == "single_file"
    for x, y in ((a.model, b.model), (a.ae, b.ae), (a.clip, b.clip)):
        sa, sb = x.state_dict(), y.state_dict()
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    # a single file without temporal layers (an image model) is refused from its header
    from safetensors.torch import save_file

    save_file({"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(32, 4, 3, 3)}, str(tmp_path / "sd.safetensors"))
    with pytest.raises(GenlabError, match="temporal"):
        pretrained.load(tmp_path / "sd.safetensors", config=a.config)
