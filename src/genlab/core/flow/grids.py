"""Time grids for sampling: decreasing 1-D float64 tensors t_0 > t_1 > ... > t_N = 0 (N steps).

- `uniform(steps, t_max=1, t_min=0)`      linspace(t_max, t_min, steps) then 0 appended when t_min > 0
                                          (SD3 / diffusers FlowMatchEuler use t_min = 1/1000), else
                                          linspace(t_max, 0, steps + 1).
- `shifted(steps, alpha, ...)`            the uniform grid passed through `shift(t, alpha)`.
- `flow_match_euler(steps, shift, T=1000)` diffusers' FlowMatchEulerDiscreteScheduler (the grid of pretrained SD3
                                          checkpoints): shift(linspace(1, shift(1/T), steps)), then 0. The lowest
                                          node is shifted twice, as the scheduler does (its sigma_min is the shifted
                                          training table's end, and set_timesteps shifts again).
- `karras(steps, sigma_min, sigma_max, rho, path)`  Karras et al. (2022) eq. 5 in sigma, mapped to t on `path`.
- `discrete(steps, spacing, path)`        diffusers' "leading" / "trailing" / "linspace" timestep spacing of a
                                          discrete schedule, mapped with t = (n + 1) / T; the final node is
                                          t = 0 (alphabar = 1, diffusers' set_alpha_to_one=True) or
                                          t = 1/T (alphabar_0, set_alpha_to_one=False).

The resolution shift (SD3 section 5.3.2): t_m = alpha t_n / (1 + (alpha - 1) t_n), alpha = sqrt(m / n) for
m and n pixels; it lowers log-SNR by 2 log alpha.
"""

from __future__ import annotations

import math

import torch

from genlab.core.flow.paths import LDMLinearPath, Path
from genlab.errors import GenlabError


def shift(t, alpha: float) -> torch.Tensor:
    """t_m = alpha t / (1 + (alpha - 1) t)."""
    t = torch.as_tensor(t, dtype=torch.float64)
    return alpha * t / (1.0 + (alpha - 1.0) * t)


def shift_alpha(target_pixels: float, base_pixels: float) -> float:
    """alpha = sqrt(m / n) for a target resolution of m pixels (or latent tokens) trained at n."""
    return math.sqrt(target_pixels / base_pixels)


def _check_steps(steps: int) -> None:
    if int(steps) != steps or steps < 1:
        raise GenlabError(f"number of sampling steps must be a positive integer, got {steps!r}")


def uniform(steps: int, t_max: float = 1.0, t_min: float = 0.0) -> torch.Tensor:
    _check_steps(steps)
    if t_min > 0.0:
        ts = torch.linspace(t_max, t_min, steps, dtype=torch.float64)
        return torch.cat([ts, ts.new_zeros(1)])
    return torch.linspace(t_max, 0.0, steps + 1, dtype=torch.float64)


def shifted(steps: int, alpha: float, t_max: float = 1.0, t_min: float = 0.0) -> torch.Tensor:
    return shift(uniform(steps, t_max, t_min), alpha)


def flow_match_euler(steps: int, shift_alpha: float = 3.0, num_train_timesteps: int = 1000) -> torch.Tensor:
    """The time grid of diffusers' FlowMatchEulerDiscreteScheduler(shift=shift_alpha).set_timesteps(steps)."""
    _check_steps(steps)
    t_min = float(shift(1.0 / num_train_timesteps, shift_alpha))
    ts = shift(torch.linspace(1.0, t_min, steps, dtype=torch.float64), shift_alpha)
    return torch.cat([ts, ts.new_zeros(1)])


def karras(
    steps: int, path: Path, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0
) -> torch.Tensor:
    """sigma_i = (s_max^(1/rho) + i/(N-1) (s_min^(1/rho) - s_max^(1/rho)))^rho, i < N, then sigma = 0."""
    _check_steps(steps)
    ramp = torch.linspace(0, 1, steps, dtype=torch.float64)
    inv_min, inv_max = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    sigmas = (inv_max + ramp * (inv_min - inv_max)) ** rho
    return torch.cat([path.t_from_sigma(sigmas), torch.zeros(1, dtype=torch.float64)])


def discrete(
    steps: int,
    path: LDMLinearPath,
    spacing: str = "leading",
    steps_offset: int = 0,
    set_alpha_to_one: bool = True,
) -> torch.Tensor:
    """diffusers' DDIM/DDPM timestep spacings on a discrete schedule, as t values."""
    _check_steps(steps)
    T = path.num_steps
    if steps > T:
        raise GenlabError(f"discrete grid: steps must be <= {T} (the schedule's length), got {steps}")
    if spacing == "leading":
        n = torch.arange(steps - 1, -1, -1, dtype=torch.float64) * (T // steps) + steps_offset
    elif spacing == "trailing":
        n = torch.round(torch.arange(T, 0, -T / steps, dtype=torch.float64)) - 1
    elif spacing == "linspace":
        n = torch.round(torch.linspace(0, T - 1, steps, dtype=torch.float64)).flip(0)
    else:
        raise GenlabError(f"discrete grid: spacing must be 'leading', 'trailing' or 'linspace', got {spacing!r}")
    final = torch.zeros(1, dtype=torch.float64) if set_alpha_to_one else torch.full((1,), 1.0 / T, dtype=torch.float64)
    return torch.cat([path.timestep_to_t(n), final])
