"""Implicit-feedback ALS: Hu, Koren & Volinsky (2008), with conjugate-gradient solves."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from mfrec._params import Constraint, Integer, RandomStateConstraint, Real
from mfrec._random import check_random_state
from mfrec.data.ratings import Ratings
from mfrec.exceptions import DataError
from mfrec.models.base import FactorModel, ValidationData


class ImplicitALS(FactorModel):
    """Implicit-feedback ALS with confidence weights and conjugate gradient (Hu et al. 2008).

    Confidence-weighted alternating least squares (Hu, Koren & Volinsky 2008), each
    least-squares step solved by conjugate gradient (Takacs et al. 2011, implicit's
    ``use_cg``).

    Every stored rating ``r_ui >= 0`` is an interaction strength; the model fits
    preferences ``p_ui = [r_ui > 0]`` over *all* user-item pairs with confidences
    ``c_ui = 1 + alpha r_ui`` (1 for the pairs without interaction), minimising

        sum_{u,i} c_ui (p_ui - x_u . y_i)^2 + reg (sum_u |x_u|^2 + sum_i |y_i|^2).

    Each epoch re-solves all user vectors with the items fixed, then all item vectors,
    each by ``cg_steps`` CG iterations warm-started from the previous solution (see
    :mod:`mfrec.kernels.implicit_als`). Rows are solved in parallel; the result depends
    on the seed only, never on the thread count.

    Turn explicit ratings into interactions with :func:`mfrec.data.implicit.to_implicit`
    (e.g. ratings >= 4), or pass raw counts (:func:`mfrec.data.implicit.from_events`);
    raw explicit ratings also work (every rating is then an interaction whose confidence
    grows with the rating).

    ``predict`` returns the preference score ``x_u . y_i`` (about 0 to 1), not a rating:
    RMSE and MAE against ratings are not meaningful for this model -- evaluate it with
    ranking metrics (``mfrec evaluate --metrics ndcg@10,recall@10``). ``recommend``,
    ``similar_items``, ``fold_in`` and ``partial_fit`` work as for every factor model;
    fold-in solves HKV's user equation exactly (a dense solve, no CG). Unknown ids: a
    user unseen in training is scored by item popularity (the share of known users who
    interacted with each item) and an unseen item gets preference 0 -- the
    implicit-feedback form of mfrec's fallback policy.

    Parameters
    ----------
    n_factors : int, default 100
    n_epochs : int, default 15
        ALS sweeps (each: all users, then all items).
    reg : float, default 1.0
        L2 regularisation ``reg`` of the objective above (not scaled by counts).
    alpha : float, default 10.0
        Confidence slope: ``c = 1 + alpha r``.
    cg_steps : int, default 3
        Conjugate-gradient iterations per row and half-step (implicit's default).
    init_std : float, default 0.01
        Factors start as N(0, init_std^2).
    random_state : None, int or numpy Generator
        Seeds the initial factors: same seed, same model, bit for bit.
    n_threads : int or None, default None
        Threads (None: all cores). Does not change the result.

    Attributes
    ----------
    user_factors_, item_factors_ : ndarray of float32
    history_ : list of dict
        Per epoch: ``train_loss`` (the objective above divided by the total confidence
        ``sum_ui c_ui``, as implicit reports it) and ``seconds``.

    Notes
    -----
    implicit's ``AlternatingLeastSquares`` uses the confidence ``alpha r`` instead of
    ``1 + alpha r``; for binary interactions, implicit with ``alpha = 1 + a`` solves
    exactly the problem this model solves with ``alpha = a``.
    """

    name = "implicit-als"
    _biases = (False, False)
    predicts_ratings = False
    _uses_global_mean = False
    _constraints: ClassVar[dict[str, Constraint]] = {
        "n_factors": Integer(1, 10_000),
        "n_epochs": Integer(1, 100_000),
        "reg": Real(0, None),
        "alpha": Real(0, None),
        "cg_steps": Integer(1, 1_000),
        "init_std": Real(0, None, open_low=True),
        "random_state": RandomStateConstraint(),
        "n_threads": Integer(1, None, none_ok=True),
    }

    def __init__(
        self,
        n_factors: int = 100,
        n_epochs: int = 15,
        reg: float = 1.0,
        alpha: float = 10.0,
        cg_steps: int = 3,
        init_std: float = 0.01,
        random_state: Any = None,
        n_threads: int | None = None,
    ) -> None:
        self.n_factors = n_factors
        self.n_epochs = n_epochs
        self.reg = reg
        self.alpha = alpha
        self.cg_steps = cg_steps
        self.init_std = init_std
        self.random_state = random_state
        self.n_threads = n_threads

    def _fit(self, train: Ratings, validation: ValidationData | None, callback: Any) -> None:
        from mfrec._threads import numba_threads
        from mfrec.kernels.implicit_als import cg_half_step, confidence_terms, gram, loss

        _check_strengths(train.rating)
        rng = check_random_state(self.random_state)
        k = self.n_factors
        self.user_factors_ = _init(rng, (train.n_users, k), self.init_std)
        self.item_factors_ = _init(rng, (train.n_items, k), self.init_std)
        self.user_bias_ = None
        self.item_bias_ = None
        by_user, by_item = train.to_csr(), train.to_csc()
        user_terms = confidence_terms(by_user.data, self.alpha)
        item_terms = confidence_terms(by_item.data, self.alpha)
        ridge = self.reg * np.eye(k)
        total_confidence = train.n_users * train.n_items + float(
            np.sum(user_terms[0], dtype=np.float64)
        )

        gram_y = [None]  # Y^T Y of the current item factors, carried between epochs

        def epoch(_: int) -> dict[str, float]:
            X, Y = self.user_factors_, self.item_factors_
            if gram_y[0] is None:
                gram_y[0] = gram(Y)
            G = (gram_y[0] + ridge).astype(np.float32)
            cg_half_step(by_user.indptr, by_user.indices, *user_terms, X, Y, G, self.cg_steps)
            gram_x = gram(X)
            G = (gram_x + ridge).astype(np.float32)
            cg_half_step(by_item.indptr, by_item.indices, *item_terms, Y, X, G, self.cg_steps)
            gram_y[0] = gram(Y)
            objective = loss(
                by_user.indptr, by_user.indices, *user_terms, X, Y, self.reg, gram_x, gram_y[0]
            )
            return {"train_loss": objective / total_confidence}

        work = (len(train) + train.n_users + train.n_items) * k * self.cg_steps
        with numba_threads(self.n_threads, work=work):
            self._run_epochs(self.n_epochs, epoch, validation, callback)

    # -- fold-in: HKV's user equation, solved exactly --------------------------------
    def _fold_in_design(self) -> tuple[np.ndarray, np.ndarray]:
        """Features y_i and Gram term Y^T Y (every item counts, with confidence 1)."""
        from mfrec.kernels.implicit_als import gram

        cached = getattr(self, "_fold_in_cache", None)
        if cached is not None and cached[0] is self.item_factors_:
            return cached[1]
        design = (np.ascontiguousarray(self.item_factors_), gram(self.item_factors_))
        self._fold_in_cache = (self.item_factors_, design)
        return design

    def _fold_in_terms(
        self, item_index: np.ndarray, rating: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Weights c - 1 = alpha r and weighted targets c p."""
        from mfrec.kernels.implicit_als import confidence_terms

        _check_strengths(rating)
        return confidence_terms(rating, self.alpha, np.float64)

    def _fold_in_penalty(self) -> tuple[np.ndarray, np.ndarray]:
        """``reg |x|^2``, not scaled by the number of interactions."""
        return np.full(self.n_factors_, float(self.reg)), np.zeros(self.n_factors_)

    # -- unknown ids: the implicit-feedback form of the house policy ------------------
    # There are no biases to fall back on, and a rating mean means nothing here: a user
    # with no data gets each item's popularity (the share of known users who interacted
    # with it), and an item with no data gets preference 0 (nobody interacted with it).
    def _fallback_item_scores(self) -> np.ndarray:
        counts = np.bincount(self._seen.indices, minlength=len(self.items_))
        return counts / max(1, len(self.users_))

    def _fallback(self, user_index: np.ndarray, item_index: np.ndarray) -> np.ndarray:
        out = np.zeros(len(user_index), dtype=np.float64)
        popular = (user_index < 0) & (item_index >= 0)
        out[popular] = self._fallback_item_scores()[item_index[popular]]
        return out

    def _divergence_hint(self) -> str:
        return "Try a larger reg or a smaller alpha."


def _init(rng: np.random.Generator, shape: tuple[int, int], std: float) -> np.ndarray:
    factors = rng.standard_normal(shape, dtype=np.float32)
    factors *= np.float32(std)
    return factors


def _check_strengths(values: np.ndarray) -> None:
    values = np.asarray(values)
    if values.size and values.min() < 0:
        raise DataError(
            f"ImplicitALS reads interaction strengths, which must be >= 0 (got "
            f"{float(values.min()):g}); convert explicit ratings with "
            "mfrec.data.implicit.to_implicit(ratings, threshold)"
        )
