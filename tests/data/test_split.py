"""Splits: exact partitions, determinism, each split's own guarantee, ML-100K official."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mfrec.data.ratings import Ratings
from mfrec.data.split import (
    ML100K_SPLITS,
    Fold,
    holdout,
    kfold,
    last_k,
    ml100k_official,
    parse_split,
    temporal,
    user_holdout,
)
from mfrec.exceptions import DataError, ParameterError


# -- helpers ---------------------------------------------------------------------------
def rows(r: Ratings) -> np.ndarray:
    """Every rating as a (user id, item id, rating, timestamp) record, sorted: the
    multiset of rows, comparable between a Ratings and its parts."""
    times = np.full(len(r), -1) if r.timestamp is None else r.timestamp
    table = np.rec.fromarrays(
        [r.users.take(r.user_index), r.items.take(r.item_index), r.rating, times],
        names="user,item,rating,time",
    )
    return np.sort(table, order=["user", "item", "rating", "time"])


def pair_keys(r: Ratings) -> np.ndarray:
    return r.user_index.astype(np.int64) * r.n_items + r.item_index


def assert_partition(ratings: Ratings, fold: Fold) -> None:
    assert fold.train.users is ratings.users
    assert fold.train.items is ratings.items
    assert fold.test.users is ratings.users
    assert fold.test.items is ratings.items
    assert len(fold.train) + len(fold.test) == len(ratings)
    assert len(np.intersect1d(pair_keys(fold.train), pair_keys(fold.test))) == 0
    both = np.concatenate([rows(fold.train), rows(fold.test)])
    np.testing.assert_array_equal(
        np.sort(both, order=["user", "item", "rating", "time"]), rows(ratings)
    )


def held_out_keys(fold: Fold) -> np.ndarray:
    return np.sort(pair_keys(fold.test))


def make(users, items, ratings=None, times=None) -> Ratings:
    ratings = np.ones(len(users)) if ratings is None else ratings
    return Ratings.from_arrays(users, items, ratings, times)


@st.composite
def small_ratings(draw, min_rows: int = 2, with_times: bool = True) -> Ratings:
    """Random small Ratings with distinct (user, item) pairs; few distinct timestamps so
    that ties occur."""
    n_users = draw(st.integers(1, 8))
    n_items = draw(st.integers(-(-min_rows // n_users), 10))
    cells = draw(
        st.lists(st.integers(0, n_users * n_items - 1), min_size=min_rows, max_size=40, unique=True)
    )
    n = len(cells)
    cells = np.array(cells)
    values = draw(st.lists(st.integers(1, 5), min_size=n, max_size=n))
    times = draw(st.lists(st.integers(0, 4), min_size=n, max_size=n)) if with_times else None
    return make(10 + cells // n_items, 100 + cells % n_items, values, times)


@pytest.fixture(scope="module")
def medium() -> Ratings:
    """About 2,000 ratings of 100 users (1 to 39 ratings each), with timestamps."""
    rng = np.random.default_rng(7)
    per_user = 1 + (np.arange(100) * 7) % 39
    users = np.repeat(np.arange(100), per_user)
    items = np.concatenate([np.arange(c) for c in per_user])  # distinct within a user
    perm = rng.permutation(len(users))
    times = rng.integers(0, 500, len(users))
    return make(users[perm], items[perm], rng.integers(1, 6, len(users)), times)


# -- holdout -----------------------------------------------------------------------------
@given(small_ratings(), st.floats(0.01, 0.99), st.integers(0, 2**32 - 1))
def test_holdout_is_an_exact_partition_of_the_right_size(r, fraction, seed):
    fold = holdout(r, fraction, random_state=seed)
    assert_partition(r, fold)
    n = len(r)
    assert len(fold.test) == min(max(int(np.floor(fraction * n + 0.5 + 1e-9)), 1), n - 1)
    assert fold.name == "holdout"


def test_holdout_sizes_round_half_up(medium):
    assert len(holdout(medium, 0.2, random_state=0).test) == round(0.2 * len(medium))
    tiny = make([1, 2, 3, 4], [1, 1, 1, 1])
    ten = make(np.arange(10), np.zeros(10))
    assert len(holdout(ten, 0.25, random_state=0).test) == 3  # 2.5 rounds up
    assert len(holdout(ten, 0.35, random_state=0).test) == 4  # 3.5 rounds up
    assert len(holdout(ten, 0.15, random_state=0).test) == 2  # 1.5 rounds up
    assert len(holdout(tiny, 0.01, random_state=0).test) == 1  # at least one
    assert len(holdout(tiny, 0.99, random_state=0).test) == 3  # at most n - 1


def test_holdout_is_deterministic_by_seed(medium):
    a = holdout(medium, 0.3, random_state=5)
    b = holdout(medium, 0.3, random_state=5)
    c = holdout(medium, 0.3, random_state=6)
    np.testing.assert_array_equal(held_out_keys(a), held_out_keys(b))
    assert not np.array_equal(held_out_keys(a), held_out_keys(c))


def test_holdout_is_roughly_uniform_over_rows(medium):
    hits = np.zeros(len(medium))
    for seed in range(200):
        fold = holdout(medium, 0.25, random_state=seed)
        is_test = np.isin(pair_keys(medium), pair_keys(fold.test))
        hits += is_test
    # each row is in test with probability p = n_test / n: Binomial(200, p)
    p = len(fold.test) / len(medium)
    mean, var = 200 * p, 200 * p * (1 - p)
    assert hits.mean() == pytest.approx(mean)
    assert 0.85 < hits.var() / var < 1.15
    assert hits.min() > mean - 6 * np.sqrt(var)
    assert hits.max() < mean + 6 * np.sqrt(var)


def test_holdout_accepts_a_generator_and_advances_it(medium):
    rng = np.random.default_rng(3)
    first = holdout(medium, 0.2, random_state=rng)
    second = holdout(medium, 0.2, random_state=rng)
    assert not np.array_equal(held_out_keys(first), held_out_keys(second))
    again = holdout(medium, 0.2, random_state=np.random.default_rng(3))
    np.testing.assert_array_equal(held_out_keys(first), held_out_keys(again))


@pytest.mark.parametrize("fraction", [0, 1, -0.2, 1.5, float("nan"), "0.2", None, True])
def test_fraction_out_of_range_is_an_error(medium, fraction):
    for split in (holdout, user_holdout, temporal):
        with pytest.raises(ParameterError, match="test_fraction"):
            split(medium, fraction)


def test_splitting_a_single_rating_is_an_error():
    one = make([1], [1], [3], [0])
    for split in (holdout, user_holdout, temporal):
        with pytest.raises(DataError, match="at least 2 ratings"):
            split(one, 0.5)


# -- user_holdout ------------------------------------------------------------------------
@given(small_ratings(), st.floats(0.01, 0.99), st.integers(0, 2**32 - 1))
def test_user_holdout_takes_the_rounded_fraction_of_every_user(r, fraction, seed):
    counts = r.user_counts()
    if not (counts >= 2).any():
        with pytest.raises(DataError, match="no user has two or more"):
            user_holdout(r, fraction, random_state=seed)
        return
    fold = user_holdout(r, fraction, random_state=seed)
    assert_partition(r, fold)
    test_counts = fold.test.user_counts()
    train_counts = fold.train.user_counts()
    for u, n_u in enumerate(counts):
        if n_u >= 2:
            want = min(max(int(np.floor(fraction * n_u + 0.5 + 1e-9)), 1), n_u - 1)
            assert test_counts[u] == want
            assert train_counts[u] >= 1
        else:
            assert test_counts[u] == 0
            assert train_counts[u] == n_u


def test_user_holdout_puts_every_user_with_two_ratings_in_both_parts(medium):
    fold = user_holdout(medium, 0.2, random_state=0)
    assert_partition(medium, fold)
    counts = medium.user_counts()
    both = (fold.train.user_counts() > 0) & (fold.test.user_counts() > 0)
    np.testing.assert_array_equal(both, counts >= 2)
    assert fold.name == "user-holdout"
    # users with a single rating stay in train
    single = np.flatnonzero(counts == 1)
    assert len(single) > 0
    assert (fold.test.user_counts()[single] == 0).all()


def test_user_holdout_rounds_half_up_per_user():
    users = np.repeat([1, 2, 3], [10, 6, 2])
    items = np.concatenate([np.arange(10), np.arange(6), np.arange(2)])
    fold = user_holdout(make(users, items), 0.25, random_state=0)
    # 2.5 -> 3, 1.5 -> 2, 0.5 -> 1
    np.testing.assert_array_equal(fold.test.user_counts(), [3, 2, 1])


class TiedGenerator(np.random.Generator):
    """A Generator whose integers are all zero: every random key ties."""

    def integers(self, low, high=None, size=None, dtype=np.int64, endpoint=False):
        return np.zeros(size, dtype=dtype)


def test_user_holdout_counts_stay_exact_when_random_keys_tie(medium):
    fold = user_holdout(medium, 0.3, random_state=TiedGenerator(np.random.PCG64(0)))
    assert_partition(medium, fold)
    counts = medium.user_counts()
    want = np.where(counts >= 2, np.clip(np.floor(0.3 * counts + 0.5), 1, counts - 1), 0)
    np.testing.assert_array_equal(fold.test.user_counts(), want)


def test_user_holdout_is_deterministic_by_seed_and_random_within_user(medium):
    a = user_holdout(medium, 0.5, random_state=1)
    b = user_holdout(medium, 0.5, random_state=1)
    c = user_holdout(medium, 0.5, random_state=2)
    np.testing.assert_array_equal(held_out_keys(a), held_out_keys(b))
    assert not np.array_equal(held_out_keys(a), held_out_keys(c))


# -- kfold ---------------------------------------------------------------------------------
@given(small_ratings(min_rows=5), st.integers(2, 5), st.integers(0, 2**32 - 1))
def test_kfold_puts_each_rating_in_exactly_one_test_fold(r, k, seed):
    folds = kfold(r, k, random_state=seed)
    assert [f.name for f in folds] == [f"fold{j}" for j in range(1, k + 1)]
    for fold in folds:
        assert_partition(r, fold)
    all_tests = np.sort(np.concatenate([pair_keys(f.test) for f in folds]))
    np.testing.assert_array_equal(all_tests, np.sort(pair_keys(r)))
    sizes = [len(f.test) for f in folds]
    assert max(sizes) - min(sizes) <= 1


def test_kfold_is_deterministic_by_seed(medium):
    a = kfold(medium, 4, random_state=9)
    b = kfold(medium, 4, random_state=9)
    c = kfold(medium, 4, random_state=10)
    for fa, fb in zip(a, b, strict=True):
        np.testing.assert_array_equal(held_out_keys(fa), held_out_keys(fb))
    assert not np.array_equal(held_out_keys(a[0]), held_out_keys(c[0]))


@pytest.mark.parametrize("k", [1, 0, 2.5, True, "3"])
def test_kfold_rejects_bad_k(medium, k):
    with pytest.raises(ParameterError, match="k must be"):
        kfold(medium, k)


def test_kfold_needs_k_ratings():
    with pytest.raises(DataError, match="at least 3 ratings"):
        kfold(make([1, 2], [1, 1]), 3)


# -- temporal ------------------------------------------------------------------------------
@given(small_ratings(), st.floats(0.01, 0.99))
def test_temporal_tests_on_the_latest_ratings(r, fraction):
    fold = temporal(r, fraction)
    assert_partition(r, fold)
    assert fold.train.timestamp.max() <= fold.test.timestamp.min()
    # oracle: rows ordered by (time, row), the last n_test are the test set
    n = len(r)
    n_test = min(max(int(np.floor(fraction * n + 0.5 + 1e-9)), 1), n - 1)
    by_time = sorted(range(n), key=lambda row: (r.timestamp[row], row))
    want = np.sort(pair_keys(r)[by_time[n - n_test :]])
    np.testing.assert_array_equal(held_out_keys(fold), want)


def test_temporal_breaks_ties_by_row_order():
    r = make([1, 2, 3, 4, 5], [1, 1, 1, 1, 1], times=[5, 5, 5, 5, 5])
    fold = temporal(r, 0.4)
    np.testing.assert_array_equal(fold.test.users.take(fold.test.user_index), [4, 5])


def test_temporal_needs_timestamps():
    with pytest.raises(DataError, match="no timestamps"):
        temporal(make([1, 2], [1, 1]), 0.5)


# -- last_k --------------------------------------------------------------------------------
@given(small_ratings(), st.integers(1, 3))
def test_last_k_tests_on_each_users_most_recent_ratings(r, k):
    counts = r.user_counts()
    if not (counts > k).any():
        with pytest.raises(DataError, match=f"more than k={k}"):
            last_k(r, k)
        return
    fold = last_k(r, k)
    assert_partition(r, fold)
    want = []
    for u in range(r.n_users):
        mine = sorted(np.flatnonzero(r.user_index == u), key=lambda row: (r.timestamp[row], row))
        if len(mine) > k:
            want.extend(mine[-k:])
    np.testing.assert_array_equal(held_out_keys(fold), np.sort(pair_keys(r)[want]))
    assert fold.name == "last"


def test_last_k_keeps_small_users_in_train_and_respects_time(medium):
    fold = last_k(medium, 3)
    assert_partition(medium, fold)
    counts = medium.user_counts()
    np.testing.assert_array_equal(fold.test.user_counts(), np.where(counts > 3, 3, 0))
    # per user, every train timestamp is <= every test timestamp
    latest_train = np.full(medium.n_users, -1)
    np.maximum.at(latest_train, fold.train.user_index, fold.train.timestamp)
    earliest_test = np.full(medium.n_users, np.iinfo(np.int64).max)
    np.minimum.at(earliest_test, fold.test.user_index, fold.test.timestamp)
    tested = counts > 3
    assert (latest_train[tested] <= earliest_test[tested]).all()


def test_last_k_breaks_ties_by_row_order():
    r = make([1, 1, 1, 1], [10, 20, 30, 40], times=[7, 9, 9, 1])
    fold = last_k(r, 1)
    np.testing.assert_array_equal(fold.test.items.take(fold.test.item_index), [30])


def test_last_k_needs_timestamps_and_a_valid_k(medium):
    with pytest.raises(DataError, match="no timestamps"):
        last_k(make([1, 1, 2], [1, 2, 1]), 1)
    with pytest.raises(ParameterError, match="k must be"):
        last_k(medium, 0)


# -- parse_split ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("spec", "names"),
    [
        ("kfold:3", ["fold1", "fold2", "fold3"]),
        ("holdout:0.2", ["holdout"]),
        ("user-holdout:0.25", ["user-holdout"]),
        ("temporal:0.1", ["temporal"]),
        ("last:2", ["last"]),
        ("  KFold:2 ", ["fold1", "fold2"]),
    ],
)
def test_parse_split_builds_the_named_folds(medium, spec, names):
    folds = parse_split(spec, medium, random_state=0)
    assert [f.name for f in folds] == names
    for fold in folds:
        assert_partition(medium, fold)


def test_parse_split_matches_the_functions(medium):
    np.testing.assert_array_equal(
        held_out_keys(parse_split("holdout:0.3", medium, random_state=4)[0]),
        held_out_keys(holdout(medium, 0.3, random_state=4)),
    )
    np.testing.assert_array_equal(
        held_out_keys(parse_split("user-holdout:0.3", medium, random_state=4)[0]),
        held_out_keys(user_holdout(medium, 0.3, random_state=4)),
    )
    np.testing.assert_array_equal(
        held_out_keys(parse_split("temporal:0.3", medium)[0]), held_out_keys(temporal(medium, 0.3))
    )
    np.testing.assert_array_equal(
        held_out_keys(parse_split("last:2", medium)[0]), held_out_keys(last_k(medium, 2))
    )
    for a, b in zip(
        parse_split("kfold:3", medium, 4), kfold(medium, 3, random_state=4), strict=True
    ):
        np.testing.assert_array_equal(held_out_keys(a), held_out_keys(b))


@pytest.mark.parametrize(
    "spec",
    [
        "",
        "kfold",
        "kfold:",
        "kfold:x",
        "kfold:2.5",
        "holdout:abc",
        "u6",
        "u0",
        "random:0.2",
        "ua:1",
        "u1..u4",
        "holdout:0.2:1",
    ],
)
def test_parse_split_rejects_unknown_forms_listing_the_accepted_ones(medium, spec):
    with pytest.raises(ValueError, match="accepted forms") as info:
        parse_split(spec, medium)
    for form in ("u1..u5", "kfold:K", "holdout:F", "user-holdout:F", "temporal:F", "last:K"):
        assert form in str(info.value)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("kfold:1", "k must be"),
        ("holdout:1.5", "test_fraction"),
        ("temporal:0", "test_fraction"),
        ("last:0", "k must be"),
    ],
)
def test_parse_split_rejects_numbers_out_of_range(medium, spec, message):
    with pytest.raises(ValueError, match=message) as info:
        parse_split(spec, medium)
    assert spec in str(info.value)


def test_parse_split_rejects_a_non_string(medium):
    with pytest.raises(ValueError, match="string"):
        parse_split(5, medium)  # type: ignore[arg-type]


# -- ML-100K official splits -----------------------------------------------------------------
def test_official_splits_refuse_other_data(medium):
    for name in ("u1", "ua"):
        with pytest.raises(DataError, match="MovieLens 100K"):
            ml100k_official(medium, name)
    with pytest.raises(DataError, match="MovieLens 100K"):
        parse_split("u1..u5", medium)


def test_official_splits_refuse_data_of_the_right_shape_in_another_order():
    from mfrec.data.synthetic import default_synthetic

    data = default_synthetic().ratings  # 100,000 ratings, 943 users, 1,682 items
    with pytest.raises(DataError, match="line order"):
        ml100k_official(data, "u1")


def test_official_split_names_are_checked(medium):
    with pytest.raises(ValueError, match="u1, u2, u3, u4, u5, ua, ub"):
        ml100k_official(medium, "u6")


@pytest.fixture(scope="module")
def ml100k(ml100k_dir) -> tuple[pd.DataFrame, Ratings]:
    frame = pd.read_csv(
        ml100k_dir / "u.data", sep="\t", header=None, names=["user", "item", "rating", "timestamp"]
    )
    return frame, Ratings.from_frame(frame, timestamp="timestamp", scale=(1, 5))


def raw_pairs(r: Ratings) -> np.ndarray:
    return np.column_stack([r.users.take(r.user_index), r.items.take(r.item_index)])


@pytest.mark.realdata
@pytest.mark.parametrize("k", [1, 2, 3, 4, 5])
def test_official_uk_folds_are_the_line_blocks_of_u_data(ml100k, k):
    frame, ratings = ml100k
    fold = ml100k_official(ratings, f"u{k}")
    assert fold.name == f"u{k}"
    assert_partition(ratings, fold)
    lines = np.arange(len(frame))
    in_test = (lines >= 20000 * (k - 1)) & (lines < 20000 * k)
    pairs = frame[["user", "item"]].to_numpy()
    # folds keep file order, so the rows match line by line
    np.testing.assert_array_equal(raw_pairs(fold.test), pairs[in_test])
    np.testing.assert_array_equal(raw_pairs(fold.train), pairs[~in_test])
    np.testing.assert_array_equal(fold.test.timestamp, frame["timestamp"].to_numpy()[in_test])


@pytest.mark.realdata
@pytest.mark.parametrize(("name", "low"), [("ua", 0), ("ub", 10)])
def test_official_ua_ub_test_on_ten_ratings_per_user_in_file_order(ml100k, name, low):
    frame, ratings = ml100k
    fold = ml100k_official(ratings, name)
    assert_partition(ratings, fold)
    assert len(fold.test) == 9430
    assert (fold.test.user_counts() == 10).all()
    nth = frame.groupby("user").cumcount().to_numpy()  # 0-based position in file order
    in_test = (nth >= low) & (nth < low + 10)
    pairs = frame[["user", "item"]].to_numpy()
    np.testing.assert_array_equal(raw_pairs(fold.test), pairs[in_test])
    np.testing.assert_array_equal(raw_pairs(fold.train), pairs[~in_test])


@pytest.mark.realdata
def test_official_ua_and_ub_tests_are_disjoint(ml100k):
    _, ratings = ml100k
    ua, ub = ml100k_official(ratings, "ua"), ml100k_official(ratings, "ub")
    assert len(np.intersect1d(pair_keys(ua.test), pair_keys(ub.test))) == 0


@pytest.mark.realdata
def test_parse_split_u1_to_u5_covers_u_data_once(ml100k):
    _, ratings = ml100k
    folds = parse_split("u1..u5", ratings)
    assert [f.name for f in folds] == ["u1", "u2", "u3", "u4", "u5"]
    all_tests = np.sort(np.concatenate([pair_keys(f.test) for f in folds]))
    np.testing.assert_array_equal(all_tests, np.sort(pair_keys(ratings)))
    assert [f.name for f in parse_split("ub", ratings)] == ["ub"]


@pytest.mark.realdata
def test_official_splits_refuse_reordered_or_filtered_u_data(ml100k):
    _, ratings = ml100k
    n = len(ratings)
    shuffled = ratings.subset(np.random.default_rng(0).permutation(n))
    with pytest.raises(DataError, match="line order"):
        ml100k_official(shuffled, "u1")
    with pytest.raises(DataError, match="99,999 ratings"):
        ml100k_official(ratings.subset(np.arange(n - 1)), "ua")


@pytest.mark.realdata
@pytest.mark.parametrize("name", ML100K_SPLITS)
def test_official_splits_accept_string_ids(ml100k, name):
    frame, ratings = ml100k
    as_text = frame.astype({"user": str, "item": str})
    text_ratings = Ratings.from_frame(as_text, timestamp="timestamp")
    a = ml100k_official(ratings, name)
    b = ml100k_official(text_ratings, name)
    np.testing.assert_array_equal(raw_pairs(a.test).astype(str), raw_pairs(b.test))
