"""Train/test splits of :class:`~mfrec.data.Ratings`.

Every split is an exact partition of the rows: train and test are disjoint and together
hold every rating once. Both parts keep the rows in their original order and share the
input's vocabularies (:meth:`Ratings.subset`), so an id means the same index in both.
Random splits are deterministic given ``random_state``. All work is vectorised (one sort
at most), so that ML-25M's 160,000 users cost no Python loop.

Counts derived from a fraction are rounded half up: ``round(0.2 x 7) = 1``,
``round(0.5 x 5) = 3``.

On the command line a split is named by a string; see :func:`parse_split`.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import numpy as np

from mfrec._params import Integer, Real
from mfrec._random import RandomState, check_random_state
from mfrec.data.ratings import Ratings
from mfrec.exceptions import DataError, ParameterError

logger = logging.getLogger(__name__)

#: Names accepted by :func:`ml100k_official`.
ML100K_SPLITS = ("u1", "u2", "u3", "u4", "u5", "ua", "ub")

#: The split strings :func:`parse_split` accepts, with what each means.
SPLIT_FORMS = (
    ("u1..u5", "the five official ML-100K 80/20 folds"),
    ("u1, ..., u5", "one official ML-100K 80/20 fold"),
    ("ua, ub", "an official ML-100K split with 10 ratings per user in test"),
    ("kfold:K", "K-fold cross-validation, K >= 2"),
    ("holdout:F", "a uniformly random fraction F of the ratings in test, 0 < F < 1"),
    ("user-holdout:F", "a fraction F of each user's ratings in test"),
    ("temporal:F", "the latest fraction F of the ratings (by timestamp) in test"),
    ("last:K", "each user's K most recent ratings in test, K >= 1"),
)

_FRACTION = Real(0, 1, open_low=True, open_high=True)
_ML100K_SHAPE = (100_000, 943, 1682)
# First and last lines of u.data (user, item): the fingerprint of its line order.
_ML100K_FIRST = ("196", "242")
_ML100K_LAST = ("12", "203")
_ML100K_FOLD_SIZE = 20_000


@dataclass(frozen=True)
class Fold:
    """One train/test split.

    Attributes
    ----------
    name : str
        ``"u1"``, ``"fold3"``, ``"holdout"``, ... (used in reports).
    train, test : Ratings
        Disjoint parts of the input, sharing its vocabularies.
    """

    name: str
    train: Ratings
    test: Ratings

    def __repr__(self) -> str:
        return f"Fold({self.name!r}: {len(self.train):,} train, {len(self.test):,} test)"


def holdout(ratings: Ratings, test_fraction: float = 0.2, random_state: RandomState = None) -> Fold:
    """Hold out a uniformly random ``test_fraction`` of the ratings.

    Parameters
    ----------
    ratings : Ratings
    test_fraction : float in (0, 1)
        The test set has ``round(test_fraction x n)`` ratings, at least one and at most
        ``n - 1``.
    random_state : None, int or numpy Generator

    Returns
    -------
    Fold
        Named ``"holdout"``.
    """
    _FRACTION.check("test_fraction", test_fraction)
    n = _need_rows(ratings, 2, "holdout")
    n_test = int(np.clip(_round_half_up(test_fraction * n), 1, n - 1))
    rng = check_random_state(random_state)
    is_test = np.zeros(n, dtype=bool)
    is_test[rng.choice(n, n_test, replace=False)] = True
    return _fold("holdout", ratings, is_test)


def user_holdout(
    ratings: Ratings, test_fraction: float = 0.2, random_state: RandomState = None
) -> Fold:
    """Hold out a random ``test_fraction`` of each user's ratings.

    A user with ``n_u >= 2`` ratings puts ``round(test_fraction x n_u)`` of them, clipped
    to ``[1, n_u - 1]``, in test, so that every such user is in both parts. A user with a
    single rating keeps it in train (a test rating of an unseen user measures only the
    fallback).

    Parameters
    ----------
    ratings : Ratings
    test_fraction : float in (0, 1)
    random_state : None, int or numpy Generator

    Returns
    -------
    Fold
        Named ``"user-holdout"``.
    """
    _FRACTION.check("test_fraction", test_fraction)
    n = _need_rows(ratings, 2, "user_holdout")
    counts = ratings.user_counts()
    n_test = np.where(
        counts >= 2, np.clip(_round_half_up(test_fraction * counts), 1, counts - 1), 0
    )
    if not n_test.any():
        raise DataError("user_holdout: no user has two or more ratings, so there is no test set")
    rng = check_random_state(random_state)
    # Each row gets the key (user, random); a user's test rows are those with the
    # n_test[u] smallest keys. A plain sort of the keys finds each user's cutoff (much
    # faster than argsort), then one comparison per row selects.
    users = ratings.user_index
    random_bits = 63 - max(1, int(ratings.n_users - 1).bit_length())
    key = (users.astype(np.int64) << random_bits) | rng.integers(
        0, 1 << random_bits, n, dtype=np.int64
    )
    ordered = np.sort(key)
    start = np.zeros(len(counts), dtype=np.int64)
    np.cumsum(counts[:-1], out=start[1:])
    tested = np.flatnonzero(n_test)
    last = start[tested] + n_test[tested] - 1  # position of each user's largest test key
    cutoff = np.full(len(counts), -1, dtype=np.int64)
    cutoff[tested] = ordered[last]
    # n_test[u] < n_u, so last + 1 is the same user's next key
    if (ordered[last + 1] == cutoff[tested]).any():
        # A tie at a cutoff (with >= 32 random bits, about never): rank rows exactly.
        rank = _rank_in_group(users, np.argsort(key, kind="stable"), counts)
        return _fold("user-holdout", ratings, rank < n_test[users])
    return _fold("user-holdout", ratings, key <= cutoff[users])


def kfold(ratings: Ratings, k: int = 5, random_state: RandomState = None) -> list[Fold]:
    """Split into ``k`` folds: each rating is in exactly one test set.

    The rows are shuffled and dealt round-robin, so test sizes differ by at most one.

    Parameters
    ----------
    ratings : Ratings
    k : int >= 2
    random_state : None, int or numpy Generator

    Returns
    -------
    list of Fold
        ``k`` folds named ``"fold1"`` ... ``"foldk"``; fold ``j`` trains on the others.
    """
    Integer(2).check("k", k)
    n = _need_rows(ratings, k, f"kfold with k={k}")
    rng = check_random_state(random_state)
    fold_of = np.empty(n, dtype=np.int64)
    fold_of[rng.permutation(n)] = np.arange(n) % k
    return [_fold(f"fold{j + 1}", ratings, fold_of == j) for j in range(k)]


def temporal(ratings: Ratings, test_fraction: float = 0.2) -> Fold:
    """Cut at one moment: the latest ``test_fraction`` of the ratings go to test.

    Ratings are ordered by timestamp; equal timestamps are ordered by row, a later row
    counting as later. The test set has ``round(test_fraction x n)`` ratings (at least
    one, at most ``n - 1``), so every train timestamp is <= every test timestamp.

    Parameters
    ----------
    ratings : Ratings
        Must have timestamps.
    test_fraction : float in (0, 1)

    Returns
    -------
    Fold
        Named ``"temporal"``.
    """
    _FRACTION.check("test_fraction", test_fraction)
    times = _need_timestamps(ratings, "temporal")
    n = _need_rows(ratings, 2, "temporal")
    n_test = int(np.clip(_round_half_up(test_fraction * n), 1, n - 1))
    order = np.argsort(times, kind="stable")
    is_test = np.zeros(n, dtype=bool)
    is_test[order[n - n_test :]] = True
    return _fold("temporal", ratings, is_test)


def last_k(ratings: Ratings, k: int = 1) -> Fold:
    """Leave-last-k-out: each user's ``k`` most recent ratings go to test.

    Recency is by timestamp, equal timestamps ordered by row (a later row is more
    recent). A user with ``k`` ratings or fewer keeps them all in train, so that every
    user in test is also in train.

    Parameters
    ----------
    ratings : Ratings
        Must have timestamps.
    k : int >= 1

    Returns
    -------
    Fold
        Named ``"last"``.
    """
    Integer(1).check("k", k)
    times = _need_timestamps(ratings, "last_k")
    counts = ratings.user_counts()
    if not (counts > k).any():
        raise DataError(f"last_k: no user has more than k={k} ratings, so there is no test set")
    order = np.lexsort((times, ratings.user_index))  # stable: ties keep row order
    rank = _rank_in_group(ratings.user_index, order, counts)
    user_count = counts[ratings.user_index]
    from_end = user_count - 1 - rank
    return _fold("last", ratings, (user_count > k) & (from_end < k))


def ml100k_official(ratings: Ratings, name: str) -> Fold:
    """One of the official MovieLens-100K splits, rebuilt from ``u.data``.

    Built as the dataset's ``mku.sh`` and ``allbut.pl`` build them, from ``u.data`` in
    its line order: ``u1`` ... ``u5`` test on lines ``20000·(k-1)`` to ``20000·k - 1``
    (0-based) and train on the rest; ``ua`` tests on each user's first 10 ratings in
    file order, ``ub`` on each user's 11th to 20th, and both train on the rest. The
    rows are the official files' rows; only their order differs (the official files
    are sorted by user and item, a Fold keeps ``u.data`` order).

    Parameters
    ----------
    ratings : Ratings
        ML-100K's ``u.data`` with rows in file order, as :func:`mfrec.load_dataset`
        returns it.
    name : {"u1", "u2", "u3", "u4", "u5", "ua", "ub"}

    Returns
    -------
    Fold
        Named ``name``.

    Raises
    ------
    DataError
        When ``ratings`` is not ML-100K in ``u.data`` line order.
    """
    if name not in ML100K_SPLITS:
        raise ValueError(
            f"unknown ML-100K split {name!r}; the official ones are {', '.join(ML100K_SPLITS)}"
        )
    _check_ml100k(ratings, name)
    n = len(ratings)
    if name in ("ua", "ub"):
        counts = ratings.user_counts()
        order = np.argsort(ratings.user_index, kind="stable")  # file order within user
        rank = _rank_in_group(ratings.user_index, order, counts)
        low = 0 if name == "ua" else 10
        is_test = (rank >= low) & (rank < low + 10)
    else:
        fold = int(name[1])
        is_test = np.zeros(n, dtype=bool)
        is_test[_ML100K_FOLD_SIZE * (fold - 1) : _ML100K_FOLD_SIZE * fold] = True
    return _fold(name, ratings, is_test)


def parse_split(spec: str, ratings: Ratings, random_state: RandomState = None) -> list[Fold]:
    """Build the folds a command-line split string names.

    Parameters
    ----------
    spec : str
        One of ``u1..u5`` (the five official ML-100K folds), ``u1`` ... ``u5``, ``ua``,
        ``ub``, ``kfold:K``, ``holdout:F``, ``user-holdout:F``, ``temporal:F`` or
        ``last:K`` (F a fraction in (0, 1), K an integer). Case and surrounding spaces
        are ignored.
    ratings : Ratings
    random_state : None, int or numpy Generator
        For the random splits.

    Returns
    -------
    list of Fold
        One fold, or several for ``u1..u5`` and ``kfold:K``.

    Raises
    ------
    ValueError
        For a string that is none of the forms above (the message lists them), or a
        number out of range.
    """
    if not isinstance(spec, str):
        raise ValueError(f"a split is named by a string, got {type(spec).__name__}")
    text = spec.strip().lower()
    if text == "u1..u5":
        return [ml100k_official(ratings, f"u{k}") for k in range(1, 6)]
    if text in ML100K_SPLITS:
        return [ml100k_official(ratings, text)]
    match = re.fullmatch(r"(kfold|holdout|user-holdout|temporal|last):\s*(\S+)", text)
    if match is None:
        raise ValueError(f"unknown split {spec!r}; {_accepted_forms()}")
    kind, arg = match.groups()
    try:
        if kind in ("kfold", "last"):
            number: float = _parse_int(arg)
        else:
            number = float(arg)
    except ValueError:
        wanted = "an integer" if kind in ("kfold", "last") else "a fraction between 0 and 1"
        raise ValueError(f"split {spec!r}: {arg!r} is not {wanted}; {_accepted_forms()}") from None
    try:
        if kind == "kfold":
            return kfold(ratings, int(number), random_state)
        if kind == "holdout":
            return [holdout(ratings, number, random_state)]
        if kind == "user-holdout":
            return [user_holdout(ratings, number, random_state)]
        if kind == "temporal":
            return [temporal(ratings, number)]
        return [last_k(ratings, int(number))]
    except ParameterError as exc:
        raise ParameterError(f"split {spec!r}: {exc}") from None


# -- helpers ---------------------------------------------------------------------------
def _accepted_forms() -> str:
    width = max(len(form) for form, _ in SPLIT_FORMS)
    lines = (f"  {form:<{width}}  {meaning}" for form, meaning in SPLIT_FORMS)
    return "accepted forms:\n" + "\n".join(lines)


def _parse_int(text: str) -> int:
    if not re.fullmatch(r"[+-]?\d+", text):
        raise ValueError(text)
    return int(text)


def _round_half_up(x: np.ndarray | float) -> np.ndarray:
    # The epsilon keeps products like 0.15 * 10 = 1.4999999999999998 at their intended .5.
    return np.floor(np.asarray(x, dtype=np.float64) + 0.5 + 1e-9).astype(np.int64)


def _need_rows(ratings: Ratings, minimum: int, what: str) -> int:
    n = len(ratings)
    if n < minimum:
        raise DataError(f"{what} needs at least {minimum} ratings, got {n}")
    return n


def _need_timestamps(ratings: Ratings, what: str) -> np.ndarray:
    if ratings.timestamp is None:
        raise DataError(
            f"{what} splits by time, but these ratings have no timestamps; load them with "
            "a timestamp column, or use a random split (holdout, user-holdout, kfold)"
        )
    return ratings.timestamp


def _rank_in_group(group: np.ndarray, order: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Position of each row within its group, given ``order``: the rows sorted by group
    (and, within a group, by whatever the caller ranks on)."""
    starts = np.zeros(len(counts), dtype=np.int64)
    np.cumsum(counts[:-1], out=starts[1:])
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order), dtype=np.int64) - starts[group[order]]
    return rank


def _fold(name: str, ratings: Ratings, is_test: np.ndarray) -> Fold:
    fold = Fold(name, ratings.subset(~is_test), ratings.subset(is_test))
    logger.debug("split %s", fold)
    return fold


def _check_ml100k(ratings: Ratings, name: str) -> None:
    shape = (
        len(ratings),
        int((ratings.user_counts() > 0).sum()),
        int((ratings.item_counts() > 0).sum()),
    )
    if shape != _ML100K_SHAPE:
        raise DataError(
            f"the official split {name!r} is defined on MovieLens 100K only (100,000 ratings, "
            f"943 users, 1,682 items), but got {shape[0]:,} ratings, {shape[1]:,} users and "
            f"{shape[2]:,} items; use a generic split (kfold:5, holdout:0.2, ...) for other data"
        )
    first = _raw_pair(ratings, 0)
    last = _raw_pair(ratings, len(ratings) - 1)
    if first != _ML100K_FIRST or last != _ML100K_LAST:
        raise DataError(
            f"the official split {name!r} needs ML-100K's u.data in its line order, but "
            f"these ratings are not (the first rating is user {first[0]}, item {first[1]} and "
            f"the last user {last[0]}, item {last[1]}; in u.data they are user "
            f"{_ML100K_FIRST[0]}, item {_ML100K_FIRST[1]} and user {_ML100K_LAST[0]}, item "
            f"{_ML100K_LAST[1]}). Load u.data without sorting, shuffling or filtering it, or "
            "use a generic split (kfold:5, holdout:0.2, ...)"
        )


def _raw_pair(ratings: Ratings, row: int) -> tuple[str, str]:
    user = ratings.users.ids[ratings.user_index[row]]
    item = ratings.items.ids[ratings.item_index[row]]
    return str(user), str(item)
