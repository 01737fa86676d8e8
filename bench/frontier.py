"""The accuracy frontier on ML-100K: mfrec's best models side by side, u1 and u1..u5.

    python bench/frontier.py                                  # full: u1..u5, 3 repeats
    python bench/frontier.py --folds u1 --repeats 1 --quick   # smoke run (short chains)
    python bench/frontier.py --no-surprise                    # without Surprise's SVD++

Rows, each at its ``ml-100k`` preset (:mod:`mfrec.models.presets`; tuned on training
data only -- u1.base for BayesianMF, see ``PRESET_SOURCES``) when the preset exists,
else at the fallback settings below (the table says which):

- ``bayes-mf`` -- BayesianMF with the SVD++-style implicit terms on both sides;
- ``bayes-mf (200 samples)`` -- the same with a quarter of the chain: the time/accuracy
  trade-off;
- ``bayes-mf (no implicit)`` -- plain BPMF with biases, same chain, to show what the
  implicit terms add;
- ``biased-mf``, ``svdpp``, ``als`` -- the SGD/ALS models, skipped with a note when not
  registered;
- Surprise's ``SVDpp`` at its defaults, fitted on the same folds in the same run;
- Surprise's ``SVDpp`` and ``SVD`` *tuned on u1.base*: the best of a grid searched by
  ``bench/surprise_search.py`` with the protocol of mfrec's own presets (3-fold CV of
  u1.base, the same folds); the settings are read from that search's JSON
  (``SURPRISE_TUNED``), so the claim "mfrec beats Surprise" is also graded against a
  Surprise given a tuning effort, not only against its defaults.

Every row's ``settings`` cell says where its settings came from. The targets of issue 4,
graded on the headline model named in ``HEADLINE`` before the run: u1.test RMSE <= 0.895
(published best 0.889), and the u1..u5 mean below Surprise's SVD++ -- graded twice,
against SVD++ at its defaults and against SVD++ tuned on u1.base.

Every model sees the same folds; predictions are clipped to 1..5. Each fold is fitted
``--repeats`` times per model with seeds shared between models: RMSE and MAE are means
over the repeats (one chain's luck is worth about +-0.001 RMSE), fit seconds medians.
mfrec models use every core (their default), Surprise one (all it can). Repeats are
interleaved: every model's first fit of a fold, then every model's second, so a burst
of load on this shared machine falls on all of them. The headline model (``HEADLINE``) is fixed here
before the run. Writes bench/results/frontier.json.
"""

from __future__ import annotations

import argparse
import json
import warnings

import numpy as np

from _common import (
    RESULTS,
    markdown_table,
    ml100k_folds,
    rmse_mae,
    surprise_data,
    timed,
    warm_up,
    write_result,
)
from mfrec.exceptions import ParameterError, UnknownIdWarning
from mfrec.models import MODELS

#: Settings used when a model has no ``ml-100k`` preset.
FALLBACK = {
    "bayes-mf": {"n_factors": 10, "n_samples": 800, "burn_in": 100, "implicit": "both"},
    # Surprise's settings and rule (plain SGD, every epoch), not mfrec's current defaults.
    "biased-mf": {
        "n_factors": 100,
        "n_epochs": 20,
        "lr": 0.005,
        "reg": 0.02,
        "init_std": 0.1,
        "optimizer": "sgd",
        "patience": None,
        "reg_row": 0.0,
        "reg_bias_row": 0.0,
        "rating_unit": 1.0,
    },
    "svdpp": {
        "n_factors": 20,
        "n_epochs": 20,
        "lr": 0.007,
        "reg": 0.02,
        "init_std": 0.1,
        "optimizer": "sgd",
        "patience": None,
        "reg_row": 0.0,
        "reg_bias_row": 0.0,
        "rating_unit": 1.0,
    },
    # Spark's settings and weighted-lambda penalty.
    "als": {"n_factors": 10, "n_epochs": 10, "reg": 0.1, "reg_row": 0.0, "reg_bias_row": 0.0},
}
#: The headline: the row graded against the targets, named before anything runs. It is
#: never picked from the results -- choosing the best of several rows by their test RMSE
#: would grade the test folds' own luck.
HEADLINE = "bayes-mf"
#: The published state of the art on u1.base/u1.test (GLocal-K, 2021), and issue 4's target.
PUBLISHED_BEST, TARGET = 0.889, 0.895
#: (label, model name, overrides on top of the preset/fallback).
ROWS = [
    ("bayes-mf", "bayes-mf", {}),
    ("bayes-mf (200 samples)", "bayes-mf", {"n_samples": 200}),
    ("bayes-mf (no implicit)", "bayes-mf", {"implicit": "none"}),
    ("biased-mf", "biased-mf", {}),
    ("svdpp", "svdpp", {}),
    ("als", "als", {}),
]
#: --quick: short chains and few epochs, to prove the script works end to end.
QUICK = {"bayes-mf": {"n_samples": 20, "burn_in": 10}}
SURPRISE_SVDPP = {"n_factors": 20, "n_epochs": 20, "lr_all": 0.007, "reg_all": 0.02}
#: label -> (Surprise algorithm, the search round whose best settings the row uses). The
#: rounds were searched on u1.base only (``bench/surprise_search.py``; commands in each
#: JSON's ``command``), two small grids each: r1 lr_all x reg_all (SVD++ at 20 factors,
#: SVD at 100, both 30 epochs); r1's best sat on the grid's edge, so r2 extended the
#: grid beyond it, r1's best included (and still best).
SURPRISE_TUNED = {
    "Surprise SVD++ (tuned on u1.base)": (
        "surprise-svdpp",
        RESULTS / "searches" / "surprise_svdpp_ml-100k_r2.json",
    ),
    "Surprise SVD (tuned on u1.base)": (
        "surprise-svd",
        RESULTS / "searches" / "surprise_svd_ml-100k_r2.json",
    ),
}
SURPRISE_DEFAULTS_LABEL = "Surprise SVD++ (defaults)"
SURPRISE_TUNED_SVDPP_LABEL = "Surprise SVD++ (tuned on u1.base)"


def surprise_tuned(path) -> tuple[dict, str]:
    """The best settings of a recorded Surprise search round, and a label saying so."""
    record = json.loads(path.read_text())
    best = record["best"]
    source = (
        f"tuned on u1.base: the best of the {len(record['trials'])} settings of {path.name} "
        f"({record['folds']}-fold CV RMSE {best['mean_rmse']:.4f}): {_describe(best['params'])}"
    )
    return dict(best["params"]), source


def settings_for(model: str) -> tuple[dict, str]:
    """The model's ml-100k preset (and 'preset'), else its fallback (and 'fallback')."""
    try:
        from mfrec.models.presets import preset

        return preset(model, "ml-100k"), "mfrec preset ml-100k (tuned on u1.base)"
    except (ImportError, ParameterError):
        return dict(FALLBACK[model]), "no preset: fallback (" + _describe(FALLBACK[model]) + ")"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folds", default="u1,u2,u3,u4,u5", help="comma-separated folds")
    parser.add_argument("--repeats", type=int, default=3, help="fits per fold and model")
    parser.add_argument("--quick", action="store_true", help="short chains (smoke run)")
    parser.add_argument("--no-surprise", action="store_true", help="skip Surprise's SVDpp")
    args = parser.parse_args()

    _, folds = ml100k_folds(tuple(args.folds.split(",")))
    configs, notes = [], []
    for label, model, overrides in ROWS:
        if model not in MODELS:
            notes.append(f"{label}: model {model!r} is not registered in this build; skipped.")
            continue
        params, source = settings_for(model)
        params.update(overrides)
        if overrides:
            source += ", changed: " + _describe(overrides)
        if args.quick:
            params.update(QUICK.get(model, {}))
        configs.append({"label": label, "model": model, "params": params, "source": source})
    if not args.no_surprise:
        configs.append(
            {"label": SURPRISE_DEFAULTS_LABEL, "model": "surprise-svdpp",
             "params": SURPRISE_SVDPP, "source": "Surprise's defaults, untuned"}
        )  # fmt: skip
        for label, (model, path) in SURPRISE_TUNED.items():
            params, source = surprise_tuned(path)
            configs.append({"label": label, "model": model, "params": params, "source": source})

    compile_seconds = {
        c["label"]: warm_up(lambda c=c: MODELS[c["model"]](**_tiny(c)))
        for c in configs
        if c["model"] in MODELS
    }
    results = {c["label"]: {} for c in configs}
    for k, fold in enumerate(folds):
        trainset = testset = None
        if not args.no_surprise:
            trainset, testset = surprise_data(fold)
        seconds = {c["label"]: [] for c in configs}
        errors = {c["label"]: [] for c in configs}
        for rep in range(args.repeats):
            seed = 100 * k + rep
            for c in configs:
                fit_s, err = _fit_and_score(c, fold, seed, trainset, testset)
                seconds[c["label"]].append(fit_s)
                errors[c["label"]].append(err)
        for c in configs:
            errs, secs = errors[c["label"]], seconds[c["label"]]
            rmse, mae = np.mean(errs, axis=0)
            results[c["label"]][fold.name] = {
                "rmse": float(rmse),
                "mae": float(mae),
                "fit_s": float(np.median(secs)),
                "rmse_runs": [float(e[0]) for e in errs],
            }
            print(
                f"{fold.name} {c['label']:<24} RMSE {rmse:.4f} MAE {mae:.4f} "
                f"fit {np.median(secs):.2f}s",
                flush=True,
            )

    names = [f.name for f in folds]
    table_rows, summary_rows = [], []
    for c in configs:
        per_fold = results[c["label"]]
        mean = {
            key: float(np.mean([per_fold[n][key] for n in names]))
            for key in per_fold[names[0]]
            if key != "rmse_runs"
        }
        summary_rows.append({**c, "mean": mean, "folds": per_fold})
        table_rows.append(
            [c["label"]]
            + [per_fold[n]["rmse"] for n in names]
            + ([mean["rmse"], mean["mae"]] if len(names) > 1 else [per_fold[names[0]]["mae"]])
            + [f"{mean['fit_s']:.2f}", c["source"]]
        )
    headers = (
        ["model"]
        + [f"{n} RMSE" for n in names]
        + (["mean RMSE", "mean MAE"] if len(names) > 1 else ["MAE"])
        + ["fit s (mean over folds)", "settings"]
    )
    table = markdown_table(headers, table_rows)
    best = next(r for r in summary_rows if r["label"] == HEADLINE)
    lines = [
        f"Headline model, named before the run: {best['label']} "
        f"({_describe(best['params'])}, {best['source']}).",
        f"{args.repeats} seeded fit(s) per fold and model (RMSE/MAE mean, seconds median); "
        "repeats interleaved across models; predictions clipped to 1..5; mfrec models at "
        "their default thread count, Surprise on one core. numba "
        "compile/load before the first fit is excluded ("
        + ", ".join(f"{k}: {v:.1f}s" for k, v in compile_seconds.items())
        + ").",
    ]
    if "u1" in names:
        u1 = best["folds"]["u1"]["rmse"]
        lines.append(
            f"Target u1.test RMSE <= {TARGET} (stretch: the published best, "
            f"{PUBLISHED_BEST}, GLocal-K 2021): {u1:.4f} -- "
            + ("stretch met" if u1 <= PUBLISHED_BEST else "met" if u1 <= TARGET else "not met")
            + "."
        )
    if not args.no_surprise:
        # Graded on the folds run (the target is stated on u1..u5; a shorter run says so).
        span = "u1..u5 mean" if len(names) == 5 else "/".join(names) + (" mean" * (len(names) > 1))
        ours = best["mean"]["rmse"]
        for label, what in (
            (SURPRISE_DEFAULTS_LABEL, "Surprise SVD++ at its defaults, not tuned"),
            (SURPRISE_TUNED_SVDPP_LABEL, "Surprise SVD++ tuned on u1.base"),
        ):
            peer = next(r for r in summary_rows if r["label"] == label)["mean"]["rmse"]
            lines.append(
                f"{span}: {ours:.4f} ({best['label']}, {best['source']}) vs {what}, "
                f"{peer:.4f} -- " + ("lower" if ours < peer else "not lower") + "."
            )
    if args.quick:
        lines.append("QUICK RUN: short chains, not representative.")
    lines += notes
    summary = " ".join(lines)
    print(table)
    print(summary)
    write_result(
        "frontier",
        {
            "markdown": table + "\n\n" + summary,
            "repeats": args.repeats,
            "quick": args.quick,
            "configs": summary_rows,
            "compile_seconds": compile_seconds,
            "notes": notes,
        },
    )


def _fit_and_score(config, fold, seed, trainset, testset):
    if config["model"].startswith("surprise-"):
        import surprise

        cls = {"surprise-svdpp": surprise.SVDpp, "surprise-svd": surprise.SVD}[config["model"]]
        algo = cls(**config["params"], random_state=seed)
        _, seconds = timed(lambda: algo.fit(trainset))
        predictions = algo.test(testset)
        truth = np.array([p.r_ui for p in predictions])
        return seconds, rmse_mae(truth, np.array([p.est for p in predictions]))
    model = MODELS[config["model"]](**config["params"], random_state=seed)
    _, seconds = timed(lambda: model.fit(fold.train))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnknownIdWarning)
        predicted = model.predict_ratings(fold.test, clip=True)
    return seconds, rmse_mae(fold.test.rating, predicted)


def _tiny(config) -> dict:
    """The config's settings shrunk for the numba warm-up fit."""
    params = dict(config["params"])
    for key, value in (("n_epochs", 1), ("n_samples", 2), ("burn_in", 1), ("n_factors", 4)):
        if key in params or key in MODELS[config["model"]]._param_names():
            params[key] = value
    return params


def _describe(params: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items())


if __name__ == "__main__":
    main()
