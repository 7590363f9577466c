"""Mixed precision as a training flag: bf16 autocast trains the digits preset to fp32's loss, and the CLI
flag reaches the trainer."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from genlab.systems.t2i import config as presets
from genlab.systems.t2i.data import load_digits
from genlab.systems.t2i.train import train_t2i
from tests.helpers import run_cli_inprocess


def final_loss(history: list[dict], records: int = 5) -> float:
    """Mean training loss over the last `records` log records (the last 100 steps of the digits preset)."""
    tail = history[-records:]
    return sum(h["loss"] for h in tail) / len(tail)


@pytest.mark.slow
def test_bf16_final_loss_within_3_percent_of_fp32_over_3_seeds():
    images, _, captions = load_digits()
    losses = {}
    for precision in ("fp32", "bf16"):
        for seed in (0, 1, 2):
            cfg = presets.digits()
            cfg = replace(cfg, train=replace(cfg.train, steps=500, precision=precision, seed=seed, checkpoint_every=0))
            run = train_t2i(cfg, images, captions, None, progress=False)
            losses[precision, seed] = final_loss(run.history)
    fp32 = sum(losses["fp32", s] for s in range(3)) / 3
    bf16 = sum(losses["bf16", s] for s in range(3)) / 3
    print("final loss (mean of steps 401-500) per seed:", {f"{p}/{s}": round(v, 5) for (p, s), v in losses.items()},
          f"mean fp32 {fp32:.5f} bf16 {bf16:.5f} ratio {bf16 / fp32:.4f}")
    assert abs(bf16 / fp32 - 1) < 0.03


def test_cli_precision_flag_reaches_the_trainer(tmp_path, capsys):
    out = tmp_path / "run"
    code, _, err = run_cli_inprocess(["t2i", "train", "--preset", "digits", "--steps", "2", "--batch-size", "4",
                                      "--precision", "bf16", "--out", str(out), "--quiet"], capsys)
    assert code == 0, err
    assert json.loads((out / "config.json").read_text())["train"]["precision"] == "bf16"
