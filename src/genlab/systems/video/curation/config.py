"""Configuration of the curation pipeline: frozen dataclasses, presets are functions."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class CutConfig:
    """The paper's cascade: PySceneDetect's content and adaptive detectors at native fps and at 1/2
    and 1/4 of it (every 2nd / 4th frame), cuts merged within `merge_tolerance_s`."""

    levels: tuple[int, ...] = (1, 2, 4)  # frame steps: 1 = native fps, 2 = half, 4 = quarter
    max_side: int = 256  # frames are downscaled to this long side (PySceneDetect's CLI uses ~256)
    content_threshold: float = 27.0  # ContentDetector default
    adaptive_threshold: float = 3.0  # AdaptiveDetector defaults
    adaptive_min_content: float = 15.0
    adaptive_window: int = 2
    min_scene_s: float = 0.5  # detectors' min_scene_len, converted to samples at each level
    # a detection within this time of an already accepted (finer-level) cut is the same cut; one
    # transition seen at several levels lands at slightly different frames (a fade spans 0.5-1 s)
    merge_tolerance_s: float = 0.5
    use_content: bool = True
    use_adaptive: bool = True
    # robustness to changes small in area (a caption plate, a counter overlay): a content/adaptive
    # detection needs at least this fraction of the cells of a spread_grid x spread_grid grid to
    # change by at least a quarter of the frame's score (a cut changes the whole frame)
    min_spread: float = 0.5
    spread_grid: int = 8
    # fades to black, PySceneDetect ThresholdDetector's semantics: a frame whose mean over pixels and
    # channels is below fade_threshold is dark; a dark run between bright frames is split in its
    # middle (fade_bias 0) and every dark frame is dropped from the clips
    use_fade: bool = True
    fade_threshold: float = 12.0
    # our frames come from the YUV planes through cv2's BT.601 conversion, which reads dark frames
    # up to ~1.1 grey levels brighter than swscale's BGR (what PySceneDetect sees): a frame is dark
    # below fade_threshold + fade_margin, so no frame PySceneDetect would call dark stays in a clip
    fade_margin: float = 2.0
    # cross-dissolves: a frame that is a linear blend of the frames k before and k after it (small
    # residual, blend weight near 1/2), whose two ends differ in colour (hue-saturation histograms)
    # and are not one picture at two brightnesses; runs of such frames are split in their middle
    use_dissolve: bool = True
    dissolve_windows: tuple[int, ...] = (4, 8, 16, 24)  # k in frames at 30 fps (scaled to the video's fps)
    dissolve_side: int = 64  # long side of the frames the blend test runs on
    dissolve_max_residual: float = 0.25  # |Z - blend| / |Y - X|
    dissolve_min_change: float = 4.0  # RMS of Y - X (grey levels): the ends must differ
    dissolve_max_corr: float = 0.9  # correlation of the (zero-mean) ends: not one picture
    dissolve_min_contrast: float = 5.0  # RMS of each (zero-mean) end: a near-flat picture only drifts
    dissolve_min_hist: float = 0.25  # Bhattacharyya distance of the ends' hue-saturation histograms
    dissolve_min_run: int = 3  # consecutive blended frames


@dataclass(frozen=True)
class ClipConfig:
    min_clip_s: float = 1.0  # scenes shorter than this become no clip
    # longer shots are split at their frames of least change (None: a shot is one clip however long)
    max_clip_s: float | None = None
    max_snap_s: float = 0.5  # stream copy may start up to this late, at the next keyframe
    # otherwise (MP4 output): copy from the keyframe before the start, an edit list hides the preroll
    editlist: bool = True
    reencode: bool = True  # when no keyframe is close enough: re-encode (True) or drop the scene start
    write_clips: bool = True
    crf: int = 18  # re-encoding quality (libx264)
    preset: str = "ultrafast"  # libx264 speed preset for re-encoded clips (bigger files, 2-3x faster)


@dataclass(frozen=True)
class MotionConfig:
    sample_fps: float = 2.0  # the paper computes flow at 2 fps
    # flow is computed on frames with (at most) this long side: 240 px is 0.6x the DIS work of 320 px,
    # same ranking (Spearman 1.0 on the acceptance speeds), still clips ~0.2 px/s (README)
    max_side: int = 240
    # the score is in px/s of a frame scaled to this long side, whatever size the flow ran at (the
    # magnitude is multiplied by unit_side / the flow frame's long side): thresholds do not depend on
    # max_side or on the video's resolution
    unit_side: int = 320
    # "frame": each 2 fps sample against the next frame (short baseline: DIS stays exact for fast
    # motion); "sample": consecutive 2 fps samples (0.5 s apart: DIS fast loses track beyond ~40 px)
    baseline: str = "frame"
    # camera tags: a camera moving less than this (px/s of a unit_side frame, pan/tilt or the zoom's
    # speed at the frame edge) is static
    camera_static: float = 6.0


@dataclass(frozen=True)
class TextConfig:
    enabled: bool = True
    max_side: int = 640  # frames given to the detector; its side limit is set to the frame size
    box_threshold: float = 0.5
    # DB's box growth; rapidocr's 1.6 pads boxes like its training annotations (~1.5x the ink area);
    # 1.1 matches tight text-line boxes (calibrated on synthetic seeds 100-105, not the test seeds)
    unclip_ratio: float = 1.1
    frames: int = 3  # first, middle, last
    # a coarse pass at this scale first; no text there -> ratio 0 without the full-size pass (1 = off)
    gate_scale: float = 0.5


@dataclass(frozen=True)
class Captioner:
    """A captioner by local path (a transformers image-to-text folder, or a .py file defining
    `caption(frames)`: `captioning.py`); its caption is the column `caption_<name>`."""

    name: str
    path: str


@dataclass(frozen=True)
class EmbeddingConfig:
    """Optional CLIP stages; models load only from local paths (nothing downloads)."""

    clip_path: str | None = None  # a transformers CLIPModel folder
    aesthetic_path: str | None = None  # safetensors of a linear / MLP head on CLIP image embeddings
    caption_path: str | None = None  # a transformers image-to-text (BLIP-style) folder
    caption_max_tokens: int = 30
    captioners: tuple[Captioner, ...] = ()  # more caption columns, one per captioner
    summariser_path: str | None = None  # causal-LM folder or .py `summarise(captions)`: column `summary`
    summary_max_tokens: int = 40
    frames: int = 3


@dataclass(frozen=True)
class Threshold:
    """Keep a clip when `field` is within bounds. `min`/`max` are absolute; `min_pct`/`max_pct`
    are percentiles (0-100) over all clips of the run (the paper filters by percentile)."""

    field: str
    min: float | None = None
    max: float | None = None
    min_pct: float | None = None
    max_pct: float | None = None


@dataclass(frozen=True)
class CurationConfig:
    cuts: CutConfig = field(default_factory=CutConfig)
    clips: ClipConfig = field(default_factory=ClipConfig)
    motion: MotionConfig = field(default_factory=MotionConfig)
    text: TextConfig = field(default_factory=TextConfig)
    embeddings: EmbeddingConfig = field(default_factory=EmbeddingConfig)
    filters: tuple[Threshold, ...] = ()
    sample_max_side: int = 640  # clip frames sampled for the scoring stages are at most this large
    # the 2 fps samples are kept during the cut pass (one decoding pass per video) when they fit in
    # this many MB; longer videos get a second pass. 0 = always two passes (samples from each clip start)
    single_pass_mb: int = 1024
    workers: int = 1
    decode_threads: int = 1  # threads a worker decodes (and re-encodes clips) with


def default() -> CurationConfig:
    """Paper-like filters: drop near-static clips and clips with much text (choose by the histograms)."""
    return CurationConfig(filters=(
        Threshold("duration_s", min=2.0),
        Threshold("motion_score", min=1.0),  # px/s on a 320 px frame; a still shot is ~0.2
        Threshold("text_ratio", max=0.05),
    ))


def tiny() -> CurationConfig:
    """Small and fast: for tests and demos."""
    return CurationConfig(
        text=TextConfig(max_side=480), sample_max_side=480,
        filters=(Threshold("motion_score", min=1.0),),
    )
