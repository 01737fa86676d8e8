"""One recorded round of the search behind a preset (``mfrec.models.presets``).

    python bench/preset_search.py svdpp ml-100k r1 --folds 3 --seed 0 \
        --random 'n_factors=logint(10,120);lr=loguniform(0.003,0.01)' --n-iter 12
    python bench/preset_search.py biased-mf ml-100k r2 \
        --configs '[{"optimizer": "sgd", ...}, {"optimizer": "adagrad", ...}]'

The search sees the *training part* only and never scores a test rating:

- ``ml-100k``: ``u1.base`` (the test part ``u1.test`` is never loaded into the search);
- ``ml-latest-small``: the training part of ``holdout:0.2`` with seed 0 (the split
  ``mfrec tune ml-latest-small --split holdout:0.2 --seed 0`` holds out).

Each configuration is cross-validated on that part (``--folds`` K-fold, seeded by
``--seed``, the same folds for every configuration) with
:func:`mfrec.evaluation.search.search` -- what ``mfrec tune`` runs. The round writes
``bench/results/searches/preset_<model>_<dataset>_<round>.json``: the command, the seed,
the data, the fixed settings, and every trial (its values, one validation RMSE per fold,
their mean, the fit seconds per fold and the trial's wall seconds), best first in
``ranking``. Configurations come from a grid (``--grid``), random draws (``--random``
with ``--n-iter``) or an explicit JSON list (``--configs``, for a head-to-head round);
``--also`` adds explicit configurations (``'[{}]'``: the defaults) and
``--include-best ROUND`` an earlier round's winner (with every setting it was run with),
so a round can decide between them and new candidates on the same folds;
``--from-best ROUND`` starts from an earlier winner's settings.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import time
from typing import Any

from _common import RESULTS, write_result

SEARCHES = RESULTS / "searches"

#: dataset -> (the split whose training part is searched, its seed, description).
TRAINING_PARTS: dict[str, tuple[str, int, str]] = {
    "ml-100k": ("u1", 0, "u1.base (the training part of the official u1 split)"),
    "ml-latest-small": ("holdout:0.2", 0, "the 80% training part of holdout:0.2, seed 0"),
}


def result_name(model: str, dataset: str, round_name: str) -> str:
    return f"preset_{model}_{dataset}_{round_name}"


def training_part(dataset: str):
    """The ratings a preset for ``dataset`` is searched on (never its test part)."""
    import mfrec
    from mfrec.data.split import parse_split

    if dataset not in TRAINING_PARTS:
        raise SystemExit(f"no preset protocol for {dataset!r}; known: {', '.join(TRAINING_PARTS)}")
    split, seed, _ = TRAINING_PARTS[dataset]
    ratings = mfrec.load_dataset(dataset, download=False)
    (fold,) = parse_split(split, ratings, random_state=seed)
    return fold.train


def _best_of(model: str, dataset: str, round_name: str) -> dict[str, Any]:
    """The winning settings recorded by an earlier round."""
    path = SEARCHES / f"{result_name(model, dataset, round_name)}.json"
    return json.loads(path.read_text())["best"]["params"]


def main() -> None:
    from mfrec.evaluation.search import (
        grid_configurations,
        parse_grid,
        parse_space,
        random_configurations,
        search,
    )
    from mfrec.models import get_model_class

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("dataset", choices=sorted(TRAINING_PARTS))
    parser.add_argument("round")
    how = parser.add_mutually_exclusive_group(required=True)
    how.add_argument("--grid", help="'a=1,2;b=x,y' (mfrec tune --grid syntax)")
    how.add_argument("--random", help="'a=loguniform(0.01,0.1);...' (mfrec tune --random)")
    how.add_argument("--configs", help="a JSON list of configurations (dicts) to compare")
    parser.add_argument("--n-iter", type=int, default=12, help="draws of --random")
    parser.add_argument("--param", action="append", default=[], help="NAME=VALUE, fixed")
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0, help="draws, folds and model seed")
    parser.add_argument("--threads", type=int, default=None, help="threads per fit")
    parser.add_argument("--note", default="", help="why this round (recorded)")
    parser.add_argument(
        "--include-best",
        metavar="ROUND",
        action="append",
        default=[],
        help="also run the best configuration of an earlier round (its full recorded "
        "settings) on this round's folds, so the round compares them side by side",
    )
    parser.add_argument(
        "--from-best",
        metavar="ROUND",
        help="start from an earlier round's winner: its settings are fixed unless --param "
        "or this round's configurations say otherwise",
    )
    parser.add_argument(
        "--also", help="a JSON list of configurations run besides the grid or draws"
    )
    args = parser.parse_args()

    cls = get_model_class(args.model)
    fixed: dict[str, Any] = {}
    if args.from_best:
        fixed.update(_best_of(args.model, args.dataset, args.from_best))
    for item in args.param:
        fixed.update({k: v[0] for k, v in parse_grid(item, cls).items()})
    base = cls(**fixed)
    if args.grid:
        configs, method, spec = grid_configurations(parse_grid(args.grid, base)), "grid", args.grid
    elif args.random:
        space = parse_space(args.random, base)
        configs = random_configurations(space, args.n_iter, args.seed)
        method, spec = "random", args.random
    else:
        configs, method, spec = json.loads(args.configs), "configs", args.configs
        if not isinstance(configs, list) or not all(isinstance(c, dict) for c in configs):
            raise SystemExit("--configs takes a JSON list of objects")

    for extra in json.loads(args.also) if args.also else []:
        if extra not in configs:
            configs.append(extra)
    for earlier in args.include_best:
        previous = _best_of(args.model, args.dataset, earlier)
        if previous not in configs:
            configs.append(previous)

    data = training_part(args.dataset)
    stamps = [time.perf_counter()]

    def on_config(result) -> None:
        stamps.append(time.perf_counter())
        shown = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                         for k, v in result.params.items())  # fmt: skip
        took = stamps[-1] - stamps[-2]
        print(f"#{result.index + 1} {shown}: {result.mean_rmse:.4f} ({took:.0f}s)", flush=True)

    result = search(
        base, configs, data, folds=args.folds, random_state=args.seed,
        n_threads=args.threads, method=method, on_config=on_config,
    )  # fmt: skip
    trials = []
    for r, (start, end) in zip(result.results, itertools.pairwise(stamps), strict=True):
        trials.append({**r.to_dict(), "trial_seconds": end - start})
    ranking = [r.index for r in result.ranked()]
    best = result.best
    split, split_seed, described = TRAINING_PARTS[args.dataset]
    path = write_result(
        result_name(args.model, args.dataset, args.round),
        {
            "model": args.model,
            "dataset": args.dataset,
            "round": args.round,
            "note": args.note,
            "data": {
                "split": split,
                "split_seed": split_seed,
                "searched": described,
                "n_ratings": len(data),
                "test_part_scored": False,
            },
            "method": method,
            "spec": spec,
            "fixed": fixed,
            "included_best_of": args.include_best,
            "from_best_of": args.from_best,
            "base_params": result.base_params,
            "folds": args.folds,
            "seed": args.seed,
            "threads": args.threads,
            "seconds": result.seconds,
            "load_average_end": os.getloadavg(),
            "best": {
                "index": best.index,
                "params": {**fixed, **best.params},
                "mean_rmse": best.mean_rmse,
                "fold_rmse": best.fold_rmse,
            },
            "ranking": ranking,
            "trials": trials,
        },
        folder=SEARCHES,
    )
    print(f"best #{best.index + 1}: {best.params} validation RMSE {best.mean_rmse:.4f}")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
