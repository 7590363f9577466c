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
    duration_slack: float = 2.2  # per-concept limits: [shortest seen / slack, longest seen x slack]
    # Emission (diagonal Gaussian per phase and coordinate; body-height units) --------------
    var_prior: float = 0.05**2  # prior variance (inverse-gamma mode)
    var_prior_strength: float = 10.0  # pseudo-observations (frames / phases) of the prior
    amplitude_std: float = 0.17  # prior spread of a motion's size between performers (relative)
    var_floor: float = 0.02**2
    emission_scale: float = 0.1  # tempers correlated coordinates (multiplies log-likelihoods)
    duration_weight: float = 1.0  # weight of the log-normal duration prior per iteration
    duration_sigma_prior: float = 0.25  # log-duration std prior (speed 0.7x..1.5x)
    idle_var: float = 0.03**2  # idle / transition frames: Gaussian around the rest pose
    idle_bonus: float = -0.5  # per-frame log-likelihood added to idle (tunes insertions)
    switch_penalty: float = 8.0  # cost of starting a new concept instance (insertion penalty)
    min_count: int = 2  # fewest iterations of a decoded instance (the dataset draws 2..8)
    mirror: bool = True  # also score every concept mirrored (left/right performers)
    # Two instances of one concept with only idle between them: allowed (True) or not (False, a
    # pause inside a set stays part of the set; an instance is always followed by another concept).
    repeat_instances: bool = False
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


def weak_priors() -> ConceptConfig:
    """Supplementary stage-2 probe (not a working setting): the priors that make one example per
    concept usable are turned off (no amplitude prior, a 100x smaller and 100x weaker variance
    prior, a tiny variance floor), so stage 1 over-fits its one performer and stage 2's
    re-estimation has something to fix. Chosen on the val split."""
    return ConceptConfig(amplitude_std=0.0, var_prior=1e-4, var_prior_strength=0.1, var_floor=1e-5)
