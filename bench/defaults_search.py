"""One round of the search for mfrec's defaults, on training data only.

    python bench/defaults_search.py ROUND --model biased-mf \
        --param optimizer=adagrad --grid 'lr=0.03,0.05,0.1;reg=0.05,0.1' --epochs 40

Every configuration of the grid is fitted on the *search panel* and its validation RMSE
recorded after every epoch (so one fit of ``--epochs`` epochs scores every shorter
``n_epochs`` too). The search panel holds training parts only, split again:

- ML-100K ``u1.base``, 20% held out (seed 0);
- ml-latest-small, the training part of fold 0 of the bench's 5-fold split (seed 0),
  20% held out (seed 0);
- three planted synthetic sets (:mod:`mfrec.data.synthetic`) drawn with seeds the
  evaluation panel (``bench/defaults.py``) does not use, 20% held out.

No test fold of the evaluation panel is looked at. (u1.base and fold 0's training part
hold the test ratings of the other folds: their fold-1 figures are clean, the others
slightly optimistic; the synthetic sets are clean.) Scores are RMSE divided by the bias
baseline's RMSE on the same split, so data sets on different scales weigh alike; the
round writes ``bench/results/searches/defaults_search_<ROUND>.json`` with every curve, and prints
the configurations ranked by their mean ratio (worst ratio beside it).
"""

from __future__ import annotations

import argparse
import itertools
import os
import warnings
from typing import Any

import numpy as np

from _common import RESULTS, write_result

#: Synthetic sets of the search panel (never the evaluation panel's seeds).
SEARCH_SYNTHETIC: dict[str, dict[str, Any]] = {
    "syn-halfstar-50k": {
        "n_users": 2000, "n_items": 800, "n_ratings": 50_000, "n_factors": 5,
        "noise_std": 0.5, "scale": (0.5, 5), "round_to": 0.5, "random_state": 1001,
    },
    "syn-sparse-30k": {
        "n_users": 6000, "n_items": 3000, "n_ratings": 30_000, "n_factors": 10,
        "noise_std": 0.8, "scale": (1, 5), "round_to": 1.0, "popularity_exponent": 1.5,
        "random_state": 1002,
    },
    "syn-dense-1to10": {
        "n_users": 400, "n_items": 300, "n_ratings": 12_000, "n_factors": 3,
        "noise_std": 1.0, "global_mean": 6.0, "user_bias_std": 0.8, "item_bias_std": 0.8,
        "scale": (1, 10), "round_to": 1.0, "random_state": 1003,
    },
}  # fmt: skip

#: Extra very sparse sets (3-10 ratings per user, density 0.06-0.2%, popularity skew) to
#: check a sparse-data remedy beyond the one sparse set of the search panel; seeds 3000+
#: (neither the search panel's nor the evaluation panel's).
SPARSE_SYNTHETIC: dict[str, dict[str, Any]] = {
    "sp-3pu-30k": {
        "n_users": 10_000, "n_items": 5000, "n_ratings": 30_000, "n_factors": 8,
        "noise_std": 0.7, "scale": (1, 5), "round_to": 1.0, "popularity_exponent": 1.5,
        "random_state": 3001,
    },
    "sp-10pu-80k-halfstar": {
        "n_users": 8000, "n_items": 6000, "n_ratings": 80_000, "n_factors": 10,
        "noise_std": 0.8, "scale": (0.5, 5), "round_to": 0.5, "popularity_exponent": 1.2,
        "random_state": 3002,
    },
    "sp-7pu-35k-1to10": {
        "n_users": 5000, "n_items": 5000, "n_ratings": 35_000, "n_factors": 5,
        "noise_std": 1.0, "global_mean": 6.0, "user_bias_std": 0.8, "item_bias_std": 0.8,
        "scale": (1, 10), "round_to": 1.0, "popularity_exponent": 2.0, "random_state": 3003,
    },
}  # fmt: skip


def sparse_panel() -> dict[str, Any]:
    """name -> Fold (train, validation) of the extra sparse sets, 20% held out."""
    from mfrec.data.split import holdout
    from mfrec.data.synthetic import make_ratings

    return {
        name: holdout(make_ratings(**spec).ratings, 0.2, random_state=0)
        for name, spec in SPARSE_SYNTHETIC.items()
    }


def search_panel() -> dict[str, Any]:
    """name -> Fold (train, validation) of the search panel."""
    import mfrec
    from mfrec.data.split import holdout, kfold, ml100k_official
    from mfrec.data.synthetic import make_ratings

    panel = {}
    ml100k = mfrec.load_dataset("ml-100k", download=False)
    panel["ml-100k u1.base"] = holdout(ml100k_official(ml100k, "u1").train, 0.2, random_state=0)
    small = mfrec.load_dataset("ml-latest-small", download=False)
    panel["ml-latest-small fold0 train"] = holdout(
        kfold(small, 5, random_state=0)[0].train, 0.2, random_state=0
    )
    for name, spec in SEARCH_SYNTHETIC.items():
        data = make_ratings(**spec).ratings
        panel[name] = holdout(data, 0.2, random_state=0)
    return panel


def _guess(text: str) -> Any:
    """'3' -> 3, '0.1' -> 0.1, 'None' -> None, 'True' / 'False' -> booleans, anything
    else stays a string."""
    if text == "None":
        return None
    if text in ("True", "False"):
        return text == "True"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_grid(text: str) -> list[dict[str, Any]]:
    axes = []
    for part in filter(None, (p.strip() for p in text.split(";"))):
        name, values = part.split("=", 1)
        axes.append([(name.strip(), _guess(v.strip())) for v in values.split(",")])
    return [dict(combo) for combo in itertools.product(*axes)]


def curve(model_name: str, params: dict[str, Any], fold, seed: int) -> list[float]:
    from mfrec.exceptions import UnknownIdWarning
    from mfrec.models import get_model_class

    cls = get_model_class(model_name)
    names = cls._param_names()
    # Whole curves: no early stopping (the curve shows where it would stop).
    full = {k: v for k, v in (("patience", None), ("validation_fraction", 0.0)) if k in names}
    seeded = {"random_state": seed} if "random_state" in names else {}
    model = cls(**{**full, **params}, **seeded)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnknownIdWarning)
        model.fit(fold.train, validation=fold.test)
        if getattr(model, "history_", None) and "val_rmse" in model.history_[0]:
            return [float(r["val_rmse"]) for r in model.history_]
        predicted = model.predict_ratings(fold.test)
    truth = fold.test.rating.astype(np.float64)
    return [float(np.sqrt(np.mean((np.asarray(predicted, np.float64) - truth) ** 2)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("round")
    parser.add_argument("--model", required=True)
    parser.add_argument("--param", action="append", default=[], help="NAME=VALUE, fixed")
    parser.add_argument("--grid", default="", help="'a=1,2;b=x,y'")
    parser.add_argument("--epochs", type=int, default=None, help="n_epochs of each fit")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--panel",
        choices=("search", "sparse", "both"),
        default="search",
        help="the search panel, the extra sparse sets (SPARSE_SYNTHETIC), or both",
    )
    args = parser.parse_args()

    fixed = {}
    for item in args.param:
        name, value = item.split("=", 1)
        fixed[name] = _guess(value)
    if args.epochs is not None:
        fixed["n_epochs"] = args.epochs
    panel = {}
    if args.panel in ("search", "both"):
        panel.update(search_panel())
    if args.panel in ("sparse", "both"):
        panel.update(sparse_panel())
    baseline = {name: curve("bias", {}, fold, 0)[-1] for name, fold in panel.items()}
    runs = []
    for config in parse_grid(args.grid) or [{}]:
        params = {**fixed, **config}
        curves = {name: curve(args.model, params, fold, args.seed) for name, fold in panel.items()}
        n = min(len(c) for c in curves.values())
        ratios = np.array([[c[e] / baseline[name] for e in range(n)] for name, c in curves.items()])
        mean, worst = ratios.mean(axis=0), ratios.max(axis=0)
        best = int(np.argmin(mean))
        runs.append({
            "params": params, "curves": curves, "mean_ratio": mean.tolist(),
            "worst_ratio": worst.tolist(), "best_epoch": best + 1,
            "best_mean_ratio": float(mean[best]), "worst_at_best": float(worst[best]),
            "final_mean_ratio": float(mean[-1]),
        })  # fmt: skip
        print(
            f"{params}: best epoch {best + 1} mean {mean[best]:.4f} worst {worst[best]:.4f}; "
            f"final mean {mean[-1]:.4f}",
            flush=True,
        )
    runs.sort(key=lambda r: r["best_mean_ratio"])
    path = write_result(
        f"defaults_search_{args.round}",
        {
            "model": args.model,
            "fixed": fixed,
            "grid": args.grid,
            "panel": list(panel),
            "bias_baseline_rmse": baseline,
            "load_average": os.getloadavg(),
            "runs": runs,
        },
        folder=RESULTS / "searches",
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
