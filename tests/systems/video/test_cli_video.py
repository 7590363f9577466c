"""`genlab video` commands: help, sample / convert on a tiny pretrained SVD, bad input as one error line (exit 2)."""

from __future__ import annotations

import numpy as np
import torch

from tests.helpers import assert_user_error, run_cli_inprocess, run_genlab


def test_video_commands_are_registered():
    result = run_genlab("video", "--help")
    assert result.returncode == 0, result.stderr
    for cmd in ("demo", "train", "sample", "convert"):
        assert cmd in result.stdout


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / max(mse, 1e-12)))


def test_sample_writes_an_mp4_equal_to_diffusers_frames(tiny_svd, tmp_path, capsys):
    from genlab.systems.video.export import read_mp4
    from tests.systems.video.svd_tiny import sample_picture

    folder, pipe = tiny_svd
    image = sample_picture(576, 1024)
    image.save(tmp_path / "in.png")
    out = tmp_path / "clip.mp4"
    code, stdout, err = run_cli_inprocess(
        ["video", "sample", "--pretrained", str(folder), "--image", str(tmp_path / "in.png"), "--out", str(out),
         "--frames", "4", "--steps", "2", "--size", "64x128", "--fps", "9", "--seed", "11", "--gif", "--quiet"], capsys)
    assert code == 0, err
    assert "s per step" in stdout and "peak RSS" in stdout
    with torch.no_grad():
        ref = pipe(image, height=64, width=128, num_frames=4, num_inference_steps=2, min_guidance_scale=1.0,
                   max_guidance_scale=2.5, fps=9, motion_bucket_id=127, noise_aug_strength=0.02,
                   generator=torch.Generator("cpu").manual_seed(11), output_type="np").frames[0]
    frames, fps = read_mp4(out)
    assert fps == 9.0 and frames.shape == (4, 64, 128, 3)
    ref8 = (ref * 255).round().astype(np.uint8)
    assert ref8.std() > 5  # a video with content, not a flat colour
    assert _psnr(frames, ref8) >= 40.0
    assert (tmp_path / "clip.gif").is_file()


def test_convert_round_trips_through_genlab_and_single_file(tiny_svd, tmp_path, capsys):
    from genlab.systems.video import pretrained

    folder, _ = tiny_svd
    ours = tmp_path / "genlab"
    code, _, err = run_cli_inprocess(["video", "convert", "--pretrained", str(folder), "--to", "genlab",
                                      "--out", str(ours)], capsys)
    assert code == 0, err
    assert (ours / "model.safetensors").is_file() and (ours / "model.json").is_file()
    back = tmp_path / "diffusers"
    code, _, err = run_cli_inprocess(["video", "convert", "--pretrained", str(ours), "--to", "diffusers",
                                      "--out", str(back)], capsys)
    assert code == 0, err
    a, b = pretrained.load(folder), pretrained.load(back)
    assert b.source == "diffusers"
    for x, y in ((a.model, b.model), (a.ae, b.ae), (a.clip, b.clip)):
        sa, sb = x.state_dict(), y.state_dict()
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    # the diffusers folder we write is one diffusers itself reads
    import diffusers

    pipe = diffusers.StableVideoDiffusionPipeline.from_pretrained(str(back), local_files_only=True)
    ref = pretrained.load(folder)
    assert torch.equal(pipe.unet.state_dict()["conv_in.weight"], ref.model.unet.conv_in.weight)
    # train --init reads model.safetensors with core.train's loader
    from genlab.core.train import load_weights

    sd, cfg = load_weights(ours / "model.safetensors")
    assert cfg["mode"] == "i2v" and set(sd) == set(a.model.state_dict())


def test_user_errors_are_one_line(tiny_svd, tmp_path, capsys):
    folder, _ = tiny_svd
    png = tmp_path / "in.png"
    from PIL import Image

    Image.new("LA", (40, 30)).save(png)  # grey + alpha: converted, not an error
    not_svd = tmp_path / "sd"
    not_svd.mkdir()
    (not_svd / "model_index.json").write_text('{"_class_name": "StableDiffusionPipeline"}')
    base = ["video", "sample", "--image", str(png), "--out", str(tmp_path / "o.mp4")]
    cases = [
        (["--pretrained", str(not_svd)], ["StableVideoDiffusionPipeline"]),
        (["--pretrained", str(tmp_path / "missing")], ["not found"]),
        (["--pretrained", str(folder), "--image", str(tmp_path / "nope.png")], ["nope.png", "not found"]),
        (["--pretrained", str(folder), "--size", "60x64"], ["--size", "multiples"]),
        (["--pretrained", str(folder), "--out", str(tmp_path / "o.avi")], [".mp4"]),
    ]
    bad_png = tmp_path / "bad.png"
    bad_png.write_bytes(b"not an image")
    cases.append((["--pretrained", str(folder), "--image", str(bad_png)], ["bad.png", "not a readable image"]))
    # a truncated download is caught from the header, before any model is built
    import shutil

    cut = tmp_path / "cut"
    shutil.copytree(folder, cut)
    weights = cut / "unet" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1000])
    cases.append((["--pretrained", str(cut)], ["truncated", "diffusion_pytorch_model.safetensors"]))
    for extra, needles in cases:
        code, _, err = run_cli_inprocess(base + extra, capsys)
        assert_user_error(code, err, *needles)
    assert not (tmp_path / "o.mp4").exists()
    code, _, err = run_cli_inprocess(["video", "convert", "--pretrained", str(folder), "--to", "single_file",
                                      "--out", str(tmp_path / "x.bin")], capsys)
    assert_user_error(code, err, ".safetensors")


def test_frames_beyond_the_trained_length_warn(tiny_svd, tmp_path, capsys):
    folder, _ = tiny_svd
    from PIL import Image

    Image.new("L", (64, 64), 128).save(tmp_path / "grey.png")  # one channel: expanded to RGB
    code, out, err = run_cli_inprocess(
        ["video", "sample", "--pretrained", str(folder), "--image", str(tmp_path / "grey.png"),
         "--out", str(tmp_path / "o.mp4"), "--frames", "6", "--steps", "1", "--size", "64x64", "--quiet"], capsys)
    assert code == 0, err
    assert "beyond the 4 frames" in out
