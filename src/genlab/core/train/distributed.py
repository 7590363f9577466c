"""torch.distributed set-up for `torchrun` (gloo on CPU, nccl on CUDA) and small helpers."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str | torch.device = "cpu") -> DistInfo:
    """Join the process group described by torchrun's environment (RANK, WORLD_SIZE, ...).

    Returns DistInfo(0, 1, 0) and does nothing when not launched by torchrun. Backend: nccl for
    CUDA devices, gloo otherwise. Calling it twice is harmless.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return dist_info()
    if not dist.is_initialized():
        backend = "nccl" if torch.device(device).type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
    return dist_info()


def shutdown_distributed() -> None:
    """Leave the process group (after a barrier) if one was joined. Exiting with a live gloo group can
    abort a rank at interpreter teardown ("terminate called without an active exception")."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def dist_info() -> DistInfo:
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    return DistInfo()


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def all_reduce_mean(x: torch.Tensor) -> torch.Tensor:
    """Mean of a tensor over ranks (a copy); identity when not distributed."""
    if not (dist.is_available() and dist.is_initialized()):
        return x
    y = x.detach().clone()
    dist.all_reduce(y)
    return y / dist.get_world_size()
