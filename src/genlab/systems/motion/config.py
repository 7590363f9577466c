"""Every threshold of the motion-program fit in one place. Lengths are in body heights, times in frames."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class LoopConfig:
    max_body: int = 10  # loop bodies of 1..max_body segments are tried
    min_reps: int = 3  # "more than two repetitions"
    match_dist: float = 0.06  # mean per-joint start/mid/end distance (body heights) for two phases to match
    kind_agree: float = 0.75  # fraction of joints whose primitive type must agree between matched phases
    duration_ratio: float = 1.6  # matched phases' durations within this ratio
    cluster_spread: float = 0.05  # max mean per-phase spread of descriptors in an accepted loop


@dataclass(frozen=True)
class FitConfig:
    min_len: int = 4  # shortest segment (frames)
    max_len: int = 40  # longest segment (frames): the DP is O(T * max_len * J)
    penalty: float | None = None  # fixed per-segment penalty; None = adaptive to the measured noise
    penalty_scale: float = 30.0  # adaptive penalty = penalty_scale * J * noise variance (per coordinate)
    noise_floor: float = 2.5e-5  # lower bound of that noise variance (0.5% of body height squared)
    stat_box: float = 0.04  # stationary if the joint stays within a box this wide ...
    stat_dev: float = 0.02  # ... or its rms deviation from its mean is below this
    min_span: float = 0.05  # a line (start-to-end) or circle (arc length) shorter than this is not allowed
    circle_margin: float = 0.7  # a circle wins only if its error < circle_margin * the line's error
    quad_gain: float = 0.6  # quadratic timing only if it cuts the linear-timing error below this fraction
    max_radius: float = 1.5  # circles larger than this are treated as lines
    detect_loops: bool = True
    loop: LoopConfig = field(default_factory=LoopConfig)


def tiny() -> FitConfig:
    """The default config (fits are cheap; there is nothing to shrink)."""
    return FitConfig()
