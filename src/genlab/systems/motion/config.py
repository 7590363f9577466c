"""Every threshold of the motion-program fit in one place. Lengths are in body heights, times in frames."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class LoopConfig:
    max_body: int = 10  # loop bodies of 1..max_body segments are tried
    min_reps: int = 3  # "more than two repetitions"
    match_dist: float = 0.1  # mean per-joint start/mid/end distance (body heights) for two phases to match
    kind_agree: float = 0.0  # fraction of joints whose primitive type must agree (0: types flip on real data)
    duration_ratio: float = 1.6  # matched phases' durations within this ratio ...
    duration_slack: float = 4.0  # ... or within this many frames (short holds have fuzzy ends)
    cluster_spread: float = 0.1  # max mean per-phase spread of descriptors in an accepted loop
    min_extent: float = 0.2  # an iteration must move some joint this far (no loops of near-still slivers)
    # iterations must be comparable: 1 - (rms distance of each executed, time-normalised iteration
    # from their mean) / (the mean iteration's motion extent); reported per loop in the summary
    min_similarity: float = 0.3


@dataclass(frozen=True)
class FitConfig:
    min_len: int = 4  # shortest segment (frames)
    max_len: int = 40  # longest segment (frames): the DP is O(T * max_len * J)
    penalty: float | None = None  # fixed per-segment penalty; None = adaptive to the measured noise
    penalty_scale: float = 12.0  # adaptive penalty = penalty_scale * J * noise variance (per coordinate)
    penalty_local: bool = False  # adaptive to the local noise (rolling median over penalty_window frames)
    penalty_window: int = 31
    noise_floor: float = 2.5e-5  # lower bound of that noise variance (0.5% of body height squared)
    stat_box: float = 0.04  # stationary if the joint stays within a box this wide ...
    stat_dev: float = 0.02  # ... or its rms deviation from its mean is below this
    min_span: float = 0.05  # a line (start-to-end) or circle (arc length) shorter than this is not allowed
    circle_margin: float = 0.7  # a circle wins only if its error < circle_margin * the line's error
    quad_gain: float = 0.6  # quadratic timing only if it cuts the linear-timing error below this fraction
    max_radius: float = 1.5  # circles larger than this are treated as lines
    detect_loops: bool = True
    # loops are also searched at coarser segmentations (penalty x these scales; one cost table);
    # a coarser one is kept only if loops cover this much more of the sequence
    loop_penalty_scales: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0)
    loop_coverage_gain: float = 0.1
    # real tracks: lost pose and detector confidence
    max_gap: int = 12  # lost runs up to this many frames are bridged; longer ones become `missing N`
    # weight of a bridged (interpolated) point: small, but it keeps a primitive's timing from running
    # wild where nothing is observed (a circle's quadratic angle turning several times in a gap)
    bridge_weight: float = 0.1
    min_conf: float = 0.3  # a joint below this confidence is not used; above it, it weighs its confidence
    min_seen: float = 0.5  # a frame with fewer than this fraction of joints usable counts as lost
    loop: LoopConfig = field(default_factory=LoopConfig)


def tiny() -> FitConfig:
    """The default config (fits are cheap; there is nothing to shrink)."""
    return FitConfig()


def default() -> FitConfig:
    """Synthetic or motion-capture keypoints (exact, or with white jitter)."""
    return FitConfig()


def video(min_reps: int = 3) -> FitConfig:
    """Keypoints from a pose estimator on real video: a higher noise floor (estimator jitter is
    smooth, so second differences underrate it) and looser loop matching (people vary between
    repetitions far more than the synthetic set does)."""
    return FitConfig(noise_floor=2e-4, loop=LoopConfig(match_dist=0.16, cluster_spread=0.16, min_reps=min_reps))


PRESETS = {"default": default, "video": video}
# which preset suits which kind of input (`KeypointTrack.kind`): a pose detector's output on
# video vs synthetic or motion-capture keypoints
PRESET_FOR_KIND = {"detector": "video", "mocap": "default", "synthetic": "default"}


def preset_for(kind: str, min_reps: int | None = None) -> FitConfig:
    """The preset suited to an input kind ("detector", "mocap", "synthetic")."""
    import dataclasses

    cfg = PRESETS[PRESET_FOR_KIND.get(kind, "default")]()
    if min_reps is not None:
        cfg = dataclasses.replace(cfg, loop=dataclasses.replace(cfg.loop, min_reps=min_reps))
    return cfg
