"""``baseline_fallback`` on the search panel (training data only): each set's training
part split 80/20 as in ``defaults_search.py`` (search + sparse panels), biased-mf and
svdpp at their defaults with the fallback on and off, RMSE on the 20% part as a ratio to
the bias baseline's. Early stopping runs as at the defaults (a 5% slice of the 80%).

    python bench/epoch_zero.py     # from bench/: results/searches/epoch_zero.json

docs/defaults.md (round r13) quotes it.
"""

from __future__ import annotations

import warnings

import numpy as np

from _common import RESULTS, write_result
from defaults_search import search_panel, sparse_panel


def _rmse(model, fold) -> float:
    from mfrec.exceptions import UnknownIdWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnknownIdWarning)
        predicted = model.predict_ratings(fold.test, clip=True)
    return float(np.sqrt(np.mean((predicted - fold.test.rating) ** 2)))


def main() -> None:
    from mfrec.models import BiasBaseline, BiasedMF, SVDpp

    panel = {**search_panel(), **sparse_panel()}
    bias = {name: _rmse(BiasBaseline().fit(fold.train), fold) for name, fold in panel.items()}
    results: dict[str, dict[str, dict[str, float]]] = {}
    for cls in (BiasedMF, SVDpp):
        for fallback in (False, True):
            row = f"{cls.name} fallback={fallback}"
            results[row] = {}
            for name, fold in panel.items():
                model = cls(random_state=0, baseline_fallback=fallback).fit(fold.train)
                rmse = _rmse(model, fold)
                results[row][name] = {
                    "rmse": rmse, "ratio": rmse / bias[name], "best_epoch": model.best_epoch_,
                }  # fmt: skip
                print(f"{row:28s} {name:28s} {rmse:.4f} (bias {bias[name]:.4f}, "
                      f"best epoch {model.best_epoch_})", flush=True)  # fmt: skip
            ratios = [r["ratio"] for r in results[row].values()]
            print(f"{row:28s} mean ratio {np.mean(ratios):.5f}, worst {np.max(ratios):.5f}")
    path = write_result(
        "epoch_zero",
        {"command": "python epoch_zero.py", "bias": bias, "results": results},
        folder=RESULTS / "searches",
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
