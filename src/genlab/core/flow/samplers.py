"""ODE samplers with one signature (k-diffusion style): `sample(model, x, ts, extra_args=None, ...)`.

- `model(z, t, **extra_args) -> Prediction`: `t` is a (B,) tensor; any kind of prediction works (build one
  with `Formulation.denoiser(net)`, wrap it with `guidance.guided`).
- `x`: the starting state z at ts[0] (e.g. pure noise eps when ts[0] = 1; scale by b/a-aware rules otherwise).
- `ts`: decreasing times from `grids` (t = 1 noise ... t = 0 data); len(ts) - 1 steps.
Returns a `SampleOutput` with the final z (the sample when ts[-1] = 0), the number of model calls, and
optionally every intermediate state.

- `euler`  dz/dt = u(z, t) (the flow-matching velocity), first order. On rectified flow this is SD3's sampler,
           and it equals DDIM exactly.
- `heun`   Heun's second-order method (trapezoid on u); the last step into t = 0 is an Euler step
           (as in EDM Algorithm 1). space="sigma" integrates dx/dsigma = eps_hat with x = z / a instead
           (EDM's Heun; needs ts[0] < 1 when a_1 = 0).
- `ddim`   deterministic DDIM (eta = 0): z' = a' x0_hat + b' eps_hat; equals Euler in (sigma, x = z/a), i.e.
           sgm's EulerEDMSampler without churn. Matches diffusers' DDIMScheduler step when ts are its timesteps
           (see `grids.discrete`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from genlab.core.flow.prediction import Prediction
from genlab.errors import GenlabError

Model = Callable[..., Prediction]


@dataclass(frozen=True)
class SampleOutput:
    x: torch.Tensor  # the state at ts[-1]
    nfe: int  # number of model evaluations
    trajectory: list[torch.Tensor] | None = None  # states at every ts (when requested)


def _times(ts) -> list[float]:
    ts = [float(t) for t in torch.as_tensor(ts, dtype=torch.float64).flatten()]
    if len(ts) < 2:
        raise GenlabError(f"sampler: need at least 2 times (one step), got {len(ts)}")
    if any(t1 >= t0 for t0, t1 in zip(ts[:-1], ts[1:])):
        raise GenlabError("sampler: times must be strictly decreasing (t = 1 noise -> t = 0 data)")
    return ts


def _call(model: Model, z: torch.Tensor, t: float, extra_args: dict) -> Prediction:
    tb = torch.full((z.shape[0],), t, dtype=z.dtype, device=z.device)
    return model(z, tb, **extra_args)


def _coef(path, t: float, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    tt = torch.tensor(t, dtype=torch.float64)
    return path.a(tt).to(z.device), path.b(tt).to(z.device)


def _loop(step, x, ts, extra_args, callback, progress, return_trajectory, desc):
    ts = _times(ts)
    extra_args = extra_args or {}
    traj = [x] if return_trajectory else None
    nfe = 0
    for i in tqdm(range(len(ts) - 1), disable=not progress, desc=desc, leave=False):
        x, n = step(x, ts[i], ts[i + 1], extra_args)
        nfe += n
        if traj is not None:
            traj.append(x)
        if callback is not None:
            callback({"i": i, "t": ts[i], "t_next": ts[i + 1], "x": x})
    return SampleOutput(x, nfe, traj)


@torch.no_grad()
def euler(
    model: Model,
    x: torch.Tensor,
    ts: Sequence[float] | torch.Tensor,
    extra_args: dict | None = None,
    callback: Callable[[dict], None] | None = None,
    progress: bool = False,
    return_trajectory: bool = False,
    space: str = "t",
) -> SampleOutput:
    """Euler on dz/dt = u (space="t") or on dx/dsigma = eps (space="sigma", identical to `ddim`)."""
    if space == "sigma":
        return ddim(model, x, ts, extra_args, callback, progress, return_trajectory)
    if space != "t":
        raise GenlabError(f"euler: space must be 't' or 'sigma', got {space!r}")

    def step(z, t, t_next, args):
        u = _call(model, z, t, args).velocity
        return z + (t_next - t) * u, 1

    return _loop(step, x, ts, extra_args, callback, progress, return_trajectory, "euler")


@torch.no_grad()
def heun(
    model: Model,
    x: torch.Tensor,
    ts: Sequence[float] | torch.Tensor,
    extra_args: dict | None = None,
    callback: Callable[[dict], None] | None = None,
    progress: bool = False,
    return_trajectory: bool = False,
    space: str = "t",
) -> SampleOutput:
    """Heun (2nd order); Euler for the final step into t = 0."""
    if space not in ("t", "sigma"):
        raise GenlabError(f"heun: space must be 't' or 'sigma', got {space!r}")

    def step_t(z, t, t_next, args):
        u1 = _call(model, z, t, args).velocity
        z_e = z + (t_next - t) * u1
        if t_next == 0.0:
            return z_e, 1
        u2 = _call(model, z_e, t_next, args).velocity
        return z + (t_next - t) * 0.5 * (u1 + u2), 2

    def step_sigma(z, t, t_next, args):
        p1 = _call(model, z, t, args)
        path = p1.path
        a, b = _coef(path, t, z)
        a_n, b_n = _coef(path, t_next, z)
        x0_1, eps_1 = p1.x0, p1.eps
        z_e = (a_n * x0_1.double() + b_n * eps_1.double()).to(z.dtype)
        if t_next == 0.0:
            return z_e, 1
        if float(a) <= 0.0:
            raise GenlabError("heun(space='sigma'): a_t = 0 at the first time; start the grid below t = 1")
        eps_2 = _call(model, z_e, t_next, args).eps
        sigma, sigma_n = b / a, b_n / a_n
        x = z.double() / a + (sigma_n - sigma) * 0.5 * (eps_1.double() + eps_2.double())
        return (a_n * x).to(z.dtype), 2

    step = step_t if space == "t" else step_sigma
    return _loop(step, x, ts, extra_args, callback, progress, return_trajectory, "heun")


@torch.no_grad()
def ddim(
    model: Model,
    x: torch.Tensor,
    ts: Sequence[float] | torch.Tensor,
    extra_args: dict | None = None,
    callback: Callable[[dict], None] | None = None,
    progress: bool = False,
    return_trajectory: bool = False,
) -> SampleOutput:
    """Deterministic DDIM (eta = 0): z' = a(t') x0_hat + b(t') eps_hat."""

    def step(z, t, t_next, args):
        p = _call(model, z, t, args)
        a_n, b_n = _coef(p.path, t_next, z)
        return (a_n * p.x0.double() + b_n * p.eps.double()).to(z.dtype), 1

    return _loop(step, x, ts, extra_args, callback, progress, return_trajectory, "ddim")


SAMPLERS: dict[str, Callable[..., SampleOutput]] = {"euler": euler, "heun": heun, "ddim": ddim}
