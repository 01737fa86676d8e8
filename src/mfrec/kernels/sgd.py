"""Stochastic gradient descent for (biased) matrix factorization.

Per rating (u, i, r), with prediction  r_hat = mu + b_u + b_i + p_u . q_i  and error
e = r - r_hat, the per-rating objective

    L = 1/2 e^2 + reg/2 (|p_u|^2 + |q_i|^2) + reg_bias/2 (b_u^2 + b_i^2)

has gradients  dL/dp_u = -e q_i + reg p_u,  dL/dq_i = -e p_u + reg q_i,
dL/db_u = -e + reg_bias b_u  (likewise b_i). One SGD step moves each parameter by
-lr * gradient (lr_bias for the biases), using the values from before the step for
both p_u and q_i (Funk; Koren, Bell & Volinsky 2009; Surprise's SVD).

Count-aware penalty (``XU``, ``XI``): the objective may also carry a fixed amount per
row, independent of its number of ratings n_u (a Gaussian prior on the row, as the
pseudo-counts of the bias baseline):

    sum_(u,i) L  +  sum_u [reg_row/2 |p_u|^2 + reg_bias_row/2 b_u^2]  +  (items alike)

SGD spreads a row's fixed amount over its ratings: at each of user u's ratings the
penalty coefficient of p_u is reg + XU[u, 0] and that of b_u is reg_bias + XU[u, 1],
with XU[u] = (reg_row, reg_bias_row) / n_u (XI[i] likewise with n_i), so an epoch
applies n_u reg + reg_row in all. A per-rating penalty alone shrinks a 2-rating row
by the same fraction as a 200-rating row; the fixed part shrinks rare rows more.
Empty XU / XI (shape (0, 2)) mean no fixed part.

Adaptive step sizes (``adaptive=True``): the AdaGrad rule of LIBMF (Chin, Zhuang, Juan &
Lin 2015, "A learning-rate schedule for stochastic gradient methods to matrix
factorization"). Each factor row keeps one accumulator G (the running sum of its
squared gradients averaged over the k coordinates, starting at 1) and each bias its
own; a step uses the accumulator from before it and then adds its gradient:

    eta_p = lr / sqrt(G_u),  g_p = -e q_i + reg p_u,  p_u <- p_u - eta_p g_p,
    G_u <- G_u + |g_p|^2 / k                       (likewise q_i with G_i)
    b_u <- b_u - lr_bias / sqrt(H_u) g_b,  H_u <- H_u + g_b^2,  g_b = -e + reg_bias b_u

One accumulator per row rather than per coordinate is the paper's choice: the k
coordinates of a row see gradients of the same scale, so a per-coordinate rate costs k
times the memory and converges no faster. G and H live in ``GU`` (n_users, 2: factor,
bias) and ``GI`` (n_items, 2) and persist across epochs.

Parallel schedule (conflict-free, deterministic)
------------------------------------------------
Users and items are dealt into S strata each. The ratings of user-stratum a and
item-stratum b form block (a, b). An epoch runs S sub-epochs; in sub-epoch s the S
blocks (t, (t + s) mod S), t = 0..S-1, share no user and no item, so threads update them
at once without locks or races (the stratified SGD of Gemulla et al. 2011, as in LIBMF).
The result depends on the seed and S -- never on the thread count or timing. An epoch is
one parallel region without barriers: threads claim the S^2 blocks in sub-epoch order,
and a block waits only until the blocks before it on its user stratum and on its item
stratum are done (at most two), so every stratum sees the same sequence of updates as
with a barrier after each sub-epoch, and a descheduled thread holds up only the blocks
that follow its own.

Memory layout (why it is fast)
------------------------------
Inside a block the ratings are stored contiguously, grouped by user. Every epoch each
block's user groups are visited in a fresh random order and each group's ratings are
shuffled in place, so the visiting order stays random (measured on ML-100K u1..u5: the
same test RMSE as a full random permutation, 0.9389 over 15 fits) while reads are
sequential and the user's factors stay in L1 -- 2-5x faster than a random permutation
of 10M ratings, which misses the cache on every rating.
"""

import numpy as np
from numba import njit

from ._common import (
    FAST,
    chunk_bounds,
    claim,
    inline_helper,
    publish,
    run_workers,
    shuffle,
    shuffle_pairs,
    wait_for,
)


@inline_helper
def _row_reg(X, row, column, base):
    """base + X[row, column]: a row's per-rating penalty coefficient (module docstring);
    X empty means no count-aware part."""
    if X.shape[0] == 0:
        return base
    return base + X[row, column]


@inline_helper
def _step_biased(pu, qi, u, i, r, bu, bi, mu, lr, reg_p, reg_q, lr_bias, reg_bu, reg_bi):
    """One rating's step (the update in the module docstring, with the rows' penalty
    coefficients); returns the squared error of the prediction made before it."""
    dot = mu - mu  # zero, typed like the factors (callers pass mu in their dtype)
    for f in range(pu.shape[0]):
        dot += pu[f] * qi[f]
    err = r - ((mu + dot) + (bu[u] + bi[i]))
    bu[u] += lr_bias * (err - reg_bu * bu[u])
    bi[i] += lr_bias * (err - reg_bi * bi[i])
    for f in range(pu.shape[0]):
        pf = pu[f]
        qf = qi[f]
        pu[f] = pf + lr * (err * qf - reg_p * pf)
        qi[f] = qf + lr * (err * pf - reg_q * qf)
    return np.float64(err) * np.float64(err)


@inline_helper
def _step_plain(pu, qi, r, mu, lr, reg_p, reg_q):
    """:func:`_step_biased` without the biases (FunkSVD). The two are separate
    functions, and callers branch on ``use_bias`` outside their loops, because a
    branch inside the step keeps LLVM from vectorizing it well (about 1.5x slower)."""
    dot = mu - mu
    for f in range(pu.shape[0]):
        dot += pu[f] * qi[f]
    err = r - (mu + dot)
    for f in range(pu.shape[0]):
        pf = pu[f]
        qf = qi[f]
        pu[f] = pf + lr * (err * qf - reg_p * pf)
        qi[f] = qf + lr * (err * pf - reg_q * qf)
    return np.float64(err) * np.float64(err)


@inline_helper
def _adagrad_factors(pu, qi, gu, gi, err, lr, reg_p, reg_q):
    # LIBMF's row-wise AdaGrad step of p_u and q_i (module docstring); gu[0], gi[0]
    # are the rows' accumulators.
    k = pu.shape[0]
    eta_p = lr / np.sqrt(gu[0])
    eta_q = lr / np.sqrt(gi[0])
    sp = err - err  # zero in the factors' dtype
    sq = err - err
    for f in range(k):
        pf = pu[f]
        qf = qi[f]
        gp = reg_p * pf - err * qf
        gq = reg_q * qf - err * pf
        sp += gp * gp
        sq += gq * gq
        pu[f] = pf - eta_p * gp
        qi[f] = qf - eta_q * gq
    gu[0] += sp / k
    gi[0] += sq / k


@inline_helper
def _step_biased_adagrad(
    pu, qi, gu, gi, u, i, r, bu, bi, mu, lr, reg_p, reg_q, lr_bias, reg_bu, reg_bi
):
    """:func:`_step_biased` with LIBMF's adaptive step sizes (module docstring)."""
    dot = mu - mu
    for f in range(pu.shape[0]):
        dot += pu[f] * qi[f]
    err = r - ((mu + dot) + (bu[u] + bi[i]))
    g = reg_bu * bu[u] - err
    bu[u] -= lr_bias / np.sqrt(gu[1]) * g
    gu[1] += g * g
    g = reg_bi * bi[i] - err
    bi[i] -= lr_bias / np.sqrt(gi[1]) * g
    gi[1] += g * g
    _adagrad_factors(pu, qi, gu, gi, err, lr, reg_p, reg_q)
    return np.float64(err) * np.float64(err)


@inline_helper
def _step_plain_adagrad(pu, qi, gu, gi, r, mu, lr, reg_p, reg_q):
    """:func:`_step_plain` with LIBMF's adaptive step sizes."""
    dot = mu - mu
    for f in range(pu.shape[0]):
        dot += pu[f] * qi[f]
    err = r - (mu + dot)
    _adagrad_factors(pu, qi, gu, gi, err, lr, reg_p, reg_q)
    return np.float64(err) * np.float64(err)


@njit(cache=True, nogil=True, fastmath=FAST, no_cfunc_wrapper=True, no_cpython_wrapper=True)
def _sgd_range(
    users, items, ratings, order, start, stop, P, Q, bu, bi, mu, lr, reg, lr_bias, reg_bias,
    use_bias, GU, GI, adaptive, XU, XI,
):  # fmt: skip
    sse = 0.0
    if adaptive and use_bias:
        for t in range(start, stop):
            idx = order[t]
            u = users[idx]
            i = items[idx]
            sse += _step_biased_adagrad(
                P[u], Q[i], GU[u], GI[i], u, i, ratings[idx], bu, bi, mu, lr,
                _row_reg(XU, u, 0, reg), _row_reg(XI, i, 0, reg), lr_bias,
                _row_reg(XU, u, 1, reg_bias), _row_reg(XI, i, 1, reg_bias),
            )  # fmt: skip
    elif adaptive:
        for t in range(start, stop):
            idx = order[t]
            u = users[idx]
            i = items[idx]
            sse += _step_plain_adagrad(
                P[u], Q[i], GU[u], GI[i], ratings[idx], mu, lr,
                _row_reg(XU, u, 0, reg), _row_reg(XI, i, 0, reg),
            )  # fmt: skip
    elif use_bias:
        for t in range(start, stop):
            idx = order[t]
            u = users[idx]
            i = items[idx]
            sse += _step_biased(
                P[u], Q[i], u, i, ratings[idx], bu, bi, mu, lr,
                _row_reg(XU, u, 0, reg), _row_reg(XI, i, 0, reg), lr_bias,
                _row_reg(XU, u, 1, reg_bias), _row_reg(XI, i, 1, reg_bias),
            )  # fmt: skip
    else:
        for t in range(start, stop):
            idx = order[t]
            u = users[idx]
            i = items[idx]
            sse += _step_plain(
                P[u], Q[i], ratings[idx], mu, lr, _row_reg(XU, u, 0, reg), _row_reg(XI, i, 0, reg)
            )
    return sse


@njit(cache=True, nogil=True, no_cfunc_wrapper=True)
def sgd_epoch(
    users, items, ratings, order, P, Q, bu, bi, mu, lr, reg, lr_bias, reg_bias, use_bias,
    GU, GI, adaptive, XU, XI,
):  # fmt: skip
    """One serial pass of SGD over the ratings in ``order``; updates P, Q, bu, bi (and,
    with ``adaptive``, the step-size accumulators GU, GI) in place. ``XU`` (n_users, 2)
    and ``XI`` (n_items, 2) add each row's count-aware penalty (module docstring; empty:
    none). Returns the sum of squared errors of the predictions made during the pass
    (each taken just before that rating's update)."""
    return _sgd_range(
        users, items, ratings, order, 0, order.shape[0], P, Q, bu, bi, mu, lr, reg, lr_bias,
        reg_bias, use_bias, GU, GI, adaptive, XU, XI,
    )  # fmt: skip


def _blocks_worker(adaptive, use_bias):
    """The epoch's worker for one step rule, compiled on first use. ``ADAPTIVE`` and
    ``USE_BIAS`` are constants of the closure, so numba prunes the branches of the
    other three rules before compiling: a fit compiles its own rule only (a quarter of
    the group loop; FunkSVD and BiasedMF with plain or AdaGrad steps are the four)."""
    ADAPTIVE = bool(adaptive)
    USE_BIAS = bool(use_bias)

    # FAST: the inlined steps compile with the caller's flags (vectorised dot products).
    @njit(cache=True, nogil=True, fastmath=FAST, no_cfunc_wrapper=True)
    def worker(
        counter, n_tasks, n_strata, progress, group_user, group_start, block_group_ptr,
        group_order, items, ratings, seeds, P, Q, bu, bi, mu, lr, reg, lr_bias, reg_bias,
        GU, GI, XU, XI, sse,
    ):  # fmt: skip
        # Task t = s * S + a is block (a, (a + s) mod S) of sub-epoch s (module
        # docstring), claimed in order. It may start once its user stratum a and its
        # item stratum c have each had their blocks of sub-epochs 0 .. s - 1 done:
        # progress[a] and progress[S + c] count those. Every stratum therefore sees its
        # blocks in the order of the sub-epochs, exactly as with a barrier after each
        # sub-epoch, so the result is the same -- but a thread waits only for the (at
        # most two) blocks its block follows, never for a whole sub-epoch.
        S = n_strata
        while True:
            t = claim(counter, 0)
            if t >= n_tasks:
                break
            s = t // S
            a = t - s * S
            c = (a + s) % S
            wait_for(progress, a, s)
            wait_for(progress, S + c, s)
            b = a * S + c
            g0 = block_group_ptr[b]
            g1 = block_group_ptr[b + 1]
            state = shuffle(group_order, g0, g1, np.uint64(seeds[b]))  # the block's groups
            block_sse = 0.0
            for q in range(g0, g1):
                g = group_order[q]
                start = group_start[g]
                stop = group_start[g + 1]
                state = shuffle_pairs(items, ratings, start, stop, state)
                # The group's ratings all belong to user u: p_u stays in L1.
                u = group_user[g]
                pu = P[u]
                reg_p = _row_reg(XU, u, 0, reg)
                reg_bu = _row_reg(XU, u, 1, reg_bias)
                if ADAPTIVE:
                    gu = GU[u]
                    if USE_BIAS:
                        for r in range(start, stop):
                            i = items[r]
                            block_sse += _step_biased_adagrad(
                                pu, Q[i], gu, GI[i], u, i, ratings[r], bu, bi, mu, lr,
                                reg_p, _row_reg(XI, i, 0, reg), lr_bias, reg_bu,
                                _row_reg(XI, i, 1, reg_bias),
                            )  # fmt: skip
                    else:
                        for r in range(start, stop):
                            i = items[r]
                            block_sse += _step_plain_adagrad(
                                pu, Q[i], gu, GI[i], ratings[r], mu, lr, reg_p,
                                _row_reg(XI, i, 0, reg),
                            )  # fmt: skip
                elif USE_BIAS:
                    for r in range(start, stop):
                        i = items[r]
                        block_sse += _step_biased(
                            pu, Q[i], u, i, ratings[r], bu, bi, mu, lr, reg_p,
                            _row_reg(XI, i, 0, reg), lr_bias, reg_bu,
                            _row_reg(XI, i, 1, reg_bias),
                        )  # fmt: skip
                else:
                    for r in range(start, stop):
                        i = items[r]
                        block_sse += _step_plain(
                            pu, Q[i], ratings[r], mu, lr, reg_p, _row_reg(XI, i, 0, reg)
                        )
            sse[b] = block_sse
            publish(progress, a)
            publish(progress, S + c)

    return worker


#: One worker per step rule, (adaptive, use_bias) -> compiled on its first epoch.
_BLOCKS_WORKERS = {(a, b): _blocks_worker(a, b) for a in (False, True) for b in (False, True)}


def sgd_epoch_grouped(
    group_user, group_start, block_group_ptr, group_order, items, ratings, n_strata, seeds, P,
    Q, bu, bi, mu, lr, reg, lr_bias, reg_bias, use_bias, GU, GI, adaptive, XU, XI,
):  # fmt: skip
    """One epoch of stratified parallel SGD over the grouped layout (module docstring).

    Group g holds the ratings ``items[group_start[g]:group_start[g + 1]]`` (and
    ``ratings``) of user ``group_user[g]``; block b owns the groups listed in
    ``group_order[block_group_ptr[b]:block_group_ptr[b + 1]]``. ``items``, ``ratings``
    and ``group_order`` are reshuffled in place from ``seeds[b]``. Returns the sum of
    squared errors seen during the epoch.

    The whole epoch is one parallel region on at most ``n_strata`` threads: no barrier
    between sub-epochs, each block waits only for the blocks before it on its strata.
    """
    import numba

    S = int(n_strata)
    sse = np.zeros(S * S)
    progress = np.zeros(2 * S, dtype=np.int64)
    run_workers(
        _BLOCKS_WORKERS[bool(adaptive), bool(use_bias)], S * S, S, progress, group_user,
        group_start, block_group_ptr, group_order, items, ratings, seeds, P, Q, bu, bi, mu, lr,
        reg, lr_bias, reg_bias, GU, GI, XU, XI, sse, threads=min(numba.get_num_threads(), S),
    )  # fmt: skip
    return sse.sum()


@njit(cache=True, nogil=True, no_cfunc_wrapper=True)
def _place_blocks_worker(
    counter, n_tasks, users, items, ratings, block_start, item_stratum, offset, out_items,
    out_ratings,
):  # fmt: skip
    # Block b owns the (user, item stratum) slots of its users and its own output
    # slice: blocks write disjoint memory.
    while True:
        b = claim(counter, 0)
        if b >= n_tasks:
            break
        for t in range(block_start[b], block_start[b + 1]):
            u = users[t]
            c = item_stratum[items[t]]
            p = offset[u, c]
            out_items[p] = items[t]
            out_ratings[p] = ratings[t]
            offset[u, c] = p + 1


#: Ratings per thread, at least, in the counting and bucketing passes of
#: :func:`build_layout` (memory bound: below this a second thread costs more than it saves).
LAYOUT_CHUNK = 1_000_000


def build_layout(
    users, items, ratings, user_stratum, item_stratum, n_strata, out_items, out_ratings
):
    """Lay the ratings out block by block, each block grouped by user, in O(n + users x S).

    A user lies in exactly one user stratum a, so block (a, c) is the users of stratum a
    (in index order), each with their ratings of items in stratum c (in input order).
    Counting ratings per (user, item stratum) cell gives every group's place; the
    ratings are then bucketed by block and each block's placed into its groups. Returns
    ``(group_user, group_start, block_group_ptr)`` as :func:`sgd_epoch_grouped` takes
    them.

    All three passes over the ratings run on ``numba.get_num_threads()`` threads: the
    counting and the bucketing cut the ratings into one contiguous chunk per thread,
    each counting into its own arrays and bucketing into its own part of every block
    (chunk by chunk, so the order inside a block is the input order whatever the
    number of chunks: the layout never depends on the thread count). The compiled
    passes allocate nothing: the per-cell bookkeeping (users x S entries) is numpy's,
    which keeps numba's array constructors out of the first run's compile (about a
    second of CPU).
    """
    import numba

    S = int(n_strata)
    n_users = user_stratum.shape[0]
    n = users.shape[0]
    chunks = int(max(1, min(numba.get_num_threads(), n // LAYOUT_CHUNK)))
    count = np.zeros((chunks, n_users * S), dtype=np.int64)
    block_count = np.zeros((chunks, S * S), dtype=np.int64)
    run_workers(
        _count_cells_worker, chunks, users, items, user_stratum, item_stratum, S, count,
        block_count,
    )  # fmt: skip
    count = (count[0] if chunks == 1 else count.sum(axis=0)).reshape(n_users, S)
    # The groups: non-empty cells ordered by (user stratum, item stratum, user).
    cell_user, cell_stratum = np.nonzero(count)
    order = np.lexsort((cell_user, cell_stratum, user_stratum[cell_user]))
    group_user = cell_user[order].astype(np.int32)
    group_stratum = cell_stratum[order]
    group_start = np.zeros(len(order) + 1, dtype=np.int64)
    np.cumsum(count[group_user, group_stratum], out=group_start[1:])
    group_block = user_stratum[group_user].astype(np.int64) * S + group_stratum
    block_group_ptr = np.zeros(S * S + 1, dtype=np.int64)
    np.cumsum(np.bincount(group_block, minlength=S * S), out=block_group_ptr[1:])
    offset = np.zeros((n_users, S), dtype=np.int64)  # next free slot of (user, stratum)
    offset[group_user, group_stratum] = group_start[:-1]
    # Two-level scatter (as in a radix sort): first bucket the ratings by block -- S*S
    # write streams, cache friendly -- then place each block's ratings into its groups,
    # blocks in parallel, each inside its own ~n/S^2 slice that stays in cache. (A
    # direct scatter of randomly ordered input misses the cache on every rating.)
    block_start = group_start[block_group_ptr]
    by_block = (
        np.empty(n, dtype=np.int32),
        np.empty(n, dtype=np.int32),
        np.empty(n, dtype=out_ratings.dtype),
    )
    # Chunk c's first slot in block b: the block's start plus the earlier chunks' share.
    fill = block_start[: S * S] + np.cumsum(block_count, axis=0) - block_count
    run_workers(
        _bucket_by_block_worker, chunks, users, items, ratings, user_stratum, item_stratum, S,
        fill, *by_block,
    )  # fmt: skip
    run_workers(
        _place_blocks_worker, S * S, *by_block, block_start, item_stratum, offset, out_items,
        out_ratings,
    )  # fmt: skip
    return group_user, group_start, block_group_ptr


@njit(cache=True, nogil=True, no_cfunc_wrapper=True)
def _count_cells_worker(
    counter, n_tasks, users, items, user_stratum, item_stratum, n_strata, count, block_count
):  # fmt: skip
    # Chunk c of the ratings: count[c, u * S + s] += 1 for each rating of user u on an
    # item of stratum s, and block_count[c, block] += 1.
    while True:
        c = claim(counter, 0)
        if c >= n_tasks:
            break
        cells = count[c]
        blocks = block_count[c]
        start, stop = chunk_bounds(c, n_tasks, users.shape[0])
        for t in range(start, stop):
            u = np.int64(users[t])
            s = item_stratum[items[t]]
            cells[u * n_strata + s] += 1
            blocks[user_stratum[u] * n_strata + s] += 1


@njit(cache=True, nogil=True, no_cfunc_wrapper=True)
def _bucket_by_block_worker(
    counter, n_tasks, users, items, ratings, user_stratum, item_stratum, n_strata, fill,
    out_users, out_items, out_ratings,
):  # fmt: skip
    # Stable bucketing of chunk c of the ratings by block; fill[c, b] is chunk c's next
    # free slot in block b (its part of the block follows the earlier chunks' parts).
    while True:
        c = claim(counter, 0)
        if c >= n_tasks:
            break
        slots = fill[c]
        start, stop = chunk_bounds(c, n_tasks, users.shape[0])
        for t in range(start, stop):
            u = users[t]
            b = np.int64(user_stratum[u]) * n_strata + item_stratum[items[t]]
            p = slots[b]
            out_users[p] = u
            out_items[p] = items[t]
            out_ratings[p] = ratings[t]
            slots[b] = p + 1


def sgd_epoch_grouped_reference(
    group_user,
    group_start,
    block_group_ptr,
    group_order,
    items,
    ratings,
    n_strata,
    seeds,
    P,
    Q,
    bu,
    bi,
    mu,
    lr,
    reg,
    lr_bias,
    reg_bias,
    use_bias,
    GU,
    GI,
    adaptive,
    XU,
    XI,
):
    """Python reference of :func:`sgd_epoch_grouped`: the same shuffles (splitmix64),
    the per-rating step of :func:`sgd_epoch_reference`, blocks run one by one."""
    sse = 0.0
    for s in range(n_strata):
        for t in range(n_strata):
            b = t * n_strata + (t + s) % n_strata
            g0, g1 = block_group_ptr[b], block_group_ptr[b + 1]
            state = shuffle(group_order, g0, g1, np.uint64(seeds[b]))
            for r in range(g0, g1):
                g = group_order[r]
                start, stop = group_start[g], group_start[g + 1]
                state = shuffle_pairs(items, ratings, start, stop, np.uint64(state))
                users = np.full(stop - start, group_user[g], dtype=np.int32)
                order = np.arange(stop - start, dtype=np.int32)
                sse += sgd_epoch_reference(
                    users,
                    items[start:stop],
                    ratings[start:stop],
                    order,
                    P,
                    Q,
                    bu,
                    bi,
                    mu,
                    lr,
                    reg,
                    lr_bias,
                    reg_bias,
                    use_bias,
                    GU,
                    GI,
                    adaptive,
                    XU,
                    XI,
                )
    return sse


def sgd_epoch_reference(
    users, items, ratings, order, P, Q, bu, bi, mu, lr, reg, lr_bias, reg_bias, use_bias,
    GU, GI, adaptive, XU, XI,
):  # fmt: skip
    """Plain NumPy reference of :func:`sgd_epoch` (same update order, vectorised per
    rating over the factors): the gradients written out, then the plain or adaptive
    step of the module docstring."""
    sse = 0.0
    k = P.shape[1]
    for idx in order:
        u, i = users[idx], items[idx]
        pred = (
            mu + (bu[u] + bi[i] if use_bias else 0.0) + float(np.dot(P[u].astype(np.float64), Q[i]))
        )
        err = float(ratings[idx]) - pred
        sse += err * err
        pu, qi = P[u].copy(), Q[i].copy()
        # The rows' penalty coefficients: per rating plus the count-aware part.
        xu = XU[u] if len(XU) else np.zeros(2)
        xi = XI[i] if len(XI) else np.zeros(2)
        grad_p, grad_q = (reg + xu[0]) * pu - err * qi, (reg + xi[0]) * qi - err * pu
        if use_bias:
            grad_bu = (reg_bias + xu[1]) * bu[u] - err
            grad_bi = (reg_bias + xi[1]) * bi[i] - err
            if adaptive:
                bu[u] -= lr_bias / np.sqrt(GU[u, 1]) * grad_bu
                bi[i] -= lr_bias / np.sqrt(GI[i, 1]) * grad_bi
                GU[u, 1] += grad_bu**2
                GI[i, 1] += grad_bi**2
            else:
                bu[u] -= lr_bias * grad_bu
                bi[i] -= lr_bias * grad_bi
        if adaptive:
            P[u] = pu - lr / np.sqrt(GU[u, 0]) * grad_p
            Q[i] = qi - lr / np.sqrt(GI[i, 0]) * grad_q
            GU[u, 0] += grad_p @ grad_p / k
            GI[i, 0] += grad_q @ grad_q / k
        else:
            P[u] = pu - lr * grad_p
            Q[i] = qi - lr * grad_q
    return sse
