"""Top-N for every user, streamed to a file in blocks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mfrec.data.ratings import Ratings
from mfrec.data.synthetic import make_ratings
from mfrec.export import write_recommendations
from mfrec.models import BiasedMF


@pytest.fixture(scope="module")
def model():
    ratings = make_ratings(n_users=120, n_items=60, density=0.25, random_state=1).ratings
    return BiasedMF(n_factors=4, n_epochs=5, random_state=0).fit(ratings)


@pytest.mark.parametrize("block_size", [1, 7, 1000, None])
def test_file_equals_batch_recommend_for_any_block_size(model, tmp_path, block_size):
    path = tmp_path / "recs.parquet"
    rows = write_recommendations(model, path, n=5, block_size=block_size)
    frame = pd.read_parquet(path)
    assert rows == len(frame) == 5 * len(model.users_)
    expected = model.recommend(model.users_.ids, n=5)
    got_items = frame["item"].to_numpy().reshape(-1, 5)
    got_scores = frame["score"].to_numpy().reshape(-1, 5)
    assert np.array_equal(frame["user"].to_numpy()[::5], model.users_.ids)
    assert np.array_equal(frame["rank"].to_numpy().reshape(-1, 5)[0], np.arange(1, 6))
    assert np.array_equal(got_items, expected.item_ids)
    assert np.array_equal(got_scores, expected.scores)


def test_no_training_item_is_written(model, tmp_path):
    path = tmp_path / "recs.csv"
    write_recommendations(model, path, n=10, block_size=16)
    frame = pd.read_csv(path)
    seen = model.seen_items
    for user, group in frame.groupby("user"):
        row = model.users_.lookup([user])[0]
        rated = set(model.items_.take(seen[row].indices).tolist())
        assert rated.isdisjoint(group["item"])


def test_string_ids_and_padding(tmp_path):
    ratings = Ratings.from_arrays(["a", "a", "b"], ["x", "y", "x"], [5, 3, 4])
    model = BiasedMF(n_factors=2, n_epochs=2, random_state=0).fit(ratings)
    path = tmp_path / "recs.tsv"
    rows = write_recommendations(model, path, n=5)
    frame = pd.read_csv(path, sep="\t", dtype={"user": str, "item": str})
    # a rated both items: nothing left; b has one candidate. Padding is never written.
    assert rows == 1 and frame.to_dict("records")[0]["user"] == "b"
    assert frame["item"].tolist() == ["y"]


def test_chosen_users_and_unknown_user(model, tmp_path):
    path = tmp_path / "some.parquet"
    write_recommendations(model, path, n=3, users=model.users_.ids[[5, 2]])
    assert (
        pd.read_parquet(path)["user"].tolist()
        == [model.users_.ids[5]] * 3 + [model.users_.ids[2]] * 3
    )
    with pytest.raises(KeyError, match="unknown user"):
        write_recommendations(model, tmp_path / "x.parquet", users=[10**9])


def test_failure_leaves_no_file(model, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        yield next(iter(type(model).iter_recommendations(model, 3, block_size=5)))
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(model, "iter_recommendations", broken)
    with pytest.raises(RuntimeError, match="disk on fire"):
        write_recommendations(model, tmp_path / "recs.parquet", n=3)
    assert list(tmp_path.iterdir()) == []


def test_unknown_format(model, tmp_path):
    with pytest.raises(ValueError, match="parquet"):
        write_recommendations(model, tmp_path / "recs.xlsx")
