"""The concept model: emission templates, segment scores, description and forced alignment.

A concept is a probabilistic loop program. For *description* we evaluate its loop body on a grid
of P phases: per phase and (normalised) coordinate a Gaussian, plus a log-normal distribution of
one iteration's duration and a count distribution. An iteration of duration d covering frames
[t - d, t) is scored by sampling the P phase positions floor((p + 1/2) d / P) of the window,
weighting each by d / P (so that every frame counts once) and summing Gaussian log-likelihoods,
times a temperature `emission_scale` that tempers the strong correlation between coordinates.
Every concept is also scored mirrored (left/right performers); the better variant wins per unit.

The *program* view of a concept (loop body of K statements with per-statement and per-joint
distributions over primitive type and start/mid/end descriptors, durations) is built from the
same aligned iterations with the motion system's primitive fits (see `programs.py`); it drives
synthesis and its text form.

Keypoints are COCO-17 (T, 17, 2) in any units; they are normalised per sequence: origin at the
mid-hip's median x on the ground line, unit = body height (genlab.core.pose.skeletons.body_height).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from genlab.core.io import atomic_write_text
from genlab.errors import GenlabError
from genlab.systems.motion.concepts.config import ConceptConfig
from genlab.systems.motion.concepts.description import Action, Description
from genlab.systems.motion.concepts.viterbi import (
    NEG,
    check_fits,
    forced_graph,
    free_graph,
    segmental_viterbi,
)

SCHEMA = "genlab.concepts.model"
VERSION = 1
LOG2PI = float(np.log(2 * np.pi))
COCO_MIRROR = (0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15)


# ------------------------------------------------------------------------------ features
@dataclass(frozen=True)
class Normalised:
    feats: np.ndarray  # (T, F): selected joints, x/y interleaved, body heights from the origin
    origin: np.ndarray  # (2,) pixel position of the normalised origin
    height: float  # pixels per body height


def check_keypoints(keypoints, where: str = "keypoints") -> np.ndarray:
    kp = np.asarray(keypoints, dtype=np.float64)
    if kp.ndim != 3 or kp.shape[-1] != 2 or kp.shape[1] != 17:
        raise GenlabError(f"{where}: expected COCO-17 keypoints of shape (frames, 17, 2), got {kp.shape}")
    if kp.shape[0] == 0:
        raise GenlabError(f"{where}: no frames (empty keypoints)")
    if not np.isfinite(kp).all():
        bad = np.unique(np.nonzero(~np.isfinite(kp))[0])
        raise GenlabError(
            f"{where}: {len(bad)} frames hold NaN/inf keypoints (first: frame {bad[0]}); "
            "fill gaps first (the motion loaders interpolate missing frames)"
        )
    return kp


def normalise(keypoints, cfg: ConceptConfig, where: str = "keypoints") -> Normalised:
    from genlab.core.pose.skeletons import body_height

    kp = check_keypoints(keypoints, where)
    height = body_height(kp)
    # Origin: the mid-hip's median x and the ground (median of the lower ankle's y, image y
    # down); both barely depend on which part of a sequence is seen, unlike a median hip height.
    origin = np.array([np.median(0.5 * (kp[:, 11, 0] + kp[:, 12, 0])), np.median(kp[:, 15:17, 1].max(1))])
    feats = ((kp[:, list(cfg.joints)] - origin) / height).reshape(len(kp), -1)
    return Normalised(feats, origin, height)


def mirror_perm(cfg: ConceptConfig) -> tuple[np.ndarray, np.ndarray]:
    """Feature permutation and sign that mirror a performer (swap left/right, negate x)."""
    pos = {j: i for i, j in enumerate(cfg.joints)}
    perm_j = [pos[COCO_MIRROR[j]] for j in cfg.joints]
    perm = np.array([2 * p + c for p in perm_j for c in (0, 1)])
    sign = np.tile([-1.0, 1.0], len(cfg.joints))
    return perm, sign


def mirror(feats: np.ndarray, cfg: ConceptConfig) -> np.ndarray:
    perm, sign = mirror_perm(cfg)
    return feats[..., perm] * sign


def phase_offsets(d: int, n_phases: int) -> np.ndarray:
    """Frame offsets inside a window of d frames sampled at the P phase centres."""
    return np.floor((np.arange(n_phases) + 0.5) * d / n_phases).astype(np.int64)


# ------------------------------------------------------------------------------ model
@dataclass
class Concept:
    name: str
    mean: np.ndarray  # (P, F)
    var: np.ndarray  # (P, F)
    log_dur_mu: float
    log_dur_sigma: float
    min_duration: int
    max_duration: int
    count_probs: np.ndarray  # (max_count,): P(count = i + 1)
    program: dict | None = None  # the loop-body program (programs.py), JSON-able
    var0: np.ndarray | None = None  # prior variance (P, F), fixed after the first estimate

    def duration_logpdf(self, d: np.ndarray) -> np.ndarray:
        z = (np.log(d) - self.log_dur_mu) / self.log_dur_sigma
        return -0.5 * z**2 - np.log(self.log_dur_sigma * d) - 0.5 * LOG2PI


@dataclass
class ConceptModel:
    cfg: ConceptConfig
    concepts: list[Concept]
    idle_mean: np.ndarray  # (F,)
    idle_var: np.ndarray  # (F,)
    meta: dict = field(default_factory=dict)
    # Optional emission override (`neural.NeuralEmission`); not saved with the model.
    emission: object | None = field(default=None, repr=False, compare=False)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.concepts]

    def index(self, name: str, where: str = "action list") -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise GenlabError(f"{where}: unknown concept {name!r}; expected one of {self.names}") from None

    # ---------------------------------------------------------------- scoring
    def durations(self) -> np.ndarray:
        lo = min(c.min_duration for c in self.concepts)
        hi = max(c.max_duration for c in self.concepts)
        return np.array([1] + list(range(max(lo, 2), hi + 1)), dtype=np.int64)

    def segment_scores(self, feats: np.ndarray, only=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """scores (C + 1, D, T + 1) (label C = idle), durations (D,), variant (C, D, T + 1).

        `only`: concept indices to score (the others stay -inf), e.g. those of an action list."""
        if self.emission is not None:
            return self.emission.segment_scores(self, feats, only)
        cfg = self.cfg
        T, F = feats.shape
        P = cfg.n_phases
        C = len(self.concepts)
        sel = list(range(C)) if only is None else sorted(set(only))
        ds = self.durations()
        scores = np.full((C + 1, len(ds), T + 1), NEG)
        variant = np.zeros((C, len(ds), T + 1), dtype=np.int8)
        # Templates: selected concept i, variant v at row 2 i + v; W = 1/var, quadratic form expanded.
        means, vars_ = [], []
        for ci in sel:
            c = self.concepts[ci]
            means += [c.mean, mirror(c.mean, cfg) if cfg.mirror else c.mean]
            vars_ += [c.var, np.abs(mirror(c.var, cfg)) if cfg.mirror else c.var]
        n = len(sel)
        W = 1.0 / np.stack(vars_)  # (2n, P, F)
        Wm = W * np.stack(means)
        const = (Wm * np.stack(means)).reshape(2 * n, -1).sum(1) + np.log(np.stack(vars_)).reshape(
            2 * n, -1).sum(1) + P * F * LOG2PI  # (2n,)
        # Per frame and phase, the frame's part of the quadratic form (x^2 W - 2 x W m), so that a
        # window's score is a sum of P gathered entries: Q[t, p, k].
        to_cols = lambda A: A.transpose(2, 1, 0).reshape(F, P * 2 * n)  # (F, P * 2n), column p * 2n + k
        Q = ((feats * feats) @ to_cols(W) - 2.0 * feats @ to_cols(Wm)).reshape(T * P, 2 * n)
        phase = np.arange(P)
        dmin = np.array([self.concepts[ci].min_duration for ci in sel])
        dmax = np.array([self.concepts[ci].max_duration for ci in sel])
        for k, d in enumerate(ds):
            if d < 2 or d > T:
                continue
            ok = (dmin <= d) & (d <= dmax)
            if not ok.any():
                continue
            rows = (np.arange(T - d + 1)[:, None] + phase_offsets(d, P)[None]) * P + phase  # (n_windows, P)
            quad = Q[rows].sum(1) + const  # (n_windows, 2n): -2 log N summed over phases
            ll = (-0.5 * cfg.emission_scale * d / P) * quad.reshape(-1, n, 2)  # (n_windows, n, 2)
            v = np.argmax(ll, axis=2)
            best = np.take_along_axis(ll, v[..., None], 2)[..., 0]  # (n_windows, n)
            for i, ci in enumerate(sel):
                if ok[i]:
                    dur = cfg.duration_weight * float(self.concepts[ci].duration_logpdf(np.array([d]))[0])
                    scores[ci, k, d:] = best[:, i] + dur
                    variant[ci, k, d:] = v[:, i]
        r = feats - self.idle_mean
        idle = -0.5 * ((r * r) / self.idle_var + np.log(self.idle_var) + LOG2PI).sum(1)
        scores[C, 0, 1:] = cfg.emission_scale * idle + cfg.idle_bonus
        return scores, ds, variant

    # ---------------------------------------------------------------- decoding
    def _min_counts(self) -> list[int]:
        return [min(self.cfg.min_count, 2)] * len(self.concepts)

    def describe_feats(self, feats: np.ndarray, with_margin: bool = True) -> tuple[Description, list]:
        scores, ds, variant = self.segment_scores(feats)
        C = len(self.concepts)
        graph = free_graph(C, idle_label=C, switch_penalty=self.cfg.switch_penalty, min_count=self._min_counts(),
                           repeats=self.cfg.repeat_instances)
        res = segmental_viterbi(scores, ds, graph)
        return self._to_description(res, graph, scores, ds, variant, len(feats), with_margin)

    def describe(self, keypoints, where: str = "keypoints") -> Description:
        """Free decoding over the concepts plus idle: the action list, spans and counts."""
        return self.describe_feats(normalise(keypoints, self.cfg, where).feats)[0]

    def align_feats(self, feats: np.ndarray, transcript: list[str], where: str = "action list"):
        idx = [self.index(n, where) for n in transcript]
        C = len(self.concepts)
        mc = self._min_counts()
        check_fits(idx, self.names, len(feats), [c.min_duration for c in self.concepts], mc)
        scores, ds, variant = self.segment_scores(feats, only=idx)
        graph = forced_graph(idx, idle_label=C, min_count=mc)
        res = segmental_viterbi(scores, ds, graph)
        if not np.isfinite(res.log_likelihood):
            raise GenlabError(
                f"{where}: no alignment of {transcript} fits {len(feats)} frames within the concepts' "
                "duration limits"
            )
        desc, units = self._to_description(res, graph, scores, ds, variant, len(feats), with_margin=False)
        return desc, units, res.log_likelihood

    def align(self, keypoints, transcript: list[str], where: str = "keypoints") -> Description:
        """Forced alignment of an ordered action list: spans and counts of each action."""
        return self.align_feats(normalise(keypoints, self.cfg, where).feats, transcript)[0]

    def _to_description(self, res, graph, scores, ds, variant, T, with_margin):
        C = len(self.concepts)
        actions, units_out = [], []
        cur = None
        for u in res.units:
            if u.label == C:
                cur = None
                continue
            k = int(np.searchsorted(ds, u.end - u.start))
            units_out.append((u.label, u.start, u.end, int(variant[u.label, k, u.end])))
            if graph.is_first[u.state] or cur is None:
                cur = [u.label, u.start, u.end, 1, u.score]
                actions.append(cur)
            else:
                cur[2], cur[3], cur[4] = u.end, cur[3] + 1, cur[4] + u.score
        out = []
        for lab, s, e, n, own in actions:
            margin = self._margin(scores, ds, lab, s, e, own) if with_margin else 0.0
            out.append(Action(self.concepts[lab].name, int(s), int(e), int(n), float(margin)))
        return Description(T, tuple(out)), units_out

    def _margin(self, scores, ds, lab, s, e, own) -> float:
        """Per-frame log-likelihood of the decoded concept over [s, e) minus the best other concept
        tiling the same span with its own iterations (the decoding confidence)."""
        C = len(self.concepts)
        b = np.full((C, e - s + 1), NEG)
        b[:, 0] = 0.0
        for t in range(1, e - s + 1):
            prev = t - ds
            ok = prev >= 0
            cand = b[:, np.where(ok, prev, 0)] + scores[:C, :, s + t]
            cand[:, ~ok] = NEG
            b[:, t] = cand.max(1)
        other = np.delete(b[:, -1], lab)
        best_other = other.max() if other.size else NEG
        if not np.isfinite(best_other):
            return 10.0
        return float((own - best_other) / (e - s))

    # ---------------------------------------------------------------- persistence
    def to_dict(self) -> dict:
        def arr(a):
            return np.asarray(a).tolist()

        return {
            "schema": SCHEMA,
            "version": VERSION,
            "config": asdict(self.cfg),
            "idle_mean": arr(self.idle_mean),
            "idle_var": arr(self.idle_var),
            "meta": self.meta,
            "concepts": [
                {
                    "name": c.name, "mean": arr(c.mean), "var": arr(c.var), "log_dur_mu": c.log_dur_mu,
                    "log_dur_sigma": c.log_dur_sigma, "min_duration": c.min_duration,
                    "max_duration": c.max_duration, "count_probs": arr(c.count_probs), "program": c.program,
                    "var0": None if c.var0 is None else arr(c.var0),
                }
                for c in self.concepts
            ],
        }

    @classmethod
    def from_dict(cls, data: dict, where: str = "concept model") -> ConceptModel:
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            raise GenlabError(f"{where}: not a concept model (field 'schema' must be {SCHEMA!r})")
        if data.get("version") != VERSION:
            raise GenlabError(f"{where}: schema version {data.get('version')!r} is not supported; expected {VERSION}")
        cfgd = dict(data["config"])
        cfgd["joints"] = tuple(cfgd["joints"])
        cfg = ConceptConfig(**cfgd)
        concepts = [
            Concept(c["name"], np.asarray(c["mean"]), np.asarray(c["var"]), float(c["log_dur_mu"]),
                    float(c["log_dur_sigma"]), int(c["min_duration"]), int(c["max_duration"]),
                    np.asarray(c["count_probs"]), c.get("program"),
                    None if c.get("var0") is None else np.asarray(c["var0"]))
            for c in data["concepts"]
        ]
        return cls(cfg, concepts, np.asarray(data["idle_mean"]), np.asarray(data["idle_var"]), data.get("meta", {}))

    def save(self, path: str | Path) -> None:
        atomic_write_text(path, json.dumps(self.to_dict()))

    @classmethod
    def load(cls, path: str | Path) -> ConceptModel:
        path = Path(path)
        if not path.is_file():
            raise GenlabError(f"concept model {path}: no such file")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise GenlabError(f"concept model {path}: not valid JSON ({err})") from None
        return cls.from_dict(data, where=f"concept model {path}")
