"""Masked, regularised non-negative matrix factorization by multiplicative updates.

Objective over the observed entries only (never a zero-filled matrix), rows r of A and
columns c of B (users and items, or the other way round), n_r = entries in row r:

    L = 1/2 sum_obs (t_rc - A_r . B_c)^2 + reg/2 sum_r n_r |A_r|^2 + ...,
    t_rc = y_rc - mu - a_r - b_c        (the target left for the factors)

Its gradient is dL/dA_rf = sum_c B_cf (A_r . B_c - t_rc) + reg n_r A_rf. Write
t = t+ - t- with t+ = max(t, 0) and t- = max(-t, 0): with A, B >= 0 the gradient is
D - N, where

    N_rf = sum_c B_cf t+_rc                      >= 0
    D_rf = sum_c B_cf (A_r . B_c + t-_rc) + reg n_r A_rf   >= 0

and the multiplicative update  A_rf <- A_rf N_rf / (D_rf + eps)  is the gradient step
A - eta (D - N) with the per-entry step eta = A / D (Lee & Seung 2001, "Algorithms for
non-negative matrix factorization"; masked and regularised as in Zhang, Wang, Ford &
Makedon 2006 and Luo et al. 2014, the update Surprise's NMF uses). Every factor is the
product of non-negative numbers, so A stays non-negative -- exactly, not by clipping.
For non-negative targets (t- = 0: ratings, no biases) this is the classic weighted NMF
update, which never increases L. ``eps`` keeps 0/0 away from rows whose numerator and
denominator both vanish.

Each row is updated by one thread from its own entries only, so the result does not
depend on the thread count.
"""

import numpy as np
from numba import njit

from ._common import FAST, claim, run_workers


@njit(cache=True, nogil=True, fastmath=FAST, no_cfunc_wrapper=True)
def _nmf_update_rows_worker(
    counter, n_tasks, indptr, indices, values, A, B, a_bias, b_bias, mu, reg, eps, sse
):
    n_rows = indptr.shape[0] - 1
    k = A.shape[1]
    has_a = a_bias.shape[0] > 0
    has_b = b_bias.shape[0] > 0
    while True:
        task = claim(counter, 0)
        if task >= n_tasks:
            break
        for r in range(task * 16, min(n_rows, (task + 1) * 16)):
            start = indptr[r]
            stop = indptr[r + 1]
            if stop == start:
                sse[r] = 0.0
                continue
            num = np.zeros(k)
            den = np.zeros(k)
            ar = A[r]
            row_sse = 0.0
            shift = np.float64(mu)
            if has_a:
                shift += a_bias[r]
            for t in range(start, stop):
                c = indices[t]
                bc = B[c]
                target = values[t] - shift
                if has_b:
                    target -= b_bias[c]
                dot = 0.0
                for f in range(k):
                    dot += np.float64(ar[f]) * bc[f]
                e = target - dot
                row_sse += e * e
                pos = max(target, 0.0)
                neg = max(-target, 0.0)
                for f in range(k):
                    num[f] += bc[f] * pos
                    den[f] += bc[f] * (dot + neg)
            w = reg * (stop - start)
            for f in range(k):
                ar[f] = ar[f] * (num[f] / (den[f] + w * ar[f] + eps))
            sse[r] = row_sse


def nmf_update_rows(indptr, indices, values, A, B, a_bias, b_bias, mu, reg, eps, sse):
    """One multiplicative update of every row of A (B fixed); see the module docstring.

    ``indptr, indices, values``: the observed entries as CSR (rows of A). Empty bias
    arrays mean no bias. ``sse[r]`` receives row r's sum of squared residuals
    ``(y - mu - a_r - b_c - A_r . B_c)^2`` computed *before* the update.
    """
    n_tasks = (indptr.shape[0] - 1 + 15) // 16
    run_workers(
        _nmf_update_rows_worker, n_tasks, indptr, indices, values, A, B, a_bias, b_bias, mu,
        reg, eps, sse,
    )  # fmt: skip


@njit(cache=True, nogil=True, fastmath=FAST, no_cfunc_wrapper=True)
def _bias_update_rows_worker(
    counter, n_tasks, indptr, indices, values, A, B, a_bias, b_bias, mu, reg_bias
):
    n_rows = indptr.shape[0] - 1
    k = A.shape[1]
    has_b = b_bias.shape[0] > 0
    while True:
        task = claim(counter, 0)
        if task >= n_tasks:
            break
        for r in range(task * 16, min(n_rows, (task + 1) * 16)):
            total = 0.0
            for t in range(indptr[r], indptr[r + 1]):
                c = indices[t]
                dot = 0.0
                for f in range(k):
                    dot += np.float64(A[r, f]) * B[c, f]
                resid = values[t] - mu - dot
                if has_b:
                    resid -= b_bias[c]
                total += resid
            a_bias[r] = total / (indptr[r + 1] - indptr[r] + reg_bias)


def bias_update_rows(indptr, indices, values, A, B, a_bias, b_bias, mu, reg_bias):
    """Exact minimisation of L + reg_bias/2 sum_r a_r^2 over each a_r (the rest fixed):
    a_r = sum_c (y_rc - mu - b_c - A_r . B_c) / (n_r + reg_bias)."""
    n_tasks = (indptr.shape[0] - 1 + 15) // 16
    run_workers(
        _bias_update_rows_worker, n_tasks, indptr, indices, values, A, B, a_bias, b_bias, mu,
        reg_bias,
    )  # fmt: skip


def nmf_update_rows_reference(indptr, indices, values, A, B, a_bias, b_bias, mu, reg, eps):
    """NumPy reference of :func:`nmf_update_rows`: returns (new A, sse per row)."""
    rows = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
    A64, B64 = A.astype(np.float64), B.astype(np.float64)
    target = values.astype(np.float64) - mu
    if len(a_bias):
        target -= a_bias[rows]
    if len(b_bias):
        target -= b_bias[indices]
    dot = np.einsum("ij,ij->i", A64[rows], B64[indices])
    num = np.zeros_like(A64)
    den = np.zeros_like(A64)
    np.add.at(num, rows, B64[indices] * np.maximum(target, 0)[:, None])
    np.add.at(den, rows, B64[indices] * (dot + np.maximum(-target, 0))[:, None])
    den += reg * np.diff(indptr)[:, None] * A64
    sse = np.bincount(rows, weights=(target - dot) ** 2, minlength=len(A))
    return A64 * num / (den + eps), sse


def bias_update_rows_reference(indptr, indices, values, A, B, b_bias, mu, reg_bias):
    """NumPy reference of :func:`bias_update_rows`: returns the new a_bias."""
    rows = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
    resid = values - mu - np.einsum("ij,ij->i", A[rows].astype(np.float64), B[indices])
    if len(b_bias):
        resid -= b_bias[indices]
    return np.bincount(rows, weights=resid, minlength=len(A)) / (np.diff(indptr) + reg_bias)
