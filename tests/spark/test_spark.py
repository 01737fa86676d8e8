"""mfrec on Spark (local[2]): agreement with the local models, exact top-N for all
users, evaluation, and clear errors. One ML-100K fit is shared by most tests."""

from __future__ import annotations

import functools
import warnings

import numpy as np
import pandas as pd
import pytest

import mfrec
from mfrec.data.split import ml100k_official
from mfrec.data.synthetic import make_ratings
from mfrec.evaluation.metrics import mae, rmse
from mfrec.evaluation.topn import evaluate_ranking
from mfrec.exceptions import DataError, ParameterError
from mfrec.models import ALS, ImplicitALS
from mfrec.spark import evaluate, fit_als, recommend_all

SETTINGS = {"n_factors": 10, "reg": 0.1, "n_epochs": 6, "random_state": 7}


@pytest.fixture(scope="module")
def u1(ml100k_dir):
    ratings = mfrec.load_dataset("ml-100k", download=False)
    return ml100k_official(ratings, "u1")


@pytest.fixture(scope="module")
def fitted(spark, to_spark, u1):
    """(Spark-fitted ALS, locally fitted ALS) on ML-100K u1, same data, seed, settings."""
    remote = fit_als(to_spark(u1.train), num_blocks=3, **SETTINGS)
    local = ALS(**SETTINGS, patience=None).fit(u1.train)  # every epoch, as on Spark
    return remote, local


def _test_rmse(model, fold):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        predicted = model.predict(
            fold.test.users.take(fold.test.user_index), fold.test.items.take(fold.test.item_index)
        )
    return float(np.sqrt(np.mean((predicted - fold.test.rating) ** 2)))


def test_agrees_with_local_als_on_ml100k_u1(fitted, u1):
    remote, local = fitted
    assert isinstance(remote, ALS) and remote.is_fitted
    assert remote.users_ == local.users_ and remote.items_ == local.items_
    assert abs(_test_rmse(remote, u1) - _test_rmse(local, u1)) < 1e-3
    # Same init, same kernels, same row order: the same model up to float rounding.
    np.testing.assert_allclose(remote.user_factors_, local.user_factors_, atol=1e-4)
    np.testing.assert_allclose(remote.item_factors_, local.item_factors_, atol=1e-4)
    np.testing.assert_allclose(remote.item_bias_, local.item_bias_, atol=1e-4)
    assert remote.global_mean_ == pytest.approx(local.global_mean_, rel=1e-12)
    assert len(remote.history_) == SETTINGS["n_epochs"]
    for mine, theirs in zip(remote.history_, local.history_, strict=True):
        assert mine["train_rmse"] == pytest.approx(theirs["train_rmse"], rel=1e-6)
        assert mine["train_loss"] == pytest.approx(theirs["train_loss"], rel=1e-6)
    assert (remote.seen_items != local.seen_items).nnz == 0


def test_result_is_an_ordinary_model(fitted, tmp_path):
    remote, local = fitted
    path = tmp_path / "spark.mfrec"
    remote.save(str(path))
    loaded = mfrec.load(str(path))
    users = remote.users_.take(np.arange(0, 900, 97))
    a, b = loaded.recommend(users, 10), local.recommend(users, 10)
    np.testing.assert_array_equal(a.item_ids, b.item_ids)
    # Fold-in of a new user works on the loaded model and agrees with the local one.
    history = {1: 5.0, 50: 4.0, 100: 1.0, 181: 5.0}
    loaded.fold_in(100_000, history)
    local_copy = mfrec.load(str(path))
    local_copy.fold_in(100_000, history)
    np.testing.assert_array_equal(
        loaded.recommend(100_000, 5).item_ids, local_copy.recommend(100_000, 5).item_ids
    )
    assert not set(loaded.recommend(100_000, 20).item_ids) & set(history)


def test_recommend_all_is_exactly_local_recommend(spark, fitted, tmp_path):
    remote, _ = fitted
    frame = recommend_all(remote, spark, n=7, block_users=150)
    out = tmp_path / "recs.parquet"
    frame.write.parquet(str(out))
    recs = pd.read_parquet(out).sort_values(["user", "rank"])
    assert list(frame.columns) == ["user", "rank", "item", "score"]
    assert recs["user"].nunique() == len(remote.users_)
    local = remote.recommend(remote.users_.ids, 7)
    expected_items = np.asarray(local.item_ids).ravel()
    expected_scores = np.asarray(local.scores).ravel()
    by_user = recs.set_index(["user", "rank"])
    order = pd.MultiIndex.from_product([remote.users_.ids, range(1, 8)])
    np.testing.assert_array_equal(by_user.loc[order, "item"].to_numpy(), expected_items)
    np.testing.assert_array_equal(by_user.loc[order, "score"].to_numpy(), expected_scores)
    seen = remote.seen_items
    for user, group in recs.groupby("user"):
        row = remote.users_.index([user])[0]
        rated = set(remote.items_.take(seen.indices[seen.indptr[row] : seen.indptr[row + 1]]))
        assert not rated & set(group["item"])


def test_recommend_all_subset_without_exclusion(spark, fitted):
    remote, _ = fitted
    users = [5, 1, 300]
    recs = recommend_all(remote, spark, n=3, exclude_seen=False, users=users).toPandas()
    local = remote.recommend(users, 3, exclude_seen=False)
    for row, user in enumerate(users):
        got = recs[recs["user"] == user].sort_values("rank")["item"].to_numpy()
        np.testing.assert_array_equal(got, local.item_ids[row])


def test_evaluate_matches_local_metrics(fitted, to_spark, u1):
    remote, _ = fitted
    metrics = ["rmse", "mae", "ndcg@10", "recall@10", "precision@5", "map@10", "mrr@10", "hit@10"]
    got = evaluate(remote, to_spark(u1.test), metrics)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        predicted = remote.predict(
            u1.test.users.take(u1.test.user_index), u1.test.items.take(u1.test.item_index)
        )
    assert got["rmse"] == pytest.approx(rmse(u1.test.rating, predicted))
    assert got["mae"] == pytest.approx(mae(u1.test.rating, predicted))
    ranking = evaluate_ranking(remote, u1.test, metrics[2:])
    for name in metrics[2:]:
        assert got[name] == pytest.approx(ranking[name], rel=1e-9), name
    assert got["n_users_evaluated"] == ranking["n_users_evaluated"]
    assert got["n_ratings"] == len(u1.test)
    with pytest.raises(ParameterError, match="coverage"):
        evaluate(remote, to_spark(u1.test), ["coverage@10"])


@pytest.fixture(scope="module")
def small():
    data = make_ratings(n_users=60, n_items=40, density=0.3, n_factors=3, random_state=3)
    frame = data.ratings.to_frame()
    frame["user"] = "u" + frame["user"].astype(str)  # string ids
    frame["item"] = "i" + frame["item"].astype(str)
    return frame[["user", "item", "rating"]]


def test_implicit_agrees_with_local_and_keeps_string_ids(spark, small):
    settings = {"n_factors": 4, "reg": 0.5, "n_epochs": 3, "random_state": 1}
    df = spark.createDataFrame(small)
    remote = fit_als(df, implicit=True, alpha=2.0, num_blocks=2, **settings)
    local = ImplicitALS(alpha=2.0, **settings).fit(
        mfrec.Ratings.from_frame(small, "user", "item", "rating")
    )
    assert isinstance(remote, ImplicitALS)
    assert remote.users_.kind == "str" and remote.users_ == local.users_
    np.testing.assert_allclose(remote.user_factors_, local.user_factors_, atol=1e-4)
    np.testing.assert_allclose(remote.item_factors_, local.item_factors_, atol=1e-4)
    for mine, theirs in zip(remote.history_, local.history_, strict=True):
        assert mine["train_loss"] == pytest.approx(theirs["train_loss"], rel=1e-5)
    recs = recommend_all(remote, spark, n=4).toPandas()
    for user in local.users_.ids[:5]:
        got = recs[recs["user"] == user].sort_values("rank")["item"].tolist()
        assert got == list(local.recommend(user, 4).item_ids)


def test_clear_errors(spark, small):
    df = spark.createDataFrame(small)
    with pytest.raises(ParameterError, match="score"):
        fit_als(df, rating="score")
    with pytest.raises(ParameterError, match="implicit"):
        fit_als(df, alpha=3.0)
    with pytest.raises(ParameterError, match="n_factors"):
        fit_als(df, n_factors=0)
    twice = spark.createDataFrame(pd.concat([small, small.head(3)]))
    with pytest.raises(DataError, match="more than once"):
        fit_als(twice, n_epochs=1)
    bad = small.copy()
    bad.loc[0, "rating"] = np.nan
    with pytest.raises(DataError, match="finite"):
        fit_als(spark.createDataFrame(bad), n_epochs=1)
    negative = small.copy()
    negative.loc[0, "rating"] = -1.0
    with pytest.raises(DataError, match=">= 0"):
        fit_als(spark.createDataFrame(negative), implicit=True, n_epochs=1)


@pytest.mark.parametrize(("implicit", "blocks"), [(False, 1), (True, 3)])
def test_callback_stop_keeps_the_last_epoch(spark, small, implicit, blocks):
    # The factors travel with the messages between epochs: a fit stopped by its callback
    # after the second epoch must hand back that epoch's factors, on one block as on many.
    settings = {"n_factors": 4, "reg": 0.5, "random_state": 3}
    model = ImplicitALS if implicit else functools.partial(ALS, patience=None)
    local = model(n_epochs=2, **settings).fit(
        mfrec.Ratings.from_frame(small, "user", "item", "rating")
    )
    remote = fit_als(
        spark.createDataFrame(small), implicit=implicit, num_blocks=blocks, n_epochs=5,
        callback=lambda record: record["epoch"] < 2, **settings,
    )  # fmt: skip
    assert len(remote.history_) == 2
    np.testing.assert_allclose(remote.user_factors_, local.user_factors_, atol=1e-4)
    np.testing.assert_allclose(remote.item_factors_, local.item_factors_, atol=1e-4)


def test_fit_als_refuses_early_stopping():
    """Early stopping (the local ALS's default) needs a held-out slice and a refit; the
    distributed fit runs every epoch, and says so rather than ignore ``patience``."""
    from mfrec.exceptions import ParameterError

    with pytest.raises(ParameterError, match="no early stopping on Spark"):
        fit_als(None, patience=3)
