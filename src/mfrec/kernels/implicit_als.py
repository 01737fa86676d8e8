"""Confidence-weighted ALS for implicit feedback (Hu, Koren & Volinsky 2008), solved by
conjugate gradient (Takacs, Pilaszy & Tikk 2011; the ``use_cg`` solver of implicit).

Objective (HKV eq. 3), over *all* user-item pairs:

    sum_{u,i} c_ui (p_ui - x_u . y_i)^2 + reg (sum_u |x_u|^2 + sum_i |y_i|^2)

with preference p_ui = 1 if r_ui > 0 else 0 and confidence c_ui = 1 + alpha r_ui (so an
unobserved pair has c = 1, p = 0). With Y fixed, user u's optimum solves (HKV eq. 4)

    A_u x_u = b_u,   A_u = Y^T Y + reg I + sum_{i in I_u} (c_ui - 1) y_i y_i^T,
                     b_u = sum_{i in I_u} c_ui p_ui y_i,

where only the observed items I_u appear in the sums (Y^T Y is shared by all users).
Instead of factorising A_u, ``cg_steps`` conjugate-gradient iterations start from the
previous x_u; each needs one product A_u v, computed as (Y^T Y + reg I) v +
sum_i (c_ui - 1)(y_i . v) y_i without forming A_u: O(k^2 + |I_u| k) per step instead of
O(|I_u| k^2 + k^3). Items are solved the same way with the roles swapped.

Rows are independent given the other side, so a half-step runs them in parallel; each
row's arithmetic is the same whatever the thread count, hence so is the result. The
shared Gram matrix is summed in fixed chunks in a fixed order for the same reason.
"""

import numpy as np
from numba import njit

from ._common import FAST, claim, inline_helper, run_workers

# Rows per parallel task: scratch vectors are allocated once per chunk, not per row.
_ROWS_PER_CHUNK = 128


@inline_helper
def _dot(a, b, k):
    acc = a[0] * b[0] - a[0] * b[0]  # zero of the arrays' type
    for f in range(k):
        acc += a[f] * b[f]
    return acc


@njit(cache=True, nogil=True, fastmath=FAST, no_cfunc_wrapper=True, no_cpython_wrapper=True)
def _cg_row(indptr, indices, extra, target, u, x, Y, G, cg_steps, r, p, Ap, scalar):
    k = x.shape[0]
    # r = b - A x = -(Y^T Y + reg I) x + sum_i (c p - (c - 1) y_i.x) y_i
    for f in range(k):
        r[f] = -_dot(G[f], x, k)
    for pos in range(indptr[u], indptr[u + 1]):
        yi = Y[indices[pos]]
        coef = target[pos] - extra[pos] * _dot(yi, x, k)
        for f in range(k):
            r[f] += coef * yi[f]
    for f in range(k):
        p[f] = r[f]
    rs_old = np.float64(_dot(r, r, k))
    if rs_old < 1e-20:
        return
    for _ in range(cg_steps):
        # Ap = (Y^T Y + reg I) p + sum_i (c - 1)(y_i . p) y_i
        for f in range(k):
            Ap[f] = _dot(G[f], p, k)
        for pos in range(indptr[u], indptr[u + 1]):
            yi = Y[indices[pos]]
            coef = extra[pos] * _dot(yi, p, k)
            for f in range(k):
                Ap[f] += coef * yi[f]
        scalar[0] = rs_old / np.float64(_dot(p, Ap, k))  # the step, in the factors' dtype
        step = scalar[0]
        for f in range(k):
            x[f] += step * p[f]
            r[f] -= step * Ap[f]
        rs_new = np.float64(_dot(r, r, k))
        if rs_new < 1e-20:
            return
        scalar[1] = rs_new / rs_old
        beta = scalar[1]
        for f in range(k):
            p[f] = r[f] + beta * p[f]
        rs_old = rs_new


@njit(cache=True, nogil=True, no_cfunc_wrapper=True)
def _cg_half_step_worker(counter, n_tasks, indptr, indices, extra, target, X, Y, G, cg_steps):
    n_rows, k = X.shape
    while True:
        c = claim(counter, 0)
        if c >= n_tasks:
            break
        r = np.empty(k, dtype=X.dtype)
        p = np.empty(k, dtype=X.dtype)
        Ap = np.empty(k, dtype=X.dtype)
        scalar = np.empty(2, dtype=X.dtype)
        stop = min(n_rows, (c + 1) * _ROWS_PER_CHUNK)
        for u in range(c * _ROWS_PER_CHUNK, stop):
            _cg_row(indptr, indices, extra, target, u, X[u], Y, G, cg_steps, r, p, Ap, scalar)


def cg_half_step(indptr, indices, extra, target, X, Y, G, cg_steps):
    """Update every row x_u of X in place by ``cg_steps`` CG iterations on A_u x = b_u
    (module docstring), starting from the current x_u.

    ``indptr, indices``: CSR rows of X's side; per stored entry, ``extra`` = c - 1 =
    alpha r and ``target`` = c p. ``G`` is ``Y^T Y + reg I``; all in X's dtype.
    """
    n_chunks = (X.shape[0] + _ROWS_PER_CHUNK - 1) // _ROWS_PER_CHUNK
    run_workers(_cg_half_step_worker, n_chunks, indptr, indices, extra, target, X, Y, G, cg_steps)


@njit(cache=True, nogil=True, no_cfunc_wrapper=True)
def _gram_partials_worker(counter, n_tasks, Y, chunk, out):
    n, k = Y.shape
    while True:
        c = claim(counter, 0)
        if c >= n_tasks:
            break
        acc = out[c]
        acc[:] = 0.0
        y = np.empty(k, dtype=np.float64)
        for row in range(c * chunk, min(n, (c + 1) * chunk)):
            for f in range(k):
                y[f] = Y[row, f]
            for f in range(k):
                yf = y[f]
                acc_f = acc[f]
                for g in range(k):
                    acc_f[g] += yf * y[g]


def gram_partials(Y, chunk, out):
    """out[c] = sum of y y^T (float64) over rows c*chunk .. (c+1)*chunk - 1 of Y.
    Summing ``out`` over its first axis gives Y^T Y in an order that never varies."""
    run_workers(_gram_partials_worker, out.shape[0], Y, chunk, out)


def gram(Y):
    """Y^T Y in float64, the same for any thread count: rows are summed in chunks whose
    size depends on the shape of Y only (at most 64 of them), then in chunk order."""
    n, k = Y.shape
    chunk = max(256, -(-n // 64))
    partials = np.empty((max(1, -(-n // chunk)), k, k), dtype=np.float64)
    gram_partials(Y, chunk, partials)
    return partials.sum(axis=0)


@njit(cache=True, nogil=True, fastmath=FAST, no_cfunc_wrapper=True)
def _observed_loss_worker(counter, n_tasks, indptr, indices, extra, target, X, Y, out):
    n_rows, k = X.shape
    while True:
        c = claim(counter, 0)
        if c >= n_tasks:
            break
        total = 0.0
        for u in range(c * _ROWS_PER_CHUNK, min(n_rows, (c + 1) * _ROWS_PER_CHUNK)):
            x = X[u]
            for pos in range(indptr[u], indptr[u + 1]):
                s = np.float64(_dot(Y[indices[pos]], x, k))
                t = np.float64(target[pos])
                total += t - 2.0 * t * s + extra[pos] * s * s
        out[c] = total


def observed_loss_partials(indptr, indices, extra, target, X, Y, out):
    """out[c]: sum over the stored entries of the rows of chunk c of
    c (p - s)^2 - s^2 = c p - 2 c p s + (c - 1) s^2  (p^2 = p), with s = x_u . y_i."""
    run_workers(_observed_loss_worker, out.shape[0], indptr, indices, extra, target, X, Y, out)


def loss(indptr, indices, extra, target, X, Y, reg, gram_x=None, gram_y=None):
    """The full regularised objective of the module docstring (float64).

    Over all pairs, sum c (p - s)^2 = sum_all s^2 + sum_stored (c (p - s)^2 - s^2), and
    sum_all s^2 = sum_u x_u^T (Y^T Y) x_u = <X^T X, Y^T Y> (Frobenius): with the two
    Gram matrices at hand (ALS computes them anyway) only the stored entries cost work.
    """
    gram_x = gram(X) if gram_x is None else gram_x
    gram_y = gram(Y) if gram_y is None else gram_y
    partials = np.empty(max(1, -(-X.shape[0] // _ROWS_PER_CHUNK)), dtype=np.float64)
    observed_loss_partials(indptr, indices, extra, target, X, Y, partials)
    penalty = np.trace(gram_x) + np.trace(gram_y)
    return float(np.sum(gram_x * gram_y) + partials.sum() + reg * penalty)


# -- NumPy references ----------------------------------------------------------------
def confidence_terms(values, alpha, dtype=np.float32):
    """Per stored entry: ``extra`` = c - 1 = alpha r and ``target`` = c p, with
    c = 1 + alpha r and p = [r > 0] (HKV)."""
    values = np.asarray(values, dtype=np.float64)
    extra = alpha * values
    target = np.where(values > 0, 1.0 + extra, 0.0)
    return extra.astype(dtype), target.astype(dtype)


def cg_half_step_reference(indptr, indices, extra, target, X, Y, G, cg_steps):
    """Plain NumPy version of :func:`cg_half_step` (float64 arithmetic)."""
    G = np.asarray(G, dtype=np.float64)
    for u in range(X.shape[0]):
        rows = slice(indptr[u], indptr[u + 1])
        Yu = Y[indices[rows]].astype(np.float64)
        w = extra[rows].astype(np.float64)
        t = target[rows].astype(np.float64)
        x = X[u].astype(np.float64)
        r = -G @ x + (t - w * (Yu @ x)) @ Yu
        p = r.copy()
        rs_old = r @ r
        if rs_old < 1e-20:
            continue
        for _ in range(cg_steps):
            Ap = G @ p + (w * (Yu @ p)) @ Yu
            step = rs_old / (p @ Ap)
            x += step * p
            r -= step * Ap
            rs_new = r @ r
            if rs_new < 1e-20:
                break
            p = r + (rs_new / rs_old) * p
            rs_old = rs_new
        X[u] = x


def exact_solution_reference(indptr, indices, data, Y, alpha, reg):
    """Every row's exact minimiser x_u = A_u^{-1} b_u (HKV eq. 4), by dense solves."""
    Y = Y.astype(np.float64)
    k = Y.shape[1]
    base = Y.T @ Y + reg * np.eye(k)
    out = np.zeros((len(indptr) - 1, k))
    for u in range(len(indptr) - 1):
        items = indices[indptr[u] : indptr[u + 1]]
        values = data[indptr[u] : indptr[u + 1]].astype(np.float64)
        Yu = Y[items]
        extra = alpha * values
        A = base + (Yu * extra[:, None]).T @ Yu
        b = np.where(values > 0, 1 + extra, 0.0) @ Yu
        out[u] = np.linalg.solve(A, b)
    return out


def loss_reference(indptr, indices, data, X, Y, alpha, reg):
    """The objective by brute force over the dense matrix (small problems only)."""
    n_rows = len(indptr) - 1
    R = np.zeros((n_rows, Y.shape[0]))
    for u in range(n_rows):
        R[u, indices[indptr[u] : indptr[u + 1]]] = data[indptr[u] : indptr[u + 1]]
    C = 1 + alpha * R
    P = (R > 0).astype(np.float64)
    S = X.astype(np.float64) @ Y.astype(np.float64).T
    return float(np.sum(C * (P - S) ** 2) + reg * (np.sum(X**2.0) + np.sum(Y**2.0)))
