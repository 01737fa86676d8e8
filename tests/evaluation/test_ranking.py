"""Ranking metrics against hand-computed values, edge cases included."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mfrec.evaluation.ranking import (
    MetricSpec,
    average_precision_at_k,
    catalog_coverage,
    hit_matrix,
    hit_rate_at_k,
    ndcg_at_k,
    parse_metrics,
    precision_at_k,
    recall_at_k,
    reciprocal_rank,
    score_lists,
)

LOG3 = math.log2(3)
LOG6 = math.log2(6)

# User A: five recommendations, hits at ranks 2 and 5, three relevant items (z never
# recommended). User B: a single recommendation (fewer than k), which is its one relevant
# item.
RECS = [["a", "b", "c", "d", "e"], ["x"]]
RELEVANT = [{"b", "e", "z"}, {"x"}]


@pytest.fixture
def hits():
    return hit_matrix(RECS, RELEVANT, k=5)


def test_hit_matrix_pads_short_lists_with_misses(hits):
    matrix, n_relevant = hits
    assert matrix.tolist() == [
        [False, True, False, False, True],
        [True, False, False, False, False],
    ]
    assert n_relevant.tolist() == [3, 1]


def test_precision_divides_by_k_even_for_short_lists(hits):
    matrix, _ = hits
    np.testing.assert_allclose(precision_at_k(matrix, 5), [2 / 5, 1 / 5])
    np.testing.assert_allclose(precision_at_k(matrix, 2), [1 / 2, 1 / 2])
    np.testing.assert_allclose(precision_at_k(matrix, 1), [0, 1])


def test_recall_divides_by_all_relevant(hits):
    matrix, n_relevant = hits
    np.testing.assert_allclose(recall_at_k(matrix, n_relevant, 5), [2 / 3, 1])
    np.testing.assert_allclose(recall_at_k(matrix, n_relevant, 2), [1 / 3, 1])


def test_ndcg_binary_gain_log2_discount_ideal_capped_at_k(hits):
    matrix, n_relevant = hits
    dcg_a = 1 / LOG3 + 1 / LOG6
    ideal_a = 1 + 1 / LOG3 + 1 / 2  # min(k=5, |R|=3) = 3 relevant in the first ranks
    np.testing.assert_allclose(ndcg_at_k(matrix, n_relevant, 5), [dcg_a / ideal_a, 1.0])
    # k = 2: the ideal list holds min(2, 3) = 2 relevant items.
    np.testing.assert_allclose(ndcg_at_k(matrix, n_relevant, 2), [(1 / LOG3) / (1 + 1 / LOG3), 1.0])
    np.testing.assert_allclose(ndcg_at_k(matrix, n_relevant, 1), [0.0, 1.0])


def test_average_precision_normalised_by_min_k_relevant(hits):
    matrix, n_relevant = hits
    # A: hits at 2 and 5 -> (P@2 + P@5) / min(5, 3) = (1/2 + 2/5) / 3
    np.testing.assert_allclose(
        average_precision_at_k(matrix, n_relevant, 5), [(1 / 2 + 2 / 5) / 3, 1.0]
    )
    # k = 2: (P@2) / min(2, 3)
    np.testing.assert_allclose(average_precision_at_k(matrix, n_relevant, 2), [0.25, 1.0])


def test_reciprocal_rank_and_hit_rate(hits):
    matrix, _ = hits
    np.testing.assert_allclose(reciprocal_rank(matrix), [1 / 2, 1])
    np.testing.assert_allclose(reciprocal_rank(matrix, 1), [0, 1])
    np.testing.assert_allclose(hit_rate_at_k(matrix, 1), [0, 1])
    np.testing.assert_allclose(hit_rate_at_k(matrix, 5), [1, 1])


def test_perfect_and_empty_lists():
    perfect = np.array([[True, True, False]])
    assert ndcg_at_k(perfect, np.array([2]), 3)[0] == pytest.approx(1.0)
    assert average_precision_at_k(perfect, np.array([2]), 3)[0] == pytest.approx(1.0)
    nothing = np.zeros((1, 0), dtype=bool)  # no candidate at all
    assert precision_at_k(nothing, 3)[0] == 0
    assert ndcg_at_k(nothing, np.array([4]), 3)[0] == 0
    assert reciprocal_rank(nothing)[0] == 0


def test_users_without_relevant_items_are_refused_not_nan():
    matrix = np.zeros((2, 3), dtype=bool)
    with pytest.raises(ValueError, match="no relevant item"):
        recall_at_k(matrix, np.array([1, 0]), 3)
    with pytest.raises(ValueError, match="no relevant item"):
        ndcg_at_k(matrix, np.array([0, 2]), 3)


def test_score_lists_excludes_and_counts_users_without_relevant_items():
    recs = [*RECS, ["q", "r"]]
    relevant = [*RELEVANT, set()]
    out = score_lists(recs, relevant, "precision@5,recall@5,ndcg@5,map@5,mrr,hit@5")
    assert out["n_users"] == 3
    assert out["n_users_evaluated"] == 2 and out["n_users_no_relevant"] == 1
    assert out["precision@5"] == pytest.approx((2 / 5 + 1 / 5) / 2)
    assert out["recall@5"] == pytest.approx((2 / 3 + 1) / 2)
    assert out["map@5"] == pytest.approx(((1 / 2 + 2 / 5) / 3 + 1) / 2)
    assert out["mrr"] == pytest.approx((1 / 2 + 1) / 2)
    assert out["hit@5"] == 1.0


def test_catalog_coverage():
    lists = np.array([[0, 1, 2], [1, 3, -1]])  # -1: an empty slot
    assert catalog_coverage(lists, 10, 3) == pytest.approx(4 / 10)
    assert catalog_coverage(lists, 10, 1) == pytest.approx(2 / 10)
    # k beyond the lists' width counts what is there.
    assert catalog_coverage(lists, 4, 50) == pytest.approx(1.0)
    out = score_lists([["a", "b"], ["b"]], [{"a"}, {"c"}], "coverage@2", catalog="abcd")
    assert out["coverage@2"] == pytest.approx(2 / 4)
    with pytest.raises(ValueError, match="catalog"):
        score_lists([["a"]], [{"a"}], "coverage@2")


def test_k_larger_than_the_lists_pads_with_misses():
    matrix, n_relevant = hit_matrix([["a", "b"]], [{"a", "b"}])
    assert matrix.shape == (1, 2)
    assert precision_at_k(matrix, 10)[0] == pytest.approx(2 / 10)
    assert recall_at_k(matrix, n_relevant, 10)[0] == 1.0
    assert ndcg_at_k(matrix, n_relevant, 10)[0] == pytest.approx(1.0)


def test_hit_matrix_rejects_repeated_items_and_mismatched_lengths():
    with pytest.raises(ValueError, match="repeats"):
        hit_matrix([["a", "a"]], [{"a"}])
    with pytest.raises(ValueError, match="relevant sets"):
        hit_matrix([["a"]], [{"a"}, {"b"}])


def test_parse_metrics():
    specs = parse_metrics("RMSE, ndcg@10,precision@5,mrr,mrr@3,hr@10,ndcg@10")
    assert [str(s) for s in specs] == ["rmse", "ndcg@10", "precision@5", "mrr", "mrr@3", "hit@10"]
    assert specs[1] == MetricSpec("ndcg", 10) and specs[1].is_ranking
    assert not specs[0].is_ranking
    for bad, message in [
        ("ndcg", "needs a cutoff"),
        ("ndcg@0", "positive integer"),
        ("ndcg@x", "positive integer"),
        ("rmse@10", "takes no cutoff"),
        ("auc@10", "unknown metric"),
        ("", "no metric"),
    ]:
        with pytest.raises(ValueError, match=message):
            parse_metrics(bad)
