"""Early stopping without validation data: refit on everything, or keep the stopped model?

    python bench/early_stopping.py [--models biased-mf,svdpp,funk-svd] [--seeds 2]
        [--param NAME=VALUE ...] [--panel search|sparse|both] [--out NAME]

On the search panel of ``bench/defaults_search.py`` (training data only, each set split
80/20), each model at its defaults is fitted on the 80% part in two ways:

- ``refit`` (what ``fit`` does): hold out a seeded 5% slice, find the best epoch count
  with ``patience``, refit on the whole 80% for that many epochs;
- ``keep``: the model trained on the 95% with early stopping on the slice, as stopped;
- ``plain`` (with ``--plain``): no early stopping, all ``n_epochs`` on the 80% -- what a
  model without early stopping by default gives.

Both are scored on the 20% (RMSE), and divided by the bias baseline's RMSE on the same
split (``*_ratio``). ``--param`` sets a parameter away from its default for every model
(to compare candidate defaults as users would get them); ``--panel sparse`` adds or
uses the extra sparse sets of ``defaults_search.SPARSE_SYNTHETIC``. Writes
``bench/results/searches/<--out, default early_stopping>.json``.
"""

from __future__ import annotations

import argparse
import os
import warnings

import numpy as np

from _common import RESULTS, rmse_mae, timed, write_result
from defaults_search import _guess, curve, search_panel, sparse_panel


def main() -> None:
    from mfrec._random import check_random_state
    from mfrec.data.split import holdout
    from mfrec.exceptions import UnknownIdWarning
    from mfrec.models import get_model_class

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="biased-mf,svdpp,funk-svd")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--param", action="append", default=[], help="NAME=VALUE, fixed")
    parser.add_argument("--panel", choices=("search", "sparse", "both"), default="search")
    parser.add_argument("--out", default="early_stopping", help="result file name")
    parser.add_argument("--plain", action="store_true", help="also fit without early stopping")
    args = parser.parse_args()
    fixed = {}
    for item in args.param:
        key, value = item.split("=", 1)
        fixed[key] = _guess(value)
    load_before = os.getloadavg()
    panel = {}
    if args.panel in ("search", "both"):
        panel.update(search_panel())
    if args.panel in ("sparse", "both"):
        panel.update(sparse_panel())
    baseline = {set_name: curve("bias", {}, fold, 0)[-1] for set_name, fold in panel.items()}
    rows = []
    for name in args.models.split(","):
        cls = get_model_class(name)
        params = {k: v for k, v in fixed.items() if k in cls._param_names()}
        for set_name, fold in panel.items():
            for seed in range(args.seeds):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UnknownIdWarning)
                    refit, refit_s = timed(
                        lambda: cls(**params, random_state=seed).fit(fold.train)  # noqa: B023
                    )
                    # The same slice fit() holds out (same seed, same draw).
                    part = holdout(
                        fold.train.compact(), refit.validation_fraction,
                        random_state=check_random_state(seed),
                    )  # fmt: skip
                    keep = cls(**{**params, "validation_fraction": 0.0}, random_state=seed)
                    _, keep_s = timed(lambda: keep.fit(part.train, validation=part.test))  # noqa: B023
                    fitted = [("refit", refit), ("keep", keep)]
                    if args.plain:
                        plain = cls(**{**params, "patience": None}, random_state=seed)
                        fitted.append(("plain", plain.fit(fold.train)))
                    truth = fold.test.rating
                    scores = {
                        label: rmse_mae(truth, m.predict_ratings(fold.test, clip=True))[0]
                        for label, m in fitted
                    }
                rows.append({
                    "model": name, "set": set_name, "seed": seed, "refit_rmse": scores["refit"],
                    "keep_rmse": scores["keep"],
                    **{
                        f"{label}_ratio": score / baseline[set_name]
                        for label, score in scores.items()
                    },
                    **({"plain_rmse": scores["plain"]} if args.plain else {}),
                    "best_epoch_refit": refit.best_epoch_,
                    "best_epoch_keep": keep.best_epoch_, "refit_s": refit_s, "keep_s": keep_s,
                })  # fmt: skip
                print(rows[-1], flush=True)
    summary = {}
    for name in args.models.split(","):
        mine = [r for r in rows if r["model"] == name]
        diff = [r["refit_rmse"] - r["keep_rmse"] for r in mine]
        # Per set, the mean over seeds of the ratio to the bias baseline.
        modes = ("refit", "keep", "plain") if args.plain else ("refit", "keep")
        per_set = {
            mode: {
                s: float(np.mean([r[f"{mode}_ratio"] for r in mine if r["set"] == s]))
                for s in panel
            }
            for mode in modes
        }
        summary[name] = {
            "mean_refit_minus_keep": float(np.mean(diff)),
            "refit_better": int(sum(d < 0 for d in diff)),
            "runs": len(diff),
            **{
                f"{mode}_ratio_{stat}": float(fn(list(per_set[mode].values())))
                for mode in modes
                for stat, fn in (("mean", np.mean), ("worst", np.max))
            },
            **{f"{mode}_ratio_per_set": per_set[mode] for mode in modes},
        }
        print(name, summary[name])
    write_result(
        args.out,
        {"params": fixed, "panel": list(panel), "bias_baseline_rmse": baseline, "rows": rows,
         "summary": summary, "load_average_before": load_before,
         "load_average_after": os.getloadavg()},
        folder=RESULTS / "searches",
    )  # fmt: skip


if __name__ == "__main__":
    main()
