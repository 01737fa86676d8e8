"""The bias baseline's half-sweep: every row's regularised mean residual, in parallel.

One half-sweep of the baseline's alternating solves (Koren 2010) sets, for every row j
(an item, say, with the users' biases fixed),

    b_j = sum_{k : rows[k] = j} (r_k - other_bias[others[k]]) / denominator[j]

NumPy does it with a gather, a subtraction and ``np.bincount(weights=...)``: three passes
over the ratings and two temporaries of their size, on one core (3.2 s for the ten
sweeps of a 10M-rating fit on the bench machine). :func:`bias_half_sweep` fuses it into
one pass, cut into fixed chunks of the ratings that threads claim dynamically; each chunk
sums into its own row of ``partial`` and the chunks are added in chunk order afterwards. The chunking
depends only on the number of ratings, never on the thread count, so neither does the
result; with one chunk (up to :data:`CHUNK` ratings) the additions are bincount's, in
its order, and the result is bit for bit NumPy's (:func:`bias_half_sweep_reference`).
"""

import numpy as np
from numba import njit

from ._common import chunk_bounds, claim, run_workers

#: Ratings per chunk; at most :data:`MAX_CHUNKS` chunks (more data: longer chunks), so
#: ``partial`` holds at most MAX_CHUNKS copies of the row biases.
CHUNK = 1 << 20
MAX_CHUNKS = 16


def n_chunks(n_ratings: int) -> int:
    """Chunks of a half-sweep over ``n_ratings`` ratings (depends on nothing else)."""
    return int(min(MAX_CHUNKS, max(1, -(-n_ratings // CHUNK))))


# No fastmath: the sums must be taken in rating order, as bincount takes them.
@njit(cache=True, nogil=True, no_cfunc_wrapper=True)
def _chunk_sums_worker(counter, n_tasks, rows, others, r, other_bias, partial):
    while True:
        c = claim(counter, 0)
        if c >= n_tasks:
            break
        acc = partial[c]
        acc[:] = 0.0
        start, stop = chunk_bounds(c, n_tasks, r.shape[0])
        for k in range(start, stop):
            acc[rows[k]] += r[k] - other_bias[others[k]]


@njit(cache=True, nogil=True, no_cfunc_wrapper=True)
def _add_chunks(partial, denominator, out):
    n_rows = out.shape[0]
    for j in range(n_rows):
        out[j] = partial[0, j]
    for c in range(1, partial.shape[0]):
        for j in range(n_rows):
            out[j] += partial[c, j]
    for j in range(n_rows):
        out[j] /= denominator[j]


def bias_half_sweep(rows, others, r, other_bias, denominator, out, partial):
    """``out[j] = sum of (r - other_bias[others]) over the ratings of row j, divided by
    denominator[j]`` for every row (float64; ``out`` is overwritten). ``partial`` is a
    float64 scratch array of shape ``(n_chunks(len(r)), len(out))``; runs on
    ``numba.get_num_threads()`` threads."""
    run_workers(_chunk_sums_worker, partial.shape[0], rows, others, r, other_bias, partial)
    _add_chunks(partial, denominator, out)


def bias_half_sweep_reference(rows, others, r, other_bias, denominator, out):
    """NumPy reference of :func:`bias_half_sweep`."""
    out[:] = np.bincount(rows, weights=r - other_bias[others], minlength=len(out)) / denominator


@njit(cache=True, nogil=True, no_cfunc_wrapper=True)
def _chunk_squares_worker(counter, n_tasks, u, i, r, bu, bi, partial):
    while True:
        c = claim(counter, 0)
        if c >= n_tasks:
            break
        acc = 0.0
        start, stop = chunk_bounds(c, n_tasks, r.shape[0])
        for k in range(start, stop):
            e = r[k] - bu[u[k]] - bi[i[k]]
            acc += e * e
        partial[c] = acc


def residual_sum_of_squares(u, i, r, bu, bi) -> float:
    """``sum((r - bu[u] - bi[i]) ** 2)`` in one parallel pass (float64): each chunk of
    :func:`n_chunks` sums its ratings in order and the chunk sums are added in chunk
    order, so the result does not depend on the thread count. Runs on
    ``numba.get_num_threads()`` threads."""
    partial = np.zeros(n_chunks(len(r)))
    run_workers(_chunk_squares_worker, len(partial), u, i, r, bu, bi, partial)
    return float(partial.sum())
