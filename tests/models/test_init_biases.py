"""Epoch 0 for the biased SGD models: ``init_biases="baseline"`` starts the biases at the
bias baseline's solution; ``baseline_fallback`` (the default) lets early stopping keep
the bias baseline ("epoch 0") when no epoch beats it on the held-out data
(docs/defaults.md, r13)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from mfrec.data.split import holdout
from mfrec.data.synthetic import make_ratings
from mfrec.models import BiasBaseline, BiasedMF, SVDpp


def _rmse(model, fold) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a few test ids unseen in training
        predicted = model.predict_ratings(fold.test, clip=True)
    return float(np.sqrt(np.mean((predicted - fold.test.rating) ** 2)))


def _epoch_zero() -> BiasBaseline:
    """The bias model that is epoch 0 of the biased iterative models."""
    return BiasBaseline(reg_user="auto", reg_item="auto")


def _planted(rank: int, seed: int, noise_std: float = 0.9, **extra):
    data = make_ratings(
        n_users=800, n_items=500, n_ratings=16_000, n_factors=rank, noise_std=noise_std,
        random_state=seed, **extra,
    ).ratings  # fmt: skip
    return holdout(data, 0.2, random_state=0)


#: The data seed of each structure-free fold (by id), for seed-specific expectations.
STRUCTURE_FREE_SEED: dict[int, int] = {}


@pytest.fixture(scope="module", params=[0, 4])
def structure_free(request):
    fold = _planted(0, request.param)
    STRUCTURE_FREE_SEED[id(fold)] = request.param
    return fold


@pytest.mark.parametrize("cls", [BiasedMF, SVDpp])
@pytest.mark.parametrize("scale", [None, (1, 10)])
def test_zero_epochs_from_the_baseline_is_the_bias_baseline(cls, scale):
    """The start is BiasBaseline's solution in the ratings' own units, whatever the
    rating scale (and so rating_unit): its biases, and its predictions up to the tiny
    initial factor product."""
    extra = {} if scale is None else {"scale": scale, "round_to": 1.0, "global_mean": 6.0}
    fold = _planted(3, 5, **extra)
    baseline = _epoch_zero().fit(fold.train)
    model = cls(n_epochs=0, patience=None, init_biases="baseline", random_state=0)
    model.fit(fold.train)
    assert model.history_ == [] and model.best_epoch_ == 0
    np.testing.assert_allclose(model.user_bias_, baseline.user_bias_, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.item_bias_, baseline.item_bias_, rtol=1e-5, atol=1e-6)
    width = fold.train.rating_range()[1] - fold.train.rating_range()[0]
    gap = np.abs(model.predict_ratings(fold.test) - baseline.predict_ratings(fold.test))
    assert gap.max() < 0.01 * width
    # With baseline_fallback (the default), 0 epochs are epoch 0 as well: the same model.
    fallback = cls(n_epochs=0, patience=None, random_state=0).fit(fold.train)
    np.testing.assert_array_equal(fallback.user_bias_, model.user_bias_)
    np.testing.assert_array_equal(fallback.item_factors_, model.item_factors_)
    # Without either, the zero-epoch model is the global mean: the options act.
    zero = cls(n_epochs=0, patience=None, baseline_fallback=False, random_state=0)
    zero.fit(fold.train)
    assert not np.any(zero.user_bias_) and not np.any(zero.item_bias_)


#: The two ways to have epoch 0 be the bias baseline.
EPOCH_ZERO = [{}, {"init_biases": "baseline"}]


@pytest.mark.parametrize("cls", [BiasedMF, SVDpp])
def test_no_structure_from_the_baseline_start_keeps_it(cls, structure_free):
    """On ratings = mean + biases + noise, from the bias baseline's start no epoch beats
    it on the held-out slice: the model is the bias baseline (best epoch 0, a refit of 0
    epochs), within 0.05% of its test RMSE."""
    fold = structure_free
    baseline = _rmse(_epoch_zero().fit(fold.train), fold)
    model = cls(random_state=0, init_biases="baseline").fit(fold.train)
    assert model.best_epoch_ == 0
    assert model.history_ == [], "the refit ran no epoch"
    selection = [r["val_rmse"] for r in model.validation_history_]
    assert len(selection) > model.patience
    assert model.start_val_rmse_ <= min(selection)
    assert abs(_rmse(model, fold) - baseline) <= 5e-4 * baseline


@pytest.mark.parametrize("cls", [BiasedMF, SVDpp])
def test_no_structure_the_fallback_is_a_choice_on_the_slice(cls, structure_free):
    """At the defaults (biases from 0, ``baseline_fallback``) on structure-free data the
    held-out slice chooses between the bias baseline (epoch 0) and the run's best epoch
    (a bias model of the SGD's own, the factors still tiny) by the one-standard-error
    rule: best_epoch_ 0 exactly when the best epoch's gain in squared error on the slice
    is within one standard error (``start_margin_`` <= 0), and then the model is the
    bias baseline. On both data sets it keeps epoch 0: on data seed 0 the best epoch
    scored better on the slice, but not by a standard error -- and it is the worse model
    on the test (the second check fails if the rule is the plain minimum)."""
    fold = structure_free
    baseline = _rmse(_epoch_zero().fit(fold.train), fold)
    model = cls(random_state=0).fit(fold.train)
    selection = [r["val_rmse"] for r in model.validation_history_]
    if model.start_margin_ <= 0:
        assert model.best_epoch_ == 0 and model.history_ == []
        assert abs(_rmse(model, fold) - baseline) <= 5e-4 * baseline
    else:
        assert selection[model.best_epoch_ - 1] == min(selection) < model.start_val_rmse_
        assert len(model.history_) == model.best_epoch_
    assert model.best_epoch_ == 0
    if STRUCTURE_FREE_SEED[id(fold)] == 0:
        assert model.start_val_rmse_ > min(selection), "the plain minimum would not keep it"


@pytest.mark.parametrize("cls", [BiasedMF, SVDpp])
def test_structure_is_still_learned(cls):
    """With planted rank-3 structure an epoch beats epoch 0: the fallback changes
    nothing (the same arrays as without it), and the run from the baseline start learns
    the structure too: best epoch > 0, test RMSE well below the bias baseline's."""
    fold = _planted(3, 4, noise_std=0.4)
    baseline = _rmse(_epoch_zero().fit(fold.train), fold)
    fallback = cls(random_state=0).fit(fold.train)
    plain = cls(random_state=0, baseline_fallback=False).fit(fold.train)
    assert fallback.best_epoch_ == plain.best_epoch_ > 0
    np.testing.assert_array_equal(fallback.user_factors_, plain.user_factors_)
    np.testing.assert_array_equal(fallback.item_bias_, plain.item_bias_)
    assert fallback.start_val_rmse_ > min(r["val_rmse"] for r in fallback.validation_history_)
    assert not hasattr(plain, "start_val_rmse_")
    start = cls(random_state=0, init_biases="baseline").fit(fold.train)
    assert start.best_epoch_ > 0
    assert _rmse(start, fold) < 0.95 * baseline
    assert _rmse(start, fold) <= 1.01 * _rmse(plain, fold)


@pytest.mark.parametrize("options", EPOCH_ZERO, ids=["fallback", "baseline-start"])
@pytest.mark.parametrize("cls", [BiasedMF, SVDpp])
def test_validation_data_given_the_best_of_start_and_epochs_is_kept(cls, options, structure_free):
    """With validation data given to fit: epoch 0's RMSE is recorded as
    ``start_val_rmse_``; the model kept is the best of epoch 0 and the epochs run
    (best_epoch_ 0: the same arrays as a fit of 0 epochs). From the baseline start no run
    stops before some epoch beat it; the fallback leaves the run as it was."""
    fold = structure_free
    model = cls(random_state=0, n_epochs=12, patience=2, **options)
    model.fit(fold.train, validation=fold.test)
    epochs = [r["val_rmse"] for r in model.history_]
    best = min([model.start_val_rmse_, *epochs])
    assert _rmse(model, fold) == pytest.approx(best, rel=1e-6)
    if model.best_epoch_ == 0:
        assert model.start_val_rmse_ <= min(epochs)
        direct = cls(random_state=0, n_epochs=0, patience=None, **options)
        direct.fit(fold.train)
        np.testing.assert_array_equal(direct.user_bias_, model.user_bias_)
        np.testing.assert_array_equal(direct.item_factors_, model.item_factors_)
    else:
        assert epochs[model.best_epoch_ - 1] == best < model.start_val_rmse_
    beaten = [e for e, rmse in enumerate(epochs, 1) if rmse < model.start_val_rmse_]
    if options.get("init_biases") == "baseline" and not beaten:
        assert len(epochs) == 12, "epoch 0 is the start: no stop before it is beaten"
    elif options.get("init_biases") == "baseline":
        assert len(epochs) >= beaten[0]
    else:  # the fallback: patience as without it
        plain = cls(random_state=0, n_epochs=12, patience=2, baseline_fallback=False)
        plain.fit(fold.train, validation=fold.test)
        assert [r["val_rmse"] for r in plain.history_] == epochs


@pytest.mark.parametrize("cls", [BiasedMF, SVDpp])
def test_same_seed_same_model(cls):
    fold = _planted(3, 4, noise_std=0.4)
    a = cls(random_state=3, init_biases="baseline").fit(fold.train)
    b = cls(random_state=3, init_biases="baseline").fit(fold.train)
    assert a.best_epoch_ > 0
    assert a.best_epoch_ == b.best_epoch_
    np.testing.assert_array_equal(a.user_factors_, b.user_factors_)
    np.testing.assert_array_equal(a.item_bias_, b.item_bias_)
    # And where epoch 0 is kept (the fallback on structure-free data).
    flat = _planted(0, 4)
    c, d = cls(random_state=0).fit(flat.train), cls(random_state=0).fit(flat.train)
    assert c.best_epoch_ == d.best_epoch_ == 0
    np.testing.assert_array_equal(c.item_factors_, d.item_factors_)
    np.testing.assert_array_equal(c.user_bias_, d.user_bias_)


@pytest.mark.parametrize("cls", [BiasedMF, SVDpp])
def test_fallback_solves_the_baseline_only_where_epoch_zero_is_scored(cls, monkeypatch):
    """The held-out run scores epoch 0, so it needs the baseline; the refit on all the
    ratings (an epoch won) and a run of all ``n_epochs`` (``patience=None``) never use
    it and must not pay for it (seconds at 10M ratings). The model is unchanged."""
    import mfrec.models.baseline as baseline

    calls = []
    real = baseline.baseline_biases

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(baseline, "baseline_biases", counted)
    fold = _planted(3, 4, noise_std=0.4)
    model = cls(random_state=0).fit(fold.train)
    assert model.best_epoch_ > 0
    assert len(calls) == 1  # the held-out run, not the refit
    plain = cls(random_state=0, baseline_fallback=False).fit(fold.train)
    np.testing.assert_array_equal(model.user_factors_, plain.user_factors_)
    np.testing.assert_array_equal(model.item_bias_, plain.item_bias_)
    calls.clear()
    cls(random_state=0, patience=None, n_epochs=3).fit(fold.train)
    assert calls == []
    cls(random_state=0, patience=None, n_epochs=0).fit(fold.train)
    assert len(calls) == 1  # n_epochs=0 is the baseline itself


def test_fallback_baseline_runs_on_the_threads_the_model_was_given(monkeypatch):
    """SVD++ has no ``n_threads``: its epoch-0 baseline keeps the caller's thread count
    (it once reset it to every core); BiasedMF's follows its own ``n_threads``."""
    import numba

    import mfrec.models.baseline as baseline
    from mfrec._threads import numba_threads

    seen = []
    real = baseline.baseline_biases

    def spy(*args, **kwargs):
        seen.append(numba.get_num_threads())
        return real(*args, **kwargs)

    monkeypatch.setattr(baseline, "baseline_biases", spy)
    fold = _planted(3, 4, noise_std=0.4)
    with numba_threads(1):
        SVDpp(random_state=0, n_epochs=2).fit(fold.train)
        svdpp, seen[:] = list(seen), []
        BiasedMF(random_state=0, n_epochs=2, n_threads=2).fit(fold.train)
    assert svdpp and set(svdpp) == {1}
    assert seen and set(seen) == {min(2, numba.config.NUMBA_NUM_THREADS)}


def test_the_one_standard_error_margin():
    """The best epoch's mean drop in squared error minus its standard error: positive
    only when the drop is larger than its own noise."""
    from mfrec.models.base import _one_se_margin

    y = np.zeros(4)
    assert _one_se_margin(y, np.ones(4), np.zeros(4)) == pytest.approx(1.0)  # no noise
    start = np.sqrt([2.0, 0.0, 2.0, 0.0])
    best = np.sqrt([0.0, 1.0, 0.0, 1.0])  # drops 2, -1, 2, -1: mean 0.5, SE 0.866
    assert _one_se_margin(y, start, best) == pytest.approx(0.5 - np.sqrt(3.0) / 2)
    assert _one_se_margin(y, best, start) < 0
