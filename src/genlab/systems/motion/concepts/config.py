"""Configuration of the concept model, its learning stages and decoding (one frozen dataclass)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ConceptConfig:
    # Representation ------------------------------------------------------------------------
    # COCO-17 joints the emission model looks at: nose and the 12 body joints (eyes/ears add
    # nothing the nose does not say).
    joints: tuple[int, ...] = (0, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16)
    n_phases: int = 16  # phase grid of one loop-body iteration (emission template)
    max_body: int = 6  # most statements (segments) in a concept's loop body
    max_count: int = 12  # support of the count distribution is 1..max_count
    # Durations of one iteration, in frames (all concepts); per-concept limits come from data.
    min_duration: int = 8
    max_duration: int = 80
    duration_slack: float = 1.6  # per-concept max = slack * longest seen, min = longest seen / slack ...
    # Emission (diagonal Gaussian per phase and coordinate; body-height units) --------------
    var_prior: float = 0.05**2  # prior variance (inverse-gamma mode)
    var_prior_strength: float = 3.0  # pseudo-observations of the prior
    var_floor: float = 0.02**2
    emission_scale: float = 0.25  # tempers correlated coordinates (multiplies log-likelihoods)
    duration_weight: float = 1.0  # weight of the log-normal duration prior per iteration
    duration_sigma_prior: float = 0.25  # log-duration std prior (speed 0.7x..1.5x)
    idle_var: float = 0.08**2  # idle / transition frames: wide Gaussian around the rest pose
    idle_bonus: float = 0.0  # per-frame log-likelihood added to idle (tunes insertions)
    switch_penalty: float = 4.0  # cost of starting a new concept instance (insertion penalty)
    min_count: int = 2  # fewest iterations of a decoded instance (the dataset draws 2..8)
    mirror: bool = True  # also score every concept mirrored (left/right performers)
    # Learning -------------------------------------------------------------------------------
    init_rounds: int = 3  # few-shot: re-split examples into iterations this many times
    em_max_iters: int = 8
    em_tol: float = 1e-4  # stop hard EM when the relative gain in log-likelihood is below this
    self_label_margin: float = 0.5  # per-frame log-likelihood margin to accept a self-label


def tiny() -> ConceptConfig:
    """Small and fast (tests): fewer phases and shorter EM."""
    return ConceptConfig(n_phases=12, em_max_iters=3, init_rounds=2)


def default() -> ConceptConfig:
    return ConceptConfig()
