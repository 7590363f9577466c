"""Curation stages. Every stage has one interface: `stage(record, frames) -> dict` reads a record
(a video or a clip, a plain dict) and returns the fields it adds; the pipeline merges them.

Video stages (probe, cuts) read `record["path"]` themselves and get `frames=None`. Clip stages get
a `ClipFrames`: the clip's frames sampled at 2 fps (the paper's rate for flow), decoded once and
shared by every clip stage. Models (OCR, CLIP, captioner) are created lazily, once per process.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from genlab.core.data.video import Frame, VideoSource, probe
from genlab.errors import GenlabError
from genlab.systems.video.curation.config import CutConfig, EmbeddingConfig, MotionConfig, TextConfig


@dataclass
class ClipFrames:
    """A clip's frames sampled at `sample_fps` (BGR uint8, long side <= the sample size)."""

    samples: list[Frame]
    sample_fps: float
    start_s: float
    end_s: float
    following: list[Frame | None] | None = None  # the frame right after each sample (same clip), if kept

    def pick(self, n: int) -> list[Frame]:
        """`n` samples spread over the clip: first, (middle,) last."""
        if not self.samples:
            return []
        if n <= 1:
            return [self.samples[len(self.samples) // 2]]
        idx = np.unique(np.round(np.linspace(0, len(self.samples) - 1, n)).astype(int))
        return [self.samples[i] for i in idx]


class SampleGrid:
    """The 2 fps samples of a whole video (and the frame right after each), collected during the cut
    pass so that the clip stages need no second decoding pass. Samples lie on one grid from the
    first frame, so a clip's first sample is at most 1/rate after its start."""

    def __init__(self, rate: float, max_side: int):
        self.rate, self.max_side = rate, max_side
        self.samples: list[Frame] = []
        self.following: dict[int, Frame] = {}
        self._next: float | None = None
        self._want_following = False

    def want(self, index: int, time: float) -> bool:
        if self._next is None:
            self._next = time
        return self._want_following or time >= self._next - 1e-6

    def add(self, frame: Frame) -> None:
        kept = Frame(frame.index, frame.time, frame.extra)
        if self._want_following:
            self._want_following = False
            self.following[self.samples[-1].index] = kept
        if frame.time >= self._next - 1e-6:
            self.samples.append(kept)
            while self._next <= frame.time + 1e-6:
                self._next += 1.0 / self.rate
            self._want_following = True

    def clip_frames(self, start_frame: int, end_frame: int, start_s: float, end_s: float) -> ClipFrames:
        samples = [f for f in self.samples if start_frame <= f.index < end_frame]
        following = [self.following.get(f.index) for f in samples]
        following = [g if g is not None and g.index < end_frame else None for g in following]
        return ClipFrames(samples, self.rate, start_s, end_s, following=following)


class Stage(Protocol):
    name: str

    def __call__(self, record: dict[str, Any], frames: ClipFrames | None) -> dict[str, Any]: ...


# ---------------------------------------------------------------------------------------------
# video stages


class ProbeStage:
    """Container facts: duration, fps, resolution, codec, bit rate (no decoding)."""

    name = "probe"

    def __init__(self, source: VideoSource | None = None):
        self.source = source  # an open input of the video, shared with the later passes

    def __call__(self, record, frames=None):
        info = probe(record["path"], self.source)
        return {
            "video_duration_s": info.duration_s, "fps": info.fps, "width": info.width,
            "height": info.height, "codec": info.codec, "bit_rate": info.bit_rate,
            "container": info.container, "size_bytes": info.size_bytes,
        }


class CutStage:
    """The cut-detection cascade (see cuts.py). Adds `cuts` (frame indices) and the decoded frame
    count; the fields starting with `_` (frame times and pts, stream facts, each cut's detector, the
    dark runs, the frames' content scores) are for the pipeline only and never reach the table."""

    name = "cuts"

    def __init__(self, cfg: CutConfig, threads: int = 1, grid: SampleGrid | None = None,
                 source: VideoSource | None = None):
        self.cfg, self.threads, self.grid, self.source = cfg, threads, grid, source

    def __call__(self, record, frames=None):
        from genlab.systems.video.curation.cuts import detect_cuts

        result = detect_cuts(record["path"], self.cfg, record.get("fps") or 0.0, threads=self.threads,
                             grid=self.grid, source=self.source)
        return {"cuts": result.cuts, "num_cuts": len(result.cuts), "num_frames": result.num_frames,
                "_frame_times": result.frame_times, "_frame_pts": result.frame_pts,
                "_stream_info": result.stream_info, "_detectors": result.detectors, "_dark": result.dark,
                "_scores": result.scores, "_dissolves": result.dissolves}


# ---------------------------------------------------------------------------------------------
# clip stages


def _resize_long_side(img: np.ndarray, max_side: int) -> np.ndarray:
    """Shrink to `max_side`: area averaging from 2x down; bilinear above (same picture for mild
    factors, several times cheaper than cv2's non-integer area path)."""
    import cv2

    h, w = img.shape[:2]
    if max(h, w) <= max_side:
        return img
    s = max_side / max(h, w)
    mode = cv2.INTER_AREA if s <= 0.5 else cv2.INTER_LINEAR
    return cv2.resize(img, (max(1, round(w * s)), max(1, round(h * s))), interpolation=mode)


class MotionStage:
    """Mean dense optical-flow magnitude at 2 fps (OpenCV DIS, preset fast) computed on frames with
    a long side of at most `max_side`, in pixels per second of a frame scaled to `unit_side`; a
    still clip scores ~0.

    With baseline "frame" each 2 fps sample is paired with the next frame; with "sample" consecutive
    samples are paired. Either way the magnitude is divided by the pair's time gap.
    """

    name = "motion"

    def __init__(self, cfg: MotionConfig):
        if cfg.baseline not in ("frame", "sample"):
            raise GenlabError(f"MotionConfig.baseline: expected 'frame' or 'sample', got {cfg.baseline!r}")
        self.cfg = cfg
        self._dis = None

    def _gray(self, frame: Frame) -> np.ndarray:
        import cv2

        gray = cv2.cvtColor(frame.image, cv2.COLOR_BGR2GRAY)  # one channel before resizing: 3x less work
        return _resize_long_side(gray, self.cfg.max_side)

    def __call__(self, record, frames):
        import cv2

        if self._dis is None:
            self._dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
        if self.cfg.baseline == "frame" and frames.following is not None:
            pairs = [(a, b) for a, b in zip(frames.samples, frames.following) if b is not None]
        else:
            pairs = list(zip(frames.samples, frames.samples[1:]))
        if not pairs:
            return {"motion_score": None}
        speeds = []
        moves = []  # the camera's (pan, tilt, zoom) of each pair, px/s of a unit_side frame
        gray: dict[int, np.ndarray] = {}  # "sample" pairs share frames: convert each once
        for f0, f1 in pairs:
            g0 = gray.pop(f0.index, None)
            if g0 is None:
                g0 = self._gray(f0)
            g1 = self._gray(f1)
            gray = {f1.index: g1}
            flow = self._dis.calc(g0, g1, None)
            magnitude = cv2.magnitude(flow[..., 0], flow[..., 1])
            unit = self.cfg.unit_side / max(g0.shape)  # px of the flow frame -> px of a unit_side frame
            per_s = unit / max(f1.time - f0.time, 1e-6)
            speeds.append(float(cv2.mean(magnitude)[0]) * per_s)
            moves.append(camera_move(flow) * per_s)
        return {"motion_score": float(np.mean(speeds)), "camera_motion": camera_tag(np.array(moves), self.cfg)}


def camera_move(flow: np.ndarray, step: int = 4) -> np.ndarray:
    """(pan, tilt, zoom) of a dense flow field, in px of the flow frame: the affine motion model
    u = a0 + a1 x + a2 y, v = b0 + b1 x + b2 y fitted by least squares on every `step`-th pixel
    (x, y from the frame centre); pan = a0, tilt = b0, zoom = the divergence (a1 + b2) / 2 times
    half the long side (the radial speed at the frame's edge)."""
    h, w = flow.shape[:2]
    sub = flow[::step, ::step].reshape(-1, 2).astype(np.float64)
    coef = _affine_solver(h, w, step) @ sub  # (3, 2): columns u, v
    return np.array([coef[0, 0], coef[0, 1], 0.5 * (coef[1, 0] + coef[2, 1]) * max(h, w) / 2.0])


@functools.lru_cache(maxsize=8)
def _affine_solver(h: int, w: int, step: int) -> np.ndarray:
    """The least-squares solver of `camera_move` for one flow size: the pseudo-inverse of its
    (1, x, y) basis, computed once per size instead of one SVD per frame pair."""
    ys, xs = np.mgrid[0:h:step, 0:w:step]
    x = (xs - (w - 1) / 2.0).ravel()
    y = (ys - (h - 1) / 2.0).ravel()
    return np.linalg.pinv(np.stack([np.ones_like(x), x, y], axis=1))


def camera_tag(moves: np.ndarray, cfg: MotionConfig) -> str | None:
    """static / pan / tilt / zoom / shaky from the pairs' (pan, tilt, zoom) in px/s: "static" when
    the mean move is below `camera_static`; "shaky" when the moves vary between pairs more than
    their mean (a hand-held camera going nowhere); otherwise the largest of the mean pan, tilt and
    zoom."""
    if len(moves) == 0:
        return None
    mean = moves.mean(axis=0)
    jitter = float(np.sqrt(((moves - mean) ** 2).sum(axis=1).mean()))
    size = float(np.abs(mean).max())
    if size < cfg.camera_static and jitter < cfg.camera_static:
        return "static"
    if len(moves) > 1 and jitter > max(size, cfg.camera_static):
        return "shaky"
    return ("pan", "tilt", "zoom")[int(np.argmax(np.abs(mean)))]


class KeyHashStage:
    """A perceptual hash of the clip's key frames (first, middle, last 2 fps sample): 64-bit dHash
    each (is each pixel of a 9x8 grey thumbnail brighter than its right neighbour), as hex. A
    re-encoded copy keeps nearly every bit; the corpus-wide `dup_of` is marked from it (pipeline)."""

    name = "key_hash"
    frames = 3

    def __call__(self, record, frames):
        import cv2

        picked = frames.pick(self.frames)
        if not picked:
            return {"key_hash": None}
        out = []
        for f in picked:
            gray = cv2.cvtColor(f.image, cv2.COLOR_BGR2GRAY)
            thumb = cv2.resize(gray, (9, 8), interpolation=cv2.INTER_AREA).astype(np.int16)
            out.append(np.packbits(thumb[:, 1:] > thumb[:, :-1]).tobytes().hex())
        while len(out) < self.frames:  # a clip with fewer samples: repeat its last
            out.append(out[-1])
        return {"key_hash": "".join(out)}


_OCR_CACHE: dict = {}


def _text_detector(box_threshold: float, unclip_ratio: float = 1.6):
    """rapidocr's DB text detector (detection only: the ratio needs boxes, not words)."""
    key = ("det", box_threshold, unclip_ratio)
    if key not in _OCR_CACHE:
        from pathlib import Path

        import onnxruntime
        import rapidocr_onnxruntime
        import yaml
        from rapidocr_onnxruntime.ch_ppocr_det import TextDetector

        root = Path(rapidocr_onnxruntime.__file__).parent
        config = yaml.safe_load((root / "config.yaml").read_text())["Det"]
        config["model_path"] = str(root / config["model_path"])
        config["intra_op_num_threads"] = 1
        config["inter_op_num_threads"] = 1
        config["box_thresh"] = box_threshold
        config["unclip_ratio"] = unclip_ratio
        config["limit_type"] = "max"
        det = TextDetector(config)
        # the same model in a session with ONNX Runtime's CPU memory arena, which rapidocr turns off:
        # without it every run allocates its activations anew (a clip's gate batch at 160x96: 10.3
        # instead of 12.4 ms; the same outputs)
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 4
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        det.infer.session = onnxruntime.InferenceSession(config["model_path"], options,
                                                         providers=["CPUExecutionProvider"])
        _OCR_CACHE[key] = det
    return _OCR_CACHE[key]


def _det_input(det, image: np.ndarray) -> np.ndarray | None:
    """The DB detector's input for `image` at its own size (side limit = its long side): what
    rapidocr's DetPreProcess gives (resize to multiples of 32, (x / 255 - 0.5) / 0.5, NCHW float32),
    as one cv2.dnn.blobFromImage call when the normalisation is rapidocr's default (the same input
    to ~1e-7; 0.08 instead of 0.4 ms on a 160x96 frame). None when the image is too small."""
    import cv2

    det.limit_side_len = max(image.shape[:2])
    if list(det.mean) != [0.5, 0.5, 0.5] or list(det.std) != [0.5, 0.5, 0.5]:
        return det.get_preprocess(det.limit_side_len)(image)
    h, w = image.shape[:2]
    rh, rw = int(round(h / 32) * 32), int(round(w / 32) * 32)
    if rh <= 0 or rw <= 0:
        return None
    return cv2.dnn.blobFromImage(cv2.resize(image, (rw, rh)), 2 / 255.0, mean=(127.5, 127.5, 127.5))


class TextStage:
    """Fraction of the frame covered by detected text boxes, averaged over first/middle/last frame.

    The detector's side limit is set to the frame's own long side (limit_type "max"), so it does not
    upsample small frames to 736 px (5-10x slower for nothing). With `gate_scale` < 1 a frame is
    first run through the detector at that scale (a quarter of the work at 0.5); when no pixel of
    its text probability map reaches DB's binarisation threshold the frame has no text (ratio 0)
    and the full-size pass is skipped; otherwise the full-size pass gives the boxes, as without the
    gate. Text too small to show at the coarse scale is then missed.
    """

    name = "text"

    def __init__(self, cfg: TextConfig):
        self.cfg = cfg

    def _has_text_coarse(self, det, image: np.ndarray) -> bool:
        return self._text_coarse(det, [image])[0]

    def _text_coarse(self, det, images: list[np.ndarray]) -> list[bool]:
        """The gate of each image. Images of one size (a clip's frames) go through the detector as
        one batch: the same probability maps as one pass each (tested), without the per-pass cost
        of the runtime (~10% of a 160x96 pass)."""
        import cv2

        scale = self.cfg.gate_scale
        blobs = []
        for image in images:
            h, w = image.shape[:2]
            small = cv2.resize(image, (max(32, round(w * scale)), max(32, round(h * scale))), interpolation=cv2.INTER_AREA)
            blobs.append(_det_input(det, small))
        thresh = det.postprocess_op.thresh
        gated = [True if b is None else None for b in blobs]  # too small to gate: the full pass decides
        todo = [i for i, b in enumerate(blobs) if b is not None]
        if len({blobs[i].shape for i in todo}) == 1:
            maps = det.infer(np.concatenate([blobs[i] for i in todo]))[0]
            for j, i in enumerate(todo):
                gated[i] = float(maps[j].max()) >= thresh
        else:
            for i in todo:
                gated[i] = float(det.infer(blobs[i])[0].max()) >= thresh
        return gated

    def ratio(self, image: np.ndarray, gated: bool | None = None) -> float:
        """Text area / frame area; `gated`: the gate's answer for `image` when already known."""
        import cv2

        det = _text_detector(self.cfg.box_threshold, self.cfg.unclip_ratio)
        if 0 < self.cfg.gate_scale < 1:
            if gated is None:
                gated = self._has_text_coarse(det, image)
            if not gated:
                return 0.0
        h, w = image.shape[:2]
        det.limit_side_len = max(h, w)
        boxes, _ = det(image)
        mask = np.zeros((h, w), np.uint8)
        if boxes is not None and len(boxes):
            cv2.fillPoly(mask, [np.round(b).astype(np.int32) for b in boxes], 1)
        return float(mask.mean())

    def __call__(self, record, frames):
        picked = frames.pick(self.cfg.frames)
        if not picked:
            return {"text_ratio": None}
        images = [_resize_long_side(f.image, self.cfg.max_side) for f in picked]
        gates = [None] * len(images)
        if 0 < self.cfg.gate_scale < 1:
            gates = self._text_coarse(_text_detector(self.cfg.box_threshold, self.cfg.unclip_ratio), images)
        ratios = [self.ratio(image, gated) for image, gated in zip(images, gates)]
        return {"text_ratio": float(np.mean(ratios)), "text_ratio_max": float(np.max(ratios))}


# ---------------------------------------------------------------------------------------------
# optional CLIP stages: models only from local paths


_MODEL_CACHE: dict = {}


def _local_dir(path: str, what: str):
    from pathlib import Path

    p = Path(path)
    if not p.is_dir():
        raise GenlabError(f"{what}: expected a local model folder, got {path!r} (nothing is downloaded)")
    return p


def _clip(path: str):
    key = ("clip", path)
    if key not in _MODEL_CACHE:
        import torch
        from transformers import CLIPModel, CLIPProcessor

        folder = _local_dir(path, "embeddings.clip_path")
        model = CLIPModel.from_pretrained(folder, local_files_only=True).eval().to(torch.float32)
        processor = CLIPProcessor.from_pretrained(folder, local_files_only=True)
        _MODEL_CACHE[key] = (model, processor)
    return _MODEL_CACHE[key]


def _rgb(frame: Frame) -> np.ndarray:
    return np.ascontiguousarray(frame.image[..., ::-1])


class ClipEmbeddingStage:
    """CLIP image embedding (L2-normalised mean of first/middle/last frame) -> `clip_embedding`."""

    name = "clip_embedding"

    def __init__(self, cfg: EmbeddingConfig):
        self.cfg = cfg

    def __call__(self, record, frames):
        import torch

        model, processor = _clip(self.cfg.clip_path)
        images = [_rgb(f) for f in frames.pick(self.cfg.frames)]
        with torch.no_grad():
            inputs = processor(images=images, return_tensors="pt")
            emb = model.get_image_features(pixel_values=inputs["pixel_values"])
            emb = getattr(emb, "pooler_output", emb)
            emb = torch.nn.functional.normalize(emb, dim=-1).mean(0)
            emb = torch.nn.functional.normalize(emb, dim=-1)
        return {"clip_embedding": emb.tolist()}


def load_aesthetic_head(path: str):
    """A stack of linear layers from safetensors: keys `<prefix>.<i>.weight/bias`, applied in index
    order with nothing between them (the LAION aesthetic predictors v1 (one layer) and v2 (an MLP
    whose only non-linear parts are dropouts, inactive at inference) both have this form)."""
    import re

    import torch
    from safetensors.torch import load_file

    tensors = load_file(path)
    layers: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        m = re.search(r"(\d+)\.(weight|bias)$", key)
        if not m:
            raise GenlabError(f"{path}: unexpected key {key!r}; expected '<prefix>.<index>.weight|bias'")
        layers.setdefault(int(m.group(1)), {})[m.group(2)] = value.float()
    if not layers or any("weight" not in v for v in layers.values()):
        raise GenlabError(f"{path}: expected linear layers with weights, got keys {sorted(tensors)}")

    def head(x):
        for i in sorted(layers):
            x = x @ layers[i]["weight"].T + layers[i].get("bias", 0.0)
        return x

    return head


class AestheticStage:
    """Aesthetic score from a head on the CLIP image embedding -> `aesthetic_score`."""

    name = "aesthetic"

    def __init__(self, cfg: EmbeddingConfig):
        self.cfg = cfg
        self._head = None

    def __call__(self, record, frames):
        import torch

        if record.get("clip_embedding") is None:
            return {"aesthetic_score": None}
        if self._head is None:
            self._head = load_aesthetic_head(self.cfg.aesthetic_path)
        emb = torch.tensor(record["clip_embedding"], dtype=torch.float32)[None]
        return {"aesthetic_score": float(self._head(emb).reshape(-1)[0])}


class CaptionStage:
    """A caption of the middle frame from a local image-to-text model (BLIP-style) -> `caption`."""

    name = "caption"

    def __init__(self, cfg: EmbeddingConfig):
        self.cfg = cfg

    def __call__(self, record, frames):
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        key = ("caption", self.cfg.caption_path)
        if key not in _MODEL_CACHE:
            folder = _local_dir(self.cfg.caption_path, "embeddings.caption_path")
            _MODEL_CACHE[key] = (AutoModelForImageTextToText.from_pretrained(folder, local_files_only=True).eval(),
                                 AutoProcessor.from_pretrained(folder, local_files_only=True))
        model, processor = _MODEL_CACHE[key]
        middle = frames.pick(1)
        if not middle:
            return {"caption": None}
        with torch.no_grad():
            inputs = processor(images=_rgb(middle[0]), return_tensors="pt")
            ids = model.generate(**inputs, max_new_tokens=self.cfg.caption_max_tokens, do_sample=False)
        return {"caption": processor.batch_decode(ids, skip_special_tokens=True)[0].strip()}


class ClipScoreStage:
    """Cosine similarity of the clip's CLIP image embedding and the text embedding of its `summary`
    (when a summariser runs) or its `caption`."""

    name = "clip_score"

    def __init__(self, cfg: EmbeddingConfig):
        self.cfg = cfg

    def __call__(self, record, frames):
        import torch

        text = record.get("summary") or record.get("caption")  # the merged caption when there is one
        if record.get("clip_embedding") is None or not text:
            return {"clip_score": None}
        model, processor = _clip(self.cfg.clip_path)
        with torch.no_grad():
            inputs = processor(text=[text], return_tensors="pt", padding=True, truncation=True)
            text = model.get_text_features(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
            text = getattr(text, "pooler_output", text)
            text = torch.nn.functional.normalize(text, dim=-1)[0]
        image = torch.tensor(record["clip_embedding"], dtype=torch.float32)
        return {"clip_score": float(text @ image)}
