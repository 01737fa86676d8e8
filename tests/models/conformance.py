"""The conformance suite every mfrec model passes (house rule 8).

A test module subclasses :class:`ModelConformance` and fills in:

- ``model_class``;
- ``fast_params``: settings that fit the tiny planted problem quickly and well;
- ``rmse_bound``: the test RMSE the model must reach on it;
- ``baseline_ratio``: and its test RMSE must be below this fraction of the RMSE of a
  baseline fitted on the same data (``baseline``, BiasBaseline by default: about 0.49
  here, while the global mean scores 0.59) -- an absolute bound alone passes a model
  whose factors are broken;
- ``alternatives``: for *every* hyperparameter, another valid value -- each must change
  the fitted model (a parameter that changes nothing is a bug, as Surprise learned);
- ``bad_values``: for each hyperparameter, a value that must be rejected.
"""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

import numpy as np
import pytest

from mfrec.data.ratings import Ratings
from mfrec.data.split import holdout
from mfrec.data.synthetic import make_ratings
from mfrec.exceptions import NotFittedError, ParameterError, UnknownIdWarning
from mfrec.models import load

PLANTED_NOISE = 0.1


def planted_problem(seed: int = 7):
    """60 users x 40 items, rank 3, half observed, continuous ratings with small noise."""
    data = make_ratings(
        n_users=60,
        n_items=40,
        density=0.5,
        n_factors=3,
        noise_std=PLANTED_NOISE,
        round_to=None,
        scale=None,
        missing="uniform",
        random_state=seed,
    )
    fold = holdout(data.ratings, test_fraction=0.2, random_state=seed)
    return data, fold


def _test_rmse(model, fold) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnknownIdWarning)
        predicted = model.predict_ratings(fold.test)
    return float(np.sqrt(np.mean((predicted - fold.test.rating) ** 2)))


def _baseline(name: str):
    """``bias``: BiasBaseline (regularised biases); ``global-mean``: the mean rating."""
    from mfrec.models import BiasBaseline, GlobalMean

    return {"bias": BiasBaseline, "global-mean": GlobalMean}[name]()


def _fitted_arrays(model) -> dict[str, Any]:
    return {k: getattr(model, k) for k in model._fitted_arrays}


class ModelConformance:
    model_class: ClassVar[type]
    fast_params: ClassVar[dict[str, Any]] = {}
    rmse_bound: ClassVar[float] = 0.5
    baseline: ClassVar[str] = "bias"
    baseline_ratio: ClassVar[float] = 0.9
    alternatives: ClassVar[dict[str, Any]] = {}
    bad_values: ClassVar[dict[str, Any]] = {}
    #: Parameters exempt from the "changes the result" test, with the reason.
    exempt: ClassVar[dict[str, str]] = {}
    #: Whether the model has a per-epoch history.
    iterative: ClassVar[bool] = True

    @classmethod
    def make(cls, **overrides: Any):
        params = {**cls.fast_params, **overrides}
        if "random_state" in cls.model_class._param_names():
            params.setdefault("random_state", 42)
        else:
            params.pop("random_state", None)
        return cls.model_class(**params)

    @pytest.fixture(scope="class")
    @classmethod
    def fitted(cls, planted):
        _, fold = planted
        return cls.make().fit(fold.train)

    # -- accuracy ---------------------------------------------------------------------
    def test_fits_planted_data(self, planted, fitted):
        _, fold = planted
        rmse = _test_rmse(fitted, fold)
        assert rmse < self.rmse_bound, f"test RMSE {rmse:.4f} >= bound {self.rmse_bound}"
        reference = _test_rmse(_baseline(self.baseline).fit(fold.train), fold)
        assert rmse < self.baseline_ratio * reference, (
            f"test RMSE {rmse:.4f} is not below {self.baseline_ratio} x the {self.baseline} "
            f"baseline's {reference:.4f} on the same data"
        )

    def test_predictions_finite_and_clipped(self, planted, fitted):
        _, fold = planted
        raw = fitted.predict_ratings(fold.train)
        assert np.all(np.isfinite(raw))
        clipped = fitted.predict_ratings(fold.train, clip=True)
        low, high = fitted.rating_scale_
        assert clipped.min() >= low and clipped.max() <= high
        assert np.array_equal(clipped, np.clip(raw, low, high))

    def test_predict_matches_matrix_and_ids(self, fitted):
        matrix = fitted.predict_matrix()
        assert matrix.shape == (len(fitted.users_), len(fitted.items_))
        users = fitted.users_.ids[[0, 3, 5]]
        items = fitted.items_.ids[[1, 2, 7]]
        direct = fitted.predict(users, items)
        np.testing.assert_allclose(direct, matrix[[0, 3, 5], [1, 2, 7]], rtol=1e-5, atol=1e-5)
        # A scalar user broadcasts over items.
        row = fitted.predict(users[0], fitted.items_.ids)
        np.testing.assert_allclose(row, matrix[0], rtol=1e-5, atol=1e-5)

    # -- top-N ------------------------------------------------------------------------
    def test_recommend_excludes_seen_and_batch_equals_single(self, planted, fitted):
        users = fitted.users_.ids
        batch = fitted.recommend(users, n=10)
        seen = fitted.seen_items
        for row, user in enumerate(users):
            single = fitted.recommend(user, n=10)
            valid = np.isfinite(batch.scores[row])
            assert np.array_equal(single.item_ids, batch.item_ids[row][valid])
            assert np.array_equal(single.scores, batch.scores[row][valid])
            rated = set(fitted.items_.take(seen[row].indices).tolist())
            assert rated.isdisjoint(single.item_ids.tolist())
            assert np.all(np.diff(single.scores) <= 0), "not sorted best first"
        # Without exclusion the scores are the model's own, best first.
        full = fitted.recommend(users[0], n=len(fitted.items_), exclude_seen=False)
        np.testing.assert_allclose(
            full.scores, np.sort(fitted.predict_matrix()[0])[::-1], rtol=1e-5, atol=1e-5
        )

    def test_recommend_is_the_same_in_every_block_size(self, fitted):
        users = fitted.users_.ids
        whole = fitted.recommend(users, n=7)
        for block_size in (1, 3, 16, len(users) + 5):
            blocked = fitted.recommend(users, n=7, block_size=block_size)
            assert np.array_equal(blocked.item_ids, whole.item_ids), block_size
            assert np.array_equal(blocked.scores, whole.scores), block_size

    def test_recommend_pads_when_catalogue_exhausted(self, planted, fitted):
        n_items = len(fitted.items_)
        recs = fitted.recommend(fitted.users_.ids[:3], n=n_items)
        counts = np.asarray(fitted.seen_items[:3].getnnz(axis=1))
        for row in range(3):
            n_valid = int(np.isfinite(recs.scores[row]).sum())
            assert n_valid == n_items - counts[row]
            assert np.all(recs.item_ids[row][n_valid:] == -1)

    # -- persistence ----------------------------------------------------------------
    def test_save_load_round_trip(self, planted, fitted, tmp_path):
        _, fold = planted
        path = tmp_path / "model.mfrec"
        fitted.save(path)
        loaded = load(path)
        assert type(loaded) is type(fitted)
        assert loaded.get_params() == fitted.get_params()
        assert np.array_equal(
            loaded.predict_ratings(fold.train), fitted.predict_ratings(fold.train)
        )
        users = fitted.users_.ids[:5]
        a, b = fitted.recommend(users, n=5), loaded.recommend(users, n=5)
        assert np.array_equal(a.item_ids, b.item_ids) and np.array_equal(a.scores, b.scores)
        assert loaded.history_ == fitted.history_
        for key, value in _fitted_arrays(fitted).items():
            restored = getattr(loaded, key)
            if value is None:
                assert restored is None, key
            else:
                assert restored.dtype == value.dtype, key
                assert np.array_equal(restored, value), f"{key} changed in save/load"

    # -- determinism ------------------------------------------------------------------
    def test_same_seed_same_model(self, planted):
        _, fold = planted
        first = _fitted_arrays(self.make(random_state=3).fit(fold.train))
        second = _fitted_arrays(self.make(random_state=3).fit(fold.train))
        for key, value in first.items():
            if value is None:
                assert second[key] is None
            else:
                assert np.array_equal(value, second[key]), f"{key} differs between seeded runs"

    def test_different_seed_different_model(self, planted):
        """A seed that changes nothing would be decorative (and hide a fixed RNG)."""
        if "random_state" not in self.model_class._param_names():
            pytest.skip(f"{self.model_class.__name__} has no random_state: deterministic")
        if "random_state" in self.exempt:
            pytest.skip(self.exempt["random_state"])
        _, fold = planted
        first = _fitted_arrays(self.make(random_state=3).fit(fold.train))
        second = _fitted_arrays(self.make(random_state=4).fit(fold.train))
        moved = [
            key
            for key, value in first.items()
            if value is not None and not np.allclose(value, second[key], rtol=0, atol=1e-4)
        ]
        assert moved, "random_state=3 and random_state=4 fitted the same model"

    # -- unknown ids ------------------------------------------------------------------
    def test_unknown_ids_follow_the_policy(self, fitted):
        known_user, known_item = fitted.users_.ids[0], fitted.items_.ids[0]
        mu = fitted.global_mean_
        bu = getattr(fitted, "user_bias_", None)
        bi = getattr(fitted, "item_bias_", None)
        with pytest.warns(UnknownIdWarning, match="unseen in training"):
            both = fitted.predict([10**9], [10**9])
        assert both[0] == pytest.approx(mu, abs=1e-6)
        with pytest.warns(UnknownIdWarning):
            new_user = fitted.predict([10**9], [known_item])
        assert new_user[0] == pytest.approx(mu + (bi[0] if bi is not None else 0), abs=1e-5)
        with pytest.warns(UnknownIdWarning):
            new_item = fitted.predict([known_user], [10**9])
        assert new_item[0] == pytest.approx(mu + (bu[0] if bu is not None else 0), abs=1e-5)
        with pytest.warns(UnknownIdWarning):
            recs = fitted.recommend(10**9, n=3)
        assert len(recs.item_ids) == 3
        assert np.all(np.isfinite(recs.scores))
        # Any mix of known and unknown ids: finite predictions, clipped ones on the scale.
        users = np.array([known_user, 10**9, known_user, 10**9 + 1])
        items = np.array([10**9, known_item, known_item, 10**9 + 2])
        with pytest.warns(UnknownIdWarning):
            mixed = fitted.predict(users, items)
        assert np.all(np.isfinite(mixed)), mixed
        with pytest.raises(Exception, match="integers"):
            fitted.predict(["1"], [known_item])

    # -- hyperparameters --------------------------------------------------------------
    def test_alternatives_cover_every_parameter(self):
        names = set(self.model_class._param_names())
        covered = set(self.alternatives) | set(self.exempt) | {"random_state"}
        assert names <= covered, f"no alternative value for {sorted(names - covered)}"

    def test_each_hyperparameter_changes_the_result(self, planted):
        """Beyond rounding: a change of 1e-4 in some prediction (a float32/float64 switch
        alone moves them by ~1e-7, so ``dtype`` is checked by the arrays' dtype)."""
        _, fold = planted
        base = self.make().fit(fold.train).predict_ratings(fold.train)
        for name, value in self.alternatives.items():
            model = self.make(**{name: value}).fit(fold.train)
            if name == "dtype":
                arrays = [a for a in _fitted_arrays(model).values() if a is not None]
                assert arrays and all(a.dtype == np.dtype(value) for a in arrays), name
                continue
            changed = model.predict_ratings(fold.train)
            assert not np.allclose(base, changed, rtol=0, atol=1e-4), (
                f"{name}={value!r} changed nothing beyond rounding"
            )

    def test_bad_hyperparameters_are_rejected(self, planted):
        _, fold = planted
        for name, value in self.bad_values.items():
            with pytest.raises(ParameterError, match=name):
                self.make(**{name: value}).fit(fold.train)

    def test_unfitted_model_says_so(self):
        with pytest.raises(NotFittedError, match="fit"):
            self.make().predict([1], [1])

    def test_history(self, fitted):
        if not self.iterative:
            return
        assert fitted.history_, "iterative models record a history"
        first = fitted.history_[0]
        assert {"epoch", "seconds"} <= set(first)
        assert all(
            np.isfinite(v) for rec in fitted.history_ for k, v in rec.items() if k != "epoch"
        )

    def test_rejects_non_ratings(self):
        with pytest.raises(Exception, match="Ratings"):
            self.make().fit(np.zeros((3, 3)))


def tiny_ratings() -> Ratings:
    """Three users, four items, string ids, a declared 1-5 scale."""
    return Ratings.from_arrays(
        ["a", "a", "b", "b", "c", "c", "c"],
        ["x", "y", "x", "z", "y", "z", "w"],
        [5, 3, 4, 1, 2, 5, 4],
        scale=(1, 5),
    )
