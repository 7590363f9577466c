"""A small sequence-to-sequence translator with copy attention (pointer-generator), CPU-sized.

The paper's translator is a BiLSTM encoder-decoder (hidden 200) with copy and coverage attention and
beam 100. Ours: a bidirectional GRU encoder, a GRU decoder with input feeding and bilinear attention;
the output mixes the vocabulary softmax with the attention over source positions (p_gen, See et al.
2017), so identifiers and literals unseen in training are copied from the pseudocode. Coverage (See et
al.): the attention sum so far enters every score through a learned, state-dependent weight, and the
loss adds sum_i min(a_i, c_i) per step, so that a source token is not translated twice or skipped.
Tokens come from `lexer.tokens`; the code line is the detokenised beam output.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from genlab.core.train import load_checkpoint, save_checkpoint
from genlab.errors import GenlabError
from genlab.systems.spoc.lexer import canonical, detokenize, tokens
from genlab.systems.spoc.translate import Candidate, normalise

PAD, UNK, BOS, EOS = 0, 1, 2, 3
SPECIALS = ["<pad>", "<unk>", "<s>", "</s>"]


@dataclass(frozen=True)
class Seq2SeqConfig:
    embed: int = 64
    hidden: int = 128
    min_count: int = 2
    max_src: int = 60
    max_tgt: int = 60
    lr: float = 2e-3
    batch: int = 64
    beam: int = 20
    coverage: float = 1.0  # weight of the coverage loss; 0 turns coverage off (scores and loss)
    seed: int = 0
    lr_decay: float = 0.5  # after `decay_every` steps the learning rate is multiplied by lr_decay every
    decay_every: int = 1000  # `decay_every` steps (at 2e-3 throughout, the loss rose after step 1400)


_SCHEDULE = ("lr", "lr_decay", "decay_every")  # optimisation schedule: a resumed run may change it


def presets() -> dict[str, Seq2SeqConfig]:
    """tiny: tests; small: CPU minutes; paper: the paper's sizes (hidden 200, beam 100 -> M = 100)."""
    return {"tiny": Seq2SeqConfig(embed=32, hidden=64, min_count=1, batch=16, beam=5), "small": Seq2SeqConfig(),
            "paper": Seq2SeqConfig(embed=128, hidden=200, beam=100)}


class CopySeq2Seq(nn.Module):
    def __init__(self, vocab_size: int, config: Seq2SeqConfig):
        super().__init__()
        e, h = config.embed, config.hidden
        self.vocab_size = vocab_size
        self.embed = nn.Embedding(vocab_size, e, padding_idx=PAD)
        self.encoder = nn.GRU(e, h // 2, batch_first=True, bidirectional=True)
        self.bridge = nn.Linear(h, h)
        self.cell = nn.GRUCell(e + h, h)
        self.attn = nn.Linear(h, h, bias=False)
        self.out = nn.Linear(2 * h, vocab_size)
        self.gen = nn.Linear(2 * h + e, 1)
        self.use_coverage, self.coverage_weight = config.coverage > 0, config.coverage
        self.cov = nn.Parameter(torch.zeros(h)) if self.use_coverage else None

    def encode(self, src: torch.Tensor, mask: torch.Tensor):
        enc, _ = self.encoder(self.embed(src))  # [B, S, H]
        mean = (enc * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1)  # [B, H]
        return enc, torch.tanh(self.bridge(mean))

    def step(self, prev: torch.Tensor, state: torch.Tensor, ctx: torch.Tensor, cover: torch.Tensor,
             enc: torch.Tensor, mask: torch.Tensor, src_ext: torch.Tensor, n_ext: int):
        """One decoder step -> (log p over vocab + source OOVs [B, V + n_ext], state, context, attention).

        `cover` [B, S] is the sum of the previous steps' attention (coverage vector)."""
        emb = self.embed(prev.clamp(max=self.vocab_size - 1) * (prev < self.vocab_size) + UNK * (prev >= self.vocab_size))
        state = self.cell(torch.cat([emb, ctx], -1), state)  # [B, H]
        query = self.attn(state)
        scores = torch.einsum("bh,bsh->bs", query, enc)
        if self.use_coverage:  # q . (enc_i + c_i u): the coverage feature of See et al. in bilinear form
            scores = scores + cover * (query @ self.cov)[:, None]
        attn = scores.masked_fill(mask == 0, -1e9).softmax(-1)  # [B, S]
        ctx = torch.einsum("bs,bsh->bh", attn, enc)  # [B, H]
        feat = torch.cat([state, ctx], -1)
        p_gen = torch.sigmoid(self.gen(torch.cat([feat, emb], -1)))  # [B, 1]
        vocab = self.out(feat).softmax(-1) * p_gen  # [B, V]
        dist = torch.cat([vocab, vocab.new_zeros(vocab.shape[0], n_ext)], -1)
        dist = dist.scatter_add(1, src_ext, attn * (1 - p_gen))  # copy mass onto source tokens
        return dist.clamp(min=1e-12).log(), state, ctx, attn


class Vocab:
    def __init__(self, itos: list[str]):
        self.itos = itos
        self.stoi = {s: i for i, s in enumerate(itos)}

    def encode_src(self, toks: list[str]) -> tuple[list[int], list[int], list[str]]:
        ids, ext, oov = [], [], []
        for t in toks:
            i = self.stoi.get(t, UNK)
            ids.append(i)
            if i == UNK:
                if t not in oov:
                    oov.append(t)
                ext.append(len(self.itos) + oov.index(t))
            else:
                ext.append(i)
        return ids, ext, oov

    def encode_tgt(self, toks: list[str], oov: list[str]) -> list[int]:
        out = []
        for t in toks:
            if t in self.stoi:
                out.append(self.stoi[t])
            elif t in oov:
                out.append(len(self.itos) + oov.index(t))
            else:
                out.append(UNK)
        return out + [EOS]


def _batch(examples, vocab: Vocab):
    """examples: [(src toks, tgt toks)] -> padded tensors and the per-batch number of source OOVs."""
    enc = [vocab.encode_src(s) for s, _ in examples]
    n_ext = max(len(o) for _, _, o in enc) if enc else 0
    tgts = [vocab.encode_tgt(t, o) for (_, _, o), (_, t) in zip(enc, examples)]
    S, T = max(len(i) for i, _, _ in enc), max(len(t) for t in tgts)
    src = torch.full((len(enc), S), PAD)
    ext = torch.zeros((len(enc), S), dtype=torch.long)
    tgt = torch.full((len(enc), T), PAD)
    for b, ((ids, e, _), t) in enumerate(zip(enc, tgts)):
        src[b, : len(ids)], ext[b, : len(e)], tgt[b, : len(t)] = torch.tensor(ids), torch.tensor(e), torch.tensor(t)
    return src, ext, tgt, n_ext


def loss_fn(model: CopySeq2Seq, src, ext, tgt, n_ext) -> torch.Tensor:
    mask = (src != PAD).float()
    enc, state = model.encode(src, mask)
    ctx, cover = torch.zeros_like(state), torch.zeros_like(mask)
    prev = torch.full((src.shape[0],), BOS)
    losses = []
    for t in range(tgt.shape[1]):
        logp, state, ctx, attn = model.step(prev, state, ctx, cover, enc, mask, ext, n_ext)
        step_loss = nn.functional.nll_loss(logp, tgt[:, t], ignore_index=PAD, reduction="none")
        if model.use_coverage:
            step_loss = step_loss + model.coverage_weight * torch.minimum(attn, cover).sum(-1) * (tgt[:, t] != PAD)
        losses.append(step_loss)
        cover = cover + attn
        prev = tgt[:, t]
    loss = torch.stack(losses, 1)  # [B, T]
    return loss.sum() / (tgt != PAD).sum()


class Seq2SeqTranslator:
    def __init__(self, model: CopySeq2Seq, vocab: Vocab, config: Seq2SeqConfig, tag: str = ""):
        self.model, self.vocab, self.config = model.eval(), vocab, config
        self.name = "seq2seq"
        self._tag = tag

    def fingerprint(self) -> str:
        import hashlib

        h = hashlib.sha256(json.dumps([asdict(self.config), self.vocab.itos]).encode())
        for v in self.model.state_dict().values():
            h.update(v.numpy().tobytes())
        return f"seq2seq-{h.hexdigest()[:16]}"

    @torch.no_grad()
    def translate(self, texts: Sequence[str], m: int) -> list[list[Candidate]]:
        return [self._beam(text, max(m, 1)) for text in texts]

    def _beam(self, text: str, m: int) -> list[Candidate]:
        toks = tokens(text)[: self.config.max_src] or ["<unk>"]
        ids, ext, oov = self.vocab.encode_src(toks)
        src, ext_t = torch.tensor([ids]), torch.tensor([ext])
        mask = torch.ones_like(src, dtype=torch.float)
        enc, state = self.model.encode(src, mask)
        width = min(m, self.config.beam)
        beams = [([], 0.0, state[0], torch.zeros_like(state[0]), torch.zeros_like(mask[0]))]
        done: list[tuple[list[int], float]] = []
        for _ in range(self.config.max_tgt):
            if not beams:
                break
            prev = torch.tensor([b[0][-1] if b[0] else BOS for b in beams])
            k = len(beams)
            cover = torch.stack([b[4] for b in beams])
            logp, st, cx, attn = self.model.step(prev, torch.stack([b[2] for b in beams]), torch.stack([b[3] for b in beams]),
                                                 cover, enc.expand(k, -1, -1), mask.expand(k, -1), ext_t.expand(k, -1),
                                                 len(oov))
            cover = cover + attn
            total = torch.tensor([b[1] for b in beams])[:, None] + logp  # [k, V + oov]
            top = total.flatten().topk(min(width, total.numel()))
            new = []
            for score, flat in zip(top.values.tolist(), top.indices.tolist()):
                b, tok = divmod(flat, total.shape[1])
                seq = beams[b][0] + [tok]
                if tok == EOS:
                    done.append((seq[:-1], score))
                else:
                    new.append((seq, score, st[b], cx[b], cover[b]))
            beams = new
            if len(done) >= width:
                break
        done += [(b[0], b[1]) for b in beams]
        scored: dict[tuple[str, ...], tuple[str, float]] = {}
        for seq, score in done:
            words = [self.vocab.itos[i] if i < len(self.vocab.itos) else oov[i - len(self.vocab.itos)] for i in seq]
            code = detokenize([w for w in words if w not in SPECIALS])
            key = canonical(code)
            weight = math.exp(score)
            old = scored.get(key)
            scored[key] = (code, weight + (old[1] if old else 0.0))
        return normalise(scored, m) if scored else [Candidate(";", 0.0)]

    def save(self, directory: str | Path) -> None:
        """`model.safetensors` + `model.json` (config, vocabulary, tag) in `directory`."""
        from genlab.core.train import config_to_dict, save_weights

        meta = {"config": config_to_dict(self.config), "vocab": self.vocab.itos, "tag": self._tag}
        save_weights(Path(directory) / "model.safetensors", self.model.state_dict(), meta)

    @classmethod
    def load(cls, directory: str | Path) -> Seq2SeqTranslator:
        from genlab.core.train import config_from_dict, load_weights

        directory = Path(directory)
        if not (directory / "model.json").is_file():
            raise GenlabError(f"no seq2seq checkpoint at {directory} (expected model.json + model.safetensors)")
        state, meta = load_weights(directory / "model.safetensors")
        if not isinstance(meta, dict) or not {"config", "vocab"} <= set(meta):
            raise GenlabError(f"{directory / 'model.json'}: expected the fields 'config' and 'vocab'")
        config = config_from_dict(Seq2SeqConfig, meta["config"], str(directory / "model.json"))
        vocab = Vocab(meta["vocab"])
        model = CopySeq2Seq(len(vocab.itos), config)
        try:
            model.load_state_dict(state)
        except RuntimeError as err:
            raise GenlabError(f"{directory / 'model.safetensors'} does not fit its model.json: {str(err)[:300]}") from None
        return cls(model, vocab, config, meta.get("tag", ""))


def build_vocab(pairs: Sequence[tuple[str, str]], min_count: int) -> Vocab:
    counts = Counter(t for text, code in pairs for t in tokens(text) + tokens(code))
    return Vocab(SPECIALS + sorted(t for t, c in counts.items() if c >= min_count))


RESUME_FILE = "resume.safetensors"


def train_seq2seq(pairs: Sequence[tuple[str, str]], config: Seq2SeqConfig, out: Path | None = None,
                  minutes: float = 20.0, max_steps: int | None = None, progress: bool = True,
                  save_every: int = 500) -> Seq2SeqTranslator:
    """Train until `minutes` of wall time (this run) or `max_steps` (in all); saves to `out`
    (model.json + model.safetensors) at the end and every `save_every` steps, so that a stopped run
    leaves a usable checkpoint. `out/resume.safetensors` (weights, optimiser, step, data order) lets a
    later call with the same pairs and config go on where the last one stopped."""
    torch.manual_seed(config.seed)
    vocab = build_vocab(pairs, config.min_count)
    data = [(tokens(t)[: config.max_src], tokens(c)[: config.max_tgt - 1]) for t, c in pairs]
    data = [d for d in data if d[0]]
    model = CopySeq2Seq(len(vocab.itos), config)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    step = 0
    key = _resume_key(pairs, config)
    if out is not None and (Path(out) / RESUME_FILE).is_file():
        step = _resume(Path(out) / RESUME_FILE, (key, _resume_key(pairs, config, legacy=True)), model, opt)
    start = time.time()
    bar = tqdm(desc="seq2seq", disable=not progress, total=max_steps, initial=step)
    per_epoch = math.ceil(len(data) / config.batch)
    while True:
        epoch, first = divmod(step, per_epoch)
        order = list(range(len(data)))
        random.Random(config.seed * 1_000_003 + epoch).shuffle(order)  # the same order after a resume
        for b in range(first, per_epoch):
            for group in opt.param_groups:  # set every step: a resumed optimiser state carries its old rate
                group["lr"] = learning_rate(config, step)
            batch = [data[j] for j in order[b * config.batch: (b + 1) * config.batch]]
            loss = loss_fn(model, *_batch(batch, vocab))
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}")
            finished = bool(max_steps and step >= max_steps) or time.time() - start > minutes * 60
            if finished or (out is not None and step % save_every == 0):
                translator = Seq2SeqTranslator(model, vocab, config, f"{len(pairs)}p-{step}s-{config.hidden}h-{config.seed}")
                if out is not None:
                    translator.save(out)
                    save_checkpoint(Path(out) / RESUME_FILE, {"key": key, "step": step, "model": model.state_dict(),
                                                              "optimizer": opt.state_dict()})
                if finished:
                    bar.close()
                    return translator
                model.train()  # the translator put it in eval mode


def learning_rate(config: Seq2SeqConfig, step: int) -> float:
    """Constant for `decay_every` steps, then multiplied by `lr_decay` every `decay_every` steps."""
    return config.lr * config.lr_decay ** (step // max(1, config.decay_every))


def _resume_key(pairs: Sequence[tuple[str, str]], config: Seq2SeqConfig, legacy: bool = False) -> str:
    """The training pairs and the model's config; not the learning-rate schedule (`legacy`: checkpoints
    written before `lr_decay` existed hashed `lr` too)."""
    import hashlib

    drop = _SCHEDULE[1:] if legacy else _SCHEDULE
    conf = {k: v for k, v in asdict(config).items() if k not in drop}
    return hashlib.sha256(json.dumps([conf, list(pairs)]).encode()).hexdigest()[:16]


def _resume(path: Path, keys: tuple[str, ...], model: CopySeq2Seq, opt: torch.optim.Optimizer) -> int:
    """Load a resume checkpoint into `model` and `opt`; return its step (0 if its key is none of `keys`:
    made for other data or another config)."""
    state = load_checkpoint(path)
    if state.get("key") not in keys:
        print(f"{path}: made from other training pairs or another config; starting from step 0")
        return 0
    model.load_state_dict(state["model"])
    optim = state["optimizer"]
    optim["state"] = {int(k): v for k, v in optim["state"].items()}  # JSON turned the param ids into strings
    opt.load_state_dict(optim)
    return int(state["step"])
