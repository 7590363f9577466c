"""Training timestep densities pi(t) on (0, 1) (SD3 section 3.1), each with `sample`, `icdf` and `pdf`.

Sampling t ~ pi and uniform t weighted by pi(t) give the same expected loss (SD3's w^pi identity);
`pdf` makes the second form available (e.g. diffusers applies CosMap as a weight).

- `Uniform`            pi = 1                                          (SD3 "rf")
- `LogitNormal(m, s)`  t = sigmoid(u), u ~ N(m, s^2);  pi = exp(-(logit t - m)^2 / 2s^2) / (s sqrt(2 pi) t (1-t))
                       m > 0 favours noise (t -> 1), m < 0 favours data.  (SD3 "rf/lognorm(m, s)")
- `Mode(s)`            t = f(u) = 1 - u - s (cos^2(pi u / 2) - 1 + u), u ~ U(0,1); pi = 1 / |f'(f^-1(t))|,
                       defined for -1 <= s <= 2/(pi - 2); s = 0 is uniform.  (SD3 "rf/mode(s)")
- `CosMap`             t = 1 - 1 / (tan(pi u / 2) + 1); pi = 2 / (pi - 2 pi t + 2 pi t^2)  (SD3 "rf/cosmap")
- `DiscreteUniform(T)` t in {1/T, ..., 1}: uniform over the T steps of a discrete schedule (LDM's "eps/linear");
                       `pdf` is the density of the continuous relaxation (1).

`sample(n, generator=None, device=None, stratified=False)`: `stratified` draws one u per 1/n stratum (then
shuffles), a cheap variance reduction (minRF).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from genlab.errors import GenlabError


class TimestepDensity:
    """Base class: subclasses implement `icdf` (quantile function) and `pdf` on float64 tensors."""

    name: str = "density"

    def icdf(self, u: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def pdf(self, t) -> torch.Tensor:
        raise NotImplementedError

    def sample(
        self,
        n: int,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
        stratified: bool = False,
    ) -> torch.Tensor:
        if stratified:
            u = (torch.arange(n, dtype=torch.float64) + torch.rand(n, generator=generator, dtype=torch.float64)) / n
            u = u[torch.randperm(n, generator=generator)]
        else:
            u = torch.rand(n, generator=generator, dtype=torch.float64)
        return self.icdf(u).to(dtype=dtype, device=device)


@dataclass(frozen=True)
class Uniform(TimestepDensity):
    name: str = "uniform"

    def icdf(self, u):
        return torch.as_tensor(u, dtype=torch.float64)

    def pdf(self, t):
        t = torch.as_tensor(t, dtype=torch.float64)
        return ((t >= 0) & (t <= 1)).to(torch.float64)


@dataclass(frozen=True)
class LogitNormal(TimestepDensity):
    m: float = 0.0
    s: float = 1.0
    name: str = "lognorm"

    def __post_init__(self):
        if self.s <= 0:
            raise GenlabError(f"LogitNormal: s must be > 0, got {self.s}")

    def icdf(self, u):
        u = torch.as_tensor(u, dtype=torch.float64)
        return torch.sigmoid(self.m + self.s * torch.special.ndtri(u))

    def pdf(self, t):
        t = torch.as_tensor(t, dtype=torch.float64)
        inside = (t > 0) & (t < 1)
        tc = t.clamp(1e-300, 1 - 1e-16)
        logit = torch.log(tc) - torch.log1p(-tc)
        dens = torch.exp(-0.5 * ((logit - self.m) / self.s) ** 2) / (self.s * math.sqrt(2 * math.pi) * tc * (1 - tc))
        return torch.where(inside, dens, torch.zeros_like(dens))


@dataclass(frozen=True)
class Mode(TimestepDensity):
    """SD3's "mode sampling with heavy tails"; s > 0 concentrates on the midpoint t = 0.5."""

    s: float = 1.29
    name: str = "mode"

    def __post_init__(self):
        if not (-1.0 <= self.s <= 2.0 / (math.pi - 2.0)):
            raise GenlabError(f"Mode: s must lie in [-1, 2/(pi-2) = 1.752] for a monotone map, got {self.s}")

    def f(self, u):
        """t = f_mode(u), decreasing from f(0) = 1 to f(1) = 0."""
        u = torch.as_tensor(u, dtype=torch.float64)
        return 1.0 - u - self.s * (torch.cos(0.5 * math.pi * u) ** 2 - 1.0 + u)

    def df(self, u):
        u = torch.as_tensor(u, dtype=torch.float64)
        return -1.0 - self.s + 0.5 * math.pi * self.s * torch.sin(math.pi * u)

    def f_inverse(self, t):
        t = torch.as_tensor(t, dtype=torch.float64)
        lo, hi = torch.zeros_like(t), torch.ones_like(t)
        for _ in range(60):  # bisection on a decreasing function: 2^-60 precision
            mid = 0.5 * (lo + hi)
            above = self.f(mid) > t
            lo = torch.where(above, mid, lo)
            hi = torch.where(above, hi, mid)
        return 0.5 * (lo + hi)

    def icdf(self, u):
        # P(t <= x) = P(f(U) <= x) = P(U >= f^-1(x)) = 1 - f^-1(x)  =>  quantile(u) = f(1 - u)
        return self.f(1.0 - torch.as_tensor(u, dtype=torch.float64))

    def pdf(self, t):
        t = torch.as_tensor(t, dtype=torch.float64)
        dens = 1.0 / self.df(self.f_inverse(t.clamp(0.0, 1.0))).abs()
        return torch.where((t >= 0) & (t <= 1), dens, torch.zeros_like(dens))


@dataclass(frozen=True)
class CosMap(TimestepDensity):
    """Timesteps whose log-SNR matches the cosine schedule's under uniform u."""

    name: str = "cosmap"

    def icdf(self, u):
        u = torch.as_tensor(u, dtype=torch.float64)
        return 1.0 - 1.0 / (torch.tan(0.5 * math.pi * u) + 1.0)

    def pdf(self, t):
        t = torch.as_tensor(t, dtype=torch.float64)
        dens = 2.0 / (math.pi - 2.0 * math.pi * t + 2.0 * math.pi * t**2)
        return torch.where((t >= 0) & (t <= 1), dens, torch.zeros_like(dens))


@dataclass(frozen=True)
class DiscreteUniform(TimestepDensity):
    """Uniform over the nodes t = (n + 1) / T, n = 0..T-1, of a discrete schedule (diffusers' timestep n)."""

    num_steps: int = 1000
    name: str = "discrete"

    def icdf(self, u):
        u = torch.as_tensor(u, dtype=torch.float64)
        n = torch.floor(u * self.num_steps).clamp(0, self.num_steps - 1)
        return (n + 1.0) / self.num_steps

    def pdf(self, t):
        return Uniform().pdf(t)
