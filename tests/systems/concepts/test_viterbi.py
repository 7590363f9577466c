import itertools

import numpy as np
import pytest

from genlab.errors import GenlabError
from genlab.systems.motion.concepts.viterbi import (
    check_fits,
    forced_graph,
    free_graph,
    minimum_length,
    segmental_viterbi,
)


def _brute_force(scores, durations, graph):
    """Enumerate every unit sequence on a tiny problem."""
    T = scores.shape[2] - 1
    best = -np.inf

    def rec(t, prev, acc):
        nonlocal best
        if t == T:
            best = max(best, acc + graph.log_end[prev])
            return
        for s in range(len(graph.labels)):
            tr = graph.log_start[s] if prev is None else graph.log_trans[prev, s]
            if not np.isfinite(tr):
                continue
            for k, d in enumerate(durations):
                if t + d <= T and np.isfinite(scores[graph.labels[s], k, t + d]):
                    rec(t + d, s, acc + tr + scores[graph.labels[s], k, t + d])

    rec(0, None, 0.0)
    return best


@pytest.mark.parametrize("seed", range(4))
def test_viterbi_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    durations = np.array([1, 2, 3])
    scores = rng.normal(size=(3, 3, 8))  # 2 concepts + idle, T = 7
    scores[:, :, 0] = -np.inf
    for graph in (free_graph(2, idle_label=2, switch_penalty=0.5), forced_graph([0, 1], idle_label=2, min_count=2),
                  free_graph(2, idle_label=2, switch_penalty=0.5, min_count=2, repeats=False)):
        res = segmental_viterbi(scores, durations, graph)
        assert res.log_likelihood == pytest.approx(_brute_force(scores, durations, graph))
        # units tile [0, T) and their emissions + transitions add up to the total
        assert res.units[0].start == 0 and res.units[-1].end == 7
        assert all(a.end == b.start for a, b in itertools.pairwise(res.units))


def test_forced_alignment_recovers_planted_segments():
    # labels: 0, 1 concepts, 2 idle; truth: idle 0-3, c0 3-9 (two units of 3), idle 9-11, c1 11-15
    T = 15
    durations = np.arange(1, 7)
    scores = np.full((3, 6, T + 1), -5.0)
    truth = [(2, 0, 3), (0, 3, 6), (0, 6, 9), (2, 9, 11), (1, 11, 15)]
    for lab, s, e in truth:
        scores[lab, e - s - 1, e] = 0.0
    res = segmental_viterbi(scores, durations, forced_graph([0, 1], idle_label=2))
    assert [(u.label, u.start, u.end) for u in res.units] == truth
    res = segmental_viterbi(scores, durations, free_graph(2, idle_label=2))
    assert [(u.label, u.start, u.end) for u in res.units] == truth


def _planted_pause(T=20):
    """c0 0-6 (two units of 3), a 2-frame pause that idle explains best, c0 8-14, c1 14-20."""
    durations = np.arange(1, 7)
    scores = np.full((3, 6, T + 1), -5.0)
    for lab, s, e in [(0, 0, 3), (0, 3, 6), (2, 6, 7), (2, 7, 8), (0, 8, 11), (0, 11, 14), (1, 14, 17), (1, 17, 20)]:
        scores[lab, e - s - 1, e] = 0.0
    scores[0, 4, 11] = -1.0  # c0 may also bridge the pause with a 5-frame unit 6-11, at a small cost
    return scores, durations


def test_pause_inside_an_instance_cannot_split_it_without_repeats():
    scores, durations = _planted_pause()
    # Repeats allowed: the pause splits c0 into two instances (one more switch penalty, cheaper than bridging).
    graph = free_graph(2, idle_label=2, switch_penalty=0.5, min_count=2)
    res = segmental_viterbi(scores, durations, graph)
    assert [u.label for u in res.units if graph.is_first[u.state]] == [0, 0, 1]
    # No repeats: c0 -> idle -> c0 is not a path; c0 is one instance, the pause bridged.
    graph = free_graph(2, idle_label=2, switch_penalty=0.5, min_count=2, repeats=False)
    res = segmental_viterbi(scores, durations, graph)
    assert [u.label for u in res.units if graph.is_first[u.state]] == [0, 1]
    assert [(u.label, u.start, u.end) for u in res.units][:3] == [(0, 0, 3), (0, 3, 6), (0, 6, 11)]
    # ... but a concept may come back after another one: c0, c1, idle, c0 stays decodable.
    s2 = np.full((3, 6, 21), -5.0)
    for lab, s, e in [(0, 0, 3), (0, 3, 6), (1, 6, 9), (1, 9, 12), (2, 12, 13), (2, 13, 14), (0, 14, 17), (0, 17, 20)]:
        s2[lab, e - s - 1, e] = 0.0
    res = segmental_viterbi(s2, durations, graph)
    assert [u.label for u in res.units if graph.is_first[u.state]] == [0, 1, 0]
    assert res.log_likelihood == pytest.approx(-1.5)


def test_model_describe_uses_the_repeat_setting(small_model, small_val, monkeypatch):
    from dataclasses import replace

    from genlab.systems.motion.concepts import model as model_module

    seen = []

    def spy(*args, **kwargs):
        seen.append(kwargs.get("repeats"))
        return free_graph(*args, **kwargs)

    monkeypatch.setattr(model_module, "free_graph", spy)
    model, _, _ = small_model
    kp = small_val[0].keypoints
    for rep in (True, False):
        m = replace(model, cfg=replace(model.cfg, repeat_instances=rep))
        d = m.describe(kp)
        if not rep:
            assert all(a.concept != b.concept for a, b in itertools.pairwise(d.actions))
    assert seen == [True, False]  # the setting reaches the decoding graph


def test_minimum_length_error():
    assert minimum_length([0, 0, 1], [10, 20], min_count=2) == 10 * 2 * 2 + 20 * 2 + 1
    with pytest.raises(GenlabError, match="at least 81 frames"):
        check_fits([0, 0, 1], ["a", "b"], 50, [10, 20], 2)
