"""Ratings.from_matrix: dense, DataFrame and sparse matrices in, every bad one refused."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from mfrec.data.ratings import Ratings
from mfrec.exceptions import DataError

TOY = np.array([[5, 3, 0, 1], [4, 0, 0, 1], [1, 1, 0, 5], [1, 0, 0, 4], [0, 1, 5, 4]], dtype=float)


def test_zero_means_missing_and_the_matrix_comes_back():
    r = Ratings.from_matrix(TOY, missing=0)
    assert (len(r), r.n_users, r.n_items) == (13, 5, 4)
    assert r.users.ids.tolist() == [0, 1, 2, 3, 4] and r.items.ids.tolist() == [0, 1, 2, 3]
    assert np.array_equal(r.to_csr().toarray(), TOY)
    assert r.to_frame().head(3).to_dict("list") == {
        "user": [0, 0, 0], "item": [0, 1, 3], "rating": [5.0, 3.0, 1.0],
    }  # fmt: skip


def test_integer_matrix_and_given_ids():
    r = Ratings.from_matrix(TOY.astype(int), missing=0, users=list("abcde"), items=[10, 20, 30, 40])
    assert r.users.kind == "str" and r.items.ids.tolist() == [10, 20, 30, 40]
    assert r.to_frame().iloc[-1].tolist() == ["e", 40, 4.0]


def test_nan_is_missing_by_default_and_a_zero_is_then_a_rating():
    m = np.where(TOY == 0, np.nan, TOY)
    m[0, 0] = 0.0
    r = Ratings.from_matrix(m)
    assert len(r) == 13 and r.rating[0] == 0.0


def test_any_value_can_mark_missing():
    m = np.where(TOY == 0, -1, TOY)
    assert np.array_equal(Ratings.from_matrix(m, missing=-1).to_csr().toarray(), TOY)


def test_missing_none_takes_every_cell():
    r = Ratings.from_matrix(np.arange(6.0).reshape(2, 3), missing=None)
    assert len(r) == 6 and r.rating.tolist() == [0, 1, 2, 3, 4, 5]


def test_dataframe_items_x_users_like_the_course_notebook():
    values = np.where(TOY == 0, np.nan, TOY).T  # items x users
    df = pd.DataFrame(
        values,
        index=[f"Item_{i + 1}" for i in range(4)],
        columns=[f"User_{j + 1}" for j in range(5)],
    )
    r = Ratings.from_matrix(df, orient="items x users")
    assert r.users.ids.tolist() == [f"User_{j + 1}" for j in range(5)]
    assert r.items.ids.tolist() == [f"Item_{i + 1}" for i in range(4)]
    assert np.array_equal(r.to_csr().toarray(), TOY)
    # Ratings come user by user, items in matrix order, whatever the orientation.
    same = Ratings.from_matrix(df.T)
    assert np.array_equal(same.user_index, r.user_index)
    assert np.array_equal(same.item_index, r.item_index)
    assert np.array_equal(same.rating, r.rating)


def test_dataframe_nullable_and_object_columns():
    df = pd.DataFrame({"a": pd.array([1, None, 3], dtype="Int64"), "b": [2.0, 4.0, None]})
    r = Ratings.from_matrix(df)
    assert r.to_frame().to_dict("list") == {
        "user": [0, 0, 1, 2], "item": ["a", "b", "b", "a"], "rating": [1.0, 2.0, 4.0, 3.0],
    }  # fmt: skip
    numbers_as_objects = pd.DataFrame({"x": np.array([1, "2", None], dtype=object)})
    assert Ratings.from_matrix(numbers_as_objects).rating.tolist() == [1.0, 2.0]


def test_sparse_stored_entries_are_the_ratings_and_stored_zero_is_a_rating():
    m = sp.coo_array(
        (np.array([5.0, 0.0, 3.0]), (np.array([0, 1, 2]), np.array([2, 0, 1]))), shape=(3, 4)
    )
    r = Ratings.from_matrix(m)
    assert len(r) == 3 and r.n_items == 4, "an explicitly stored 0 is a rating"
    assert r.to_frame().to_dict("list") == {
        "user": [0, 1, 2], "item": [2, 0, 1], "rating": [5.0, 0.0, 3.0],
    }  # fmt: skip
    assert len(Ratings.from_matrix(m, missing=0)) == 2, "missing=0 drops stored zeros too"
    csr = sp.csr_matrix(TOY)
    assert np.array_equal(Ratings.from_matrix(csr).to_csr().toarray(), TOY)
    flipped = Ratings.from_matrix(sp.csc_matrix(TOY.T), orient="items x users")
    assert np.array_equal(flipped.to_csr().toarray(), TOY)


def test_rows_and_columns_without_ratings_keep_their_ids_and_a_model_drops_them():
    from mfrec.models import BiasBaseline

    m = TOY.copy()
    m[:, 2] = 0
    r = Ratings.from_matrix(m, missing=0)
    assert r.n_items == 4 and r.item_counts().tolist() == [4, 3, 0, 5]
    assert BiasBaseline().fit(r).items_.ids.tolist() == [0, 1, 3]


def test_scale_and_metadata_carry_through():
    info = pd.DataFrame({"title": ["A", "B", "C", "D"]}, index=[0, 1, 2, 3])
    r = Ratings.from_matrix(TOY, missing=0, scale=(1, 5), item_info=info, name="toy")
    assert r.scale == (1.0, 5.0) and r.name == "toy" and r.item_titles().tolist() == list("ABCD")


@pytest.mark.parametrize(
    ("matrix", "kwargs", "message"),
    [
        (TOY, {"orient": "rows"}, "orient must be 'users x items'"),
        (np.where(TOY == 0, np.nan, TOY), {"missing": 0}, "NaN at row 0, column 2 (7 NaN cells)"),
        (np.zeros((2, 3)), {"missing": 0}, "every cell of the 2 x 3 matrix is missing"),
        (np.full((2, 3), np.nan), {}, "every cell of the 2 x 3 matrix is missing"),
        (TOY, {"users": [1, 2]}, "users has 2 ids but the matrix has 5 rows"),
        (TOY, {"items": [1, 2], "orient": "items x users"}, "items has 2 ids but the matrix has 5"),
        (TOY, {"users": [1, 1, 2, 3, 4]}, "user id 1 labels more than one"),
        (TOY, {"items": "abcd"}, "items must be a 1-D sequence"),
        ([["a", 1], [2, 3]], {}, "non-numeric value 'a' at row 0, column 0"),
        (np.ones(3), {}, "expected a 2-D matrix, got shape (3,)"),
        (np.ones((2, 2, 2)), {}, "expected a 2-D matrix"),
        (np.zeros((0, 3)), {}, "the matrix is empty"),
        (TOY > 0, {}, "booleans"),
        (TOY * 1j, {}, "complex128 values"),
        (np.array([["2020-01-01"]], dtype="datetime64[D]"), {}, "datetime64[D] values"),
        (np.array([[1.0, pd.Timestamp(0)]], dtype=object), {}, "non-numeric value Timestamp"),
        (pd.DataFrame({"a": pd.to_datetime(["2020-01-01"])}), {}, "column 'a' holds datetime64"),
        (np.array([[1.0, np.inf]]), {}, "infinite rating inf at row 0, column 1"),
        (TOY, {"missing": 0, "scale": (1, 4)}, "rating 5 at row 0, column 0 (user 0, item 0)"),
        (TOY, {"missing": "zero"}, "missing must be a number, NaN or None"),
        (TOY, {"missing": np.inf}, "missing must be finite or NaN"),
        (np.array([[1.0, np.nan]]), {"missing": None}, "missing rating (NaN)"),
        (pd.Series([1.0, 2.0]), {}, "got a pandas Series"),
        (pd.DataFrame({"a": [True, False]}), {}, "column 'a' holds booleans"),
        (sp.csr_matrix(TOY > 0), {}, "the sparse matrix holds booleans"),
        (
            sp.coo_array((np.array([1.0, 2.0]), (np.array([0, 0]), np.array([1, 1])))),
            {},
            "stores cell (row 0, column 1) more than once",
        ),
        (sp.csr_matrix(np.array([[np.nan, 1.0]])), {"missing": 0}, "NaN stored at row 0, column 0"),
        (np.ma.masked_equal(TOY, 0), {}, "masked arrays"),
    ],
)
def test_bad_matrices_are_refused_with_the_fix(matrix, kwargs, message):
    with pytest.raises(DataError) as err:
        Ratings.from_matrix(matrix, **kwargs)
    assert message in str(err.value)


def test_multiindex_frame_is_refused():
    df = pd.DataFrame([[1.0, 2.0]], index=pd.MultiIndex.from_tuples([("a", 1)]))
    with pytest.raises(DataError, match="index has several levels"):
        Ratings.from_matrix(df)


def test_stacked_frame_with_nan_points_to_from_matrix():
    """pandas 3's stack() keeps NaN cells: the natural long route must say what to do."""
    df = pd.DataFrame(np.where(TOY == 0, np.nan, TOY).T, columns=list("abcde"))
    long = df.stack().rename_axis(["item", "user"]).reset_index(name="rating")
    if long["rating"].isna().any():  # pandas 3; pandas 2 dropped them already
        with pytest.raises(DataError) as err:
            Ratings.from_frame(long)
        assert "Ratings.from_matrix(df" in str(err.value) and "dropna" in str(err.value)
    # The two fixes the message names agree.
    direct = Ratings.from_matrix(df, orient="items x users")
    via_long = Ratings.from_frame(long.dropna(subset=["rating"]))
    a = direct.to_frame().sort_values(["user", "item"]).reset_index(drop=True)
    b = via_long.to_frame().sort_values(["user", "item"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b, check_dtype=False)


@settings(max_examples=60, deadline=None)
@given(
    arrays(
        np.float64,
        st.tuples(st.integers(1, 6), st.integers(1, 6)),
        elements=st.one_of(st.just(np.nan), st.sampled_from([1.0, 2.0, 3.5, 5.0])),
    ),
    st.sampled_from(["users x items", "items x users"]),
    st.booleans(),
)
def test_round_trip_any_matrix(matrix, orient, as_sparse):
    """Every non-missing cell becomes exactly one rating; the CSR view rebuilds the matrix."""
    observed = ~np.isnan(matrix)
    source = sp.csr_matrix(np.nan_to_num(matrix)) if as_sparse else matrix
    if not observed.any():
        with pytest.raises(DataError, match="missing"):
            Ratings.from_matrix(source, orient=orient, missing=0 if as_sparse else np.nan)
        return
    r = Ratings.from_matrix(source, orient=orient, missing=0 if as_sparse else np.nan)
    users_x_items = matrix if orient == "users x items" else matrix.T
    assert len(r) == int(observed.sum())
    assert np.array_equal(r.to_csr().toarray(), np.nan_to_num(users_x_items))
    keys = r.user_index.astype(np.int64) * r.n_items + r.item_index
    assert np.all(np.diff(keys) > 0), "row-major users x items order, no duplicates"


def test_docstring_example_runs():
    import doctest

    test = doctest.DocTestFinder().find(Ratings.from_matrix, globs={"np": np, "Ratings": Ratings})
    runner = doctest.DocTestRunner()
    for case in test:
        runner.run(case)
    assert runner.summarize(verbose=False).attempted >= 2
    assert runner.summarize(verbose=False).failed == 0
