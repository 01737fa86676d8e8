"""Gradients of the masked, regularised squared error of (biased) matrix factorization.

With prediction  r_hat_rc = mu + a_r + b_c + A_r . B_c  for the observed entries (r, c)
of a sparse matrix (rows r are users and columns c items, or the other way round),
residual  e_rc = r_hat_rc - y_rc  and row weights  w_r  (1, or the row's count of
observed entries for per-rating regularisation), the objective

    L = 1/2 sum_obs e_rc^2 + reg/2 sum_r w_r |A_r|^2 + reg_bias/2 sum_r w_r a_r^2
        (+ the same terms for the columns)

has the gradients

    dL/dA_r = sum_{c in row r} e_rc B_c + reg w_r A_r
    dL/da_r = sum_{c in row r} e_rc     + reg_bias w_r a_r

(the column gradients follow by symmetry: run the same kernel on the transposed matrix).
:func:`masked_gradient` computes them for every row in parallel, one thread per row, so
each row's sums are taken in the same order whatever the thread count: the result never
depends on the number of threads. :func:`batch_gradient` does the same for a subset of
ratings (a mini-batch), serially. Empty bias arrays mean "no bias".
"""

import numpy as np
from numba import njit

from ._common import FAST, claim, run_workers


@njit(cache=True, nogil=True, fastmath=FAST, no_cfunc_wrapper=True)
def _masked_gradient_worker(
    counter, n_tasks, indptr, indices, values, A, B, a_bias, b_bias, mu, reg, reg_bias,
    reg_weight, grad_A, grad_a_bias, sse,
):  # fmt: skip
    n_rows = indptr.shape[0] - 1
    k = A.shape[1]
    has_a = a_bias.shape[0] > 0
    has_b = b_bias.shape[0] > 0
    while True:
        task = claim(counter, 0)
        if task >= n_tasks:
            break
        for r in range(task * 16, min(n_rows, (task + 1) * 16)):
            g = grad_A[r]
            for f in range(k):
                g[f] = 0.0
            gb = 0.0
            row_sse = 0.0
            base = np.float64(mu)
            if has_a:
                base += a_bias[r]
            ar = A[r]
            for t in range(indptr[r], indptr[r + 1]):
                c = indices[t]
                bc = B[c]
                pred = base
                if has_b:
                    pred += b_bias[c]
                for f in range(k):
                    pred += np.float64(ar[f]) * bc[f]
                e = pred - values[t]
                row_sse += e * e
                gb += e
                for f in range(k):
                    g[f] += e * bc[f]
            w = reg * reg_weight[r]
            for f in range(k):
                g[f] += w * ar[f]
            if has_a:
                grad_a_bias[r] = gb + reg_bias * reg_weight[r] * a_bias[r]
            sse[r] = row_sse


def masked_gradient(
    indptr, indices, values, A, B, a_bias, b_bias, mu, reg, reg_bias, reg_weight, grad_A,
    grad_a_bias, sse,
):  # fmt: skip
    """Gradient of L (module docstring) with respect to the rows of A (and a_bias).

    ``indptr, indices, values``: the observed entries as CSR (rows of A). ``grad_A``
    (float64, shape of A) and ``grad_a_bias`` (float64, shape of a_bias) are
    overwritten; ``sse[r]`` receives row r's sum of squared residuals.
    """
    n_tasks = (indptr.shape[0] - 1 + 15) // 16
    run_workers(
        _masked_gradient_worker, n_tasks, indptr, indices, values, A, B, a_bias, b_bias, mu,
        reg, reg_bias, reg_weight, grad_A, grad_a_bias, sse,
    )  # fmt: skip


@njit(cache=True, nogil=True, fastmath=FAST, no_cfunc_wrapper=True)
def batch_gradient(
    users, items, values, positions, P, Q, bu, bi, mu, grad_P, grad_Q, grad_bu, grad_bi
):
    """Add the data part of the gradient of 1/2 sum_{t in positions} e_t^2 to the
    float64 gradient arrays (P rows are users, Q rows items; regularisation is left to
    the caller). Serial, in ``positions`` order. Returns the sum of squared residuals."""
    k = P.shape[1]
    has_bu = bu.shape[0] > 0
    has_bi = bi.shape[0] > 0
    sse = 0.0
    for t in range(positions.shape[0]):
        idx = positions[t]
        u = users[idx]
        i = items[idx]
        pred = np.float64(mu)
        if has_bu:
            pred += bu[u]
        if has_bi:
            pred += bi[i]
        for f in range(k):
            pred += np.float64(P[u, f]) * Q[i, f]
        e = pred - values[idx]
        sse += e * e
        if has_bu:
            grad_bu[u] += e
        if has_bi:
            grad_bi[i] += e
        for f in range(k):
            grad_P[u, f] += e * Q[i, f]
            grad_Q[i, f] += e * P[u, f]
    return sse


def masked_gradient_reference(
    indptr, indices, values, A, B, a_bias, b_bias, mu, reg, reg_bias, reg_weight
):
    """NumPy reference of :func:`masked_gradient`: returns (grad_A, grad_a_bias, sse)."""
    rows = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
    A64, B64 = A.astype(np.float64), B.astype(np.float64)
    pred = mu + np.einsum("ij,ij->i", A64[rows], B64[indices])
    if len(a_bias):
        pred += a_bias[rows]
    if len(b_bias):
        pred += b_bias[indices]
    e = pred - values
    grad_A = np.zeros_like(A64)
    np.add.at(grad_A, rows, e[:, None] * B64[indices])
    grad_A += reg * reg_weight[:, None] * A64
    grad_a = np.bincount(rows, weights=e, minlength=len(A))
    if len(a_bias):
        grad_a = grad_a + reg_bias * reg_weight * a_bias
    else:
        grad_a = np.zeros(0)
    sse = np.bincount(rows, weights=e * e, minlength=len(A))
    return grad_A, grad_a, sse


def batch_gradient_reference(users, items, values, positions, P, Q, bu, bi, mu):
    """NumPy reference of :func:`batch_gradient` from zero gradients:
    returns (grad_P, grad_Q, grad_bu, grad_bi, sse)."""
    u, i = users[positions], items[positions]
    pred = mu + np.einsum("ij,ij->i", P[u].astype(np.float64), Q[i].astype(np.float64))
    if len(bu):
        pred += bu[u]
    if len(bi):
        pred += bi[i]
    e = pred - values[positions]
    grad_P = np.zeros(P.shape)
    grad_Q = np.zeros(Q.shape)
    np.add.at(grad_P, u, e[:, None] * Q[i])
    np.add.at(grad_Q, i, e[:, None] * P[u])
    grad_bu = np.bincount(u, weights=e, minlength=len(bu)) if len(bu) else np.zeros(0)
    grad_bi = np.bincount(i, weights=e, minlength=len(bi)) if len(bi) else np.zeros(0)
    return grad_P, grad_Q, grad_bu, grad_bi, float(e @ e)
