"""Configs and presets of the SD3 formulation study (paper section 5.1, Table 1) on MNIST.

Every formulation trains the same class-conditional MM-DiT on the same data with the same seed and number of
steps; the checkpoint with the lowest EMA validation loss is evaluated on a grid of sampler settings
(steps x guidance scale x EMA / raw weights), and formulations are ranked by repeated non-dominated sorting
on (Fréchet distance, conditional accuracy).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from genlab.core.eval.classifier import ClassifierConfig
from genlab.core.eval.classifier import default as default_classifier
from genlab.core.eval.classifier import quick as quick_classifier
from genlab.core.flow import formulation
from genlab.core.flow.formulation import Formulation
from genlab.errors import GenlabError


@dataclass(frozen=True)
class NetConfig:
    """The MM-DiT of the t2i system on 28x28x1 images; the "text" stream is one learned class token."""

    depth: int = 2
    hidden_size: int = 128  # 64 * depth, as in the paper's family
    num_heads: int = 2  # = depth (head dim 64)
    patch_size: int = 4  # 28 / 4 = 7x7 tokens
    cond_dim: int = 64  # width of the class token and pooled class vector
    image_size: int = 28


@dataclass(frozen=True)
class StudyTrainConfig:
    steps: int = 3000
    batch_size: int = 64
    lr: float = 1e-3
    warmup_steps: int = 200
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    label_dropout: float = 0.1  # null class for classifier-free guidance
    eval_every: int = 250  # EMA validation loss (and a resumable checkpoint) every this many steps
    val_images: int = 500  # held-out training images (the last 1,000 of the 60k are never trained on)


@dataclass(frozen=True)
class StudyEvalConfig:
    steps: tuple[int, ...] = (5, 10, 25, 50)
    guidance: tuple[float, ...] = (1.0, 3.0)
    ema: tuple[bool, ...] = (True, False)
    num_samples: int = 1000  # per setting, class-balanced
    batch_size: int = 250
    reference_images: int = 10_000  # real MNIST test images for the Fréchet reference statistics
    seed: int = 1234  # initial noise, shared by every formulation and setting


@dataclass(frozen=True)
class StudyConfig:
    name: str
    formulations: tuple[Formulation, ...]
    seeds: tuple[int, ...] = (0,)  # every formulation
    extra_seeds: tuple[int, ...] = (1, 2)  # additionally, for `multi_seed` formulations
    multi_seed: tuple[str, ...] = ("rf", "rf/lognorm(0.00, 1.00)")
    net: NetConfig = field(default_factory=NetConfig)
    train: StudyTrainConfig = field(default_factory=StudyTrainConfig)
    eval: StudyEvalConfig = field(default_factory=StudyEvalConfig)
    classifier: ClassifierConfig = field(default_factory=default_classifier)
    workers: int = 2
    device: str = "cpu"

    def __post_init__(self):
        names = [f.name for f in self.formulations]
        if len(set(names)) != len(names):
            raise GenlabError(f"StudyConfig.formulations: names must be unique, got {names}")
        unknown = [m for m in self.multi_seed if m not in names]
        if unknown:
            raise GenlabError(f"StudyConfig.multi_seed: {unknown} are not among the formulations {names}")

    def runs(self) -> list[tuple[Formulation, int]]:
        """Every (formulation, seed) to train: seed 0 runs first so a partial study is rankable early."""
        out = [(f, s) for s in self.seeds for f in self.formulations]
        out += [(f, s) for s in self.extra_seeds for f in self.formulations if f.name in self.multi_seed]
        return out


def nine_formulations() -> tuple[Formulation, ...]:
    """The issue's nine: rf, rf/lognorm x3, rf/mode(1.29), rf/cosmap, eps/linear, v/cos, edm(-1.2, 1.2)."""
    return (
        formulation.rf(), formulation.rf_lognorm(0.0, 1.0), formulation.rf_lognorm(0.5, 0.6), formulation.rf_lognorm(-0.5, 1.0), formulation.rf_mode(1.29),
        formulation.rf_cosmap(), formulation.eps_linear(), formulation.v_cos(), formulation.edm(-1.2, 1.2),
    )


def study_small() -> StudyConfig:
    """All nine (13 runs with the extra seeds) in about 90 minutes on 2 idle CPU cores: patch 4, depth 2,
    2,000 steps at batch 64 (0.25 s/step on one core), 500 samples per setting. Measured budget per run:
    ~8 min of training and ~6 min for the 16 evaluation settings (90 NFE x 3 for CFG x 2 weight sets)."""
    return StudyConfig(
        name="study_small",
        formulations=nine_formulations(),
        train=StudyTrainConfig(steps=2000, eval_every=250),
        eval=StudyEvalConfig(num_samples=500, batch_size=250),
    )


def study() -> StudyConfig:
    """The GPU version: patch 2, depth 4, longer training, 3 seeds for every formulation."""
    return StudyConfig(
        name="study",
        formulations=nine_formulations(),
        seeds=(0, 1, 2),
        extra_seeds=(),
        multi_seed=(),
        net=NetConfig(depth=4, hidden_size=256, num_heads=4, patch_size=2, cond_dim=128),
        train=StudyTrainConfig(steps=20_000, batch_size=128, lr=5e-4, warmup_steps=500, eval_every=1000,
                               val_images=1000),
        eval=StudyEvalConfig(num_samples=5000, batch_size=500),
        device="cuda",
    )


def study_tiny() -> StudyConfig:
    """Two formulations, 20 steps, 64 samples: the fast-tier end-to-end check of the machinery."""
    return StudyConfig(
        name="study_tiny",
        formulations=(formulation.rf(), formulation.rf_lognorm(0.0, 1.0)),
        extra_seeds=(),
        multi_seed=(),
        net=NetConfig(depth=1, hidden_size=64, num_heads=1, patch_size=4, cond_dim=32),
        train=StudyTrainConfig(steps=20, batch_size=32, lr=2e-3, warmup_steps=5, eval_every=10, val_images=64),
        eval=StudyEvalConfig(steps=(2, 5), guidance=(1.0, 3.0), ema=(True, False), num_samples=64,
                             batch_size=64, reference_images=1000),
        classifier=quick_classifier(),
        workers=1,
    )


def study_reduced() -> StudyConfig:
    """What fits a loaded, shared 2-core machine in about an hour (the run reported in the README):
    study_small's nine formulations and seeds, a narrower MM-DiT (hidden 64), 800 steps at batch 32,
    100 samples per setting, EMA weights only (all step counts and guidance scales). A *reduced* study."""
    nine = {f.name: f for f in nine_formulations()}
    order = ("rf", "rf/lognorm(0.00, 1.00)", "eps/linear", "v/cos", "edm(-1.20, 1.20)", "rf/lognorm(0.50, 0.60)",
             "rf/mode(1.29)", "rf/lognorm(-0.50, 1.00)", "rf/cosmap")  # the headline claims first
    return StudyConfig(
        name="study_reduced",
        formulations=tuple(nine[n] for n in order),
        net=NetConfig(depth=2, hidden_size=64, num_heads=1, patch_size=4, cond_dim=64),
        train=StudyTrainConfig(steps=800, batch_size=32, lr=2e-3, warmup_steps=50, eval_every=200,
                               val_images=256),
        eval=StudyEvalConfig(num_samples=100, batch_size=100, ema=(True,)),
        workers=4,
    )


PRESETS = {"study_tiny": study_tiny, "study_reduced": study_reduced, "study_small": study_small, "study": study}


def preset(name: str) -> StudyConfig:
    if name not in PRESETS:
        raise GenlabError(f"unknown study preset {name!r}; expected one of {sorted(PRESETS)}")
    return PRESETS[name]()


def with_overrides(cfg: StudyConfig, train_steps: int | None = None, samples: int | None = None,
                   workers: int | None = None, device: str | None = None,
                   eval_every: int | None = None) -> StudyConfig:
    """A reduced (or enlarged) study: fewer steps / samples are reported as such in the summary."""
    train, ev = cfg.train, cfg.eval
    if train_steps is not None:
        train = replace(train, steps=train_steps, warmup_steps=min(train.warmup_steps, max(1, train_steps // 10)))
    if eval_every is not None:
        train = replace(train, eval_every=eval_every)
    if samples is not None:
        ev = replace(ev, num_samples=samples, batch_size=min(ev.batch_size, samples))
    return replace(cfg, train=train, eval=ev, workers=workers or cfg.workers, device=device or cfg.device)
