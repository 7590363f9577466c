"""Peak memory of one t2i training step per setting (fp32 / bf16, gradient checkpointing, accumulation).

Each setting runs in its own process: build an MM-DiT (depth 8, hidden 512, 32x32x4 latents, batch 16),
run 2 training steps through `genlab.core.train.Trainer`, print the process's peak RSS above the
after-build baseline. Parameter + optimizer bytes per rank under DDP / FSDP2 are printed by
`pytest -m slow -s tests/systems/t2i/test_train_parallel.py`.

    python benchmarks/t2i_train_memory.py
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from dataclasses import replace

SETTINGS = {
    "fp32": {},
    "fp32 + gradient checkpointing": {"ckpt": True},
    "fp32 + grad_accum 4": {"grad_accum": 4},
    "bf16 autocast": {"precision": "bf16"},
    "bf16 + gradient checkpointing": {"precision": "bf16", "ckpt": True},
}


def one(setting: dict) -> dict:
    import torch

    from genlab.core.train import TrainConfig, Trainer
    from genlab.systems.t2i import config as presets
    from genlab.systems.t2i.pipeline import build_model, default_formulation
    from genlab.systems.t2i.train import make_loss_fn

    torch.set_num_threads(1)
    cfg = presets.tiny()
    model_cfg = replace(presets.mmdit_depth(8, hidden_size=512, num_heads=8, in_channels=4, out_channels=4,
                                            pos_embed_max_size=16), context_dim=32, pooled_dim=32)
    cfg = replace(cfg, model=model_cfg, image_size=(32, 32))
    tc = TrainConfig(steps=2, batch_size=16, grad_accum=setting.get("grad_accum", 1),
                     precision=setting.get("precision", "fp32"))
    model = build_model(cfg)
    model.backbone.gradient_checkpointing = bool(setting.get("ckpt"))
    model.set_captions(["a photo"])
    data = {"x": torch.randn(32, 4, 32, 32), "caption": torch.zeros(32, dtype=torch.long)}
    trainer = Trainer(model, make_loss_fn(default_formulation(cfg), cfg, 1), data, tc, progress=False)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    trainer.fit()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"params_M": sum(p.numel() for p in model.parameters()) / 1e6, "peak_above_build_MiB": (peak - base) / 1024}


if __name__ == "__main__":
    if len(sys.argv) > 1:
        print(json.dumps(one(json.loads(sys.argv[1]))))
        sys.exit(0)
    print("| setting | parameters | peak RSS of 2 steps above the built model |")
    print("|---|---|---|")
    for name, setting in SETTINGS.items():
        out = subprocess.run([sys.executable, __file__, json.dumps(setting)], capture_output=True, text=True, check=True)
        res = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"| {name} | {res['params_M']:.1f} M | {res['peak_above_build_MiB']:.0f} MiB |", flush=True)
