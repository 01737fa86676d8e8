"""The top-N evaluation protocol: candidates, exclusions, ties, counts, every model."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
from click.testing import CliRunner

from mfrec.cli import main
from mfrec.data.ratings import Ratings
from mfrec.data.split import kfold, user_holdout
from mfrec.data.synthetic import make_ratings
from mfrec.evaluation.ranking import score_lists
from mfrec.evaluation.topn import evaluate_ranking
from mfrec.evaluation.validate import cross_validate, evaluate_fold
from mfrec.exceptions import DataError, UnknownIdWarning
from mfrec.models import MODELS, BiasedMF, GlobalMean

LOG3, LOG5 = math.log2(3), math.log2(5)


@pytest.fixture(scope="module")
def tie_case():
    """GlobalMean scores every item alike, so lists follow the tie rule (lower index)."""
    train = Ratings.from_arrays(
        ["u1", "u2", "u2", "u2", "u2", "u3", "u3"],
        [10, 10, 20, 30, 40, 50, 20],
        [5, 3, 4, 2, 5, 1, 3],
    )
    # u1: relevant 30, 50 and 60 (an item the model never saw); 20 is rated 2 (not
    # relevant). u3: nothing relevant (excluded). u9: a user the model never saw.
    test = Ratings.from_arrays(
        ["u1", "u1", "u1", "u1", "u3", "u9"], [30, 50, 20, 60, 10, 40], [5, 4, 2, 5, 2, 5]
    )
    return GlobalMean().fit(train), test


def test_hand_computed_protocol_with_ties(tie_case):
    model, test = tie_case
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the protocol handles unknown ids without warnings
        out = evaluate_ranking(
            model, test, "precision@3,recall@3,ndcg@3,map@3,mrr,mrr@1,hit@3,coverage@3"
        )
    # u1: candidates 20, 30, 40, 50 (10 rated in training), top 3 = [20, 30, 40] -> hit at 2.
    # u9 (unknown): fallback ranking 10, 20, 30, 40, 50 -> its relevant 40 is 4th.
    assert out["precision@3"] == pytest.approx((1 / 3 + 0) / 2)
    assert out["recall@3"] == pytest.approx((1 / 3 + 0) / 2)
    assert out["ndcg@3"] == pytest.approx((1 / LOG3) / (1 + 1 / LOG3 + 1 / 2) / 2)
    assert out["map@3"] == pytest.approx((1 / 2) / 3 / 2)
    assert out["mrr"] == pytest.approx((1 / 2 + 1 / 4) / 2)
    assert out["mrr@1"] == 0.0
    assert out["hit@3"] == pytest.approx(0.5)
    assert out["coverage@3"] == pytest.approx(4 / 5)  # {20, 30, 40} u {10, 20, 30}
    assert out["n_test_users"] == 3
    assert out["n_users_evaluated"] == 2 and out["n_users_no_relevant"] == 1
    assert out["n_users_unknown"] == 1
    assert out["n_relevant"] == 4 and out["n_relevant_unknown_items"] == 1


def test_k_larger_than_the_catalogue(tie_case):
    model, test = tie_case
    out = evaluate_ranking(model, test, "precision@10,recall@10,ndcg@10")
    # u1's list is its 4 candidates (hits 30 at rank 2, 50 at rank 4); u9's all 5 items.
    assert out["precision@10"] == pytest.approx((2 / 10 + 1 / 10) / 2)
    assert out["recall@10"] == pytest.approx((2 / 3 + 1) / 2)
    ndcg_u1 = (1 / LOG3 + 1 / LOG5) / (1 + 1 / LOG3 + 1 / 2)
    ndcg_u9 = (1 / LOG5) / 1
    assert out["ndcg@10"] == pytest.approx((ndcg_u1 + ndcg_u9) / 2)


def test_threshold_none_makes_every_test_item_relevant(tie_case):
    model, test = tie_case
    out = evaluate_ranking(model, test, "recall@10", relevance_threshold=None)
    assert out["n_users_evaluated"] == 3 and out["n_relevant"] == len(test)
    with pytest.raises(DataError, match="no test user has a relevant item"):
        evaluate_ranking(model, test, "recall@10", relevance_threshold=6)
    with pytest.raises(ValueError, match="rating metrics"):
        evaluate_ranking(model, test, "rmse")


@pytest.fixture(scope="module")
def planted_fit():
    data = make_ratings(n_users=120, n_items=80, density=0.3, n_factors=3, random_state=3)
    fold = user_holdout(data.ratings, 0.3, random_state=0)
    model = BiasedMF(n_factors=3, n_epochs=30, lr=0.02, random_state=0).fit(fold.train)
    return model, fold


def test_protocol_agrees_with_recommend_and_a_full_sort(planted_fit):
    """The lists are recommend()'s; full-ranking MRR equals a brute-force sort of every
    candidate with the same tie rule."""
    model, fold = planted_fit
    metrics = "precision@5,recall@10,ndcg@10,map@10,hit@5,mrr@10"
    out = evaluate_ranking(model, fold.test, metrics + ",mrr")
    test = fold.test.to_frame()
    relevant = test[test.rating >= 4].groupby("user")["item"].apply(set)
    users = relevant.index.to_numpy()
    recs = model.recommend(users, n=10)
    lists = [[i for i in row if i != -1] for row in recs.item_ids.tolist()]
    expected = score_lists(lists, list(relevant), metrics)
    for name in metrics.split(","):
        assert out[name] == pytest.approx(expected[name], abs=1e-12), name
    # Full-ranking MRR by brute force.
    matrix = model.predict_matrix().astype(np.float32)
    seen = model.seen_items
    rr = []
    for user, rel in relevant.items():
        u = model.users_.index([user])[0]
        row = matrix[u].copy()
        row[seen.indices[seen.indptr[u] : seen.indptr[u + 1]]] = -np.inf
        order = np.lexsort((np.arange(len(row)), -row))  # score desc, then index asc
        ranked = model.items_.take(order[np.isfinite(row[order])]).tolist()
        first = next((r for r, item in enumerate(ranked, 1) if item in rel), None)
        rr.append(0.0 if first is None else 1.0 / first)
    assert out["mrr"] == pytest.approx(np.mean(rr), abs=1e-12)
    assert out["mrr"] >= out["mrr@10"]


def test_training_items_never_count_as_hits(planted_fit):
    """Relevant items that are training items are never candidates: adding the training
    ratings to the test set adds users and relevant items, but not one hit."""
    model, fold = planted_fit
    both = Ratings.from_arrays(
        np.concatenate([fold.train.to_frame().user, fold.test.to_frame().user]),
        np.concatenate([fold.train.to_frame().item, fold.test.to_frame().item]),
        np.concatenate([fold.train.rating, fold.test.rating]),
    )
    leaky = evaluate_ranking(model, both, "precision@10,hit@10")
    honest = evaluate_ranking(model, fold.test, "precision@10,hit@10")
    assert leaky["n_users_evaluated"] > honest["n_users_evaluated"]
    for name in ("precision@10", "hit@10"):  # totals of hits and of users with a hit
        assert leaky[name] * leaky["n_users_evaluated"] == pytest.approx(
            honest[name] * honest["n_users_evaluated"]
        )


def test_cross_validate_reports_metrics_counts_and_means():
    data = make_ratings(n_users=60, n_items=40, density=0.4, n_factors=2, random_state=1)
    folds = kfold(data.ratings, 2, random_state=0)
    report = cross_validate(
        BiasedMF(n_factors=2, n_epochs=5, random_state=0), folds, "rmse,ndcg@5,mrr"
    )
    assert set(report["mean"]) == {"rmse", "ndcg@5", "mrr", "fit_seconds", "predict_seconds",
                                   "rank_seconds"}  # fmt: skip
    for f in report["folds"]:
        assert f["n_users_evaluated"] + f["n_users_no_relevant"] == f["n_test_users"]
    assert report["users"]["n_users_evaluated"] == sum(
        f["n_users_evaluated"] for f in report["folds"]
    )
    assert report["mean"]["ndcg@5"] == pytest.approx(
        np.mean([f["ndcg@5"] for f in report["folds"]])
    )


def _small(cls) -> dict:
    names = cls._param_names()
    small = {"n_factors": 2, "n_epochs": 3, "n_samples": 6, "burn_in": 2, "random_state": 0}
    return {k: v for k, v in small.items() if k in names}


@pytest.mark.parametrize("name", list(MODELS))
def test_ranking_evaluation_works_for_every_model(name):
    """evaluate_fold's ranking metrics equal recall@5 and NDCG@5 recomputed here, by their
    textbook definitions, from the same model's own recommend() lists."""
    cls = MODELS[name]
    data = make_ratings(n_users=50, n_items=30, density=0.4, n_factors=2, random_state=2)
    fold = user_holdout(data.ratings, 0.3, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnknownIdWarning)
        result = evaluate_fold(cls(**_small(cls)), fold, "ndcg@5,recall@5,mrr,coverage@5")
        model = cls(**_small(cls)).fit(fold.train)  # the same seed: the same model
        test = fold.test.to_frame()
        relevant = test[test.rating >= 4].groupby("user")["item"].apply(set)
        recall, ndcg = [], []
        for user, items in relevant.items():
            top = model.recommend(user, n=5).item_ids.tolist()
            gains = [1.0 / math.log2(rank + 2) for rank, i in enumerate(top) if i in items]
            ideal = sum(1.0 / math.log2(rank + 2) for rank in range(min(5, len(items))))
            recall.append(len(gains) / len(items))
            ndcg.append(sum(gains) / ideal)
    assert result["n_users_evaluated"] == len(relevant) > 0
    assert result["recall@5"] == pytest.approx(np.mean(recall), abs=1e-12), name
    assert result["ndcg@5"] == pytest.approx(np.mean(ndcg), abs=1e-12), name
    for metric in ("mrr", "coverage@5"):
        assert 0.0 <= result[metric] <= 1.0, (name, metric, result[metric])


def test_cli_evaluate_with_ranking_metrics(tmp_path):
    data = make_ratings(n_users=60, n_items=40, density=0.4, n_factors=2, random_state=4)
    path = tmp_path / "r.csv"
    data.ratings.to_frame()[["user", "item", "rating"]].to_csv(path, index=False)
    runner = CliRunner()
    args = ["evaluate", str(path), "--param", "n_factors=2", "--param", "n_epochs=5"]
    args += ["--split", "kfold:2", "--seed", "0", "--metrics", "rmse,ndcg@5,recall@5,mrr"]
    result = runner.invoke(main, [*args, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["metrics"] == ["rmse", "ndcg@5", "recall@5", "mrr"]
    assert report["relevance_threshold"] == 4.0
    assert all(0 <= f["ndcg@5"] <= 1 for f in report["folds"])
    assert report["users"]["n_users_evaluated"] > 0
    text = runner.invoke(main, args)
    assert text.exit_code == 0 and "ndcg@5" in text.output and "excluded" in text.output
    bad = runner.invoke(main, [*args[:-1], "ndcg"])
    assert bad.exit_code != 0 and "needs a cutoff" in bad.output
    implicit = runner.invoke(main, [*args, "--implicit", "4", "--json"])
    assert implicit.exit_code == 0, implicit.output
    assert json.loads(implicit.output)["relevance_threshold"] is None
