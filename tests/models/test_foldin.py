"""Fold-in, recommend_for_ratings, partial_fit and similar_items of the factor models."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from mfrec.cli import main
from mfrec.data.ratings import Ratings
from mfrec.data.split import user_holdout
from mfrec.data.synthetic import make_ratings
from mfrec.exceptions import DataError, UnknownIdWarning
from mfrec.kernels.foldin import ridge_rows, ridge_rows_reference
from mfrec.models import BiasBaseline, BiasedMF, FunkSVD, GlobalMean, load

from .topn_conformance import TopNConformance, own_ratings

PURE_LOW_RANK = {"global_mean": 0.0, "user_bias_std": 0.0, "item_bias_std": 0.0}

#: The plain-SGD rule these tests' settings were chosen for (the defaults are AdaGrad with
#: early stopping; docs/defaults.md).
# The classic rule in raw rating units (these tests' steps were set for continuous data
# of no declared scale, whose range would otherwise set the unit).
PLAIN_SGD = {"optimizer": "sgd", "init_std": 0.1, "patience": None, "rating_unit": 1.0}


def planted(biases: bool = True, seed: int = 11) -> Ratings:
    """300 users x 200 items, rank 3, low noise, continuous (and biased unless told)."""
    return make_ratings(
        n_users=300,
        n_items=200,
        density=0.3,
        n_factors=3,
        noise_std=0.1,
        round_to=None,
        scale=None,
        missing="uniform",
        random_state=seed,
        **({} if biases else PURE_LOW_RANK),
    ).ratings


class TestBiasedMFTopN(TopNConformance):
    model_class = BiasedMF
    fast_params = {"n_factors": 3, "n_epochs": 150, "lr": 0.02, "reg": 0.01, "n_threads": 1}


class TestFunkSVDTopN(TopNConformance):
    model_class = FunkSVD
    fast_params = {
        "n_factors": 3, "n_epochs": 300, "lr": 0.005, "reg": 0.005, "init_std": 0.3, "n_threads": 1,
        "optimizer": "sgd", "patience": None, "init_mean": 0.0,
    }  # fmt: skip

    @classmethod
    def topn_train(cls, planted):
        # Funk SVD has no biases: give it data it can represent (pure rank 3).
        return user_holdout(planted_small_pure(), 0.2, random_state=0).train


def planted_small_pure() -> Ratings:
    return make_ratings(
        n_users=60, n_items=40, density=0.5, n_factors=3, noise_std=0.1, round_to=None,
        scale=None, missing="uniform", random_state=7, **PURE_LOW_RANK,
    ).ratings  # fmt: skip


# -- the solve ---------------------------------------------------------------------------
@pytest.mark.parametrize("with_gram", [False, True])
@pytest.mark.parametrize("d", [5, 13])  # 13: the Cholesky's blocks of four rows and the rest
def test_ridge_kernel_agrees_with_numpy_reference(with_gram, d):
    rng = np.random.default_rng(0)
    n_rows, n_items = 12, 30
    counts = rng.integers(0, 9, n_rows)
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    indices = np.concatenate(
        [np.sort(rng.choice(n_items, c, replace=False)) for c in counts]
    ).astype(np.int32)
    weights = rng.uniform(0.5, 3, indptr[-1])
    targets = rng.normal(size=indptr[-1])
    F = rng.normal(size=(n_items, d)).astype(np.float32)
    G = F.astype(np.float64).T @ F if with_gram else np.zeros((d, d))
    base = np.full(d, 0.3)
    per = rng.uniform(0, 0.2, d)
    out = np.empty((n_rows, d))
    ridge_rows(indptr, indices, weights, targets, F, G, base, per, out)
    expected = ridge_rows_reference(indptr, indices, weights, targets, F, G, base, per)
    np.testing.assert_allclose(out, expected, rtol=1e-9, atol=1e-12)
    assert np.all(out[counts == 0] == 0) or with_gram  # no data, no gram: the prior (0)


def test_singular_system_without_regularisation_gives_a_finite_solution():
    F = np.ones((4, 3), dtype=np.float32)  # rank 1
    out = np.empty((1, 3))
    indptr = np.array([0, 2], dtype=np.int64)
    ridge_rows(
        indptr, np.array([0, 1], np.int32), np.ones(2), np.array([2.0, 2.0]), F,
        np.zeros((3, 3)), np.zeros(3), np.zeros(3), out,
    )  # fmt: skip
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(F[:2] @ out[0], [2.0, 2.0], rtol=1e-6)  # still fits the data


@pytest.mark.parametrize("unit", [1.0, 2.5])
def test_fold_in_minimises_the_user_part_of_the_sgd_objective(unit):
    """For BiasedMF the folded-in (p, b) is the stationary point of
    sum_i (r - mu - b - b_i - p.q_i)^2 + c (n reg + reg_row) |p|^2 + (n reg_bias +
    reg_bias_row) b^2: the per-rating penalty and the fixed per-row part, the factors'
    in the ratings' units (c = rating_unit), as training minimises it."""
    model = BiasedMF(
        n_factors=4, n_epochs=20, reg=0.05, reg_bias=0.2, reg_row=1.5, reg_bias_row=3.0,
        n_threads=1, random_state=0,
    )  # fmt: skip
    model.set_params(**{**PLAIN_SGD, "rating_unit": unit}).fit(planted(seed=3))
    ratings = own_ratings(model, 10)
    model.fold_in(-1, ratings)
    p = model.user_factors_[-1].astype(np.float64)
    b = float(model.user_bias_[-1])
    items = model.items_.index(list(ratings))
    q = model.item_factors_[items].astype(np.float64)
    r = np.array(list(ratings.values()))
    err = r - model.global_mean_ - b - model.item_bias_[items] - q @ p
    n = len(r)
    grad_p = -2 * q.T @ err + 2 * unit * (n * 0.05 + 1.5) * p
    grad_b = -2 * err.sum() + 2 * (n * 0.2 + 3.0) * b
    scale = np.abs(q.T @ r).max()
    assert np.abs(grad_p).max() < 1e-4 * scale and abs(grad_b) < 1e-4 * scale


# -- against a full refit ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("cls", "params", "biases"),
    [
        (
            BiasedMF,
            {"n_factors": 3, "n_epochs": 40, "lr": 0.02, "reg": 0.02, "n_threads": 1, **PLAIN_SGD},
            True,
        ),
        (
            FunkSVD,
            {
                "n_factors": 3,
                "n_epochs": 100,
                "lr": 0.015,
                "reg": 0.005,
                "n_threads": 1,
                **PLAIN_SGD,
                "init_std": 0.3,
                "init_mean": 0.0,
            },
            False,
        ),
    ],
    ids=["biased-mf", "funk-svd"],
)
def test_folded_in_users_approach_a_full_refit(cls, params, biases):
    """30 users held out of training and folded in afterwards get the recommendations
    a refit on everything gives them: top-10 overlap and score correlation."""
    ratings = planted(biases)
    frame = ratings.to_frame()
    held = ratings.users.ids[:30]
    folded = cls(**params, random_state=0).fit(Ratings.from_frame(frame[~frame.user.isin(held)]))
    for user in held:
        mine = frame[frame.user == user]
        folded.fold_in(user, dict(zip(mine.item, mine.rating, strict=True)))
    refit = cls(**params, random_state=1).fit(ratings)
    a, b = folded.recommend(held, n=10), refit.recommend(held, n=10)
    overlap = [len(set(a.item_ids[r]) & set(b.item_ids[r])) / 10 for r in range(len(held))]
    assert np.mean(overlap) >= 0.9 and min(overlap) >= 0.7, overlap
    grid = (np.repeat(held, ratings.n_items), np.tile(ratings.items.ids, len(held)))
    pa = folded.predict(*grid).reshape(len(held), -1)
    pb = refit.predict(*grid).reshape(len(held), -1)
    corr = [np.corrcoef(pa[r], pb[r])[0, 1] for r in range(len(held))]
    assert np.mean(corr) >= 0.999 and min(corr) >= 0.99, corr


def test_partial_fit_moves_known_users_towards_the_refit():
    """Train on 60% of each user's ratings, partial_fit the other 40%: the updated users'
    scores move much closer to those of a refit on everything (what remains is the
    item side, which partial_fit leaves as the 60% taught it)."""
    ratings = planted()
    fold = user_holdout(ratings, 0.4, random_state=0)
    params = {"n_factors": 3, "n_epochs": 40, "lr": 0.02, "reg": 0.02, "n_threads": 1, **PLAIN_SGD}
    model = BiasedMF(**params, random_state=0).fit(fold.train)
    refit = BiasedMF(**params, random_state=1).fit(ratings)
    users = ratings.users.ids[:40]
    grid = (np.repeat(users, ratings.n_items), np.tile(ratings.items.ids, len(users)))

    def distance(a, b):
        return float(np.sqrt(np.mean((a.predict(*grid) - b.predict(*grid)) ** 2)))

    before = distance(model, refit)
    n_users = len(model.users_)
    model.partial_fit(fold.test)
    after = distance(model, refit)
    assert len(model.users_) == n_users
    assert model.seen_items.nnz == len(ratings)
    assert after < 0.7 * before, (before, after)


def test_partial_fit_merges_ratings_adds_new_users_and_ignores_unknown_items():
    model = BiasedMF(n_factors=3, n_epochs=30, n_threads=1, random_state=0).fit(planted())
    user, other = model.users_.ids[4], model.users_.ids[5]
    mine = own_ratings(model, 4)
    first_item = next(iter(mine))
    update = pd.DataFrame(
        {
            "user": [user, 900001, 900001, 900000, other],
            "item": [first_item, first_item, 10**9, model.items_.ids[1], 10**9],
            "rating": [1.0, 5.0, 3.0, 4.0, 2.0],
        }
    )
    expected = model.recommend_for_ratings({**mine, first_item: 1.0}, n=20)
    before_other = model.user_factors_[5].copy()
    with pytest.warns(UnknownIdWarning, match="2 of 5 new ratings"):
        model.partial_fit(update)
    # The new rating replaced the old one, and the user was re-solved from all of them.
    assert own_ratings(model, 4)[first_item] == 1.0
    assert len(own_ratings(model, 4)) == len(mine)
    got = model.recommend(user, n=20)
    assert np.array_equal(got.item_ids, expected.item_ids)
    np.testing.assert_array_equal(got.scores, expected.scores)
    # New users in order of first appearance; a user whose ratings were all of unknown
    # items is still re-solved from what the model holds (unchanged here).
    assert model.users_.ids[-2:].tolist() == [900001, 900000]
    np.testing.assert_allclose(model.user_factors_[5], before_other, atol=0.2)
    with pytest.raises(DataError, match="Ratings or a DataFrame"):
        model.partial_fit([1, 2, 3])


def test_fold_in_accepts_dicts_series_and_pairs_and_rejects_bad_input():
    model = BiasedMF(n_factors=3, n_epochs=10, n_threads=1, random_state=0).fit(planted())
    mine = own_ratings(model, 8)
    items, values = list(mine), list(mine.values())
    reference = model.recommend_for_ratings(mine, n=5)
    for form in (pd.Series(values, index=items), (items, values), (np.array(items), values)):
        again = model.recommend_for_ratings(form, n=5)
        assert np.array_equal(again.item_ids, reference.item_ids)
    for bad, message in [
        ([1, 2, 3], "dict"),
        ((items, values[:-1]), "items but"),
        ((items, ["x"] * len(items)), "numbers"),
        ({items[0]: float("nan")}, "finite"),
        ((items[:2] * 2, [1, 2, 3, 4]), "more than once"),
    ]:
        with pytest.raises(DataError, match=message):
            model.recommend_for_ratings(bad)
    with pytest.raises(DataError, match="one user"):
        model.fold_in([1, 2], mine)
    with pytest.raises(DataError, match="integers"):
        model.fold_in("a string id", mine)
    # No known rating at all: the ranking of the biases alone (an empty solve).
    with pytest.warns(UnknownIdWarning):
        empty = model.recommend_for_ratings({10**9: 5.0}, n=5)
    by_bias = np.argsort(-model.item_bias_, kind="stable")[:5]
    assert np.array_equal(empty.item_ids, model.items_.take(by_bias))


def test_models_without_a_defined_solve_say_so():
    train = planted()
    # BiasBaseline folds in by its own user step (tests/models/test_baseline.py) ...
    recs = BiasBaseline().fit(train).recommend_for_ratings({train.items.ids[0]: 4.0}, n=5)
    assert len(recs.item_ids) == 5 and train.items.ids[0] not in recs.item_ids
    # ... but has no latent space for similarities.
    with pytest.raises(NotImplementedError, match="no item factors"):
        BiasBaseline().fit(train).similar_items(train.items.ids[0])

    class WithExtraState(BiasedMF):
        _fitted_arrays = (*BiasedMF._fitted_arrays, "user_extra_")

    model = WithExtraState(n_factors=2, n_epochs=2, random_state=0)
    model.user_extra_ = None
    model.fit(train)
    with pytest.raises(NotImplementedError, match="user_extra_"):
        model.fold_in(-5, {train.items.ids[0]: 4.0})
    # GlobalMean has nothing to solve: fold-in just makes the user known.
    mean = GlobalMean().fit(train)
    mean.fold_in(-5, {train.items.ids[0]: 4.0})
    assert -5 in mean.users_
    assert train.items.ids[0] not in mean.recommend(-5, n=len(mean.items_)).item_ids


def test_string_ids_grow_the_vocabulary():
    train = Ratings.from_arrays(
        ["a", "a", "b", "b", "c", "c"], ["x", "y", "x", "z", "y", "z"], [5, 3, 4, 1, 2, 5]
    )
    model = BiasedMF(n_factors=2, n_epochs=5, random_state=0).fit(train)
    model.fold_in("d", {"x": 5.0})
    assert model.users_.ids.tolist() == ["a", "b", "c", "d"]
    assert sorted(model.recommend("d", n=5).item_ids.tolist()) == ["y", "z"]
    with pytest.raises(DataError, match="strings"):
        model.fold_in(4, {"x": 5.0})


# -- the command line ------------------------------------------------------------------
def test_cli_similar_recommend_for_ratings_and_update(tmp_path):
    ratings = planted()
    frame = ratings.to_frame()
    data = tmp_path / "r.csv"
    frame[["user", "item", "rating"]].to_csv(data, index=False)
    model_path = tmp_path / "m.mfrec"
    runner = CliRunner()

    def run(*args, ok=True):
        result = runner.invoke(main, [str(a) for a in args])
        assert (result.exit_code == 0) == ok, result.output
        return result

    run("train", data, "--param", "n_factors=3", "--param", "n_epochs=20", "--seed", "0",
        "--out", model_path)  # fmt: skip
    model = load(model_path)
    item = int(model.items_.ids[3])
    sims = json.loads(run("similar", model_path, "--item", item, "-n", "4", "--json").output)
    expected = model.similar_items(item, n=4)
    assert [s["item"] for s in sims[0]["similar"]] == expected.item_ids.tolist()
    text = run("similar", model_path, "--item", item).output
    assert text.startswith(f"item {item}") and str(expected.item_ids[0]) in text
    assert "unknown item" in run("similar", model_path, "--item", 10**9, ok=False).output

    mine = own_ratings(model, 0)
    user_file = tmp_path / "me.csv"
    pd.DataFrame({"item": [*mine, 10**9], "rating": [*mine.values(), 3.0]}).to_csv(
        user_file, index=False
    )
    out = json.loads(
        run("recommend", model_path, "--ratings", user_file, "-n", "5", "--json").output
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnknownIdWarning)
        direct = model.recommend_for_ratings({**mine, 10**9: 3.0}, n=5)
    assert [e["item"] for e in out["items"]] == direct.item_ids.tolist()
    assert "unknown to the model" in out["notes"][0]
    headerless = tmp_path / "me.tsv"
    headerless.write_text("".join(f"{i}\t{r}\n" for i, r in mine.items()))
    again = json.loads(
        run("recommend", model_path, "--ratings", headerless, "-n", "5", "--json").output
    )
    assert [e["item"] for e in again["items"]] == [e["item"] for e in out["items"]]
    bad = tmp_path / "bad.csv"
    bad.write_text("item,rating\n1,5\n2,great\n")
    assert "line 3" in run("recommend", model_path, "--ratings", bad, ok=False).output

    update = tmp_path / "new.csv"
    pd.DataFrame(
        {"user": [777777] * len(mine), "item": list(mine), "rating": list(mine.values())}
    ).to_csv(update, index=False)
    summary = json.loads(
        run(
            "update", model_path, "--ratings", update, "--out", tmp_path / "m2.mfrec", "--json"
        ).output
    )
    assert summary["new_users"] == 1
    updated = load(tmp_path / "m2.mfrec")
    recs = updated.recommend(777777, n=5)
    assert recs.item_ids.tolist() == [e["item"] for e in out["items"]]
