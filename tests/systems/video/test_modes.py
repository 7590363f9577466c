"""Text-to-video and interpolation models: shapes, training batches, CLI (train / sample --prompt /
interpolate) and its one-line errors; slow tier: the toy models learn (interpolation beats the linear blend,
text-to-video draws the class the prompt asks for)."""

from __future__ import annotations

import pytest
import torch

from tests.helpers import assert_user_error, run_cli_inprocess


def _fast_model(mode: str):
    from genlab.systems.video import demo
    from genlab.systems.video.config import with_mode
    from genlab.systems.video.model import SVDModel

    torch.manual_seed(0)
    return SVDModel(with_mode(demo.fast().model, mode))


def test_modes_set_in_channels_and_conditioning():
    from genlab.systems.video.config import INTERP_FRAMES, stage

    t2v, interp = _fast_model("t2v"), _fast_model("interp")
    assert t2v.config.unet.unet.in_channels == 3 and t2v.text_encoder is not None
    assert interp.config.unet.unet.in_channels == 7 and interp.mask_embedding is not None
    z = torch.randn(2, INTERP_FRAMES, 3, 8, 8)
    c = torch.zeros(2)
    ids = t2v.tokenize(["a red square moving right", "a blue square moving down"])
    out = t2v(z, c, text_ids=ids, image_keep=torch.tensor([1.0, 0.0]), added_cond=t2v.added_ids(2, 6, 100, 0))
    assert out.shape == z.shape
    # text matters: another prompt changes the output; a dropped prompt equals the zero context
    other = t2v(z, c, text_ids=t2v.tokenize(["a green square moving left"] * 2), added_cond=t2v.added_ids(2, 6, 100, 0))
    assert not torch.allclose(out[0], other[0])
    null = t2v.net(z, c, context=torch.zeros(2, ids.shape[1], t2v.config.unet.unet.cross_attention_dim), added_cond=t2v.added_ids(2, 6, 100, 0))
    torch.testing.assert_close(out[1], null[1])
    img = torch.rand(2, 3, 8, 8) * 2 - 1
    cond = interp.interp_conditioning(img, img, None, None, interp.added_ids(2, 6, 100, 0.02), INTERP_FRAMES)
    assert cond["concat"].shape == (2, INTERP_FRAMES, 4, 8, 8)
    out = interp(z, c, image=img, end_image=img, **cond)
    assert out.shape == z.shape
    with pytest.raises(Exception, match="renamed: use 't2v'"):
        stage("t2v_finetune")


def test_training_batches_of_each_mode():
    from genlab.core.autoencoders.pixel import PixelIdentity
    from genlab.core.train import DistInfo, StepContext
    from genlab.systems.video import demo
    from genlab.systems.video.config import stage
    from genlab.systems.video.data import make_clips, sprite_prompt
    from genlab.systems.video.train import interp_data, stage_loss_fn, text_data

    cfg = demo.fast()
    clips = make_clips(cfg.sprite, 4, seed=0)
    ae = PixelIdentity(3)
    for mode, data, st in (
        ("t2v", lambda m: text_data(clips.video, clips.bucket, [sprite_prompt(int(c)) for c in clips.colour], m, ae, 8),
         stage("t2v", frames=4)),
        ("interp", lambda m: interp_data(clips.video, clips.bucket, ae, 8, 3), stage("interp", frames=3)),
    ):
        model = _fast_model(mode)
        tensors = data(model).tensors()
        ctx = StepContext(0, 0, DistInfo(), 4, torch.device("cpu"), model, torch.arange(4))
        loss = stage_loss_fn(ae, st)(model, tensors, ctx)
        loss.backward()
        enc = model.text_encoder if mode == "t2v" else model.image_encoder
        assert torch.isfinite(loss) and any(p.grad is not None and p.grad.abs().sum() > 0 for p in enc.parameters())


def test_convert_mode_keeps_the_video_model():
    from genlab.systems.video.model import convert_mode

    i2v = _fast_model("i2v")
    t2v = convert_mode(i2v, "t2v")
    w_old, w_new = i2v.state_dict()["unet.conv_in.weight"], t2v.state_dict()["unet.conv_in.weight"]
    assert w_new.shape[1] == 3 and torch.equal(w_new, w_old[:, :3])
    interp = convert_mode(i2v, "interp")
    w = interp.state_dict()["unet.conv_in.weight"]
    assert torch.equal(w[:, :6], w_old) and not w[:, 6:].any()
    assert torch.equal(interp.state_dict()["unet.conv_out.weight"], i2v.state_dict()["unet.conv_out.weight"])


def test_cli_t2v_and_interp_train_sample_interpolate(tmp_path, capsys):
    from PIL import Image

    run = tmp_path / "run"
    for st in ("t2v", "interp"):
        code, out, err = run_cli_inprocess(["video", "train", "--stage", st, "--toy", "fast", "--steps", "2",
                                            "--batch-size", "2", "--out", str(run), "--quiet"], capsys)
        assert code == 0, err
        assert (run / st / "ema.safetensors").is_file()
    mp4 = tmp_path / "t.mp4"
    code, out, err = run_cli_inprocess(["video", "sample", "--weights", str(run / "t2v"), "--prompt",
                                        "a red square moving right", "--steps", "2", "--out", str(mp4), "--quiet"], capsys)
    assert code == 0 and mp4.is_file(), err
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    Image.new("RGB", (16, 16), (255, 0, 0)).save(a)
    Image.new("RGB", (16, 16), (0, 0, 255)).save(b)
    mp4 = tmp_path / "i.mp4"
    code, out, err = run_cli_inprocess(["video", "interpolate", "--weights", str(run / "interp"), "--first", str(a),
                                        "--last", str(b), "--steps", "2", "--out", str(mp4), "--quiet"], capsys)
    assert code == 0 and mp4.is_file(), err
    import av

    with av.open(str(mp4)) as f:
        assert sum(1 for _ in f.decode(video=0)) == 4  # the fast toy's clips have 4 frames (the paper's 5 otherwise)


def test_cli_mode_errors_are_one_line(tmp_path, capsys):
    from PIL import Image

    run = tmp_path / "run"
    code, _, err = run_cli_inprocess(["video", "train", "--stage", "t2v_finetune", "--out", str(run)], capsys)
    assert_user_error(code, err, "t2v_finetune", "'t2v'")
    code, _, err = run_cli_inprocess(["video", "train", "--stage", "t2v", "--data", str(tmp_path), "--out", str(run)],
                                     capsys)
    assert_user_error(code, err, "--stage t2v", "--data")
    code, _, err = run_cli_inprocess(["video", "train", "--stage", "interp", "--pretrained", str(tmp_path), "--data",
                                      str(tmp_path), "--out", str(run)], capsys)
    assert_user_error(code, err, "--pretrained", "--stage interp")
    code, _, err = run_cli_inprocess(["video", "sample", "--prompt", "a red square", "--pretrained", str(tmp_path),
                                      "--out", str(tmp_path / "x.mp4")], capsys)
    assert_user_error(code, err, "--prompt", "--weights")
    code, _, err = run_cli_inprocess(["video", "sample", "--weights", str(run), "--out", str(tmp_path / "x.mp4")], capsys)
    assert_user_error(code, err, "--image")
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    Image.new("RGB", (16, 16)).save(a)
    Image.new("RGB", (8, 16)).save(b)
    code, _, err = run_cli_inprocess(["video", "interpolate", "--weights", str(run), "--first", str(a), "--last",
                                      str(b), "--out", str(tmp_path / "x.mp4")], capsys)
    assert_user_error(code, err, "--first", "--last", "16x16", "8x16")
    code, _, err = run_cli_inprocess(["video", "interpolate", "--weights", str(run), "--first", str(a), "--last",
                                      str(tmp_path / "nope.png"), "--out", str(tmp_path / "x.mp4")], capsys)
    assert_user_error(code, err, "--last", "nope.png")
    code, _, err = run_cli_inprocess(["video", "train", "--stage", "t2v", "--toy", "fast", "--steps", "1",
                                      "--batch-size", "2", "--out", str(run), "--quiet"], capsys)
    assert code == 0, err
    code, _, err = run_cli_inprocess(["video", "interpolate", "--weights", str(run / "t2v"), "--first", str(a),
                                      "--last", str(a), "--out", str(tmp_path / "x.mp4")], capsys)
    assert_user_error(code, err, "mode t2v", "--stage interp")
    code, _, err = run_cli_inprocess(["video", "sample", "--weights", str(run / "t2v"), "--image", str(a),
                                      "--out", str(tmp_path / "x.mp4")], capsys)
    assert_user_error(code, err, "mode t2v", "--prompt")


# ------------------------------------------------------------------------------------------------------
# slow tier: the toy models learn (32x32 sprites, the demo's cached f4 autoencoder)


def _toy():
    from genlab.systems.video import demo

    cfg = demo.full()
    train = demo.training_clips(cfg)
    return cfg, train, demo.toy_autoencoder(cfg, train)


@pytest.mark.slow
def test_interpolation_beats_linear_blend_by_1db():
    from genlab.core.autoencoders.small import psnr
    from genlab.systems.video.config import INTERP_FRAMES, stage, with_mode
    from genlab.systems.video.data import make_clips
    from genlab.systems.video.model import SVDModel
    from genlab.systems.video.pipeline import SamplingConfig, sample_interpolation
    from genlab.systems.video.train import interp_data, train_stage

    cfg, train, ae = _toy()
    torch.manual_seed(0)
    model = SVDModel(with_mode(cfg.model, "interp"))
    st = stage("interp", frames=INTERP_FRAMES, steps=500, batch_size=8, lr=2e-3)
    train_stage(model, ae, interp_data(train.video, train.bucket, ae, 32, INTERP_FRAMES), st)
    test = make_clips(cfg.sprite, 32, seed=4321)
    truth = test.video[:, :INTERP_FRAMES]
    first, last = truth[:, 0], truth[:, -1]
    scfg = SamplingConfig(num_frames=INTERP_FRAMES, steps=12, min_guidance=1.0, max_guidance=1.0, sigma_max=80.0)
    out = sample_interpolation(model, ae, first, last, scfg, generator=torch.Generator().manual_seed(1))
    w = torch.linspace(0, 1, INTERP_FRAMES)[1:-1].view(1, -1, 1, 1, 1)
    blend = (1 - w) * first[:, None] + w * last[:, None]
    ours, base = psnr(out.video[:, 1:-1].clamp(-1, 1), truth[:, 1:-1]), psnr(blend, truth[:, 1:-1])
    print(f"interpolation middle-frame PSNR {ours:.2f} dB, linear blend {base:.2f} dB")
    assert ours >= base + 1.0, (ours, base)


@pytest.mark.slow
def test_t2v_draws_the_prompted_class():
    from genlab.systems.video.classifier import train_classifier
    from genlab.systems.video.config import stage, with_mode
    from genlab.systems.video.data import COLOUR_NAMES, sprite_prompt
    from genlab.systems.video.model import SVDModel
    from genlab.systems.video.pipeline import SamplingConfig, sample_prompts
    from genlab.systems.video.train import text_data, train_stage

    cfg, train, ae = _toy()
    torch.manual_seed(0)
    model = SVDModel(with_mode(cfg.model, "t2v"))
    prompts = [sprite_prompt(int(c)) for c in train.colour]
    st = stage("t2v", steps=700, batch_size=8, lr=2e-3)
    train_stage(model, ae, text_data(train.video, train.bucket, prompts, model, ae, 32), st)
    judge, judge_acc = train_classifier(cfg.sprite)
    asked = torch.arange(32) % len(COLOUR_NAMES)
    scfg = SamplingConfig(num_frames=8, steps=12, min_guidance=2.5, max_guidance=2.5, sigma_max=80.0)
    out = sample_prompts(model, ae, [sprite_prompt(int(c)) for c in asked], 32, 32, scfg,
                         generator=torch.Generator().manual_seed(1), motion_bucket_id=torch.full((32,), 120.0))
    acc = float((judge.predict(out.video.clamp(-1, 1)) == asked).float().mean())
    print(f"t2v: {acc:.2%} of 32 samples recognised as the prompted class (classifier held-out accuracy "
          f"{judge_acc:.2%}; chance {1 / len(COLOUR_NAMES):.0%})")
    assert acc >= 0.8
