"""Run by torchrun from test_train_parallel.py (or directly for one process): 5 steps of the tiny MM-DiT on
the digits with DDP or FSDP2, prints this rank's parameter + optimizer bytes, rank 0 saves the weights."""

from __future__ import annotations

import sys
from dataclasses import replace

import torch

from genlab.core.train import Trainer, init_distributed, local_state_bytes, save_weights, shutdown_distributed
from genlab.systems.t2i import config as presets
from genlab.systems.t2i.data import load_digits
from genlab.systems.t2i.pipeline import build_model, default_formulation
from genlab.systems.t2i.train import caption_table, make_loss_fn


def main(parallel: str, batch: int, out: str, accum: int = 1) -> None:
    torch.set_num_threads(1)
    info = init_distributed("cpu")
    cfg = presets.tiny()
    cfg = replace(cfg, train=replace(cfg.train, steps=5, batch_size=batch, parallel=parallel, grad_accum=accum,
                                     warmup_steps=2, lr_schedule="cosine"))
    images, _, captions = load_digits()
    torch.manual_seed(0)
    model = build_model(cfg)
    uniq, ids = caption_table(captions[:256])
    model.set_captions(uniq)
    loss_fn = make_loss_fn(default_formulation(cfg), cfg, model.text.num_encoders)
    trainer = Trainer(model, loss_fn, {"x": images[:256], "caption": ids}, cfg.train, None, progress=False)
    result = trainer.fit()
    print(f"rank {info.rank} {parallel} bytes {local_state_bytes(trainer.model, trainer.optimizer)}", flush=True)
    if info.is_main:
        save_weights(out, result.model.state_dict())
    shutdown_distributed()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]) if len(sys.argv) > 4 else 1)
