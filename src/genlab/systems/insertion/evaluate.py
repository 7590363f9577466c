"""Evaluation on the fixed held-out toy pairs: affordance, PCKh@0.5, identity colour error, FID.

Methods compared on the same pairs (the same noise for every sampled method):
- ground truth: the target frame (sanity: affordance must be >= 0.95 or the metric means nothing)
- paste: the reference person pasted unchanged (no re-posing) into the empty room, feet on the mask
  box's bottom edge
- ours: insertion with scene and person
- scene dropped: scene hallucination with the same reference (affordance should fall)
- person hallucination: scene only, no reference
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional

from genlab.core.pose.masks import bbox
from genlab.systems.insertion import metrics, pairs, toy
from genlab.systems.insertion.config import InsertionConfig, SampleSettings
from genlab.systems.insertion.pipeline import InsertionPipeline

EVAL_SEED = 20230601
VALIDATION_SEED = EVAL_SEED + 2  # +1 draws the swap pairs


def paste_baseline(pair: pairs.Pair, cfg: pairs.PairConfig) -> np.ndarray:
    """Paste the reference person, unchanged in pose and scale, into the scene without the target
    person (the toy's empty room; the grey-masked scene elsewhere): centred in the mask box
    horizontally, feet on the box's bottom edge less the mask dilation (where the target's feet are)."""
    size = cfg.size
    crop = int(round(cfg.ref_crop * size))
    ref = torch.from_numpy(pair.reference).permute(2, 0, 1)[None]
    ref = functional.interpolate(ref, size=(crop, crop), mode="bilinear", align_corners=False)[0].permute(1, 2, 0).numpy()
    alpha = np.clip(np.abs(ref - toy.GREY).max(-1) * 6, 0, 1)  # person coverage from the grey background
    pb = bbox(alpha, 0.5)
    out = (pair.background if pair.background is not None else pair.scene).copy()
    mb = bbox(pair.mask, 0.5)
    if pb is None or mb is None:
        return out
    d = int(pair.meta.get("dilation", 0))
    dx = int(round((mb[0] + mb[2]) / 2 - (pb[0] + pb[2]) / 2))
    dy = int(round((mb[3] - d) - pb[3]))
    ys, xs = np.nonzero(alpha > 0)
    ty, tx = ys + dy, xs + dx
    ok = (ty >= 0) & (ty < size) & (tx >= 0) & (tx < size)
    a = alpha[ys[ok], xs[ok]][:, None]
    out[ty[ok], tx[ok]] = out[ty[ok], tx[ok]] * (1 - a) + ref[ys[ok], xs[ok]] * a
    return out


def to_tensor(images: list[np.ndarray] | np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() * 2 - 1


def to_numpy(images: torch.Tensor) -> np.ndarray:
    return ((images.clamp(-1, 1) + 1) / 2).permute(0, 2, 3, 1).numpy()


def score(images: torch.Tensor, metas: list[dict], readers, gt_kp: np.ndarray | None = None,
          hits: bool = False) -> dict:
    """Affordance (+ PCKh against gt_kp, identity colour error) of images (N, 3, S, S) in [-1, 1];
    hits=True adds the per-pair affordance outcomes (0/1), for paired comparisons."""
    reg, cls = readers
    kp = metrics.read_keypoints(reg, images)
    present = metrics.person_present(cls, images)
    ok = metrics.affordance_hits(kp, metas, present=present)
    out = {"affordance": float(ok.mean()), "person_present": float(present.mean())}
    if hits:
        out["hits"] = ok.astype(int).tolist()
    if gt_kp is not None:
        out["pckh@0.5"] = metrics.pckh(kp, gt_kp)
    out["identity_error"] = metrics.identity_error(to_numpy(images), kp, metas)
    return out


def sample_all(pipe: InsertionPipeline, batch: dict, mode: str, settings: SampleSettings, seed: int,
               chunk: int = 32, progress: bool = False) -> torch.Tensor:
    outs = []
    n = batch["scene"].shape[0]
    for i in range(0, n, chunk):
        g = torch.Generator().manual_seed(seed + i)
        sl = slice(i, i + chunk)
        ref = batch["reference"][sl] if mode != "person_hallucination" else None
        outs.append(pipe.sample(batch["scene"][sl], batch["mask"][sl], ref, mode=mode, settings=settings,
                                generator=g, progress=progress).images)
    return torch.cat(outs)


def evaluate(pipe: InsertionPipeline, cfg: InsertionConfig, readers, n_pairs: int = 200, n_swap: int = 0,
             settings: SampleSettings | None = None, methods: tuple[str, ...] = ("insertion", "scene_hallucination",
             "person_hallucination"), seed: int = 0, progress: bool = False,
             pair_seed: int = EVAL_SEED, hits: bool = False) -> dict:
    """The JSON report of `genlab insertion eval` on the toy. `pair_seed=VALIDATION_SEED` draws another
    held-out set (clips no training stream uses) on which to choose settings such as guidance."""
    settings = settings or cfg.sample
    pcfg = pairs.PairConfig(size=cfg.size, ref_size=cfg.ref_size)
    held_out = pairs.eval_pairs(n_pairs, pcfg, seed=pair_seed)
    metas = [p.meta for p in held_out]
    gt_kp = np.asarray([m["keypoints"] for m in metas], np.float32)
    batch = pairs.collate(held_out)
    report = {"n_pairs": n_pairs, "checksum": pairs.checksum(held_out), "ddim_steps": settings.steps,
              "scale_scene": settings.scale_scene, "scale_person": settings.scale_person}
    report["ground_truth"] = score(batch["target"], metas, readers, gt_kp, hits)
    paste = to_tensor([paste_baseline(p, pcfg) for p in held_out])
    report["paste"] = score(paste, metas, readers, gt_kp, hits)
    for mode in methods:
        imgs = sample_all(pipe, batch, mode, settings, seed, progress=progress)
        report[mode] = score(imgs, metas, readers, gt_kp if mode != "person_hallucination" else None, hits)
        if mode == "insertion":
            _, cls = readers
            real = metrics.classifier_features(cls, batch["target"])
            report[mode]["fid_same"] = metrics.frechet_distance(metrics.classifier_features(cls, imgs), real)
    if n_swap:
        swaps = pairs.eval_pairs(n_swap, pcfg, seed=EVAL_SEED + 1, mode="swap")
        sb = pairs.collate(swaps)
        imgs = sample_all(pipe, sb, "insertion", settings, seed, progress=progress)
        _, cls = readers
        real = metrics.classifier_features(cls, sb["target"])
        kp = metrics.read_keypoints(readers[0], imgs)
        present = metrics.person_present(cls, imgs)
        report["swap"] = {"affordance": metrics.affordance_accuracy(kp, [p.meta for p in swaps], present=present),
                          "fid": metrics.frechet_distance(metrics.classifier_features(cls, imgs), real),
                          "identity_error": metrics.identity_error(to_numpy(imgs), kp, [p.meta for p in swaps])}
    return report
