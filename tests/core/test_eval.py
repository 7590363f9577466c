"""core/eval and core/data: MNIST loader, Fréchet distance, non-dominated sorting, the MNIST classifier."""

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from genlab.core.eval import classifier
from genlab.core.eval.frechet import GaussianStats, frechet_distance
from genlab.core.eval.ranking import average_ranks, non_dominated_ranks


def test_non_dominated_sorting_hand_computed():
    # (Fréchet distance: lower is better, accuracy: higher is better)
    table = {
        "A": (10, 0.90),  # front 1
        "B": (12, 0.95),  # front 1
        "C": (11, 0.85),  # dominated by A; not by E -> front 2
        "D": (15, 0.80),  # dominated by C -> front 3
        "E": (13, 0.95),  # dominated by B (worse FD, equal accuracy) -> front 2
        "F": (9, 0.70),  # lowest FD -> front 1
        "G": (16, 0.96),  # highest accuracy -> front 1
    }
    ranks = non_dominated_ranks(list(table.values()), maximize=(False, True))
    assert dict(zip(table, ranks.tolist())) == {"A": 1, "B": 1, "C": 2, "D": 3, "E": 2, "F": 1, "G": 1}
    # identical points do not dominate each other
    assert non_dominated_ranks([(1, 1), (1, 1), (2, 0)], (False, True)).tolist() == [1, 1, 2]
    # averaged over settings as SD3 does: second setting reverses A and D
    second = {"A": (15, 0.80), "B": (12, 0.95), "C": (11, 0.85), "D": (10, 0.90), "E": (13, 0.95),
              "F": (9, 0.70), "G": (16, 0.96)}
    avg = average_ranks({"s1": table, "s2": second}, maximize=(False, True))
    assert avg == {"A": 2.0, "B": 1.0, "C": 2.0, "D": 2.0, "E": 2.0, "F": 1.0, "G": 1.0}


def test_frechet_distance_closed_forms():
    rng = np.random.default_rng(0)
    a = GaussianStats(np.zeros(3), np.diag([1.0, 4.0, 9.0]), 10)
    b = GaussianStats(np.array([1.0, 2.0, 0.0]), np.diag([4.0, 1.0, 9.0]), 10)
    # diagonal: ||dmu||^2 + sum (sqrt(s1) - sqrt(s2))^2 = 5 + (1-2)^2 + (2-1)^2 + 0
    assert frechet_distance(a, b) == pytest.approx(7.0, abs=1e-9)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)
    x = rng.normal(size=(5000, 4))
    assert frechet_distance(x, x + 3.0) == pytest.approx(36.0, rel=1e-6)  # pure mean shift


def test_mnist_loader():
    from genlab.core.data.mnist import caption, load_mnist

    train, test = load_mnist("train"), load_mnist("test")
    assert train.images.shape == (60000, 28, 28) and test.images.shape == (10000, 28, 28)
    assert train.images.dtype == np.uint8 and train.images.max() == 255
    assert train.labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]  # MNIST's well-known first labels
    assert np.bincount(test.labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    sub = test.subset(100, seed=0, balanced=True)
    assert np.bincount(sub.labels).tolist() == [10] * 10
    assert caption(7) == "a handwritten digit seven"


@pytest.fixture(scope="module")
def quick_classifier(tmp_path_factory):
    """Trained into an empty cache, so the first call is the one a fresh machine makes."""
    cache = tmp_path_factory.mktemp("classifiers")
    model, record = classifier.train_or_load(classifier.quick(), cache_dir=cache)
    return model, record, cache


def test_classifier_is_cached_and_deterministic(quick_classifier, tmp_path):
    model, record, cache = quick_classifier
    assert record["test_accuracy"] > 0.9  # the quick version; the real one is checked in the slow tier
    again, record2 = classifier.train_or_load(classifier.quick(), cache_dir=cache)
    assert record2 == record  # the fresh record equals the one read back from JSON (tuples as lists)
    for (k, v), (_, w) in zip(model.state_dict().items(), again.state_dict().items()):
        assert np.array_equal(v.numpy(), w.numpy()), k


def test_frechet_distance_rises_with_blur_on_real_mnist(quick_classifier):
    from genlab.core.data.mnist import load_mnist

    model, _, _ = quick_classifier
    test = load_mnist("test")
    ref = GaussianStats.of(classifier.batched(model.features, classifier.to_input(test.images[:2000])).numpy())
    imgs = test.images[2000:4000].astype(np.float32) / 255.0
    fds = []
    for sigma in (0.0, 0.5, 1.0, 2.0):
        blurred = np.stack([gaussian_filter(im, sigma) for im in imgs]) if sigma > 0 else imgs
        fds.append(frechet_distance(classifier.batched(model.features, classifier.to_input(blurred)).numpy(), ref))
    assert all(b > a for a, b in zip(fds, fds[1:])), fds
    assert fds[-1] > 5 * fds[0], fds


@pytest.mark.slow
def test_default_classifier_reaches_98_percent():
    _, record = classifier.train_or_load(classifier.default())
    assert record["test_accuracy"] >= 0.98, record
