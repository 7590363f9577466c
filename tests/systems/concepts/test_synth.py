import numpy as np
import pytest

from genlab.errors import GenlabError
from genlab.systems.motion.concepts import metrics
from genlab.systems.motion.concepts.description import Action, Description
from genlab.systems.motion.concepts.programs import concept_text, loop_from_text
from genlab.systems.motion.concepts.synth import edit, max_join_jump, synthesise
from genlab.systems.motion.program import Loop


def _desc():
    return Description(260, (Action("squat", 10, 100, 3), Action("jumping_jack", 110, 170, 2),
                             Action("high_knees", 180, 250, 3)))


def test_concepts_are_loop_programs(small_model):
    model, _, _ = small_model
    for c in model.concepts:
        loop = loop_from_text(c.program)
        assert isinstance(loop, Loop) and 1 <= loop.body_size <= model.cfg.max_body
        stats = loop.phase_stats()
        assert np.allclose(stats[0].type_probs.sum(1), 1.0)
        text = concept_text(c.name, loop, c.count_probs)
        assert text.startswith(f"concept {c.name}:\n  for _ in range(count")


def test_synthesis_follows_the_description_with_smooth_joins(small_model):
    model, _, _ = small_model
    syn = synthesise(model, _desc())
    assert syn.keypoints.shape == (260, 17, 2) and np.isfinite(syn.keypoints).all()
    jump, p95 = max_join_jump(syn.keypoints, syn.description)
    assert jump <= p95
    # The model re-describes its own synthesis (in pixels) as the requested actions.
    pix = 300 * syn.keypoints + np.array([400.0, 500.0])
    got = model.describe(pix)
    assert got.concepts == _desc().concepts
    assert metrics.count_mae([got], [_desc()]) <= 0.5


@pytest.mark.parametrize("op,kw", [
    ("insert", dict(index=1, concept="squat", count=2)),
    ("delete", dict(index=1)),
    ("replace", dict(index=1, concept="high_knees")),
    ("recount", dict(index=0, count=5)),
    ("retime", dict(index=2, duration=40)),
])
def test_edits_touch_only_the_edited_span(small_model, op, kw):
    model, _, _ = small_model
    syn = synthesise(model, _desc())
    new, (s, e) = edit(model, syn, op, **kw)
    old = syn.keypoints
    delta = new.description.n_frames - syn.description.n_frames
    assert np.array_equal(new.keypoints[:s], old[:s])  # before: bit-identical
    old_after = old[s + (e - s) - delta:] if op != "delete" else old[s - delta:]
    assert np.array_equal(new.keypoints[e:], old_after)  # after: bit-identical, moved
    jump, p95 = max_join_jump(new.keypoints, new.description)
    assert jump <= p95


def test_synthesis_bad_input(small_model):
    model, _, _ = small_model
    with pytest.raises(GenlabError, match="unknown concept"):
        synthesise(model, Description(50, (Action("moonwalk", 0, 40, 2),)))
    with pytest.raises(GenlabError, match="count must be >= 1"):
        synthesise(model, Description(50, (Action("squat", 0, 40, 0),)))
    syn = synthesise(model, _desc())
    with pytest.raises(GenlabError, match="unknown edit"):
        edit(model, syn, "twist", 0)


def test_circle_angles_are_aligned_across_iterations():
    from genlab.systems.motion.concepts.programs import align_angles
    from genlab.systems.motion.program import Circle, Segment, Stationary

    a = Segment(10.0, (Circle((0.0, 0.0), 1.0, 3.0, 3.2), Stationary((0.0, 0.0))))
    b = Segment(10.0, (Circle((0.0, 0.0), 1.0, 3.1 - 2 * np.pi, 3.3 - 2 * np.pi), Stationary((0.0, 0.0))))
    out = align_angles([(a,), (b,)])
    assert out[1][0].primitives[0].theta0 == pytest.approx(3.1)
    assert np.allclose(out[1][0](np.linspace(0, 1, 5)), b(np.linspace(0, 1, 5)))
