"""Hyperparameter search: spaces, seeding, selection, no peeking at the test part, CLI."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from mfrec.cli import main
from mfrec.data.ratings import Ratings
from mfrec.data.split import kfold, temporal
from mfrec.data.synthetic import make_ratings
from mfrec.evaluation.search import (
    Choice,
    IntUniform,
    LogIntUniform,
    LogUniform,
    Uniform,
    grid_search,
    parse_grid,
    parse_space,
    random_configurations,
    random_search,
    search,
)
from mfrec.evaluation.validate import evaluate_fold
from mfrec.exceptions import ParameterError
from mfrec.models import ALS, BiasBaseline, BiasedMF, load


@pytest.fixture(scope="module")
def small():
    return make_ratings(n_users=60, n_items=40, density=0.3, n_factors=2, random_state=1).ratings


# -- spaces ------------------------------------------------------------------------------
def test_parse_grid_uses_the_models_rules():
    grid = parse_grid("n_factors=50,100; reg=0.02,0.05 ;dtype=float64", BiasedMF)
    assert grid == {"n_factors": [50, 100], "reg": [0.02, 0.05], "dtype": ["float64"]}
    assert isinstance(grid["n_factors"][0], int)
    assert parse_grid("biased=true,false", "als") == {"biased": [True, False]}


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("", "empty search space"),
        ("n_factors", "not NAME=VALUES"),
        ("n_factor=5", "no parameter 'n_factor'.*n_factors"),
        ("n_factors=0,5", "n_factors must be an int in"),
        ("n_factors=5.5", "n_factors"),
        ("reg=0.1;reg=0.2", "given twice"),
        ("reg=0.1,0.1", "twice"),
        ("lr=loguniform(1e-3,1e-1)", "random search"),
    ],
)
def test_bad_grids_show_the_syntax(spec, match):
    with pytest.raises(ParameterError, match=match) as info:
        parse_grid(spec, BiasedMF)
    assert "NAME=V1,V2" in str(info.value)


def test_parse_space_distributions():
    space = parse_space(
        "n_factors=int(10,200);lr=loguniform(1e-3,1e-1);reg=uniform(0,0.1);"
        "n_epochs=logint(5,50);dtype=choice(float32,float64);init_std=0.2",
        BiasedMF,
    )
    assert space == {
        "n_factors": IntUniform(10, 200),
        "lr": LogUniform(1e-3, 1e-1),
        "reg": Uniform(0.0, 0.1),
        "n_epochs": LogIntUniform(5, 50),
        "dtype": Choice(("float32", "float64")),
        "init_std": Choice((0.2,)),
    }


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("n_factors=uniform(10,200)", "integer parameter: use int"),
        ("lr=loguniform(0,0.1)", "LOW > 0"),
        ("lr=uniform(0.1,0.01)", "LOW < HIGH"),
        ("n_factors=int(1,x)", "two integers"),
        ("lr=uniform(0.001,2)", "lr must be a number in"),
        ("lr=gauss(0,1)", "not a distribution"),
        ("lr=0.1,0.2", "not a distribution"),
        ("n_factors=int(1,2,3)", "LOW,HIGH"),
        ("lrate=uniform(0,1)", "no parameter 'lrate'"),
    ],
)
def test_bad_random_spaces_show_the_syntax(spec, match):
    with pytest.raises(ParameterError, match=match) as info:
        parse_space(spec, BiasedMF)
    assert "loguniform(LOW,HIGH)" in str(info.value)


def test_random_configurations_are_seeded_and_in_range():
    space = parse_space(
        "n_factors=logint(10,200);lr=loguniform(1e-3,1e-1);reg=uniform(0,0.1)", BiasedMF
    )
    a = random_configurations(space, 30, 7)
    assert a == random_configurations(space, 30, 7)
    assert a != random_configurations(space, 30, 8)
    assert len(a) == 30 and len({repr(sorted(c.items())) for c in a}) == 30
    for config in a:
        assert isinstance(config["n_factors"], int) and 10 <= config["n_factors"] <= 200
        assert 1e-3 <= config["lr"] < 1e-1 and 0 <= config["reg"] < 0.1
    # Log scale: about as many draws below the geometric midpoint as above.
    many = random_configurations({"lr": LogUniform(1e-4, 1.0)}, 2000, 0)
    below = np.mean([c["lr"] < 1e-2 for c in many])
    assert 0.45 < below < 0.55
    # A small discrete space yields each configuration once, then stops.
    assert len(random_configurations({"a": [1, 2], "b": Choice((3,))}, 10, 0)) == 2


# -- searching -----------------------------------------------------------------------------
def test_grid_covers_every_combination_on_the_same_folds(small):
    grid = {"reg_user": [0.5, 5.0, 50.0], "reg_item": [1.0, 100.0]}
    result = grid_search(BiasBaseline(n_epochs=3), grid, small, folds=3, random_state=4)
    seen = [(r.params["reg_user"], r.params["reg_item"]) for r in result.results]
    assert seen == list(itertools.product(grid["reg_user"], grid["reg_item"]))
    assert all(len(r.fold_rmse) == 3 for r in result.results)
    # The scores are real cross-validation scores on the seeded folds.
    folds = kfold(small, 3, random_state=np.random.default_rng(4).integers(0, 2**31 - 1))
    again = [
        evaluate_fold(BiasBaseline(reg_user=5.0, reg_item=100.0, n_epochs=3), f, ("rmse",))["rmse"]
        for f in folds
    ]
    np.testing.assert_allclose(result.results[3].fold_rmse, again, rtol=1e-12)
    best = min(result.results, key=lambda r: r.mean_rmse)
    assert result.best is best
    assert result.best_params == {"n_epochs": 3, **best.params}
    assert result.best_rmse == pytest.approx(np.mean(best.fold_rmse))
    table = result.table()
    assert len(table.splitlines()) == 1 + 6
    assert table.splitlines()[1].split()[:2] == ["1", str(best.index + 1)]
    frame = result.to_frame()
    assert list(frame["config"]) == [1, 2, 3, 4, 5, 6]
    assert json.loads(json.dumps(result.to_dict()))["best_config"] == best.index + 1


def test_random_search_is_seeded(small):
    space = "reg=loguniform(0.01,1);n_factors=int(1,6)"

    def run(seed):
        return random_search(
            ALS(n_epochs=2), space, small, n_iter=3, folds=2, random_state=seed
        ).to_dict()["results"]

    first, second = run(5), run(5)
    assert [r["params"] for r in first] == [r["params"] for r in second]
    assert [r["fold_rmse"] for r in first] == [r["fold_rmse"] for r in second]
    assert [r["params"] for r in run(6)] != [r["params"] for r in first]


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_failed_configurations_are_reported_not_fatal(small):
    grid = {"lr": [0.9, 0.01]}
    base = BiasedMF(n_factors=30, n_epochs=30, reg=0.0, init_std=1.0)
    result = grid_search(base, grid, small, folds=2, random_state=0)
    failed, ok = result.results
    assert failed.error and "diverged" in failed.error and math.isnan(failed.mean_rmse)
    assert result.best is ok
    assert "failed" in result.table()


def test_bad_configurations_fail_before_any_fit(small):
    with pytest.raises(ParameterError, match="n_factors"):
        search(BiasedMF(), [{"n_factors": 5}, {"n_factors": -1}], small, folds=2)
    with pytest.raises(ParameterError, match="no parameter 'rank'"):
        grid_search(ALS(), {"rank": [5]}, small)


def test_threads_setting_reaches_models(small):
    seen = []

    class Spy(ALS):
        def _fit(self, train, validation, callback):
            seen.append(self.n_threads)
            super()._fit(train, validation, callback)

    grid_search(Spy(n_epochs=1, patience=None), {"n_factors": [2]}, small, folds=2, n_threads=1)
    assert seen == [1, 1]


# -- the test part stays unseen ----------------------------------------------------------
def _adversarial(tmp_path):
    """Ratings whose early 20% (the training part of temporal:0.8) carry strong item
    effects, while the late 80% (the test part) carry the *opposite* effects, scaled so
    that the pooled data has none. Searched on the training part, a light item-bias
    regularisation wins; searched on everything (a leak), a heavy one does."""
    rng = np.random.default_rng(0)
    n_users, n_items = 150, 20
    effect = rng.choice([-1.5, 1.5], n_items)
    users, items, values, times = [], [], [], []
    for u in range(n_users):
        order = rng.permutation(n_items)
        for pos, i in enumerate(order):
            early = pos < 4
            scale = 1.0 if early else -0.25
            users.append(u)
            items.append(i)
            values.append(3 + scale * effect[i] + rng.normal(0, 0.3))
            times.append(pos * 1000 + u)  # every early rating precedes every late one
    frame_path = tmp_path / "adversarial.csv"
    pd.DataFrame({"user": users, "item": items, "rating": values, "timestamp": times}).to_csv(
        frame_path, index=False
    )
    ratings = Ratings.from_arrays(users, items, values, times)
    return ratings, frame_path


def test_search_never_sees_the_test_part(tmp_path):
    ratings, path = _adversarial(tmp_path)
    grid = "reg_item=0.1,1000"
    base = BiasBaseline(reg_user=1000.0, n_epochs=2)
    # The data can fool a search that peeks: on everything, heavy regularisation wins...
    leaked = grid_search(base, grid, ratings, folds=3, random_state=0)
    assert leaked.best_params["reg_item"] == 1000
    # ...while on the training part alone light regularisation wins.
    train_only = grid_search(base, grid, temporal(ratings, 0.8).train, folds=3, random_state=0)
    assert train_only.best_params["reg_item"] == 0.1
    # The CLI with --split searches the training part only and, unless --report-test
    # asks, never scores the test part; asked, it reports it once, after the choice.
    args = [
        "tune", str(path), "--model", "bias", "--param", "reg_user=1000",
        "--param", "n_epochs=2", "--grid", grid, "--folds", "3", "--split", "temporal:0.8",
        "--seed", "0",
    ]  # fmt: skip
    for extra in ([], ["--report-test"]):
        result = CliRunner().invoke(main, [*args, *extra, "--json"], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        report = json.loads(result.output)
        assert report["best_params"]["reg_item"] == 0.1
        assert report["searched_ratings"] == len(temporal(ratings, 0.8).train)
        assert report["n_test"] == len(ratings) - report["searched_ratings"]
        assert ("test_rmse" in report) == bool(extra)
    assert report["test_rmse"] > 1.0  # the test part contradicts the training part
    text = CliRunner().invoke(main, args, catch_exceptions=False).output
    assert "not scored" in text and "test RMSE" not in text
    text = CliRunner().invoke(main, [*args, "--report-test"], catch_exceptions=False).output
    assert text.count("test RMSE") == 1
    assert text.index("test RMSE") > text.index("best (#")  # after the choice


# -- the command line ---------------------------------------------------------------------
@pytest.fixture
def runner(monkeypatch, tmp_path):
    monkeypatch.setenv("MFREC_DATA_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("MFREC_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("MFREC_OFFLINE", "1")
    return CliRunner()


@pytest.fixture
def ratings_file(tmp_path, small):
    path = tmp_path / "ratings.csv"
    small.to_frame().to_csv(path, index=False)
    return path


def test_cli_random_search_end_to_end(runner, ratings_file, tmp_path):
    out = tmp_path / "best.mfrec"
    args = [
        "tune", ratings_file, "--model", "als", "--param", "n_epochs=3",
        "--random", "n_factors=int(1,4);reg=loguniform(0.01,0.5)", "--n-iter", "3",
        "--folds", "3", "--seed", "2", "--threads", "1", "--out", out,
    ]  # fmt: skip
    result = runner.invoke(main, [*map(str, args), "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["search"]["method"] == "random" and len(report["results"]) == 3
    assert all(len(r["fold_rmse"]) == 3 for r in report["results"])
    best = min(report["results"], key=lambda r: r["mean_rmse"])
    assert report["best_params"]["n_factors"] == best["params"]["n_factors"]
    assert report["best_params"]["n_epochs"] == 3 and report["best_params"]["random_state"] == 2
    # The same search from Python: same configurations, same scores.
    same = random_search(
        ALS(n_epochs=3, random_state=2),
        "n_factors=int(1,4);reg=loguniform(0.01,0.5)",
        Ratings.from_frame(pd.read_csv(ratings_file)),
        n_iter=3,
        folds=3,
        random_state=2,
    )
    assert [r.params for r in same.results] == [r["params"] for r in report["results"]]
    assert [r.fold_rmse for r in same.results] == [r["fold_rmse"] for r in report["results"]]
    model = load(out)
    assert model.get_params() == {**report["best_params"], "n_threads": 1}
    assert len(model.users_) == 60  # refitted on all of DATA (no --split)
    # The text form: the table, the best parameters ready to paste, no test figure.
    text = runner.invoke(main, list(map(str, args[:-2])), catch_exceptions=False)
    assert text.exit_code == 0, text.output
    assert "rank" in text.output and "--param n_factors=" in text.output
    assert "held-out" not in text.output


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        ([], "exactly one of --grid"),
        (["--grid", "reg=0.1", "--random", "reg=uniform(0,1)"], "exactly one of --grid"),
        (["--grid", "reg=x"], "NAME=V1,V2"),
        (["--random", "n_factors=uniform(1,5)"], "use int"),
        (["--grid", "reg=0.1", "--split", "kfold:3"], "gives 3 folds"),
        (["--grid", "reg=0.1", "--report-test"], "give --split too"),
    ],
)
def test_cli_errors(runner, ratings_file, extra, match):
    result = runner.invoke(main, ["tune", str(ratings_file), "--model", "als", *extra])
    assert result.exit_code != 0
    assert match in result.output


# -- presets -------------------------------------------------------------------------------
def test_every_preset_is_valid_for_its_model():
    from mfrec.models import MODELS
    from mfrec.models.presets import PRESET_SOURCES, PRESETS, preset, preset_names

    assert PRESETS, "no presets"
    for (model, name), params in PRESETS.items():
        assert model in MODELS, f"preset for unknown model {model!r}"
        MODELS[model](**params)._validate_params()
        assert (model, name) in PRESET_SOURCES, f"{model}/{name}: say how it was found"
        assert name in preset_names(model)
        assert preset(model, name) == params and preset(model, name) is not params
    with pytest.raises(ParameterError, match=r"no preset 'nope' for model 'svdpp'.*ml-100k"):
        preset("svdpp", "nope")
    with pytest.raises(ParameterError, match="models with presets"):
        preset("global-mean", "ml-100k")


def test_cli_preset_applies_and_param_overrides(runner, ratings_file):
    from mfrec.models.presets import preset

    args = [
        "evaluate", str(ratings_file), "--model", "svdpp", "--preset", "ml-100k",
        "--param", "n_epochs=2", "--split", "holdout:0.2", "--seed", "0", "--json",
    ]  # fmt: skip
    result = runner.invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    params = json.loads(result.output)["params"]
    expected = {**preset("svdpp", "ml-100k"), "n_epochs": 2}
    assert {k: params[k] for k in expected} == expected
    bad = runner.invoke(main, ["evaluate", str(ratings_file), "--model", "als", "--preset", "x"])
    assert bad.exit_code != 0 and "no preset 'x' for model 'als'" in bad.output
