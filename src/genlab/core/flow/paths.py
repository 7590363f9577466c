"""Probability paths z_t = a_t x0 + b_t eps (t = 0 data, t = 1 noise).

A path is a pair of scalar functions (a_t, b_t) with their time derivatives. Everything else
(log-SNR, sigma = b/a, conversions between predictions, samplers) is derived from them, following
SD3 section 2 (after Kingma & Gao 2023):

    lambda_t = log(a_t^2 / b_t^2)                      (log signal-to-noise ratio)
    sigma_t  = b_t / a_t   = exp(-lambda_t / 2)        (the EDM / VE noise level of x = z / a)

Paths here:
- `RectifiedFlowPath`  a = 1 - t, b = t                          (SD3 "rf")
- `CosinePath`         a = cos(pi t / 2), b = sin(pi t / 2)       (SD3 "eps/cos", "v/cos")
- `LDMLinearPath`      the discrete 1000-step "scaled linear" DDPM schedule of LDM / SD
                       (betas = linspace(sqrt(0.00085), sqrt(0.012), 1000)^2), made continuous: t = (n+1)/T
                       is exactly diffusers' timestep n, t = 0 is clean data, log(alphabar) is linear
                       between the nodes. b = sqrt(1 - a^2).
- `EDMPath`            variance-preserving form of EDM's VE process: sigma(t) = exp(P_m + P_s Phi^-1(t)),
                       a = 1/sqrt(1+sigma^2), b = sigma/sqrt(1+sigma^2). Uniform t then gives EDM's
                       log-normal training sigmas, and lambda_t ~ N(-2 P_m, (2 P_s)^2) (SD3 "edm(P_m, P_s)").
                       z_t is EDM's x = x0 + sigma eps divided by sqrt(1 + sigma^2) (= c_in x for sigma_data = 1).

All functions accept a tensor `t` of any shape and return a tensor of the same shape, dtype and device;
they compute in float64 internally.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import torch

_EPS = 1e-12


def _f64(t) -> torch.Tensor:
    t = torch.as_tensor(t)
    return t.to(torch.float64)


def _out(value: torch.Tensor, like) -> torch.Tensor:
    like = torch.as_tensor(like)
    dtype = like.dtype if like.is_floating_point() else torch.get_default_dtype()
    return value.to(dtype=dtype, device=like.device)


class Path:
    """Base class: subclasses implement `_a`, `_b`, `_da`, `_db` on float64 tensors."""

    name: str = "path"

    # --- subclass hooks (float64 in, float64 out) ---
    def _a(self, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _b(self, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _da(self, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _db(self, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _t_from_sigma(self, sigma: torch.Tensor) -> torch.Tensor:
        """Default: bisection on the monotone map t -> sigma_t (subclasses override when closed form)."""
        lo = torch.zeros_like(sigma)
        hi = torch.ones_like(sigma)
        for _ in range(64):
            mid = 0.5 * (lo + hi)
            below = self._sigma(mid) < sigma
            lo = torch.where(below, mid, lo)
            hi = torch.where(below, hi, mid)
        return 0.5 * (lo + hi)

    def _sigma(self, t: torch.Tensor) -> torch.Tensor:
        return self._b(t) / self._a(t).clamp_min(0.0)

    # --- public API ---
    def a(self, t) -> torch.Tensor:
        """Signal coefficient a_t (a_0 = 1)."""
        return _out(self._a(_f64(t)), t)

    def b(self, t) -> torch.Tensor:
        """Noise coefficient b_t (b_0 = 0)."""
        return _out(self._b(_f64(t)), t)

    def da(self, t) -> torch.Tensor:
        """d a_t / dt."""
        return _out(self._da(_f64(t)), t)

    def db(self, t) -> torch.Tensor:
        """d b_t / dt."""
        return _out(self._db(_f64(t)), t)

    def coefficients(self, t) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(a, b, da, db) at t, float64 (for conversions that must not lose precision)."""
        t = _f64(t)
        return self._a(t), self._b(t), self._da(t), self._db(t)

    def logsnr(self, t) -> torch.Tensor:
        """lambda_t = log(a_t^2 / b_t^2)."""
        t64 = _f64(t)
        return _out(2.0 * (torch.log(self._a(t64)) - torch.log(self._b(t64))), t)

    def dlogsnr(self, t) -> torch.Tensor:
        """lambda'_t = 2 (a'_t / a_t - b'_t / b_t)."""
        t64 = _f64(t)
        return _out(2.0 * (self._da(t64) / self._a(t64) - self._db(t64) / self._b(t64)), t)

    def sigma(self, t) -> torch.Tensor:
        """sigma_t = b_t / a_t (inf at a_t = 0)."""
        return _out(self._sigma(_f64(t)), t)

    def t_from_sigma(self, sigma) -> torch.Tensor:
        """Inverse of `sigma` (clamped to the path's range)."""
        return _out(self._t_from_sigma(_f64(sigma)), sigma)

    def t_from_logsnr(self, logsnr) -> torch.Tensor:
        return _out(self._t_from_sigma(torch.exp(-0.5 * _f64(logsnr))), logsnr)


@dataclass(frozen=True)
class RectifiedFlowPath(Path):
    """a = 1 - t, b = t: straight lines from data to noise (SD3 "rf"). Velocity u = eps - x0."""

    name: str = "rf"

    def _a(self, t):
        return 1.0 - t

    def _b(self, t):
        return t

    def _da(self, t):
        return -torch.ones_like(t)

    def _db(self, t):
        return torch.ones_like(t)

    def _t_from_sigma(self, sigma):
        return torch.where(torch.isinf(sigma), torch.ones_like(sigma), sigma / (1.0 + sigma))


@dataclass(frozen=True)
class CosinePath(Path):
    """a = cos(pi t/2), b = sin(pi t/2) (variance preserving; SD3 "cos")."""

    name: str = "cos"

    def _a(self, t):
        # cos(pi/2) is 6e-17 in floating point; pin the endpoint to the exact 0.
        return torch.where(t >= 1.0, torch.zeros_like(t), torch.cos(0.5 * math.pi * t))

    def _b(self, t):
        return torch.sin(0.5 * math.pi * t)

    def _da(self, t):
        return -0.5 * math.pi * torch.sin(0.5 * math.pi * t)

    def _db(self, t):
        return 0.5 * math.pi * torch.cos(0.5 * math.pi * t)

    def _t_from_sigma(self, sigma):
        return torch.atan(sigma) * (2.0 / math.pi)


@dataclass(frozen=True)
class LDMLinearPath(Path):
    """LDM / Stable Diffusion discrete schedule ("scaled_linear" betas), continuous in t.

    alphabar_n = prod_{s<=n} (1 - beta_s), beta = linspace(sqrt(beta_start), sqrt(beta_end), T)^2.
    Node t = (n + 1) / T carries alphabar_n (diffusers' timestep n); t = 0 carries alphabar = 1.
    log(alphabar) is piecewise linear in t between nodes. a = sqrt(alphabar), b = sqrt(1 - alphabar).
    Note a_1 = sqrt(alphabar_{T-1}) ~ 0.068 > 0: this schedule never reaches pure noise (as in SD).
    """

    num_steps: int = 1000
    beta_start: float = 0.00085
    beta_end: float = 0.012
    name: str = "linear"

    @cached_property
    def log_alphabar(self) -> torch.Tensor:
        """log alphabar at the T + 1 nodes t = 0, 1/T, ..., 1 (float64, CPU)."""
        betas = torch.linspace(self.beta_start**0.5, self.beta_end**0.5, self.num_steps, dtype=torch.float64) ** 2
        log_ab = torch.cumsum(torch.log1p(-betas), dim=0)
        return torch.cat([torch.zeros(1, dtype=torch.float64), log_ab])

    def alphas_cumprod(self) -> torch.Tensor:
        """diffusers' `alphas_cumprod` (index n = timestep n), float64."""
        return torch.exp(self.log_alphabar[1:])

    def timestep_to_t(self, n) -> torch.Tensor:
        """diffusers' discrete timestep n -> t = (n + 1) / T (n = -1 -> t = 0, clean data)."""
        return (torch.as_tensor(n, dtype=torch.float64) + 1.0) / self.num_steps

    def t_to_timestep(self, t) -> torch.Tensor:
        """t -> continuous timestep index T t - 1 (the network's time input for this path)."""
        return torch.as_tensor(t) * self.num_steps - 1.0

    def _log_ab(self, t):
        table = self.log_alphabar.to(t.device)
        x = t.clamp(0.0, 1.0) * self.num_steps
        i = x.floor().clamp(max=self.num_steps - 1).long()
        frac = x - i
        return table[i] + frac * (table[i + 1] - table[i])

    def _dlog_ab(self, t):
        table = self.log_alphabar.to(t.device)
        x = t.clamp(0.0, 1.0) * self.num_steps
        i = x.floor().clamp(max=self.num_steps - 1).long()
        return (table[i + 1] - table[i]) * self.num_steps

    def _a(self, t):
        return torch.exp(0.5 * self._log_ab(t))

    def _b(self, t):
        return torch.sqrt((-torch.expm1(self._log_ab(t))).clamp_min(0.0))

    def _da(self, t):
        return 0.5 * self._a(t) * self._dlog_ab(t)

    def _db(self, t):
        # b = sqrt(1 - ab): db = -ab * dlog(ab) / (2 b)
        log_ab = self._log_ab(t)
        return -0.5 * torch.exp(log_ab) * self._dlog_ab(t) / self._b(t).clamp_min(_EPS)

    def _t_from_sigma(self, sigma):
        # sigma^2 = 1/ab - 1  =>  log ab = -log(1 + sigma^2), monotone decreasing in t.
        target = -torch.log1p(sigma**2)
        table = self.log_alphabar.to(sigma.device)
        neg = -table  # increasing
        j = torch.searchsorted(neg, (-target).contiguous()).clamp(1, self.num_steps)
        lo, hi = table[j - 1], table[j]
        frac = ((target - lo) / (hi - lo)).clamp(0.0, 1.0)
        return (j - 1 + frac) / self.num_steps


@dataclass(frozen=True)
class EDMPath(Path):
    """EDM (Karras et al. 2022) in variance-preserving form; sigma(t) = exp(p_mean + p_std * Phi^-1(t)).

    With t ~ U(0, 1), log sigma ~ N(p_mean, p_std^2): EDM's training distribution. The time
    reparametrisation is invisible to an EDM network (it sees c_noise(sigma)); Karras grids are given
    in sigma and mapped to t with `t_from_sigma`.
    """

    p_mean: float = -1.2
    p_std: float = 1.2
    name: str = "edm"

    def _sig(self, t):
        z = torch.special.ndtri(t.clamp(0.0, 1.0))
        return torch.exp(self.p_mean + self.p_std * z)

    def _dsig(self, t):
        z = torch.special.ndtri(t.clamp(0.0, 1.0))
        phi = torch.exp(-0.5 * z**2) / math.sqrt(2 * math.pi)
        return torch.exp(self.p_mean + self.p_std * z) * self.p_std / phi

    def _a(self, t):
        s = self._sig(t)
        return torch.where(torch.isinf(s), torch.zeros_like(s), torch.rsqrt(1.0 + s**2))

    def _b(self, t):
        s = self._sig(t)
        return torch.where(torch.isinf(s), torch.ones_like(s), s * torch.rsqrt(1.0 + s**2))

    def _da(self, t):
        s = self._sig(t)
        return -s * (1.0 + s**2) ** -1.5 * self._dsig(t)

    def _db(self, t):
        s = self._sig(t)
        return (1.0 + s**2) ** -1.5 * self._dsig(t)

    def _sigma(self, t):
        return self._sig(t)

    def _t_from_sigma(self, sigma):
        return torch.special.ndtr((torch.log(sigma) - self.p_mean) / self.p_std)
