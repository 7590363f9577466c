"""Small shared fixtures: a 3-concept few-shot model fitted once per session (tiny config)."""

import numpy as np
import pytest

SMALL = ("jumping_jack", "squat", "high_knees")


@pytest.fixture(scope="session")
def small_model():
    from genlab.systems.motion.concepts import dataset
    from genlab.systems.motion.concepts.config import tiny
    from genlab.systems.motion.concepts.learn import attach_programs, fit_few_shot

    examples = dataset.few_shot(2, names=SMALL)
    model, log = fit_few_shot(examples, tiny())
    attach_programs(model, examples)
    return model, examples, log


@pytest.fixture(scope="session")
def small_val():
    from genlab.systems.motion.concepts import dataset

    return [dataset.make_sequence(np.random.default_rng([77, i]), names=SMALL) for i in range(4)]
