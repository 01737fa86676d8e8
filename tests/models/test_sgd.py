"""FunkSVD and BiasedMF: conformance, the SGD step's calculus, kernels, training control."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from mfrec.data.ratings import Ratings
from mfrec.data.split import holdout
from mfrec.data.synthetic import make_ratings
from mfrec.exceptions import DivergenceError, ParameterError
from mfrec.kernels.sgd import sgd_epoch, sgd_epoch_reference
from mfrec.models import BiasedMF, FunkSVD

from .conformance import ModelConformance

SGD_BAD = {
    "rating_unit": 0.0,
    "n_factors": 0,
    "n_epochs": -1,
    "lr": 0.0,
    "reg": -0.1,
    "init_std": 0.0,
    "dtype": "float16",
    "patience": 0,
    "n_strata": 0,
    "n_threads": 0,
    "optimizer": "adam!",
    "validation_fraction": 1.0,
}


class TestBiasedMFConformance(ModelConformance):
    model_class = BiasedMF
    # The planted problem is almost noise-free: light regularisation, the fixed per-row
    # part included (the defaults are for noisy data).
    fast_params = {
        "n_factors": 3, "n_epochs": 150, "lr": 0.1, "reg": 0.01, "reg_row": 0.05,
        "reg_bias_row": 0.05, "patience": None,
    }  # fmt: skip
    rmse_bound = 0.25
    alternatives = {
        "n_factors": 5,
        "n_epochs": 40,
        "lr": 0.01,
        "reg": 0.1,
        "lr_bias": 0.05,
        "reg_bias": 0.5,
        "reg_row": 7.0,
        "reg_bias_row": 3.0,
        "init_std": 0.3,
        "dtype": "float64",
        "n_strata": 1,
        "optimizer": "sgd",
        "rating_unit": 2.0,
        "init_biases": "baseline",
    }
    exempt = {
        "baseline_fallback": "acts with early stopping only; covered by test_init_biases.py",
        "patience": "stops early; covered by test_early_stopping*",
        "validation_fraction": "acts with patience only; covered by "
        "test_early_stopping_on_a_held_out_slice_then_refit",
        "n_threads": "must not change the result; covered by test_thread_invariance.py",
    }
    bad_values = {
        **SGD_BAD,
        "lr_bias": 2.0,
        "reg_bias": -1.0,
        "init_biases": "mean",
        "baseline_fallback": 1,
    }


class TestFunkSVDConformance(ModelConformance):
    model_class = FunkSVD
    fast_params = {
        "n_factors": 4, "n_epochs": 300, "lr": 0.01, "reg": 0.01, "init_std": 0.3,
        "optimizer": "sgd", "patience": None,
    }  # fmt: skip
    rmse_bound = 0.35
    alternatives = {
        "n_factors": 6,
        "n_epochs": 40,
        "lr": 0.005,
        "reg": 0.2,
        "init_std": 0.5,
        "dtype": "float64",
        "n_strata": 3,
        "optimizer": "adagrad",
        "init_mean": 0.0,
        "rating_unit": 2.0,
        "init_product": 0.1,
    }
    exempt = {
        "patience": "stops early; covered by test_early_stopping*",
        "validation_fraction": "acts with patience only; covered by "
        "test_early_stopping_on_a_held_out_slice_then_refit",
        "n_threads": "must not change the result; covered by test_thread_invariance.py",
    }
    bad_values = {**SGD_BAD, "init_mean": -0.5, "init_product": 0.0}


# -- the SGD step is the negative gradient of the per-rating objective -----------------
def _objective(r, mu, p, q, bu, bi, reg, reg_bias):
    err = r - (mu + bu + bi + p @ q)
    return 0.5 * err**2 + 0.5 * reg * (p @ p + q @ q) + 0.5 * reg_bias * (bu**2 + bi**2)


@pytest.mark.parametrize("use_bias", [True, False])
def test_sgd_step_equals_negative_gradient(use_bias):
    """One kernel step moves each parameter by -lr x dL/dparam, with dL from central
    finite differences of L = 1/2 e^2 + reg/2 (|p|^2+|q|^2) + reg_bias/2 (bu^2+bi^2)."""
    rng = np.random.default_rng(0)
    k, lr, reg, reg_bias, mu, r = 5, 1e-3, 0.07, 0.03, 3.2, 4.0
    P, Q = rng.normal(size=(1, k)), rng.normal(size=(1, k))
    bu = rng.normal(size=1) if use_bias else np.zeros(1)
    bi = rng.normal(size=1) if use_bias else np.zeros(1)
    before = (P[0].copy(), Q[0].copy(), bu[0], bi[0])
    one = np.zeros(1, dtype=np.int32)
    none = np.zeros((0, 2))
    sgd_epoch(
        one, one, np.array([r]), one, P, Q, bu, bi, mu, lr, reg, lr, reg_bias, use_bias,
        none, none, False, none, none,
    )  # fmt: skip

    def f(p, q, b_u, b_i):
        return _objective(r, mu, p, q, b_u, b_i, reg, reg_bias if use_bias else 0.0)

    h = 1e-6
    p0, q0, bu0, bi0 = before
    for j in range(k):
        e = np.zeros(k)
        e[j] = h
        grad_p = (f(p0 + e, q0, bu0, bi0) - f(p0 - e, q0, bu0, bi0)) / (2 * h)
        grad_q = (f(p0, q0 + e, bu0, bi0) - f(p0, q0 - e, bu0, bi0)) / (2 * h)
        assert (P[0, j] - p0[j]) / -lr == pytest.approx(grad_p, rel=1e-6, abs=1e-8)
        assert (Q[0, j] - q0[j]) / -lr == pytest.approx(grad_q, rel=1e-6, abs=1e-8)
    if use_bias:
        grad_bu = (f(p0, q0, bu0 + h, bi0) - f(p0, q0, bu0 - h, bi0)) / (2 * h)
        grad_bi = (f(p0, q0, bu0, bi0 + h) - f(p0, q0, bu0, bi0 - h)) / (2 * h)
        assert (bu[0] - bu0) / -lr == pytest.approx(grad_bu, rel=1e-6)
        assert (bi[0] - bi0) / -lr == pytest.approx(grad_bi, rel=1e-6)
    else:
        assert bu[0] == 0 and bi[0] == 0


@pytest.mark.parametrize("count_aware", [False, True])
@pytest.mark.parametrize("adaptive", [False, True])
@pytest.mark.parametrize("use_bias", [True, False])
def test_kernel_agrees_with_numpy_reference(use_bias, adaptive, count_aware):
    rng = np.random.default_rng(1)
    n_users, n_items, k, n = 20, 15, 4, 200
    # Count-aware penalty: each row's own extra coefficients (factors, bias).
    extra = (
        (rng.uniform(0, 0.2, (n_users, 2)), rng.uniform(0, 0.2, (n_items, 2)))
        if count_aware
        else (np.zeros((0, 2)), np.zeros((0, 2)))
    )
    users = rng.integers(0, n_users, n).astype(np.int32)
    items = rng.integers(0, n_items, n).astype(np.int32)
    values = rng.uniform(1, 5, n).astype(np.float32)
    order = rng.permutation(n).astype(np.int32)
    P = rng.normal(0, 0.1, (n_users, k))
    Q = rng.normal(0, 0.1, (n_items, k))
    bu, bi = np.zeros(n_users), np.zeros(n_items)
    GU = np.ones((n_users if adaptive else 0, 2))
    GI = np.ones((n_items if adaptive else 0, 2))
    lr = 0.1 if adaptive else 0.01
    mu = 3.0 if use_bias else 0.0
    P2, Q2, bu2, bi2, GU2, GI2 = P.copy(), Q.copy(), bu.copy(), bi.copy(), GU.copy(), GI.copy()
    for _ in range(2):
        args = (mu, lr, 0.05, 0.02, 0.03, use_bias)
        sse = sgd_epoch(users, items, values, order, P, Q, bu, bi, *args, GU, GI, adaptive, *extra)
        sse_ref = sgd_epoch_reference(
            users, items, values, order, P2, Q2, bu2, bi2, *args, GU2, GI2, adaptive, *extra
        )
        assert sse == pytest.approx(sse_ref, rel=1e-10)
    np.testing.assert_allclose(P, P2, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(Q, Q2, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(bu, bu2, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(bi, bi2, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(GU, GU2, rtol=1e-10)
    np.testing.assert_allclose(GI, GI2, rtol=1e-10)
    if adaptive:  # the accumulators grew where ratings were seen, and only there
        assert np.all(GU[np.unique(users), 0] > 1) and np.all(GI[np.unique(items), 0] > 1)
        assert np.all((GU[:, 1] > 1) == use_bias)


# -- recovery of a planted model -------------------------------------------------------
@pytest.mark.parametrize(
    ("model", "planted_biases"),
    [
        (
            BiasedMF(
                n_factors=3,
                n_epochs=120,
                lr=0.01,
                reg=0.005,
                reg_row=0.0,
                reg_bias_row=0.0,
                random_state=0,
                optimizer="sgd",
                patience=None,
                rating_unit=1.0,  # continuous data of no declared scale: raw units
            ),
            True,
        ),
        # Funk SVD has no biases or mean: plant a pure rank-3 product for it.
        (
            FunkSVD(
                n_factors=3,
                n_epochs=300,
                lr=0.005,
                reg=0.005,
                init_std=0.3,
                random_state=0,
                optimizer="sgd",
                patience=None,
                init_mean=0.0,
                rating_unit=1.0,
            ),
            False,
        ),
    ],
    ids=["biased-mf", "funk-svd"],
)
def test_recovers_planted_model_to_noise_level(model, planted_biases):
    """Low-noise continuous planted data: test RMSE within 10% of the noise level."""
    noise = 0.1
    biases = (
        {} if planted_biases else {"global_mean": 0.0, "user_bias_std": 0.0, "item_bias_std": 0.0}
    )
    data = make_ratings(
        n_users=300,
        n_items=200,
        density=0.3,
        n_factors=3,
        noise_std=noise,
        round_to=None,
        scale=None,
        missing="uniform",
        random_state=11,
        **biases,
    )
    fold = holdout(data.ratings, 0.1, random_state=0)
    model.fit(fold.train)
    predicted = model.predict_ratings(fold.test)
    rmse = float(np.sqrt(np.mean((predicted - fold.test.rating) ** 2)))
    assert rmse <= 1.1 * noise, f"test RMSE {rmse:.4f} vs noise {noise}"


def _low_rank_one_to_five(seed: int = 12):
    """Planted rank-3 ratings with biases on a 1..5 scale (continuous, unclipped noise)."""
    data = make_ratings(
        n_users=300, n_items=200, density=0.3, n_factors=3, noise_std=0.1, round_to=None,
        scale=None, missing="uniform", random_state=seed,
    )  # fmt: skip
    return holdout(data.ratings, 0.1, random_state=0)


@pytest.mark.parametrize("fraction", [1.0, 0.25, 0.01])
def test_init_product_sets_the_initial_prediction(fraction):
    """With init_mean=None the factors start centred so that p_u . q_i is
    init_product x the mean rating: one epoch with a negligible step leaves the start
    visible in the predictions."""
    fold = _low_rank_one_to_five()
    model = FunkSVD(
        n_factors=20, n_epochs=1, lr=1e-9, init_std=1e-4, init_product=fraction,
        patience=None, random_state=0,
    ).fit(fold.train)  # fmt: skip
    mean = float(np.mean(fold.train.rating))
    predicted = model.predict_ratings(fold.test)
    np.testing.assert_allclose(predicted, fraction * mean, rtol=1e-2)


def test_small_initial_product_is_seeded_and_trains_to_noise_level():
    """A small start (init_product=0.01, init_std=0.03) must still learn the mean and
    the planted structure: test RMSE within 25% of the noise level on low-rank 1..5
    data (as from the default start, 0.119); the same seed gives the same factors,
    another seed other factors."""
    fold = _low_rank_one_to_five()
    params = {
        "n_factors": 10, "n_epochs": 200, "reg": 0.01, "init_product": 0.01,
        "init_std": 0.03, "patience": None,
    }  # fmt: skip
    first = FunkSVD(**params, random_state=3).fit(fold.train)
    again = FunkSVD(**params, random_state=3).fit(fold.train)
    other = FunkSVD(**params, random_state=4).fit(fold.train)
    np.testing.assert_array_equal(first.user_factors_, again.user_factors_)
    assert not np.allclose(first.user_factors_, other.user_factors_)
    predicted = first.predict_ratings(fold.test)
    rmse = float(np.sqrt(np.mean((predicted - fold.test.rating) ** 2)))
    assert rmse <= 0.125, f"test RMSE {rmse:.4f} vs noise 0.1"
    # From the small start the first epoch is far from the mean; the fit is not.
    assert first.history_[0]["train_rmse"] > 2 * first.history_[-1]["train_rmse"]


# -- training control ------------------------------------------------------------------
def test_divergence_names_epoch_and_suggests_lower_lr(planted):
    _, fold = planted
    model = BiasedMF(
        n_factors=50,
        n_epochs=30,
        lr=0.9,
        reg=0.0,
        init_std=1.0,
        random_state=0,
        optimizer="sgd",
        patience=None,
    )
    with pytest.raises(DivergenceError, match=r"epoch \d+.*lr=0.9.*try lr=0.09"):
        model.fit(fold.train)


def test_early_stopping_restores_best_epoch(planted):
    _, fold = planted
    model = BiasedMF(
        n_factors=30, n_epochs=400, lr=0.05, reg=0.0, reg_row=0.0, reg_bias_row=0.0,
        init_std=0.3, patience=3, random_state=0,
    )  # fmt: skip
    model.fit(fold.train, validation=fold.test)
    history = model.history_
    assert len(history) < 400, "over-fitting run should stop early"
    best = min(rec["val_rmse"] for rec in history)
    assert history[model.best_epoch_ - 1]["val_rmse"] == best
    assert len(history) == model.best_epoch_ + 3
    predicted = model.predict_ratings(fold.test)
    assert float(np.sqrt(np.mean((predicted - fold.test.rating) ** 2))) == pytest.approx(
        best, rel=1e-6
    )


def test_early_stopping_without_biases(planted):
    """FunkSVD has no bias arrays; restoring the best epoch must cope with that."""
    _, fold = planted
    model = FunkSVD(n_factors=30, n_epochs=300, lr=0.05, reg=0.0, init_std=0.3, patience=2)
    model.set_params(random_state=0).fit(fold.train, validation=fold.test)
    assert model.user_bias_ is None and len(model.history_) < 300


def test_patience_without_validation_is_an_error(planted):
    _, fold = planted
    with pytest.raises(ParameterError, match="validation"):
        BiasedMF(patience=2, n_epochs=3, validation_fraction=0.0).fit(fold.train)


@pytest.mark.parametrize("cls", [BiasedMF, FunkSVD])
def test_early_stopping_on_a_held_out_slice_then_refit(cls, planted):
    """Without validation data, a seeded slice of the training ratings picks the epoch
    count; the model is then refitted on all the ratings for exactly that many epochs
    (the same arrays as a direct fit of best_epoch_ epochs), and history_ shows the
    held-out RMSE of each of those epochs."""
    _, fold = planted
    params = {"n_factors": 30, "lr": 0.05, "reg": 0.0, "init_std": 0.3, "random_state": 0}
    if cls is BiasedMF:  # unregularised: no fixed per-row part either
        params.update(reg_row=0.0, reg_bias_row=0.0)
    model = cls(n_epochs=300, patience=2, validation_fraction=0.2, **params).fit(fold.train)
    best = model.best_epoch_
    assert best < 300, "an over-fitting run must stop early"
    selection = model.validation_history_
    assert len(selection) == best + 2
    assert min(r["val_rmse"] for r in selection) == selection[best - 1]["val_rmse"]
    assert [r["epoch"] for r in model.history_] == list(range(1, best + 1))
    for record in model.history_:
        assert record["val_rmse"] == selection[record["epoch"] - 1]["val_rmse"]
    direct = cls(n_epochs=best, patience=None, **params).fit(fold.train)
    assert np.array_equal(direct.user_factors_, model.user_factors_)
    assert np.array_equal(direct.item_factors_, model.item_factors_)
    assert model.n_epochs == 300 and model.patience == 2, "the settings are kept"
    again = cls(n_epochs=300, patience=2, validation_fraction=0.2, **params).fit(fold.train)
    assert np.array_equal(again.item_factors_, model.item_factors_), "same seed, same model"


def test_callback_sees_each_epoch_and_can_stop(planted):
    _, fold = planted
    seen = []

    def callback(record):
        seen.append(record["epoch"])
        return record["epoch"] < 4 or False

    model = BiasedMF(n_factors=2, n_epochs=10, random_state=0, patience=None)
    model.fit(fold.train, callback=callback)
    assert seen == [1, 2, 3, 4]
    assert len(model.history_) == 4


def test_history_loss_decreases_on_training_data(planted):
    _, fold = planted
    model = BiasedMF(
        n_factors=3, n_epochs=30, lr=0.01, reg=0.01, reg_row=0.0, reg_bias_row=0.0,
        random_state=0, patience=None,
    )  # fmt: skip
    model.fit(fold.train)
    rmse = [rec["train_rmse"] for rec in model.history_]
    assert rmse[-1] < rmse[0] * 0.8
    assert all(b <= a + 1e-9 for a, b in itertools.pairwise(rmse))


def test_float64_option_gives_float64_factors(planted):
    _, fold = planted
    model = BiasedMF(n_factors=2, n_epochs=2, dtype="float64", random_state=0).fit(fold.train)
    assert model.user_factors_.dtype == np.float64
    default = BiasedMF(n_factors=2, n_epochs=2, random_state=0).fit(fold.train)
    assert default.user_factors_.dtype == np.float32


# -- the parallel schedule ---------------------------------------------------------------
@pytest.mark.parametrize("optimizer", ["sgd", "adagrad"])
@pytest.mark.parametrize("cls", [BiasedMF, FunkSVD])
def test_threads_do_not_change_result(cls, optimizer, planted):
    """Parallel and serial execution of the same stratified schedule agree bit for bit."""
    _, fold = planted
    fits = [
        cls(
            n_factors=4, n_epochs=5, n_strata=4, n_threads=t, random_state=0, optimizer=optimizer
        ).fit(fold.train)
        for t in (1, 2)
    ]
    assert np.array_equal(fits[0].user_factors_, fits[1].user_factors_)
    assert np.array_equal(fits[0].item_factors_, fits[1].item_factors_)


def test_layout_partitions_the_ratings_without_conflicts(planted):
    """Every rating is stored once, each group holds one user's ratings, and the blocks
    of one sub-epoch share no user and no item."""
    from mfrec.models.sgd import grouped_layout

    _, fold = planted
    train = fold.train.compact()
    s = 4
    lay = grouped_layout(train, s, np.random.default_rng(0))
    sizes = np.diff(lay.group_start)
    users = np.repeat(lay.group_user, sizes)
    stored = sorted(zip(users.tolist(), lay.items.tolist(), lay.ratings.tolist(), strict=True))
    given = sorted(
        zip(
            train.user_index.tolist(), train.item_index.tolist(), train.rating.tolist(), strict=True
        )
    )
    assert stored == given
    assert np.all(sizes > 0)
    users_of, items_of = [], []
    for b in range(s * s):
        groups = lay.group_order[lay.block_group_ptr[b] : lay.block_group_ptr[b + 1]]
        users_of.append({int(lay.group_user[g]) for g in groups})
        items_of.append(
            {int(i) for g in groups for i in lay.items[lay.group_start[g] : lay.group_start[g + 1]]}
        )
    for sub in range(s):
        blocks = [t * s + (t + sub) % s for t in range(s)]
        for a, b in itertools.combinations(blocks, 2):
            assert users_of[a].isdisjoint(users_of[b]) and items_of[a].isdisjoint(items_of[b])


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_layout_does_not_depend_on_how_its_passes_are_chunked(planted, monkeypatch, threads):
    """The counting and bucketing passes cut the ratings into one chunk per thread: the
    layout is the one-chunk layout whatever the chunks, each group's ratings in input
    order."""
    from mfrec._threads import numba_threads
    from mfrec.kernels import sgd as kernels
    from mfrec.models.sgd import grouped_layout

    _, fold = planted
    train = fold.train.compact()
    one_chunk = grouped_layout(train, 4, np.random.default_rng(5))
    monkeypatch.setattr(kernels, "LAYOUT_CHUNK", 97)  # many ratings per chunk, ragged end
    with numba_threads(threads):
        chunked = grouped_layout(train, 4, np.random.default_rng(5))
    for name in one_chunk._fields:
        assert np.array_equal(getattr(one_chunk, name), getattr(chunked, name)), name
    # Input order inside a group: the user's ratings of the group's items as given.
    g = int(np.argmax(np.diff(chunked.group_start)))
    start, stop = chunked.group_start[g], chunked.group_start[g + 1]
    user = chunked.group_user[g]
    in_group = np.isin(train.item_index, chunked.items[start:stop]) & (train.user_index == user)
    assert np.array_equal(train.item_index[in_group], chunked.items[start:stop])


@pytest.mark.parametrize(
    ("cls", "settings"),
    [
        (BiasedMF, {}),  # AdaGrad, early stopping on a held-out slice, epoch-0 fallback
        (BiasedMF, {"optimizer": "sgd", "reg_row": 0.5, "patience": None, "n_epochs": 4}),
        (BiasedMF, {"init_biases": "baseline", "n_epochs": 6}),
        (FunkSVD, {}),
    ],
)
def test_training_in_strata_order_gives_the_input_order_model(planted, monkeypatch, cls, settings):
    """A fit trains on users and items renumbered stratum by stratum (TrainingOrder):
    the same model, bit for bit, and the same history as training in the input order,
    and the arrays come back in the order of the ids."""
    import mfrec.models.sgd as sgd

    _, fold = planted
    kwargs = {"random_state": 4, "n_factors": 5, **settings}
    relabelled = cls(**kwargs).fit(fold.train, validation=fold.test)
    held_out = cls(**kwargs).fit(fold.train)
    calls = []

    def input_order(train, n_strata, rng, dtype=np.float32):
        calls.append(n_strata)
        return sgd.grouped_layout(train, n_strata, rng, dtype), None

    monkeypatch.setattr(sgd, "strata_layout", input_order)
    plain = cls(**kwargs).fit(fold.train, validation=fold.test)
    plain_held_out = cls(**kwargs).fit(fold.train)
    assert calls and all(s > 1 for s in calls)
    for a, b in ((relabelled, plain), (held_out, plain_held_out)):
        for key in ("user_factors_", "item_factors_", "user_bias_", "item_bias_"):
            x, y = getattr(a, key), getattr(b, key)
            assert (x is None and y is None) or np.array_equal(x, y), key
        strip = [{k: v for k, v in r.items() if k != "seconds"} for r in a.history_]
        assert strip == [{k: v for k, v in r.items() if k != "seconds"} for r in b.history_]
        assert a.best_epoch_ == b.best_epoch_
        assert "_training_order" not in a.__dict__
    np.testing.assert_array_equal(
        relabelled.predict_ratings(fold.test), plain.predict_ratings(fold.test)
    )


def test_the_model_refuses_to_predict_while_training_in_strata_order(planted):
    """Mid-fit the arrays are in training order: a callback that predicts gets a clear
    error instead of scores of the wrong rows; the fit itself is unaffected."""
    from mfrec.exceptions import NotFittedError

    _, fold = planted
    errors = []
    model = BiasedMF(random_state=0, n_epochs=3, patience=None)

    def peek(record):
        try:
            model.predict_ratings(fold.test)
        except NotFittedError as error:
            errors.append(str(error))

    model.fit(fold.train, callback=peek)
    assert len(errors) == 3 and "being fitted" in errors[0] and "callback" in errors[0]
    same = BiasedMF(random_state=0, n_epochs=3, patience=None).fit(fold.train)
    np.testing.assert_array_equal(model.predict_ratings(fold.test), same.predict_ratings(fold.test))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_initial_factors_are_the_generator_draws_on_cache_line_aligned_rows(dtype):
    from mfrec.models.sgd import init_factors

    for shape in [(7, 3), (300, 64), (0, 5)]:
        drawn = init_factors(np.random.default_rng(2), shape, 0.1, dtype)
        expected = np.random.default_rng(2).standard_normal(shape, dtype=dtype)
        expected *= np.dtype(dtype).type(0.1)
        assert drawn.dtype == np.dtype(dtype) and drawn.flags.c_contiguous
        assert np.array_equal(drawn, expected)
        assert drawn.size == 0 or drawn.ctypes.data % 64 == 0


@pytest.mark.parametrize("count_aware", [False, True])
@pytest.mark.parametrize("adaptive", [False, True])
@pytest.mark.parametrize("use_bias", [True, False])
def test_grouped_kernel_agrees_with_reference(planted, use_bias, adaptive, count_aware):
    """The parallel grouped epoch (shuffles included) equals its Python reference."""
    from mfrec.kernels.sgd import sgd_epoch_grouped, sgd_epoch_grouped_reference
    from mfrec.models.sgd import grouped_layout

    _, fold = planted
    train = fold.train.compact()
    rng = np.random.default_rng(3)
    k = 4
    P = rng.normal(0, 0.1, (train.n_users, k))
    Q = rng.normal(0, 0.1, (train.n_items, k))
    bu, bi = np.zeros(train.n_users), np.zeros(train.n_items)
    GU = np.ones((train.n_users if adaptive else 0, 2))
    GI = np.ones((train.n_items if adaptive else 0, 2))
    lay = grouped_layout(train, 3, np.random.default_rng(0), np.float64)
    extra = (
        (rng.uniform(0, 0.2, (train.n_users, 2)), rng.uniform(0, 0.2, (train.n_items, 2)))
        if count_aware
        else (np.zeros((0, 2)), np.zeros((0, 2)))
    )
    lay_ref = type(lay)(*(a.copy() for a in lay))
    state = [P, Q, bu, bi]
    ref = [a.copy() for a in state]
    acc, acc_ref = [GU, GI], [GU.copy(), GI.copy()]
    lr = 0.1 if adaptive else 0.01
    args = (3.0 if use_bias else 0.0, lr, 0.05, 0.02, 0.03, use_bias)
    for epoch in range(3):
        seeds = np.random.default_rng(epoch).integers(0, 2**62, 9)
        sse = sgd_epoch_grouped(*lay, 3, seeds, *state, *args, *acc, adaptive, *extra)
        sse_ref = sgd_epoch_grouped_reference(
            *lay_ref, 3, seeds, *ref, *args, *acc_ref, adaptive, *extra
        )
        assert sse == pytest.approx(sse_ref, rel=1e-9)
    for a, b in zip(state + acc, ref + acc_ref, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    assert np.array_equal(lay.items, lay_ref.items), "same in-place shuffles"


def test_shuffle_is_a_seeded_permutation():
    from mfrec.kernels._common import shuffle

    a = np.arange(100, dtype=np.int32)
    b = a.copy()
    shuffle(a, 10, 90, np.uint64(12345))
    shuffle(b, 10, 90, np.uint64(12345))
    assert np.array_equal(a, b)
    assert np.array_equal(a[:10], np.arange(10)) and np.array_equal(a[90:], np.arange(90, 100))
    assert sorted(a[10:90]) == list(range(10, 90)) and not np.array_equal(
        a[10:90], np.arange(10, 90)
    )
    c = np.arange(100, dtype=np.int32)
    shuffle(c, 10, 90, np.uint64(54321))
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("cls", [BiasedMF, FunkSVD])
def test_defaults_stop_early_and_beat_the_bias_baseline(cls):
    """At its defaults (AdaGrad, early stopping on a held-out slice, docs/defaults.md) the
    model beats the bias baseline on planted rank-3 integer ratings it was not tuned on,
    and history_ shows the stopping."""
    from mfrec.models import BiasBaseline

    data = make_ratings(
        n_users=400, n_items=250, density=0.1, n_factors=3, noise_std=0.5, random_state=5
    )
    fold = holdout(data.ratings, 0.2, random_state=0)
    model = cls(random_state=0).fit(fold.train)
    assert model.optimizer == "adagrad" and model.best_epoch_ < model.n_epochs
    assert len(model.history_) == model.best_epoch_ and "val_rmse" in model.history_[0]
    assert len(model.validation_history_) == model.best_epoch_ + model.patience

    def rmse(m):
        return float(np.sqrt(np.mean((m.predict_ratings(fold.test) - fold.test.rating) ** 2)))

    assert rmse(model) < rmse(BiasBaseline().fit(fold.train)) - 0.01


# -- rating_unit: the defaults mean the same on any rating scale ---------------------------
@pytest.mark.parametrize("name", ["biased-mf", "funk-svd", "svdpp"])
@pytest.mark.parametrize("optimizer", ["adagrad", "sgd"])
def test_doubling_the_ratings_doubles_the_predictions(name, optimizer):
    """With ``rating_unit=None`` the hyperparameters are in units of a quarter of the
    rating range, so a fit of ``2 r`` on a 2..10 scale is, step by step, the fit of ``r``
    on 1..5 in doubled units (mfrec.models.sgd.UnitSteps): its predictions are twice the
    others (up to rounding), early stopping included. With ``rating_unit=1`` (raw units)
    they are not."""
    from mfrec.models import get_model_class

    data = make_ratings(n_users=120, n_items=80, density=0.2, random_state=5).ratings
    doubled = Ratings(
        data.user_index, data.item_index, 2 * data.rating, data.users, data.items,
        None, (2.0, 10.0),
    )  # fmt: skip
    cls = get_model_class(name)
    settings = {"n_factors": 5, "n_epochs": 15, "optimizer": optimizer, "dtype": "float64"}
    if optimizer == "sgd":
        settings["lr"] = 0.01

    def predictions(ratings, **extra):
        model = cls(**settings, **extra, random_state=3).fit(ratings)
        return model, model.predict_ratings(data)

    base, once = predictions(data)
    scaled, twice = predictions(doubled)
    assert scaled.best_epoch_ == base.best_epoch_
    np.testing.assert_allclose(twice, 2 * once, rtol=1e-6)
    _, raw = predictions(doubled, rating_unit=1.0)
    assert np.abs(raw - 2 * once).max() > 1e-3
