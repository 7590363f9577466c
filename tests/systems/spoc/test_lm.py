"""The causal-LM adapter on a tiny GPT-2 built and trained here (no download)."""

import math

import pytest

from genlab.systems.spoc.lexer import canonical


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    tokenizers = pytest.importorskip("tokenizers")
    from tokenizers import decoders, models, pre_tokenizers, trainers

    path = tmp_path_factory.mktemp("tiny-lm")
    corpus = ["// read n\ncin >> n;\n", "// print n\ncout << n << endl;\n"] * 20
    tok = tokenizers.Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"],
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>")
    fast.save_pretrained(path)
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(vocab_size=len(fast), n_embd=32, n_layer=1, n_head=2, n_positions=128)
    model = transformers.GPT2LMHeadModel(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    ids = [torch.tensor([fast(text)["input_ids"]]) for text in corpus[:2]]
    for _ in range(80):
        loss = sum(model(input_ids=x, labels=x).loss for x in ids)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.save_pretrained(path)
    return path


def test_causal_lm_adapter_returns_scored_distinct_lines(tiny_lm):
    from genlab.systems.spoc.lm import CausalLMTranslator

    tr = CausalLMTranslator(tiny_lm, max_new_tokens=12)
    (cands,) = tr.translate(["read n"], 4)
    assert 1 <= len(cands) <= 4
    assert canonical(cands[0].code) == canonical("cin >> n;")  # it learnt the pair
    lps = [c.logprob for c in cands]
    assert lps == sorted(lps, reverse=True) and all(math.isfinite(x) for x in lps)
    assert len({canonical(c.code) for c in cands}) == len(cands)
    assert tr.fingerprint() == CausalLMTranslator(tiny_lm, max_new_tokens=12).fingerprint()


def test_missing_model_path_is_a_clear_error(tmp_path):
    from genlab.errors import GenlabError
    from genlab.systems.spoc.lm import CausalLMTranslator

    with pytest.raises(GenlabError, match="causal LM path not found"):
        CausalLMTranslator(tmp_path / "nope")
