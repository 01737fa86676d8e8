"""Top-N lists not fooled by one lucky rating: ranking metrics and the support of what is
recommended, with and without the count-aware regularisation.

    python bench/topn_support.py [--models biased-mf,svdpp,als] [--seed 0]

Each model is fitted twice on every fold -- ``before``: the per-rating penalty alone (the
defaults up to the count-aware penalty, ``reg_row = reg_bias_row = 0``); ``after``: its
current defaults -- on ML-100K's official u1..u5 and on ml-latest-small's 5-fold split
(seed 0), and each fold's test part is ranked as ``mfrec evaluate --metrics`` does
(:func:`mfrec.evaluation.topn.evaluate_ranking`: every unseen item known to the model is
a candidate, relevant = test items rated >= 4). Reported, as the mean over folds:
NDCG@10, recall@10, catalogue coverage@10, and the *support* of the recommended items
(their number of training ratings) over every test user's top 10: mean, minimum, and the
share of recommended slots held by items with fewer than 5 training ratings.

Accuracy only (no timing): the figures do not depend on the machine's load.
"""

from __future__ import annotations

import argparse
import warnings
from typing import Any

import numpy as np

from _common import kfold_folds, markdown_table, ml100k_folds, write_result

#: The settings before the count-aware penalty, for each model (the rest at defaults).
BEFORE: dict[str, dict[str, Any]] = {
    "biased-mf": {"reg": 0.1, "reg_row": 0.0, "reg_bias_row": 0.0},
    "svdpp": {"reg": 0.1, "reg_row": 0.0, "reg_bias_row": 0.0},
    "als": {"reg": 0.1, "reg_row": 0.0, "reg_bias_row": 0.0, "patience": None},
}
RARE = 5  # "rare": fewer training ratings than this
K = 10


def support_of_lists(model, train, test) -> dict[str, float]:
    """Support (training ratings) of the items in every test user's top K."""
    item_of_rating = model.items_.lookup(train.items.take(train.item_index))
    support = np.bincount(item_of_rating, minlength=len(model.items_))
    users = model.users_.lookup(test.users.take(np.unique(test.user_index)))
    users = users[users >= 0]
    rec_idx, _ = model._recommend_indices(users.astype(np.int64), K, True)
    counts = support[rec_idx[rec_idx >= 0]]
    return {
        "support_mean": float(counts.mean()),
        "support_min": int(counts.min()),
        "rare_share": float(np.mean(counts < RARE)),
    }


def run_fold(name: str, params: dict[str, Any], fold, seed: int) -> dict[str, float]:
    from mfrec.evaluation.topn import evaluate_ranking
    from mfrec.exceptions import UnknownIdWarning
    from mfrec.models import get_model_class

    cls = get_model_class(name)
    model = cls(**params, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnknownIdWarning)
        model.fit(fold.train)
        ranking = evaluate_ranking(model, fold.test, (f"ndcg@{K}", f"recall@{K}", f"coverage@{K}"))
    return {
        "ndcg": ranking[f"ndcg@{K}"],
        "recall": ranking[f"recall@{K}"],
        "coverage": ranking[f"coverage@{K}"],
        **support_of_lists(model, fold.train.compact(), fold.test),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="biased-mf,svdpp,als")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    datasets = {
        "ML-100K u1..u5": ml100k_folds()[1],
        "ml-latest-small 5-fold": kfold_folds("ml-latest-small")[1],
    }
    rows, table = [], []
    for data_name, folds in datasets.items():
        for name in args.models.split(","):
            for label, params in (("before", BEFORE[name]), ("after", {})):
                per_fold = [run_fold(name, params, fold, args.seed) for fold in folds]
                mean = {key: float(np.mean([f[key] for f in per_fold])) for key in per_fold[0]}
                mean["support_min"] = int(min(f["support_min"] for f in per_fold))
                rows.append({
                    "data": data_name, "model": name, "setting": label, "params": params,
                    "folds": per_fold, **mean,
                })  # fmt: skip
                print(rows[-1]["data"], name, label, {k: mean[k] for k in mean}, flush=True)
                table.append([
                    data_name, name, label, mean["ndcg"], mean["recall"], mean["coverage"],
                    f"{mean['support_mean']:.0f}", mean["support_min"],
                    f"{100 * mean['rare_share']:.1f}%",
                ])  # fmt: skip
    headers = [
        "data", "model", "setting", f"NDCG@{K}", f"recall@{K}", f"coverage@{K}",
        "mean support", "min support", f"slots with < {RARE} ratings",
    ]  # fmt: skip
    markdown = (
        markdown_table(headers, table)
        + "\n\n`before`: the per-rating penalty alone (`reg_row = reg_bias_row = 0`, "
        "`reg = 0.1`; ALS without early stopping); `after`: the model's defaults. Means "
        "over the folds; support = training ratings of a recommended item, over every "
        f"test user's top {K} (min: over all folds)."
    )
    write_result(
        "topn_support",
        {"k": K, "rare_below": RARE, "seed": args.seed, "rows": rows, "markdown": markdown},
    )


if __name__ == "__main__":
    main()
