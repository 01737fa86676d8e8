"""ImplicitALS: conformance, the CG kernel against NumPy and the exact solution, the
objective, thread independence, recovery of planted preferences, the conversion helpers."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from mfrec.data.implicit import from_events, to_implicit
from mfrec.data.ratings import Ratings
from mfrec.data.split import user_holdout
from mfrec.evaluation.ranking import score_lists
from mfrec.evaluation.topn import evaluate_ranking
from mfrec.exceptions import DataError, UnknownIdWarning
from mfrec.kernels.implicit_als import (
    cg_half_step,
    cg_half_step_reference,
    confidence_terms,
    exact_solution_reference,
    gram,
    loss,
    loss_reference,
)
from mfrec.models import ImplicitALS

from .conformance import ModelConformance
from .topn_conformance import TopNConformance, own_ratings

FAST = {"n_factors": 4, "n_epochs": 10, "reg": 0.1, "alpha": 5.0, "n_threads": 1}


def planted_preferences(n_users=150, n_items=100, rank=3, share=0.2, seed=0) -> Ratings:
    """Binary interactions planted by a rank-``rank`` taste: each user interacts with the
    ``share`` of the items they like most (by a noisy low-rank score)."""
    rng = np.random.default_rng(seed)
    scores = rng.normal(size=(n_users, rank)) @ rng.normal(size=(rank, n_items))
    scores += 0.3 * rng.normal(size=scores.shape)
    cutoff = np.quantile(scores, 1 - share, axis=1, keepdims=True)
    users, items = np.nonzero(scores >= cutoff)
    return Ratings.from_arrays(users, items, np.ones(len(users)))


def csr_problem(seed=0, n_rows=25, n_cols=40, k=5, density=0.3):
    rng = np.random.default_rng(seed)
    mask = rng.random((n_rows, n_cols)) < density
    values = np.where(mask, rng.integers(1, 4, mask.shape), 0).astype(np.float32)
    import scipy.sparse as sp

    m = sp.csr_matrix(values)
    X = (0.1 * rng.normal(size=(n_rows, k))).astype(np.float32)
    Y = (0.5 * rng.normal(size=(n_cols, k))).astype(np.float32)
    return m, X, Y


class TestImplicitALSConformance(ModelConformance):
    model_class = ImplicitALS
    fast_params = FAST
    alternatives = {
        "n_factors": 6,
        "n_epochs": 3,
        "reg": 2.0,
        "alpha": 20.0,
        "cg_steps": 1,
        "init_std": 0.3,
    }
    exempt = {"n_threads": "must not change the result; see test_thread_invariance.py"}
    bad_values = {
        "n_factors": 0,
        "n_epochs": 0,
        "reg": -1.0,
        "alpha": -1.0,
        "cg_steps": 0,
        "init_std": 0.0,
        "n_threads": 0,
    }

    def test_fits_planted_data(self, planted, fitted):
        """Preference scores are not ratings (RMSE means nothing here); what must hold is
        ranking: on planted implicit data the model beats popularity by far."""
        fold = user_holdout(planted_preferences(), 0.2, random_state=0)
        model = self.make(n_factors=3, n_epochs=15).fit(fold.train)
        ours = evaluate_ranking(model, fold.test, "ndcg@10,recall@10", relevance_threshold=None)
        popularity = np.argsort(-fold.train.item_counts(), kind="stable")
        test = fold.test.to_frame()
        relevant = test.groupby("user")["item"].apply(set)
        train = fold.train.to_frame().groupby("user")["item"].apply(set)
        ranked = fold.train.items.take(popularity).tolist()
        lists = [[i for i in ranked if i not in train[u]][:10] for u in relevant.index]
        baseline = score_lists(lists, list(relevant), "ndcg@10,recall@10")
        assert ours["ndcg@10"] > 2 * baseline["ndcg@10"], (ours, baseline)
        assert ours["recall@10"] > 0.5, ours

    def test_unknown_ids_follow_the_policy(self, planted, fitted):
        """Implicit-feedback form of the policy: an unknown user gets item popularity
        (share of training users who interacted), an unknown item preference 0."""
        _, fold = planted
        train = fold.train.compact()
        share = np.bincount(train.item_index, minlength=train.n_items) / train.n_users
        items = fitted.items_.ids[:5]
        expected = share[train.items.lookup(items)]
        with pytest.warns(UnknownIdWarning):
            got = fitted.predict([10**9] * 5, items)
        np.testing.assert_allclose(got, expected)
        with pytest.warns(UnknownIdWarning):
            assert fitted.predict([fitted.users_.ids[0]], [10**9])[0] == 0.0
        with pytest.warns(UnknownIdWarning):
            recs = fitted.recommend(10**9, n=3)
        most_popular = train.items.take(np.argsort(-share, kind="stable")[:3])
        assert recs.item_ids.tolist() == most_popular.tolist()
        np.testing.assert_allclose(recs.scores, np.sort(share)[::-1][:3], rtol=1e-6)


class TestImplicitALSTopN(TopNConformance):
    model_class = ImplicitALS
    fast_params = {**FAST, "n_factors": 3, "n_epochs": 20}

    @classmethod
    def topn_train(cls, planted):
        return user_holdout(planted_preferences(), 0.2, random_state=0).train


# -- kernels ---------------------------------------------------------------------------
def test_cg_kernel_agrees_with_numpy_reference():
    m, X, Y = csr_problem()
    extra, target = confidence_terms(m.data, 4.0)
    G = (gram(Y) + 0.3 * np.eye(Y.shape[1])).astype(np.float32)
    X_ref = X.astype(np.float64)
    cg_half_step(m.indptr, m.indices, extra, target, X, Y, G, 3)
    cg_half_step_reference(m.indptr, m.indices, extra, target, X_ref, Y, G, 3)
    np.testing.assert_allclose(X, X_ref, rtol=2e-3, atol=2e-4)


def test_cg_converges_to_the_exact_hkv_solution():
    """With k steps (k = factors) CG solves A_u x = b_u (HKV eq. 4) up to rounding."""
    m, X, Y = csr_problem(seed=1)
    reg, alpha = 0.5, 3.0
    extra, target = confidence_terms(m.data, alpha)
    G = (gram(Y) + reg * np.eye(Y.shape[1])).astype(np.float32)
    for _ in range(3):
        cg_half_step(m.indptr, m.indices, extra, target, X, Y, G, Y.shape[1])
    exact = exact_solution_reference(m.indptr, m.indices, m.data, Y, alpha, reg)
    np.testing.assert_allclose(X, exact, rtol=1e-3, atol=1e-4)


def test_loss_equals_the_objective_by_brute_force():
    m, X, Y = csr_problem(seed=2)
    extra, target = confidence_terms(m.data, 2.5)
    fast = loss(m.indptr, m.indices, extra, target, X, Y, 0.7)
    slow = loss_reference(m.indptr, m.indices, m.data, X, Y, 2.5, 0.7)
    assert fast == pytest.approx(slow, rel=1e-5)


def test_gram_is_exact_and_thread_independent():
    from mfrec._threads import numba_threads

    Y = np.random.default_rng(3).normal(size=(5000, 7)).astype(np.float32)
    with numba_threads(1):
        one = gram(Y)
    with numba_threads(2):
        two = gram(Y)
    assert np.array_equal(one, two)
    np.testing.assert_allclose(one, Y.astype(np.float64).T @ Y, rtol=1e-12)


def test_objective_decreases_and_matches_the_history():
    train = planted_preferences(seed=5)
    model = ImplicitALS(n_factors=4, n_epochs=8, reg=0.2, alpha=3.0, n_threads=1, random_state=0)
    model.fit(train)
    losses = [rec["train_loss"] for rec in model.history_]
    assert all(b <= a * (1 + 1e-6) for a, b in itertools.pairwise(losses)), losses
    assert losses[-1] < 0.8 * losses[0]
    m = train.to_csr()
    total_confidence = train.n_users * train.n_items + 3.0 * m.data.sum()
    expected = loss_reference(
        m.indptr, m.indices, m.data, model.user_factors_, model.item_factors_, 3.0, 0.2
    )
    assert losses[-1] == pytest.approx(expected / total_confidence, rel=1e-5)


def test_fold_in_solves_the_hkv_user_equation_exactly():
    train = planted_preferences(seed=6)
    model = ImplicitALS(**FAST, random_state=0).fit(train)
    mine = own_ratings(model, 9)
    model.fold_in(-1, mine)
    items = model.items_.index(list(mine))
    indptr = np.array([0, len(items)])
    order = np.argsort(items)
    exact = exact_solution_reference(
        indptr,
        items[order],
        np.array(list(mine.values()), dtype=np.float32)[order],
        model.item_factors_,
        model.alpha,
        model.reg,
    )
    np.testing.assert_allclose(model.user_factors_[-1], exact[0], rtol=1e-4, atol=1e-5)
    # ... which the training's 3 CG steps per epoch approach.
    gap = np.linalg.norm(model.user_factors_[9] - exact[0]) / np.linalg.norm(exact[0])
    assert gap < 0.05


def test_negative_strengths_are_refused():
    bad = Ratings.from_arrays([1, 1, 2], [1, 2, 1], [1.0, -1.0, 2.0])
    with pytest.raises(DataError, match="to_implicit"):
        ImplicitALS(**FAST).fit(bad)
    model = ImplicitALS(**FAST, random_state=0).fit(planted_preferences())
    with pytest.raises(DataError, match=">= 0"):
        model.recommend_for_ratings({0: -2.0})


# -- turning explicit ratings into implicit feedback -------------------------------------
def test_to_implicit_by_threshold():
    explicit = Ratings.from_arrays(
        ["a", "a", "b", "b", "c"], [1, 2, 1, 3, 2], [5, 3, 4, 1, 4.5], scale=(1, 5), name="x"
    )
    binary = to_implicit(explicit, 4.0)
    frame = binary.to_frame()
    assert list(zip(frame.user, frame.item, strict=True)) == [("a", 1), ("b", 1), ("c", 2)]
    assert binary.rating.tolist() == [1.0, 1.0, 1.0]
    assert binary.scale is None and binary.name == "x (implicit >=4)"
    raw = to_implicit(explicit, 4.0, values="raw")
    assert raw.rating.tolist() == [5.0, 4.0, 4.5]
    assert len(to_implicit(explicit, None)) == 5
    with pytest.raises(DataError, match="lower the threshold"):
        to_implicit(explicit, 6.0)
    with pytest.raises(DataError, match="binary"):
        to_implicit(explicit, values="counts")


def test_from_events_sums_repeated_pairs():
    ratings = from_events(["a", "a", "b", "a"], [1, 2, 1, 1], counts=[2, 1, 5, 3])
    frame = ratings.to_frame().sort_values(["user", "item"])
    assert frame.rating.tolist() == [5.0, 1.0, 5.0]
    assert from_events([1, 1], [7, 7]).rating.tolist() == [2.0]
    with pytest.raises(DataError, match=">= 0"):
        from_events([1], [1], counts=[-1])
    with pytest.raises(DataError, match="missing user id"):
        from_events([1, None], [1, 2])


@pytest.mark.realdata
def test_ml100k_as_implicit_feedback_beats_popularity(ml100k_dir, monkeypatch):
    """ML-100K, ratings >= 4 as interactions, 20% of each user's held out: NDCG@10 well
    above the most-popular ranking (same candidates: training items excluded)."""
    import mfrec

    monkeypatch.setenv("MFREC_DATA_DIR", str(ml100k_dir.parent))
    interactions = to_implicit(mfrec.load_dataset("ml-100k", download=False), 4.0)
    fold = user_holdout(interactions, 0.2, random_state=0)
    model = ImplicitALS(n_factors=32, n_epochs=10, reg=1.0, alpha=10.0, random_state=0)
    ours = evaluate_ranking(
        model.fit(fold.train), fold.test, "ndcg@10,recall@10", relevance_threshold=None
    )
    popularity = np.argsort(-fold.train.item_counts(), kind="stable")
    ranked = fold.train.items.take(popularity).tolist()
    relevant = fold.test.to_frame().groupby("user")["item"].apply(set)
    train = fold.train.to_frame().groupby("user")["item"].apply(set)
    lists = [[i for i in ranked if i not in train[u]][:10] for u in relevant.index]
    baseline = score_lists(lists, list(relevant), "ndcg@10,recall@10")
    assert ours["n_users_evaluated"] == len(relevant) == 942
    assert ours["ndcg@10"] > 0.23 and ours["ndcg@10"] > 1.5 * baseline["ndcg@10"], (ours, baseline)
    assert ours["recall@10"] > 1.5 * baseline["recall@10"]
