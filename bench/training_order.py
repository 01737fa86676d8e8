"""SGD epochs in the input's row order vs in strata order (TrainingOrder), side by side.

    python bench/training_order.py                  # 1M and 10M, 4 repeats
    python bench/training_order.py --sizes 1M --repeats 2

A BiasedMF fit trains on users and items renumbered stratum by stratum
(:class:`mfrec.models.sgd.TrainingOrder`), so that a block of the stratified schedule
touches one contiguous 1/S of the factor rows. The model is the same bit for bit
(tests/models/test_sgd.py); this bench measures what it buys. Each fit (64 factors,
3 epochs, no early stopping, after a warm-up fit) runs once per arm and thread count
inside every repeat, the arms alternating which goes first; "input order" replaces
:func:`mfrec.models.sgd.strata_layout` with the input-numbered layout, the code path
of mfrec before the change. Reports the median epoch seconds (from ``history_``) per
arm and thread count and their ratio, with the 1-minute load average.
Writes bench/results/searches/training_order.json (an investigation, not a README table).
"""

from __future__ import annotations

import argparse
import gc
import os

import numpy as np

from _common import RESULTS, markdown_table, write_result
from contention import load

ARMS = ("strata order", "input order")


def fit_epochs(ratings, arm: str, threads: int) -> list[float]:
    import mfrec.models.sgd as sgd

    real = sgd.strata_layout

    def input_order(train, n_strata, rng, dtype=np.float32):
        return sgd.grouped_layout(train, n_strata, rng, dtype), None

    sgd.strata_layout = real if arm == "strata order" else input_order
    try:
        gc.collect()
        model = sgd.BiasedMF(
            n_factors=64, n_epochs=3, patience=None, random_state=0, n_threads=threads
        ).fit(ratings)
    finally:
        sgd.strata_layout = real
    return [record["seconds"] for record in model.history_]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1M,10M")
    parser.add_argument("--repeats", type=int, default=4)
    args = parser.parse_args()
    raw, rows = [], []
    for size in args.sizes.split(","):
        ratings = load(size)
        fit_epochs(ratings, ARMS[0], 2)  # warm-up: kernels loaded, pool started
        for rep in range(args.repeats):
            for threads in (1, 2):
                for arm in ARMS if rep % 2 == 0 else ARMS[::-1]:
                    seconds = fit_epochs(ratings, arm, threads)
                    raw.append({"data": size, "arm": arm, "threads": threads, "repeat": rep,
                                "epoch_seconds": seconds, "load1": os.getloadavg()[0]})  # fmt: skip
                    print(raw[-1], flush=True)
        for threads in (1, 2):
            medians = {
                arm: float(np.median([s for r in raw if r["data"] == size and r["arm"] == arm
                                      and r["threads"] == threads for s in r["epoch_seconds"]]))
                for arm in ARMS
            }  # fmt: skip
            loads = [r["load1"] for r in raw if r["data"] == size and r["threads"] == threads]
            rows.append([size, threads, medians[ARMS[1]], medians[ARMS[0]],
                         medians[ARMS[0]] / medians[ARMS[1]], float(np.median(loads))])  # fmt: skip
    table = markdown_table(
        ["data", "threads", "input order epoch s", "strata order epoch s", "strata / input",
         "load (1 min)"],
        rows,
    )  # fmt: skip
    path = write_result(
        "training_order",
        {"repeats": args.repeats, "raw": raw, "markdown": table},
        folder=RESULTS / "searches",
    )
    print(table)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
