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

Guided terms (`guided_terms`): p = p(base) + sum_k s_k (p(cond_k) - p(ref_k)), each term active on a
time window only. CFG is the term (cond, uncond) on base uncond; skip-layer guidance (SD3.5,
`SkipLayerGuidance`) is the term (cond, cond with some transformer blocks left out) on the steps of a
window. Conditions whose non-tensor arguments differ (`skip_layers`) run in separate forward passes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

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


@dataclass(frozen=True)
class Term:
    """scale (p(cond) - p(ref)), added while t_range[0] <= t <= t_range[1] (always when t_range is None).
    Conditions are matched by identity: pass the same dict object to share one evaluation per step."""

    cond: Mapping
    ref: Mapping
    scale: float | torch.Tensor
    t_range: tuple[float, float] | None = None

    def active(self, t: float) -> bool:
        return self.t_range is None or self.t_range[0] <= t <= self.t_range[1]


def _signature(cond: Mapping) -> tuple:
    """Conditions with equal signatures can share one batched forward pass."""
    return tuple(sorted((k, None if isinstance(v, torch.Tensor) else repr(v)) for k, v in cond.items()))


def guided_terms(model: Callable[..., Prediction], base: Mapping, terms: Sequence[Term]) -> Callable[..., Prediction]:
    """Wrap `model(z, t, **cond) -> Prediction` into `model(z, t) -> p(base) + sum_k s_k (p(cond_k) - p(ref_k))`
    over the terms active at t, added in the given order. Each distinct condition (by identity) is evaluated
    once per call; those with the same keys and non-tensor arguments in one batched pass (in order of first
    appearance), the others (e.g. `skip_layers=(7, 8, 9)`) in passes of their own."""
    terms = list(terms)

    def guided_model(z: torch.Tensor, t: torch.Tensor, **extra) -> Prediction:
        t = torch.as_tensor(t, device=z.device)
        active = [term for term in terms if term.active(float(t.reshape(-1)[0]))]
        conds: dict[int, Mapping] = {id(base): base}
        for term in active:
            conds.setdefault(id(term.cond), term.cond)
            conds.setdefault(id(term.ref), term.ref)
        groups: dict[tuple, list[int]] = {}
        for key, cond in conds.items():
            groups.setdefault(_signature(cond), []).append(key)
        values: dict[int, torch.Tensor] = {}
        for keys in groups.values():
            n = len(keys)
            batched = _concat_conditions([conds[k] for k in keys])
            pred = model(torch.cat([z] * n, dim=0), t.repeat(n) if t.ndim else t, **batched, **extra)
            values.update(zip(keys, pred.value.chunk(n, dim=0)))
        out = values[id(base)]
        for term in active:
            s = term.scale
            if isinstance(s, torch.Tensor):
                s = s.to(device=out.device, dtype=out.dtype)
            out = out + s * (values[id(term.cond)] - values[id(term.ref)])
        b = z.shape[0]
        return Prediction(pred.kind, out, z, pred.t[:b] if pred.t.ndim else pred.t, pred.path)

    return guided_model


def step_window(ts, start: float, stop: float) -> tuple[float, float]:
    """The time window holding the steps i (0-based, of the N steps of grid `ts`) with start N < i < stop N,
    diffusers' StableDiffusion3Pipeline rule for skip-layer guidance (strict on both sides: with start 0.01
    step 0 never has it). Bounds are midpoints between grid times, so float32 rounding of t cannot move a
    step in or out; no qualifying step gives an empty window."""
    ts = [float(v) for v in torch.as_tensor(ts, dtype=torch.float64).flatten()]
    n = len(ts) - 1
    steps = [i for i in range(n) if n * start < i < n * stop]
    if not steps:
        return (math.inf, -math.inf)
    first, last = steps[0], steps[-1]
    hi = math.inf if first == 0 else (ts[first - 1] + ts[first]) / 2
    return ((ts[last] + ts[last + 1]) / 2, hi)


@dataclass(frozen=True)
class SkipLayerGuidance:
    """Skip-layer guidance (SD3.5; Stability's reference and diffusers' StableDiffusion3Pipeline):
    scale (p(c) - p(c with transformer blocks `layers` left out)), added to CFG on the steps i with
    start N < i < stop N. The model must take `skip_layers=`. Defaults are diffusers'; Stability
    recommends layers (7, 8, 9), scale 2.5, start 0.01, stop 0.2 with CFG 4 for SD3.5-Medium."""

    layers: tuple[int, ...]
    scale: float = 2.8
    start: float = 0.01
    stop: float = 0.2

    def __post_init__(self):
        if not self.layers:
            raise GenlabError("skip-layer guidance: give at least one layer index")
        if not 0.0 <= self.start <= self.stop <= 1.0:
            raise GenlabError(f"skip-layer guidance: expected 0 <= start <= stop <= 1, got start {self.start}, "
                              f"stop {self.stop}")
        if not math.isfinite(self.scale):
            raise GenlabError(f"skip-layer guidance: scale must be a finite number, got {self.scale}")

    def term(self, cond: Mapping, ts) -> Term:
        """The guided term for condition `cond` (the same dict object as CFG's) on time grid `ts`."""
        skipped = {**cond, "skip_layers": tuple(self.layers)}
        return Term(cond, skipped, self.scale, step_window(ts, self.start, self.stop))


def cfg(model: Callable[..., Prediction], uncond: Mapping, cond: Mapping, scale: float | torch.Tensor):
    """Classifier-free guidance: p_u + scale (p_c - p_u)."""
    return guided(model, [uncond, cond], [scale])


def linear_frame_scales(num_frames: int, min_scale: float, max_scale: float, frame_dim: int = 1, ndim: int = 5):
    """SVD's per-frame guidance scales linspace(min, max, T), shaped to broadcast on dimension `frame_dim`."""
    s = torch.linspace(min_scale, max_scale, num_frames)
    shape = [1] * ndim
    shape[frame_dim] = num_frames
    return s.reshape(shape)
