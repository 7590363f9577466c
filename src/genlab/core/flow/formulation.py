"""A training formulation = path (a_t, b_t) + what the network predicts + training timestep density.

`Formulation` wraps a raw network `net(net_input, net_time, **cond) -> tensor` into a model
`(z, t, **cond) -> Prediction` for the samplers, and computes the training loss in the network's native
parametrisation (velocity, eps, v or EDM's F), which SD3 section 2 shows are all instances of one weighted
eps-loss (see `weighting`).

Network inputs:
- net_input: z_t itself, except for EDM where it is c_in x with x = z / a (EDM eq. 7; = z when sigma_data = 1)
- net_time:  1000 t (SD3's convention), T t - 1 on `LDMLinearPath` (= diffusers' timestep n at the nodes),
             c_noise = 0.25 ln sigma for EDM.

EDM preconditioning (Karras et al. 2022, Table 1), with sigma = b / a and x = z / a:
    D(x; sigma) = c_skip x + c_out F(c_in x; c_noise)
    c_skip = sd^2 / (sigma^2 + sd^2),  c_out = sign * sigma sd / sqrt(sigma^2 + sd^2),
    c_in = 1 / sqrt(sigma^2 + sd^2),   c_noise = ln(sigma) / 4,  loss weight 1 / c_out^2.
`edm_sign = -1` with sigma_data = 1 is SVD's v-parametrisation (sgm VScalingWithEDMcNoise): F = v.
The coefficients are evaluated in (a, b) form so that they stay finite at t = 1 (a = 0).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import torch

from genlab.core.flow import grids
from genlab.core.flow.densities import CosMap, DiscreteUniform, LogitNormal, Mode, TimestepDensity, Uniform
from genlab.core.flow.paths import CosinePath, EDMPath, LDMLinearPath, Path, RectifiedFlowPath
from genlab.core.flow.prediction import KINDS, Prediction, broadcast_like, from_x0_eps
from genlab.errors import GenlabError

NetFn = Callable[..., torch.Tensor]


@dataclass(frozen=True)
class LossOutput:
    loss: torch.Tensor  # scalar, mean over the batch
    per_sample: torch.Tensor  # (B,) mean squared error of each sample in the native parametrisation
    t: torch.Tensor  # (B,) the training times used


@dataclass(frozen=True)
class EDMCoefficients:
    c_skip: torch.Tensor  # multiplies z (i.e. c_skip / a in terms of EDM's x)
    c_out: torch.Tensor
    c_in: torch.Tensor  # multiplies z (i.e. c_in / a)
    c_noise: torch.Tensor


@dataclass(frozen=True)
class Formulation:
    name: str
    path: Path
    prediction: str  # "velocity" | "eps" | "v" | "x0" | "edm"
    density: TimestepDensity = field(default_factory=Uniform)
    sigma_data: float = 0.5  # EDM only
    edm_sign: float = 1.0  # EDM only: -1 with sigma_data = 1 makes F the v-prediction (SVD)

    def __post_init__(self):
        if self.prediction not in (*KINDS, "edm"):
            raise GenlabError(f"Formulation.prediction must be one of {(*KINDS, 'edm')}, got {self.prediction!r}")

    # --- network interface ---
    def edm_coefficients(self, t) -> EDMCoefficients:
        """EDM preconditioning at t, expressed on z (float64, per t)."""
        t = torch.as_tensor(t, dtype=torch.float64)
        a, b = self.path.a(t), self.path.b(t)
        sd2 = self.sigma_data**2
        norm = torch.sqrt(b**2 + sd2 * a**2)  # = a sqrt(sigma^2 + sd^2)
        return EDMCoefficients(
            c_skip=sd2 * a / norm**2,
            c_out=self.edm_sign * b * self.sigma_data / norm,
            c_in=1.0 / norm,
            c_noise=0.25 * (torch.log(b) - torch.log(a)),
        )

    def net_time(self, t) -> torch.Tensor:
        """The time input the network receives at t."""
        t = torch.as_tensor(t)
        if self.prediction == "edm":
            return self.edm_coefficients(t).c_noise.to(t.dtype if t.is_floating_point() else torch.float32)
        if isinstance(self.path, LDMLinearPath):
            return self.path.t_to_timestep(t)
        return 1000.0 * t

    def net_input(self, z: torch.Tensor, t) -> torch.Tensor:
        if self.prediction != "edm":
            return z
        return (broadcast_like(self.edm_coefficients(t).c_in, z) * z.double()).to(z.dtype)

    def predict(self, net: NetFn, z: torch.Tensor, t, **cond) -> Prediction:
        """Run the network at (z, t) and return a typed `Prediction`."""
        t = torch.as_tensor(t, dtype=z.dtype, device=z.device)
        if t.ndim == 0:
            t = t.expand(z.shape[0])
        raw = net(self.net_input(z, t), self.net_time(t).to(z.dtype), **cond)
        return self.wrap_output(raw, z, t)

    def wrap_output(self, raw: torch.Tensor, z: torch.Tensor, t) -> Prediction:
        """Interpret a raw network output at (z, t) as a `Prediction` (EDM's F becomes x0)."""
        if self.prediction == "edm":
            c = self.edm_coefficients(t)
            x0 = broadcast_like(c.c_skip, z) * z.double() + broadcast_like(c.c_out, z) * raw.double()
            return Prediction("x0", x0.to(raw.dtype), z, t, self.path)
        return Prediction(self.prediction, raw, z, t, self.path)

    def denoiser(self, net: NetFn) -> Callable[..., Prediction]:
        """`model(z, t, **cond) -> Prediction`, the signature every sampler and guidance function takes."""
        return partial(self.predict, net)

    # --- training ---
    def noise(self, x0: torch.Tensor, eps: torch.Tensor, t) -> torch.Tensor:
        """z_t = a_t x0 + b_t eps."""
        a, b = self.path.a(torch.as_tensor(t, dtype=torch.float64)), self.path.b(torch.as_tensor(t, dtype=torch.float64))
        return (broadcast_like(a, x0) * x0.double() + broadcast_like(b, x0) * eps.double()).to(x0.dtype)

    def target(self, x0: torch.Tensor, eps: torch.Tensor, t) -> torch.Tensor:
        """The network's regression target (velocity / eps / v / x0, or EDM's F)."""
        if self.prediction != "edm":
            return from_x0_eps(self.prediction, x0, eps, t, self.path)
        c = self.edm_coefficients(t)
        z = self.noise(x0, eps, t).double()
        return ((x0.double() - broadcast_like(c.c_skip, x0) * z) / broadcast_like(c.c_out, x0)).to(x0.dtype)

    def sample_t(self, n: int, generator: torch.Generator | None = None, device=None, stratified: bool = False):
        return self.density.sample(n, generator=generator, device=device, stratified=stratified)

    def loss(
        self,
        net: NetFn,
        x0: torch.Tensor,
        t: torch.Tensor | None = None,
        eps: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        stratified: bool = False,
        **cond,
    ) -> LossOutput:
        """Native-parametrisation MSE (weight 1; EDM's lambda(sigma) is absorbed in F) at t ~ density."""
        if t is None:
            t = self.sample_t(x0.shape[0], generator=generator, stratified=stratified).to(x0.device)
        if eps is None:
            eps = torch.randn(x0.shape, generator=generator, dtype=x0.dtype).to(x0.device)
        t = t.to(device=x0.device, dtype=x0.dtype)
        z = self.noise(x0, eps, t)
        raw = net(self.net_input(z, t), self.net_time(t).to(x0.dtype), **cond)
        per_sample = ((raw - self.target(x0, eps, t)) ** 2).flatten(1).mean(1)
        return LossOutput(per_sample.mean(), per_sample, t)

    # --- sampling defaults ---
    def default_grid(self, steps: int) -> torch.Tensor:
        """A sensible sampling grid: uniform in t; Karras (0.002, 80, rho 7) for EDM."""
        if self.prediction == "edm":
            return grids.karras(steps, self.path, sigma_min=0.002, sigma_max=80.0)
        if isinstance(self.path, CosinePath) and self.prediction in ("eps", "velocity"):
            return grids.uniform(steps, t_max=1.0 - 1e-3)  # eps -> x0 is singular at a = 0
        return grids.uniform(steps)


def velocity_mse_at_levels(
    formulation: Formulation,
    net: NetFn,
    x0: torch.Tensor,
    eps: torch.Tensor,
    levels: torch.Tensor | None = None,
    **cond,
) -> torch.Tensor:
    """Validation loss in one common parametrisation, comparable across formulations.

    At each rectified-flow level t_rf (default: the 8 midpoints (k + 0.5)/8), the formulation is queried at
    the time of its own path with the same log-SNR, and the error of its implied rectified-flow velocity
    (eps_hat - x0_hat) against eps - x0 is averaged. Returns a (len(levels),) tensor (mean over batch and
    pixels); SD3 section 5.3.3 averages such per-level losses.
    """
    if levels is None:
        levels = (torch.arange(8, dtype=torch.float64) + 0.5) / 8
    out = []
    for t_rf in torch.as_tensor(levels, dtype=torch.float64):
        sigma = t_rf / (1.0 - t_rf)
        t = formulation.path.t_from_sigma(sigma).clamp(0.0, 1.0)
        tb = torch.full((x0.shape[0],), float(t), dtype=x0.dtype, device=x0.device)
        z = formulation.noise(x0, eps, tb)
        pred = formulation.predict(net, z, tb, **cond)
        err = (pred.eps - pred.x0) - (eps - x0)
        out.append((err.double() ** 2).mean())
    return torch.stack(out)


# --- presets: the SD3 study's formulations (names as in the paper's Table 1) ---
def rf() -> Formulation:
    return Formulation("rf", RectifiedFlowPath(), "velocity", Uniform())


def rf_lognorm(m: float = 0.0, s: float = 1.0) -> Formulation:
    return Formulation(f"rf/lognorm({m:.2f}, {s:.2f})", RectifiedFlowPath(), "velocity", LogitNormal(m, s))


def rf_mode(s: float = 1.29) -> Formulation:
    return Formulation(f"rf/mode({s:.2f})", RectifiedFlowPath(), "velocity", Mode(s))


def rf_cosmap() -> Formulation:
    return Formulation("rf/cosmap", RectifiedFlowPath(), "velocity", CosMap())


def eps_linear() -> Formulation:
    return Formulation("eps/linear", LDMLinearPath(), "eps", DiscreteUniform(1000))


def v_linear() -> Formulation:
    return Formulation("v/linear", LDMLinearPath(), "v", DiscreteUniform(1000))


def eps_cos() -> Formulation:
    return Formulation("eps/cos", CosinePath(), "eps", Uniform())


def v_cos() -> Formulation:
    return Formulation("v/cos", CosinePath(), "v", Uniform())


def edm(p_mean: float = -1.2, p_std: float = 1.2, sigma_data: float = 0.5) -> Formulation:
    return Formulation(f"edm({p_mean:.2f}, {p_std:.2f})", EDMPath(p_mean, p_std), "edm", Uniform(), sigma_data)


def edm_v(p_mean: float = -1.2, p_std: float = 1.2) -> Formulation:
    """SVD's formulation: EDM with sigma_data = 1, v-prediction, c_noise = ln(sigma)/4, weight (1+s^2)/s^2."""
    return Formulation(f"edm_v({p_mean:.2f}, {p_std:.2f})", EDMPath(p_mean, p_std), "edm", Uniform(), 1.0, -1.0)


