"""Staged, low-resource learning of concept models.

1. Few-shot (`fit_few_shot`): k >= 1 trimmed examples per concept, each with its count. The first
   example is split into `count` equal iterations to start; then every example is re-split by
   dynamic programming (a chain of exactly `count` iteration units, segmental Viterbi), which also
   picks each iteration's chirality, and the phase statistics are re-estimated. Priors keep k = 1
   usable: an inverse-gamma prior on every variance, a prior on the log-duration spread.
2. List-only sequences (`hard_em`): forced alignment of each ordered action list (segmental
   Viterbi), then exact MAP re-estimation from all aligned iterations (few-shot examples included),
   until the relative gain falls below `em_tol`. The objective (best-alignment log-likelihood plus
   log-prior) cannot fall: the M-step maximises it for fixed alignments and the E-step maximises
   it for fixed parameters; duration limits and the idle variance stay fixed so both steps see the
   same model family.
3. Unlabelled sequences (`self_label`): free decoding; instances whose per-frame margin over the
   best other concept exceeds `self_label_margin` join the examples; hard EM runs again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from tqdm import tqdm

from genlab.errors import GenlabError
from genlab.systems.motion.concepts.config import ConceptConfig
from genlab.systems.motion.concepts.model import (
    Concept,
    ConceptModel,
    mirror,
    normalise,
    phase_offsets,
)
from genlab.systems.motion.concepts.viterbi import StateGraph, segmental_viterbi

IDLE_PRIOR_STRENGTH = 20.0  # pseudo-frames pulling the idle mean towards the rest pose
DURATION_PRIOR_STRENGTH = 20.0  # iterations of one instance share its speed: weak evidence


@dataclass(frozen=True)
class Example:
    """A trimmed example: keypoints (T, 17, 2) showing `count` iterations of `concept`."""

    concept: str
    keypoints: np.ndarray
    count: int


@dataclass(frozen=True)
class ListSequence:
    """An untrimmed sequence paired only with its ordered action list."""

    keypoints: np.ndarray
    actions: tuple[str, ...]


@dataclass
class _Stats:
    P: int
    F: int
    s0: np.ndarray = None
    s1: np.ndarray = None
    s2: np.ndarray = None
    log_durs: list = field(default_factory=list)
    counts: list = field(default_factory=list)

    def __post_init__(self):
        self.s0 = np.zeros(self.P)
        self.s1 = np.zeros((self.P, self.F))
        self.s2 = np.zeros((self.P, self.F))

    def add(self, feats: np.ndarray, start: int, end: int, variant: int, cfg: ConceptConfig) -> None:
        d = end - start
        x = feats[start + phase_offsets(d, self.P)]  # (P, F), same sampling as the scores
        if variant:
            x = mirror(x, cfg)
        w = d / self.P
        self.s0 += w
        self.s1 += w * x
        self.s2 += w * x * x
        self.log_durs.append(float(np.log(d)))


@dataclass
class LearnLog:
    stage: str
    objective: list[float] = field(default_factory=list)
    accepted: int = 0  # self-labelled instances
    fell: bool = False  # hard EM's round-off guard fired (an iteration would have lowered the objective)


def amplitude_prior(mean: np.ndarray, rest: np.ndarray, cfg: ConceptConfig) -> np.ndarray:
    """Prior variance per phase and coordinate: a floor plus what a +-amplitude_std change of the
    motion's size (deviation from the rest pose) would add. One example cannot show how much a
    concept varies between performers; this prior says it scales with how far a joint moves."""
    return cfg.var_prior + (cfg.amplitude_std * (mean - rest)) ** 2


def _estimate(name: str, st: _Stats, cfg: ConceptConfig, dmin: int, dmax: int, var0: np.ndarray) -> Concept:
    mean = st.s1 / st.s0[:, None]
    resid = np.maximum(st.s2 - st.s0[:, None] * mean**2, 0.0)
    # MAP under log p(v) = -nu/2 (log v + v0 / v) per coordinate (times the emission scale).
    var = (resid + cfg.var_prior_strength * var0) / (st.s0[:, None] + cfg.var_prior_strength)
    var = np.maximum(var, cfg.var_floor)
    ld = np.asarray(st.log_durs)
    mu = float(ld.mean())
    sig2 = (float(((ld - mu) ** 2).sum()) + DURATION_PRIOR_STRENGTH * cfg.duration_sigma_prior**2) / (
        len(ld) + DURATION_PRIOR_STRENGTH)
    counts = np.ones(cfg.max_count)
    for n in st.counts:
        counts[min(n, cfg.max_count) - 1] += 1
    return Concept(name, mean, var, mu, float(np.sqrt(sig2)), dmin, dmax, counts / counts.sum(), var0=var0)


def _log_prior(model: ConceptModel, rest: np.ndarray) -> float:
    cfg = model.cfg
    lp = 0.0
    for c in model.concepts:
        lp += -0.5 * cfg.emission_scale * cfg.var_prior_strength * float(
            (np.log(c.var) + c.var0 / c.var).sum())
        s2 = c.log_dur_sigma**2
        lp += -0.5 * cfg.duration_weight * DURATION_PRIOR_STRENGTH * (np.log(s2) + cfg.duration_sigma_prior**2 / s2)
    lp += -0.5 * cfg.emission_scale * IDLE_PRIOR_STRENGTH * float(
        ((model.idle_mean - rest) ** 2 / model.idle_var).sum())
    return float(lp)


def chain_graph(label: int, n: int) -> StateGraph:
    """Exactly n iteration units of one label, no idle: re-splits a trimmed example."""
    A = np.full((n, n), -np.inf)
    for i in range(n - 1):
        A[i, i + 1] = 0.0
    start = np.full(n, -np.inf)
    start[0] = 0.0
    end = np.full(n, -np.inf)
    end[-1] = 0.0
    return StateGraph(np.full(n, label), A, start, end, np.zeros(n, int), np.arange(n) == 0)


def chain_align(model: ConceptModel, feats: np.ndarray, label: int, count: int):
    scores, ds, variant = model.segment_scores(feats, only=[label])
    res = segmental_viterbi(scores, ds, chain_graph(label, count))
    units = []
    for u in res.units:
        k = int(np.searchsorted(ds, u.end - u.start))
        units.append((u.start, u.end, int(variant[label, k, u.end])))
    return res.log_likelihood, units


def _check_examples(examples: Sequence[Example]) -> list[str]:
    if not examples:
        raise GenlabError("few-shot learning needs at least one example per concept; got none")
    names: list[str] = []
    for i, ex in enumerate(examples):
        if ex.count < 1:
            raise GenlabError(f"example {i} ({ex.concept!r}): count must be >= 1, got {ex.count}")
        if ex.concept not in names:
            names.append(ex.concept)
    return names


def fit_few_shot(examples: Sequence[Example], cfg: ConceptConfig) -> tuple[ConceptModel, LearnLog]:
    """Stage 1: concepts from k trimmed examples each (k >= 1)."""
    names = _check_examples(examples)
    P = cfg.n_phases
    feats = [normalise(ex.keypoints, cfg, f"example {i} ({ex.concept})").feats for i, ex in enumerate(examples)]
    F = feats[0].shape[1]
    concepts = []
    for name in names:
        idx = [i for i, ex in enumerate(examples) if ex.concept == name]
        st = _Stats(P, F)
        all_d = []
        for i in idx:  # durations of the equal split of every example set the limits
            T, n = len(feats[i]), examples[i].count
            if T < n * 2:
                raise GenlabError(f"example {i} ({name}): {T} frames cannot hold {n} iterations")
            all_d += list(np.diff(np.linspace(0, T, n + 1).round().astype(int)))
        i0 = idx[0]
        bounds = np.linspace(0, len(feats[i0]), examples[i0].count + 1).round().astype(int)
        for s, e in zip(bounds[:-1], bounds[1:]):
            st.add(feats[i0], s, e, 0, cfg)
        dmin = max(cfg.min_duration, int(np.floor(min(all_d) / cfg.duration_slack)))
        dmax = min(cfg.max_duration, int(np.ceil(max(all_d) * cfg.duration_slack)))
        dmax = max(dmax, dmin + 1)
        concepts.append(_estimate(name, st, cfg, dmin, dmax, np.full((P, F), cfg.var_prior)))
    rest = np.mean([np.concatenate([c.mean[:1], c.mean[-1:]]) for c in concepts], axis=(0, 1))
    for c in concepts:  # the prior is fixed from here on (EM needs a fixed objective)
        c.var0 = amplitude_prior(c.mean, rest, cfg)
    idle_var = np.full(rest.shape, cfg.idle_var)
    model = ConceptModel(cfg, concepts, rest.copy(), idle_var, meta={"rest": rest.tolist()})
    log = LearnLog("few-shot")
    for _ in range(cfg.init_rounds):
        stats = {n: _Stats(P, F) for n in names}
        total = 0.0
        for i, ex in enumerate(examples):
            label = names.index(ex.concept)
            ll, units = chain_align(model, feats[i], label, ex.count)
            if not np.isfinite(ll):
                raise GenlabError(f"example {i} ({ex.concept}): cannot split into {ex.count} iterations")
            total += ll
            for s, e, v in units:
                stats[ex.concept].add(feats[i], s, e, v, cfg)
            stats[ex.concept].counts.append(ex.count)
        log.objective.append(total)
        model.concepts = [
            _estimate(c.name, stats[c.name], cfg, c.min_duration, c.max_duration, c.var0) for c in model.concepts
        ]
    model.meta["examples_per_concept"] = {n: sum(ex.concept == n for ex in examples) for n in names}
    return model, log


def hard_em(model: ConceptModel, examples: Sequence[Example], sequences: Sequence[ListSequence],
            progress: bool = False) -> tuple[ConceptModel, LearnLog]:
    """Stage 2: forced alignment of list-only sequences + exact MAP re-estimation (hard EM)."""
    cfg = model.cfg
    P = cfg.n_phases
    ex_feats = [normalise(ex.keypoints, cfg, f"example {i}").feats for i, ex in enumerate(examples)]
    seq_feats = [normalise(sq.keypoints, cfg, f"sequence {i}").feats for i, sq in enumerate(sequences)]
    for i, sq in enumerate(sequences):
        for a in sq.actions:
            model.index(a, f"sequence {i} action list")
    rest = np.asarray(model.meta.get("rest", model.idle_mean))
    F = len(rest)
    log = LearnLog("hard-em")
    prev_model = None
    for _ in tqdm(range(cfg.em_max_iters), desc="hard EM", disable=not progress):
        stats = {c.name: _Stats(P, F) for c in model.concepts}
        idle_sum, idle_n = np.zeros(F), 0
        objective = _log_prior(model, rest)
        for i, ex in enumerate(examples):
            ll, units = chain_align(model, ex_feats[i], model.index(ex.concept), ex.count)
            objective += ll
            for s, e, v in units:
                stats[ex.concept].add(ex_feats[i], s, e, v, cfg)
            stats[ex.concept].counts.append(ex.count)
        for i, sq in enumerate(sequences):
            desc, units, ll = model.align_feats(seq_feats[i], list(sq.actions), f"sequence {i} action list")
            objective += ll
            covered = np.zeros(len(seq_feats[i]), bool)
            for lab, s, e, v in units:
                stats[model.concepts[lab].name].add(seq_feats[i], s, e, v, cfg)
                covered[s:e] = True
            for a in desc.actions:
                stats[a.concept].counts.append(a.count)
            idle_sum += seq_feats[i][~covered].sum(0)
            idle_n += int((~covered).sum())
        if log.objective and objective < log.objective[-1]:
            # Cannot happen with exact steps; guard against round-off: keep the better model.
            log.fell = True
            model = prev_model
            break
        log.objective.append(objective)
        if len(log.objective) > 1 and (log.objective[-1] - log.objective[-2]) < cfg.em_tol * abs(log.objective[-2]):
            break
        prev_model = model
        new_concepts = []
        for c in model.concepts:
            st = stats[c.name]
            new_concepts.append(
                _estimate(c.name, st, cfg, c.min_duration, c.max_duration, c.var0) if st.log_durs else c)
        idle_mean = (idle_sum + IDLE_PRIOR_STRENGTH * rest) / (idle_n + IDLE_PRIOR_STRENGTH)
        model = replace(model, concepts=new_concepts, idle_mean=idle_mean, meta=dict(model.meta))
    model.meta["list_sequences"] = len(sequences)
    return model, log


def self_label(model: ConceptModel, examples: Sequence[Example], sequences: Sequence[ListSequence],
               unlabelled: Sequence[np.ndarray], progress: bool = False):
    """Stage 3: add confidently decoded instances of unlabelled sequences as examples, re-run EM."""
    cfg = model.cfg
    extra = []
    for i, kp in enumerate(unlabelled):
        norm = normalise(kp, cfg, f"unlabelled sequence {i}")
        desc, _ = model.describe_feats(norm.feats)
        for a in desc.actions:
            if a.score >= cfg.self_label_margin:
                extra.append(Example(a.concept, np.asarray(kp)[a.start:a.end], a.count))
    model, log = hard_em(model, list(examples) + extra, sequences, progress)
    log.stage = "self-label"
    log.accepted = len(extra)
    model.meta["self_labelled"] = len(extra)
    return model, log


def aligned_iterations(model: ConceptModel, examples: Sequence[Example]) -> dict[str, list[np.ndarray]]:
    """Every example split into its iterations by the current model: (d, 17, 2) normalised
    keypoints per iteration, mirrored back to the concept's own chirality."""
    from genlab.core.pose.skeletons import COCO17

    out: dict[str, list[np.ndarray]] = {c.name: [] for c in model.concepts}
    for i, ex in enumerate(examples):
        norm = normalise(ex.keypoints, model.cfg, f"example {i}")
        full = (np.asarray(ex.keypoints, np.float64) - norm.origin) / norm.height
        _, units = chain_align(model, norm.feats, model.index(ex.concept), ex.count)
        for s, e, v in units:
            x = full[s:e]
            if v:
                x = COCO17.mirror(x)
            out[ex.concept].append(x)
    return out


def attach_programs(model: ConceptModel, examples: Sequence[Example]) -> ConceptModel:
    """Fit each concept's loop-body program (programs.fit_body) from its aligned iterations and
    store the rest pose (mean first/last frame of all iterations) for synthesis."""
    from genlab.core.pose.skeletons import COCO17
    from genlab.systems.motion.concepts.programs import fit_body, loop_to_text

    its = aligned_iterations(model, examples)
    ends = []
    for c in model.concepts:
        if its[c.name]:
            c.program = loop_to_text(fit_body(its[c.name], model.cfg.max_body))
            ends += [x[0] for x in its[c.name]] + [x[-1] for x in its[c.name]]
    rest = np.mean(ends, axis=0)
    rest = 0.5 * (rest + COCO17.mirror(rest))  # symmetric
    model.meta["rest_pose"] = rest.tolist()
    return model


def learn(examples: Sequence[Example], cfg: ConceptConfig, sequences: Sequence[ListSequence] = (),
          unlabelled: Sequence[np.ndarray] = (), progress: bool = False) -> tuple[ConceptModel, list[LearnLog]]:
    """All stages: few-shot, hard EM on list-only sequences (if any), self-labelling (if any), programs."""
    model, log1 = fit_few_shot(examples, cfg)
    logs = [log1]
    if sequences:
        model, log2 = hard_em(model, examples, sequences, progress)
        logs.append(log2)
    if len(unlabelled):
        model, log3 = self_label(model, examples, sequences, unlabelled, progress)
        logs.append(log3)
    return attach_programs(model, examples), logs
