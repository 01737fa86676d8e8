"""Stochastic gradient descent for (biased) matrix factorization.

Per rating (u, i, r), with prediction  r_hat = mu + b_u + b_i + p_u . q_i  and error
e = r - r_hat, the per-rating objective

    L = 1/2 e^2 + reg/2 (|p_u|^2 + |q_i|^2) + reg_bias/2 (b_u^2 + b_i^2)

has gradients  dL/dp_u = -e q_i + reg p_u,  dL/dq_i = -e p_u + reg q_i,
dL/db_u = -e + reg_bias b_u  (likewise b_i). One SGD step moves each parameter by
-lr * gradient (lr_bias for the biases), using the values from before the step for
both p_u and q_i (Funk; Koren, Bell & Volinsky 2009; Surprise's SVD).

Parallel schedule (conflict-free, deterministic)
------------------------------------------------
Users and items are dealt into S strata each (S = number of threads). The ratings of
user-stratum a and item-stratum b form block (a, b). An epoch runs S sub-epochs; in
sub-epoch s the S blocks (t, (t + s) mod S), t = 0..S-1, share no user and no item, so
threads update them at once without locks or races (the stratified SGD of Gemulla et
al. 2011, as in LIBMF). Each block's ratings are visited in an order shuffled every
epoch from a seed drawn per block, so the result depends on the seed and S -- never on
timing. S = 1 is plain serial SGD.
"""

import numpy as np
from numba import njit, prange

# Allow reassociation (a vectorised dot product) and fused multiply-add, but keep NaN
# and infinity semantics: divergence must stay visible.
FAST = {"reassoc", "contract", "nsz", "arcp"}


@njit(cache=True, nogil=True, fastmath=FAST)
def _sgd_range(
    users,
    items,
    ratings,
    order,
    start,
    stop,
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
):
    k = P.shape[1]
    sse = 0.0
    for t in range(start, stop):
        idx = order[t]
        u = users[idx]
        i = items[idx]
        pu = P[u]
        qi = Q[i]
        dot = mu - mu  # zero, typed like the factors (callers pass mu in their dtype)
        for f in range(k):
            dot += pu[f] * qi[f]
        pred = mu + dot
        if use_bias:
            pred += bu[u] + bi[i]
        err = ratings[idx] - pred
        sse += np.float64(err) * np.float64(err)
        if use_bias:
            bu[u] += lr_bias * (err - reg_bias * bu[u])
            bi[i] += lr_bias * (err - reg_bias * bi[i])
        for f in range(k):
            pf = pu[f]
            qf = qi[f]
            pu[f] = pf + lr * (err * qf - reg * pf)
            qi[f] = qf + lr * (err * pf - reg * qf)
    return sse


@njit(cache=True, nogil=True)
def _splitmix64(state):
    state = (state + np.uint64(0x9E3779B97F4A7C15)) & np.uint64(0xFFFFFFFFFFFFFFFF)
    z = state
    z = ((z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & np.uint64(0xFFFFFFFFFFFFFFFF)
    z = ((z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & np.uint64(0xFFFFFFFFFFFFFFFF)
    return state, z ^ (z >> np.uint64(31))


@njit(cache=True, nogil=True)
def shuffle_range(order, start, stop, seed):
    """Fisher-Yates shuffle of order[start:stop] driven by splitmix64(seed)."""
    state = np.uint64(seed)
    for t in range(stop - 1, start, -1):
        state, draw = _splitmix64(state)
        j = start + np.int64(draw % np.uint64(t - start + 1))
        order[t], order[j] = order[j], order[t]


@njit(cache=True, nogil=True)
def sgd_epoch(users, items, ratings, order, P, Q, bu, bi, mu, lr, reg, lr_bias, reg_bias, use_bias):
    """One serial pass of SGD over the ratings in ``order``; updates P, Q, bu, bi in
    place. Returns the sum of squared errors of the predictions made during the pass
    (each taken just before that rating's update)."""
    return _sgd_range(
        users,
        items,
        ratings,
        order,
        0,
        order.shape[0],
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
    )


@njit(parallel=True, cache=True, nogil=True)
def sgd_epoch_blocked(
    users,
    items,
    ratings,
    order,
    block_ptr,
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
):
    """One epoch of stratified parallel SGD (see the module docstring).

    ``order`` holds rating positions grouped by block: block b = a * n_strata + c owns
    ``order[block_ptr[b]:block_ptr[b + 1]]``, which is reshuffled with ``seeds[b]``.
    Returns the sum of squared errors seen during the epoch.
    """
    n_blocks = n_strata * n_strata
    sse = np.zeros(n_blocks)
    for s in range(n_strata):
        for t in prange(n_strata):
            b = t * n_strata + (t + s) % n_strata
            start = block_ptr[b]
            stop = block_ptr[b + 1]
            shuffle_range(order, start, stop, seeds[b])
            sse[b] = _sgd_range(
                users,
                items,
                ratings,
                order,
                start,
                stop,
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
            )
    return sse.sum()


def sgd_epoch_reference(
    users, items, ratings, order, P, Q, bu, bi, mu, lr, reg, lr_bias, reg_bias, use_bias
):
    """Plain NumPy reference of :func:`sgd_epoch` (same update order, vectorised per
    rating over the factors)."""
    sse = 0.0
    for idx in order:
        u, i = users[idx], items[idx]
        pred = (
            mu + (bu[u] + bi[i] if use_bias else 0.0) + float(np.dot(P[u].astype(np.float64), Q[i]))
        )
        err = float(ratings[idx]) - pred
        sse += err * err
        if use_bias:
            bu[u] += lr_bias * (err - reg_bias * bu[u])
            bi[i] += lr_bias * (err - reg_bias * bi[i])
        pu, qi = P[u].copy(), Q[i].copy()
        P[u] = pu + lr * (err * qi - reg * pu)
        Q[i] = qi + lr * (err * pu - reg * qi)
    return sse
