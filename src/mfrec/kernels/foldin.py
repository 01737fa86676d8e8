"""Fold-in: one regularised least-squares solve per row, with the other side fixed.

For row u with stored entries j (feature rows f_j = F[indices[j]], weight w_j, target
t_j) the solution z_u minimises

    sum_j w_j (t_j - f_j . z)^2 + z^T G z + sum_a (base_a + n_u per_a) z_a^2,

n_u being the row's number of entries, i.e. it solves the normal equations

    (G + sum_j w_j f_j f_j^T + diag(base + n_u per)) z = sum_j w_j t_j f_j.

Explicit-feedback models use w = 1, G = 0 and t = r - mu - b_i (features [q_i, 1] when
the user bias is solved too); implicit ALS uses G = Y^T Y, w = c - 1 and w t = c p
(passed as ``weighted_targets``), which is HKV's eq. 4. The (d x d) system is solved by
Cholesky; a pivot that is not positive (possible only without regularisation, for a row
with fewer entries than unknowns) is raised to a tiny positive value, which picks a
solution instead of producing NaN.
"""

import numpy as np
from numba import njit

from ._common import claim, run_workers


@njit(cache=True, nogil=True, no_cfunc_wrapper=True, no_cpython_wrapper=True)
def _solve_row(indptr, indices, weights, weighted_targets, F, G, base, per, u, A, b, z):
    d = F.shape[1]
    for a in range(d):
        b[a] = 0.0
        for c in range(d):
            A[a, c] = G[a, c]
    start, stop = indptr[u], indptr[u + 1]
    for pos in range(start, stop):
        f = F[indices[pos]]
        w = np.float64(weights[pos])
        wt = np.float64(weighted_targets[pos])
        for a in range(d):
            fa = np.float64(f[a])
            b[a] += wt * fa
            wfa = w * fa
            for c in range(a + 1):
                A[a, c] += wfa * f[c]
    n = stop - start
    scale = 0.0
    for a in range(d):
        A[a, a] += base[a] + n * per[a]
        scale = max(scale, abs(A[a, a]))
    tiny = 1e-12 * (scale + 1e-300)
    # Cholesky A = L L^T in the lower triangle. Each sum runs over m in order (the same
    # operations as the plain loop, so the same bits); four rows i at a time, so that four
    # independent sums are in flight instead of one chain of dependent subtractions.
    for j in range(d):
        s = A[j, j]
        for m in range(j):
            s -= A[j, m] * A[j, m]
        if not s > tiny:
            s = tiny
        A[j, j] = np.sqrt(s)
        i = j + 1
        while i + 3 < d:
            s0 = A[i, j]
            s1 = A[i + 1, j]
            s2 = A[i + 2, j]
            s3 = A[i + 3, j]
            for m in range(j):
                ajm = A[j, m]
                s0 -= A[i, m] * ajm
                s1 -= A[i + 1, m] * ajm
                s2 -= A[i + 2, m] * ajm
                s3 -= A[i + 3, m] * ajm
            A[i, j] = s0 / A[j, j]
            A[i + 1, j] = s1 / A[j, j]
            A[i + 2, j] = s2 / A[j, j]
            A[i + 3, j] = s3 / A[j, j]
            i += 4
        while i < d:
            s = A[i, j]
            for m in range(j):
                s -= A[i, m] * A[j, m]
            A[i, j] = s / A[j, j]
            i += 1
    # L y = b, then L^T z = y.
    for i in range(d):
        s = b[i]
        for m in range(i):
            s -= A[i, m] * z[m]
        z[i] = s / A[i, i]
    for i in range(d - 1, -1, -1):
        s = z[i]
        for m in range(i + 1, d):
            s -= A[m, i] * z[m]
        z[i] = s / A[i, i]


@njit(cache=True, nogil=True, no_cfunc_wrapper=True)
def _ridge_rows_worker(
    counter, n_tasks, indptr, indices, weights, weighted_targets, F, G, base, per, out
):
    n_rows, d = out.shape
    while True:
        task = claim(counter, 0)
        if task >= n_tasks:
            break
        for u in range(task * 8, min(n_rows, (task + 1) * 8)):
            A = np.empty((d, d), dtype=np.float64)
            b = np.empty(d, dtype=np.float64)
            _solve_row(indptr, indices, weights, weighted_targets, F, G, base, per, u, A, b, out[u])


def ridge_rows(indptr, indices, weights, weighted_targets, F, G, base, per, out):
    """Solve every row's system (module docstring) into ``out`` (n_rows x d, float64)."""
    n_tasks = (out.shape[0] + 7) // 8
    run_workers(
        _ridge_rows_worker, n_tasks, indptr, indices, weights, weighted_targets, F, G, base,
        per, out,
    )  # fmt: skip


def ridge_rows_reference(indptr, indices, weights, weighted_targets, F, G, base, per):
    """NumPy reference of :func:`ridge_rows` (dense ``numpy.linalg.solve`` per row)."""
    d = F.shape[1]
    out = np.zeros((len(indptr) - 1, d))
    for u in range(len(indptr) - 1):
        rows = slice(indptr[u], indptr[u + 1])
        Fu = F[indices[rows]].astype(np.float64)
        w = weights[rows].astype(np.float64)
        A = G + (Fu * w[:, None]).T @ Fu + np.diag(base + (indptr[u + 1] - indptr[u]) * per)
        out[u] = np.linalg.solve(A, weighted_targets[rows].astype(np.float64) @ Fu)
    return out
