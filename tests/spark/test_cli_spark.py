"""`mfrec spark train` / `mfrec spark recommend` end to end on local[2] (the shared
session), on a small generated dataset."""

from __future__ import annotations

import json
import sys

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import mfrec
from mfrec.cli import main
from mfrec.data.synthetic import make_ratings


@pytest.fixture(scope="module")
def data_files(tmp_path_factory):
    data = make_ratings(n_users=70, n_items=45, density=0.3, n_factors=3, random_state=11)
    frame = data.ratings.to_frame()[["user", "item", "rating"]]
    frame = frame.rename(columns={"user": "uid", "item": "iid", "rating": "stars"})
    folder = tmp_path_factory.mktemp("spark-cli")
    csv = folder / "ratings.csv"
    frame.to_csv(csv, index=False)
    parquet = folder / "ratings.parquet"
    frame.astype({"stars": "float64"}).to_parquet(parquet)
    return csv, parquet, frame


def run(*args, ok=True):
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.output
    return result


def test_train_csv_then_recommend_all_to_parquet(spark, data_files, tmp_path):
    csv, _, frame = data_files
    model_path = tmp_path / "m.mfrec"
    out = run(
        "spark", "train", csv, "--columns", "uid,iid,stars", "--param", "n_factors=4",
        "--param", "n_epochs=3", "--seed", 3, "--num-blocks", 2, "--out", model_path, "--json",
    )  # fmt: skip
    summary = json.loads(out.output)
    assert summary["n_users"] == frame["uid"].nunique() and summary["num_blocks"] == 2
    model = mfrec.load(str(model_path))
    assert isinstance(model, mfrec.models.ALS) and model.n_factors == 4
    local = mfrec.models.ALS(n_factors=4, n_epochs=3, random_state=3, patience=None).fit(
        mfrec.Ratings.from_frame(frame, "uid", "iid", "stars")
    )
    np.testing.assert_allclose(model.item_factors_, local.item_factors_, atol=1e-4)

    recs_path = tmp_path / "recs.parquet"
    run("spark", "recommend", model_path, "--out", recs_path, "-n", 5)
    recs = pd.read_parquet(recs_path)
    assert list(recs.columns) == ["user", "rank", "item", "score"]
    assert recs["user"].nunique() == len(model.users_)
    user = int(model.users_.ids[0])
    got = recs[recs["user"] == user].sort_values("rank")["item"].to_numpy()
    np.testing.assert_array_equal(got, model.recommend(user, 5).item_ids)
    again = run("spark", "recommend", model_path, "--out", recs_path, ok=False)
    assert again.exit_code != 0 and "--overwrite" in again.output


def test_recommend_for_the_users_of_a_ratings_file(spark, data_files, tmp_path):
    _, parquet, frame = data_files
    model_path = tmp_path / "m.mfrec"
    run("spark", "train", parquet, "--columns", "uid,iid,stars", "--param", "n_epochs=2",
        "--param", "n_factors=3", "--seed", 1, "--out", model_path)  # fmt: skip
    model = mfrec.load(str(model_path))
    some = frame[frame["uid"].isin(frame["uid"].unique()[:3])]
    extra = some.copy()
    extra["iid"] = int(frame["iid"].max())  # a further item each, also to be excluded
    subset = tmp_path / "subset.csv"
    pd.concat([some, extra]).drop_duplicates(["uid", "iid"]).to_csv(subset, index=False)
    recs_path = tmp_path / "subset-recs.parquet"
    run("spark", "recommend", model_path, "--ratings", subset, "--columns", "uid,iid,stars",
        "--out", recs_path, "-n", 40)  # fmt: skip
    recs = pd.read_parquet(recs_path)
    assert set(recs["user"]) == set(some["uid"])
    assert int(frame["iid"].max()) not in set(recs["item"])
    for user, group in recs.groupby("user"):
        rated = set(frame.loc[frame["uid"] == user, "iid"])
        assert not rated & set(group["item"])
        assert group["rank"].tolist() == list(range(1, len(group) + 1))
    assert len(model.users_) > 3


def test_implicit_from_parquet(spark, data_files, tmp_path):
    _, parquet, _ = data_files
    model_path = tmp_path / "imp.mfrec"
    run("spark", "train", parquet, "--model", "implicit-als", "--columns", "uid,iid,stars",
        "--param", "n_factors=3", "--param", "n_epochs=2", "--param", "alpha=2",
        "--out", model_path)  # fmt: skip
    assert isinstance(mfrec.load(str(model_path)), mfrec.models.ImplicitALS)


def test_clear_errors(spark, data_files, tmp_path, monkeypatch):
    csv, _, _ = data_files
    out = tmp_path / "x.mfrec"
    wrong = run("spark", "train", csv, "--out", out, ok=False)
    assert wrong.exit_code == 1 and "no column" in wrong.output and "--columns" in wrong.output
    bad = run("spark", "train", csv, "--columns", "uid,iid,stars", "--param", "n_factors=0",
              "--out", out, ok=False)  # fmt: skip
    assert bad.exit_code != 0 and "n_factors" in bad.output
    assert not out.exists()
    monkeypatch.setitem(sys.modules, "pyspark", None)
    missing = run("spark", "train", csv, "--out", out, ok=False)
    assert missing.exit_code == 1 and 'pip install "mfrec[spark]"' in missing.output


def test_no_java_says_how_to_install(monkeypatch):
    from mfrec.spark import _session

    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setattr(_session.shutil, "which", lambda name: None)
    assert "openjdk-17" in _session.java_problem()
