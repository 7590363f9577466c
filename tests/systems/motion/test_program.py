import math

import numpy as np
import pytest

from genlab.errors import GenlabError
from genlab.systems.motion import (
    Circle,
    Line,
    Loop,
    Program,
    Segment,
    Stationary,
    edit_primitive,
    execute,
    make_sequence,
    set_loop_count,
    splice,
)


def _prog():
    return make_sequence("jumping_jack", 3, count=4).program


def test_primitives_hit_start_and_end():
    ln = Line((0.0, 0.0), (1.0, 2.0), accel=0.5)
    np.testing.assert_allclose(ln(np.array([0.0, 1.0])), [[0, 0], [1, 2]])
    c = Circle((1.0, 1.0), 2.0, 0.0, math.pi, accel=-0.3)
    np.testing.assert_allclose(c(np.array([0.0, 1.0])), [[3, 1], [-1, 1]], atol=1e-12)
    assert c.span() == pytest.approx(2 * math.pi)
    np.testing.assert_allclose(Stationary((1.0, 2.0))(np.zeros(3)), [[1, 2]] * 3)


def test_text_round_trip():
    p = _prog()
    text = p.to_text()
    q = Program.from_text(text)
    assert q.to_text() == text
    np.testing.assert_allclose(execute(q), execute(p), atol=1e-5)
    assert "loop 4" in text and "left_wrist circle" in text and "left_ankle line" in text


def test_execute_any_rate():
    p = _prog()
    x1, x4 = execute(p), execute(p, rate=4.0)
    assert x4.shape[0] == 4 * x1.shape[0]
    np.testing.assert_allclose(x4[::4], x1)
    assert np.isfinite(x4).all()
    # sub-frame samples lie between neighbouring frames for smooth motion
    assert np.abs(x4[1::4] - x1).max() < np.abs(np.diff(x1, axis=0)).max() + 1e-9


def test_edits():
    p = _prog()
    q = set_loop_count(p, 0, 6)
    assert q.loops[0].count == 6 and q.duration > p.duration
    r = set_loop_count(p, 0, 2)
    assert r.loops[0].count == 2
    e = edit_primitive(p, 1, 0, point=(5.0, 5.0))  # segment 1 = first loop segment, joint 0 = nose
    assert list(e.segments())[1].primitives[0].point == (5.0, 5.0)
    s = splice(p, 0, 1, ())
    assert len(s.statements) == len(p.statements) - 1
    with pytest.raises(GenlabError):
        set_loop_count(p, 0, 0)
    with pytest.raises(GenlabError):
        set_loop_count(p, 3, 2)


def test_loop_stats_and_sampling():
    loop: Loop = _prog().loops[0]
    stats = loop.phase_stats()
    assert len(stats) == loop.body_size == 2
    assert stats[0].type_probs.shape == (17, 3) and np.allclose(stats[0].type_probs.sum(1), 1)
    it = loop.sample_iteration(np.random.default_rng(0))
    assert len(it) == 2 and all(isinstance(s, Segment) for s in it)


@pytest.mark.parametrize("bad", ["", "program skeleton=coco17 fps=30 scale=1 origin=(0,0)\nsegment 3\nend\n",
                                 "hello", "program skeleton=coco17 fps=30 scale=1 origin=(0,0)\nloop x\n"])
def test_parse_errors(bad):
    with pytest.raises(GenlabError):
        Program.from_text(bad)
