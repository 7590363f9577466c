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
    assert_user_error(code, err, "w.safetensors", "corrupt")
    code, _, err = run_cli_inprocess([*argv[:4], "--init", str(tmp_path / "nope"), *argv[6:]], capsys)
    assert_user_error(code, err, "nope")
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
