"""Guidance over a chain of conditions with broadcastable scales, in one batched forward pass.

Given conditions c_0 (usually the unconditional one), c_1, ..., c_K and scales s_1..s_K:

    p = p(c_0) + sum_k s_k (p(c_k) - p(c_{k-1}))

- K = 1 is classifier-free guidance: p_u + s (p_c - p_u); s = 1 gives the conditional prediction.
- Two-scale scene + person guidance (insertion): conditions [(0, 0), (S, 0), (S, P)], scales [s1, s2]:
  eps(0,0) + s1 (eps(S,0) - eps(0,0)) + s2 (eps(S,P) - eps(S,0)).
- A scale may be a tensor broadcastable against the prediction, e.g. shape (1, T, 1, 1, 1) for SVD's
  per-frame linear guidance (`linear_frame_scales`).
Combining any kind of prediction (x0, eps, v, velocity) gives the same result: conversions are affine in
the prediction with the same coefficients for every condition.
Each condition is a dict of keyword arguments for the model; tensors are concatenated along the batch,
other values must be equal across conditions. When every scale is the Python number 1, only the last
condition is evaluated.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch

from genlab.core.flow.prediction import Prediction
from genlab.errors import GenlabError


def _concat_conditions(conds: Sequence[Mapping]) -> dict:
    keys = set(conds[0])
    for i, c in enumerate(conds[1:], 1):
        if set(c) != keys:
            raise GenlabError(f"guidance: condition {i} has keys {sorted(c)}, expected {sorted(keys)}")
    out = {}
    for k in keys:
        vals = [c[k] for c in conds]
        if all(isinstance(v, torch.Tensor) for v in vals):
            out[k] = torch.cat(vals, dim=0)
        elif any(isinstance(v, torch.Tensor) for v in vals):
            raise GenlabError(f"guidance: argument {k!r} is a tensor in some conditions only")
        else:
            if any(v != vals[0] for v in vals[1:]):
                raise GenlabError(f"guidance: non-tensor argument {k!r} differs between conditions")
            out[k] = vals[0]
    return out


def combine(values: Sequence[torch.Tensor], scales: Sequence[float | torch.Tensor]) -> torch.Tensor:
    """p_0 + sum_k s_k (p_k - p_{k-1})."""
    if len(values) != len(scales) + 1:
        raise GenlabError(f"guidance: {len(values)} conditions need {len(values) - 1} scales, got {len(scales)}")
    out = values[0]
    for k, s in enumerate(scales, 1):
        if isinstance(s, torch.Tensor):
            s = s.to(device=values[k].device, dtype=values[k].dtype)
        out = out + s * (values[k] - values[k - 1])
    return out


def guided(
    model: Callable[..., Prediction],
    conds: Sequence[Mapping],
    scales: Sequence[float | torch.Tensor],
) -> Callable[..., Prediction]:
    """Wrap `model(z, t, **cond) -> Prediction` into a guided `model(z, t) -> Prediction`."""
    conds = list(conds)
    scales = list(scales)
    if len(conds) < 2 or len(conds) != len(scales) + 1:
        raise GenlabError(f"guidance: need K+1 >= 2 conditions and K scales, got {len(conds)} and {len(scales)}")
    only_last = all(not isinstance(s, torch.Tensor) and s == 1 for s in scales)
    batched = _concat_conditions(conds)

    def guided_model(z: torch.Tensor, t: torch.Tensor, **extra) -> Prediction:
        if only_last:
            return model(z, t, **conds[-1], **extra)
        n = len(conds)
        t = torch.as_tensor(t, device=z.device)
        tb = t.repeat(n) if t.ndim else t
        pred = model(torch.cat([z] * n, dim=0), tb, **batched, **extra)
        values = pred.value.chunk(n, dim=0)
        b = z.shape[0]
        t_out = pred.t[:b] if pred.t.ndim else pred.t
        return Prediction(pred.kind, combine(values, scales), z, t_out, pred.path)

    return guided_model


def cfg(model: Callable[..., Prediction], uncond: Mapping, cond: Mapping, scale: float | torch.Tensor):
    """Classifier-free guidance: p_u + scale (p_c - p_u)."""
    return guided(model, [uncond, cond], [scale])


def linear_frame_scales(num_frames: int, min_scale: float, max_scale: float, frame_dim: int = 1, ndim: int = 5):
    """SVD's per-frame guidance scales linspace(min, max, T), shaped to broadcast on dimension `frame_dim`."""
    s = torch.linspace(min_scale, max_scale, num_frames)
    shape = [1] * ndim
    shape[frame_dim] = num_frames
    return s.reshape(shape)
