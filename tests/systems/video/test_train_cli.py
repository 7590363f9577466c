"""`genlab video train`: bad --init is one line before any work; SIGKILL right after a checkpoint, then
resume, ends torch.equal to an uninterrupted run (weights, EMA, optimizer state)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from genlab.core.train import load_checkpoint, load_weights, save_weights
from tests.helpers import ROOT, assert_user_error, run_cli_inprocess
from tests.systems.video.test_model_train import assert_same_state


def test_truncated_init_is_one_line_before_any_work(tmp_path, capsys, monkeypatch):
    from genlab.systems.video import demo

    def no_work(*args, **kwargs):
        raise AssertionError("training data was built before --init was checked")

    monkeypatch.setattr(demo, "training_clips", no_work)
    path = save_weights(tmp_path / "w.safetensors", {"w": torch.randn(4096)}, config={"mode": "i2v"})
    path.write_bytes(path.read_bytes()[:-1000])
    out = tmp_path / "run"
    argv = ["video", "train", "--stage", "i2v", "--init", str(path), "--out", str(out), "--quiet"]
    code, _, err = run_cli_inprocess(argv, capsys)
    assert_user_error(code, err, "w.safetensors", "truncated")
    code, _, err = run_cli_inprocess([*argv[:4], "--init", str(tmp_path / "nope"), *argv[6:]], capsys)
    assert_user_error(code, err, "nope")
    code, _, err = run_cli_inprocess([*argv[:4], "--precision", "fp16", *argv[6:]], capsys)
    assert_user_error(code, err, "--precision fp16", "--device cpu")
    assert not out.exists()


def _env():
    return dict(os.environ, PYTHONPATH=str(ROOT / "src") + os.pathsep + str(ROOT), OMP_NUM_THREADS="1")


def _train_cmd(out, steps: int, every: int) -> list[str]:
    return [sys.executable, "-m", "genlab", "video", "train", "--toy", "fast", "--stage", "i2v", "--steps", str(steps),
            "--batch-size", "4", "--ema-decay", "0.9", "--checkpoint-every", str(every), "--out", str(out), "--quiet"]


@pytest.mark.slow
def test_sigkill_after_checkpoint_then_resume_is_bit_identical(tmp_path):
    steps, every = 60, 5
    out = tmp_path / "killed"
    cmd = _train_cmd(out, steps, every)
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    target = out / "i2v" / "checkpoints" / "step_00000010.safetensors"
    deadline = time.time() + 300
    while not target.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "i2v" / "ema.safetensors").exists(), "the run finished before it could be killed"
    for p in (out / "i2v" / "checkpoints").iterdir():  # every file with a final name is complete
        if p.name.startswith("step_"):
            load_checkpoint(p)
    res = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "resuming stage i2v from" in res.stdout, res.stdout
    straight = tmp_path / "straight"
    res = subprocess.run(_train_cmd(straight, steps, every), env=_env(), capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    final = f"i2v/checkpoints/step_{steps:08d}.safetensors"
    a, b = load_checkpoint(straight / final), load_checkpoint(out / final)
    for key in ("model", "ema", "ema_updates", "optimizer", "step", "history"):
        assert_same_state(a[key], b[key], key)
    assert a["optimizer"]["state"], "optimizer state is empty"
    for name in ("model.safetensors", "ema.safetensors"):
        (x, _), (y, _) = load_weights(straight / "i2v" / name), load_weights(out / "i2v" / name)
        assert_same_state(x, y, name)


@pytest.mark.slow
def test_fsdp2_equals_ddp_equals_one_process_with_double_batch(tmp_path):
    """torchrun with 2 CPU processes of batch 2, DDP and FSDP2 (`--parallel fsdp`), trains like 1 process of
    batch 4 (same global batches and noise); differences are float summation order only (AdamW divides by
    sqrt(v), so a parameter with a near-zero gradient turns that rounding into up to a few % of a step),
    far below what 3 steps move the weights. FSDP2 and DDP reduce the same two gradients: they agree
    much closer. The FSDP2 run saves whole (unsharded) weights."""
    run = ["-m", "genlab", "video", "train", "--toy", "fast", "--stage", "i2v", "--steps", "3", "--quiet"]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    for name, cmd in (("ddp", [*torchrun, *run, "--batch-size", "2", "--parallel", "ddp"]),
                      ("fsdp", [*torchrun, *run, "--batch-size", "2", "--parallel", "fsdp"]),
                      ("one", [sys.executable, *run, "--batch-size", "4"])):
        res = subprocess.run([*cmd, "--out", str(tmp_path / name)], env=_env(), capture_output=True, text=True,
                             timeout=600)
        assert res.returncode == 0, res.stderr[-3000:]
    weights = {m: load_weights(tmp_path / m / "i2v" / "model.safetensors")[0] for m in ("ddp", "fsdp", "one")}
    loss = {m: load_checkpoint(tmp_path / m / "i2v" / "checkpoints" / "step_00000003.safetensors")["history"][0]["loss"]
            for m in weights}
    assert loss["ddp"] == pytest.approx(loss["one"], rel=1e-5) and loss["fsdp"] == pytest.approx(loss["one"], rel=1e-5)
    from genlab.systems.video import demo
    from genlab.systems.video.model import SVDModel

    torch.manual_seed(0)
    init = SVDModel(demo.fast().model).state_dict()  # the CLI's initialisation (stage seed 0)
    one = weights["one"]
    moved = max((one[k] - init[k]).abs().max().item() for k in one)
    for m in ("ddp", "fsdp"):
        assert weights[m].keys() == one.keys()
        gap = max((one[k] - weights[m][k]).abs().max().item() for k in one)
        print(f"{m} (2 ranks x batch 2) vs one process x batch 4 after 3 steps: max |diff| {gap:.2e} "
              f"(weights moved {moved:.2e})")
        assert moved > 1e-3 and gap < 0.1 * moved, (m, moved, gap)
    fsdp_ddp = max((weights["fsdp"][k] - weights["ddp"][k]).abs().max().item() for k in one)
    print(f"fsdp vs ddp: max |diff| {fsdp_ddp:.2e}")
    assert fsdp_ddp < 1e-5


def test_train_then_sample_the_stage_folder(tmp_path, capsys):
    """`video sample --weights RUN/STAGE` reads what `video train` wrote (core.train's weight format)."""
    from PIL import Image

    run = tmp_path / "run"
    code, _, err = run_cli_inprocess(["video", "train", "--toy", "fast", "--stage", "i2v", "--steps", "2", "--batch-size", "2",
                                      "--no-gradient-checkpointing", "--out", str(run), "--quiet"], capsys)
    assert code == 0, err
    Image.new("RGB", (8, 8), (200, 30, 30)).save(tmp_path / "first.png")
    out = tmp_path / "clip.mp4"
    code, stdout, err = run_cli_inprocess(["video", "sample", "--weights", str(run / "i2v"), "--image",
                                           str(tmp_path / "first.png"), "--out", str(out), "--frames", "2", "--steps",
                                           "2", "--quiet"], capsys)
    assert code == 0, err
    assert out.is_file() and out.stat().st_size > 0
