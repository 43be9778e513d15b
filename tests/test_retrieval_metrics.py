"""Retrieval metrics (top-k, MRR) on hand-made similarity matrices."""

from __future__ import annotations

import numpy as np
import pytest

from mmalign.retrieval import chance_metrics, retrieval_metrics, retrieval_ranks, similarity


def test_retrieval_ranks_on_a_hand_made_matrix():
    sim = np.array([[0.9, 0.1, 0.5],
                    [0.8, 0.3, 0.1],
                    [0.2, 0.4, 0.1]])
    labels = np.array([0, 1, 2])
    assert retrieval_ranks(sim, labels, labels).tolist() == [1, 2, 3]
    m = retrieval_metrics(sim, labels, labels, ks=(1, 2, 5))
    assert m["top1"] == pytest.approx(1 / 3)
    assert m["top2"] == pytest.approx(2 / 3)
    assert m["top5"] == pytest.approx(1.0)
    assert m["mrr"] == pytest.approx((1 + 1 / 2 + 1 / 3) / 3)


def test_retrieval_identity_is_perfect_and_ties_count_as_misses():
    labels = np.arange(4)
    assert retrieval_metrics(np.eye(4), labels, labels) == {"top1": 1.0, "top5": 1.0, "mrr": 1.0}
    assert retrieval_ranks(np.zeros((4, 4)), labels, labels).tolist() == [4, 4, 4, 4]


def test_retrieval_gallery_larger_than_queries_and_repeated_classes():
    # queries of classes 7 and 3; gallery holds class 3 twice: the better of the two counts
    sim = np.array([[0.1, 0.9, 0.2, 0.5],
                    [0.6, 0.1, 0.7, 0.65]])
    gallery = np.array([3, 7, 3, 5])
    assert retrieval_ranks(sim, np.array([7, 3]), gallery).tolist() == [1, 1]
    assert retrieval_ranks(sim[:, [0, 1, 3]], np.array([7, 3]), gallery[[0, 1, 3]]).tolist() == [1, 2]


def test_retrieval_rejects_a_query_class_missing_from_the_gallery():
    with pytest.raises(ValueError, match="no item in the gallery"):
        retrieval_ranks(np.ones((1, 2)), np.array([9]), np.array([0, 1]))
    with pytest.raises(ValueError, match="does not match"):
        retrieval_ranks(np.ones((2, 2)), np.array([0]), np.array([0, 1]))


def test_retrieval_random_scores_sit_at_chance():
    rng = np.random.default_rng(0)
    labels = np.arange(50)
    runs = [retrieval_metrics(rng.random((50, 50)), labels, labels) for _ in range(200)]
    expected = chance_metrics(50)
    assert expected["top1"] == pytest.approx(0.02) and expected["mrr"] == pytest.approx(np.sum(1 / np.arange(1, 51)) / 50)
    for key in ("top1", "top5", "mrr"):
        assert np.mean([r[key] for r in runs]) == pytest.approx(expected[key], abs=0.01)


def test_retrieval_similarity_metrics():
    a = np.array([[3.0, 4.0], [1.0, 0.0]])
    b = np.array([[6.0, 8.0], [0.0, 2.0]])
    np.testing.assert_allclose(similarity(a, b), [[1.0, 0.8], [0.6, 0.0]])
    np.testing.assert_allclose(similarity(a, b, "dot"), [[50.0, 8.0], [6.0, 0.0]])
    np.testing.assert_allclose(similarity(a, b, "euclidean"), [[-5.0, -np.sqrt(13)], [-np.sqrt(89), -np.sqrt(5)]])
    with pytest.raises(ValueError, match="unknown similarity"):
        similarity(a, b, "manhattan")
