"""Every model on ML-100K (official u1..u5) and ml-latest-small (5-fold, seed 0).

    python bench/models.py            # the full table: bench/results/models.json
    python bench/models.py --quick    # smoke run, one fold per dataset: models_quick.json
    python bench/models.py --only nmf --only svd   # a few models, printed, not written

``CANDIDATES`` is the list of (CLI name, hyperparameters) evaluated; append a model to
it to give it a row. For each dataset and candidate: RMSE and MAE of the predictions
clipped to the rating scale (mean over folds and repeats), and fit seconds (median over
the repeats of a fold, then mean over folds). Each fit gets seed 100 x fold + repeat.
Before a candidate's first timed fit, one untimed fit of a single epoch on the first
fold compiles (or loads) its numba kernels; those seconds are reported apart.
"""

from __future__ import annotations

import argparse
import warnings
from typing import Any

import numpy as np

from _common import kfold_folds, markdown_table, ml100k_folds, rmse_mae, timed, write_result

#: (CLI name, hyperparameters): one row each. Keep it a plain list; append yours.
CANDIDATES: list[tuple[str, dict[str, Any]]] = [
    ("biased-mf", {}),
    ("funk-svd", {}),
    ("bias", {}),
    ("global-mean", {}),
    ("svd", {"n_factors": 20, "impute": "bias"}),
    ("nmf", {}),
    ("nmf", {"biased": False, "reg": 0.06, "init_high": 1.0}),  # Surprise's model
    ("gd-mf", {}),
    ("adam-mf", {}),
    ("svdpp", {}),
    ("als", {}),
    ("als", {"biased": False}),
    ("bayes-mf", {}),
]
REPEATS = 3
DATASETS = ("ml-100k", "ml-latest-small")


def label(name: str, params: dict[str, Any]) -> str:
    if not params:
        return name
    return name + " (" + ", ".join(f"{k}={v}" for k, v in params.items()) + ")"


def load_folds(dataset: str, quick: bool) -> list:
    if dataset == "ml-100k":
        _, folds = ml100k_folds(("u1",) if quick else ("u1", "u2", "u3", "u4", "u5"))
    else:
        _, folds = kfold_folds(dataset, k=5, seed=0)
    return folds[:1] if quick else folds


def evaluate(name: str, params: dict[str, Any], folds: list, repeats: int) -> dict[str, Any]:
    from mfrec.exceptions import UnknownIdWarning
    from mfrec.models import get_model_class

    cls = get_model_class(name)
    seeded = "random_state" in cls._param_names()

    def make(seed: int, **overrides: Any):
        kwargs = {**params, **overrides}
        if seeded:
            kwargs.setdefault("random_state", seed)
        return cls(**kwargs)

    def predict(model, fold) -> np.ndarray:
        with warnings.catch_warnings():  # test ids unseen in training: the documented policy
            warnings.simplefilter("ignore", UnknownIdWarning)
            return model.predict_ratings(fold.test, clip=True)

    # The cheapest fit that still runs every kernel: one epoch, or a two-sweep chain.
    cheap = {"n_epochs": 1, "n_samples": 2, "burn_in": 1}
    warm = {k: v for k, v in cheap.items() if k in cls._param_names()}
    compile_s = timed(lambda: predict(make(0, **warm).fit(folds[0].train), folds[0]))[1]
    per_fold = []
    for k, fold in enumerate(folds):
        errors, seconds = [], []
        for rep in range(repeats):
            model = make(100 * k + rep)
            seconds.append(timed(lambda: model.fit(fold.train))[1])  # noqa: B023 (called at once)
            errors.append(rmse_mae(fold.test.rating, predict(model, fold)))
        rmse, mae = np.mean(errors, axis=0)
        per_fold.append(
            {"fold": fold.name, "rmse": rmse, "mae": mae, "fit_s": float(np.median(seconds))}
        )
    return {
        "rmse": float(np.mean([f["rmse"] for f in per_fold])),
        "mae": float(np.mean([f["mae"] for f in per_fold])),
        "fit_s": float(np.mean([f["fit_s"] for f in per_fold])),
        "compile_s": compile_s,
        "folds": per_fold,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one fold per dataset, 1 repeat")
    parser.add_argument("--repeats", type=int, default=None, help=f"fits per fold ({REPEATS})")
    parser.add_argument(
        "--only", action="append", default=[], metavar="NAME", help="only these CLI names"
    )
    args = parser.parse_args()
    repeats = args.repeats or (1 if args.quick else REPEATS)
    candidates = [c for c in CANDIDATES if not args.only or c[0] in args.only]
    results: dict[str, list[dict[str, Any]]] = {}
    for dataset in DATASETS:
        folds = load_folds(dataset, args.quick)
        results[dataset] = []
        for name, params in candidates:
            row = evaluate(name, params, folds, repeats)
            row.update(model=name, params=params, label=label(name, params))
            results[dataset].append(row)
            print(
                f"{dataset:<16} {row['label']:<50} RMSE {row['rmse']:.4f}  MAE {row['mae']:.4f}"
                f"  fit {row['fit_s']:.3f}s  (compile {row['compile_s']:.2f}s)",
                flush=True,
            )
    headers = ["model"]
    for dataset in DATASETS:
        headers += [f"{dataset} RMSE", "MAE", "fit s"]
    table_rows = []
    for j, (name, params) in enumerate(candidates):
        cells: list[Any] = [label(name, params)]
        for dataset in DATASETS:
            r = results[dataset][j]
            cells += [r["rmse"], r["mae"], r["fit_s"]]
        table_rows.append(cells)
    table = markdown_table(headers, table_rows)
    folds_note = (
        "ML-100K u1 and ml-latest-small fold 1 of 5 only, 1 fit each (--quick)"
        if args.quick
        else f"ML-100K u1..u5 and ml-latest-small 5-fold (seed 0), {repeats} fits per fold"
    )
    summary = (
        f"{folds_note}. RMSE/MAE of predictions clipped to the rating scale, mean over folds "
        "and fits; fit seconds: median per fold, mean over folds (numba compilation "
        "excluded). Each model at its defaults of the measured commit unless the row "
        "states other settings (how each default was chosen: docs/evaluation.md); "
        "repeats run one model after another, not interleaved; every model at its default "
        "thread count."
    )
    print(table)
    if args.only:
        return
    write_result(
        "models_quick" if args.quick else "models",
        {
            "markdown": table + "\n\n" + summary,
            "repeats": repeats,
            "quick": args.quick,
            "results": results,
        },
    )


if __name__ == "__main__":
    main()
