"""Top-N conformance: what every factor model's similar_items, fold-in, recommend_for_ratings
and partial_fit must do (the companion of :mod:`conformance`).

A test module subclasses :class:`TopNConformance` and fills in ``model_class`` and
``fast_params`` (settings that fit the planted problem quickly and well). Override
``topn_train`` when the model needs other data than the planted explicit ratings (an
implicit-feedback model), and the two ``foldin_*`` bounds when the model's training
differs from its fold-in solve by more than SGD noise.
"""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytest

from mfrec.exceptions import DataError, UnknownIdWarning
from mfrec.models import load


def own_ratings(model, user_index: int) -> dict:
    """A training user's ratings as stored by the model, {raw item id: rating}."""
    seen = model.seen_items
    row = slice(seen.indptr[user_index], seen.indptr[user_index + 1])
    return dict(
        zip(model.items_.take(seen.indices[row]).tolist(), seen.data[row].tolist(), strict=True)
    )


class TopNConformance:
    model_class: ClassVar[type]
    fast_params: ClassVar[dict[str, Any]] = {}
    #: Users of the planted problem whose own ratings are folded back in.
    foldin_users: ClassVar[tuple[int, ...]] = (0, 7, 19, 33, 51)
    #: Mean overlap of the top 10 of a folded-in copy of a training user with the top 10
    #: of the trained user, and mean correlation of their scores over all items.
    foldin_overlap_bound: ClassVar[float] = 0.8
    foldin_correlation_bound: ClassVar[float] = 0.98
    #: False for the baselines: no item factors, so similar_items must refuse, saying why.
    has_item_space: ClassVar[bool] = True
    #: False for BayesianMF: fold_in, recommend_for_ratings and partial_fit must refuse.
    supports_fold_in: ClassVar[bool] = True

    @classmethod
    def make(cls, **overrides: Any):
        params = {**cls.fast_params, **overrides}
        if "random_state" in cls.model_class._param_names():
            params.setdefault("random_state", 42)
        return cls.model_class(**params)

    @classmethod
    def topn_train(cls, planted):
        return planted[1].train

    @pytest.fixture(scope="class")
    @classmethod
    def topn_fitted(cls, planted):
        return cls.make().fit(cls.topn_train(planted))

    @pytest.fixture
    def fresh(self, planted):
        """A model this test may change (fold_in and partial_fit mutate it)."""
        return self.make().fit(self.topn_train(planted))

    # -- similar items ----------------------------------------------------------------
    def _refuses_similarity(self, model) -> bool:
        if self.has_item_space:
            return False
        with pytest.raises(NotImplementedError, match="no item factors"):
            model.similar_items(model.items_.ids[0], n=5)
        return True

    def test_similar_items_exclude_the_item_and_batch_equals_single(self, topn_fitted):
        model = topn_fitted
        if self._refuses_similarity(model):
            return
        items = model.items_.ids
        batch = model.similar_items(items, n=5)
        assert batch.item_ids.shape == (len(items), 5)
        for row, item in enumerate(items):
            single = model.similar_items(item, n=5)
            assert item not in single.item_ids.tolist()
            assert np.array_equal(single.item_ids, batch.item_ids[row])
            assert np.array_equal(single.scores, batch.scores[row])
            assert np.all(np.diff(single.scores) <= 0)
        blocked = model.similar_items(items, n=5, block_size=3)
        assert np.array_equal(blocked.item_ids, batch.item_ids)

    def test_similar_items_are_cosine_neighbours(self, topn_fitted):
        model = topn_fitted
        if self._refuses_similarity(model):
            return
        q = model.item_factors_.astype(np.float64)
        unit = q / np.linalg.norm(q, axis=1, keepdims=True)
        cosine = unit @ unit.T
        for i in (0, 5, len(q) - 1):
            sims = model.similar_items(model.items_.ids[i], n=len(q))
            assert len(sims.item_ids) == len(q) - 1  # every other item, padded nowhere
            expected = np.delete(cosine[i], i)
            np.testing.assert_allclose(sims.scores, np.sort(expected)[::-1], atol=1e-5)
            idx = model.items_.index(sims.item_ids)
            np.testing.assert_allclose(cosine[i, idx], sims.scores, atol=1e-5)

    def _refuses_fold_in(self, model) -> bool:
        if self.supports_fold_in:
            return False
        ratings = own_ratings(model, 0)
        for call in (
            lambda: model.fold_in(10**8, ratings),
            lambda: model.recommend_for_ratings(ratings, n=5),
            lambda: model.partial_fit(
                pd.DataFrame(
                    {"user": 10**8, "item": list(ratings), "rating": list(ratings.values())}
                )
            ),
        ):
            with pytest.raises(NotImplementedError, match="does not support fold-in"):
                call()
        return True

    def test_similar_items_of_an_unknown_item_is_a_key_error(self, topn_fitted):
        if self._refuses_similarity(topn_fitted):
            return
        with pytest.raises(KeyError, match="unknown item"):
            topn_fitted.similar_items(10**9)

    # -- fold-in --------------------------------------------------------------------
    def test_fold_in_of_a_training_users_ratings_recommends_like_the_user(self, topn_fitted):
        """Folding a training user's own ratings back in gives (nearly) the trained user:
        the fold-in solves the user part of the model's own objective."""
        model = topn_fitted
        if self._refuses_fold_in(model):
            return
        overlaps, correlations = [], []
        for u in self.foldin_users:
            ratings = own_ratings(model, u)
            trained = model.recommend(model.users_.ids[u], n=10)
            folded = model.recommend_for_ratings(ratings, n=10)
            overlaps.append(len(set(trained.item_ids) & set(folded.item_ids)) / 10)
            all_items = model.recommend_for_ratings(
                ratings, n=len(model.items_), exclude_rated=False
            )
            order = np.argsort(model.items_.index(all_items.item_ids))
            folded_scores = all_items.scores[order]
            trained_scores = model.predict_matrix()[u]
            if np.ptp(trained_scores) == 0:  # a constant model: the same constant
                np.testing.assert_allclose(folded_scores, trained_scores, rtol=1e-6)
                correlations.append(1.0)
                continue
            correlations.append(np.corrcoef(folded_scores, trained_scores)[0, 1])
        assert np.mean(overlaps) >= self.foldin_overlap_bound, overlaps
        assert np.mean(correlations) >= self.foldin_correlation_bound, correlations

    def test_recommend_for_ratings_never_returns_the_given_items(self, topn_fitted):
        model = topn_fitted
        if self._refuses_fold_in(model):
            return
        ratings = own_ratings(model, 3)
        items = list(ratings)
        recs = model.recommend_for_ratings(ratings, n=len(model.items_))
        assert set(recs.item_ids.tolist()).isdisjoint(items)
        assert len(recs.item_ids) == len(model.items_) - len(items)
        assert np.all(np.diff(recs.scores) <= 0)
        # Unknown items are ignored, with a warning, and change nothing.
        with pytest.warns(UnknownIdWarning, match="1 of"):
            again = model.recommend_for_ratings({**ratings, 10**9: 4.0}, n=10)
        assert np.array_equal(again.item_ids, recs.item_ids[:10])
        assert np.array_equal(again.scores, recs.scores[:10])

    def test_fold_in_then_recommend_equals_recommend_for_ratings(self, fresh):
        model = fresh
        if self._refuses_fold_in(model):
            return
        ratings = own_ratings(model, 5)
        anonymous = model.recommend_for_ratings(ratings, n=10)
        model.fold_in(10**8, ratings)
        assert 10**8 in model.users_
        stored = model.recommend(10**8, n=10)
        assert np.array_equal(stored.item_ids, anonymous.item_ids)
        assert np.array_equal(stored.scores, anonymous.scores)
        with pytest.raises(DataError, match="already known"):
            model.fold_in(10**8, ratings)
        with pytest.raises(DataError, match="already known"):
            model.fold_in(model.users_.ids[0], ratings)

    def test_save_load_after_fold_in_and_partial_fit(self, fresh, planted, tmp_path):
        model = fresh
        if self._refuses_fold_in(model):
            return
        model.fold_in(10**8, own_ratings(model, 2))
        frame = self.topn_train(planted).to_frame()
        update = frame[frame.user.isin(model.users_.ids[:3])].copy()
        update["user"] = np.where(update.user == model.users_.ids[0], 10**8 + 1, update.user)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            model.partial_fit(update[["user", "item", "rating"]])
        path = tmp_path / "m.mfrec"
        model.save(path)
        loaded = load(path)
        assert loaded.users_ == model.users_
        users = [10**8, 10**8 + 1, *model.users_.ids[:4].tolist()]
        a, b = model.recommend(users, n=7), loaded.recommend(users, n=7)
        assert np.array_equal(a.item_ids, b.item_ids) and np.array_equal(a.scores, b.scores)
        assert (loaded.seen_items != model.seen_items).nnz == 0
        np.testing.assert_array_equal(
            loaded.predict([10**8] * 3, model.items_.ids[:3]),
            model.predict([10**8] * 3, model.items_.ids[:3]),
        )
