"""The small copy-attention seq2seq: learns the toy pairs and copies identifiers it never saw."""

import torch

from genlab.systems.spoc.lexer import canonical
from genlab.systems.spoc.seq2seq import (
    CopySeq2Seq,
    Seq2SeqTranslator,
    _batch,
    build_vocab,
    loss_fn,
    presets,
    train_seq2seq,
)

NAMES = ["a", "b", "n", "m", "x", "y", "k", "s", "t", "cnt"]
PAIRS = [(f"read {v}", f"cin >> {v};") for v in NAMES] + [(f"print {v}", f"cout << {v} << endl;") for v in NAMES] \
    + [(f"set {v} to 0", f"{v} = 0;") for v in NAMES]


def test_gradients_reach_every_parameter():
    cfg = presets()["tiny"]
    vocab = build_vocab(PAIRS, 1)
    model = CopySeq2Seq(len(vocab.itos), cfg)
    from genlab.systems.spoc.lexer import tokens

    loss = loss_fn(model, *_batch([(tokens(t), tokens(c)) for t, c in PAIRS[:4]], vocab))
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for n, p in model.named_parameters() if "embed" not in n)


def test_learns_and_copies_unseen_identifiers(tmp_path):
    torch.manual_seed(0)
    tr = train_seq2seq(PAIRS, presets()["tiny"], tmp_path / "ckpt", minutes=2.0, max_steps=250, progress=False)
    (read_q,), (print_zz,) = [c[:1] for c in tr.translate(["read q", "print zz"], 3)]
    assert canonical(read_q.code) == canonical("cin >> q;")  # q is not in the vocabulary: copied
    assert canonical(print_zz.code) == canonical("cout << zz << endl;")
    loaded = Seq2SeqTranslator.load(tmp_path / "ckpt")
    assert loaded.fingerprint() == tr.fingerprint()
    assert [c.code for c in loaded.translate(["read q"], 3)[0]] == [c.code for c in tr.translate(["read q"], 3)[0]]
