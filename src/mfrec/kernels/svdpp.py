"""SGD for SVD++ (Koren 2008, "Factorization meets the neighborhood", section 4).

Model:  r_hat(u, i) = mu + b_u + b_i + q_i . (p_u + z_u),
        z_u = |N(u)|^-1/2 sum_{j in N(u)} y_j          (N(u): the items u rated)

Per rating (u, i, r), with e = r - r_hat and s = |N(u)|^-1/2, the per-rating objective

    L = 1/2 e^2 + reg_b/2 (b_u^2 + b_i^2) + reg/2 (|p_u|^2 + |q_i|^2)
        + reg_y/2 sum_{j in N(u)} |y_j|^2

gives the SGD steps of Koren's paper and of Surprise's ``SVDpp`` (every parameter moved
by -lr x its gradient at the values from before the step):

    b_u <- b_u + lr_b (e - reg_b b_u)            b_i <- b_i + lr_b (e - reg_b b_i)
    p_u <- p_u + lr (e q_i - reg p_u)            q_i <- q_i + lr (e (p_u + z_u) - reg q_i)
    y_j <- y_j + lr_y (e s q_i - reg_y y_j)   for every j in N(u)                    (*)

Done literally, (*) touches |N(u)| vectors per rating and z_u must be re-summed before
the next one: O(|N(u)| k) per rating, which is why Surprise's SVDpp takes minutes.

The cached, exact update used here
----------------------------------
The ratings are visited user by user (all of one user's ratings together). Within a
user, (*) is the same affine map for every j:  y_j <- a y_j + d_t  with
a = 1 - lr_y reg_y and d_t = lr_y e_t s q_i(t) (q_i before its step). After the user's
m ratings, therefore,

    y_j = a^m y_j(start) + D,      D = sum_t a^(m - t) d_t   (D <- a D + d_t per rating)

and the running implicit sum follows (*) exactly, without touching any y_j:

    z_u <- a z_u + |N(u)| s d_t  =  a z_u + sqrt(|N(u)|) d_t.

So a user costs O(|N(u)| k) once (z_u at the start, y_j <- a^m y_j + D at the end) plus
O(k) per rating: the epoch is O(n_ratings k), like plain biased MF. Nothing else reads
y_j while one user is processed (only z_u does), so this is *the same algorithm* as the
per-rating update (*) -- not an approximation (such as summing the user's y-gradients
and regularising once) -- for the same visiting order; the two differ only by floating-
point rounding (z_u and D are carried in float64). The NumPy reference below performs
(*) literally and a test checks the agreement.

Adaptive step sizes (``adaptive=True``)
---------------------------------------
LIBMF's AdaGrad rule (see :mod:`mfrec.kernels.sgd`): p_u and q_i each keep one
accumulator of their squared gradients (averaged over the k coordinates, starting at 1)
and step by lr / sqrt(accumulator) x gradient; each bias keeps its own. A separate rate
per y_j would break the cached update above (the map would differ between the j), so the
implicit factors share one rate per *user*: eta_t = lr_y / sqrt(G_y(u)), with G_y(u)
growing by |e s q_i|^2 / k (the data part of every y_j's gradient, the same for all j)
after each of the user's ratings. The step of every y_j at rating t is then still one
affine map, y_j <- (1 - eta_t reg_y) y_j + eta_t e s q_i, and the cache above carries it
exactly with a_t = 1 - eta_t reg_y varying along the user's ratings.

Count-aware penalty (``XU``, ``XI``, as in :mod:`mfrec.kernels.sgd`): the penalty
coefficients of p_u and b_u at each of u's ratings are reg + XU[u, 0] and
reg_b + XU[u, 1] (q_i, b_i likewise with XI[i]), XU[u] = (reg_row, reg_bias_row) / n_u:
a fixed amount per row spread over its ratings. Empty XU / XI: none. (y_j keeps its
per-rating penalty.)

Order: users in a fresh random order each epoch, each user's ratings shuffled. (Surprise
visits the users, and each user's ratings, in the same fixed order every epoch.)

Serial on purpose: every user's step writes y_j of all the items it rated, so users
cannot run concurrently without conflicts; a conflict-free stratified schedule (as for
biased MF) would have to freeze z_u per block and re-sum it for every user and sub-epoch
(S times the work with S strata), which changes the algorithm and gains nothing on the
2-8 cores it would use. One epoch on ML-100K takes a few milliseconds.
"""

import numpy as np
from numba import njit

from ._common import FAST, claim, run_workers, shuffle


@njit(cache=True, nogil=True, no_cfunc_wrapper=True)
def shuffle_epoch(indptr, user_order, order, seed):
    """Reshuffle, in place and driven by ``seed`` alone, the user order and each user's
    rating positions ``order[indptr[u]:indptr[u + 1]]``."""
    state = np.uint64(seed)
    # (a start of n - n, not the literal 0: the signature the SGD kernels compile too)
    n_users = user_order.shape[0]
    state = shuffle(user_order, n_users - n_users, n_users, state)
    for u in range(indptr.shape[0] - 1):
        state = shuffle(order, indptr[u], indptr[u + 1], state)


@njit(cache=True, nogil=True, fastmath=FAST, no_cfunc_wrapper=True)
def svdpp_epoch(
    indptr,
    items,
    ratings,
    user_order,
    order,
    P,
    Q,
    Y,
    bu,
    bi,
    mu,
    lr_bias,
    reg_bias,
    lr,
    reg,
    lr_y,
    reg_y,
    GU,
    GI,
    GY,
    adaptive,
    XU,
    XI,
):
    """One serial SGD pass of SVD++ (see the module docstring), users in ``user_order``,
    user u's ratings at positions ``order[indptr[u]:indptr[u + 1]]`` of the user-sorted
    arrays ``items``/``ratings``. Updates P, Q, Y, bu, bi in place (and, with
    ``adaptive``, the accumulators GU (n_users, 2: factors, bias), GI (n_items, 2) and
    GY (n_users,)); ``XU`` (n_users, 2) / ``XI`` (n_items, 2) add the rows' count-aware
    penalty (empty: none). Returns the sum of squared errors of the predictions made during the
    pass (each before its update)."""
    k = P.shape[1]
    z = np.zeros(k)  # z_u, float64
    acc = np.zeros(k)  # D, the user's accumulated y-step, float64
    decay = 1.0 - lr_y * reg_y
    eta_bu = lr_bias
    eta_bi = lr_bias
    eta_p = lr
    eta_q = lr
    eta_y = lr_y
    sse = 0.0
    for uu in range(user_order.shape[0]):
        u = user_order[uu]
        start = indptr[u]
        stop = indptr[u + 1]
        n = stop - start
        if n == 0:
            continue
        s = 1.0 / np.sqrt(n)
        sqrt_n = np.sqrt(n)
        for f in range(k):
            z[f] = 0.0
            acc[f] = 0.0
        for t in range(start, stop):
            yj = Y[items[t]]
            for f in range(k):
                z[f] += yj[f]
        for f in range(k):
            z[f] *= s
        scale = 1.0  # a^m
        pu = P[u]
        reg_p = reg
        reg_bu = reg_bias
        if XU.shape[0] > 0:
            reg_p += XU[u, 0]
            reg_bu += XU[u, 1]
        for t in range(start, stop):
            idx = order[t]
            i = items[idx]
            qi = Q[i]
            dot = 0.0
            for f in range(k):
                dot += qi[f] * (pu[f] + z[f])
            err = ratings[idx] - (mu + bu[u] + bi[i] + dot)
            sse += err * err
            if adaptive:
                eta_bu = lr_bias / np.sqrt(GU[u, 1])
                eta_bi = lr_bias / np.sqrt(GI[i, 1])
                eta_p = lr / np.sqrt(GU[u, 0])
                eta_q = lr / np.sqrt(GI[i, 0])
                eta_y = lr_y / np.sqrt(GY[u])
                decay = 1.0 - eta_y * reg_y
            reg_q = reg
            reg_bi = reg_bias
            if XI.shape[0] > 0:
                reg_q += XI[i, 0]
                reg_bi += XI[i, 1]
            g_bu = reg_bu * bu[u] - err
            g_bi = reg_bi * bi[i] - err
            bu[u] -= eta_bu * g_bu
            bi[i] -= eta_bi * g_bi
            g = eta_y * err * s
            sp = 0.0
            sq = 0.0
            sy = 0.0
            for f in range(k):
                pf = pu[f]
                qf = qi[f]
                gp = reg_p * pf - err * qf
                gq = reg_q * qf - err * (pf + z[f])
                sp += gp * gp
                sq += gq * gq
                sy += qf * qf
                pu[f] = pf - eta_p * gp
                qi[f] = qf - eta_q * gq
                d = g * qf
                acc[f] = decay * acc[f] + d
                z[f] = decay * z[f] + sqrt_n * d
            if adaptive:
                GU[u, 1] += g_bu * g_bu
                GI[i, 1] += g_bi * g_bi
                GU[u, 0] += sp / k
                GI[i, 0] += sq / k
                GY[u] += err * err * s * s * sy / k
            scale *= decay
        for t in range(start, stop):
            yj = Y[items[t]]
            for f in range(k):
                yj[f] = scale * yj[f] + acc[f]
    return sse


@njit(cache=True, nogil=True, no_cfunc_wrapper=True)
def _effective_user_factors_worker(counter, n_tasks, indptr, items, P, Y, out):
    k = P.shape[1]
    n = indptr.shape[0] - 1
    while True:
        task = claim(counter, 0)
        if task >= n_tasks:
            break
        for u in range(task * 16, min(n, (task + 1) * 16)):
            start = indptr[u]
            stop = indptr[u + 1]
            acc = np.zeros(k)
            for t in range(start, stop):
                j = items[t]
                for f in range(k):
                    acc[f] += Y[j, f]
            s = 1.0 / np.sqrt(max(stop - start, 1))
            for f in range(k):
                out[u, f] = P[u, f] + s * acc[f]


def effective_user_factors(indptr, items, P, Y, out):
    """out[u] = p_u + |N(u)|^-1/2 sum_{j in N(u)} y_j for every user (the factors that
    make SVD++ score like a plain factor model). Summed in float64, in each user's
    stored item order: the same result on any number of threads."""
    n_tasks = (indptr.shape[0] - 1 + 15) // 16
    run_workers(_effective_user_factors_worker, n_tasks, indptr, items, P, Y, out)


def svdpp_epoch_reference(
    indptr, items, ratings, user_order, order, P, Q, Y, bu, bi, mu,
    lr_bias, reg_bias, lr, reg, lr_y, reg_y, GU, GI, GY, adaptive, XU, XI,
):  # fmt: skip
    """Plain NumPy reference of :func:`svdpp_epoch` doing the per-rating update (*)
    literally: z_u re-summed before every rating and every y_j of the user moved after
    it (Koren 2008; Surprise's SVDpp), in the same order; with ``adaptive``, each step
    scaled by lr / sqrt(accumulator) as the module docstring says."""
    sse = 0.0
    k = P.shape[1]
    for u in user_order:
        start, stop = indptr[u], indptr[u + 1]
        n = stop - start
        if n == 0:
            continue
        rated = items[start:stop]
        s = 1.0 / np.sqrt(n)
        for idx in order[start:stop]:
            i = items[idx]
            z = s * Y[rated].astype(np.float64).sum(axis=0)
            pu, qi = P[u].astype(np.float64), Q[i].astype(np.float64)
            err = float(ratings[idx]) - (mu + bu[u] + bi[i] + qi @ (pu + z))
            sse += err * err
            xu = XU[u] if len(XU) else np.zeros(2)
            xi = XI[i] if len(XI) else np.zeros(2)
            g_bu = (reg_bias + xu[1]) * bu[u] - err
            g_bi = (reg_bias + xi[1]) * bi[i] - err
            g_p = (reg + xu[0]) * pu - err * qi
            g_q = (reg + xi[0]) * qi - err * (pu + z)
            g_y = reg_y * Y[rated] - err * s * qi[None, :]  # one row per j in N(u)
            if adaptive:
                steps = (
                    lr_bias / np.sqrt(GU[u, 1]), lr_bias / np.sqrt(GI[i, 1]),
                    lr / np.sqrt(GU[u, 0]), lr / np.sqrt(GI[i, 0]), lr_y / np.sqrt(GY[u]),
                )  # fmt: skip
                GU[u, 1] += g_bu**2
                GI[i, 1] += g_bi**2
                GU[u, 0] += g_p @ g_p / k
                GI[i, 0] += g_q @ g_q / k
                GY[u] += (err * s) ** 2 * (qi @ qi) / k
            else:
                steps = (lr_bias, lr_bias, lr, lr, lr_y)
            bu[u] -= steps[0] * g_bu
            bi[i] -= steps[1] * g_bi
            P[u] = pu - steps[2] * g_p
            Q[i] = qi - steps[3] * g_q
            Y[rated] -= steps[4] * g_y
    return sse


def effective_user_factors_reference(indptr, items, P, Y):
    """NumPy reference of :func:`effective_user_factors`."""
    out = P.astype(np.float64).copy()
    for u in range(len(indptr) - 1):
        rated = items[indptr[u] : indptr[u + 1]]
        if len(rated):
            out[u] += Y[rated].astype(np.float64).sum(axis=0) / np.sqrt(len(rated))
    return out
