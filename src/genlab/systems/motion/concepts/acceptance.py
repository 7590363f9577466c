"""Acceptance figures on the frozen synthetic test set (used by the slow tests, the
benchmark and `genlab motion concepts evaluate`)."""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
from tqdm import tqdm

from genlab.systems.motion.concepts import dataset, metrics
from genlab.systems.motion.concepts.config import ConceptConfig
from genlab.systems.motion.concepts.learn import attach_programs, fit_few_shot, hard_em
from genlab.systems.motion.concepts.model import normalise


def description_scores(describe, seqs: Sequence[dataset.Sequence], progress: bool = False) -> dict[str, float]:
    t0 = time.perf_counter()
    preds = [describe(s.keypoints) for s in tqdm(seqs, desc="describe", disable=not progress)]
    dt = time.perf_counter() - t0
    trues = [s.description for s in seqs]
    out = {"NormED": metrics.mean_norm_ed(preds, trues, "true"), "NormED_max": metrics.mean_norm_ed(preds, trues, "max")}
    out.update(metrics.detection_map(preds, trues))
    out["count_MAE"] = metrics.count_mae(preds, trues)
    out["frame_acc"] = metrics.frame_accuracy(preds, trues)
    out["s_per_1000_frames"] = 1000 * dt / sum(s.description.n_frames for s in seqs)
    return out


def train(k: int, n_lists: int, cfg: ConceptConfig | None = None, seed: int = 0, progress: bool = False):
    """Stage 1 on k examples per concept (+ stage 2 on n_lists list-only sequences)."""
    cfg = cfg or ConceptConfig()
    examples = dataset.few_shot(k, seed=seed)
    model, _ = fit_few_shot(examples, cfg)
    logs = []
    if n_lists:
        model, log = hard_em(model, examples, dataset.list_only(dataset.sequences("lists", n_lists, seed=seed)), progress)
        logs.append(log)
    return attach_programs(model, examples), examples, logs


def synthesis_scores(model, seqs: Sequence[dataset.Sequence], classifier, n_per_concept: int = 20,
                     seed: int = 0) -> dict[str, float]:
    """APE with true timing (the description's spans and counts, the performer's chirality), KD of
    instances synthesised at the model's own speed, FID of instance clips (classifier features),
    and the share of sampled instances classified as the requested concept."""
    from genlab.systems.motion.concepts.synth import synthesise, synthesise_action

    apes = []
    real_clips, fake_clips, kds = [], [], []
    for s in seqs:
        norm = normalise(s.clean, model.cfg)
        gt = (s.clean - norm.origin) / norm.height
        syn = synthesise(model, s.description, mirrored=s.mirrored)
        apes.append(metrics.ape(syn.keypoints, gt))
        for i, a in enumerate(s.description.actions):
            real = gt[a.start:a.end]
            c = model.concepts[model.index(a.concept)]
            n = int(round(a.count * np.exp(c.log_dur_mu)))
            fake = synthesise_action(model, a.concept, a.count, n, mirrored=s.mirrored, temperature=1.0,
                                     seed=seed * 7919 + i)
            real_clips.append(real)
            fake_clips.append(fake)
            if len(kds) < 60:  # DTW is quadratic; 60 instances are plenty for a mean
                kds.append(metrics.keypoint_distance(fake, real))
    rng = np.random.default_rng(seed)
    requested, samples = [], []
    for c in model.concepts:
        for j in range(n_per_concept):
            count = int(rng.integers(2, 9))
            n = int(round(count * np.exp(c.log_dur_mu + c.log_dur_sigma * rng.standard_normal())))
            samples.append(synthesise_action(model, c.name, count, max(n, 2 * count), mirrored=bool(j % 2),
                                             temperature=1.0, seed=seed * 104729 + len(samples)))
            requested.append(c.name)
    got = classifier.predict(samples, normalised=True)
    fid = metrics.frechet_distance(classifier.features(real_clips, normalised=True),
                             classifier.features(fake_clips, normalised=True))
    return {
        "APE": float(np.mean(apes)),
        "KD": float(np.mean(kds)),
        "FID": fid,
        "classified_as_requested": float(np.mean([g == r for g, r in zip(got, requested)])),
    }
