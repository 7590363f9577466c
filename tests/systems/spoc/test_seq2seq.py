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


def test_coverage_loss_is_the_sum_of_min_attention_and_coverage():
    from dataclasses import replace

    from genlab.systems.spoc.lexer import tokens
    from genlab.systems.spoc.seq2seq import PAD

    torch.manual_seed(0)
    cfg = replace(presets()["tiny"], coverage=0.5)
    vocab = build_vocab(PAIRS, 1)
    model = CopySeq2Seq(len(vocab.itos), cfg)
    src, ext, tgt, n_ext = _batch([(tokens(t), tokens(c)) for t, c in PAIRS[:6]], vocab)
    with torch.no_grad():
        model.cov.normal_()  # coverage changes the scores too
        with_cov = loss_fn(model, src, ext, tgt, n_ext)
        # the same decoder run by hand: NLL + 0.5 * sum_i min(a_i, c_i) on non-pad target steps
        mask = (src != PAD).float()
        enc, state = model.encode(src, mask)
        ctx, cover, prev, nll, penalty = torch.zeros_like(state), torch.zeros_like(mask), torch.full((6,), 2), 0.0, 0.0
        for t in range(tgt.shape[1]):
            logp, state, ctx, attn = model.step(prev, state, ctx, cover, enc, mask, ext, n_ext)
            real = tgt[:, t] != PAD
            nll += -(logp.gather(1, tgt[:, t : t + 1])[:, 0] * real).sum()
            penalty += (torch.minimum(attn, cover).sum(-1) * real).sum()
            cover, prev = cover + attn, tgt[:, t]
        assert penalty > 0
        torch.testing.assert_close(with_cov, (nll + 0.5 * penalty) / (tgt != PAD).sum())


def test_a_stopped_run_resumes_to_the_same_weights(tmp_path):
    straight = train_seq2seq(PAIRS, presets()["tiny"], tmp_path / "a", max_steps=6, progress=False, save_every=3)
    train_seq2seq(PAIRS, presets()["tiny"], tmp_path / "b", max_steps=3, progress=False, save_every=3)
    resumed = train_seq2seq(PAIRS, presets()["tiny"], tmp_path / "b", max_steps=6, progress=False, save_every=3)
    assert resumed._tag == straight._tag  # step 6 in all, not 3 + 6
    for (name, x), y in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.allclose(x, y, atol=1e-6), name
    other = train_seq2seq(PAIRS[:5], presets()["tiny"], tmp_path / "b", max_steps=1, progress=False)
    assert other._tag.startswith("5p-1s")  # other training pairs: a fresh start, not a resume


def test_the_learning_rate_decays_and_a_resume_may_change_it(tmp_path):
    from dataclasses import replace

    from genlab.core.train import load_checkpoint
    from genlab.systems.spoc.seq2seq import RESUME_FILE

    cfg = replace(presets()["tiny"], decay_every=2)
    train_seq2seq(PAIRS, cfg, tmp_path, max_steps=5, progress=False, save_every=100)
    state = load_checkpoint(tmp_path / RESUME_FILE)
    assert abs(state["optimizer"]["param_groups"][0]["lr"] - cfg.lr * 0.25) < 1e-12  # the 5th step (step 4) ran at lr / 4
    slower = train_seq2seq(PAIRS, replace(cfg, lr=1e-4, lr_decay=1.0), tmp_path, max_steps=7, progress=False)
    assert slower._tag.startswith("30p-7s")  # the schedule is not part of the resume key: it went on from step 5
