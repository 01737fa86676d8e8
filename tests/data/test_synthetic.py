"""Synthetic data: exact counts, distinct pairs, the rating grid, skew, truth, noise."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mfrec.data import synthetic
from mfrec.data.ratings import Ratings
from mfrec.data.synthetic import (
    DEFAULT_INTERACTION_STD,
    SyntheticData,
    default_synthetic,
    make_ratings,
)
from mfrec.exceptions import ParameterError


def pair_keys(r: Ratings) -> np.ndarray:
    return r.user_index.astype(np.int64) * r.n_items + r.item_index


def top_share(counts: np.ndarray, fraction: float = 0.1) -> float:
    """Share of all ratings held by the top ``fraction`` of ids."""
    top = np.sort(counts)[::-1][: max(1, round(fraction * len(counts)))]
    return top.sum() / counts.sum()


def assert_same(a: SyntheticData, b: SyntheticData) -> None:
    for column in ("user_index", "item_index", "rating", "timestamp"):
        np.testing.assert_array_equal(getattr(a.ratings, column), getattr(b.ratings, column))
    for name in ("user_factors", "item_factors", "user_bias", "item_bias"):
        np.testing.assert_array_equal(getattr(a.truth, name), getattr(b.truth, name))


# -- shapes and counts -----------------------------------------------------------------------
@pytest.mark.parametrize("missing", ["popularity", "uniform"])
def test_counts_ids_and_coverage_are_exact(missing):
    data = make_ratings(50, 40, 600, missing=missing, random_state=0)
    r = data.ratings
    assert len(r) == 600
    assert (r.n_users, r.n_items) == (50, 40)
    np.testing.assert_array_equal(r.users.ids, np.arange(1, 51))
    np.testing.assert_array_equal(r.items.ids, np.arange(1, 41))
    assert len(np.unique(pair_keys(r))) == 600
    assert (r.user_counts() > 0).all()
    assert (r.item_counts() > 0).all()
    assert r.name == "synthetic"
    assert r.scale == (1.0, 5.0)
    assert r.user_index.dtype == np.int32
    assert r.rating.dtype == np.float32
    assert data.truth.user_factors.shape == (50, 5)
    assert data.truth.item_factors.shape == (40, 5)
    assert data.truth.user_bias.shape == (50,)
    assert data.truth.item_bias.shape == (40,)


def test_density_sets_the_count_when_n_ratings_is_none():
    assert len(make_ratings(50, 40, density=0.1, random_state=0).ratings) == 200
    assert len(make_ratings(50, 40, random_state=0).ratings) == 100  # default density 0.05


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 25),
    st.integers(1, 25),
    st.floats(0.0, 1.0),
    st.sampled_from(["popularity", "uniform"]),
    st.integers(0, 2**32 - 1),
)
def test_any_size_gives_exactly_n_distinct_pairs(n_users, n_items, fill, missing, seed):
    n_ratings = max(1, round(fill * n_users * n_items))
    r = make_ratings(n_users, n_items, n_ratings, missing=missing, random_state=seed).ratings
    assert len(r) == n_ratings
    keys = pair_keys(r)
    assert len(np.unique(keys)) == n_ratings
    assert keys.min() >= 0
    assert keys.max() < n_users * n_items
    if n_ratings >= max(n_users, n_items):
        assert (r.user_counts() > 0).all()
        assert (r.item_counts() > 0).all()
    assert np.isin(r.rating, [1, 2, 3, 4, 5]).all()


def test_a_full_matrix_has_every_pair():
    r = make_ratings(12, 9, 108, random_state=1).ratings
    assert np.array_equal(np.sort(pair_keys(r)), np.arange(108))


def test_fewer_ratings_than_ids_keeps_the_full_vocabularies():
    r = make_ratings(30, 20, 10, random_state=0).ratings
    assert len(r) == 10
    assert (r.n_users, r.n_items) == (30, 20)
    assert (r.user_counts() > 0).sum() <= 10


def test_timestamps_strictly_increase_with_the_row():
    for n in (500, 100_000):
        r = make_ratings(1000, 500, n, random_state=0).ratings
        assert r.timestamp.dtype == np.int64
        assert (np.diff(r.timestamp) > 0).all()
        assert r.timestamp[0] > 946_684_800  # from 2000-01-01


def test_rows_are_not_grouped_by_user():
    r = make_ratings(200, 100, 4000, random_state=0).ratings
    # a sorted layout would change user only ~200 times
    assert (np.diff(r.user_index) != 0).sum() > 3000


# -- rating values -------------------------------------------------------------------------
def test_whole_star_ratings_are_on_the_grid_and_inside_the_scale():
    r = make_ratings(300, 200, 6000, random_state=0).ratings
    assert set(np.unique(r.rating)) <= {1.0, 2.0, 3.0, 4.0, 5.0}
    assert len(np.unique(r.rating)) == 5


def test_half_star_ratings_are_on_the_half_grid():
    r = make_ratings(300, 200, 6000, scale=(0.5, 5), round_to=0.5, noise_std=1.0, random_state=0)
    values = r.ratings.rating
    assert values.min() >= 0.5
    assert values.max() <= 5
    np.testing.assert_array_equal(values * 2, np.round(values * 2))
    assert not np.array_equal(values, np.round(values))  # half stars do occur
    assert r.ratings.scale == (0.5, 5.0)


def test_continuous_unclipped_ratings_have_the_requested_noise():
    data = make_ratings(
        2000, 1000, 200_000, noise_std=0.7, round_to=None, scale=None, random_state=0
    )
    r = data.ratings
    assert r.scale is None
    assert not np.array_equal(r.rating, np.round(r.rating))
    residual = r.rating - data.truth.expected(r.user_index, r.item_index)
    # std of the sample std is about 0.7 / sqrt(2n) = 0.0011
    assert residual.std() == pytest.approx(0.7, abs=0.01)
    assert abs(residual.mean()) < 0.01


def test_clipping_without_rounding_stays_inside_the_scale():
    r = make_ratings(300, 200, 6000, round_to=None, noise_std=2.0, random_state=0).ratings
    assert r.rating.min() == 1.0
    assert r.rating.max() == 5.0
    assert len(np.unique(r.rating)) > 100


def test_expected_is_the_noiseless_model():
    data = make_ratings(40, 30, 500, n_factors=3, random_state=2)
    t = data.truth
    u = np.array([0, 5, 39, 5])
    i = np.array([0, 29, 3, 3])
    manual = (
        t.global_mean
        + t.user_bias[u]
        + t.item_bias[i]
        + (t.user_factors[u] * t.item_factors[i]).sum(axis=1)
    )
    np.testing.assert_allclose(t.expected(u, i), manual, rtol=1e-12)
    assert t.n_factors == 3
    assert t.global_mean == 3.5
    assert (t.noise_std, t.scale, t.round_to) == (0.5, (1.0, 5.0), 1.0)


def test_observed_ratings_follow_the_truth():
    data = make_ratings(500, 300, 30_000, noise_std=0.3, random_state=0)
    r = data.ratings
    expected = np.clip(data.truth.expected(r.user_index, r.item_index), 1, 5)
    assert np.corrcoef(expected, r.rating)[0, 1] > 0.8
    assert np.sqrt(np.mean((expected - r.rating) ** 2)) < 0.5


def test_expected_rejects_mismatched_indices():
    truth = make_ratings(10, 10, 50, random_state=0).truth
    with pytest.raises(ValueError, match="same length"):
        truth.expected([0, 1], [0])


def test_truth_arrays_are_read_only():
    truth = make_ratings(10, 10, 50, random_state=0).truth
    with pytest.raises(ValueError, match="read-only"):
        truth.user_factors[0, 0] = 1.0


def test_default_factor_std_gives_the_documented_interaction_spread():
    for n_factors in (1, 4, 16):
        t = make_ratings(3000, 3000, 5000, n_factors=n_factors, random_state=0).truth
        interaction = (t.user_factors * t.item_factors).sum(axis=1)  # independent pairs
        assert interaction.std() == pytest.approx(DEFAULT_INTERACTION_STD, rel=0.08)


def test_zero_factors_is_a_bias_model():
    data = make_ratings(20, 20, 100, n_factors=0, random_state=0)
    t = data.truth
    u, i = data.ratings.user_index, data.ratings.item_index
    np.testing.assert_allclose(t.expected(u, i), t.global_mean + t.user_bias[u] + t.item_bias[i])


# -- missingness -----------------------------------------------------------------------------
def test_popularity_skew_is_present_and_uniform_is_flat():
    skewed = make_ratings(2000, 1000, 100_000, missing="popularity", random_state=0).ratings
    flat = make_ratings(2000, 1000, 100_000, missing="uniform", random_state=0).ratings
    assert top_share(skewed.item_counts()) > 0.35
    assert top_share(skewed.user_counts()) > 0.2
    assert top_share(flat.item_counts()) < 0.13
    assert top_share(flat.user_counts()) < 0.15


def test_popular_items_are_not_the_low_ids():
    counts = make_ratings(2000, 1000, 100_000, random_state=0).ratings.item_counts()
    rank_by_id = np.argsort(np.argsort(-counts))
    assert abs(np.corrcoef(np.arange(1000), rank_by_id)[0, 1]) < 0.15


def test_popularity_follows_the_exponent():
    # Far from saturation the count ratio of ranks r1 < r2 is about (r2 / r1)**exponent.
    r = make_ratings(
        20_000, 400, 200_000, popularity_exponent=1.0, activity_exponent=0.0, random_state=0
    )
    counts = np.sort(r.ratings.item_counts())[::-1]
    assert counts[9] / counts[99] == pytest.approx(10, rel=0.2)


# -- the large-matrix sampler ------------------------------------------------------------------
def test_large_sparse_matrices_use_the_rejection_sampler_correctly():
    # 4,000 x 3,000 = 12M cells: above the exact sampler's limit
    data = make_ratings(4000, 3000, 150_000, random_state=0)
    r = data.ratings
    assert len(r) == 150_000
    assert len(np.unique(pair_keys(r))) == 150_000
    assert (r.user_counts() > 0).all()
    assert (r.item_counts() > 0).all()
    assert top_share(r.item_counts()) > 0.35
    assert_same(data, make_ratings(4000, 3000, 150_000, random_state=0))


@pytest.mark.parametrize("missing", ["popularity", "uniform"])
def test_rejection_sampler_tops_up_dense_matrices(monkeypatch, missing):
    monkeypatch.setattr(synthetic, "_EXACT_MAX_CELLS", 0)
    monkeypatch.setattr(synthetic, "_EXACT_MAX_DENSE_CELLS", 0)
    r = make_ratings(30, 20, 540, missing=missing, random_state=0).ratings  # 90% full
    assert len(r) == 540
    assert len(np.unique(pair_keys(r))) == 540
    assert (r.user_counts() > 0).all()
    assert (r.item_counts() > 0).all()


def test_both_samplers_give_the_same_skew(monkeypatch):
    exact = make_ratings(600, 300, 20_000, random_state=0).ratings
    monkeypatch.setattr(synthetic, "_EXACT_MAX_CELLS", 0)
    monkeypatch.setattr(synthetic, "_EXACT_MAX_DENSE_CELLS", 0)
    rejection = make_ratings(600, 300, 20_000, random_state=0).ratings
    for side in ("item_counts", "user_counts"):
        a = np.sort(getattr(exact, side)())[::-1]
        b = np.sort(getattr(rejection, side)())[::-1]
        assert top_share(a) == pytest.approx(top_share(b), abs=0.03)
        assert a[0] == pytest.approx(b[0], rel=0.15)


def successive_sampling_inclusion(weights: np.ndarray) -> np.ndarray:
    """Exact probability that each cell is among two weighted draws without replacement."""
    p = weights / weights.sum()
    second = np.array(
        [
            sum(p[j] * weights[i] / (weights.sum() - weights[j]) for j in range(len(p)) if j != i)
            for i in range(len(p))
        ]
    )
    return p + second


@pytest.mark.parametrize("sampler", ["exact", "rejection"])
def test_samplers_draw_weighted_without_replacement_in_draw_order(sampler):
    item_weight = np.array([8.0, 4.0, 2.0, 1.0])
    user_weight = np.array([1.0])
    included = np.zeros(4)
    first = np.zeros(4)
    n_runs = 3000
    for seed in range(n_runs):
        rng = np.random.default_rng(seed)
        none = np.zeros(0, dtype=np.int64)
        if sampler == "exact":
            cells = synthetic._sample_exact(rng, 1, 4, 2, user_weight, item_weight, none)
        else:
            cells = synthetic._sample_rejection(rng, 1, 4, 2, user_weight, item_weight, none)
        assert len(set(cells.tolist())) == 2
        included[cells] += 1
        first[cells[0]] += 1
    # binomial standard errors are below 0.01 here
    np.testing.assert_allclose(
        included / n_runs, successive_sampling_inclusion(item_weight), atol=0.04
    )
    np.testing.assert_allclose(first / n_runs, item_weight / item_weight.sum(), atol=0.04)


# -- reproducibility -------------------------------------------------------------------------
def test_same_seed_same_data_other_seed_other_data():
    a = make_ratings(100, 80, 2000, random_state=4)
    assert_same(a, make_ratings(100, 80, 2000, random_state=4))
    assert_same(a, make_ratings(100, 80, 2000, random_state=np.random.default_rng(4)))
    c = make_ratings(100, 80, 2000, random_state=5)
    assert not np.array_equal(pair_keys(a.ratings), pair_keys(c.ratings))
    assert not np.array_equal(a.truth.user_bias, c.truth.user_bias)


# -- validation -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_ratings": 101}, "exceeds"),
        ({"n_ratings": 0}, "n_ratings"),
        ({"density": 0}, "density"),
        ({"density": 1e-6}, "gives no rating"),
        ({"n_users": 0}, "n_users"),
        ({"n_factors": -1}, "n_factors"),
        ({"noise_std": -0.1}, "noise_std"),
        ({"missing": "random"}, "missing"),
        ({"scale": (5, 1)}, "low < high"),
        ({"scale": "1-5"}, "scale"),
        ({"scale": (1, 5), "round_to": 2.0}, "not a multiple of round_to"),
        ({"round_to": 0}, "round_to"),
        ({"popularity_exponent": -1}, "popularity_exponent"),
        ({"random_state": -1}, "random_state"),
    ],
)
def test_bad_parameters_are_named(kwargs, message):
    args = {"n_users": 10, "n_items": 10, **kwargs}
    with pytest.raises(ParameterError, match=message):
        make_ratings(**args)


# -- the default dataset ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def default() -> SyntheticData:
    return default_synthetic()


def test_default_is_shaped_like_ml100k(default):
    r = default.ratings
    assert (len(r), r.n_users, r.n_items) == (100_000, 943, 1682)
    assert (r.user_counts() > 0).all()
    assert (r.item_counts() > 0).all()
    assert r.name == "synthetic"
    assert r.scale == (1.0, 5.0)
    assert set(np.unique(r.rating)) == {1.0, 2.0, 3.0, 4.0, 5.0}
    assert 3.4 < r.rating.mean() < 3.7
    assert 1.0 < r.rating.std() < 1.25
    assert top_share(r.item_counts()) > 0.35


def test_default_truth_leaves_ml100k_like_error(default):
    r = default.ratings
    oracle = np.clip(default.truth.expected(r.user_index, r.item_index), 1, 5)
    rmse = np.sqrt(np.mean((oracle - r.rating) ** 2))
    assert 0.78 < rmse < 0.88
    global_mean_rmse = r.rating.std()
    assert 1.05 < global_mean_rmse < 1.2


def test_default_is_reproducible_and_seedable(default):
    assert_same(default, default_synthetic())
    other = default_synthetic(1)
    assert not np.array_equal(pair_keys(default.ratings), pair_keys(other.ratings))


@pytest.mark.slow
def test_millions_of_ratings_over_an_ml25m_shaped_matrix():
    data = make_ratings(162_541, 59_047, 5_000_000, random_state=0)
    r = data.ratings
    assert len(r) == 5_000_000
    keys = np.sort(pair_keys(r))
    assert (np.diff(keys) > 0).all()  # distinct
    assert (r.user_counts() > 0).all()
    assert (r.item_counts() > 0).all()
    assert (np.diff(r.timestamp) > 0).all()
    assert top_share(r.item_counts()) > 0.35
