"""Ratings: every bad input gets an error naming the row and the fix; views are exact."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mfrec.data.ratings import Ratings
from mfrec.exceptions import DataError


def frame(**columns):
    base = {"user": [1, 1, 2, 3], "item": [10, 11, 10, 12], "rating": [4.0, 3.0, 5.0, 1.0]}
    base.update(columns)
    return pd.DataFrame(base)


def test_basic_facts_and_views():
    r = Ratings.from_frame(frame(), scale=(1, 5), name="toy")
    assert (len(r), r.n_users, r.n_items) == (4, 3, 3)
    assert repr(r) == "Ratings(toy: 4 ratings, 3 users, 3 items, scale 1-5)"
    dense = r.to_csr().toarray()
    assert dense.tolist() == [[4, 3, 0], [5, 0, 0], [0, 0, 1]]
    assert np.array_equal(r.to_csc().toarray(), dense.T)
    assert r.to_frame().to_dict("list") == {
        "user": [1, 1, 2, 3], "item": [10, 11, 10, 12], "rating": [4.0, 3.0, 5.0, 1.0],
    }  # fmt: skip
    assert r.user_counts().tolist() == [2, 1, 1] and r.item_counts().tolist() == [2, 1, 1]
    assert not r.rating.flags.writeable, "arrays are read-only"


def test_row_order_is_kept():
    r = Ratings.from_arrays([3, 1, 2], [5, 6, 7], [1, 2, 3])
    assert r.to_frame()["user"].tolist() == [3, 1, 2]


def test_subset_shares_vocabularies_and_compact_drops_unused_ids():
    r = Ratings.from_frame(frame())
    part = r.subset(np.array([0, 1]))
    assert part.users is r.users and part.n_users == 3
    small = part.compact()
    assert small.users.ids.tolist() == [1] and small.items.ids.tolist() == [10, 11]
    assert small.to_frame().to_dict("list") == part.to_frame().to_dict("list")
    assert r.compact() is r


def test_timestamps_numbers_and_datetimes():
    times = pd.to_datetime(["2020-01-01", "2020-01-02", "2020-01-03", "2020-01-04"])
    r = Ratings.from_frame(frame(ts=times), timestamp="ts")
    assert r.timestamp.tolist()[0] == 1577836800
    with pytest.raises(DataError, match="timestamp 'soon' at row 2"):
        Ratings.from_frame(frame(ts=[1, 2, "soon", 4]), timestamp="ts")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"rating": [4, "x", 5, 1]}, "non-numeric rating 'x' at row 1"),
        ({"rating": [4, np.nan, 5, 1]}, r"missing rating \(NaN\) at row 1"),
        ({"rating": [4, np.inf, 5, 1]}, "infinite rating inf at row 1"),
        ({"rating": [4, 7, 5, 1]}, "rating 7 at row 1 is outside the declared scale 1-5"),
        ({"user": [1, None, 2, 3]}, "missing user id at row 1"),
        ({"item": [10, "b", 10, 12]}, "item ids must be all ints or all strings"),
        ({"item": [10, 10, 10, 12]}, "duplicate rating of item 10 by user 1 at row 0 and row 1"),
    ],
)
def test_every_bad_input_names_the_row(change, message):
    with pytest.raises(DataError, match=message):
        Ratings.from_frame(frame(**change), scale=(1, 5))


def test_missing_columns_and_empty_input():
    with pytest.raises(DataError, match=r"missing column\(s\) \['score'\].*user=, item=") as err:
        Ratings.from_frame(frame(), rating="score")
    assert "'user', 'item', 'rating'" in str(err.value)
    with pytest.raises(DataError, match="no ratings"):
        Ratings.from_arrays([], [], [])
    with pytest.raises(DataError, match="differ in length"):
        Ratings.from_arrays([1, 2], [1], [3, 4])
    with pytest.raises(DataError, match="DataFrame"):
        Ratings.from_frame({"user": [1]})
    with pytest.raises(DataError, match="scale"):
        Ratings.from_arrays([1], [1], [1], scale=(5, 1))


def test_duplicate_policies():
    users, items = [1, 1, 2, 1], [10, 10, 10, 10]
    ratings, times = [1.0, 2.0, 3.0, 5.0], [100, 300, 50, 200]
    last = Ratings.from_arrays(users, items, ratings, times, duplicates="last").to_frame()
    assert last.to_dict("list") == {
        "user": [2, 1],
        "item": [10, 10],
        "rating": [3.0, 5.0],
        "timestamp": [50, 200],
    }
    mean = Ratings.from_arrays(users, items, ratings, times, duplicates="mean").to_frame()
    # One row per pair, where it first occurred; mean of values, latest timestamp.
    assert mean.to_dict("list") == {
        "user": [1, 2],
        "item": [10, 10],
        "rating": [pytest.approx(8 / 3), 3.0],
        "timestamp": [300, 50],
    }
    with pytest.raises(DataError, match="duplicates must be one of"):
        Ratings.from_arrays(users, items, ratings, duplicates="first")


def test_item_titles_follow_the_vocabulary():
    info = pd.DataFrame({"title": ["Ten", "Twelve"]}, index=pd.Index([10, 12]))
    r = Ratings.from_frame(frame(), item_info=info)
    assert r.item_titles().tolist() == ["Ten", "", "Twelve"]
    assert Ratings.from_frame(frame()).item_titles() is None
