"""Analytic gradients against central finite differences (float64, random small problems).

Covered here: the masked-gradient kernels behind GradientDescentMF and AdamMF (and a
whole GradientDescentMF epoch, which must move every parameter by -lr x gradient), the
gradient AdamMF hands to its optimiser, the mini-batch gradient, and NMF's
multiplicative update, which is a gradient step with a per-entry step size.

The per-rating plain SGD step of BiasedMF/FunkSVD is checked against the derivative of
(p.q - r)^2 + regularisation in tests/models/test_sgd.py
(``test_sgd_step_equals_negative_gradient``); it is not repeated here. Its adaptive
(AdaGrad, as LIBMF) step is checked here, and so is SVD++'s.
"""

from __future__ import annotations

import numpy as np
import pytest

from mfrec.data.ratings import Ratings
from mfrec.kernels.gd import batch_gradient, masked_gradient
from mfrec.kernels.nmf import bias_update_rows, nmf_update_rows
from mfrec.models import AdamMF, GradientDescentMF

H = 1e-5  # central differences: truncation ~H^2, rounding ~1e-16 |L| / H


def numeric_gradient(f, arrays):
    """Central finite differences of the scalar f() with respect to every entry of each
    array in ``arrays`` (modified in place and restored)."""
    grads = []
    for a in arrays:
        g = np.zeros(a.shape)
        for idx in np.ndindex(a.shape):
            old = a[idx]
            a[idx] = old + H
            up = f()
            a[idx] = old - H
            down = f()
            a[idx] = old
            g[idx] = (up - down) / (2 * H)
        grads.append(g)
    return grads


def random_problem(seed, n_users=7, n_items=6, n=25, k=3):
    rng = np.random.default_rng(seed)
    cells = np.sort(rng.choice(n_users * n_items, size=n, replace=False))
    users, items = np.divmod(cells, n_items)
    return (
        users.astype(np.int32),
        items.astype(np.int32),
        rng.uniform(1, 5, n),
        rng.normal(size=(n_users, k)),
        rng.normal(size=(n_items, k)),
        rng.normal(size=n_users),
        rng.normal(size=n_items),
    )


def csr_of(rows, cols, values, n_rows):
    order = np.lexsort((cols, rows))
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n_rows))])
    return indptr.astype(np.int32), cols[order].astype(np.int32), values[order]


def masked_objective(users, items, values, P, Q, bu, bi, mu, reg, reg_bias, wu, wi):
    """L of mfrec.kernels.gd, written out."""
    pred = mu + np.einsum("ij,ij->i", P[users], Q[items])
    if len(bu):
        pred = pred + bu[users]
    if len(bi):
        pred = pred + bi[items]
    e = pred - values
    value = 0.5 * e @ e + 0.5 * reg * (wu @ (P * P).sum(1) + wi @ (Q * Q).sum(1))
    if len(bu):
        value += 0.5 * reg_bias * (wu @ (bu * bu))
    if len(bi):
        value += 0.5 * reg_bias * (wi @ (bi * bi))
    return value


@pytest.mark.parametrize(
    "config",
    [
        # GradientDescentMF: biases, per-rating regularisation (weights = counts).
        {"biases": "both", "weights": "counts", "mu": 3.1, "reg": 0.2, "reg_bias": 0.1},
        # GradientDescentMF(biased=False) / FunkSVD's objective.
        {"biases": "none", "weights": "counts", "mu": 0.0, "reg": 0.05, "reg_bias": 0.0},
        # AdamMF: one user bias, unweighted regularisation, unregularised bias.
        {"biases": "user", "weights": "ones", "mu": 0.0, "reg": 1.3, "reg_bias": 0.0},
    ],
    ids=["gd-biased", "gd-unbiased", "adam"],
)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_masked_gradient_equals_finite_differences(config, seed):
    users, items, values, P, Q, bu, bi = random_problem(seed)
    if config["biases"] in ("none", "user"):
        bi = bi[:0]
    if config["biases"] == "none":
        bu = bu[:0]
    n_users, n_items = len(P), len(Q)
    if config["weights"] == "counts":
        wu = np.bincount(users, minlength=n_users).astype(np.float64)
        wi = np.bincount(items, minlength=n_items).astype(np.float64)
    else:
        wu, wi = np.ones(n_users), np.ones(n_items)
    mu, reg, reg_bias = config["mu"], config["reg"], config["reg_bias"]

    def f():
        return masked_objective(users, items, values, P, Q, bu, bi, mu, reg, reg_bias, wu, wi)

    expected = numeric_gradient(f, [P, Q, bu, bi])
    by_user = csr_of(users, items, values, n_users)
    by_item = csr_of(items, users, values, n_items)
    g_P, g_bu, sse_u = np.zeros(P.shape), np.zeros(len(bu)), np.zeros(n_users)
    g_Q, g_bi, sse_i = np.zeros(Q.shape), np.zeros(len(bi)), np.zeros(n_items)
    masked_gradient(*by_user, P, Q, bu, bi, mu, reg, reg_bias, wu, g_P, g_bu, sse_u)
    masked_gradient(*by_item, Q, P, bi, bu, mu, reg, reg_bias, wi, g_Q, g_bi, sse_i)
    for got, want in zip((g_P, g_Q, g_bu, g_bi), expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    # Both sweeps report the same squared error: twice L's data term.
    data_term = masked_objective(users, items, values, P, Q, bu, bi, mu, 0.0, 0.0, wu, wi)
    assert 0.5 * sse_u.sum() == pytest.approx(data_term, rel=1e-12)
    assert sse_i.sum() == pytest.approx(sse_u.sum(), rel=1e-12)


def test_batch_gradient_with_its_regularisation_share_equals_finite_differences():
    """AdamMF's mini-batch objective 1/2 sum_batch e^2 + (|B|/n) reg/2 (|W|^2 + |X|^2)."""
    users, items, values, W, X, b, _ = random_problem(3, n=30)
    batch = np.array([4, 0, 17, 9, 22, 13, 5, 28], dtype=np.int32)
    reg, share = 0.8, 8 / 30

    def f():
        u, i = users[batch], items[batch]
        e = np.einsum("ij,ij->i", W[u], X[i]) + b[u] - values[batch]
        return 0.5 * e @ e + share * reg / 2 * ((W * W).sum() + (X * X).sum())

    expected = numeric_gradient(f, [W, X, b])
    g_W, g_X, g_b = np.zeros(W.shape), np.zeros(X.shape), np.zeros(len(b))
    none = np.zeros(0)
    batch_gradient(users, items, values, batch, W, X, b, none, 0.0, g_W, g_X, g_b, none)
    g_W += share * reg * W
    g_X += share * reg * X
    for got, want in zip((g_W, g_X, g_b), expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def _small_ratings(seed=5, n_users=9, n_items=7, n=40):
    users, items, values, *_ = random_problem(seed, n_users, n_items, n)
    return Ratings.from_arrays(users, items, np.round(values), scale=(1, 5))


def _gd_objective(model, ratings, P, Q, bu, bi):
    wu = ratings.user_counts().astype(np.float64)
    wi = ratings.item_counts().astype(np.float64)
    none = np.zeros(0)
    return masked_objective(
        ratings.user_index, ratings.item_index, ratings.rating.astype(np.float64), P, Q,
        none if bu is None else bu, none if bi is None else bi, model._intercept(),
        model.reg, model.reg_bias, wu, wi,
    )  # fmt: skip


@pytest.mark.parametrize("row_scaling", [False, True])
@pytest.mark.parametrize("biased", [True, False])
def test_gradient_descent_epoch_is_minus_lr_times_the_gradient(row_scaling, biased):
    """Epoch 2 of GradientDescentMF (no momentum) moves every parameter by
    -lr x dL/dparam (divided by the row's rating count with row_scaling), with dL by
    finite differences of the documented objective at the end of epoch 1."""
    ratings = _small_ratings()
    params = {
        "n_factors": 3, "lr": 0.01, "momentum": 0.0, "reg": 0.07, "reg_bias": 0.03,
        "biased": biased, "row_scaling": row_scaling, "dtype": "float64", "random_state": 0,
    }  # fmt: skip
    one = GradientDescentMF(n_epochs=1, **params).fit(ratings)
    two = GradientDescentMF(n_epochs=2, **params).fit(ratings)
    names = ["user_factors_", "item_factors_"] + (["user_bias_", "item_bias_"] if biased else [])
    before = [getattr(one, k).copy() for k in names]
    arrays = before + [None] * (4 - len(before))

    def f():
        return _gd_objective(one, ratings, *arrays)

    grads = numeric_gradient(f, before)
    counts = [ratings.user_counts(), ratings.item_counts()] * 2
    for name, start, grad, count in zip(names, before, grads, counts, strict=False):
        step = grad / (count[:, None] if grad.ndim == 2 else count) if row_scaling else grad
        np.testing.assert_allclose(
            getattr(two, name), start - 0.01 * step, rtol=1e-7, atol=1e-9, err_msg=name
        )
    # The history's loss at epoch 2 is L at that point, per rating.
    assert two.history_[1]["train_loss"] == pytest.approx(f() / len(ratings), rel=1e-10)


@pytest.mark.parametrize("mean", ["item", "global"])
def test_adam_model_gradient_equals_finite_differences(monkeypatch, mean):
    """The full-batch gradient AdamMF passes to Adam is dJ of the documented cost
    J = 1/2 sum (w_u.x_i + b_u - (r_ui - m_i))^2 + reg/2 (|X|^2 + |W|^2)."""
    from mfrec.models import adam

    seen = []
    original = adam._Adam.step

    def record(self, grads):
        seen.append(([p.copy() for p in self.params], [g.copy() for g in grads]))
        original(self, grads)

    monkeypatch.setattr(adam._Adam, "step", record)
    ratings = _small_ratings(seed=6)
    model = AdamMF(
        n_factors=3, n_epochs=3, reg=0.9, mean=mean, init_std=0.5, dtype="float64",
        patience=None, random_state=0,
    ).fit(ratings)  # fmt: skip
    u, i = ratings.user_index, ratings.item_index
    offset = model.global_mean_ + (0.0 if model.item_bias_ is None else model.item_bias_[i])
    y = ratings.rating - offset
    for params, grads in seen[1:]:  # a step after the first: b is no longer zero
        W, X, b = params

        def J(W=W, X=X, b=b):
            e = np.einsum("ij,ij->i", W[u], X[i]) + b[u] - y
            return 0.5 * e @ e + 0.9 / 2 * ((W * W).sum() + (X * X).sum())

        expected = numeric_gradient(J, [W, X, b])
        for got, want in zip(grads, expected, strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("with_bias", [False, True])
def test_nmf_update_is_a_scaled_gradient_step(with_bias):
    """A <- A N / (D + eps) equals A - (A / (D + eps)) dL/dA, dL by finite differences
    of L = 1/2 sum (t - A_r.B_c)^2 + reg/2 sum_r n_r |A_r|^2 (+ the B terms, constant),
    t = y - mu - a_r - b_c; D = sum_c B_c (A_r.B_c + max(-t, 0)) + reg n_r A_r."""
    rows, cols, values, _, _, a_bias, b_bias = random_problem(7, n=30)
    rng = np.random.default_rng(8)
    A, B = rng.uniform(0.1, 1, (7, 3)), rng.uniform(0.1, 1, (6, 3))
    if not with_bias:
        a_bias, b_bias = a_bias[:0], b_bias[:0]
    mu, reg, eps = (3.0 if with_bias else 0.0), 0.06, 1e-12
    indptr, cols_sorted, values_sorted = csr_of(rows, cols, values, 7)
    n_r = np.diff(indptr).astype(np.float64)
    target = values - mu
    if with_bias:
        target = target - a_bias[rows] - b_bias[cols]

    def f():
        e = target - np.einsum("ij,ij->i", A[rows], B[cols])
        return 0.5 * e @ e + 0.5 * reg * n_r @ (A * A).sum(1)

    (grad,) = numeric_gradient(f, [A])
    dot = np.einsum("ij,ij->i", A[rows], B[cols])
    D = np.zeros_like(A)
    np.add.at(D, rows, B[cols] * (dot + np.maximum(-target, 0))[:, None])
    D += reg * n_r[:, None] * A
    expected = A - A / (D + eps) * grad
    updated = A.copy()
    nmf_update_rows(
        indptr, cols_sorted, values_sorted, updated, B, a_bias, b_bias, mu, reg, eps,
        np.zeros(7),
    )  # fmt: skip
    np.testing.assert_allclose(updated, expected, rtol=1e-6, atol=1e-8)


def test_nmf_bias_update_zeroes_its_gradient():
    """After bias_update_rows, dL/da_r = 0 for L = 1/2 sum e^2 + reg_bias/2 sum a_r^2:
    each bias is the exact minimiser with everything else fixed."""
    rows, cols, values, _, _, a_bias, b_bias = random_problem(9, n=30)
    rng = np.random.default_rng(10)
    A, B = rng.uniform(0, 1, (7, 3)), rng.uniform(0, 1, (6, 3))
    indptr, cols_sorted, values_sorted = csr_of(rows, cols, values, 7)
    bias_update_rows(indptr, cols_sorted, values_sorted, A, B, a_bias, b_bias, 3.0, 2.0)

    def f():
        e = values - 3.0 - a_bias[rows] - b_bias[cols] - np.einsum("ij,ij->i", A[rows], B[cols])
        return 0.5 * e @ e + 0.5 * 2.0 * a_bias @ a_bias

    (grad,) = numeric_gradient(f, [a_bias])
    np.testing.assert_allclose(grad, 0.0, atol=1e-6)


# -- the adaptive (AdaGrad, LIBMF) SGD step ----------------------------------------------
def _rating_objective(r, mu, p, q, b_u, b_i, reg, reg_bias):
    err = r - (mu + b_u + b_i + p @ q)
    return 0.5 * err**2 + 0.5 * reg * (p @ p + q @ q) + 0.5 * reg_bias * (b_u**2 + b_i**2)


@pytest.mark.parametrize("use_bias", [True, False])
@pytest.mark.parametrize("seed", [0, 1])
def test_adagrad_step_is_gradient_over_root_of_accumulated_squares(use_bias, seed):
    """With ``adaptive``, one rating moves p_u by -lr/sqrt(G_u) x dL/dp_u (G_u from
    before the step), then G_u grows by |dL/dp_u|^2 / k; each bias likewise with its own
    accumulator and lr_bias. dL by central finite differences of the per-rating
    objective; two ratings of the same (u, i) so the second step sees a grown G."""
    from mfrec.kernels.sgd import sgd_epoch

    rng = np.random.default_rng(seed)
    k, lr, lr_bias, reg, reg_bias, mu = 5, 0.1, 0.05, 0.07, 0.03, 3.2
    P, Q = rng.normal(size=(1, k)), rng.normal(size=(1, k))
    bu = rng.normal(size=1) if use_bias else np.zeros(1)
    bi = rng.normal(size=1) if use_bias else np.zeros(1)
    GU, GI = 1 + rng.uniform(size=(1, 2)), 1 + rng.uniform(size=(1, 2))
    one = np.zeros(1, dtype=np.int32)
    for r in (4.0, 2.5):
        p0, q0, bu0, bi0 = P[0].copy(), Q[0].copy(), bu[0], bi[0]
        GU0, GI0 = GU.copy(), GI.copy()
        sgd_epoch(
            one, one, np.array([r]), one, P, Q, bu, bi, mu, lr, reg, lr_bias, reg_bias,
            use_bias, GU, GI, True, np.zeros((0, 2)), np.zeros((0, 2)),
        )  # fmt: skip
        rb = reg_bias if use_bias else 0.0

        def f(p, q, b_u, b_i, r=r, rb=rb):
            return _rating_objective(r, mu, p, q, b_u, b_i, reg, rb)

        p_, q_ = p0.copy(), q0.copy()
        b = np.array([bu0, bi0])
        (g_p, g_q, g_b) = numeric_gradient(
            lambda p_=p_, q_=q_, b=b: f(p_, q_, b[0], b[1]), [p_, q_, b]
        )
        np.testing.assert_allclose(P[0], p0 - lr / np.sqrt(GU0[0, 0]) * g_p, rtol=1e-7)
        np.testing.assert_allclose(Q[0], q0 - lr / np.sqrt(GI0[0, 0]) * g_q, rtol=1e-7)
        assert GU[0, 0] == pytest.approx(GU0[0, 0] + g_p @ g_p / k, rel=1e-7)
        assert GI[0, 0] == pytest.approx(GI0[0, 0] + g_q @ g_q / k, rel=1e-7)
        if use_bias:
            assert bu[0] == pytest.approx(bu0 - lr_bias / np.sqrt(GU0[0, 1]) * g_b[0], rel=1e-7)
            assert bi[0] == pytest.approx(bi0 - lr_bias / np.sqrt(GI0[0, 1]) * g_b[1], rel=1e-7)
            assert GU[0, 1] == pytest.approx(GU0[0, 1] + g_b[0] ** 2, rel=1e-7)
            assert GI[0, 1] == pytest.approx(GI0[0, 1] + g_b[1] ** 2, rel=1e-7)
        else:
            assert bu[0] == 0 and bi[0] == 0 and GU[0, 1] == GU0[0, 1]


# -- the count-aware penalty (a fixed amount per row spread over its ratings) ------------
def _count_aware_objective(users, items, values, P, Q, bu, bi, mu, reg, reg_bias, fixed):
    """sum over ratings of the per-rating objective, plus reg_row/2 |p|^2 +
    reg_bias_row/2 b^2 once per user and item row (``fixed = (reg_row, reg_bias_row)``)."""
    err = values - (mu + bu[users] + bi[items] + np.einsum("ij,ij->i", P[users], Q[items]))
    per_rating = (
        0.5 * err @ err
        + 0.5 * reg * (np.sum(P[users] ** 2) + np.sum(Q[items] ** 2))
        + 0.5 * reg_bias * (bu[users] @ bu[users] + bi[items] @ bi[items])
    )
    rows = 0.5 * fixed[0] * (np.sum(P**2) + np.sum(Q**2)) + 0.5 * fixed[1] * (bu @ bu + bi @ bi)
    return per_rating + rows


@pytest.mark.parametrize("seed", [0, 1])
def test_count_aware_sgd_epoch_is_minus_lr_times_the_gradient(seed):
    """With XU = (reg_row, reg_bias_row) / n_u (count_aware_penalty), one plain-SGD epoch
    at a tiny step moves every parameter by -lr x the gradient of the whole objective,
    whose fixed part is reg_row/2 |p_u|^2 once per row whatever n_u: the per-rating
    shares add up to the row's fixed amount (error O(lr^2))."""
    from mfrec.kernels.sgd import sgd_epoch
    from mfrec.models.sgd import count_aware_penalty

    users, items, values, P, Q, bu, bi = random_problem(seed)
    mu, reg, reg_bias, fixed, lr = 3.0, 0.07, 0.03, (2.5, 4.0), 1e-7
    n_users, n_items = len(P), len(Q)
    XU = count_aware_penalty(np.bincount(users, minlength=n_users), *fixed, np.float64)
    XI = count_aware_penalty(np.bincount(items, minlength=n_items), *fixed, np.float64)
    before = [a.copy() for a in (P, Q, bu, bi)]
    grads = numeric_gradient(
        lambda: _count_aware_objective(users, items, values, *before, mu, reg, reg_bias, fixed),
        before,
    )
    none = np.zeros((0, 2))
    order = np.arange(len(values), dtype=np.int32)
    sgd_epoch(
        users, items, values, order, P, Q, bu, bi, mu, lr, reg, lr, reg_bias, True,
        none, none, False, XU, XI,
    )  # fmt: skip
    for name, after, start, grad in zip(
        ["P", "Q", "bu", "bi"], (P, Q, bu, bi), before, grads, strict=True
    ):
        np.testing.assert_allclose((after - start) / -lr, grad, rtol=1e-4, atol=1e-6, err_msg=name)


def test_count_aware_svdpp_epoch_is_minus_lr_times_the_gradient():
    """The same for SVD++: p_u, q_i and the biases carry the fixed per-row part, y_j its
    per-rating penalty; one tiny-step epoch is -lr x the gradient of the whole objective."""
    from mfrec.kernels.svdpp import svdpp_epoch
    from mfrec.models.sgd import count_aware_penalty

    users, items, values, P, Q, bu, bi = random_problem(3)
    rng = np.random.default_rng(3)
    Y = rng.normal(size=Q.shape)
    mu, reg, reg_bias, reg_y, fixed, lr = 3.0, 0.07, 0.03, 0.05, (2.5, 4.0), 1e-7
    n_users, n_items = len(P), len(Q)
    indptr = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum(np.bincount(users, minlength=n_users), out=indptr[1:])  # users are sorted
    XU = count_aware_penalty(np.diff(indptr), *fixed, np.float64)
    XI = count_aware_penalty(np.bincount(items, minlength=n_items), *fixed, np.float64)

    counts = np.diff(indptr)

    def objective(P, Q, Y, bu, bi):
        z = np.zeros_like(P)  # z_u = |N(u)|^-1/2 sum_{j in N(u)} y_j
        for u in np.flatnonzero(counts):
            z[u] = Y[items[indptr[u] : indptr[u + 1]]].sum(axis=0) / np.sqrt(counts[u])
        err = values - (
            mu + bu[users] + bi[items] + np.einsum("ij,ij->i", (P + z)[users], Q[items])
        )
        y_sq = np.array([np.sum(Y[items[indptr[u] : indptr[u + 1]]] ** 2) for u in range(n_users)])
        per_rating = (
            0.5 * err @ err
            + 0.5 * reg_bias * (bu[users] @ bu[users] + bi[items] @ bi[items])
            + 0.5 * reg * (np.sum(P[users] ** 2) + np.sum(Q[items] ** 2))
            + 0.5 * reg_y * counts @ y_sq  # y_j once per rating of each user who rated j
        )
        rows = 0.5 * fixed[0] * (np.sum(P**2) + np.sum(Q**2)) + 0.5 * fixed[1] * (bu @ bu + bi @ bi)
        return per_rating + rows

    before = [a.copy() for a in (P, Q, Y, bu, bi)]
    grads = numeric_gradient(lambda: objective(*before), before)
    empty = (np.zeros((0, 2)), np.zeros((0, 2)), np.zeros(0))
    svdpp_epoch(
        indptr, items, values, np.arange(n_users, dtype=np.int32),
        np.arange(len(values), dtype=np.int64), P, Q, Y, bu, bi, mu,
        lr, reg_bias, lr, reg, lr, reg_y, *empty, False, XU, XI,
    )  # fmt: skip
    for name, after, start, grad in zip(
        ["P", "Q", "Y", "bu", "bi"], (P, Q, Y, bu, bi), before, grads, strict=True
    ):
        np.testing.assert_allclose((after - start) / -lr, grad, rtol=1e-4, atol=1e-6, err_msg=name)
