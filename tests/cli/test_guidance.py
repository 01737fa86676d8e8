"""The CLI guides a new user: honest scores, seeds, notes, flags named in errors,
progress inside fits, `mfrec predict` and `--threads` (issue 11, the CLI frictions)."""

from __future__ import annotations

import json
import re
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import mfrec
from mfrec.cli import main
from mfrec.cli._common import _cli_advice
from mfrec.data.synthetic import make_ratings
from mfrec.exceptions import UnknownIdWarning


@pytest.fixture(scope="module")
def frame():
    data = make_ratings(n_users=60, n_items=40, density=0.35, n_factors=3, random_state=7)
    return data.ratings.to_frame()[["user", "item", "rating", "timestamp"]]


@pytest.fixture(scope="module")
def ratings_file(frame, tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "ratings.csv"
    frame.to_csv(path, index=False)  # header user,item,rating,timestamp
    return path


@pytest.fixture
def runner(monkeypatch, tmp_path):
    monkeypatch.setenv("MFREC_DATA_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("MFREC_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("MFREC_OFFLINE", "1")
    monkeypatch.delenv("MFREC_THREADS", raising=False)
    return CliRunner()


def run(runner, *args, ok=True, env=None):
    result = runner.invoke(main, [str(a) for a in args], catch_exceptions=False, env=env)
    if ok:
        assert result.exit_code == 0, result.output
    else:
        assert result.exit_code != 0, result.output
        assert "Traceback" not in result.output
    return result


@pytest.fixture(scope="module")
def model_file(ratings_file, tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "m.mfrec"
    result = CliRunner().invoke(
        main,
        ["train", str(ratings_file), "--param", "n_factors=3", "--param", "n_epochs=5",
         "--seed", "0", "--out", str(path)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return path


# -- implicit models are scored by ranking metrics --------------------------------------
def test_evaluate_implicit_model_uses_ranking_metrics_and_says_why(runner, ratings_file):
    args = ["evaluate", ratings_file, "--model", "implicit-als", "--param", "n_epochs=2",
            "--param", "n_factors=4", "--split", "user-holdout:0.2", "--seed", "3"]  # fmt: skip
    report = json.loads(run(runner, *args, "--json").output)
    assert report["metrics"] == ["ndcg@10", "precision@10", "recall@10", "map@10"]
    assert "rmse" not in report["mean"]
    assert 0 <= report["mean"]["ndcg@10"] <= 1
    assert any("scores preferences, not ratings" in n for n in report["notes"])
    text = run(runner, *args).output
    assert "note: implicit-als scores preferences" in text and "--implicit T" in text
    # Rating metrics asked for explicitly: computed, with the warning and the fix.
    text = run(runner, *args, "--metrics", "rmse").output
    assert "RMSE" in text and "not meaningful" in text and "--metrics ndcg@10" in text
    # A rating model keeps RMSE/MAE by default, without notes.
    report = json.loads(
        run(
            runner, "evaluate", ratings_file, "--param", "n_epochs=2", "--seed", "3", "--json"
        ).output
    )
    assert report["metrics"] == ["rmse", "mae"] and report["notes"] == []


# -- the seed is printed and repeats the run ----------------------------------------------
def test_evaluate_prints_the_drawn_seed_and_it_repeats_the_run(runner, ratings_file):
    args = ["evaluate", ratings_file, "--param", "n_epochs=3", "--param", "n_factors=3",
            "--split", "kfold:2"]  # fmt: skip
    first = json.loads(run(runner, *args, "--json").output)
    seed = first["seed"]
    assert isinstance(seed, int) and first["params"]["random_state"] == seed
    again = json.loads(run(runner, *args, "--seed", seed, "--json").output)
    for a, b in zip(first["folds"], again["folds"], strict=True):
        assert a["n_test"] == b["n_test"]
        assert a["rmse"] == pytest.approx(b["rmse"], rel=1e-12)
    text = run(runner, *args).output
    drawn = int(re.search(r"seed (\d+) was drawn for this run; repeat it with --seed \1", text)[1])
    assert f"seed {drawn}" in text.splitlines()[0]
    text = run(runner, *args, "--seed", "5").output
    assert "seed 5" in text.splitlines()[0] and "was drawn" not in text


# -- progress inside fits, on a terminal only ---------------------------------------------
class _RecordingBar:
    """Stands in for the tqdm bar: records what a terminal would show."""

    made: ClassVar[list[_RecordingBar]] = []

    def __init__(self, total, desc, enabled, unit="it", position=0):
        self.total, self.desc, self.enabled, self.unit = total, desc, enabled, unit
        self.n, self.runs = 0, []
        _RecordingBar.made.append(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.runs.append(self.n)

    def update(self, k=1):
        self.n += k

    def reset(self, total=None):
        self.runs.append(self.n)
        self.n = 0

    def set_postfix(self, *args, **kwargs):
        pass

    def set_description(self, *args, **kwargs):
        pass

    def write(self, text):
        pass


def test_progress_counts_the_samples_inside_each_fit(runner, ratings_file, monkeypatch):
    import mfrec.cli._common as common
    import mfrec.cli.evaluate as evaluate_module

    monkeypatch.setattr(evaluate_module, "_progress_enabled", lambda json_output: not json_output)
    monkeypatch.setattr(common, "_bar", _RecordingBar)
    monkeypatch.setattr(evaluate_module, "_bar", _RecordingBar)
    args = ["evaluate", ratings_file, "--model", "bayes-mf", "--param", "n_factors=2",
            "--param", "burn_in=2", "--param", "n_samples=3", "--split", "kfold:2",
            "--seed", "0"]  # fmt: skip
    _RecordingBar.made.clear()
    run(runner, *args)
    folds, fits = _RecordingBar.made
    assert (folds.unit, folds.total, folds.enabled) == ("fold", 2, True)
    assert (fits.unit, fits.total, fits.enabled) == ("sample", 5, True)
    assert fits.runs[:2] == [5, 5]  # burn-in + kept samples, inside each of the 2 fits
    _RecordingBar.made.clear()
    result = run(runner, *args, "--json")
    assert not any(bar.enabled for bar in _RecordingBar.made)
    assert result.stderr == ""
    json.loads(result.stdout)


def test_cross_validate_passes_the_epoch_callback_to_every_fit(frame):
    from mfrec.data.split import kfold
    from mfrec.evaluation.validate import cross_validate
    from mfrec.models import BiasedMF

    ratings = mfrec.Ratings.from_frame(frame)
    records = []
    cross_validate(
        # On this tiny frame early stopping would keep epoch 0, the bias baseline (a refit
        # of no epoch, so no callback): the fallback is off to see every epoch.
        BiasedMF(n_factors=2, n_epochs=4, random_state=0, baseline_fallback=False),
        kfold(ratings, 3, random_state=0),
        callback=records.append,
    )
    assert [r["epoch"] for r in records] == [1, 2, 3, 4] * 3


# -- scores shown as scores ----------------------------------------------------------------
def test_scores_beyond_the_scale_are_labelled_and_clipped_in_json(runner, model_file, tmp_path):
    model = mfrec.load(model_file)
    low, high = model.rating_scale_
    boosted = tmp_path / "boosted.mfrec"
    model.item_bias_ = model.item_bias_ + np.float32(high)  # every score now above the top
    model.save(boosted)
    text = run(runner, "recommend", boosted, "--user", "3", "-n", "3").output
    assert re.search(r"rank\s+item\s+score", text)
    assert f"3 of 3 lie outside the rating scale {low:g}..{high:g}" in text
    recs = json.loads(run(runner, "recommend", boosted, "--user", "3", "-n", "3", "--json").output)
    for entry in recs[0]["items"]:
        assert entry["score"] > high and entry["rating"] == high
    # Scores within the scale: the column is still 'score', and no note.
    text = run(runner, "recommend", model_file, "--user", "3", "-n", "3").output
    scores = json.loads(
        run(runner, "recommend", model_file, "--user", "3", "-n", "3", "--json").output
    )[0]["items"]
    if all(low <= e["score"] <= high for e in scores):
        assert "outside the rating scale" not in text
    assert re.search(r"rank\s+item\s+score", text)
    # similar: cosine, no 'rating'
    text = run(runner, "similar", boosted, "--item", "2", "-n", "3").output
    assert re.search(r"rank\s+item\s+cosine", text)
    similar = json.loads(run(runner, "similar", boosted, "--item", "2", "-n", "3", "--json").output)
    assert all("rating" not in e and -1 <= e["score"] <= 1 for e in similar[0]["similar"])


def test_demo_shows_a_score_column(runner, tmp_path):
    result = run(runner, "demo", "--out-dir", tmp_path / "demo", "--param", "n_epochs=3")
    assert re.search(r"Top 10 for user .*\n\s+rank\s+item\s+score", result.output)


# -- recommend: what to give, and user columns ---------------------------------------------
def test_recommend_alone_names_every_way_to_call_it(runner, model_file):
    text = run(runner, "recommend", model_file, ok=False).output
    assert "--user ID" in text and "--all-users" in text and "--ratings FILE" in text


def test_recommend_ratings_file_with_a_user_column(runner, model_file, frame, tmp_path):
    one = tmp_path / "one.csv"
    frame[frame.user == 5][["user", "item", "rating"]].to_csv(one, index=False)
    n_rated = int((frame.user == 5).sum())
    out = json.loads(run(runner, "recommend", model_file, "--ratings", one, "--json").output)
    assert out["ratings"] == n_rated
    assert any("has a user column (column 'user')" in n and "user 5" in n for n in out["notes"])
    rated = set(frame.item[frame.user == 5])
    assert rated.isdisjoint(e["item"] for e in out["items"])
    # Several users: refused with the column and the fix; --user picks one.
    several = tmp_path / "several.csv"
    frame[frame.user.isin([5, 6])][["user", "item", "rating"]].to_csv(
        several, index=False, header=False
    )
    text = run(runner, "recommend", model_file, "--ratings", several, ok=False).output
    assert "has a user column (its first column) with 2 users (5, 6)" in text
    assert "--user ID" in text
    picked = json.loads(
        run(runner, "recommend", model_file, "--ratings", several, "--user", "5", "--json").output
    )
    assert picked["items"] == out["items"]
    text = run(runner, "recommend", model_file, "--ratings", several, "--user", "99", ok=False)
    assert "no rows of that user" in text.output


# -- errors speak flags ---------------------------------------------------------------------
ADVICE = [
    ("pass header=False if it is data", "pass --no-header if it is data"),
    (
        "with columns=, e.g. columns={'user': 'userId', 'item': 'movieId'} or "
        "columns='user,item,rating,_'",
        "with --columns, e.g. --columns user=userId,item=movieId or --columns user,item,rating,_",
    ),
    (
        "pass duplicates='last' or duplicates='mean'",
        "pass --duplicates last or --duplicates mean",
    ),
    (
        "expected 3 (sep=','); pass the right sep=",
        "expected 3 (--sep ','); pass the right --sep",
    ),
    ("the declared scale=(1.0, 5.0)", "the declared --scale 1,5"),
    ("to_implicit(ratings, x); include_columns=x", "to_implicit(ratings, x); include_columns=x"),
]


@pytest.mark.parametrize(("python", "cli"), ADVICE)
def test_python_keywords_become_flags(python, cli):
    assert _cli_advice(python) == cli


def test_file_errors_advise_flags_that_exist(runner, frame, tmp_path):
    headed = tmp_path / "headed.csv"
    frame.rename(columns={"user": "uid", "item": "sku", "rating": "stars"}).to_csv(
        headed, index=False
    )
    text = run(runner, "evaluate", headed, ok=False).output
    assert "--no-header" in text and "--columns user=userId,item=movieId,rating=rating" in text
    assert "header=False" not in text and "columns=" not in text
    # ... and the flags it names work.
    args = ["--param", "n_epochs=2", "--seed", "0", "--json"]
    report = json.loads(
        run(runner, "evaluate", headed, "--columns", "user=uid,item=sku,rating=stars", *args).output
    )
    assert sum(f["n_test"] for f in report["folds"]) > 0
    text = run(runner, "evaluate", headed, "--no-header", "--columns",
               "user,item,rating,timestamp", *args, ok=False).output  # fmt: skip
    assert "line 1" in text  # the header line read as data: its rating is not a number
    twice = tmp_path / "twice.csv"
    pd.concat([frame, frame.iloc[:1]]).to_csv(twice, index=False)
    text = run(runner, "evaluate", twice, ok=False).output
    assert "--duplicates last or --duplicates mean" in text and "duplicates=" not in text
    run(runner, "evaluate", twice, "--duplicates", "last", *args)


# -- datasets: the release found ------------------------------------------------------------
def test_datasets_describes_the_release_found(runner, frame, tmp_path):
    folder = tmp_path / "data" / "ml-latest-small"
    folder.mkdir(parents=True)
    frame.rename(columns={"user": "userId", "item": "movieId"}).to_csv(
        folder / "ratings.csv", index=False
    )
    (folder / "README.txt").write_text(
        "Summary\n=======\n\nThis dataset (ml-latest-small) describes 5-star rating activity. "
        f"It contains {len(frame)} ratings and 3 tag applications across 40 movies. These "
        "data were created by 60 users between January 09, 1996 and\nMay 01, 2016. This "
        "dataset was generated on May 02, 2016.\n"
    )
    env = {"MFREC_DATA_DIR": str(tmp_path / "data")}
    rows = {r["name"]: r for r in json.loads(run(runner, "datasets", "--json", env=env).output)}
    row = rows["ml-latest-small"]
    assert row["release"] == {
        "generated": "May 02, 2016", "n_ratings": len(frame), "n_items": 40, "n_users": 60,
    }  # fmt: skip
    assert (
        f"generated May 02, 2016: {len(frame):,} ratings 0.5-5 by 60 users of 40 movies"
        in (row["description"])
    )
    assert "2018" not in row["description"]
    assert rows["ml-100k"]["path"] is None and "release" not in rows["ml-100k"]


@pytest.mark.realdata
def test_datasets_describes_the_shared_2015_copy(ml_latest_small_dir):
    result = CliRunner().invoke(
        main, ["datasets"], env={"MFREC_DATA_DIR": str(ml_latest_small_dir.parent)}
    )
    line = next(x for x in result.output.splitlines() if x.startswith("ml-latest-small"))
    assert "generated April 01, 2015: 100,023 ratings 0.5-5 by 706 users of 8,570 movies" in line


# -- models: aligned, with presets ----------------------------------------------------------
def test_models_are_aligned_and_list_their_presets(runner):
    from mfrec.models import MODELS
    from mfrec.models.presets import preset, preset_names

    lines = run(runner, "models").output.splitlines()
    header = lines[0]
    class_at, summary_at = header.index("class"), header.index("summary")
    rows = [line for line in lines if line.split(" ")[0] in MODELS]
    assert len(rows) == len(MODELS)
    for line in rows:
        name = line.split(" ")[0]
        assert line[class_at:].startswith(MODELS[name].__name__)
        assert line[summary_at - 1] == " " and line[summary_at] != " "
    presets_of = {}
    for line in lines:
        if line.split(" ")[0] in MODELS:
            current = line.split(" ")[0]
        elif "presets:" in line:
            presets_of[current] = line.split("presets:")[1].strip()
    for name in MODELS:
        assert presets_of[name] == (", ".join(preset_names(name)) or "none")
    assert "ml-100k" in presets_of["biased-mf"]
    rows = json.loads(run(runner, "models", "--json").output)
    biased = next(r for r in rows if r["name"] == "biased-mf")
    assert biased["presets"]["ml-100k"] == preset("biased-mf", "ml-100k")


# -- predict ----------------------------------------------------------------------------------
def test_predict_pairs_csv_and_json(runner, model_file, tmp_path):
    model = mfrec.load(model_file)
    expected = model.predict([3, 7, 3], [2, 2, 5], clip=True)
    result = run(runner, "predict", model_file, "--user", "3", "--item", "2", "--user", "7",
                 "--item", "2", "--user", "3", "--item", "5")  # fmt: skip
    out = pd.read_csv(pd.io.common.StringIO(result.stdout))
    assert list(out.columns) == ["user", "item", "rating", "known"]
    assert out.user.tolist() == [3, 7, 3] and out["item"].tolist() == [2, 2, 5]
    np.testing.assert_allclose(out.rating, expected, rtol=1e-5)
    assert out.known.all()
    # One user, several items; an unknown item follows the library's policy, with a note.
    result = run(runner, "predict", model_file, "--user", "3", "--item", "2", "--item", "999",
                 "--json")  # fmt: skip
    payload = json.loads(result.stdout)
    rows = payload["predictions"]
    assert [r["known"] for r in rows] == [True, False]
    with pytest.warns(UnknownIdWarning):
        fallback = model.predict(3, 999, clip=True)[0]
    assert rows[1]["rating"] == pytest.approx(fallback, rel=1e-6)
    assert "unseen in training" in payload["notes"][0]
    text = run(runner, "predict", model_file, "--user", "3", "--item", "999")
    assert "note: 1 of 1 pairs have ids unseen" in text.stderr
    # --no-clip gives the raw score that ranks recommendations.
    raw = json.loads(run(runner, "predict", model_file, "--user", "3", "--item", "2",
                         "--no-clip", "--json").output)  # fmt: skip
    assert raw["clipped"] is False
    assert raw["predictions"][0]["rating"] == pytest.approx(model.predict(3, 2)[0], rel=1e-6)
    # --pairs FILE, header named by the usual names, extra columns ignored.
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("movieId,userId,note\n2,3,x\n5,3,y\n")
    out = json.loads(run(runner, "predict", model_file, "--pairs", pairs, "--json").output)
    assert [(r["user"], r["item"]) for r in out["predictions"]] == [(3, 2), (3, 5)]
    np.testing.assert_allclose(
        [r["rating"] for r in out["predictions"]], expected[[0, 2]], rtol=1e-5
    )


def test_predict_usage_errors(runner, model_file, tmp_path):
    assert "--user ID --item ID" in run(runner, "predict", model_file, ok=False).output
    text = run(runner, "predict", model_file, "--user", "1", "--user", "2", "--item", "1",
               "--item", "2", "--item", "3", ok=False).output  # fmt: skip
    assert "2 --user and 3 --item" in text
    pairs = tmp_path / "p.csv"
    pairs.write_text("3,2\n")
    text = run(runner, "predict", model_file, "--pairs", pairs, "--user", "3", ok=False).output
    assert "not both" in text


# -- threads ---------------------------------------------------------------------------------
def test_every_command_takes_threads():
    for name, command in main.commands.items():
        assert "--threads" in [o for p in command.params for o in p.opts], name


def test_mfrec_threads_caps_the_default(monkeypatch):
    from mfrec._threads import available_threads, resolve_threads
    from mfrec.exceptions import ParameterError

    monkeypatch.setenv("MFREC_THREADS", "1")
    assert resolve_threads(None) == 1
    assert resolve_threads(2) == min(2, available_threads())  # an explicit n_threads wins
    monkeypatch.setenv("MFREC_THREADS", "1000")
    assert resolve_threads(None) == available_threads()
    for bad in ("0", "-2", "two", "1.5"):
        monkeypatch.setenv("MFREC_THREADS", bad)
        with pytest.raises(ParameterError, match="MFREC_THREADS must be a positive whole"):
            resolve_threads(None)
    monkeypatch.setenv("MFREC_THREADS", "")
    assert resolve_threads(None) == available_threads()


def test_threads_flag_sets_the_variable_for_the_command(runner, ratings_file, monkeypatch):
    import os

    import mfrec.evaluation.validate as validate

    seen = []
    real = validate.evaluate_fold

    def spy(*args, **kwargs):
        from mfrec._threads import resolve_threads

        seen.append((os.environ.get("MFREC_THREADS"), resolve_threads(None)))
        return real(*args, **kwargs)

    monkeypatch.setattr(validate, "evaluate_fold", spy)
    run(runner, "evaluate", ratings_file, "--param", "n_epochs=1", "--seed", "0", "--split",
        "kfold:2", "--threads", "1", "--json")  # fmt: skip
    assert seen == [("1", 1), ("1", 1)]
    assert "MFREC_THREADS" not in os.environ  # restored when the command ends
    text = run(runner, "models", env={"MFREC_THREADS": "many"}, ok=False).output
    assert "MFREC_THREADS must be a positive whole number of threads, got 'many'" in text


def test_implicit_model_scores_are_called_preference_scores(runner, ratings_file, tmp_path):
    path = tmp_path / "implicit.mfrec"
    run(runner, "train", ratings_file, "--model", "implicit-als", "--param", "n_epochs=2",
        "--param", "n_factors=3", "--seed", "0", "--out", path)  # fmt: skip
    text = run(runner, "recommend", path, "--user", "3", "-n", "3").output
    assert "note: scores are implicit-als preference scores (about 0 to 1, for ranking), not " in (
        text
    )
    recs = json.loads(run(runner, "recommend", path, "--user", "3", "-n", "3", "--json").output)
    assert all("rating" not in e for e in recs[0]["items"])
    out = run(runner, "predict", path, "--user", "3", "--item", "2").output
    assert out.splitlines()[0] == "user,item,score,known"
    payload = json.loads(
        run(runner, "predict", path, "--user", "3", "--item", "2", "--json").output
    )
    assert payload["clipped"] is False
    assert payload["predictions"][0]["score"] == pytest.approx(
        mfrec.load(path).predict(3, 2)[0], rel=1e-6
    )


def test_progress_inside_tune_and_train_fits(runner, ratings_file, monkeypatch, tmp_path):
    import mfrec.cli._common as common
    import mfrec.cli.evaluate as evaluate_module
    import mfrec.cli.train as train_module

    for module in (evaluate_module, train_module):
        monkeypatch.setattr(module, "_progress_enabled", lambda json_output: not json_output)
    monkeypatch.setattr(common, "_bar", _RecordingBar)
    monkeypatch.setattr(evaluate_module, "_bar", _RecordingBar)
    _RecordingBar.made.clear()
    # The fallback off: on this tiny file early stopping could keep epoch 0 (a refit of
    # no epoch), and the bar is to count the epochs the grid asks for.
    run(runner, "tune", ratings_file, "--param", "n_factors=2", "--grid", "n_epochs=2,3",
        "--param", "baseline_fallback=false", "--folds", "2", "--seed", "0")  # fmt: skip
    fits = next(bar for bar in _RecordingBar.made if bar.unit == "epoch")
    assert fits.enabled and fits.runs[:4] == [0, 2, 2, 3]  # reset before the first fit
    _RecordingBar.made.clear()
    # Every epoch of a plain fit (no early-stopping slice): the bar counts 4 of 4.
    run(runner, "train", ratings_file, "--param", "n_epochs=4", "--param", "validation_fraction=0",
        "--param", "patience=none",
        "--out", tmp_path / "m.mfrec")  # fmt: skip
    (fits,) = _RecordingBar.made
    assert (fits.unit, fits.total, fits.runs) == ("epoch", 4, [4])
