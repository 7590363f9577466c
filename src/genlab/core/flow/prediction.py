"""What a network predicts, and exact conversions between the four kinds.

For z = a x0 + b eps (coefficients of the path at t):
- "x0"        the clean sample
- "eps"       the noise
- "v"         Salimans & Ho's v = a eps - b x0  (general form; equals their v on VP paths)
- "velocity"  the flow-matching vector field u = dz/dt = a' x0 + b' eps  (rectified flow: eps - x0)

Conversions solve the 2x2 linear system [z; p] = M [x0; eps] exactly (float64 coefficients), e.g.
from velocity: x0 = (b' z - b u) / (a b' - b a'), eps = (a u - a' z) / (a b' - b a').
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from genlab.core.flow.paths import Path
from genlab.errors import GenlabError

KINDS = ("x0", "eps", "v", "velocity")


def broadcast_like(coef: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Reshape a per-sample (or scalar) coefficient to broadcast against `like` (batch first)."""
    coef = torch.as_tensor(coef, dtype=torch.float64, device=like.device)
    if coef.ndim > 0 and coef.ndim < like.ndim:
        coef = coef.reshape(coef.shape + (1,) * (like.ndim - coef.ndim))
    return coef


def _row(kind: str, a, b, da, db):
    """Coefficients (p_x0, p_eps) with p = p_x0 * x0 + p_eps * eps."""
    if kind == "x0":
        return torch.ones_like(a), torch.zeros_like(a)
    if kind == "eps":
        return torch.zeros_like(a), torch.ones_like(a)
    if kind == "v":
        return -b, a
    if kind == "velocity":
        return da, db
    raise GenlabError(f"prediction kind must be one of {KINDS}, got {kind!r}")


def to_x0_eps(kind: str, value: torch.Tensor, z: torch.Tensor, t, path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """(x0, eps) implied by a prediction `value` of `kind` at (z, t) on `path`."""
    a, b, da, db = (broadcast_like(c, z) for c in path.coefficients(t))
    px, pe = _row(kind, a, b, da, db)
    det = a * pe - b * px  # | a b ; px pe |
    z64, p64 = z.double(), value.double()
    x0 = (pe * z64 - b * p64) / det
    eps = (a * p64 - px * z64) / det
    return x0.to(value.dtype), eps.to(value.dtype)


def from_x0_eps(kind: str, x0: torch.Tensor, eps: torch.Tensor, t, path: Path) -> torch.Tensor:
    """The prediction of `kind` for the given (x0, eps) at t (also the training target)."""
    a, b, da, db = (broadcast_like(c, x0) for c in path.coefficients(t))
    px, pe = _row(kind, a, b, da, db)
    return (px * x0.double() + pe * eps.double()).to(x0.dtype)


def convert(value: torch.Tensor, src: str, dst: str, z: torch.Tensor, t, path: Path) -> torch.Tensor:
    """Convert a prediction between kinds at (z, t)."""
    if src == dst:
        return value
    x0, eps = to_x0_eps(src, value, z, t, path)
    return from_x0_eps(dst, x0, eps, t, path)


@dataclass(frozen=True)
class Prediction:
    """A network output of a known kind at (z, t) on `path`; `.x0`, `.eps`, `.v`, `.velocity` convert it.

    `t` is per-sample (shape (B,)) or a scalar. Guidance combines `value`s of the same kind
    (any kind gives the same result: the conversions are affine).
    """

    kind: str
    value: torch.Tensor
    z: torch.Tensor
    t: torch.Tensor
    path: Path

    def to(self, kind: str) -> torch.Tensor:
        return convert(self.value, self.kind, kind, self.z, self.t, self.path)

    @property
    def x0(self) -> torch.Tensor:
        return self.to("x0")

    @property
    def eps(self) -> torch.Tensor:
        return self.to("eps")

    @property
    def v(self) -> torch.Tensor:
        return self.to("v")

    @property
    def velocity(self) -> torch.Tensor:
        return self.to("velocity")

