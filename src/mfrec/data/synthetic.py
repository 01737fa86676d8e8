"""Planted low-rank ratings: data whose answer is known.

:func:`make_ratings` draws a biased matrix-factorization model (the *truth*), chooses
which (user, item) pairs are observed, and returns the noisy, rounded, clipped ratings
together with the truth, so that tests and benchmarks can compare a fitted model with
the parameters that generated its data. :func:`default_synthetic` is the embedded
MovieLens-100K-sized dataset used when no MovieLens download is available.

The model
---------
``rating(u, i) = clip(round(mu + b_u + b_i + p_u·q_i + e))`` with ``p_u, q_i ~ N(0, s² I)``,
``b_u ~ N(0, user_bias_std²)``, ``b_i ~ N(0, item_bias_std²)``, ``e ~ N(0, noise_std²)``.

Which pairs are observed
------------------------
Pairs are drawn without replacement with probability proportional to
``w_user[u] · w_item[i]`` (successive sampling: the next pair is drawn among the pairs not
yet chosen). With ``missing="popularity"`` the item of popularity rank ``r`` (1 = most
popular; ranks are a random order of the item ids) has weight ``r**-popularity_exponent``
and the user of activity rank ``r`` weight ``r**-activity_exponent``, as in MovieLens;
with ``missing="uniform"`` all weights are equal. Because the sample is without
replacement, the most popular items and most active users saturate (they cannot have
more ratings than there are users or items), as in the real data.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Literal

import numpy as np

from mfrec._params import Integer, Options, RandomStateConstraint, Real, check_params
from mfrec._random import RandomState, check_random_state
from mfrec.data.ratings import Ratings
from mfrec.data.vocab import Vocabulary
from mfrec.exceptions import ParameterError

logger = logging.getLogger(__name__)

MissingMechanism = Literal["uniform", "popularity"]

#: Standard deviation of the interaction term ``p_u·q_i`` when ``factor_std`` is None.
DEFAULT_INTERACTION_STD = 0.5

_T0 = 946_684_800  # 2000-01-01T00:00:00Z: first synthetic timestamp
_TIME_SPAN = 3 * 365 * 86_400  # the timestamps span about three years
_CHUNK = 1 << 20  # rows per block when computing ratings (bounds temporary memory)
_BLOCK = 1 << 18  # elements per block of elementwise work in the pair sampler
# Exact weighted sampling over every cell costs O(n_users·n_items); use it up to this
# many cells, or up to _EXACT_MAX_DENSE_CELLS when the matrix is dense (> 25% observed),
# where rejection of duplicates would waste most draws.
_EXACT_MAX_CELLS = 1 << 23
_EXACT_MAX_DENSE_CELLS = 1 << 26
_MAX_ROUNDS = 100

_CONSTRAINTS = {
    "n_users": Integer(1),
    "n_items": Integer(1),
    "n_ratings": Integer(1, none_ok=True),
    "density": Real(0, 1, open_low=True),
    "n_factors": Integer(0),
    "factor_std": Real(0, none_ok=True),
    "user_bias_std": Real(0),
    "item_bias_std": Real(0),
    "global_mean": Real(),
    "noise_std": Real(0),
    "round_to": Real(0, open_low=True, none_ok=True),
    "missing": Options(("uniform", "popularity")),
    "popularity_exponent": Real(0, 5),
    "activity_exponent": Real(0, 5),
    "random_state": RandomStateConstraint(),
}


def _readonly(arr: np.ndarray) -> np.ndarray:
    arr.flags.writeable = False
    return arr


@dataclass(frozen=True, eq=False)
class SyntheticTruth:
    """The parameters that generated a synthetic dataset (arrays are read-only).

    Attributes
    ----------
    user_factors : ndarray of shape (n_users, n_factors)
        Row ``u`` belongs to user index ``u`` (raw user id ``u + 1``).
    item_factors : ndarray of shape (n_items, n_factors)
    user_bias : ndarray of shape (n_users,)
    item_bias : ndarray of shape (n_items,)
    global_mean : float
    noise_std : float
        Standard deviation of the Gaussian noise added before rounding and clipping.
    scale : (float, float) or None
        The clipping range (None: no clipping).
    round_to : float or None
        The rating grid step (None: continuous ratings).
    """

    user_factors: np.ndarray
    item_factors: np.ndarray
    user_bias: np.ndarray
    item_bias: np.ndarray
    global_mean: float
    noise_std: float
    scale: tuple[float, float] | None
    round_to: float | None

    @property
    def n_factors(self) -> int:
        return self.user_factors.shape[1]

    def expected(self, user_index: np.ndarray, item_index: np.ndarray) -> np.ndarray:
        """The noiseless score ``mu + b_u + b_i + p_u·q_i`` (before rounding and clipping).

        Parameters
        ----------
        user_index, item_index : array-like of int
            Indices (not raw ids) of the same length.

        Returns
        -------
        ndarray of float64
        """
        users = np.asarray(user_index, dtype=np.intp)
        items = np.asarray(item_index, dtype=np.intp)
        if users.shape != items.shape or users.ndim != 1:
            raise ValueError(
                f"user_index and item_index must be 1-d of the same length, "
                f"got shapes {users.shape} and {items.shape}"
            )
        out = np.empty(len(users), dtype=np.float64)
        for start, stop in _blocks(len(users), _CHUNK):
            out[start:stop] = _score(self, users[start:stop], items[start:stop])
        return out


def _score(truth: SyntheticTruth, users: np.ndarray, items: np.ndarray) -> np.ndarray:
    # np.take is several times faster than fancy indexing for these row gathers.
    interaction = np.einsum(
        "ij,ij->i",
        np.take(truth.user_factors, users, axis=0),
        np.take(truth.item_factors, items, axis=0),
    )
    interaction += truth.global_mean
    interaction += np.take(truth.user_bias, users)
    interaction += np.take(truth.item_bias, items)
    return interaction


@dataclass(frozen=True)
class SyntheticData:
    """Synthetic ratings and the truth that generated them."""

    ratings: Ratings
    truth: SyntheticTruth


def make_ratings(
    n_users: int = 1000,
    n_items: int = 500,
    n_ratings: int | None = None,
    *,
    density: float = 0.05,
    n_factors: int = 5,
    factor_std: float | None = None,
    user_bias_std: float = 0.3,
    item_bias_std: float = 0.3,
    global_mean: float = 3.5,
    noise_std: float = 0.5,
    scale: tuple[float, float] | None = (1, 5),
    round_to: float | None = 1.0,
    missing: MissingMechanism = "popularity",
    popularity_exponent: float = 1.0,
    activity_exponent: float = 0.5,
    random_state: RandomState = None,
) -> SyntheticData:
    """Generate ratings from a planted biased matrix-factorization model.

    Parameters
    ----------
    n_users, n_items : int
        Users get raw ids ``1..n_users`` and items ``1..n_items`` (ints); user index
        ``u`` is id ``u + 1``. The vocabularies always hold every id.
    n_ratings : int, optional
        Exact number of distinct observed (user, item) pairs. Default:
        ``round(density · n_users · n_items)``; at most ``n_users · n_items``.
    density : float in (0, 1]
        Used only when ``n_ratings`` is None.
    n_factors : int
        Rank of the interaction term (0: biases only).
    factor_std : float, optional
        Standard deviation of each factor entry. None chooses
        ``sqrt(DEFAULT_INTERACTION_STD) / n_factors**0.25``, which makes the interaction
        ``p_u·q_i`` (a sum of ``n_factors`` products of two independent N(0, s²)
        variables, of variance ``n_factors·s⁴``) have standard deviation
        ``DEFAULT_INTERACTION_STD`` (0.5) whatever the rank.
    user_bias_std, item_bias_std, global_mean : float
        The bias model.
    noise_std : float
        Standard deviation of the Gaussian noise on each rating.
    scale : (low, high) or None
        Ratings are clipped to this range, which becomes :attr:`Ratings.scale`. None:
        no clipping.
    round_to : float or None
        Ratings are rounded to multiples of this step (1.0: whole stars, 0.5: half
        stars) before clipping; the ends of ``scale`` must lie on that grid. None keeps
        ratings continuous (stored as float32).
    missing : {"popularity", "uniform"}
        How observed pairs are chosen; see the module documentation.
    popularity_exponent, activity_exponent : float in [0, 5]
        Power-law exponents of item popularity and user activity (``missing="popularity"``).
    random_state : None, int or numpy Generator
        The same int always gives identical output.

    Returns
    -------
    SyntheticData
        ``ratings`` (named ``"synthetic"``) and the ``truth``.

    Notes
    -----
    When ``n_ratings >= max(n_users, n_items)`` every user and every item has at least
    one rating: ``max(n_users, n_items)`` covering pairs (the user of activity rank
    ``j mod n_users`` with the item of popularity rank ``j mod n_items``) are placed at
    random rows, and the other pairs are sampled as described above, excluding them.
    With fewer ratings some ids have none (:meth:`Ratings.compact` drops them).

    Rows are in a random order (the order in which pairs were drawn), and timestamps
    strictly increase with the row, starting on 2000-01-01 and spanning about three
    years, so that a temporal split cuts the data at a random moment of its history.
    """
    check_params(
        "make_ratings",
        {
            "n_users": n_users,
            "n_items": n_items,
            "n_ratings": n_ratings,
            "density": density,
            "n_factors": n_factors,
            "factor_std": factor_std,
            "user_bias_std": user_bias_std,
            "item_bias_std": item_bias_std,
            "global_mean": global_mean,
            "noise_std": noise_std,
            "round_to": round_to,
            "missing": missing,
            "popularity_exponent": popularity_exponent,
            "activity_exponent": activity_exponent,
            "random_state": random_state,
        },
        _CONSTRAINTS,
    )
    scale = _check_scale(scale, round_to)
    n_cells = n_users * n_items
    if n_ratings is None:
        n_ratings = round(density * n_cells)
        if n_ratings < 1:
            raise ParameterError(
                f"make_ratings: density {density} of {n_users} x {n_items} gives no rating; "
                "raise density or pass n_ratings"
            )
    if n_ratings > n_cells:
        raise ParameterError(
            f"make_ratings: n_ratings={n_ratings:,} exceeds the {n_users:,} x {n_items:,} = "
            f"{n_cells:,} possible (user, item) pairs"
        )
    if factor_std is None:
        factor_std = math.sqrt(DEFAULT_INTERACTION_STD) / max(n_factors, 1) ** 0.25

    started = time.perf_counter()
    rng = check_random_state(random_state)
    truth = SyntheticTruth(
        user_factors=_readonly(rng.normal(0.0, factor_std, (n_users, n_factors))),
        item_factors=_readonly(rng.normal(0.0, factor_std, (n_items, n_factors))),
        user_bias=_readonly(rng.normal(0.0, user_bias_std, n_users)),
        item_bias=_readonly(rng.normal(0.0, item_bias_std, n_items)),
        global_mean=float(global_mean),
        noise_std=float(noise_std),
        scale=scale,
        round_to=None if round_to is None else float(round_to),
    )
    # Index of the user (item) at each activity (popularity) rank.
    user_by_rank = rng.permutation(n_users)
    item_by_rank = rng.permutation(n_items)
    user_weight = item_weight = None
    if missing == "popularity":
        user_weight = _power_weights(user_by_rank, activity_exponent)
        item_weight = _power_weights(item_by_rank, popularity_exponent)

    keys = _sample_pairs(
        rng, n_users, n_items, n_ratings, user_weight, item_weight, user_by_rank, item_by_rank
    )
    user_index = np.empty(n_ratings, dtype=np.int32)
    item_index = np.empty(n_ratings, dtype=np.int32)
    for start, stop in _blocks(n_ratings):
        user_index[start:stop], item_index[start:stop] = np.divmod(keys[start:stop], n_items)
    del keys
    rating = _observe(rng, truth, user_index, item_index)
    timestamp = _timestamps(rng, n_ratings)

    ratings = Ratings(
        user_index,
        item_index,
        rating,
        Vocabulary(np.arange(1, n_users + 1, dtype=np.int64), "user"),
        Vocabulary(np.arange(1, n_items + 1, dtype=np.int64), "item"),
        timestamp,
        scale,
        None,
        "synthetic",
    )
    logger.debug(
        "generated %s in %.2f s (%s missingness)", ratings, time.perf_counter() - started, missing
    )
    return SyntheticData(ratings, truth)


def default_synthetic(random_state: RandomState = 0) -> SyntheticData:
    """The embedded default dataset, shaped like MovieLens 100K.

    943 users, 1,682 items and 100,000 whole-star ratings on 1-5, with MovieLens-like
    popularity and activity skew (the top 10% of items hold over 40% of the ratings) and
    a rank-5 truth. Biases and noise are set so that the data is about as hard as
    ML-100K: the ratings have its mean and spread (about 3.5 and 1.1), and the noiseless
    truth itself scores an RMSE of about 0.83 against the observed stars, so that a
    well-tuned model lands near the 0.9 typical of ML-100K. ``ratings.name`` is
    ``"synthetic"``. Used when no MovieLens data is available.

    Parameters
    ----------
    random_state : None, int or numpy Generator, default 0
        The default always gives the same dataset.

    Returns
    -------
    SyntheticData
    """
    return make_ratings(
        943,
        1682,
        100_000,
        n_factors=5,
        user_bias_std=0.45,
        item_bias_std=0.55,
        global_mean=3.58,
        noise_std=0.85,
        scale=(1, 5),
        round_to=1.0,
        missing="popularity",
        popularity_exponent=0.9,
        activity_exponent=0.6,
        random_state=random_state,
    )


# -- helpers ---------------------------------------------------------------------------
def _check_scale(
    scale: tuple[float, float] | None, round_to: float | None
) -> tuple[float, float] | None:
    if scale is None:
        return None
    try:
        low, high = (float(v) for v in scale)
    except (TypeError, ValueError):
        raise ParameterError(
            f"make_ratings: scale must be None or a pair (low, high), got {scale!r}"
        ) from None
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ParameterError(f"make_ratings: scale must be finite with low < high, got {scale!r}")
    if round_to is not None:
        for end in (low, high):
            steps = end / round_to
            if abs(steps - round(steps)) > 1e-9 * max(1.0, abs(steps)):
                raise ParameterError(
                    f"make_ratings: the scale end {end:g} is not a multiple of round_to="
                    f"{round_to:g}, so clipped ratings would leave the rating grid"
                )
    return low, high


def _power_weights(index_by_rank: np.ndarray, exponent: float) -> np.ndarray:
    """Weight ``rank**-exponent`` (rank 1 = first) for each index."""
    weights = np.empty(len(index_by_rank), dtype=np.float64)
    weights[index_by_rank] = np.arange(1, len(index_by_rank) + 1, dtype=np.float64) ** -exponent
    return weights


def _sample_pairs(
    rng: np.random.Generator,
    n_users: int,
    n_items: int,
    n_ratings: int,
    user_weight: np.ndarray | None,
    item_weight: np.ndarray | None,
    user_by_rank: np.ndarray,
    item_by_rank: np.ndarray,
) -> np.ndarray:
    """``n_ratings`` distinct cell keys ``user * n_items + item`` (int64), in draw order."""
    n_cells = n_users * n_items
    if n_ratings >= max(n_users, n_items):
        j = np.arange(max(n_users, n_items), dtype=np.int64)
        # Distinct: on the larger side j mod n is j itself.
        cover = user_by_rank[j % n_users].astype(np.int64) * n_items + item_by_rank[j % n_items]
    else:
        cover = np.zeros(0, dtype=np.int64)
    n_rest = n_ratings - len(cover)
    dense = 4 * n_ratings > n_cells
    if n_cells <= _EXACT_MAX_CELLS or (dense and n_cells <= _EXACT_MAX_DENSE_CELLS):
        rest = _sample_exact(rng, n_users, n_items, n_rest, user_weight, item_weight, cover)
    else:
        rest = _sample_rejection(rng, n_users, n_items, n_rest, user_weight, item_weight, cover)
    if len(cover) == 0:
        return rest
    # Covering pairs go to random rows, so that they carry no special place in time.
    cover = rng.permutation(cover)
    positions = np.sort(rng.integers(0, n_rest + 1, len(cover)))
    return np.insert(rest, positions, cover)


def _sample_exact(
    rng: np.random.Generator,
    n_users: int,
    n_items: int,
    n_take: int,
    user_weight: np.ndarray | None,
    item_weight: np.ndarray | None,
    exclude: np.ndarray,
) -> np.ndarray:
    """Successive weighted sampling over all cells by exponential races
    (Efraimidis & Spirakis): cell c finishes at E_c / w_c with E_c ~ Exp(1); the first
    ``n_take`` finishers, in finishing order, are a weighted sample without replacement,
    in draw order."""
    if n_take == 0:
        return np.zeros(0, dtype=np.int64)
    finish = rng.standard_exponential(n_users * n_items)
    if user_weight is not None and item_weight is not None:
        finish /= np.outer(user_weight, item_weight).ravel()
    finish[exclude] = np.inf
    chosen = np.argpartition(finish, n_take - 1)[:n_take]
    return chosen[np.argsort(finish[chosen], kind="stable")].astype(np.int64)


class _AliasSampler:
    """Draws indices with probability proportional to ``weights`` in O(1) each
    (Walker's alias method, Vose's construction); ``weights=None`` is uniform."""

    def __init__(self, n: int, weights: np.ndarray | None) -> None:
        self.n = n
        if n > np.iinfo(np.int32).max:
            raise ParameterError(f"make_ratings: {n:,} users or items are too many")
        self.prob: np.ndarray | None = None
        self.alias: np.ndarray | None = None
        if weights is None:
            return
        scaled = weights * (n / weights.sum())
        prob = np.ones(n, dtype=np.float64)
        alias = np.arange(n, dtype=np.int32)
        small = np.flatnonzero(scaled < 1.0).tolist()
        large = np.flatnonzero(scaled >= 1.0).tolist()
        # A loop over the n categories (not over draws): each step settles one column.
        while small and large:
            s, g = small.pop(), large.pop()
            prob[s] = scaled[s]
            alias[s] = g
            scaled[g] -= 1.0 - scaled[s]
            (small if scaled[g] < 1.0 else large).append(g)
        self.prob, self.alias = prob.astype(np.float32), alias

    def draw(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """``size`` independent draws (int32)."""
        column = rng.integers(0, self.n, size, dtype=np.int32)
        if self.prob is None:
            return column
        stay = rng.random(size, dtype=np.float32) < np.take(self.prob, column)
        return np.where(stay, column, np.take(self.alias, column))


def _sample_rejection(
    rng: np.random.Generator,
    n_users: int,
    n_items: int,
    n_take: int,
    user_weight: np.ndarray | None,
    item_weight: np.ndarray | None,
    exclude: np.ndarray,
) -> np.ndarray:
    """Successive weighted sampling for large sparse matrices: draw pairs independently
    in rounds, keep each pair's first occurrence not already taken, in draw order, and
    top up until ``n_take`` are kept. Keeping first occurrences of independent draws is
    exactly sampling without replacement.

    Elementwise work runs in cache-sized blocks: at tens of millions of pairs, fresh
    full-size temporaries cost more than the arithmetic.
    """
    # Each pair is packed as (cell << pos_bits) | position in one int64, so that a plain
    # sort (much faster than argsort) groups equal cells with the earliest first. Cells
    # taken before get position 0 and so precede any new draw (positions 1, 2, ...).
    cell_bits = max(1, (n_users * n_items - 1).bit_length())
    pos_bits = 63 - cell_bits
    if pos_bits < 20:
        raise ParameterError(
            f"make_ratings: {n_users:,} x {n_items:,} cells are too many to sample from"
        )
    max_draw = min(1 << 26, (1 << pos_bits) - 1)
    pos_mask = (1 << pos_bits) - 1
    cell_mask = (1 << cell_bits) - 1
    users = _AliasSampler(n_users, user_weight)
    items = _AliasSampler(n_items, item_weight)
    ones_up = np.arange(1, _BLOCK + 1, dtype=np.int64)  # draw positions within a block
    taken = np.sort(exclude) << pos_bits
    kept: list[np.ndarray] = []
    need = n_take
    n_draw = min(int(need * 1.1) + 1024, max_draw)
    for round_ in range(1, _MAX_ROUNDS + 1):
        if need == 0:
            break
        n_taken = len(taken)
        packed = np.empty(n_taken + n_draw, dtype=np.int64)
        packed[:n_taken] = taken
        taken = np.zeros(0, dtype=np.int64)  # free it during the round
        for start, stop in _blocks(n_draw):
            block = packed[n_taken + start : n_taken + stop]
            block[:] = users.draw(rng, stop - start)
            block *= n_items
            block += items.draw(rng, stop - start)
            block <<= pos_bits
            block += ones_up[: stop - start]
            block += start
        packed.sort()
        first = np.empty(len(packed), dtype=bool)
        first[0] = True
        for start, stop in _blocks(len(packed) - 1):
            changed = packed[start + 1 : stop + 1] ^ packed[start:stop]
            np.greater(changed, pos_mask, out=first[start + 1 : stop + 1])
        packed = packed[first]
        del first
        new = packed[(packed & pos_mask) != 0]
        acceptance = len(new) / n_draw
        if len(new) < need:
            packed &= ~pos_mask
            taken = packed
        else:
            position = new & pos_mask
            cutoff = np.partition(position, need - 1)[need - 1]
            new = new[position <= cutoff]
            del position
        del packed
        need -= len(new)
        # Back to draw order, by the same packing trick with the roles swapped.
        for start, stop in _blocks(len(new)):
            block = new[start:stop]
            cells = block >> pos_bits
            block &= pos_mask
            block <<= cell_bits
            block |= cells
        new.sort()
        new &= cell_mask
        kept.append(new)
        logger.debug(
            "round %d: %d draws, %.1f%% new pairs, %d still needed",
            round_,
            n_draw,
            100 * acceptance,
            need,
        )
        n_draw = int(min(need / max(acceptance, 1e-3) * 1.2 + 1024, 4 * need + (1 << 22)))
        n_draw = min(n_draw, max_draw)
    if need:
        raise ParameterError(
            f"make_ratings: could not place {n_take:,} distinct pairs in {_MAX_ROUNDS} rounds: "
            "the observed pairs crowd the most popular cells; lower n_ratings or the "
            "popularity/activity exponents, or use missing='uniform'"
        )
    return np.concatenate(kept) if kept else np.zeros(0, dtype=np.int64)


def _blocks(n: int, size: int = _BLOCK):
    """(start, stop) of consecutive blocks covering range(n)."""
    for start in range(0, n, size):
        yield start, min(start + size, n)


def _observe(
    rng: np.random.Generator,
    truth: SyntheticTruth,
    user_index: np.ndarray,
    item_index: np.ndarray,
) -> np.ndarray:
    """Noisy, rounded, clipped ratings of the given pairs (float32), computed in blocks.

    The arithmetic is in float32, the precision ratings are stored in.
    """
    user_factors = truth.user_factors.astype(np.float32)
    item_factors = truth.item_factors.astype(np.float32)
    user_bias = truth.user_bias.astype(np.float32)
    item_bias = truth.item_bias.astype(np.float32)
    out = np.empty(len(user_index), dtype=np.float32)
    for start, stop in _blocks(len(user_index), _CHUNK):
        users = user_index[start:stop]
        items = item_index[start:stop]
        value = rng.standard_normal(stop - start, dtype=np.float32)
        value *= truth.noise_std
        value += np.float32(truth.global_mean)
        value += np.take(user_bias, users)
        value += np.take(item_bias, items)
        value += np.einsum(
            "ij,ij->i", np.take(user_factors, users, axis=0), np.take(item_factors, items, axis=0)
        )
        if truth.round_to is not None:
            value /= truth.round_to
            np.round(value, out=value)
            value *= truth.round_to
        if truth.scale is not None:
            np.clip(value, truth.scale[0], truth.scale[1], out=value)
        out[start:stop] = value
    return out


def _timestamps(rng: np.random.Generator, n: int) -> np.ndarray:
    """Strictly increasing int64 seconds from 2000-01-01, about three years in all."""
    mean_gap = max(1, _TIME_SPAN // max(n, 1))
    if mean_gap == 1:
        return np.arange(_T0 + 1, _T0 + n + 1, dtype=np.int64)
    times = rng.integers(1, 2 * mean_gap, n, dtype=np.int64)  # gaps, of mean mean_gap
    np.cumsum(times, out=times)
    times += _T0
    return times
