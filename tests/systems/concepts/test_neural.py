"""The optional torch emission scorer (neural.py): labels from alignments, segment scores, decoding."""

import numpy as np

from genlab.systems.motion.concepts import dataset
from genlab.systems.motion.concepts.learn import ListSequence
from genlab.systems.motion.concepts.model import mirror, normalise, phase_offsets
from genlab.systems.motion.concepts.neural import NeuralEmission, alignment_labels, attach

from .conftest import SMALL


def _lists(n=2):
    seqs = [dataset.make_sequence(np.random.default_rng([91, i]), names=SMALL) for i in range(n)]
    return [ListSequence(s.keypoints, tuple(s.description.concepts)) for s in seqs]


def test_alignment_labels_give_each_unit_one_chirality(small_model):
    model, examples, _ = small_model
    lists = _lists(1)
    data = alignment_labels(model, examples[:2], lists, n_bins=4)
    K = len(model.concepts) * 4
    for f, y0, y1 in data:
        assert len(f) == len(y0) == len(y1)
        for y in (y0, y1):
            assert ((y == -100) | ((y >= 0) & (y <= K))).all()
        token = (y0 >= 0) & (y0 < K)
        assert not (token & (y1 >= 0) & (y1 < K)).any()  # never a concept token in both views
    f, y0, y1 = data[-1]  # a list sequence: its action list is recovered from the token runs
    lab = np.where((y0 >= 0) & (y0 < K), y0 // 4, np.where((y1 >= 0) & (y1 < K), y1 // 4, -1))
    runs = [int(lab[i]) for i in range(len(lab)) if lab[i] >= 0 and (i == 0 or lab[i - 1] != lab[i])]
    assert [model.names[r] for r in runs] == list(lists[0].actions)


def test_segment_scores_match_a_direct_sum_and_decoding_runs(small_model):
    model, examples, _ = small_model
    em = NeuralEmission.fit(model, examples, _lists(2), n_bins=4, budget_s=None, max_steps=20, crop=64, batch=2)
    assert em.steps == 20 and np.mean(em.losses[-5:]) < np.mean(em.losses[:5])
    feats = normalise(examples[0].keypoints[:120], model.cfg).feats
    scores, ds, variant = em.segment_scores(model, feats)
    gen = model.segment_scores(feats)
    assert scores.shape == gen[0].shape
    np.testing.assert_array_equal(np.isfinite(scores), np.isfinite(gen[0]))  # same duration limits
    c = model.concepts[1]
    d = (c.min_duration + c.max_duration) // 2
    k, t = int(np.searchsorted(ds, d)), 100
    P = model.cfg.n_phases
    L = [em.log_likelihoods(feats), em.log_likelihoods(mirror(feats, model.cfg))]
    tok = 1 * 4 + (np.arange(P) * 4) // P
    rows = t - d + phase_offsets(d, P)
    direct = [(d / P) * Lv[rows, tok].sum() for Lv in L]
    want = max(direct) + float(c.duration_logpdf(np.array([d]))[0])
    np.testing.assert_allclose(scores[1, k, t], want, rtol=1e-9)
    assert variant[1, k, t] == int(direct[1] > direct[0])
    nm = attach(model, em)
    desc = nm.describe(examples[0].keypoints)
    assert desc.n_frames == len(examples[0].keypoints)
    assert all(a.concept in model.names for a in desc.actions)
    assert attach(nm, None).emission is None and model.emission is None
    assert "emission" not in model.to_dict()
