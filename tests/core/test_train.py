"""core/train: EMA maths, checkpoint round-trips and errors, bit-identical resume, DDP == big batch."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from dataclasses import dataclass

import pytest
import torch

from genlab.core.train import (
    EMA,
    TrainConfig,
    Trainer,
    config_from_dict,
    config_to_dict,
    load_checkpoint,
    load_weights,
    save_checkpoint,
    save_weights,
)
from genlab.errors import GenlabError
from tests.helpers import ROOT


def _problem():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(50, 5, generator=g)
    y = x @ torch.randn(5, 2, generator=g)
    return x, y


def _loss(m, b, ctx):
    x, y = b
    return ((m(x + 0.05 * ctx.randn(5)) - y) ** 2).mean()


def _model():
    torch.manual_seed(3)
    return torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))


def test_ema_is_the_exponential_average():
    model = torch.nn.Linear(3, 1)
    ema = EMA(model, decay=0.9, warmup=False)
    expected = [p.detach().clone() for p in model.parameters()]
    for _ in range(4):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
        ema.update(model)
        expected = [0.9 * e + 0.1 * p.detach() for e, p in zip(expected, model.parameters())]
    for e, p in zip(expected, ema.model.parameters()):
        torch.testing.assert_close(p, e, rtol=1e-6, atol=1e-6)
    assert not any(p.requires_grad for p in ema.model.parameters())


def test_checkpoint_round_trips_nested_state_and_optimizer(tmp_path):
    model = _model()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.8, 0.9))
    model(torch.randn(4, 5)).sum().backward()
    opt.step()
    state = {"step": 3, "opt": opt.state_dict(), "w": model.state_dict(), "hist": [{"loss": 1.5}], "none": None}
    path = save_checkpoint(tmp_path / "c.safetensors", state)
    back = load_checkpoint(path)
    assert back["step"] == 3 and back["hist"] == [{"loss": 1.5}] and back["none"] is None
    opt2 = torch.optim.AdamW(_model().parameters(), lr=1.0)
    opt2.load_state_dict(back["opt"])
    assert opt2.param_groups[0]["lr"] == 1e-3 and tuple(opt2.param_groups[0]["betas"]) == (0.8, 0.9)
    for k, v in model.state_dict().items():
        assert torch.equal(back["w"][k], v)
    assert [p.name for p in tmp_path.iterdir()] == ["c.safetensors"]  # no temporary left behind


@dataclass(frozen=True)
class _Inner:
    size: tuple[int, int] = (8, 8)


@dataclass(frozen=True)
class _Cfg:
    depth: int = 2
    inner: _Inner = _Inner()
    qk: str | None = None


def test_weights_and_config_round_trip(tmp_path):
    cfg = _Cfg(depth=3, inner=_Inner((4, 6)), qk="rms")
    model = _model()
    save_weights(tmp_path / "m.safetensors", model.state_dict(), cfg)
    state, cfg_dict = load_weights(tmp_path / "m.safetensors")
    assert config_from_dict(_Cfg, cfg_dict) == cfg
    assert config_to_dict(cfg) == cfg_dict
    with pytest.raises(GenlabError, match="unknown field"):
        config_from_dict(_Cfg, {"depth": 1, "width": 3})


def test_missing_and_corrupt_files_are_genlab_errors(tmp_path):
    with pytest.raises(GenlabError, match="not found"):
        load_weights(tmp_path / "nope.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    with pytest.raises(GenlabError, match="corrupt"):
        load_checkpoint(bad)
    save_weights(tmp_path / "ok.safetensors", {"a": torch.ones(3)})
    data = (tmp_path / "ok.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) - 5])
    with pytest.raises(GenlabError, match="corrupt"):
        load_weights(tmp_path / "cut.safetensors")


def test_resume_is_bit_identical(tmp_path):
    data = _problem()
    cfg = TrainConfig(steps=12, batch_size=8, lr=1e-2, warmup_steps=3, checkpoint_every=5, log_every=2)
    straight = Trainer(_model(), _loss, data, cfg, tmp_path / "a", progress=False).fit()
    half = TrainConfig(**{**config_to_dict(cfg), "steps": 6, "betas": cfg.betas})
    Trainer(_model(), _loss, data, half, tmp_path / "b", progress=False).fit()
    # a fresh (differently initialised) model: everything must come from the checkpoint
    resumed = Trainer(torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2)),
                      _loss, data, cfg, tmp_path / "b", progress=False).fit()
    assert resumed.step == 12
    for a, b in zip(straight.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)
    for a, b in zip(straight.ema.model.state_dict().values(), resumed.ema.model.state_dict().values()):
        assert torch.equal(a, b)
    assert straight.history == resumed.history


def test_warmup_and_clipping():
    tr = Trainer(_model(), _loss, _problem(), TrainConfig(steps=1, lr=1.0, warmup_steps=4), progress=False)
    assert [tr.lr_at(s) for s in range(5)] == [0.25, 0.5, 0.75, 1.0, 1.0]
    cosine = TrainConfig(steps=8, lr=1.0, warmup_steps=2, lr_schedule="cosine", min_lr_ratio=0.1)
    tr = Trainer(_model(), _loss, _problem(), cosine, progress=False)
    lrs = [tr.lr_at(s) for s in range(8)]
    assert lrs[0] == pytest.approx(0.5) and lrs[1] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi / 8)))
    assert lrs[4] == pytest.approx(0.55) and all(a > b for a, b in zip(lrs[1:], lrs[2:])) and lrs[-1] > 0.1
    with pytest.raises(GenlabError, match="lr_schedule"):
        TrainConfig(lr_schedule="step")
    norms = []

    def loss_fn(m, b, ctx):
        return 1e3 * _loss(m, b, ctx)

    def opt_fn(model, cfg):
        class Spy(torch.optim.SGD):
            def step(self, closure=None):
                norms.append(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters()])))
                return super().step(closure)
        return Spy(model.parameters(), lr=cfg.lr)

    Trainer(_model(), loss_fn, _problem(), TrainConfig(steps=2, grad_clip=0.25, lr=1e-3), progress=False,
            optimizer_fn=opt_fn).fit()
    assert all(abs(float(n) - 0.25) < 1e-4 for n in norms)


def test_bf16_autocast_runs_on_cpu():
    res = Trainer(_model(), _loss, _problem(), TrainConfig(steps=3, batch_size=4, precision="bf16"),
                  progress=False).fit()
    assert res.step == 3 and all(p.dtype == torch.float32 for p in res.model.parameters())


def _torchrun(out, nproc, batch, steps):
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src") + os.pathsep + str(ROOT), OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
           str(ROOT / "tests" / "core" / "ddp_worker.py"), str(out), str(batch), str(steps)]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-3000:]
    return load_checkpoint(out / "checkpoints" / "step_00000003.safetensors")


def test_ddp_two_gloo_ranks_equal_one_process_with_double_batch(tmp_path):
    two = _torchrun(tmp_path / "two", 2, 4, 3)
    from tests.core.ddp_worker import run

    run(tmp_path / "one", 8, 3)  # one process, in this one
    one = load_checkpoint(tmp_path / "one" / "checkpoints" / "step_00000003.safetensors")
    for k, v in one["model"].items():
        torch.testing.assert_close(two["model"][k], v, rtol=1e-5, atol=1e-5)
    r0 = json.loads((tmp_path / "two" / "rank0.json").read_text())
    r1 = json.loads((tmp_path / "two" / "rank1.json").read_text())
    big = json.loads((tmp_path / "one" / "rank0.json").read_text())
    for a, b, both in zip(r0, r1, big):
        assert not set(a) & set(b)
        assert a + b == both


def test_resuming_a_checkpoint_of_another_model_is_one_clear_error(tmp_path):
    Trainer(_model(), _loss, _problem(), TrainConfig(steps=2, batch_size=4), tmp_path, progress=False).fit()
    other = torch.nn.Sequential(torch.nn.Linear(5, 3), torch.nn.Tanh(), torch.nn.Linear(3, 2))
    with pytest.raises(GenlabError, match="does not fit"):
        Trainer(other, _loss, _problem(), TrainConfig(steps=4, batch_size=4), tmp_path, progress=False).fit()


def test_read_safetensors_folder_plain_sharded_and_bad(tmp_path):
    from safetensors.torch import save_file

    from genlab.core.train import read_safetensors_folder

    a, b = {"x": torch.ones(2)}, {"y": torch.zeros(3)}
    save_file(a, str(tmp_path / "part-1.safetensors"))
    save_file(b, str(tmp_path / "part-2.safetensors"))
    state = read_safetensors_folder(tmp_path)
    assert set(state) == {"x", "y"} and torch.equal(state["y"], b["y"])
    # a sharded index names the files to read; files it does not name are ignored
    save_file({"stray": torch.ones(1)}, str(tmp_path / "other.safetensors"))
    (tmp_path / "model.safetensors.index.json").write_text(
        json.dumps({"weight_map": {"x": "part-1.safetensors", "y": "part-2.safetensors"}}))
    assert set(read_safetensors_folder(tmp_path)) == {"x", "y"}
    with pytest.raises(GenlabError, match=r"UNet weights: no \.safetensors weights in .*\(expected a UNet\)"):
        read_safetensors_folder(tmp_path / "missing", "UNet weights", "a UNet")
    (tmp_path / "part-2.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(GenlabError, match="part-2.safetensors is corrupt"):
        read_safetensors_folder(tmp_path)
