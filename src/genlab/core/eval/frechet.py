"""Fréchet distance between Gaussian fits of two feature sets (FID's formula, any feature extractor).

    FD = ||mu_1 - mu_2||^2 + tr(S_1 + S_2 - 2 (S_1 S_2)^(1/2))

tr((S_1 S_2)^(1/2)) is computed as the sum of square roots of the eigenvalues of S_1 S_2 (real and
non-negative for PSD S_1, S_2; tiny negative round-off is clipped), in float64.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from genlab.errors import GenlabError


@dataclass(frozen=True)
class GaussianStats:
    mu: np.ndarray  # (D,)
    sigma: np.ndarray  # (D, D)
    n: int

    @staticmethod
    def of(features) -> GaussianStats:
        f = np.asarray(features, dtype=np.float64)
        if f.ndim != 2 or f.shape[0] < 2:
            raise GenlabError(f"Fréchet statistics need (N >= 2, D) features, got shape {f.shape}")
        return GaussianStats(f.mean(0), np.cov(f, rowvar=False), f.shape[0])


def frechet_distance(a: GaussianStats | np.ndarray, b: GaussianStats | np.ndarray) -> float:
    a = a if isinstance(a, GaussianStats) else GaussianStats.of(a)
    b = b if isinstance(b, GaussianStats) else GaussianStats.of(b)
    diff = a.mu - b.mu
    eig = np.linalg.eigvals(a.sigma @ b.sigma)
    tr_sqrt = np.sqrt(np.clip(eig.real, 0.0, None)).sum()
    return float(diff @ diff + np.trace(a.sigma) + np.trace(b.sigma) - 2.0 * tr_sqrt)
