"""Optional torch emission scorer over phase tokens (the optional neural emission model).

A hybrid NN / segmental-HMM: a small temporal conv net classifies every frame into a *token* —
(concept, phase bin of its loop-body iteration) or idle — and is trained on the frame labels that
the stage-2 alignments give (forced alignment of the list-only sequences and the DP split of the
few-shot examples, both from the fitted generative model). For decoding, its posteriors become
scaled likelihoods, log p(token | x) - log p(token), which replace the per-phase Gaussians in the
segment scores; durations, counts, the switch penalty and the Viterbi search are unchanged.

Chirality: a unit aligned as the mirrored variant labels the frames of the mirrored sequence; the
net sees every training sequence in both chiralities, and decoding scores the mirrored features
as the second variant, like the generative templates.

Not persisted with the model (the JSON stays the generative model); CPU, one small net.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from genlab.systems.motion.concepts.learn import Example, ListSequence, chain_align
from genlab.systems.motion.concepts.model import NEG, ConceptModel, mirror, normalise, phase_offsets


def alignment_labels(model: ConceptModel, examples: Sequence[Example], sequences: Sequence[ListSequence],
                     n_bins: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(features, labels of the features as given, labels of the mirrored features) per training
    sequence. Token of concept c, phase bin b: c * n_bins + b; idle: C * n_bins; -100: ignored."""
    C = len(model.concepts)
    idle = C * n_bins
    out = []
    items = [(normalise(ex.keypoints, model.cfg).feats, ("ex", ex)) for ex in examples]
    items += [(normalise(sq.keypoints, model.cfg).feats, ("seq", sq)) for sq in sequences]
    for feats, (kind, item) in items:
        if kind == "ex":
            label = model.index(item.concept)
            _, units = chain_align(model, feats, label, item.count)
            units = [(label, s, e, v) for s, e, v in units]
            y = [np.full(len(feats), -100), np.full(len(feats), -100)]
        else:
            _, units, _ = model.align_feats(feats, list(item.actions))
            y = [np.full(len(feats), idle), np.full(len(feats), idle)]
        for lab, s, e, v in units:
            b = np.minimum((np.arange(e - s) * n_bins) // (e - s), n_bins - 1)
            y[v][s:e] = lab * n_bins + b
            y[1 - v][s:e] = -100  # the other chirality of this unit: not a token of this concept
        out.append((feats, y[0], y[1]))
    return out


class NeuralEmission:
    """Frame-token classifier used as the emission model of a `ConceptModel` (`attach`)."""

    def __init__(self, net, n_bins: int, mean, std, log_prior, weight: float):
        self.net, self.n_bins, self.mean, self.std = net, n_bins, mean, std
        self.log_prior, self.weight = log_prior, weight
        self.steps = 0
        self.losses: list[float] = []

    @staticmethod
    def _make_net(F: int, K: int, width: int = 64):
        from torch import nn

        return nn.Sequential(
            nn.Conv1d(F, width, 9, padding=4), nn.ReLU(),
            nn.Conv1d(width, width, 9, padding=8, dilation=2), nn.ReLU(),
            nn.Conv1d(width, width, 9, padding=16, dilation=4), nn.ReLU(),
            nn.Conv1d(width, K, 1),
        )

    @classmethod
    def fit(cls, model: ConceptModel, examples: Sequence[Example], sequences: Sequence[ListSequence],
            n_bins: int = 8, weight: float = 1.0, budget_s: float | None = 60.0, max_steps: int = 100_000,
            crop: int = 256, batch: int = 8, lr: float = 1e-3, seed: int = 0) -> NeuralEmission:
        """Train on the model's alignments of `examples` and `sequences` for `budget_s` CPU seconds."""
        import torch

        from genlab.systems.motion.concepts.peers import feature_stats

        rng = np.random.default_rng(seed)
        torch.manual_seed(seed)
        cfg = model.cfg
        data = alignment_labels(model, examples, sequences, n_bins)
        K = len(model.concepts) * n_bins + 1
        mean, std = feature_stats([f for f, _, _ in data] + [mirror(f, cfg) for f, _, _ in data])
        views = []
        for f, y0, y1 in data:
            views += [((f - mean) / std, y0), ((mirror(f, cfg) - mean) / std, y1)]
        ys = np.concatenate([y for _, y in views])
        freq = np.bincount(ys[ys >= 0], minlength=K) + 1.0
        log_prior = np.log(freq / freq.sum())
        net = cls._make_net(len(mean), K)
        opt = torch.optim.Adam(net.parameters(), lr=lr)
        out = cls(net, n_bins, mean, std, log_prior, weight)
        t0 = time.process_time()
        while out.steps < max_steps and (budget_s is None or time.process_time() - t0 < budget_s):
            xb = np.zeros((batch, crop, len(mean)), np.float32)
            yb = np.full((batch, crop), -100)
            for b in range(batch):
                x, y = views[int(rng.integers(len(views)))]
                s = int(rng.integers(max(1, len(x) - crop + 1)))
                n = min(crop, len(x) - s)
                xb[b, :n], yb[b, :n] = x[s:s + n], y[s:s + n]
            logits = net(torch.from_numpy(xb.transpose(0, 2, 1)))
            loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(yb), ignore_index=-100)
            opt.zero_grad()
            loss.backward()
            opt.step()
            out.losses.append(float(loss.detach()))
            out.steps += 1
        net.eval()
        return out

    def log_likelihoods(self, feats: np.ndarray) -> np.ndarray:
        """(T, K) scaled log-likelihoods log p(token | x) - log p(token)."""
        import torch

        x = ((feats - self.mean) / self.std).astype(np.float32)
        with torch.no_grad():
            lp = self.net(torch.from_numpy(x.T[None])).log_softmax(1)[0].T.numpy().astype(np.float64)
        return lp - self.log_prior

    def segment_scores(self, model: ConceptModel, feats: np.ndarray, only=None):
        """Same contract as `ConceptModel.segment_scores`, with the net's token scores."""
        cfg = model.cfg
        T = len(feats)
        P, B = cfg.n_phases, self.n_bins
        C = len(model.concepts)
        sel = list(range(C)) if only is None else sorted(set(only))
        ds = model.durations()
        scores = np.full((C + 1, len(ds), T + 1), NEG)
        variant = np.zeros((C, len(ds), T + 1), dtype=np.int8)
        L = [self.log_likelihoods(feats), self.log_likelihoods(mirror(feats, cfg))]
        tok = (np.arange(P) * B) // P  # phase -> token bin
        # E[v][t, p, i]: score of frame t as phase p of selected concept i, variant v.
        cols = np.array([[ci * B + tok[p] for ci in sel] for p in range(P)])  # (P, n)
        E = [Lv[:, cols] for Lv in L]  # (T, P, n)
        phase = np.arange(P)
        for k, d in enumerate(ds):
            if d < 2 or d > T:
                continue
            starts = np.arange(T - d + 1)[:, None] + phase_offsets(d, P)[None]  # (n_windows, P)
            s0 = E[0][starts, phase].sum(1)  # (n_windows, n)
            s1 = E[1][starts, phase].sum(1)
            v = (s1 > s0).astype(np.int8)
            best = self.weight * (d / P) * np.maximum(s0, s1)
            for i, ci in enumerate(sel):
                c = model.concepts[ci]
                if c.min_duration <= d <= c.max_duration:
                    dur = cfg.duration_weight * float(c.duration_logpdf(np.array([d]))[0])
                    scores[ci, k, d:] = best[:, i] + dur
                    variant[ci, k, d:] = v[:, i]
        scores[C, 0, 1:] = self.weight * L[0][:, C * B] + cfg.idle_bonus
        return scores, ds, variant


def attach(model: ConceptModel, emission: NeuralEmission | None) -> ConceptModel:
    """The same model decoding with `emission` (None: back to the generative emission)."""
    from dataclasses import replace

    return replace(model, emission=emission)
