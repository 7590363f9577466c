"""Run by tests/core/test_train.py under torchrun: a tiny regression trained with DDP (gloo).

argv: out_dir batch_size steps. Writes rank{r}.json with the dataset indices this rank saw
and, on rank 0, the final parameters (through the Trainer's checkpoint).
"""

import json
import sys
from pathlib import Path

import torch

from genlab.core.train import TrainConfig, Trainer, init_distributed, shutdown_distributed


def run(out: Path, batch: int, steps: int) -> None:
    info = init_distributed("cpu")
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 6, generator=g)
    y = torch.tanh(x @ torch.randn(6, 3, generator=g))
    torch.manual_seed(1)
    model = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.GELU(), torch.nn.Linear(16, 3))
    seen = []

    def loss_fn(m, b, ctx):
        seen.append(ctx.indices.tolist())
        xb, yb = b
        return ((m(xb + 0.1 * ctx.randn(6)) - yb) ** 2).mean()

    cfg = TrainConfig(steps=steps, batch_size=batch, lr=1e-2, warmup_steps=2, grad_clip=0.5, log_every=1)
    Trainer(model, loss_fn, (x, y), cfg, out, progress=False).fit()
    (out / f"rank{info.rank}.json").write_text(json.dumps(seen))
    shutdown_distributed()


if __name__ == "__main__":
    torch.set_num_threads(1)
    run(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))
