"""Training loop helper, EMA, checkpoints (safetensors + JSON config), DDP.

API (everything importable from `genlab.core.train`):

    from genlab.core.train import TrainConfig, Trainer, train, EMA, save_weights, load_weights

    def loss_fn(model, batch, ctx):               # ctx: StepContext
        x, y = batch                              # a slice of `data` (tensors/dict/tuple/dataset)
        noise = ctx.randn(*x.shape[1:])           # per-sample noise, same for 1 or N processes
        t = ctx.rand()                            # (local_batch,)
        loss = ((model(x + noise, t, y) - noise) ** 2).mean()
        return loss                               # or (loss, {"extra": float})

    cfg = TrainConfig(steps=500, batch_size=64, lr=1e-3, warmup_steps=50, grad_clip=1.0,
                      ema_decay=0.999, checkpoint_every=100, precision="fp32", seed=0)
    result = Trainer(model, loss_fn, data, cfg, out_dir="runs/x", config=model_cfg).fit()
    result.model, result.ema.model, result.history    # trained model, its EMA copy, loss records

* `Trainer.fit()` resumes from the newest `out_dir/checkpoints/step_XXXXXXXX.safetensors`
  (model + EMA + optimizer + step + history in ONE file, written atomically) and ends
  bit-identical to an uninterrupted run. Only the model's forward is run through DDP, so call
  `model(...)` in loss_fn; use `ctx.module` for attributes of the unwrapped model.
* Data parallel: launch with `torchrun --nproc_per_node N ...` and call
  `init_distributed(device)` before building the Trainer; the model is wrapped in DDP (gloo on
  CPU, nccl on CUDA), each rank takes a disjoint block of the global batch, rank 0 writes files.
  The model is always saved unwrapped, so an FSDP wrapper can slot into the same place.
* FSDP2: `TrainConfig(parallel="fsdp")` under torchrun shards the model's `fsdp_units()` (default: each
  nn.ModuleList entry) and the root with `torch.distributed.fsdp.fully_shard` (gloo on CPU works);
  checkpoints hold full tensors.
* `grad_accum=k` splits each step's batch into k micro-batches (same draws, same maths, less memory);
  `sampler=BucketSampler(bucket_of_each_sample)` keeps every global batch inside one bucket.
* Warm-up: linear over `warmup_steps`, then constant, cosine or linear decay to `min_lr_ratio * lr`
  (`lr_schedule`); clipping: global norm `grad_clip`; mixed precision:
  `precision="bf16"` (autocast, CPU or CUDA) or `"fp16"` (CUDA + GradScaler).
* `EMA(model, decay)`: `.update(model)`, `.model` is the averaged copy.
* Weights for pipelines: `save_weights(path, state_dict, config)` -> `path` + `path.json`;
  `load_weights(path)` -> (state_dict, config dict); `read_safetensors_folder(folder)` -> one state dict
  of a local (sharded) diffusers / transformers folder; `config_to_dict` / `config_from_dict` turn
  frozen dataclass configs into JSON and back. Missing/corrupt files raise GenlabError.
"""

from genlab.core.train.checkpoint import (
    config_from_dict,
    config_to_dict,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    load_weights,
    read_safetensors_folder,
    save_checkpoint,
    save_weights,
)
from genlab.core.train.distributed import (
    DistInfo,
    all_reduce_mean,
    barrier,
    dist_info,
    init_distributed,
    shutdown_distributed,
)
from genlab.core.train.ema import EMA
from genlab.core.train.loop import (
    BucketSampler,
    StepContext,
    TrainConfig,
    Trainer,
    TrainResult,
    default_optimizer,
    local_state_bytes,
    lr_at,
    shard_model,
    train,
)

__all__ = [
    "EMA", "BucketSampler", "DistInfo", "local_state_bytes", "lr_at", "shard_model", "StepContext", "TrainConfig", "TrainResult", "Trainer", "all_reduce_mean", "barrier",
    "config_from_dict", "config_to_dict", "default_optimizer", "dist_info", "init_distributed", "shutdown_distributed",
    "latest_checkpoint", "list_checkpoints", "load_checkpoint", "load_weights", "read_safetensors_folder",
    "save_checkpoint", "save_weights", "train",
]
