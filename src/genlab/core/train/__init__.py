"""Training loop helper, EMA, checkpoints (safetensors + JSON config), DDP."""
