"""Where FunkSVD's 20-epoch gap to LIBMF comes from: its start, one setting at a time.

    python bench/funk_start.py               # ML-100K u1..u5, one seed per fold
    python bench/funk_start.py --seeds 3

``bench/libmf.py``'s settings (100 factors, 20 epochs, 2 threads, no early stopping),
FunkSVD only, each row one change from the defaults towards LIBMF's choices: the rating
unit (LIBMF trains on ratings divided by their standard deviation, with lambda divided
by it too), eta and lambda 0.1, LIBMF's start (uniform [0, 1) / sqrt(k): centre 0.05,
spread 0.029) and the small start of FunkSVD's ``init_product``. Training is invariant
under rotations of the factor space, so a start is its centre length and spread only.
Predictions clipped to 1..5; RMSE is the mean over folds and seeds, CPU seconds (both
threads) the median fit. LIBMF itself: ``bench/libmf.py``. See docs/defaults.md.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from typing import Any

import numpy as np

from _common import markdown_table, ml100k_folds, rmse_mae, warm_up, write_result

BASE = {"n_factors": 100, "n_epochs": 20, "n_threads": 2, "patience": None}
STD = 1.126  # the standard deviation of ML-100K's ratings (LIBMF's scale)
LIBMF_START = {"init_mean": 0.05, "init_std": 0.029}
SMALL = {"init_product": 0.01, "init_std": 0.03}

ROWS: list[tuple[str, dict[str, Any]]] = [
    ("the defaults", {}),
    ("rating unit = std (reg / std, LIBMF's scaling)", {"rating_unit": STD, "reg": 0.05 / STD}),
    ("lr 0.1, reg 0.1 (LIBMF's eta, lambda)", {"lr": 0.1, "reg": 0.1}),
    ("LIBMF's start (centre 0.05, spread 0.029)", LIBMF_START),
    ("LIBMF's start, lr 0.1, reg 0.1", {**LIBMF_START, "lr": 0.1, "reg": 0.1}),
    ("default centre, spread 0.03", {"init_std": 0.03}),
    ("centre 0, spread 0.03", {"init_mean": 0.0, "init_std": 0.03}),
    ("init_product 0.01, spread 0.03", SMALL),
    ("init_product 0.01, spread 0.03, lr 0.1, reg 0.1", {**SMALL, "lr": 0.1, "reg": 0.1}),
    ("init_product 0.1, spread 0.03", {"init_product": 0.1, "init_std": 0.03}),
]


def main() -> None:
    from mfrec.exceptions import UnknownIdWarning
    from mfrec.models import FunkSVD

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--folds", default="u1,u2,u3,u4,u5")
    args = parser.parse_args()
    _, folds = ml100k_folds(tuple(args.folds.split(",")))
    warm_up(lambda: FunkSVD(**{**BASE, "n_epochs": 1}))
    results = {}
    rows = []
    for label, params in ROWS:
        errors, cpu = [], []
        for k, fold in enumerate(folds):
            for seed in range(args.seeds):
                model = FunkSVD(**BASE, **params, random_state=100 * k + seed)
                started = time.process_time()
                model.fit(fold.train)
                cpu.append(time.process_time() - started)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UnknownIdWarning)
                    predicted = np.clip(model.predict_ratings(fold.test), 1.0, 5.0)
                errors.append(rmse_mae(fold.test.rating, predicted)[0])
        results[label] = {"params": params, "rmse": float(np.mean(errors)),
                          "rmse_each": errors, "cpu_s": float(np.median(cpu))}  # fmt: skip
        rows.append([label, float(np.mean(errors)), float(np.median(cpu))])
        print(f"{label:<50} RMSE {np.mean(errors):.4f}  cpu {np.median(cpu):.3f}s", flush=True)
    table = markdown_table(["FunkSVD with", "mean RMSE", "CPU s (median fit)"], rows)
    print(table)
    print(f"load average {os.getloadavg()[0]:.1f}")
    write_result("funk_start", {"settings": BASE, "seeds": args.seeds, "folds": args.folds,
                                "results": results, "markdown": table})  # fmt: skip


if __name__ == "__main__":
    main()
