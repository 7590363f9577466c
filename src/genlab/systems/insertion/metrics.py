"""Metrics for insertion: affordance accuracy, PCKh@0.5, identity colour error, FID on an in-repo
classifier; and the two small networks they read images with (a keypoint regressor and a state
classifier), trained once on ground-truth renders and cached.

Left/right ambiguity: the toy is seen from the side, so "left leg" and "right leg" look alike up to
colour, and colours are an identity's. Every keypoint comparison therefore takes the better of the
two assignments per limb chain (legs as one set, arms as another), as flip-invariant PCK does.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from torch.nn import functional

from genlab.errors import GenlabError
from genlab.systems.insertion import toy

KP = toy.KP
LEG_CHAINS = ((KP["l_knee"], KP["l_foot"]), (KP["r_knee"], KP["r_foot"]))
ARM_CHAINS = ((KP["l_elbow"], KP["l_hand"]), (KP["r_elbow"], KP["r_hand"]))


def cache_dir() -> Path:
    """Where trained helper networks and pair pools are cached: `core.io.cache_dir("insertion")`."""
    from genlab.core.io import cache_dir as shared_cache_dir

    return shared_cache_dir("insertion")


# ----------------------------------------------------------------------------- matching
def _swap(kp: np.ndarray | torch.Tensor, chains) -> np.ndarray | torch.Tensor:
    out = kp.clone() if isinstance(kp, torch.Tensor) else kp.copy()
    (a0, a1), (b0, b1) = chains
    out[..., [a0, a1, b0, b1], :] = kp[..., [b0, b1, a0, a1], :]
    return out


def align_sides(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """pred (..., K, 2) with left/right legs and arms swapped where that brings it closer to gt."""
    out = pred.copy()
    for chains in (LEG_CHAINS, ARM_CHAINS):
        idx = [c for ch in chains for c in ch]
        swapped = _swap(out, chains)
        d0 = np.linalg.norm(out[..., idx, :] - gt[..., idx, :], axis=-1).sum(-1)
        d1 = np.linalg.norm(swapped[..., idx, :] - gt[..., idx, :], axis=-1).sum(-1)
        out = np.where((d1 < d0)[..., None, None], swapped, out)
    return out


def pck(pred: np.ndarray, gt: np.ndarray, ref_len: np.ndarray, alpha: float,
        visible: np.ndarray | None = None) -> float:
    """Fraction of joints within alpha * ref_len (per sample) of the truth; visible (N, K) bool masks."""
    pred = align_sides(np.asarray(pred, np.float64), np.asarray(gt, np.float64))
    dist = np.linalg.norm(pred - gt, axis=-1)  # (N, K)
    ok = dist <= alpha * np.asarray(ref_len, np.float64)[:, None]
    if visible is None:
        visible = np.ones_like(ok, dtype=bool)
    if visible.sum() == 0:
        return float("nan")
    return float(ok[visible].mean())


def head_length(kp: np.ndarray, nose: int, l_shoulder: int | None = None, r_shoulder: int | None = None,
                neck: int | None = None) -> np.ndarray:
    """PCKh head segment: nose to shoulder midpoint (MediaPipe has no neck), or nose to neck."""
    kp = np.asarray(kp, np.float64)
    mid = kp[..., neck, :] if neck is not None else (kp[..., l_shoulder, :] + kp[..., r_shoulder, :]) / 2
    return np.linalg.norm(kp[..., nose, :] - mid, axis=-1)


def pckh(pred: np.ndarray, gt: np.ndarray, alpha: float = 0.5, visible: np.ndarray | None = None,
         layout: str = "toy") -> float:
    """PCKh@alpha. layout 'toy' uses head->neck; 'mediapipe33' uses nose (0) -> shoulder midpoint (11, 12)."""
    if layout == "toy":
        ref = head_length(gt, KP["head"], neck=KP["neck"])
        return pck(pred, gt, ref, alpha, visible)
    if layout == "mediapipe33":
        ref = head_length(gt, 0, 11, 12)
        dist = np.linalg.norm(np.asarray(pred, np.float64) - np.asarray(gt, np.float64), axis=-1)
        ok = dist <= alpha * ref[:, None]
        vis = np.ones_like(ok) if visible is None else visible
        return float(ok[vis].mean()) if vis.sum() else float("nan")
    raise GenlabError(f"pckh: unknown layout {layout!r}; expected 'toy' or 'mediapipe33'")


# ----------------------------------------------------------------------------- affordance
def affordance_ok(kp: np.ndarray, meta: dict, tol: float = 0.1) -> bool:
    """Is the pose plausible where the target person was? kp (K, 2) in pixels.

    sit:  hips within tol * body height of the bench seat, both feet within tol of the floor.
    step: both feet within tol of the step top, hips at least 0.35 body height above the feet.
    walk: both feet within tol of the floor, hips at least 0.35 body height above the feet.
    """
    h = meta["height_px"]
    feet = kp[[KP["l_foot"], KP["r_foot"]]]
    hip = kp[KP["hip"]]
    state = meta["state"]
    # the foot's contact point is the bottom of the limb's round end: the keypoint is its centre
    if state == "sit":
        seat = meta["bench"][2]
        return bool(abs(hip[1] - seat) <= tol * h + 0.0
                    and np.all(np.abs(feet[:, 1] - meta["floor_y"]) <= tol * h))
    ground = meta["step"][2] if state == "step" else meta["floor_y"]
    feet_ok = np.all(np.abs(feet[:, 1] - ground) <= tol * h)
    standing = (ground - hip[1]) >= 0.35 * h
    return bool(feet_ok and standing)


def affordance_hits(kps: np.ndarray, metas: list[dict], tol: float = 0.1,
                    present: np.ndarray | None = None) -> np.ndarray:
    """(N,) bool: the sample's pose fits the scene; with `present`, a sample with no person (per the
    classifier) never counts, whatever keypoints the regressor read off it."""
    ok = np.array([affordance_ok(k, m, tol) for k, m in zip(kps, metas)], bool)
    if present is not None:
        ok &= np.asarray(present, bool)
    return ok


def affordance_accuracy(kps: np.ndarray, metas: list[dict], tol: float = 0.1,
                        present: np.ndarray | None = None) -> float:
    """Fraction of samples whose pose fits the scene (see affordance_hits)."""
    return float(affordance_hits(kps, metas, tol, present).mean())


@torch.no_grad()
def person_present(cls: StateClassifier, images: torch.Tensor, batch: int = 64) -> np.ndarray:
    """(N,) bool: the classifier puts less than half its probability on "no person"."""
    p = torch.cat([cls(images[i:i + batch]).softmax(-1) for i in range(0, len(images), batch)])
    return (p[:, NO_PERSON] < 0.5).numpy()


# ----------------------------------------------------------------------------- identity
PART_SEGMENTS = {
    "torso": [("neck", "hip")], "l_arm": [("neck", "l_elbow"), ("l_elbow", "l_hand")],
    "r_arm": [("neck", "r_elbow"), ("r_elbow", "r_hand")], "l_leg": [("hip", "l_knee"), ("l_knee", "l_foot")],
    "r_leg": [("hip", "r_knee"), ("r_knee", "r_foot")], "head": [("head", "head")],
}


def _part_colours(image: np.ndarray, kp: np.ndarray) -> np.ndarray:
    """Median colour sampled along each part's segments -> (len(PARTS), 3)."""
    size = image.shape[0]
    out = []
    for part in toy.PARTS:
        samples = []
        for a, b in PART_SEGMENTS[part]:
            pa, pb = kp[KP[a]], kp[KP[b]]
            for t in (0.35, 0.5, 0.65):
                x, y = pa + t * (pb - pa)
                xi, yi = int(np.clip(x, 0, size - 1)), int(np.clip(y, 0, size - 1))
                samples.append(image[yi, xi])
        out.append(np.median(np.stack(samples), 0))
    return np.stack(out)


def identity_error(images: np.ndarray, kps: np.ndarray, metas: list[dict], key: str = "ref_colours") -> float:
    """Mean absolute colour error (RGB in [0, 1]) between each part in the image and the identity's
    colour for that part (best of the two left/right assignments per limb pair)."""
    errs = []
    for img, kp, meta in zip(images, kps, metas):
        want = np.asarray(meta[key], np.float64)
        got = _part_colours(img, kp)
        e = np.abs(got - want).mean(-1)  # per part
        P = {p: i for i, p in enumerate(toy.PARTS)}
        arms = min(e[P["l_arm"]] + e[P["r_arm"]],
                   np.abs(got[P["l_arm"]] - want[P["r_arm"]]).mean() + np.abs(got[P["r_arm"]] - want[P["l_arm"]]).mean())
        legs = min(e[P["l_leg"]] + e[P["r_leg"]],
                   np.abs(got[P["l_leg"]] - want[P["r_leg"]]).mean() + np.abs(got[P["r_leg"]] - want[P["l_leg"]]).mean())
        errs.append((e[P["torso"]] + e[P["head"]] + arms + legs) / len(toy.PARTS))
    return float(np.mean(errs))


# ----------------------------------------------------------------------------- networks
@dataclass(frozen=True)
class ReaderConfig:
    size: int = 64
    width: int = 16
    steps: int = 1200
    batch: int = 16
    lr: float = 2e-3
    pool: int = 3000  # ground-truth frames rendered once for training
    negatives: float = 0.25  # fraction of each batch with the person replaced by noise/grey ("no person")
    seed: int = 0

    def key(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:12]


def _conv(cin, cout, stride=1, dilation=1):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, padding=dilation, dilation=dilation), nn.GroupNorm(4, cout),
                         nn.SiLU())


class KeypointRegressor(nn.Module):
    """Image (N, 3, S, S) in [-1, 1] -> keypoints (N, K, 2) in pixels, by soft-argmax over heatmaps
    at half resolution (sub-pixel accurate, no fixed grid quantisation)."""

    def __init__(self, cfg: ReaderConfig):
        super().__init__()
        w = cfg.width
        self.size = cfg.size
        self.stem = _conv(3, w)  # S
        self.down1 = nn.Sequential(_conv(w, 2 * w, 2), _conv(2 * w, 2 * w))  # S/2
        self.down2 = nn.Sequential(_conv(2 * w, 3 * w, 2), _conv(3 * w, 3 * w, dilation=2),
                                   _conv(3 * w, 3 * w, dilation=4))  # S/4
        self.up = _conv(5 * w, 2 * w)  # S/2
        self.head = nn.Conv2d(2 * w, toy.K, 1)
        self.log_temp = nn.Parameter(torch.tensor(0.0))

    def heatmaps(self, x: torch.Tensor) -> torch.Tensor:
        h1 = self.down1(self.stem(x))  # (N, 2w, S/2, S/2)
        h2 = self.down2(h1)  # (N, 3w, S/4, S/4)
        u = functional.interpolate(h2, size=h1.shape[-2:], mode="nearest")  # (N, 3w, S/2, S/2)
        return self.head(self.up(torch.cat([u, h1], 1)))  # (N, K, S/2, S/2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hm = self.heatmaps(x) * self.log_temp.exp()
        n, k, h, w = hm.shape
        prob = hm.flatten(2).softmax(-1).view(n, k, h, w)
        scale = self.size / h
        ys = (torch.arange(h, dtype=x.dtype, device=x.device) + 0.5) * scale
        xs = (torch.arange(w, dtype=x.dtype, device=x.device) + 0.5) * scale
        return torch.stack([(prob.sum(2) * xs).sum(-1), (prob.sum(3) * ys).sum(-1)], -1)  # (N, K, 2)


NO_PERSON = len(toy.STATES)


class StateClassifier(nn.Module):
    """Image -> (walk, sit, step, no person) logits; its 64-d penultimate features feed the Frechet
    distance, and "no person" keeps noise from scoring as a pose (a regressor reads keypoints off anything)."""

    def __init__(self, cfg: ReaderConfig):
        super().__init__()
        w = cfg.width
        self.body = nn.Sequential(_conv(3, w, 2), _conv(w, 2 * w, 2), _conv(2 * w, 3 * w, 2), _conv(3 * w, 64),
                                  nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.out = nn.Linear(64, len(toy.STATES) + 1)  # + "no person" (noise, grey or smeared boxes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)  # (N, 64)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.features(x))


def side_invariant_l1(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """L1 keypoint loss taking the better left/right assignment per limb pair."""
    loss = (pred - gt).abs().sum(-1)  # (N, K)
    total = loss[:, [KP["head"], KP["neck"], KP["hip"]]].sum(-1)
    for chains in (LEG_CHAINS, ARM_CHAINS):
        idx = [c for ch in chains for c in ch]
        a = loss[:, idx].sum(-1)
        b = (_swap(pred, chains)[:, idx] - gt[:, idx]).abs().sum(-1).sum(-1)
        total = total + torch.minimum(a, b)
    return total.mean() / toy.K


def render_pool(cfg: ReaderConfig, n: int, seed: int):
    """n ground-truth frames: images (n, 3, S, S) in [-1, 1], keypoints (n, K, 2), states (n,), heights,
    person boxes (n, 4) as x0, y0, x1, y1 pixels."""
    imgs, kps, states, heights, boxes = [], [], [], [], []
    k = 0
    while len(imgs) < n:
        clip = toy.sample_clip(toy.clip_rng(seed, k), size=cfg.size, n_frames=2)
        k += 1
        for fr in clip.frames:
            imgs.append(fr.image)
            kps.append(fr.keypoints)
            states.append(toy.STATES.index(fr.state))
            heights.append(clip.identity.height * cfg.size)
            ys, xs = np.nonzero(fr.mask > 0.05)
            boxes.append((xs.min(), ys.min(), xs.max() + 1, ys.max() + 1))
    x = torch.from_numpy(np.stack(imgs[:n])).permute(0, 3, 1, 2) * 2 - 1
    return (x, torch.from_numpy(np.stack(kps[:n])), torch.tensor(states[:n]), np.asarray(heights[:n]),
            np.asarray(boxes[:n]))


def _negatives(x: torch.Tensor, boxes: np.ndarray, g: torch.Generator) -> torch.Tensor:
    """Replace each image's person box (+2 px) by noise, grey, smeared noise or a flat colour."""
    x = x.clone()
    size = x.shape[-1]
    for i, (x0, y0, x1, y1) in enumerate(boxes):
        x0, y0, x1, y1 = max(0, x0 - 2), max(0, y0 - 2), min(size, x1 + 2), min(size, y1 + 2)
        h, w = y1 - y0, x1 - x0
        kind = int(torch.randint(0, 4, (), generator=g))
        if kind == 0:
            fill = torch.rand(3, h, w, generator=g) * 2 - 1
        elif kind == 1:
            fill = torch.zeros(3, h, w)
        elif kind == 2:
            fill = functional.avg_pool2d((torch.rand(1, 3, h, w, generator=g) * 2 - 1), 3, 1, 1)[0] * 2
        else:
            fill = (torch.rand(3, 1, 1, generator=g) * 2 - 1).expand(3, h, w)
        x[i, :, y0:y1, x0:x1] = fill.clamp(-1, 1)
    return x


def _degrade(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Blur and noise like a diffusion sample's, so the readers generalise from clean renders."""
    n = x.shape[0]
    sigma = float(torch.rand((), generator=g)) * 0.9 + 0.05  # one blur per batch keeps this cheap
    k = torch.arange(-2, 3, dtype=x.dtype)
    ker = torch.exp(-(k**2) / (2 * sigma**2))
    ker = ker / ker.sum()
    x = functional.conv2d(functional.pad(x, (2, 2, 0, 0), mode="replicate"), ker.view(1, 1, 1, 5).repeat(3, 1, 1, 1), groups=3)
    x = functional.conv2d(functional.pad(x, (0, 0, 2, 2), mode="replicate"), ker.view(1, 1, 5, 1).repeat(3, 1, 1, 1), groups=3)
    return x + torch.randn(x.shape, generator=g) * (torch.rand(n, 1, 1, 1, generator=g) * 0.06)


def train_readers(cfg: ReaderConfig, progress: bool = True) -> tuple[KeypointRegressor, StateClassifier]:
    from tqdm import tqdm

    torch.manual_seed(cfg.seed)
    g = torch.Generator().manual_seed(cfg.seed)
    x, kp, st, _, boxes = render_pool(cfg, cfg.pool, seed=cfg.seed + 1000)
    reg, cls = KeypointRegressor(cfg), StateClassifier(cfg)
    params = list(reg.parameters()) + list(cls.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps, pct_start=0.1)
    for _ in tqdm(range(cfg.steps), desc="keypoint reader", disable=not progress):
        idx = torch.randint(0, len(x), (cfg.batch,), generator=g)
        xb = x[idx]
        flip = torch.rand(cfg.batch, generator=g) < 0.5
        xb = torch.where(flip[:, None, None, None], xb.flip(-1), xb)
        kb = kp[idx].clone()
        kb[flip, :, 0] = cfg.size - kb[flip, :, 0]
        sb = st[idx].clone()
        neg = torch.rand(cfg.batch, generator=g) < cfg.negatives
        if neg.any():
            bx = boxes[idx[neg].numpy()].copy()
            fl = flip[neg].numpy()
            bx[fl, 0], bx[fl, 2] = cfg.size - bx[fl, 2], cfg.size - bx[fl, 0]
            xb[neg] = _negatives(xb[neg], bx, g)
            sb[neg] = NO_PERSON
        xb = _degrade(xb, g)
        pos = ~neg
        kp_loss = side_invariant_l1(reg(xb[pos]), kb[pos]) if pos.any() else xb.sum() * 0
        loss = kp_loss + 0.5 * functional.cross_entropy(cls(xb), sb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return reg.eval(), cls.eval()


def load_or_train_readers(cfg: ReaderConfig, progress: bool = True) -> tuple[KeypointRegressor, StateClassifier]:
    """Trained once per config and cached as safetensors (GENLAB_CACHE)."""
    from genlab.core.train import load_weights, save_weights

    path = cache_dir() / f"readers-{cfg.size}-{cfg.key()}.safetensors"
    reg, cls = KeypointRegressor(cfg), StateClassifier(cfg)
    if path.exists():
        state, _ = load_weights(path)
        reg.load_state_dict({k[4:]: v for k, v in state.items() if k.startswith("reg.")})
        cls.load_state_dict({k[4:]: v for k, v in state.items() if k.startswith("cls.")})
        return reg.eval(), cls.eval()
    reg, cls = train_readers(cfg, progress)
    state = {f"reg.{k}": v.contiguous() for k, v in reg.state_dict().items()}
    state.update({f"cls.{k}": v.contiguous() for k, v in cls.state_dict().items()})
    save_weights(path, state, asdict(cfg))
    return reg, cls


@torch.no_grad()
def read_keypoints(reg: KeypointRegressor, images: torch.Tensor, batch: int = 64) -> np.ndarray:
    """images (N, 3, S, S) in [-1, 1] -> (N, K, 2) pixels."""
    return torch.cat([reg(images[i:i + batch]) for i in range(0, len(images), batch)]).numpy()


@torch.no_grad()
def classifier_features(cls: StateClassifier, images: torch.Tensor, batch: int = 64) -> np.ndarray:
    return torch.cat([cls.features(images[i:i + batch]) for i in range(0, len(images), batch)]).double().numpy()


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^1/2) between two feature sets (N, D)."""
    from scipy import linalg

    mu_a, mu_b = a.mean(0), b.mean(0)
    sa, sb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean, _ = linalg.sqrtm(sa @ sb, disp=False)
    covmean = covmean.real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(sa + sb - 2 * covmean))
