"""Fold-in and partial fit: a new or updated user solved with the item side fixed.

How a user unseen in training gets factors without retraining, in one place. A user's
vector ``z = [p_u, b_u]`` (``b_u`` only for models with user biases) solves a
regularised least-squares problem with every item-side parameter fixed
(:func:`mfrec.kernels.foldin.ridge_rows`); the three ``_fold_in_*`` hooks say which
problem, and a model with another objective (ALS's weighted lambda, implicit ALS's
confidence weights, the Adam model's penalty) overrides them.
:class:`~mfrec.models.base.FactorModel` mixes this in; ``mfrec serve`` calls the same
code for every visitor.
"""

from __future__ import annotations

import logging
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

from mfrec.data.ratings import Ratings
from mfrec.data.vocab import Vocabulary, normalize_ids
from mfrec.exceptions import DataError, UnknownIdWarning
from mfrec.models.topn import Recommendations, _check_n

if TYPE_CHECKING:
    from mfrec.models.base import FactorModel

logger = logging.getLogger(__name__)

#: The learned arrays of a plain factor model: what the generic fold-in can extend.
FACTOR_ARRAYS = ("user_factors_", "item_factors_", "user_bias_", "item_bias_")


class FoldIn:
    """Fold-in, recommendations for a rating profile, and partial fit, for
    :class:`~mfrec.models.base.FactorModel`."""

    # -- fold-in and partial fit ------------------------------------------------------
    # A user's vector z = [p_u, b_u] (b_u only for models with user biases) is the
    # solution of a regularised least-squares problem with the item side fixed:
    #   (G + sum_j w_j f_j f_j^T + diag(base + n_u per)) z = sum_j (w t)_j f_j
    # (mfrec.kernels.foldin). The defaults below are the explicit objective of the SGD
    # models; a model with another objective overrides the three _fold_in_* hooks.
    def _fold_in_design(self) -> tuple[np.ndarray, np.ndarray]:
        """(features F: n_items x d, Gram term G: d x d float64) of the fold-in solve.

        Default: ``f_i = [q_i, 1]`` (the 1 only for models with user biases) and
        ``G = 0``: least squares on the user's ratings alone.
        """
        cached = getattr(self, "_fold_in_cache", None)
        if cached is not None and cached[0] is self.item_factors_:
            return cached[1]
        q = self.item_factors_
        if self.user_bias_ is not None:
            q = np.hstack([q, np.ones((q.shape[0], 1), dtype=q.dtype)])
        design = (np.ascontiguousarray(q), np.zeros((q.shape[1], q.shape[1])))
        self._fold_in_cache = (self.item_factors_, design)
        return design

    def _fold_in_terms(
        self, item_index: np.ndarray, rating: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """(weights w, weighted targets w t) of each given rating, float64.

        Default: ``w = 1``, ``t = r - mu - b_i`` (no mu for models without a global mean,
        no b_i without item biases).
        """
        target = np.asarray(rating, dtype=np.float64) - self._intercept()
        if self.item_bias_ is not None:
            target = target - self.item_bias_[item_index]
        return np.ones(len(target)), target

    def _fold_in_penalty(self) -> tuple[np.ndarray, np.ndarray]:
        """(base, per_rating): the diagonal ridge ``base + n_u per_rating`` on z.

        Default: the per-rating L2 of the SGD objective
        ``sum_(u,i) [e^2 + reg |p_u|^2 + reg_bias b_u^2 + ...]``: with the items fixed
        its user part is ``sum_i e_ui^2 + n_u (reg |p_u|^2 + reg_bias b_u^2)``, so
        ``per_rating = [reg, ..., reg, reg_bias]`` (``reg_bias`` defaults to ``reg``),
        plus the fixed per-row part of models with count-aware regularisation
        (``base = [reg_row, ..., reg_row, reg_bias_row]``; 0 without).
        """
        reg = getattr(self, "reg", None)
        if reg is None:
            raise NotImplementedError(
                f"{type(self).__name__} does not define the regularisation of its fold-in "
                "solve (the default reads a `reg` hyperparameter, which it does not have; "
                "the model must override _fold_in_penalty)"
            )
        reg_bias = getattr(self, "reg_bias", None)
        per = np.full(self.n_factors_ + (self.user_bias_ is not None), float(reg))
        reg_row, reg_bias_row = self._fixed_row_penalty()
        base = np.full_like(per, reg_row)
        # The factor penalties in the ratings' units (the SGD models' rating_unit).
        unit = self._factor_reg_unit()
        per *= unit
        base *= unit
        if self.user_bias_ is not None:
            per[-1] = float(reg if reg_bias is None else reg_bias)
            base[-1] = reg_bias_row
        return base, per

    def _check_fold_in(self) -> None:
        extra = sorted(set(self._fitted_arrays) - set(FACTOR_ARRAYS))
        if extra:
            raise NotImplementedError(
                f"{type(self).__name__} does not support fold-in: its learned state "
                f"includes {extra} besides the factors and biases, which the generic "
                "solve cannot extend (the model must override fold_in, "
                "recommend_for_ratings and partial_fit)"
            )

    def _solve_users(
        self, indptr: np.ndarray, item_index: np.ndarray, rating: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Factors (and biases) of users given as CSR rows of ratings over item indices,
        with everything on the item side fixed."""
        n_rows = len(indptr) - 1
        k = self.n_factors_
        has_bias = self.user_bias_ is not None
        if k + has_bias == 0:  # nothing to learn (GlobalMean)
            return np.zeros((n_rows, 0), dtype=self.user_factors_.dtype), None
        from mfrec.kernels.foldin import ridge_rows

        features, gram = self._fold_in_design()
        base, per = self._fold_in_penalty()
        item_index = np.ascontiguousarray(item_index, dtype=np.int32)
        weights, targets = self._fold_in_terms(item_index, rating)
        out = np.empty((n_rows, features.shape[1]), dtype=np.float64)
        ridge_rows(
            np.ascontiguousarray(indptr, dtype=np.int64),
            item_index,
            np.ascontiguousarray(weights, dtype=np.float64),
            np.ascontiguousarray(targets, dtype=np.float64),
            features,
            np.ascontiguousarray(gram, dtype=np.float64),
            np.ascontiguousarray(base, dtype=np.float64),
            np.ascontiguousarray(per, dtype=np.float64),
            out,
        )
        factors = out[:, :k].astype(self.user_factors_.dtype)
        bias = out[:, k].astype(self.user_bias_.dtype) if has_bias else None
        return factors, bias

    def _user_ratings(self, ratings: Any) -> tuple[np.ndarray, np.ndarray]:
        """Item indices (sorted) and values of one user's ratings given as a dict
        ``{item: rating}``, a pandas Series indexed by item, or a pair
        ``(items, ratings)``; unknown items are dropped with a warning."""
        import pandas as pd

        if isinstance(ratings, dict):
            items, values = list(ratings.keys()), list(ratings.values())
        elif isinstance(ratings, pd.Series):
            items, values = ratings.index.to_numpy(), ratings.to_numpy()
        elif isinstance(ratings, (tuple, list)) and len(ratings) == 2:
            items, values = ratings
        else:
            raise DataError(
                "ratings must be a dict {item: rating}, a pandas Series indexed by item, or "
                f"a pair (items, ratings); got {type(ratings).__name__}"
            )
        try:
            values = np.asarray(values, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            raise DataError("ratings must be numbers") from None
        item_index = self.items_.lookup(items) if len(values) else np.zeros(0, np.int32)
        if len(item_index) != len(values):
            raise DataError(f"{len(item_index)} items but {len(values)} ratings")
        if not np.all(np.isfinite(values)):
            raise DataError("ratings must be finite numbers (got NaN or infinity)")
        if pd.Index(np.asarray(items, dtype=object)).has_duplicates:
            raise DataError("an item is rated more than once; give each item one rating")
        unknown = item_index < 0
        if unknown.any():
            warnings.warn(
                f"{int(unknown.sum())} of {len(item_index)} rated items are unknown to the "
                "model (not in its training data) and were ignored",
                UnknownIdWarning,
                stacklevel=3,
            )
        order = np.argsort(item_index[~unknown], kind="stable")
        return item_index[~unknown][order], values[~unknown][order]

    def _append_users(
        self,
        ids: np.ndarray,
        factors: np.ndarray,
        bias: np.ndarray | None,
        seen_rows: sp.csr_matrix,
    ) -> None:
        """Extend the vocabulary, factors, biases and seen items by new users."""
        seen = self._seen
        self.users_ = _grow_vocabulary(self.users_, ids)
        self.user_factors_ = np.concatenate([self.user_factors_, factors])
        if self.user_bias_ is not None:
            self.user_bias_ = np.concatenate([self.user_bias_, bias])
        merged = sp.vstack([seen, seen_rows], format="csr")
        merged.sort_indices()
        self._seen = merged

    def fold_in(self, user_id: Any, ratings: Any) -> FactorModel:
        """Add a user unseen in training, from their ratings, without retraining.

        The user's factors (and bias) solve the model's own regularised least-squares
        problem with every item-side parameter fixed (for the SGD models: ridge
        regression of ``r - mu - b_i`` on ``q_i`` with penalty ``n_u reg``, the user
        part of their objective) -- O(n_u k^2 + k^3), milliseconds. The user then is
        known: ``predict`` and ``recommend`` treat them like a training user, the rated
        items are excluded from their recommendations, and ``save`` keeps them.

        Parameters
        ----------
        user_id : raw id
            A new id (of the kind of the training user ids).
        ratings : dict, pandas Series or (items, ratings) pair
            The user's ratings by raw item id. Items unknown to the model are ignored
            with an :class:`~mfrec.exceptions.UnknownIdWarning` (they have no factors).

        Returns
        -------
        self

        Raises
        ------
        DataError
            When ``user_id`` is already known (use :meth:`partial_fit` to update a known
            user) or the ratings are malformed.
        """
        self._check_fitted()
        self._check_fold_in()
        if np.ndim(user_id) != 0:
            raise DataError("fold_in adds one user; use partial_fit(ratings) to add many")
        if self.users_.lookup([user_id])[0] >= 0:
            raise DataError(
                f"user {user_id!r} is already known to the model; partial_fit(ratings) "
                "updates a known user from new ratings"
            )
        from mfrec._threads import numba_threads

        items, values = self._user_ratings(ratings)
        indptr = np.array([0, len(items)], dtype=np.int64)
        with numba_threads(1):  # one small solve: no thread pool to wake
            factors, bias = self._solve_users(indptr, items, values)
        row = sp.csr_matrix((values.astype(np.float32), items, indptr), shape=(1, len(self.items_)))
        self._append_users(np.array([user_id], dtype=object), factors, bias, row)
        logger.debug("folded in user %r from %d ratings", user_id, len(items))
        return self

    def recommend_for_ratings(
        self, ratings: Any, n: int = 10, *, exclude_rated: bool = True
    ) -> Recommendations:
        """Top-``n`` items for a user described only by ``ratings`` (not stored).

        The user's vector is solved as in :meth:`fold_in` and ranked by the very code
        that ranks stored users, so ``fold_in(u, r)`` followed by ``recommend(u)`` gives
        the same list and scores; nothing about the model changes.

        Parameters
        ----------
        ratings : dict, pandas Series or (items, ratings) pair
            Raw item ids and ratings; unknown items are ignored with a warning.
        n : int, default 10
        exclude_rated : bool, default True
            Leave out the rated items.

        Returns
        -------
        Recommendations
            1-D ``(item_ids, scores)``, best first, ties broken by lower item index.
        """
        import copy

        self._check_fitted()
        self._check_fold_in()
        _check_n(n)
        from mfrec._threads import numba_threads

        items, values = self._user_ratings(ratings)
        indptr = np.array([0, len(items)], dtype=np.int32)
        # One user is less work than waking a thread pool: run on the calling thread.
        with numba_threads(1):
            factors, bias = self._solve_users(indptr, items, values)
            # A shallow copy holding just this user: same item side, same ranking code.
            single = copy.copy(self)
            single.user_factors_ = factors
            if bias is not None:
                single.user_bias_ = bias
            single._seen = sp.csr_matrix(
                (values.astype(np.float32), items, indptr), shape=(1, len(self.items_))
            )
            idx, scores = single._recommend_indices(np.zeros(1, dtype=np.int32), n, exclude_rated)
        valid = np.isfinite(scores[0])
        return Recommendations(self.items_.take(idx[0][valid]), scores[0][valid])

    def partial_fit(self, ratings: Ratings) -> FactorModel:
        """Update users from fresh ratings without a full refit.

        Each user in ``ratings`` -- known or new -- gets their factors (and bias)
        re-solved exactly as :meth:`fold_in` solves them, from *all* their ratings: the
        ones the model already holds merged with the new ones (a new rating of an item
        the user had rated replaces the old one). Item factors, item biases and the
        global mean stay as they are, so the update costs O(n_u k^2 + k^3) per affected
        user and nothing for the others; refit from scratch from time to time to let
        the items move. New users are appended to the vocabulary, in order of first
        appearance. Ratings of items unknown to the model are ignored with a warning (a
        new user with no other rating is not added). Vocabularies, seen items and
        ``save``/``load`` stay consistent.

        Parameters
        ----------
        ratings : Ratings or pandas.DataFrame
            New (user, item, rating) rows (a DataFrame needs columns user, item,
            rating).

        Returns
        -------
        self
        """
        import pandas as pd

        self._check_fitted()
        self._check_fold_in()
        if isinstance(ratings, pd.DataFrame):
            ratings = Ratings.from_frame(ratings)
        if not isinstance(ratings, Ratings):
            raise DataError(
                f"partial_fit expects mfrec Ratings or a DataFrame, got {type(ratings).__name__}"
            )
        v = self._translate(ratings)
        known = v.item_index >= 0
        if not known.all():
            warnings.warn(
                f"{int((~known).sum())} of {len(known)} new ratings are of items unknown to "
                "the model and were ignored (new items need a refit)",
                UnknownIdWarning,
                stacklevel=2,
            )
        if not known.any():
            return self
        source_user = ratings.user_index[known]
        users = v.user_index[known].copy()
        items = v.item_index[known]
        values = ratings.rating[known]
        n_old = len(self.users_)
        new = users < 0
        new_source = pd.unique(source_user[new])  # in order of first appearance
        if len(new_source):
            position = np.full(ratings.n_users, -1, dtype=np.int64)
            position[new_source] = np.arange(len(new_source))
            users[new] = n_old + position[source_user[new]]
        n_users = n_old + len(new_source)
        seen = self._seen.tocoo()
        rows = np.concatenate([seen.row.astype(np.int64), users])
        cols = np.concatenate([seen.col.astype(np.int64), items])
        data = np.concatenate([seen.data.astype(np.float32), values])
        # One rating per (user, item): the last occurrence -- the new one -- wins.
        key = rows * len(self.items_) + cols
        order = np.argsort(key, kind="stable")
        sorted_key = key[order]
        last = order[np.append(sorted_key[1:] != sorted_key[:-1], True)]
        merged = sp.csr_matrix(
            (data[last], (rows[last], cols[last])), shape=(n_users, len(self.items_))
        )
        merged.sort_indices()
        affected = np.unique(users)
        sub = merged[affected]
        factors, bias = self._solve_users(sub.indptr, sub.indices, sub.data)
        if len(new_source):
            k = self.n_factors_
            self.users_ = _grow_vocabulary(self.users_, ratings.users.take(new_source))
            self.user_factors_ = np.concatenate(
                [self.user_factors_, np.zeros((len(new_source), k), self.user_factors_.dtype)]
            )
            if self.user_bias_ is not None:
                self.user_bias_ = np.concatenate(
                    [self.user_bias_, np.zeros(len(new_source), self.user_bias_.dtype)]
                )
        else:
            self.user_factors_ = self.user_factors_.copy()
            if self.user_bias_ is not None:
                self.user_bias_ = self.user_bias_.copy()
        self.user_factors_[affected] = factors
        if self.user_bias_ is not None:
            self.user_bias_[affected] = bias
        self._seen = merged
        logger.info(
            "partial_fit: %d ratings, %d users updated (%d new)",
            int(known.sum()),
            len(affected),
            len(new_source),
        )
        return self


def _grow_vocabulary(vocab: Vocabulary, new_ids: Any) -> Vocabulary:
    """``vocab`` followed by ``new_ids`` (not already in it) as a new Vocabulary."""
    kind, ids = normalize_ids(new_ids, vocab.name)
    if kind == vocab.kind:
        return Vocabulary._from_checked(kind, np.concatenate([vocab.ids, ids]), vocab.name)
    # e.g. int ids joined by one beyond int64: let the vocabulary pick the kind.
    return Vocabulary(np.concatenate([vocab.ids.astype(object), ids.astype(object)]), vocab.name)
