"""Real training pairs from a video: MediaPipe Pose for keypoints, MediaPipe selfie segmentation for
the person mask, one-person frames only.

Per frame (decoded with PyAV, downscaled): pose -> a square crop around the keypoints (the selfie
model wants a person-sized view) -> segmentation on the crop -> the component under the hips is the
person. A frame is usable if the pose is confident (mean visibility >= `min_visibility`), the
person's area is within limits and no other large component (a second person) is in the crop.
Consecutive usable frames form clips of at most `clip_len` frames; clips with fewer than 2 usable
frames are skipped and counted. Train/eval split by clip (never by frame). Pairs: scene = crop i
with a box mask, reference = person of crop j != i of the same clip, target = crop i; the keypoints
(33, MediaPipe layout) of crop i are kept for PCKh.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from genlab.core.io import atomic_write_text
from genlab.core.pose.masks import MediaPipeSelfieSegmenter, largest_components
from genlab.errors import GenlabError
from genlab.systems.insertion import pairs, toy

HIPS = (23, 24)  # MediaPipe-33 left/right hip


@dataclass
class RealFrame:
    index: int
    image: np.ndarray  # (S, S, 3) float32 crop
    mask: np.ndarray  # (S, S) float32 person mask
    keypoints: np.ndarray  # (33, 2) in crop pixels
    visibility: np.ndarray  # (33,)


@dataclass
class Extraction:
    clips: list[list[RealFrame]] = field(default_factory=list)
    counts: dict = field(default_factory=dict)


def _pose_fn():
    """motion's MediaPipePose wrapper when present; else the same call made here."""
    try:
        from genlab.core.pose.mediapipe_pose import MediaPipePose

        return MediaPipePose(model_complexity=1, static_image_mode=False)
    except ImportError:  # pragma: no cover - until core/pose/mediapipe_pose.py lands
        import mediapipe as mp

        pose = mp.solutions.pose.Pose(static_image_mode=False, model_complexity=1)

        class _Pose:
            def __call__(self, rgb):
                res = pose.process(np.ascontiguousarray(rgb))
                if res.pose_landmarks is None:
                    return None
                h, w = rgb.shape[:2]
                lm = res.pose_landmarks.landmark
                return (np.array([[p.x * w, p.y * h] for p in lm]), np.array([p.visibility for p in lm]))

            def close(self):
                pose.close()

        return _Pose()


def _crop(img: np.ndarray, xy: np.ndarray, size: int, margin: float = 1.5):
    """Square crop (grey-padded) around the keypoints, resized to size; returns crop, (x0, y0, scale)."""
    import cv2

    lo, hi = np.nanmin(xy, 0), np.nanmax(xy, 0)
    side = float(max(hi - lo) * margin)
    cx, cy = (lo + hi) / 2
    x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
    s = int(round(side))
    pad = s
    padded = cv2.copyMakeBorder(img, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(128, 128, 128))
    crop = padded[y0 + pad:y0 + pad + s, x0 + pad:x0 + pad + s]
    crop = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)
    return crop, (x0, y0, size / s)


def extract(video: str | Path, size: int = 64, scale: float = 0.5, stride: int = 1, clip_len: int = 30,
            max_frames: int | None = None, min_visibility: float = 0.5, area: tuple[float, float] = (0.03, 0.6),
            progress: bool = False) -> Extraction:
    import av
    import cv2
    from tqdm import tqdm

    video = Path(video)
    if not video.is_file():
        raise GenlabError(f"video not found: {video}")
    counts = {"frames": 0, "no_pose": 0, "low_score": 0, "area": 0, "multi_person": 0, "usable": 0,
              "clips": 0, "clips_skipped_lt2": 0}
    segments: list[list[RealFrame]] = [[]]
    try:  # the file is checked before MediaPipe starts
        container = av.open(str(video))
    except (av.error.FFmpegError, OSError) as err:
        raise GenlabError(f"video {video}: not a readable video ({type(err).__name__}: {err})") from None
    if not container.streams.video:
        container.close()
        raise GenlabError(f"video {video}: has no video stream")
    pose = _pose_fn()
    seg = MediaPipeSelfieSegmenter(1)
    try:
        with container:
            for i, frame in enumerate(tqdm(container.decode(video=0), desc="frames", disable=not progress)):
                if max_frames is not None and i >= max_frames:
                    break
                if i % stride:
                    continue
                counts["frames"] += 1
                img = frame.to_ndarray(format="rgb24")
                img = cv2.resize(img, (round(img.shape[1] * scale), round(img.shape[0] * scale)),
                                 interpolation=cv2.INTER_AREA)
                out = pose(img)
                reason = None
                if out is None:
                    reason = "no_pose"
                else:
                    xy, vis = out
                    if vis.mean() < min_visibility:
                        reason = "low_score"
                if reason is None:
                    crop, (x0, y0, s) = _crop(img, xy, size * 4)
                    m = seg(crop)
                    comps = largest_components(m)
                    kp = (xy - np.array([x0, y0])) * s
                    hip = np.clip(kp[list(HIPS)].mean(0).round().astype(int), 0, size * 4 - 1)
                    person = next((c for c in comps if c[hip[1], hip[0]]), comps[0] if comps else None)
                    if person is None or not area[0] <= person.mean() <= area[1]:
                        reason = "area"
                    elif any(c.sum() > 0.3 * person.sum() for c in comps if c is not person):
                        reason = "multi_person"
                if reason is not None:
                    counts[reason] += 1
                    if segments[-1]:
                        segments.append([])
                    continue
                counts["usable"] += 1
                small = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
                pm = cv2.resize(person.astype(np.float32), (size, size), interpolation=cv2.INTER_AREA)
                if len(segments[-1]) >= clip_len:
                    segments.append([])
                segments[-1].append(RealFrame(i, small, pm, (kp / 4).astype(np.float32), vis.astype(np.float32)))
    finally:
        pose.close()
        seg.close()
    result = Extraction(counts=counts)
    for s in segments:
        if not s:
            continue
        if len(s) < 2:
            counts["clips_skipped_lt2"] += 1
            continue
        result.clips.append(s)
    counts["clips"] = len(result.clips)
    return result


def make_real_pair(clip: list[RealFrame], rng: np.random.Generator, cfg: pairs.PairConfig, mask_kind: str = "box",
                   dilation: int | None = None) -> pairs.Pair:
    if len(clip) < 2:
        raise GenlabError(f"real pairs: a clip needs >= 2 usable frames, got {len(clip)}")
    i, j = rng.choice(len(clip), size=2, replace=False)
    tgt, ref = clip[i], clip[j]
    d = cfg.px(cfg.test_dilation_px) if dilation is None else dilation
    mask = pairs.make_mask(tgt.mask, mask_kind, d, rng).astype(np.float32)
    scene = tgt.image * (1 - mask[..., None]) + toy.GREY * mask[..., None]
    reference = pairs.centred_reference(ref.image, ref.mask, cfg, rng if cfg.augment else None)
    meta = {"frames": [tgt.index, ref.index], "keypoints": tgt.keypoints.tolist(), "visibility": tgt.visibility.tolist(),
            "mask_kind": mask_kind, "dilation": d, "layout": "mediapipe33"}
    return pairs.Pair(target=tgt.image, scene=scene.astype(np.float32), mask=mask, reference=reference, meta=meta)


def split_clips(clips: list, eval_every: int = 4) -> tuple[list, list]:
    """Train/eval split by clip: every `eval_every`-th clip is held out."""
    train = [c for k, c in enumerate(clips) if k % eval_every != eval_every - 1]
    held = [c for k, c in enumerate(clips) if k % eval_every == eval_every - 1]
    return train, held


def write_real_pairs(video: str | Path, out_dir: str | Path, size: int = 64, seed: int = 0,
                     pairs_per_clip: int = 8, max_frames: int | None = None, stride: int = 1,
                     progress: bool = True) -> dict:
    """Extract, split by clip and write pair shards in the toy's format (`pairs.write_pair_shard`):
    training pairs in `out_dir` (what `genlab insertion train --pairs` reads), held-out pairs in
    `out_dir/eval`, each with its manifest.json, plus summary.json; returns the summary. Written under a
    temporary name and renamed, so a failed extraction leaves no half-written folder."""
    import os
    import shutil

    ext = extract(video, size=size, max_frames=max_frames, stride=stride, progress=progress)
    if not ext.clips:
        raise GenlabError(f"{video}: no clip with >= 2 usable one-person frames ({ext.counts})")
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise GenlabError(f"--out {out}: folder exists and is not empty; choose a new folder for real pairs")
    cfg = pairs.PairConfig(size=size, ref_size=size // 2)
    train, held = split_clips(ext.clips) if len(ext.clips) > 1 else (ext.clips, [])
    summary = {"video": str(video), "counts": ext.counts, "train_clips": len(train), "eval_clips": len(held)}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"  # renamed onto `out` once complete
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        for name, clips in (("train", train), ("eval", held)):
            rng = np.random.default_rng(np.random.SeedSequence([seed, len(name)]))
            drawn = [make_real_pair(c, rng, cfg) for c in clips for _ in range(pairs_per_clip)]
            if not drawn:
                continue
            folder = tmp if name == "train" else tmp / "eval"
            folder.mkdir(exist_ok=True)
            pairs.write_pair_shard(folder / "shard-00000.npz", drawn)
            settings = {"source": "video", "video": str(video), "seed": seed, "split": name,
                        "pairs_per_clip": pairs_per_clip, "config": asdict(cfg)}
            pairs.write_manifest(folder, settings, [{"file": "shard-00000.npz", "pairs": [0, len(drawn)]}])
            summary[f"{name}_pairs"] = len(drawn)
        atomic_write_text(tmp / "summary.json", json.dumps(summary, indent=1))
        if out.exists():
            out.rmdir()  # empty (checked above)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return summary


def extraction_mask(clip: list[RealFrame], pair: pairs.Pair) -> np.ndarray:
    """The person mask of the pair's target frame."""
    return next(f.mask for f in clip if f.index == pair.meta["frames"][0])
