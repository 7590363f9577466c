"""Multi-process training of the MM-DiT: FSDP2 (fully_shard) = DDP = one process with the doubled batch,
2 gloo ranks on CPU; FSDP2 holds about half the parameter + optimizer bytes per rank. Gradient accumulation
and checkpointing change memory, not the maths."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from genlab.core.train import load_weights
from genlab.systems.t2i import config as presets
from genlab.systems.t2i.pipeline import build_model
from tests.helpers import ROOT

WORKER = Path(__file__).with_name("parallel_worker.py")


def _env():
    return dict(os.environ, PYTHONPATH=str(ROOT / "src") + os.pathsep + str(ROOT), OMP_NUM_THREADS="1")


def _run(args: list[str], two: bool) -> str:
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"] if two else [sys.executable]
    res = subprocess.run(launch + [str(WORKER), *args], env=_env(), capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    return res.stdout


def _max_diff(a, b) -> float:
    (sa, _), (sb, _) = load_weights(a), load_weights(b)
    assert sa.keys() == sb.keys()
    return max((sa[k] - sb[k]).abs().max().item() for k in sa)


@pytest.mark.slow
def test_fsdp2_equals_ddp_equals_one_process_and_halves_the_bytes(tmp_path):
    out = {m: tmp_path / f"{m}.safetensors" for m in ("fsdp", "ddp", "one")}
    logs = {"fsdp": _run(["fsdp", "4", str(out["fsdp"])], True), "ddp": _run(["ddp", "4", str(out["ddp"])], True)}
    _run(["ddp", "8", str(out["one"])], False)
    for m in ("fsdp", "ddp"):
        d = _max_diff(out[m], out["one"])
        print(f"{m} vs one process with the doubled batch, after 5 steps: max |diff| {d:.2e}")
        assert d < 1e-5
    nbytes = {m: [int(b) for b in re.findall(rf"{m} bytes (\d+)", logs[m])] for m in logs}
    assert len(nbytes["fsdp"]) == 2 and len(nbytes["ddp"]) == 2
    ratio = max(nbytes["fsdp"]) / max(nbytes["ddp"])
    print(f"per-rank parameter + optimizer bytes: FSDP2 {nbytes['fsdp']}, DDP {nbytes['ddp']}, ratio {ratio:.3f}")
    assert ratio <= 0.55


def test_gradient_accumulation_and_checkpointing_keep_the_maths(tmp_path):
    from tests.systems.t2i.parallel_worker import main as worker_main

    for name, accum in (("one", 1), ("acc", 4)):  # 4 micro-batches of 2 == one batch of 8, 5 steps
        worker_main("ddp", 8, str(tmp_path / f"{name}.safetensors"), accum)
    assert _max_diff(tmp_path / "one.safetensors", tmp_path / "acc.safetensors") < 1e-5
    # gradient checkpointing: the same gradients with each joint block recomputed in backward
    torch.manual_seed(0)
    model = build_model(presets.tiny()).train()
    with torch.no_grad():  # adaLN-Zero zeroes most gradients at init; perturb so every block is live
        for p in model.backbone.parameters():
            p.add_(0.02 * torch.randn_like(p))
    x, t = torch.randn(4, 1, 8, 8), torch.rand(4) * 1000
    ctx, pooled = torch.randn(4, 3, 32), torch.randn(4, 32)
    grads = []
    for ckpt in (False, True):
        model.zero_grad()
        model.backbone.gradient_checkpointing = ckpt
        model(x, t, context=ctx, pooled=pooled).square().mean().backward()
        grads.append({n: p.grad.clone() for n, p in model.backbone.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) > 10
    assert all(grads[0][n].abs().sum() > 0 for n in grads[0] if n.startswith("joint_blocks.0.x_block.mlp"))
    for n in grads[0]:
        torch.testing.assert_close(grads[0][n], grads[1][n], rtol=1e-5, atol=1e-7)
