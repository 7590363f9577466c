"""LoRA for pretrained SD3 on the tiny random pipeline: 10 genlab LoRA steps -> a diffusers-format file that
diffusers' StableDiffusion3Pipeline.load_lora_weights gives equal images with; a PEFT LoRA made on diffusers'
transformer loads into genlab with equal images; merge-and-export equals the unmerged LoRA; clear errors."""

from __future__ import annotations

import copy
import json
import shutil

import numpy as np
import pytest
import torch

from tests.helpers import assert_user_error, run_cli_inprocess
from tests.systems.t2i import sd3_tiny

pytest.importorskip("diffusers")
pytest.importorskip("peft")
PROMPTS = ["a photo of a cat", "a red car on the moon"]
SIZE = (32, 32)
KW = dict(negative_prompt="blurry", steps=3, guidance=4.0, size=SIZE, seed=5)


def _theirs(parts, lora=None, transformer=None):
    pipe = sd3_tiny.diffusers_pipeline({**parts, "transformer": transformer or copy.deepcopy(parts["transformer"])})
    pipe.set_progress_bar_config(disable=True)
    if lora is not None:
        pipe.load_lora_weights(str(lora))
    with torch.no_grad():
        return pipe(PROMPTS, negative_prompt=KW["negative_prompt"], height=SIZE[0], width=SIZE[1],
                    num_inference_steps=KW["steps"], guidance_scale=KW["guidance"],
                    generator=torch.Generator("cpu").manual_seed(KW["seed"]), output_type="pt").images


def _ours(folder, loras=()):
    from genlab.systems.t2i.sd3 import load_pipeline

    return load_pipeline(folder, loras=list(loras))(PROMPTS, **KW)


@pytest.fixture(scope="module")
def trained(tiny, tmp_path_factory):
    """10 LoRA steps of `genlab t2i train` on four captioned 32x32 images."""
    from PIL import Image

    _, folder = tiny
    root = tmp_path_factory.mktemp("lora")
    data = root / "data"
    data.mkdir()
    rng = np.random.default_rng(0)
    for i, caption in enumerate(["a photo of a cat", "a photo of a dog", "a red car", "the moon"]):
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(data / f"im{i}.png")
        (data / f"im{i}.txt").write_text(caption)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GENLAB_CACHE", str(root / "cache"))
        from genlab.cli import main

        code = main(["t2i", "train", "--pretrained", str(folder), "--data", str(data), "--lora", "4",
                     "--lora-alpha", "8", "--steps", "10", "--lr", "1e-2", "--batch-size", "2",
                     "--resolution", "32", "--no-buckets", "--out", str(root / "run"), "--quiet"])
        assert code == 0
    return root / "run"


def test_genlab_lora_file_gives_diffusers_equal_images(tiny, trained):
    from safetensors.torch import load_file

    parts, folder = tiny
    path = trained / "lora.safetensors"
    keys = load_file(str(path))
    assert "transformer.transformer_blocks.0.attn.to_q.lora_A.weight" in keys
    assert "transformer.transformer_blocks.1.ff_context.net.2.lora_B.weight" not in keys  # pre-only last block
    assert len(json.loads((trained / "history.json").read_text())) >= 1
    ours, base = _ours(folder, [(path, 1.0)]), _ours(folder)
    assert (ours - base).abs().max() > 1e-3  # the 10 steps moved the model: not a trivial comparison
    torch.testing.assert_close(ours, _theirs(parts, lora=path), atol=1e-4, rtol=0)


@pytest.mark.parametrize("which,targets", [
    ("tiny", ["to_q", "to_k", "add_v_proj", "to_add_out", "ff.net.2", "norm_out.linear"]),
    ("tiny35", ["attn2.to_q", "attn2.to_v", "attn2.to_out.0", "add_k_proj", "ff_context.net.0.proj"]),  # MMDiT-X
])
def test_peft_lora_on_diffusers_transformer_gives_equal_images(which, targets, request, tmp_path):
    from peft import LoraConfig, get_peft_model

    parts, folder = request.getfixturevalue(which)
    transformer = copy.deepcopy(parts["transformer"])
    config = LoraConfig(r=4, lora_alpha=6, init_lora_weights=False, target_modules=targets)
    torch.manual_seed(1)
    peft_model = get_peft_model(transformer, config)
    with torch.no_grad():  # PEFT's non-default init is small: make the LoRA matter
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.mul_(20)
    peft_model.save_pretrained(tmp_path / "adapter")
    assert (tmp_path / "adapter" / "adapter_config.json").is_file()
    theirs = _theirs(parts, transformer=peft_model.base_model.model)
    ours = _ours(folder, [(tmp_path / "adapter", 1.0)])
    assert (ours - _ours(folder)).abs().max() > 1e-3
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=0)


def test_merged_export_equals_unmerged_lora(tiny, trained, tmp_path, capsys):
    _, folder = tiny
    lora = f"{trained / 'lora.safetensors'}:0.7"
    merged = tmp_path / "pipe"
    shutil.copytree(folder, merged, ignore=shutil.ignore_patterns("transformer"))
    code, _, err = run_cli_inprocess(["t2i", "convert", "--src", str(folder), "--lora", lora, "--to", "diffusers",
                                      "--out", str(merged / "transformer")], capsys)
    assert code == 0, err
    unmerged = _ours(folder, [(trained / "lora.safetensors", 0.7)])
    torch.testing.assert_close(_ours(merged), unmerged, atol=1e-5, rtol=0)
    assert (unmerged - _ours(folder, [(trained / "lora.safetensors", 1.0)])).abs().max() > 1e-4  # the scale acts


def test_lora_errors_are_one_line(tiny, trained, tmp_path, capsys):
    from genlab.core.train import save_weights

    _, folder = tiny
    bad = tmp_path / "other.safetensors"
    save_weights(bad, {"transformer.transformer_blocks.7.attn.to_q.lora_A.weight": torch.zeros(2, 128),
                       "transformer.transformer_blocks.7.attn.to_q.lora_B.weight": torch.zeros(128, 2)})
    argv = ["t2i", "sample", "--pretrained", str(folder), "--prompt", "a cat", "--size", "32", "--steps", "1",
            "--out", str(tmp_path / "x.png"), "--quiet"]
    code, _, err = run_cli_inprocess(argv + ["--lora", str(bad)], capsys)
    assert_user_error(code, err, "transformer_blocks.7.attn.to_q", "do not exist")
    truncated = tmp_path / "cut.safetensors"
    truncated.write_bytes((trained / "lora.safetensors").read_bytes()[:-100])
    code, _, err = run_cli_inprocess(argv + ["--lora", f"{truncated}:0.5"], capsys)
    assert_user_error(code, err, "truncated")
    code, _, err = run_cli_inprocess(["t2i", "train", "--pretrained", str(folder), "--data", str(tmp_path), "--lora", "4",
                                      "--lora-targets", "to_q", "attn.to_qq", "--out", str(tmp_path / "r")], capsys)
    assert_user_error(code, err, "attn.to_qq")
    code, _, err = run_cli_inprocess(["t2i", "train", "--pretrained", str(folder), "--data", str(tmp_path), "--lora", "4",
                                      "--vae", str(folder), "--out", str(tmp_path / "r")], capsys)
    assert_user_error(code, err, "--vae", "not used by LoRA")


def test_lora_on_a_genlab_model(tmp_path, capsys):
    """--pretrained RUN of a genlab digits model: LoRA steps on the digits, then `sample --model RUN --lora`;
    the adapters change the samples and merged equals unmerged (the adaLN targets: the base is 2 steps from its
    zero-initialised modulation, where attention and MLP adapters barely act)."""
    from dataclasses import replace

    from genlab.core.nn.lora import merge_lora
    from genlab.systems.t2i import config as presets
    from genlab.systems.t2i.data import load_digits
    from genlab.systems.t2i.lora import apply_lora, read_lora
    from genlab.systems.t2i.pipeline import generate, load_model
    from genlab.systems.t2i.train import train_t2i

    images, _, captions = load_digits()
    cfg = presets.tiny()
    train_t2i(replace(cfg, train=replace(cfg.train, steps=2)), images[:64], captions[:64], tmp_path / "run", progress=False)
    code, _, err = run_cli_inprocess(["t2i", "train", "--pretrained", str(tmp_path / "run"), "--lora", "2", "--steps", "3",
                                      "--lora-targets", "to_q", "ff.net.2", "norm1.linear", "norm1_context.linear", "--lr", "5e-2", "--batch-size", "8", "--out", str(tmp_path / "lora"), "--quiet"], capsys)
    assert code == 0, err
    path = tmp_path / "lora" / "lora.safetensors"
    code, _, err = run_cli_inprocess(["t2i", "sample", "--model", str(tmp_path / "run"), "--lora", f"{path}:0.5",
                                      "--prompt", "a handwritten digit seven", "--steps", "2", "--out",
                                      str(tmp_path / "x.png"), "--quiet"], capsys)
    assert code == 0 and (tmp_path / "x.png").is_file(), err
    prompts = ["a handwritten digit seven", "a handwritten digit one"]
    base = generate(load_model(tmp_path / "run"), prompts, steps=3, seed=1)
    model = load_model(tmp_path / "run")
    apply_lora(model.backbone, read_lora(path))
    unmerged = generate(model, prompts, steps=3, seed=1)
    assert (unmerged - base).abs().max() > 1e-3
    merge_lora(model.backbone)
    torch.testing.assert_close(generate(model, prompts, steps=3, seed=1), unmerged, atol=1e-5, rtol=0)
