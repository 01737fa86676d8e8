"""Early stopping without validation data: refit on everything, or keep the stopped model?

    python bench/early_stopping.py [--models biased-mf,svdpp,funk-svd] [--seeds 2]

On the search panel of ``bench/defaults_search.py`` (training data only, each set split
80/20), each model at its defaults is fitted on the 80% part in two ways:

- ``refit`` (what ``fit`` does): hold out a seeded 5% slice, find the best epoch count
  with ``patience``, refit on the whole 80% for that many epochs;
- ``keep``: the model trained on the 95% with early stopping on the slice, as stopped.

Both are scored on the 20% (RMSE). Writes ``bench/results/searches/early_stopping.json``.
"""

from __future__ import annotations

import argparse
import os
import warnings

import numpy as np

from _common import RESULTS, rmse_mae, timed, write_result
from defaults_search import search_panel


def main() -> None:
    from mfrec._random import check_random_state
    from mfrec.data.split import holdout
    from mfrec.exceptions import UnknownIdWarning
    from mfrec.models import get_model_class

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="biased-mf,svdpp,funk-svd")
    parser.add_argument("--seeds", type=int, default=2)
    args = parser.parse_args()
    load_before = os.getloadavg()
    panel = search_panel()
    rows = []
    for name in args.models.split(","):
        cls = get_model_class(name)
        for set_name, fold in panel.items():
            for seed in range(args.seeds):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UnknownIdWarning)
                    refit, refit_s = timed(lambda: cls(random_state=seed).fit(fold.train))  # noqa: B023
                    # The same slice fit() holds out (same seed, same draw).
                    part = holdout(
                        fold.train.compact(), refit.validation_fraction,
                        random_state=check_random_state(seed),
                    )  # fmt: skip
                    keep = cls(random_state=seed, validation_fraction=0.0)
                    _, keep_s = timed(lambda: keep.fit(part.train, validation=part.test))  # noqa: B023
                    truth = fold.test.rating
                    scores = {
                        label: rmse_mae(truth, m.predict_ratings(fold.test, clip=True))[0]
                        for label, m in (("refit", refit), ("keep", keep))
                    }
                rows.append({
                    "model": name, "set": set_name, "seed": seed, "refit_rmse": scores["refit"],
                    "keep_rmse": scores["keep"], "best_epoch_refit": refit.best_epoch_,
                    "best_epoch_keep": keep.best_epoch_, "refit_s": refit_s, "keep_s": keep_s,
                })  # fmt: skip
                print(rows[-1], flush=True)
    summary = {}
    for name in args.models.split(","):
        mine = [r for r in rows if r["model"] == name]
        diff = [r["refit_rmse"] - r["keep_rmse"] for r in mine]
        summary[name] = {
            "mean_refit_minus_keep": float(np.mean(diff)),
            "refit_better": int(sum(d < 0 for d in diff)),
            "runs": len(diff),
        }
        print(name, summary[name])
    write_result(
        "early_stopping",
        {"rows": rows, "summary": summary, "load_average_before": load_before,
         "load_average_after": os.getloadavg()},
        folder=RESULTS / "searches",
    )  # fmt: skip


if __name__ == "__main__":
    main()
