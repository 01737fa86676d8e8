"""Alternating least squares for explicit ratings, with biases and weighted-lambda
regularisation (Zhou et al. 2008, "ALS-WR"; the regularisation Spark MLlib uses).

Model: r_hat(u, i) = mu + b_u + b_i + p_u . q_i   (biased), or  p_u . q_i  (unbiased,
Spark's model). With the items fixed, each user's parameters minimise

    sum_{i in I(u)} (r_ui - mu - b_i - b_u - p_u . q_i)^2
        + (reg n_u + reg_row) |p_u|^2 + (reg_bias n_u + reg_bias_row) b_u^2   (n_u = |I(u)|)

a ridge regression with design rows a_i = [q_i, 1] and targets t_i = r_ui - mu - b_i.
Its normal equations

    (sum_i a_i a_i^T + diag(reg n_u + reg_row, ..., reg_bias n_u + reg_bias_row)) x_u
        = sum_i t_i a_i,   x_u = [p_u, b_u]

are solved exactly by Cholesky (the matrix is symmetric positive definite for reg > 0).
``reg n_u`` is the weighted-lambda penalty of ALS-WR; ``reg_row`` / ``reg_bias_row`` a
fixed amount per row whatever its count (plain ridge, a Gaussian prior), which shrinks
rows with few ratings more -- the count-aware part (0 in Spark).
Items are solved the same way with the users fixed. Unbiased: a_i = q_i, t_i = r_ui.
A row with fewer ratings than unknowns (a long-tail item) is solved through the
equivalent n_u x n_u system instead (see :func:`_als_solve_rows_worker`): same solution, far less work.

Every row is solved on its own, rows in parallel (:func:`~._common.run_workers`). Each row's sums run
over its ratings in stored order, in float64, with no BLAS call (so no second thread
pool can oversubscribe the cores): the result is the same on any number of threads.
"""

import numpy as np
from numba import njit

from ._common import FAST, cholesky_lower, claim, run_workers, solve_lower, solve_lower_t

#: Rows per task of the dynamic hand-out: a few microseconds of work each at least.
ROWS_PER_TASK = 8


# One function for the whole row solve, primal and dual: every call level would be
# optimised again by LLVM in each caller, and every array constructor compiles an
# implementation of its own (bench/coldstart.py). Its work arrays are views of one
# buffer, grown when a row needs more.
@njit(cache=True, nogil=True, fastmath=FAST, no_cfunc_wrapper=True)
def _als_solve_rows_worker(
    counter, n_tasks, indptr, cols, values, other_factors, other_bias, offset, factors, bias,
    reg, reg_bias, use_bias, reg_row, reg_bias_row, failed,
):  # fmt: skip
    n_rows = indptr.shape[0] - 1
    k = factors.shape[1]
    m = k + 1 if use_bias else k
    buffer = np.empty(m * m + 3 * m)  # (not a literal size: one np.empty to compile)
    while True:
        task = claim(counter, 0)
        if task >= n_tasks:
            break
        for r in range(task * ROWS_PER_TASK, min(n_rows, (task + 1) * ROWS_PER_TASK)):
            # A row without ratings is left alone.
            start = indptr[r]
            stop = indptr[r + 1]
            n = stop - start
            if n == 0:
                continue
            penalty_f = reg * n + reg_row
            penalty_b = reg_bias * n + reg_bias_row
            # A row with fewer ratings than unknowns (n < m) is solved through the n x n
            # system (the push-through identity, exact for a positive diagonal penalty D):
            #   (X^T X + D)^-1 X^T t  =  D^-1 X^T (X D^-1 X^T + I)^-1 t
            # so a rarely rated item costs O(n^2 m + n^3) instead of O(n m^2 + m^3).
            dual = n < m and (not use_bias or penalty_b > 0.0)
            size = n if dual else m
            need = m * n + n + size * size + (m * n if dual else m)
            if buffer.shape[0] < need:
                buffer = np.empty(need if need > 2 * buffer.shape[0] else 2 * buffer.shape[0])
            # Design matrix, transposed (m x n) so that each Gram entry is a contiguous dot.
            design = buffer[: m * n].reshape((m, n))
            targets = buffer[m * n : m * n + n]
            system = buffer[m * n + n : m * n + n + size * size].reshape((size, size))
            for t in range(n):
                c = cols[start + t]
                target = values[start + t] - offset
                if use_bias:
                    target -= other_bias[c]
                    design[k, t] = 1.0
                for f in range(k):
                    design[f, t] = other_factors[c, f]
                targets[t] = target
            if dual:
                # D^-1 X^T, then the lower triangle of X D^-1 X^T + I; the right-hand
                # side is t itself.
                scaled = buffer[need - m * n : need].reshape((m, n))
                for f in range(m):
                    inv = 1.0 / (penalty_b if f == k else penalty_f)
                    for t in range(n):
                        scaled[f, t] = design[f, t] * inv
                for s in range(n):
                    for t in range(s + 1):
                        system[s, t] = 0.0
                for f in range(m):
                    row_s = scaled[f]
                    row_d = design[f]
                    for s in range(n):
                        a = row_s[s]
                        for t in range(s + 1):
                            system[s, t] += a * row_d[t]
                for s in range(n):
                    system[s, s] += 1.0
                rhs = targets
            else:
                # X^T t into the targets' place once read, then the lower triangle of
                # design @ design.T + D, four rows at a time (each load of a row of
                # ``design`` feeds four accumulators; the inner loops vectorise).
                rhs = buffer[m * n + n + size * size : m * n + n + size * size + m]
                for f in range(m):
                    row = design[f]
                    acc = 0.0
                    for t in range(n):
                        acc += row[t] * targets[t]
                    rhs[f] = acc
                f = 0
                while f + 4 <= m:
                    r0 = design[f]
                    r1 = design[f + 1]
                    r2 = design[f + 2]
                    r3 = design[f + 3]
                    for g in range(f + 4):
                        rg = design[g]
                        a0 = 0.0
                        a1 = 0.0
                        a2 = 0.0
                        a3 = 0.0
                        for t in range(n):
                            x = rg[t]
                            a0 += r0[t] * x
                            a1 += r1[t] * x
                            a2 += r2[t] * x
                            a3 += r3[t] * x
                        system[f, g] = a0
                        system[f + 1, g] = a1
                        system[f + 2, g] = a2
                        system[f + 3, g] = a3
                    f += 4
                while f < m:
                    rf = design[f]
                    for g in range(f + 1):
                        rg = design[g]
                        acc = 0.0
                        for t in range(n):
                            acc += rf[t] * rg[t]
                        system[f, g] = acc
                    f += 1
                for f in range(m):
                    system[f, f] += penalty_b if f == k else penalty_f
            if not cholesky_lower(system):
                failed[r] = 1
                continue
            solve_lower(system, rhs, rhs)
            solve_lower_t(system, rhs)
            for f in range(m):
                if dual:  # x = D^-1 X^T alpha
                    row_s = scaled[f]
                    x = 0.0
                    for t in range(n):
                        x += row_s[t] * rhs[t]
                else:
                    x = rhs[f]
                if f < k:
                    factors[r, f] = x
                else:
                    bias[r] = x


def als_solve_rows(
    indptr, cols, values, other_factors, other_bias, offset, factors, bias, reg, reg_bias,
    use_bias, reg_row, reg_bias_row,
):  # fmt: skip
    """Solve every row's regularised least squares with the other side fixed (see the
    module docstring) and write ``factors`` (and ``bias``) in place.

    Row r's ratings are ``values[indptr[r]:indptr[r + 1]]`` against the other side's rows
    ``cols[...]``. ``offset`` is mu (biased) or 0. Rows without ratings are left alone.
    Returns the number of rows whose system was not positive definite (left unchanged).
    Threads claim rows ``ROWS_PER_TASK`` at a time (:func:`~._common.claim`): rows cost
    unequal amounts, and a thread the OS deschedules holds up only its own few rows.
    """
    n_rows = indptr.shape[0] - 1
    failed = np.zeros(n_rows, dtype=np.int64)
    n_tasks = (n_rows + ROWS_PER_TASK - 1) // ROWS_PER_TASK
    run_workers(
        _als_solve_rows_worker, n_tasks, indptr, cols, values, other_factors, other_bias,
        offset, factors, bias, reg, reg_bias, use_bias, reg_row, reg_bias_row, failed,
    )  # fmt: skip
    return int(failed.sum())


@njit(cache=True, nogil=True, fastmath=FAST, no_cfunc_wrapper=True)
def row_sse(indptr, cols, values, row_factors, col_factors, row_bias, col_bias, offset, use_bias):
    """Sum of squared errors of the current model over all ratings, summed per row in
    stored order and then over rows in order. Serial: it is O(n_ratings k), a small
    fraction of an epoch, and a parallel region costs more than it saves here."""
    n_rows = indptr.shape[0] - 1
    k = row_factors.shape[1]
    per_row = np.zeros(n_rows)
    for r in range(n_rows):
        acc = 0.0
        for t in range(indptr[r], indptr[r + 1]):
            c = cols[t]
            pred = offset
            if use_bias:
                pred += row_bias[r] + col_bias[c]
            for f in range(k):
                pred += np.float64(row_factors[r, f]) * col_factors[c, f]
            e = values[t] - pred
            acc += e * e
        per_row[r] = acc
    total = 0.0
    for r in range(n_rows):
        total += per_row[r]
    return total


def als_solve_rows_reference(
    indptr, cols, values, other_factors, other_bias, offset, factors, bias, reg, reg_bias,
    use_bias, reg_row, reg_bias_row,
):  # fmt: skip
    """NumPy reference of :func:`als_solve_rows` (``numpy.linalg.solve`` per row)."""
    k = factors.shape[1]
    for r in range(len(indptr) - 1):
        sl = slice(indptr[r], indptr[r + 1])
        n = sl.stop - sl.start
        if n == 0:
            continue
        c = cols[sl]
        design = other_factors[c].astype(np.float64)
        target = values[sl].astype(np.float64) - offset
        penalty = np.full(k, reg * n + reg_row)
        if use_bias:
            target = target - other_bias[c]
            design = np.hstack([design, np.ones((n, 1))])
            penalty = np.append(penalty, reg_bias * n + reg_bias_row)
        x = np.linalg.solve(design.T @ design + np.diag(penalty), design.T @ target)
        factors[r] = x[:k]
        if use_bias:
            bias[r] = x[k]
    return 0
