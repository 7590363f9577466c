"""SD3's unified loss weighting (paper section 2 and appendix B; Kingma & Gao 2023).

Every formulation minimises, for some weight w_t and uniform t,

    L_w = -1/2 E_{t ~ U(0,1), eps} [ w_t lambda'_t || eps_hat(z_t, t) - eps ||^2 ]      (SD3 eq. 10)

`unified_loss` evaluates the integrand; the `w_*` functions give w_t of each variant in the paper's
Table / appendix B. Each formulation's *native* loss (velocity MSE for rf, eps-MSE for eps, v-MSE for v,
EDM's lambda(sigma) ||D - x0||^2) equals the unified loss with its w_t up to a constant factor; tests check
these identities pointwise:

| variant       | w_t                                                  | native loss = c * unified |
|---------------|------------------------------------------------------|---------------------------|
| rf            | t / (1 - t)                                          | velocity MSE, c = 1       |
| rf with pi(t) | t / (1 - t) * pi(t)  (== sampling t from pi)         |                           |
| eps (any VP)  | -2 / lambda'_t   (eps-MSE with uniform t)             | c = 1                     |
| eps/cos       | sech(lambda_t / 2)                                   | c = 1 / pi                |
| v/cos         | exp(-lambda_t / 2)                                   | c = 2 / pi                |
| edm(P_m, P_s) | N(lambda | -2 P_m, (2 P_s)^2) (exp(-lambda) + 0.5^2)  | c = 8 (sigma_data = 0.5)  |
| CFM (any)     | -1/2 lambda'_t b_t^2                                 | velocity MSE              |
"""

from __future__ import annotations

import math

import torch

from genlab.core.flow.densities import TimestepDensity
from genlab.core.flow.paths import Path


def _t(t) -> torch.Tensor:
    return torch.as_tensor(t, dtype=torch.float64)


def unified_loss(eps_hat: torch.Tensor, eps: torch.Tensor, t, path: Path, w: torch.Tensor) -> torch.Tensor:
    """Per-sample -1/2 w_t lambda'_t ||eps_hat - eps||^2 (sum over non-batch dims), float64."""
    err = ((eps_hat.double() - eps.double()) ** 2).flatten(1).sum(1)
    return -0.5 * _t(w) * path.dlogsnr(_t(t)) * err


def w_rf(t) -> torch.Tensor:
    """Rectified flow (velocity MSE with uniform t): w = t / (1 - t)."""
    t = _t(t)
    return t / (1.0 - t)


def w_density(t, density: TimestepDensity) -> torch.Tensor:
    """Rectified flow with t ~ pi: w = t / (1 - t) * pi(t)."""
    return w_rf(t) * density.pdf(_t(t))


def w_eps(t, path: Path) -> torch.Tensor:
    """Plain eps-MSE with uniform t on any path: w = -2 / lambda'_t."""
    return -2.0 / path.dlogsnr(_t(t))


def w_eps_cos(logsnr) -> torch.Tensor:
    """eps/cos: sech(lambda / 2)."""
    return 1.0 / torch.cosh(0.5 * _t(logsnr))


def w_v_cos(logsnr) -> torch.Tensor:
    """v/cos: exp(-lambda / 2)."""
    return torch.exp(-0.5 * _t(logsnr))


def w_edm(logsnr, p_mean: float = -1.2, p_std: float = 1.2, sigma_data: float = 0.5) -> torch.Tensor:
    """EDM: N(lambda | -2 P_m, (2 P_s)^2) (exp(-lambda) + sigma_data^2)."""
    lam = _t(logsnr)
    std = 2.0 * p_std
    normal = torch.exp(-0.5 * ((lam + 2.0 * p_mean) / std) ** 2) / (std * math.sqrt(2 * math.pi))
    return normal * (torch.exp(-lam) + sigma_data**2)


def w_cfm(t, path: Path) -> torch.Tensor:
    """Conditional flow matching (velocity MSE) on any path: w = -1/2 lambda'_t b_t^2."""
    t = _t(t)
    return -0.5 * path.dlogsnr(t) * path.b(t) ** 2
