"""Tune Surprise's SVD / SVDpp on u1.base only: one recorded search round.

    python bench/surprise_search.py svdpp r1 --param n_factors=20 --param n_epochs=30 \
        --grid 'lr_all=0.005,0.01;reg_all=0.02,0.05,0.1'
    python bench/surprise_search.py svdpp r2 --param n_factors=20 --param n_epochs=30 \
        --grid 'lr_all=0.01,0.02;reg_all=0.1,0.15'
    python bench/surprise_search.py svd r1 --param n_factors=100 --param n_epochs=30 \
        --grid 'lr_all=0.005,0.01;reg_all=0.02,0.05,0.1'
    python bench/surprise_search.py svd r2 --param n_factors=100 --param n_epochs=30 \
        --grid 'lr_all=0.01,0.02;reg_all=0.1,0.15'

(the rounds behind ``bench/frontier.py``'s tuned rows, run from the repository root).

The tuned-Surprise rows of ``bench/frontier.py`` read their settings from the JSON this
writes (``bench/results/searches/surprise_<algo>_ml-100k_<round>.json``), so "mfrec's
preset beats Surprise" is also graded against a Surprise that was tuned, not only one at
its defaults. The protocol is the one of mfrec's presets (``bench/preset_search.py``):
K-fold cross-validation of ``u1.base`` only (u1.test is never loaded), with the very folds
:func:`mfrec.evaluation.search.search` draws for the same ``--seed`` and ``--folds`` (the
mfrec ``ml-100k`` preset rounds use seed 0, 3 folds). Each configuration is fitted by
Surprise on each fold's training ratings and scored on its validation ratings
(Surprise's estimates, clipped to the rating scale as Surprise does by default). Every
trial is recorded: values, per-fold validation RMSE, mean, seconds.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from _common import RESULTS, rmse_mae, surprise_data, write_result
from defaults_search import _guess, parse_grid

SEARCHES = RESULTS / "searches"
ALGOS = {"svd": "SVD", "svdpp": "SVDpp"}


def result_name(algo: str, round_name: str) -> str:
    return f"surprise_{algo}_ml-100k_{round_name}"


def validation_folds(folds: int, seed: int):
    """u1.base and the K folds mfrec's search draws from it for ``seed``."""
    import mfrec
    from mfrec._random import check_random_state
    from mfrec.data.split import kfold, ml100k_official

    train = ml100k_official(mfrec.load_dataset("ml-100k", download=False), "u1").train
    rng = check_random_state(seed)
    fold_seed, _ = (int(s) for s in rng.integers(0, 2**31 - 1, size=2))
    return train, kfold(train, folds, random_state=fold_seed)


def main() -> None:
    import surprise

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("algo", choices=sorted(ALGOS))
    parser.add_argument("round")
    parser.add_argument("--grid", required=True, help="'lr_all=0.005,0.01;reg_all=0.02,0.1'")
    parser.add_argument("--param", action="append", default=[], help="NAME=VALUE, fixed")
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0, help="folds and Surprise's seed")
    args = parser.parse_args()

    fixed = {}
    for item in args.param:
        name, value = item.split("=", 1)
        fixed[name] = _guess(value)
    cls = getattr(surprise, ALGOS[args.algo])
    data, folds = validation_folds(args.folds, args.seed)
    sets = [surprise_data(fold) for fold in folds]
    trials = []
    started = time.perf_counter()
    for index, config in enumerate(parse_grid(args.grid)):
        params = {**fixed, **config}
        t0 = time.perf_counter()
        fold_rmse, fit_seconds = [], []
        for trainset, testset in sets:
            algo = cls(**params, random_state=args.seed)
            t1 = time.perf_counter()
            algo.fit(trainset)
            fit_seconds.append(time.perf_counter() - t1)
            predictions = algo.test(testset)
            truth = np.array([p.r_ui for p in predictions])
            fold_rmse.append(rmse_mae(truth, np.array([p.est for p in predictions]))[0])
        trials.append({
            "index": index, "params": params, "mean_rmse": float(np.mean(fold_rmse)),
            "fold_rmse": fold_rmse, "fit_seconds": float(np.mean(fit_seconds)),
            "trial_seconds": time.perf_counter() - t0,
        })  # fmt: skip
        print(f"#{index + 1} {params}: {np.mean(fold_rmse):.4f}", flush=True)
    ranking = sorted(range(len(trials)), key=lambda i: (trials[i]["mean_rmse"], i))
    best = trials[ranking[0]]
    path = write_result(
        result_name(args.algo, args.round),
        {
            "peer": f"surprise.{ALGOS[args.algo]} {surprise.__version__}",
            "dataset": "ml-100k",
            "round": args.round,
            "data": {
                "split": "u1",
                "searched": "u1.base (the training part of the official u1 split)",
                "n_ratings": len(data),
                "test_part_scored": False,
            },
            "method": "grid",
            "spec": args.grid,
            "fixed": fixed,
            "folds": args.folds,
            "seed": args.seed,
            "seconds": time.perf_counter() - started,
            "load_average_end": os.getloadavg(),
            "best": {
                "index": best["index"],
                "params": best["params"],
                "mean_rmse": best["mean_rmse"],
                "fold_rmse": best["fold_rmse"],
            },
            "ranking": ranking,
            "trials": trials,
        },
        folder=SEARCHES,
    )
    print(f"best: {best['params']} validation RMSE {best['mean_rmse']:.4f}\nwrote {path}")


if __name__ == "__main__":
    main()
