"""Pretrained SD3: equal to diffusers' StableDiffusion3Pipeline on tiny random components saved with
save_pretrained (folder) and in Stability's single-file layout; the CLI's PNG; clear errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from genlab.errors import GenlabError
from tests.helpers import assert_user_error, run_cli_inprocess
from tests.systems.t2i import sd3_tiny

pytest.importorskip("diffusers")
PROMPTS = ["a photo of a cat", "a red car on the moon"]
SIZE = (32, 48)  # non-square: 16 x 24 latents, 8 x 12 tokens


def _diffusers(parts, prompts=PROMPTS, t5=True, seed=3, steps=4, guidance=5.0, negative="blurry", size=SIZE):
    pipe = sd3_tiny.diffusers_pipeline(parts, t5=t5)
    pipe.set_progress_bar_config(disable=True)
    with torch.no_grad():
        return pipe(prompts, negative_prompt=negative, height=size[0], width=size[1], num_inference_steps=steps,
                    guidance_scale=guidance, generator=torch.Generator("cpu").manual_seed(seed), output_type="pt").images


def _ours(path, prompts=PROMPTS, seed=3, steps=4, guidance=5.0, negative="blurry", size=SIZE, **load):
    from genlab.systems.t2i.sd3 import load_pipeline

    return load_pipeline(path, **load)(prompts, negative_prompt=negative, steps=steps, guidance=guidance, size=size,
                                       seed=seed)


@pytest.mark.parametrize("t5", [True, False])
def test_folder_images_equal_diffusers(tiny, t5):
    parts, folder = tiny
    theirs = _diffusers(parts, t5=t5)
    ours = _ours(folder, t5=t5)
    assert ours.shape == theirs.shape == (2, 3, *SIZE)
    assert float(theirs.std()) > 0.05 and not torch.allclose(ours[0], ours[1], atol=1e-2)  # not a trivial image
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=0)


def test_text_layout_and_t5_change_the_image(tiny):
    from genlab.systems.t2i.sd3 import load_pipeline

    parts, folder = tiny
    pipe = load_pipeline(folder)
    emb = pipe.encode(["a photo of a cat"])
    assert emb.context.shape == (1, 77 + 256, sd3_tiny.T5_WIDTH)  # CLIPs share 77 tokens, then 256 T5 tokens
    assert emb.pooled.shape == (1, sd3_tiny.CLIP_L_WIDTH + sd3_tiny.CLIP_G_WIDTH)
    width = sd3_tiny.CLIP_L_WIDTH + sd3_tiny.CLIP_G_WIDTH
    assert torch.count_nonzero(emb.context[:, :77, width:]) == 0 and torch.count_nonzero(emb.context[:, 77:]) > 0
    with_t5, without = _ours(folder, prompts=PROMPTS[:1]), _ours(folder, prompts=PROMPTS[:1], t5=False)
    assert (with_t5 - without).abs().max() > 1e-3


def test_cli_png_equals_diffusers_and_carries_settings(tiny, tmp_path, capsys):
    from PIL import Image

    parts, folder = tiny
    out = tmp_path / "cat.png"
    code, stdout, err = run_cli_inprocess(["t2i", "sample", "--pretrained", str(folder), "--prompt", PROMPTS[0],
                                           "--size", "32x48", "--steps", "3", "--guidance", "4", "--seed", "7",
                                           "--out", str(out), "--quiet"], capsys)
    assert code == 0, err
    png = Image.open(out)
    theirs = _diffusers(parts, prompts=[PROMPTS[0]], seed=7, steps=3, guidance=4.0, negative="")
    ref = (theirs[0].permute(1, 2, 0).numpy() * 255).round().astype(np.int16)
    assert np.abs(np.asarray(png, dtype=np.int16) - ref).max() <= 1
    info = json.loads(png.text["genlab"])
    assert (info["prompt"], info["seed"], info["steps"], info["guidance"], info["height"], info["width"]) == \
        (PROMPTS[0], 7, 3, 4.0, 32, 48)
    assert info["negative_prompt"] == "" and info["shift"] == 3.0 and info["t5"] is True


def test_bf16_close_to_float32(tiny):
    parts, folder = tiny
    kw = dict(prompts=PROMPTS[:1], steps=3, size=(16, 24))
    ref, low = _ours(folder, **kw), _ours(folder, dtype="bf16", **kw)
    psnr = 10 * torch.log10(1.0 / (low - ref).square().mean())
    assert psnr >= 35, float(psnr)


def test_several_images_per_prompt_follow_diffusers_batch(tiny, tmp_path):
    from genlab.systems.t2i.sd3 import load_pipeline, save_pngs

    parts, folder = tiny
    pipe = load_pipeline(folder, keep_loaded=True)
    ours = pipe(PROMPTS, num_images=2, steps=2, guidance=3.0, size=(16, 16), seed=1)
    ref = sd3_tiny.diffusers_pipeline(parts)
    ref.set_progress_bar_config(disable=True)
    theirs = ref(PROMPTS, num_images_per_prompt=2, height=16, width=16, num_inference_steps=2, guidance_scale=3.0,
                 generator=torch.Generator("cpu").manual_seed(1), output_type="pt").images
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=0)
    paths = save_pngs(ours, tmp_path / "x.png", pipe.settings(PROMPTS, num_images=2, steps=2, guidance=3.0, seed=1,
                                                                       size=(16, 16)))
    assert [p.name for p in paths] == ["x-000.png", "x-001.png", "x-002.png", "x-003.png"]
    from PIL import Image

    assert json.loads(Image.open(paths[3]).text["genlab"])["index"] == 3


def test_long_prompt_warns_with_the_token_count(tiny):
    parts, folder = tiny
    with pytest.warns(UserWarning, match=r"has \d+ clip tokens; only the first 77"):
        _ours(folder, prompts=["a red car " * 12], steps=1, guidance=1.0, size=(16, 16))


def test_package_api_and_the_shape_only_presets():
    import genlab.systems.t2i as t2i
    from genlab.systems.t2i.config import sd3_medium
    from genlab.systems.t2i.pipeline import T2IModel
    from genlab.systems.t2i.sd3 import load_pipeline

    assert t2i.load_pipeline is load_pipeline
    with pytest.raises(GenlabError, match="load_pipeline"):
        T2IModel(sd3_medium())  # shapes only: says how to get a model instead of "needs a text encoder"


# ----------------------------------------------------------------------------- single file
def _single_file(parts, tmp_path, folder, name="sd3.safetensors", **kw):
    from genlab.core.train import save_weights

    path = save_weights(tmp_path / name, sd3_tiny.single_file_state(parts, **kw))
    for tok in ("tokenizer", "tokenizer_2", "tokenizer_3"):
        if not (tmp_path / tok).exists():
            shutil.copytree(folder / tok, tmp_path / tok)
    return path


def test_single_file_equals_folder_and_diffusers_from_single_file(tiny, tmp_path):
    parts, folder = tiny
    path = _single_file(parts, tmp_path, folder)
    ours = _ours(path)
    torch.testing.assert_close(ours, _diffusers(parts), atol=1e-4, rtol=0)
    from diffusers import StableDiffusion3Pipeline

    try:
        ref = StableDiffusion3Pipeline.from_single_file(str(path), config=str(folder), local_files_only=True)
    except Exception as err:  # noqa: BLE001 - offline single-file loading is diffusers' own business
        pytest.skip(f"diffusers from_single_file does not load offline here: {type(err).__name__}")
    ref.set_progress_bar_config(disable=True)
    ref.text_encoder_3.eval()  # diffusers 0.42 leaves the single-file T5 in training mode (dropout on)
    theirs = ref(PROMPTS, negative_prompt="blurry", height=SIZE[0], width=SIZE[1], num_inference_steps=4,
                 guidance_scale=5.0, generator=torch.Generator("cpu").manual_seed(3), output_type="pt").images
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=0)


def test_single_file_fp8_t5_is_upcast(tiny, tmp_path):
    parts, folder = tiny
    path = _single_file(parts, tmp_path, folder, t5_dtype=torch.float8_e4m3fn)
    rounded = dict(parts)
    t5 = type(parts["text_encoder_3"])(parts["text_encoder_3"].config).eval()
    t5.load_state_dict({k: v.to(torch.float8_e4m3fn).float() for k, v in parts["text_encoder_3"].state_dict().items()})
    rounded["text_encoder_3"] = t5
    torch.testing.assert_close(_ours(path), _diffusers(rounded), atol=1e-4, rtol=0)


def test_single_file_without_encoders_takes_them_by_path(tiny, tmp_path, capsys):
    from genlab.core.train import save_weights

    parts, folder = tiny
    path = _single_file(parts, tmp_path, folder, name="sd3_medium.safetensors", encoders=())
    state = sd3_tiny.single_file_state(parts)
    enc = {}
    for name, key in (("clip_l", "clip_l"), ("clip_g", "clip_g"), ("t5", "t5xxl")):  # bare names, as clip_g.safetensors
        prefix = f"text_encoders.{key}.transformer."
        enc[name] = save_weights(tmp_path / f"{name}.safetensors",
                                 {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})
    code, _, err = run_cli_inprocess(["t2i", "sample", "--pretrained", str(path), "--prompt", "a cat",
                                      "--out", str(tmp_path / "x.png"), "--size", "16x16", "--steps", "1"], capsys)
    assert_user_error(code, err, "CLIP-L", "--clip-l")
    ours = _ours(path, clip_l=enc["clip_l"], clip_g=enc["clip_g"], t5_path=enc["t5"])
    torch.testing.assert_close(ours, _diffusers(parts), atol=1e-4, rtol=0)


# ----------------------------------------------------------------------------- errors
def _sample(capsys, path, *extra):
    return run_cli_inprocess(["t2i", "sample", "--pretrained", str(path), "--prompt", "a cat", "--out",
                              "/dev/null/x.png", "--quiet", *extra], capsys)


def test_clear_errors_for_wrong_or_broken_files(tiny, tmp_path, capsys):
    parts, folder = tiny
    unet = tmp_path / "sd15"
    unet.mkdir()
    (unet / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline", "unet": ["x", "y"]}))
    assert_user_error(*_sample(capsys, unet)[::2], "UNet", "not an SD3")
    assert_user_error(*_sample(capsys, tmp_path / "missing")[::2], "not found")
    assert_user_error(*_sample(capsys, folder / "transformer")[::2], "transformer folder only")
    broken = tmp_path / "broken"
    shutil.copytree(folder, broken)
    shutil.rmtree(broken / "text_encoder_2")
    assert_user_error(*_sample(capsys, broken)[::2], "text_encoder_2", "CLIP-G")
    shutil.copytree(folder / "text_encoder_2", broken / "text_encoder_2")
    shutil.rmtree(broken / "text_encoder_3")
    assert_user_error(*_sample(capsys, broken)[::2], "text_encoder_3", "--no-t5")
    cut = tmp_path / "cut"
    shutil.copytree(folder, cut)
    weights = cut / "transformer" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    assert_user_error(*_sample(capsys, cut)[::2], "truncated", "diffusion_pytorch_model.safetensors")
    from genlab.core.train import save_weights

    ldm_unet = save_weights(tmp_path / "v1-5.safetensors", {"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(1)})
    assert_user_error(*_sample(capsys, ldm_unet)[::2], "UNet")


def test_clear_errors_for_size_device_and_memory(tiny, capsys, monkeypatch):
    parts, folder = tiny
    assert_user_error(*_sample(capsys, folder, "--size", "42x40")[::2], "--size 42x40", "multiples of 4")
    assert_user_error(*_sample(capsys, folder, "--size", "400x48")[::2], "--size 400x48", "position table")
    assert_user_error(*_sample(capsys, folder, "--size", "big")[::2], "--size")
    if not torch.cuda.is_available():
        assert_user_error(*_sample(capsys, folder, "--device", "cuda")[::2], "--device cuda", "CUDA")
    from genlab.systems.t2i import sd3

    monkeypatch.setattr(sd3, "available_memory", lambda device: 1 << 20)
    assert_user_error(*_sample(capsys, folder)[::2], "needs about", "GiB", "fp32")
    with pytest.raises(GenlabError, match="--dtype"):
        sd3.load_pipeline(folder, dtype="fp64")


# ----------------------------------------------------------------------------- the official key list
def _shapes(state) -> dict:
    return {k: tuple(v.shape) for k, v in state.items()}


def test_official_sd3_medium_single_file_fits_the_loaders_on_meta():
    """Every tensor of the official file (committed list) lands in a part with its shape; nothing is left
    out on either side. The MM-DiT part is also checked against diffusers' own converter."""
    from types import SimpleNamespace

    from diffusers import AutoencoderKL, SD3Transformer2DModel
    from diffusers.loaders.single_file_utils import (
        convert_ldm_vae_checkpoint,
        convert_sd3_transformer_checkpoint_to_diffusers,
    )
    from transformers import CLIPTextModelWithProjection, T5EncoderModel

    from genlab.core.autoencoders.kl import ldm_vae_config
    from genlab.systems.t2i import convert
    from genlab.systems.t2i.config import sd3_medium_model
    from genlab.systems.t2i.model import MMDiT
    from genlab.systems.t2i.sd3 import clip_config, t5_config
    from genlab.systems.t2i.sd3_files import ENCODER_PREFIXES, MMDIT_PREFIX, VAE_PREFIX

    lines = (Path(__file__).parent / "data" / "sd3_medium_single_file_keys.txt").read_text().splitlines()
    rows = [line.split("\t") for line in lines if line and not line.startswith("#")]
    state = {name: torch.empty(tuple(int(s) for s in shape.split(",")), device="meta") for name, shape in rows}
    assert len(state) == len(rows) == 1668
    fp8 = sum(v.numel() * (1 if k.startswith("text_encoders.t5xxl") else 2) for k, v in state.items())
    core = sum(v.numel() * 2 for k, v in state.items() if not k.startswith("text_encoders."))
    assert abs(fp8 / 10.9e9 - 1) < 0.01 and abs(core / 4.34e9 - 1) < 0.01  # the published file sizes
    prefixes = [MMDIT_PREFIX, VAE_PREFIX, *ENCODER_PREFIXES.values()]
    assert all(sum(k.startswith(p) for p in prefixes) == 1 for k in state)
    part = {p: {k[len(p):]: v for k, v in state.items() if k.startswith(p)} for p in prefixes}

    mmdit = part[MMDIT_PREFIX]
    cfg = convert.config_from_state_dict(mmdit)
    ref = sd3_medium_model()
    assert (cfg.depth, cfg.hidden_size, cfg.num_heads, cfg.pos_embed_max_size, cfg.context_dim, cfg.pooled_dim) == \
        (ref.depth, ref.hidden_size, ref.num_heads, ref.pos_embed_max_size, ref.context_dim, ref.pooled_dim)
    with torch.device("meta"):
        ours = MMDiT(cfg)
        theirs = SD3Transformer2DModel(**convert.to_diffusers_config(ref))
    assert _shapes(ours.state_dict()) == _shapes(mmdit)
    assert _shapes(convert.to_diffusers(mmdit)) == _shapes(theirs.state_dict()) == \
        _shapes(convert_sd3_transformer_checkpoint_to_diffusers({MMDIT_PREFIX + k: v for k, v in mmdit.items()}))

    vae_state = part[VAE_PREFIX]
    vae_cfg = ldm_vae_config(vae_state)
    assert vae_cfg["block_out_channels"] == (128, 256, 512, 512) and vae_cfg["latent_channels"] == 16
    assert not vae_cfg["use_quant_conv"] and not vae_cfg["use_post_quant_conv"]
    with torch.device("meta"):
        vae = AutoencoderKL(**vae_cfg)
    assert _shapes(convert_ldm_vae_checkpoint(vae_state, dict(vae.config))) == _shapes(vae.state_dict())

    tok = SimpleNamespace(bos_token_id=49406, eos_token_id=49407, pad_token_id=49407)
    for name, width, layers in (("clip_l", 768, 12), ("clip_g", 1280, 32)):
        enc = part[ENCODER_PREFIXES[name]]
        config = clip_config(enc, name, tok)
        assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads) == (width, layers, width // 64)
        with torch.device("meta"):
            model = CLIPTextModelWithProjection(config)
        expected = _shapes(model.state_dict())
        if name == "clip_l":  # SD3 stores no projection for CLIP-L: the loader adds an identity
            assert expected.pop("text_projection.weight") == (768, 768)
        assert _shapes(enc) == expected
    enc = part[ENCODER_PREFIXES["t5"]]
    config = t5_config(enc)
    assert (config.d_model, config.num_layers, config.num_heads, config.d_kv, config.d_ff) == (4096, 24, 64, 64, 10240)
    with torch.device("meta"):
        model = T5EncoderModel(config)
    assert _shapes(enc) == _shapes(model.state_dict())


# ----------------------------------------------------------------------------- memory
_RSS_SCRIPT = """
import json, sys, torch
def status(field):  # VmHWM, not ru_maxrss: ru_maxrss survives exec and starts at the forking parent's RSS
    return next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith(field + ":"))
from genlab.systems.t2i.sd3 import load_pipeline
run = lambda pipe: pipe(["a photo of a cat"], steps=1, guidance=2.0, size=(16, 16))
run(load_pipeline(sys.argv[3]))  # the small pipeline first: every import and allocator pool is in the baseline
pipe = load_pipeline(sys.argv[1], keep_loaded=sys.argv[2] == "keep", text_cache=False)  # both runs load the encoders
base = status("VmRSS")
run(pipe)
peak = status("VmHWM")
print(json.dumps({"base": base, "peak": peak, "parts": {p.name: p.nbytes(4) for p in pipe.files.parts()}}))
"""


@pytest.mark.slow
def test_peak_memory_is_the_largest_part_not_the_sum(tiny, tmp_path):
    """Oversized tiny parts (T5 ~320 MB in 24 layers, all of it used; MM-DiT ~300 MB): released one by one,
    the run's peak RSS stays below the sum of the parts; kept loaded it does not (the measurement can fail)."""
    import subprocess
    import sys

    from tests.helpers import ROOT

    folder = sd3_tiny.save_folder(sd3_tiny.components(t5_layers=24, t5_ff=4096, depth=8), tmp_path / "big")
    result = {}
    for mode in ("release", "keep"):
        out = subprocess.run([sys.executable, "-c", _RSS_SCRIPT, str(folder), mode, str(tiny[1])], capture_output=True, text=True,
                             env={"PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"},
                             timeout=600)
        assert out.returncode == 0, out.stderr[-2000:]
        result[mode] = json.loads(out.stdout.strip().splitlines()[-1])
    parts = result["release"]["parts"]
    total, largest = sum(parts.values()), max(parts.values())
    grew = {m: r["peak"] - r["base"] for m, r in result.items()}
    print({"parts_MB": {k: v >> 20 for k, v in parts.items()}, "grew_MB": {k: v >> 20 for k, v in grew.items()}})
    assert grew["release"] < total, (grew, parts)  # the acceptance: below the sum of the parts
    assert grew["keep"] > grew["release"] + 0.5 * (total - largest), (grew, parts)
