"""Memory: gradient checkpointing lowers peak activation memory (VmHWM of a fresh subprocess, reset before the
measured step; not ru_maxrss, which keeps the forking parent's peak)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.helpers import ROOT

SCRIPT = r"""
import json, sys, torch
from genlab.core.procs import peak_rss_bytes, reset_peak_rss, rss_bytes
torch.set_num_threads(1)
from genlab.core.nn import temporal as TM
torch.manual_seed(0)
model = TM.VideoUNet(TM.tiny())
model.gradient_checkpointing = sys.argv[1] == "1"
x = torch.randn(1, 8, 4, 32, 32); ctx = torch.randn(1, 1, 32); ids = torch.randn(1, 3)
model(x[:, :1, :, :8, :8], 0.1, ctx, ids).sum().backward()  # warm-up: allocator, grads allocated
model.zero_grad(set_to_none=False)
assert reset_peak_rss()
base = rss_bytes()
model(x, 0.1, ctx, ids).square().mean().backward()
print(json.dumps({"extra_kb": (peak_rss_bytes() - base) // 1024}))
"""


def _extra_kb(checkpointing: bool) -> int:
    env = {"PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", SCRIPT, "1" if checkpointing else "0"], env=env,
                         capture_output=True, text=True, timeout=600, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["extra_kb"]


@pytest.mark.slow
def test_gradient_checkpointing_lowers_peak_memory():
    plain = _extra_kb(False)
    ckpt = _extra_kb(True)
    assert plain > 50_000  # activations dominate at this config (> 50 MB)
    print(f"peak extra memory: plain {plain} kB, checkpointed {ckpt} kB, ratio {ckpt / plain:.2f}")
    assert ckpt <= 0.7 * plain, (ckpt, plain)
