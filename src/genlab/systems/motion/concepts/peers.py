"""Neural peers of the low-data benchmark (`benchmarks/concepts_lowdata.py`). Not part of the
concepts API: small torch modules, CPU, trained under a CPU-time budget so that every learned
method of a benchmark row gets the same budget.

- `CTCBaseline`: a temporal conv net trained with CTC on ordered action lists only (few-shot
  examples chained with idle stretches, and list-only sequences when given). Decoding is greedy
  CTC; an action's span is the cell of its peak between the neighbouring peaks (CTC gives no
  boundaries), its count the span over the concept's median iteration length in the examples.
- The MS-TCN-style frame classifier (frame labels) is `baselines.TCNBaseline`.
- `ActorVAE`: an ACTOR-style class-conditional transformer VAE (Petrovich et al. 2021): the
  encoder reads the frames plus two class tokens (mu, sigma), the decoder maps z + a class bias
  to a sequence of the requested duration through positional-encoding queries. Trained on the
  trimmed examples (both chiralities) with reconstruction + KL loss; sampled from the prior.

The architectures follow the papers' descriptions in miniature (widths 64, 2 layers); none of
their code is used.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from genlab.systems.motion.concepts.config import ConceptConfig
from genlab.systems.motion.concepts.description import Action, Description
from genlab.systems.motion.concepts.learn import Example
from genlab.systems.motion.concepts.model import normalise


def train_budgeted(step, budget_s: float | None, max_steps: int) -> int:
    """Call `step()` until `budget_s` CPU seconds of this process are spent (or max_steps)."""
    t0 = time.process_time()
    n = 0
    while n < max_steps and (budget_s is None or time.process_time() - t0 < budget_s):
        step()
        n += 1
    return n


def _names(examples: Sequence[Example]) -> list[str]:
    out: list[str] = []
    for ex in examples:
        if ex.concept not in out:
            out.append(ex.concept)
    return out


def _augment(rng, f: np.ndarray, cfg: ConceptConfig) -> np.ndarray:
    """Standard augmentation of a clip's features (origin-relative, body heights) towards the
    data's nuisances: time stretch 0.75-1.35x, amplitude 0.8-1.2x about the first frame, mirror."""
    from genlab.systems.motion.concepts.model import mirror
    from genlab.systems.motion.concepts.programs import resample

    n = max(4, int(round(len(f) * rng.uniform(0.75, 1.35))))
    f = resample(f, n)
    f = f[:1] + rng.uniform(0.8, 1.2) * (f - f[:1])
    return mirror(f, cfg) if rng.random() < 0.5 else f


def chain_clips(rng, clips, cfg: ConceptConfig, n_items: int = 4, augment: bool = False):
    """Few-shot clips chained with idle stretches (rest pose + noise), no concept twice in a row.
    Returns features (T, F), frame labels (T,) with -1 = idle, and the action list."""
    xs, ys, acts = [], [], []
    last = -1
    for _ in range(n_items):
        choices = [i for i, (_, c) in enumerate(clips) if c != last]
        f, c = clips[int(rng.choice(choices))]
        if augment:
            f = _augment(rng, f, cfg)
        n = int(rng.integers(3, 30))
        xs += [f[:1] + rng.normal(0, cfg.var_floor**0.5, (n, f.shape[1])), f]
        ys += [np.full(n, -1), np.full(len(f), c)]
        acts.append(c)
        last = c
    n = int(rng.integers(3, 30))
    xs.append(xs[-1][-1:] + rng.normal(0, cfg.var_floor**0.5, (n, xs[-1].shape[1])))
    ys.append(np.full(n, -1))
    return np.concatenate(xs), np.concatenate(ys), acts


def feature_stats(arrays) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and std of the training features (input standardisation of the neural
    peers: without it the CTC net sits on its all-blank plateau for thousands of steps)."""
    allf = np.concatenate(list(arrays))
    return allf.mean(0), allf.std(0) + 1e-3


# ---------------------------------------------------------------------------------------- CTC
class CTCBaseline:
    STRIDE = 4

    def __init__(self, net, names, cfg, iter_len, mean=0.0, std=1.0):
        self.net, self.names, self.cfg, self.iter_len = net, names, cfg, iter_len
        self.mean, self.std = mean, std  # input standardisation (training clips' statistics)
        self.steps = 0
        self.losses: list[float] = []

    @staticmethod
    def _make_net(F: int, C: int, width: int = 64, layers: int = 4):
        from torch import nn

        class Residual(nn.Module):
            def __init__(self, d):
                super().__init__()
                self.conv = nn.Conv1d(width, width, 3, padding=d, dilation=d)
                self.out = nn.Conv1d(width, width, 1)

            def forward(self, x):
                return x + self.out(nn.functional.relu(self.conv(x)))

        return nn.Sequential(
            nn.AvgPool1d(4, ceil_mode=True),  # T / 4: CTC needs one step per token at most
            nn.Conv1d(F, width, 5, padding=2), nn.ReLU(),
            *[Residual(2**i) for i in range(layers)],
            nn.Conv1d(width, C + 1, 1),  # blank = index 0
        )

    @classmethod
    def fit(cls, examples: Sequence[Example], lists=(), cfg: ConceptConfig | None = None,
            budget_s: float | None = None, max_steps: int = 100_000, seed: int = 0, batch: int = 4,
            lr: float = 2e-3, standardise: bool = True, augment: bool = True, blank_bias: float = 0.0,
            n_items: int = 4, callback=None) -> CTCBaseline:
        """lists: `learn.ListSequence`s (keypoints + ordered action list). Each step: a padded batch
        of `batch` sequences (chained examples, or list-only sequences half of the time)."""
        import torch

        cfg = cfg or ConceptConfig()
        rng = np.random.default_rng(seed)
        torch.manual_seed(seed)
        names = _names(examples)
        clips = [(normalise(ex.keypoints, cfg).feats, names.index(ex.concept)) for ex in examples]
        iter_len = {n: float(np.median([len(f) / ex.count for (f, _), ex in zip(clips, examples)
                                        if ex.concept == n])) for n in names}
        full = [(normalise(s.keypoints, cfg).feats, [names.index(a) for a in s.actions]) for s in lists]
        mean, std = feature_stats([f for f, _ in clips] + [f for f, _ in full]) if standardise else (0.0, 1.0)
        net = cls._make_net(clips[0][0].shape[1], len(names))
        with torch.no_grad():
            net[-1].bias[0] = blank_bias
        opt = torch.optim.Adam(net.parameters(), lr=lr)
        ctc = torch.nn.CTCLoss(blank=0, zero_infinity=True)

        def out_len(n):
            return -(-n // 4)

        def step():
            items = []
            for _ in range(batch):
                if full and rng.random() < 0.5:
                    items.append(full[int(rng.integers(len(full)))])
                else:
                    x, _, acts = chain_clips(rng, clips, cfg, n_items, augment)
                    items.append((x, acts))
            items = [((x - mean) / std, a) for x, a in items]
            T = max(len(x) for x, _ in items)
            xb = np.zeros((batch, T, items[0][0].shape[1]), np.float32)
            for b, (x, _) in enumerate(items):
                xb[b, : len(x)] = x
                xb[b, len(x):] = x[-1]  # pad by holding the last frame
            logp = net(torch.from_numpy(xb.transpose(0, 2, 1))).log_softmax(1).permute(2, 0, 1)  # (T', B, C+1)
            targets = torch.tensor([a + 1 for _, acts in items for a in acts])
            loss = ctc(logp, targets, [out_len(len(x)) for x, _ in items], [len(a) for _, a in items])
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)  # CTC's loss spikes otherwise
            opt.step()
            out.losses.append(float(loss.detach()))
            if callback is not None:
                callback(out)

        out = cls(net, names, cfg, iter_len, mean, std)
        out.steps = train_budgeted(step, budget_s, max_steps)
        net.eval()
        return out

    def describe(self, keypoints) -> Description:
        import torch

        feats = (normalise(keypoints, self.cfg).feats - self.mean) / self.std
        T = len(feats)
        with torch.no_grad():
            prob = self.net(torch.from_numpy(feats.T[None].astype(np.float32))).softmax(1)[0].T.numpy()
        lab = prob.argmax(1)
        peaks = []  # (label, peak frame in the original rate, peak prob)
        t = 0
        while t < len(lab):
            u = t
            while u < len(lab) and lab[u] == lab[t]:
                u += 1
            if lab[t] != 0:
                i = t + int(np.argmax(prob[t:u, lab[t]]))
                peaks.append((int(lab[t]) - 1, (i + 0.5) * T / len(lab), float(prob[i, lab[t]])))
            t = u
        actions = []
        for j, (c, p, sc) in enumerate(peaks):
            s = 0 if j == 0 else int(round(0.5 * (peaks[j - 1][1] + p)))
            e = T if j == len(peaks) - 1 else int(round(0.5 * (p + peaks[j + 1][1])))
            if e > s:
                name = self.names[c]
                actions.append(Action(name, s, e, max(1, int(round((e - s) / self.iter_len[name]))), sc))
        return Description(T, tuple(actions))


# ----------------------------------------------------------------------------------- ACTOR VAE
def _sinusoid(n: int, d: int):
    import torch

    pos = torch.arange(n, dtype=torch.float32)[:, None]
    div = torch.exp(torch.arange(0, d, 2, dtype=torch.float32) * (-np.log(10000.0) / d))
    pe = torch.zeros(n, d)
    pe[:, 0::2] = torch.sin(pos * div)
    pe[:, 1::2] = torch.cos(pos * div)
    return pe


class ActorVAE:
    """Class-conditional transformer VAE over normalised (T, 17, 2) keypoints at a quarter of the frame rate."""

    SUB = 4  # temporal subsampling of the training clips (the decoder output is upsampled back)

    def __init__(self, net, names, cfg):
        self.net, self.names, self.cfg = net, names, cfg
        self.steps = 0
        self.losses: list[float] = []

    @staticmethod
    def _make_net(C: int, D: int = 34, width: int = 64, layers: int = 2, heads: int = 4):
        import torch
        from torch import nn

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.inp = nn.Linear(D, width)
                self.mu_tok = nn.Parameter(torch.randn(C, width) * 0.02)
                self.sig_tok = nn.Parameter(torch.randn(C, width) * 0.02)
                self.bias = nn.Parameter(torch.randn(C, width) * 0.02)
                enc = nn.TransformerEncoderLayer(width, heads, 2 * width, 0.1, batch_first=True)
                dec = nn.TransformerDecoderLayer(width, heads, 2 * width, 0.1, batch_first=True)
                self.encoder = nn.TransformerEncoder(enc, layers)
                self.decoder = nn.TransformerDecoder(dec, layers)
                self.out = nn.Linear(width, D)
                self.width = width

            def encode(self, x, c, mask):  # x (B, T, D), c (B,), mask (B, T) True = padding
                B, T, _ = x.shape
                h = self.inp(x) + _sinusoid(T, self.width)
                h = torch.cat([self.mu_tok[c][:, None], self.sig_tok[c][:, None], h], 1)
                m = torch.cat([torch.zeros(B, 2, dtype=torch.bool), mask], 1)
                h = self.encoder(h, src_key_padding_mask=m)
                return h[:, 0], h[:, 1]  # mu, logvar

            def decode(self, z, c, T, mask=None):
                q = _sinusoid(T, self.width).expand(len(z), T, self.width)
                mem = (z + self.bias[c])[:, None]
                return self.out(self.decoder(q, mem, tgt_key_padding_mask=mask))

        return Net()

    @classmethod
    def fit(cls, examples: Sequence[Example], cfg: ConceptConfig | None = None, budget_s: float | None = None,
            max_steps: int = 100_000, batch: int = 8, kl_weight: float = 1e-4, seed: int = 0) -> ActorVAE:
        import torch

        from genlab.core.pose.skeletons import COCO17

        cfg = cfg or ConceptConfig()
        rng = np.random.default_rng(seed)
        torch.manual_seed(seed)
        names = _names(examples)
        clips = []
        for ex in examples:
            n = normalise(ex.keypoints, cfg)
            full = (np.asarray(ex.keypoints, np.float64) - n.origin) / n.height
            for x in (full, COCO17.mirror(full)):  # both chiralities (performers may be mirrored)
                clips.append((x[:: cls.SUB].reshape(-1, 34).astype(np.float32), names.index(ex.concept)))
        net = cls._make_net(len(names))
        opt = torch.optim.AdamW(net.parameters(), lr=1e-3)

        def step():
            net.train()
            idx = rng.integers(len(clips), size=batch)
            T = max(len(clips[i][0]) for i in idx)
            x = torch.zeros(batch, T, 34)
            mask = torch.ones(batch, T, dtype=torch.bool)
            for b, i in enumerate(idx):
                f = clips[i][0]
                x[b, : len(f)] = torch.from_numpy(f)
                mask[b, : len(f)] = False
            c = torch.tensor([clips[i][1] for i in idx])
            mu, logvar = net.encode(x, c, mask)
            z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
            rec = net.decode(z, c, T, mask)
            valid = (~mask).float()[..., None]
            l_rec = (((rec - x) ** 2) * valid).sum() / (valid.sum() * 34)
            l_kl = -0.5 * (1 + logvar - mu**2 - logvar.exp()).sum(1).mean()
            loss = l_rec + kl_weight * l_kl
            opt.zero_grad()
            loss.backward()
            opt.step()
            out.losses.append(float(l_rec.detach()))

        out = cls(net, names, cfg)
        out.steps = train_budgeted(step, budget_s, max_steps)
        net.eval()
        return out

    def sample(self, concept: str, n_frames: int, seed: int = 0) -> np.ndarray:
        """(n_frames, 17, 2) normalised keypoints of `concept` (the duration is the condition)."""
        import torch

        from genlab.systems.motion.concepts.programs import resample

        g = torch.Generator().manual_seed(seed)
        c = torch.tensor([self.names.index(concept)])
        T = max(2, int(np.ceil(n_frames / self.SUB)))
        with torch.no_grad():
            z = torch.randn(1, self.net.width, generator=g)
            y = self.net.decode(z, c, T)[0].numpy().astype(np.float64)
        return resample(y, n_frames).reshape(n_frames, 17, 2)
