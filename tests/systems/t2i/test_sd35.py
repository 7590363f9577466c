"""SD3.5 on the pretrained pipeline: an MMDiT-X (SD3.5-Medium style) folder, skip-layer guidance and img2img,
each equal to its diffusers oracle (StableDiffusion3Pipeline, StableDiffusion3Img2ImgPipeline) on tiny random
components saved with save_pretrained; the CLI flags and their one-line errors."""

from __future__ import annotations

import contextlib
import json

import numpy as np
import pytest
import torch

from genlab.core.flow.guidance import SkipLayerGuidance
from genlab.systems.t2i.sd3 import load_pipeline
from tests.helpers import assert_user_error, run_cli_inprocess
from tests.systems.t2i import sd3_tiny

pytest.importorskip("diffusers")
PROMPTS = ["a photo of a cat", "a red car on the moon"]
SIZE = (32, 48)


def _theirs(parts, prompts=PROMPTS, seed=3, steps=4, guidance=5.0, size=SIZE, **kw):
    pipe = sd3_tiny.diffusers_pipeline(parts, img2img="image" in kw)
    with torch.no_grad():
        return pipe(prompts, negative_prompt="blurry", height=size[0], width=size[1], num_inference_steps=steps,
                    guidance_scale=guidance, generator=torch.Generator("cpu").manual_seed(seed), output_type="pt",
                    **kw).images


def _ours(folder, prompts=PROMPTS, seed=3, steps=4, guidance=5.0, size=SIZE, **kw):
    return load_pipeline(folder)(prompts, negative_prompt="blurry", steps=steps, guidance=guidance, size=size,
                                 seed=seed, **kw)


def _photo(width: int, height: int):
    """A smooth colour picture (no hub, no files): gradients and a disc."""
    from PIL import Image

    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    disc = ((x - width / 3) ** 2 + (y - height / 2) ** 2 < (min(width, height) / 4) ** 2).astype(np.float32)
    rgb = np.stack([x / width, y / height, 0.8 * disc + 0.1], axis=-1)
    return Image.fromarray((rgb * 255).round().astype(np.uint8))


def test_mmdit_x_folder_images_equal_diffusers(tiny35):
    parts, folder = tiny35
    pipe = load_pipeline(folder)
    assert pipe.cfg.dual_attention_layers == (0, 1) and pipe.cfg.qk_norm == "rms"
    theirs, ours = _theirs(parts), _ours(folder)
    assert float(theirs.std()) > 0.05 and not torch.allclose(ours[0], ours[1], atol=1e-2)  # not a trivial image
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=0)


def test_skip_layer_guidance_equals_diffusers(tiny35):
    """6 steps, start 0.1, stop 0.6: diffusers' rule 0.6 < i < 3.6 puts the extra pass on steps 1-3 (not 0, 4, 5)."""
    parts, folder = tiny35
    slg = SkipLayerGuidance(layers=(1, 2), scale=2.5, start=0.1, stop=0.6)
    kw = dict(prompts=PROMPTS[:1], steps=6, size=(16, 32))
    theirs = _theirs(parts, skip_guidance_layers=[1, 2], skip_layer_guidance_scale=2.5, skip_layer_guidance_start=0.1,
                     skip_layer_guidance_stop=0.6, **kw)
    ours = _ours(folder, skip_layer_guidance=slg, **kw)
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=0)
    assert (ours - _ours(folder, **kw)).abs().max() > 1e-3  # the guidance changed the picture


@pytest.mark.parametrize("model,strength,image_size", [
    ("sd35", 0.6, (48, 32)),  # the image already has the output size (W x H)
    pytest.param("sd35", 0.3, (50, 40), marks=pytest.mark.slow),  # resized, warned
    pytest.param("sd3", 0.6, (50, 40), marks=pytest.mark.slow),
    pytest.param("sd3", 0.3, (48, 32), marks=pytest.mark.slow),
])
def test_img2img_equals_diffusers(request, model, strength, image_size):
    parts, folder = request.getfixturevalue("tiny35" if model == "sd35" else "tiny")
    image = _photo(*image_size)
    theirs = _theirs(parts, image=image, strength=strength)
    resized = image_size != (SIZE[1], SIZE[0])
    with pytest.warns(UserWarning, match=r"is 50x40 \(WxH\); resized to 48x32 \(Lanczos") if resized else \
            contextlib.nullcontext():
        ours = _ours(folder, init_image=image, strength=strength)
        full = _ours(folder, init_image=image, strength=1.0)  # strength 1: all steps, from pure noise
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=0)
    assert (ours - full).abs().max() > 1e-2


def test_cli_img2img_png_equals_diffusers_and_carries_settings(tiny, tmp_path, capsys):
    from PIL import Image

    parts, folder = tiny
    _photo(48, 32).save(tmp_path / "in.png")
    out = tmp_path / "out.png"
    code, _, err = run_cli_inprocess(["t2i", "sample", "--pretrained", str(folder), "--prompt", PROMPTS[0],
                                      "--init-image", str(tmp_path / "in.png"), "--strength", "0.5", "--steps", "4",
                                      "--guidance", "4", "--seed", "7", "--out", str(out), "--quiet"], capsys)
    assert code == 0, err
    png = Image.open(out)
    assert png.size == (48, 32)  # no --size: the init image's size (a multiple of 16 already)
    pipe = sd3_tiny.diffusers_pipeline(parts, img2img=True)
    with torch.no_grad():
        theirs = pipe(PROMPTS[0], image=_photo(48, 32), strength=0.5, height=32, width=48, num_inference_steps=4,
                      guidance_scale=4.0, generator=torch.Generator("cpu").manual_seed(7), output_type="pt").images
    ref = (theirs[0].permute(1, 2, 0).numpy() * 255).round().astype(np.int16)
    assert np.abs(np.asarray(png, dtype=np.int16) - ref).max() <= 1
    info = json.loads(png.text["genlab"])
    assert info["init_image"] == str(tmp_path / "in.png") and info["strength"] == 0.5
    assert info["skip_layer_guidance"] is None


@pytest.mark.slow  # the flags' parsing and errors are in the fast tier; this compares the CLI with the Python API
def test_cli_skip_layer_guidance_png_and_settings(tiny35, tmp_path, capsys):
    from PIL import Image

    parts, folder = tiny35
    out = tmp_path / "slg.png"
    code, _, err = run_cli_inprocess(["t2i", "sample", "--pretrained", str(folder), "--prompt", PROMPTS[0],
                                      "--size", "32x48", "--steps", "8", "--guidance", "4", "--seed", "7",
                                      "--skip-layer-guidance", "1,2", "--slg-scale", "2.5", "--slg-start", "0.1",
                                      "--slg-stop", "0.6", "--out", str(out), "--quiet"], capsys)
    assert code == 0, err
    ours = load_pipeline(folder)(PROMPTS[0], steps=8, guidance=4.0, size=SIZE, seed=7,
                                 skip_layer_guidance=SkipLayerGuidance((1, 2), 2.5, 0.1, 0.6))
    ref = (ours[0].permute(1, 2, 0).numpy() * 255).round().astype(np.int16)
    png = Image.open(out)
    assert np.abs(np.asarray(png, dtype=np.int16) - ref).max() <= 1
    assert json.loads(png.text["genlab"])["skip_layer_guidance"] == {"layers": [1, 2], "scale": 2.5, "start": 0.1,
                                                                     "stop": 0.6}


def test_cli_errors_for_skip_layer_guidance_and_init_image(tiny35, tmp_path, capsys):
    parts, folder = tiny35
    base = ["t2i", "sample", "--pretrained", str(folder), "--prompt", "a cat", "--out", str(tmp_path / "x.png"),
            "--size", "32x32", "--steps", "4", "--quiet"]
    assert_user_error(*run_cli_inprocess(base + ["--skip-layer-guidance", "1,3"], capsys)[::2],
                      "--skip-layer-guidance", "3", "out of range", "3 joint blocks (0..2)")
    assert_user_error(*run_cli_inprocess(base + ["--skip-layer-guidance", "7,x"], capsys)[::2],
                      "--skip-layer-guidance", "'7,x'", "comma-separated")
    assert_user_error(*run_cli_inprocess(base + ["--skip-layer-guidance", "1", "--guidance", "1"], capsys)[::2],
                      "--skip-layer-guidance needs classifier-free guidance")
    assert_user_error(*run_cli_inprocess(base + ["--skip-layer-guidance", "1", "--slg-start", "0.5", "--slg-stop",
                                                 "0.2"], capsys)[::2], "start <= stop")
    (tmp_path / "bad.png").write_bytes(b"not a png")
    assert_user_error(*run_cli_inprocess(base + ["--init-image", str(tmp_path / "bad.png")], capsys)[::2],
                      "--init-image", "bad.png", "cannot read")
    _photo(32, 32).save(tmp_path / "in.png")
    assert_user_error(*run_cli_inprocess(base + ["--init-image", str(tmp_path / "in.png"), "--strength", "0"],
                                         capsys)[::2], "--strength", "(0, 1]", "got 0.0")
    assert_user_error(*run_cli_inprocess(base + ["--strength", "0.5"], capsys)[::2], "--strength", "--init-image")
    _photo(2, 40).save(tmp_path / "thin.png")  # the tiny VAE's factor is 2: multiples of 4 pixels
    no_size = [a for a in base if a not in ("--size", "32x32")]
    assert_user_error(*run_cli_inprocess(no_size + ["--init-image", str(tmp_path / "thin.png")], capsys)[::2],
                      "thin.png", "2x40", "at least 4x4")


def test_mmdit_x_single_file_equals_folder(tiny35, tmp_path):
    """Stability's single-file layout of an MMDiT-X (x_block.attn2.*, 9-chunk x_block adaLN): the config is read
    off the shapes and the images equal the folder's."""
    import shutil

    from genlab.core.train import save_weights

    parts, folder = tiny35
    path = save_weights(tmp_path / "sd3.5_medium.safetensors", sd3_tiny.single_file_state(parts))
    for tok in ("tokenizer", "tokenizer_2", "tokenizer_3"):
        shutil.copytree(folder / tok, tmp_path / tok)
    single = load_pipeline(path)
    assert single.cfg.dual_attention_layers == (0, 1) and single.cfg.qk_norm == "rms"
    kw = dict(prompts=PROMPTS[:1], steps=2, size=(16, 16))
    torch.testing.assert_close(_ours(path, **kw), _ours(folder, **kw), atol=1e-5, rtol=0)


def test_sd35_presets_carry_the_published_settings():
    import genlab.systems.t2i as t2i
    from genlab.systems.t2i.config import preset

    medium, large, turbo = preset("sd3_5_medium"), preset("sd3_5_large"), preset("sd3_5_large_turbo")
    assert medium.model.dual_attention_layers == tuple(range(13)) and medium.model.pos_embed_max_size == 384
    assert (medium.sampling.steps, medium.sampling.guidance, medium.sampling.skip_layers, medium.sampling.slg_scale,
            medium.sampling.slg_start, medium.sampling.slg_stop) == (50, 4.0, (7, 8, 9), 2.5, 0.01, 0.2)
    assert (large.sampling.steps, large.sampling.guidance, large.model.depth) == (40, 4.5, 38)
    assert (turbo.sampling.steps, turbo.sampling.guidance, turbo.model) == (4, 1.0, large.model)
    assert medium.shift == large.shift == turbo.shift == 3.0
    assert t2i.SkipLayerGuidance is SkipLayerGuidance


def test_cli_preset_gives_published_settings_and_must_fit_the_model(tiny35, tmp_path, capsys, monkeypatch):
    from PIL import Image

    from genlab.systems.t2i import cli

    parts, folder = tiny35
    base = ["t2i", "sample", "--pretrained", str(folder), "--prompt", "a cat", "--size", "16x16", "--quiet"]
    assert_user_error(*run_cli_inprocess(base + ["--preset", "sd3_5_medium", "--out", str(tmp_path / "x.png")],
                                         capsys)[::2], "--preset sd3_5_medium", "24-block", "3 blocks")
    monkeypatch.setattr(cli, "check_preset_fits", lambda name, cfg: None)  # the tiny model stands in for Turbo
    code, _, err = run_cli_inprocess(base + ["--preset", "sd3_5_large_turbo", "--out", str(tmp_path / "t.png")], capsys)
    assert code == 0, err
    info = json.loads(Image.open(tmp_path / "t.png").text["genlab"])
    assert (info["steps"], info["guidance"], info["shift"], info["skip_layer_guidance"]) == (4, 1.0, 3.0, None)
    # a preset's skip-layer guidance comes with it (medium: blocks 7, 8, 9), flags override, 'none' turns it off
    code, _, err = run_cli_inprocess(base + ["--preset", "sd3_5_medium", "--steps", "2", "--out", str(tmp_path / "m.png")],
                                     capsys)
    assert code == 2 and "layer index 7, 8, 9 out of range" in err
    code, _, err = run_cli_inprocess(base + ["--preset", "sd3_5_medium", "--steps", "2", "--skip-layer-guidance",
                                             "none", "--out", str(tmp_path / "m.png")], capsys)
    assert code == 0, err
    info = json.loads(Image.open(tmp_path / "m.png").text["genlab"])
    assert (info["steps"], info["guidance"], info["skip_layer_guidance"]) == (2, 4.0, None)
