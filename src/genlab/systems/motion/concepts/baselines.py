"""Baselines for description.

Nearest template by DTW (the acceptance peer): every few-shot example is cut into `count` equal
iterations; their phase-sampled means are the templates (plus mirrored copies). A candidate
iteration [t - d, t) is scored by its DTW distance to the nearest template of each concept (P x P
phase grid, mean joint distance along the path), idle by the distance to the rest pose; the same
segmental Viterbi decodes. Nothing is learned beyond the templates: no variances, no duration or
amplitude priors, no use of the list-only sequences.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from genlab.systems.motion.concepts.config import ConceptConfig
from genlab.systems.motion.concepts.description import Action, Description
from genlab.systems.motion.concepts.learn import Example
from genlab.systems.motion.concepts.model import mirror, normalise, phase_offsets
from genlab.systems.motion.concepts.viterbi import NEG, free_graph, segmental_viterbi


def batched_dtw(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """A (n, P, F), B (m, P, F) -> (n, m) DTW cost / (2P - 1); local cost: Euclidean distance
    between the two frames' feature vectors divided by sqrt(F / 2) (an rms per-joint distance)."""
    n, P, F = A.shape
    m = B.shape[0]
    a2 = (A * A).sum(-1)  # (n, P)
    b2 = (B * B).sum(-1)  # (m, P)
    cross = A.reshape(n * P, F) @ B.reshape(m * P, F).T  # (n P, m P)
    d2 = a2.reshape(n, 1, P, 1) + b2.reshape(1, m, 1, P) - 2.0 * cross.reshape(n, P, m, P).transpose(0, 2, 1, 3)
    local = np.sqrt(np.maximum(d2, 0.0) / (F / 2))  # (n, m, P, P)
    acc = np.full((n, m, P + 1, P + 1), np.inf)
    acc[:, :, 0, 0] = 0.0
    for i in range(1, P + 1):
        for j in range(1, P + 1):
            best = np.minimum(np.minimum(acc[:, :, i - 1, j], acc[:, :, i, j - 1]), acc[:, :, i - 1, j - 1])
            acc[:, :, i, j] = local[:, :, i - 1, j - 1] + best
    return acc[:, :, P, P] / (2 * P - 1)


@dataclass
class DTWTemplates:
    cfg: ConceptConfig
    names: list[str]
    templates: list[np.ndarray]  # per concept (m_c, P, F), mirrored copies included
    rest: np.ndarray  # (F,)
    min_duration: list[int]
    max_duration: list[int]
    scale: float = 0.02  # body heights: a DTW cost of `scale` costs one nat per frame
    idle_cost: float = 0.04  # idle frames pay their distance to rest, capped below by this margin
    switch_penalty: float = 8.0
    n_phases: int = 8

    @classmethod
    def fit(cls, examples: Sequence[Example], cfg: ConceptConfig, n_phases: int = 8) -> DTWTemplates:
        names: list[str] = []
        for ex in examples:
            if ex.concept not in names:
                names.append(ex.concept)
        temps: dict[str, list] = {n: [] for n in names}
        durs: dict[str, list] = {n: [] for n in names}
        ends = []
        for ex in examples:
            f = normalise(ex.keypoints, cfg).feats
            b = np.linspace(0, len(f), ex.count + 1).round().astype(int)
            its = [f[s + phase_offsets(e - s, n_phases)] for s, e in zip(b[:-1], b[1:])]
            t = np.mean(its, axis=0)
            temps[ex.concept] += [t, mirror(t, cfg)]
            durs[ex.concept] += list(np.diff(b))
            ends += [t[0], t[-1]]
        return cls(
            cfg, names, [np.stack(temps[n]) for n in names], np.mean(ends, 0),
            [max(cfg.min_duration, int(min(durs[n]) / cfg.duration_slack)) for n in names],
            [min(cfg.max_duration, int(np.ceil(max(durs[n]) * cfg.duration_slack))) for n in names],
            n_phases=n_phases,
        )

    def describe(self, keypoints) -> Description:
        feats = normalise(keypoints, self.cfg).feats
        T = len(feats)
        C = len(self.names)
        lo, hi = max(2, min(self.min_duration)), max(self.max_duration)
        # Iteration durations on a grid of step 2 (DTW absorbs the rest of the warping).
        ds = np.array([1] + list(range(lo, hi + 1, 2)))
        scores = np.full((C + 1, len(ds), T + 1), NEG)
        allt = np.concatenate(self.templates)
        owner = np.concatenate([[c] * len(t) for c, t in enumerate(self.templates)])
        for k, d in enumerate(ds):
            if d < 2 or d > T:
                continue
            ok = [self.min_duration[c] <= d + 1 and d - 1 <= self.max_duration[c] for c in range(C)]
            if not any(ok):
                continue
            X = feats[np.arange(T - d + 1)[:, None] + phase_offsets(d, self.n_phases)[None]]
            dist = batched_dtw(X, allt)  # (n, m)
            for c in range(C):
                if ok[c]:
                    scores[c, k, d:] = -d * dist[:, owner == c].min(1) / self.scale
        r = feats.reshape(T, -1, 2) - self.rest.reshape(-1, 2)
        idle = np.linalg.norm(r, axis=-1).mean(-1)
        scores[C, 0, 1:] = -np.maximum(idle, self.idle_cost) / self.scale
        graph = free_graph(C, C, self.switch_penalty, min_count=[2] * C)
        res = segmental_viterbi(scores, ds, graph)
        actions, cur = [], None
        for u in res.units:
            if u.label == C:
                cur = None
                continue
            if graph.is_first[u.state] or cur is None:
                cur = [u.label, u.start, u.end, 1, u.score]
                actions.append(cur)
            else:
                cur[2], cur[3], cur[4] = u.end, cur[3] + 1, cur[4] + u.score
        return Description(T, tuple(Action(self.names[lab], s, e, n, float(sc / (e - s)))
                                    for lab, s, e, n, sc in actions))


# ------------------------------------------------------------------------------ MS-TCN-style peer
class TCNBaseline:
    """An MS-TCN-style net (Farha & Gall 2019, in miniature): stages of dilated residual temporal
    convolutions, each refining the previous stage's class probabilities, trained on frame labels
    (cross-entropy on every stage + MS-TCN's truncated smoothing loss, weight 0.15, tau 4) from the
    few-shot examples chained with idle stretches and, when given, fully frame-labelled sequences.
    Frames are classified, smoothed by a median filter, runs become actions; a run's count is its
    length over the concept's median iteration duration."""

    def __init__(self, net, names, cfg, iter_len, min_run, mean=0.0, std=1.0):
        self.net, self.names, self.cfg, self.iter_len, self.min_run = net, names, cfg, iter_len, min_run
        self.mean, self.std = mean, std  # input standardisation (training features' statistics)
        self.steps = 0
        self.losses: list[float] = []

    @staticmethod
    def _make_net(F: int, C: int, width: int = 64, layers: int = 8, stages: int = 2):
        from torch import nn

        class Residual(nn.Module):
            def __init__(self, d):
                super().__init__()
                self.conv = nn.Conv1d(width, width, 3, padding=d, dilation=d)
                self.out = nn.Conv1d(width, width, 1)

            def forward(self, x):  # (B, width, T)
                return x + self.out(nn.functional.relu(self.conv(x)))

        def stage(inp):
            return nn.Sequential(nn.Conv1d(inp, width, 1), *[Residual(2**i) for i in range(layers)],
                                 nn.Conv1d(width, C, 1))

        class MSTCN(nn.Module):
            def __init__(self):
                super().__init__()
                self.stages = nn.ModuleList([stage(F)] + [stage(C) for _ in range(stages - 1)])

            def forward(self, x):  # -> list of (B, C, T) logits, one per stage
                outs = [self.stages[0](x)]
                for st in self.stages[1:]:
                    outs.append(st(outs[-1].softmax(1)))
                return outs

        return MSTCN()

    @classmethod
    def fit(cls, examples: Sequence[Example], labelled=(), cfg: ConceptConfig | None = None, steps: int = 400,
            seed: int = 0, budget_s: float | None = None, standardise: bool = True,
            augment: bool = True) -> TCNBaseline:
        """Train for `steps` steps, or until `budget_s` CPU seconds are spent when given. Inputs are
        standardised; chained few-shot clips are augmented (stretch, amplitude, mirror)."""
        import torch

        from genlab.systems.motion.concepts.peers import chain_clips, feature_stats, train_budgeted

        cfg = cfg or ConceptConfig()
        rng = np.random.default_rng(seed)
        torch.manual_seed(seed)
        names = []
        for ex in examples:
            if ex.concept not in names:
                names.append(ex.concept)
        C = len(names) + 1  # idle = last
        clips = [(normalise(ex.keypoints, cfg).feats, names.index(ex.concept)) for ex in examples]
        iter_len = {n: float(np.median([len(f) / ex.count for (f, _), ex in zip(clips, examples)
                                        if ex.concept == n])) for n in names}
        full = []
        for s in labelled:
            lab = np.full(s.description.n_frames, len(names))
            for a in s.description.actions:
                lab[a.start:a.end] = names.index(a.concept)
            full.append((normalise(s.keypoints, cfg).feats, lab))

        mean, std = feature_stats([f for f, _ in clips] + [f for f, _ in full]) if standardise else (0.0, 1.0)

        def sample():
            if full and rng.random() < 0.5:
                x, y = full[int(rng.integers(len(full)))]
                return (x - mean) / std, y
            x, y, _ = chain_clips(rng, clips, cfg, augment=augment)
            return (x - mean) / std, np.where(y < 0, C - 1, y)

        net = cls._make_net(clips[0][0].shape[1], C)
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)

        def step():
            x, y = sample()
            yt = torch.from_numpy(y)
            loss = 0.0
            for logits in net(torch.from_numpy(x.T[None].astype(np.float32))):
                lp = logits[0].T.log_softmax(1)  # (T, C)
                loss = loss + torch.nn.functional.nll_loss(lp, yt)
                smooth = (lp[1:] - lp[:-1].detach()) ** 2
                loss = loss + 0.15 * smooth.clamp(max=16.0).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            out.losses.append(float(loss.detach()))

        out = cls(net, names, cfg, iter_len, int(min(iter_len.values())), mean, std)
        out.steps = train_budgeted(step, budget_s, steps if budget_s is None else 10**9)
        net.eval()
        return out

    def describe(self, keypoints) -> Description:
        import torch
        from scipy.ndimage import median_filter

        feats = (normalise(keypoints, self.cfg).feats - self.mean) / self.std
        with torch.no_grad():
            logits = self.net(torch.from_numpy(feats.T[None].astype(np.float32)))[-1][0].T.numpy()
        prob = np.exp(logits - logits.max(1, keepdims=True))
        prob /= prob.sum(1, keepdims=True)
        lab = median_filter(prob.argmax(1), size=9, mode="nearest")
        C = len(self.names)
        actions = []
        t = 0
        while t < len(lab):
            u = t
            while u < len(lab) and lab[u] == lab[t]:
                u += 1
            if lab[t] != C and u - t >= self.min_run:
                name = self.names[lab[t]]
                count = max(1, int(round((u - t) / self.iter_len[name])))
                actions.append(Action(name, t, u, count, float(prob[t:u, lab[t]].mean())))
            t = u
        return Description(len(lab), tuple(actions))
