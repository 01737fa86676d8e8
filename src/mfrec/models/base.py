"""The one model contract every mfrec recommender follows.

Settings apart from learned state (scikit-learn's convention): ``__init__`` stores the
hyperparameters unchanged; ``fit`` checks them (one place, :mod:`mfrec._params`) and sets
learned attributes, whose names end in ``_``. Raw ids come in and go out at the public
methods; inside, everything is int32 indices into the model's own vocabularies.

Unknown ids -- the one policy
-----------------------------
A model knows exactly the users and items that have at least one training rating.
``predict`` for a pair with an unknown user and/or item falls back to what exists: the
global mean plus the item bias (unknown user), plus the user bias (unknown item), or the
global mean alone (both unknown; also for models without biases). It warns once per call
with :class:`~mfrec.exceptions.UnknownIdWarning`, saying how many pairs were affected.
``recommend`` for an unknown user ranks items by that same fallback score (global mean +
item bias), with nothing to exclude. ``similar_items`` of an unknown item is a ``KeyError``.
``fold_in``, ``recommend_for_ratings`` and ``partial_fit`` ignore ratings of unknown items
(they have no factors) with one warning per call; unknown *users* are what ``fold_in`` and
``partial_fit`` add.
"""

from __future__ import annotations

import inspect
import logging
import math
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any, ClassVar, NamedTuple

import numpy as np
import scipy.sparse as sp

from mfrec._params import Constraint, check_params
from mfrec.data.ratings import Ratings
from mfrec.data.vocab import Vocabulary
from mfrec.exceptions import (
    DataError,
    DivergenceError,
    NotFittedError,
    ParameterError,
    UnknownIdWarning,
)
from mfrec.models.foldin import FACTOR_ARRAYS, FoldIn
from mfrec.models.topn import (
    _EMPTY,
    DEFAULT_BLOCK_BYTES,
    Recommendations,
    TopN,
    _as32,
)
from mfrec.persist import save_model

logger = logging.getLogger(__name__)

EpochCallback = Callable[[dict[str, Any]], Any]


class ValidationData(NamedTuple):
    """Validation ratings translated into a model's index space (``-1`` = unknown)."""

    user_index: np.ndarray
    item_index: np.ndarray
    rating: np.ndarray


def _index_table(source: Vocabulary, target: Vocabulary) -> np.ndarray:
    """int32 table mapping each index of ``source`` to ``target``'s index (or -1)."""
    if source is target or source == target:
        return np.arange(len(source), dtype=np.int32)
    return target.lookup(source.ids)


class Recommender:
    """Base class of all mfrec models.

    Subclasses declare ``_constraints`` (hyperparameter rules), ``_fitted_arrays`` (the
    names of the learned arrays to persist) and implement ``_fit``, ``_score_pairs``
    and ``_score_block``.
    """

    #: CLI name, e.g. ``"biased-mf"``.
    name: ClassVar[str] = ""
    #: Whether scores estimate ratings (scored by RMSE/MAE) or are preference scores
    #: of implicit feedback, which only ranking metrics judge.
    predicts_ratings: ClassVar[bool] = True
    _constraints: ClassVar[dict[str, Constraint]] = {}
    _fitted_arrays: ClassVar[tuple[str, ...]] = ()
    _fitted_scalars: ClassVar[tuple[str, ...]] = ()
    #: Whether a known (user, item) score includes ``global_mean_`` (FunkSVD: no).
    _uses_global_mean: ClassVar[bool] = True
    #: Learned arrays beyond ``_fitted_arrays`` that :meth:`_extra_state` persists.
    _extra_arrays: ClassVar[tuple[str, ...]] = ()
    #: Whether a fitted model has (user, item) biases whatever its hyperparameters;
    #: None when they decide (see :meth:`_bias_layout`).
    _biases: ClassVar[tuple[bool, bool] | None] = None

    def _bias_layout(self) -> tuple[bool, bool] | None:
        """Whether a fitted model with these hyperparameters has (user, item) biases;
        None when it cannot be told. Loading a model file checks it, so that arrays
        relabelled as another class are refused."""
        if self._biases is not None:
            return self._biases
        biased = self.get_params().get("biased")
        return None if biased is None else (bool(biased), bool(biased))

    #: Hyperparameters added after model files were first written, with the value that
    #: reproduces how a model was trained before they existed: a file without them
    #: loads with these, not with today's defaults (see :func:`mfrec.persist.load`).
    _params_before_they_existed: ClassVar[dict[str, Any]] = {}

    # -- hyperparameters ----------------------------------------------------------------
    @classmethod
    def _param_names(cls) -> list[str]:
        signature = inspect.signature(cls.__init__)
        return [
            p.name
            for p in signature.parameters.values()
            if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]

    @classmethod
    def param_defaults(cls) -> dict[str, Any]:
        """The constructor's default value of every hyperparameter."""
        signature = inspect.signature(cls.__init__)
        return {n: signature.parameters[n].default for n in cls._param_names()}

    def get_params(self) -> dict[str, Any]:
        """The hyperparameters, as given to the constructor."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> Recommender:
        """Change hyperparameters (checked now); learned state is kept until the next fit."""
        names = set(self._param_names())
        unknown = sorted(set(params) - names)
        if unknown:
            raise ParameterError(
                f"{type(self).__name__} has no parameter(s) {unknown}; it has {sorted(names)}"
            )
        check_params(type(self).__name__, params, self._constraints)
        for key, value in params.items():
            setattr(self, key, value)
        return self

    def _validate_params(self) -> None:
        check_params(type(self).__name__, self.get_params(), self._constraints)

    def __repr__(self) -> str:
        defaults = self.param_defaults()
        changed = [
            f"{k}={v!r}" for k, v in self.get_params().items() if not _same(v, defaults.get(k))
        ]
        return f"{type(self).__name__}({', '.join(changed)})"

    # -- fitting ------------------------------------------------------------------------
    @property
    def is_fitted(self) -> bool:
        return hasattr(self, "users_")

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise NotFittedError(
                f"this {type(self).__name__} is not fitted yet: call fit(ratings) first"
            )

    def fit(
        self,
        ratings: Ratings,
        validation: Ratings | None = None,
        *,
        callback: EpochCallback | None = None,
    ) -> Recommender:
        """Learn from ``ratings``.

        Parameters
        ----------
        ratings : Ratings
            Training data. Only users and items with at least one rating here become
            known to the model.
        validation : Ratings, optional
            Held-out ratings: their RMSE is recorded each epoch in ``history_`` and, for
            models with a ``patience`` parameter, used for early stopping.
        callback : callable, optional
            Called with each epoch's history record (a dict); returning ``False`` stops
            training after that epoch.

        Returns
        -------
        self
        """
        self._validate_params()
        if not isinstance(ratings, Ratings):
            raise DataError(
                f"fit expects mfrec Ratings, got {type(ratings).__name__}; build them with "
                "Ratings.from_frame(...) or mfrec.read_ratings(...)"
            )
        if validation is not None and not isinstance(validation, Ratings):
            raise DataError(f"validation must be mfrec Ratings, got {type(validation).__name__}")
        _check_indices(ratings, "ratings")
        train = ratings.compact()
        if validation is None and self._stops_on_held_out_slice(len(train)):
            return self._fit_with_held_out_slice(train, callback)
        self._set_training_data(train)
        val = None if validation is None else self._translate(validation)
        from mfrec._compile import watch_compiles

        started = time.perf_counter()
        with watch_compiles(getattr(self, "name", "")) as compiled:
            self._fit(train, val, callback)
        # The one-off kernel compile of a first run is not training time.
        self.compile_seconds_ = compiled.seconds
        self.fit_seconds_ = max(0.0, time.perf_counter() - started - compiled.seconds)
        if not hasattr(self, "history_"):
            self.history_ = []
        return self

    # -- early stopping without validation data -------------------------------------------
    def _has_held_out_slice(self) -> bool:
        return (getattr(self, "validation_fraction", 0.0) or 0.0) > 0

    def _stops_on_held_out_slice(self, n_ratings: int) -> bool:
        """Whether fit() without validation data stops early on a held-out slice: the
        model has ``validation_fraction`` > 0 and ``patience`` set, and the slice would
        hold at least one rating (and leave at least one)."""
        fraction = getattr(self, "validation_fraction", 0.0) or 0.0
        return (
            fraction > 0
            and getattr(self, "patience", None) is not None
            and n_ratings >= 2
            and fraction * n_ratings >= 1
        )

    def _fit_with_held_out_slice(self, train: Ratings, callback: EpochCallback | None):
        """Early stopping when no validation data is given.

        A seeded ``validation_fraction`` of the training ratings is held out; a copy of
        this model trains on the rest with early stopping on that slice (``patience``)
        and yields the best epoch; then this model is refitted on *all* the ratings for
        exactly that many epochs. (Refitting rather than keeping the stopped copy: the
        copy never saw the slice, and users or items whose ratings all fell in it would
        be unknown to it.) ``history_`` is the refit's, each epoch with the held-out
        RMSE the selection pass measured at that epoch (``val_rmse``);
        ``validation_history_`` is the whole selection pass, up to where it stopped.
        """
        from mfrec._random import check_random_state
        from mfrec.data.split import holdout

        started = time.perf_counter()
        rng = check_random_state(self.random_state)
        fold = holdout(train, self.validation_fraction, random_state=rng)
        selector = type(self)(**{**self.get_params(), "validation_fraction": 0.0})
        selector.fit(fold.train, validation=fold.test)
        best = selector.best_epoch_
        saved = self.get_params()
        try:
            self.n_epochs, self.patience, self.validation_fraction = best, None, 0.0
            self.fit(train, callback=callback)
        finally:
            for key, value in saved.items():
                setattr(self, key, value)
        held_out = {r["epoch"]: r["val_rmse"] for r in selector.history_}
        for record in self.history_:
            record["val_rmse"] = held_out[record["epoch"]]
        self.validation_history_ = selector.history_
        self.best_epoch_ = best
        for key in ("start_val_rmse_", "start_margin_"):
            if hasattr(selector, key):
                setattr(self, key, getattr(selector, key))
        # Both passes' one-off kernel compiles are not training time.
        self.compile_seconds_ = selector.compile_seconds_ + self.compile_seconds_
        self.fit_seconds_ = max(0.0, time.perf_counter() - started - self.compile_seconds_)
        return self

    def _set_training_data(self, train: Ratings) -> None:
        self.users_ = train.users
        self.items_ = train.items
        self.global_mean_ = float(np.mean(train.rating, dtype=np.float64))
        self.rating_scale_ = train.rating_range()
        self.item_titles_ = train.item_titles()
        self._seen_source: Ratings | None = train
        self._seen_csr: sp.csr_matrix | None = None
        self.history_: list[dict[str, Any]] = []
        self.__dict__.pop("start_val_rmse_", None)
        self.__dict__.pop("start_margin_", None)

    def _fit(self, train: Ratings, validation: ValidationData | None, callback) -> None:
        raise NotImplementedError

    def _translate(self, ratings: Ratings) -> ValidationData:
        """``ratings`` in this model's index space (``-1`` where an id is unknown)."""
        _check_indices(ratings, "ratings")
        u = _index_table(ratings.users, self.users_)[ratings.user_index]
        i = _index_table(ratings.items, self.items_)[ratings.item_index]
        return ValidationData(u, i, ratings.rating)

    # -- the training loop shared by every iterative model (house rule 7) -----------
    def _run_epochs(
        self,
        n_epochs: int,
        epoch: Callable[[int], dict[str, float]],
        validation: ValidationData | None,
        callback: EpochCallback | None,
        patience: int | None = None,
        epoch_work: float | None = None,
        score_start: bool = False,
        start_arrays: dict[str, np.ndarray] | None = None,
    ) -> None:
        """Run ``epoch(e)`` for e = 1..n_epochs, recording one history dict per epoch:
        ``epoch``, the model's own training figures (``train_loss``, ``train_rmse``, ...),
        ``val_rmse`` when validation data is given, and ``seconds``.

        Stops with :class:`DivergenceError` as soon as a learned array is non-finite.
        With ``patience`` and validation data, stops after ``patience`` epochs without a
        better validation RMSE and restores the best epoch's parameters. ``epoch_work``,
        the work of an epoch's parallel region, lets an automatic thread count run small
        epochs on one thread while the machine is busy (:class:`mfrec._threads.EpochThreads`).

        ``score_start``: with ``patience`` and validation data, "epoch 0" is a candidate
        too: the starting state, with ``start_arrays`` (if given) in place of some of its
        arrays -- what a fit of ``n_epochs=0`` gives. Its validation RMSE is kept as
        ``start_val_rmse_``; unless the best epoch beats it by more than one standard
        error of their paired difference in squared error on the validation ratings
        (the one-standard-error rule: the simpler model unless the data clearly say
        otherwise -- on data without interaction structure the choice between two bias
        models would otherwise be a coin flip on the slice), it is restored and
        ``best_epoch_`` is 0; ``start_margin_`` records the best epoch's mean gain in
        squared error minus that standard error. When epoch 0 is the run's own start
        (no ``start_arrays``), no run stops before some epoch beats it (or ``n_epochs``
        runs out): the factors need a few epochs to leave their tiny initial scale, and
        a held-out RMSE flat or slightly rising
        meanwhile would otherwise stop runs on data with structure at epoch 0
        (docs/defaults.md, r13). Otherwise patience counts from epoch 1 as without it.
        """
        if patience is not None and validation is None and self._has_held_out_slice():
            # Too few ratings for a held-out slice (fit() checked): run every epoch.
            logger.info("too few ratings to hold out a slice; no early stopping")
            patience = None
        if patience is not None and validation is None:
            raise ParameterError(
                f"{type(self).__name__}: patience={patience} needs validation data; "
                "call fit(train, validation=...), set validation_fraction > 0 (where the "
                "model has it) or set patience=None"
            )
        import numba

        import mfrec.kernels  # noqa: F401  (the OpenMP wait policy, before threads start)
        from mfrec._compile import current_seconds
        from mfrec._threads import EpochThreads, blas_threads, is_automatic

        threads = EpochThreads(
            numba.get_num_threads(),
            adaptive=is_automatic(getattr(self, "n_threads", None)),
            work=epoch_work,
        )
        outer_threads = numba.get_num_threads()
        best_rmse, best_state, best_epoch = np.inf, None, 0

        def snapshot() -> dict[str, Any]:
            return {
                k: None if getattr(self, k, None) is None else getattr(self, k).copy()
                for k in self._fitted_arrays
            }

        start_rmse, start_state, start_pred, best_pred = np.inf, None, None, None
        # Epoch 0 as the start of the run: no stop before some epoch beats it.
        wait = start_arrays is None
        if score_start and patience is not None and validation is not None:
            current = {k: getattr(self, k, None) for k in self._fitted_arrays}
            for key, value in (start_arrays or {}).items():
                setattr(self, key, value)
            start_pred = self._predict_indices(validation.user_index, validation.item_index)
            start_rmse = self.start_val_rmse_ = _rmse(validation.rating, start_pred)
            start_state = snapshot()
            for key, value in current.items():
                setattr(self, key, value)
        # The epochs' own NumPy work (objective terms, validation RMSE) runs on one BLAS
        # thread: OpenBLAS's helpers keep spinning after a threaded dot product and took
        # 0.1 s of CPU per 10M-rating SGD epoch from the kernel's two threads (a 0.4 s
        # epoch; on 2 cores the fit then misread the machine as busy).
        with blas_threads(1):
            try:
                for e in range(1, n_epochs + 1):
                    n_threads = threads.next()
                    numba.set_num_threads(n_threads)
                    started, compiling = time.perf_counter(), current_seconds()
                    record: dict[str, Any] = {"epoch": e, **epoch(e)}
                    self._check_finite(e, record)
                    if validation is not None:
                        predicted = self._predict_indices(
                            validation.user_index, validation.item_index
                        )
                        record["val_rmse"] = _rmse(validation.rating, predicted)
                    elapsed = time.perf_counter() - started - (current_seconds() - compiling)
                    record["seconds"] = max(0.0, elapsed)
                    threads.record(n_threads, record["seconds"])
                    self.history_.append(record)
                    logger.debug("%s %s", type(self).__name__, record)
                    if callback is not None and callback(record) is False:
                        break
                    if patience is not None:
                        if record["val_rmse"] < best_rmse:
                            best_rmse, best_epoch = record["val_rmse"], e
                            best_state = snapshot()
                            if start_pred is not None:
                                best_pred = predicted
                        elif e - best_epoch >= patience and (best_rmse < start_rmse or not wait):
                            logger.info("early stop after epoch %d (best epoch %d)", e, best_epoch)
                            break
            finally:
                numba.set_num_threads(outer_threads)
        if start_state is not None:
            margin = (
                -np.inf if best_pred is None
                else _one_se_margin(validation.rating, start_pred, best_pred)
            )  # fmt: skip
            self.start_margin_ = float(margin)
            if margin <= 0:
                best_state, best_epoch = start_state, 0
        if best_state is not None and best_epoch != len(self.history_):
            for key, value in best_state.items():
                setattr(self, key, value)
        self.best_epoch_ = best_epoch if patience is not None else len(self.history_)

    def _check_finite(self, epoch: int, record: dict[str, Any] | None = None) -> None:
        # A non-finite training loss means some parameter blew up during the epoch, even
        # one the model keeps only while training.
        for key in ("train_loss", "train_rmse"):
            value = (record or {}).get(key)
            if value is not None and not math.isfinite(value):
                raise DivergenceError(
                    f"{type(self).__name__} diverged at epoch {epoch}: the {key} became "
                    f"non-finite. {self._divergence_hint()}"
                )
        for key in self._fitted_arrays:
            value = getattr(self, key, None)
            # One float64 sum per array, no temporary: any NaN or inf makes it non-finite.
            if value is not None and not math.isfinite(value.sum(dtype=np.float64)):
                raise DivergenceError(
                    f"{type(self).__name__} diverged at epoch {epoch}: {key} became "
                    f"non-finite. {self._divergence_hint()}"
                )

    def _divergence_hint(self) -> str:
        lr = getattr(self, "lr", None)
        if lr is None:
            return "Try stronger regularisation."
        return f"The learning rate is too high (lr={lr:g}); try lr={lr / 10:g}."

    # -- scoring (subclasses) -------------------------------------------------------
    def _score_pairs(self, user_index: np.ndarray, item_index: np.ndarray) -> np.ndarray:
        """Scores of known (user, item) index pairs."""
        raise NotImplementedError

    def _score_block(self, user_index: np.ndarray) -> np.ndarray:
        """float32 scores of every item for each of the known ``user_index`` rows."""
        raise NotImplementedError

    def _fallback_item_scores(self) -> np.ndarray:
        """float64 scores of every item for an unknown user: global mean (+ item bias),
        exactly what :meth:`predict` gives an unknown user."""
        scores = np.full(len(self.items_), self.global_mean_, dtype=np.float64)
        item_bias = getattr(self, "item_bias_", None)
        if item_bias is not None:
            scores += item_bias
        return scores

    def _fallback(self, user_index: np.ndarray, item_index: np.ndarray) -> np.ndarray:
        out = np.full(len(user_index), self.global_mean_, dtype=np.float64)
        user_bias = getattr(self, "user_bias_", None)
        item_bias = getattr(self, "item_bias_", None)
        if user_bias is not None:
            known = user_index >= 0
            out[known] += user_bias[user_index[known]]
        if item_bias is not None:
            known = item_index >= 0
            out[known] += item_bias[item_index[known]]
        return out

    # -- prediction ---------------------------------------------------------------------
    def _predict_indices(self, user_index: np.ndarray, item_index: np.ndarray) -> np.ndarray:
        """float64 predictions for index pairs; ``-1`` indices follow the unknown-id policy."""
        known = (user_index >= 0) & (item_index >= 0)
        if known.all():
            return np.asarray(self._score_pairs(user_index, item_index), dtype=np.float64)
        out = self._fallback(user_index, item_index)
        if known.any():
            out[known] = self._score_pairs(user_index[known], item_index[known])
        return out

    def _finish(self, values: np.ndarray, clip: bool) -> np.ndarray:
        if clip:
            np.clip(values, *self.rating_scale_, out=values)
        return values

    @staticmethod
    def _warn_unknown(user_index: np.ndarray, item_index: np.ndarray, stacklevel: int = 3) -> None:
        bad_u, bad_i = user_index < 0, item_index < 0
        n_bad = int((bad_u | bad_i).sum())
        if n_bad:
            warnings.warn(
                f"{n_bad} of {len(user_index)} pairs have ids unseen in training "
                f"({int(bad_u.sum())} with an unknown user, {int(bad_i.sum())} with an unknown "
                "item); they were predicted from the global mean and the biases that exist",
                UnknownIdWarning,
                stacklevel=stacklevel,
            )

    def predict(self, users: Any, items: Any, *, clip: bool = False) -> np.ndarray:
        """Predicted ratings of (user, item) pairs given by raw ids.

        Parameters
        ----------
        users, items : scalar or array-like
            Raw ids; equal lengths, or one side a scalar (broadcast).
        clip : bool, default False
            Clip predictions to the training rating scale.

        Returns
        -------
        ndarray of float64
            One prediction per pair. Unknown ids follow the module's documented policy.
        """
        self._check_fitted()
        u = self.users_.lookup(users)
        i = self.items_.lookup(items)
        if len(u) != len(i):
            if len(u) == 1:
                u = np.repeat(u, len(i))
            elif len(i) == 1:
                i = np.repeat(i, len(u))
            else:
                raise DataError(f"users and items differ in length: {len(u)} vs {len(i)}")
        self._warn_unknown(u, i)
        return self._finish(self._predict_indices(u, i), clip)

    def predict_ratings(self, ratings: Ratings, *, clip: bool = False) -> np.ndarray:
        """Predictions for every row of ``ratings`` (fast path for evaluation)."""
        self._check_fitted()
        v = self._translate(ratings)
        self._warn_unknown(v.user_index, v.item_index)
        return self._finish(self._predict_indices(v.user_index, v.item_index), clip)

    def predict_matrix(
        self, *, clip: bool = False, max_cells: int = 25_000_000, as_frame: bool = False
    ) -> Any:
        """The full users x items matrix of predictions (rows ``users_.ids``, columns
        ``items_.ids``), for small problems: refuses above ``max_cells`` entries.
        ``as_frame=True`` returns it as a pandas DataFrame labelled by those ids (index
        ``user``, columns ``item``; ``.T`` for items x users)."""
        if as_frame:
            import pandas as pd

            values = self.predict_matrix(clip=clip, max_cells=max_cells)
            return pd.DataFrame(
                values,
                index=pd.Index(self.users_.ids, name="user"),
                columns=pd.Index(self.items_.ids, name="item"),
            )
        self._check_fitted()
        cells = len(self.users_) * len(self.items_)
        if cells > max_cells:
            raise ValueError(
                f"predict_matrix would build {len(self.users_):,} x {len(self.items_):,} = "
                f"{cells:,} cells (limit {max_cells:,}); use recommend() for top-N or "
                "predict() for the pairs you need, or raise max_cells"
            )
        users = np.arange(len(self.users_), dtype=np.int32)
        return self._finish(self._score_block(users).astype(np.float64), clip)

    def predict_frame(self, *, clip: bool = False, max_cells: int = 25_000_000):
        """``predict_matrix(as_frame=True)``: the completed matrix with ids as labels."""
        return self.predict_matrix(clip=clip, max_cells=max_cells, as_frame=True)

    # -- top-N --------------------------------------------------------------------------
    def _block_rows(self, block_size: int | None, block_bytes: int = DEFAULT_BLOCK_BYTES) -> int:
        if block_size is not None:
            if block_size < 1:
                raise ParameterError(f"block_size must be >= 1, got {block_size}")
            return int(block_size)
        return max(1, block_bytes // (4 * max(1, len(self.items_))))

    def _list_block_rows(self, block_size: int | None) -> int:
        """Users per block of :meth:`iter_recommendations`."""
        return self._block_rows(block_size)

    def _recommend_indices(
        self, user_index: np.ndarray, n: int, exclude_seen: bool, block_size: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``n`` item indices and scores for user indices (``-1`` = unknown user),
        computed in blocks so memory stays bounded by ``block_size`` x n_items."""
        from mfrec.kernels.topk import topk_rows

        n = min(int(n), len(self.items_))
        rows = self._block_rows(block_size)
        out_idx = np.full((len(user_index), n), -1, dtype=np.int32)
        out_scores = np.full((len(user_index), n), -np.inf, dtype=np.float32)
        seen = self._seen if exclude_seen else None
        indptr = seen.indptr if seen is not None else np.zeros(1, dtype=np.int32)
        indices = seen.indices if seen is not None else np.zeros(0, dtype=np.int32)
        fallback = None
        for start in range(0, len(user_index), rows):
            block = user_index[start : start + rows]
            known = block >= 0
            if known.all():
                scores = self._score_block(block)
            else:
                if fallback is None:
                    fallback = self._fallback_item_scores()
                scores = np.empty((len(block), len(self.items_)), dtype=np.float32)
                scores[~known] = fallback.astype(np.float32)
                if known.any():
                    scores[known] = self._score_block(block[known])
            scores = np.ascontiguousarray(scores, dtype=np.float32)
            topk_rows(
                scores,
                block.astype(np.int32),
                indptr,
                indices,
                out_idx[start : start + rows],
                out_scores[start : start + rows],
            )
        return out_idx, out_scores

    def recommend(
        self,
        users: Any,
        n: int = 10,
        *,
        exclude_seen: bool = True,
        block_size: int | None = None,
    ) -> Recommendations:
        """The ``n`` best items for each user, by predicted score.

        Parameters
        ----------
        users : raw id or sequence of raw ids
        n : int, default 10
        exclude_seen : bool, default True
            Leave out the items each user rated in training.
        block_size : int, optional
            Users scored at once (memory: block_size x n_items float32). Default: as many
            as fit in 64 MiB.

        Returns
        -------
        Recommendations
            ``(item_ids, scores)``; 1-D for a single user id, 2-D for a sequence. Ties are
            broken by item index (lower first). Unknown users get the fallback ranking
            (global mean + item bias) and a warning.
        """
        self._check_fitted()
        if not isinstance(n, (int, np.integer)) or n < 1:
            raise ParameterError(f"n must be a positive int, got {n!r}")
        single = np.ndim(users) == 0
        u = self.users_.lookup(users)
        if (u < 0).any():
            warnings.warn(
                f"{int((u < 0).sum())} of {len(u)} users are unknown to the model; they get "
                "the fallback ranking (global mean + item bias)",
                UnknownIdWarning,
                stacklevel=2,
            )
        idx, scores = self._recommend_indices(u, n, exclude_seen, block_size)
        if single:
            valid = np.isfinite(scores[0])
            return Recommendations(self.items_.take(idx[0][valid]), scores[0][valid])
        return Recommendations(self._ids_with_padding(idx), scores)

    def _ids_with_padding(self, idx: np.ndarray) -> np.ndarray:
        pad = idx < 0
        ids = self.items_.take(np.where(pad, 0, idx))
        if pad.any():
            ids = ids.copy()
            ids[pad] = "" if self.items_.kind == "str" else -1
        return ids

    def iter_recommendations(
        self,
        n: int = 10,
        *,
        users: Any = None,
        exclude_seen: bool = True,
        block_size: int | None = None,
    ) -> Iterator[tuple[np.ndarray, Recommendations]]:
        """Top-``n`` lists for many users, one block of users at a time.

        Yields ``(user_ids, Recommendations)`` per block (2-D, padded as in
        :meth:`recommend`). Memory stays bounded by ``block_size`` x n_items scores
        whatever the number of users -- the way to score every user of a large model
        (see :func:`mfrec.export.write_recommendations`).

        Parameters
        ----------
        n : int
        users : sequence of raw ids, optional
            Default: every user known to the model, in vocabulary order.
        exclude_seen : bool, default True
        block_size : int, optional
            Users per block (default: as many as fit in 64 MiB of scores; for factor
            models, whose scores are computed in cache-sized blocks inside, 16,384).
        """
        self._check_fitted()
        if not isinstance(n, (int, np.integer)) or n < 1:
            raise ParameterError(f"n must be a positive int, got {n!r}")
        if users is None:
            index = np.arange(len(self.users_), dtype=np.int32)
        else:
            index = self.users_.index(users)  # KeyError naming any unknown user
        rows = self._list_block_rows(block_size)
        for start in range(0, len(index), rows):
            block = index[start : start + rows]
            idx, scores = self._recommend_indices(block, n, exclude_seen, rows)
            yield self.users_.take(block), Recommendations(self._ids_with_padding(idx), scores)

    # -- persistence ------------------------------------------------------------------
    def save(self, path: str) -> None:
        """Write the fitted model to ``path`` (one ``.mfrec`` file, no pickle, atomic).

        See :mod:`mfrec.persist` for the format; load it back with :func:`mfrec.load`.
        """
        self._check_fitted()
        save_model(self, path)

    def _extra_state(self) -> dict[str, np.ndarray]:
        """Arrays beyond ``_fitted_arrays`` that a subclass needs persisted."""
        return {}

    def _restore_extra_state(self, arrays: dict[str, np.ndarray]) -> None:
        """Inverse of :meth:`_extra_state`."""

    @property
    def _seen(self) -> sp.csr_matrix:
        # Built on first use (recommend, save), not during fit.
        if self._seen_csr is None:
            source = self._seen_source
            self._seen_csr = sp.csr_matrix(
                (source.rating, (source.user_index, source.item_index)),
                shape=(source.n_users, source.n_items),
                dtype=np.float32,
            )
            self._seen_csr.sort_indices()
            self._seen_source = None
        return self._seen_csr

    @_seen.setter
    def _seen(self, value: sp.csr_matrix) -> None:
        self._seen_csr = value
        self._seen_source = None

    @property
    def seen_items(self) -> sp.csr_matrix:
        """users x items CSR of the training ratings (what ``exclude_seen`` excludes)."""
        self._check_fitted()
        return self._seen

    # -- beyond the training users: fold-in, partial fit, similar items ---------------
    # Implemented by FactorModel (see there); other models say they cannot.
    def _cannot(self, what: str) -> NotImplementedError:
        return NotImplementedError(f"{type(self).__name__} does not support {what}")

    def fold_in(self, user_id: Any, ratings: Any) -> Recommender:
        """Add a user unseen in training, from their ratings, without retraining."""
        raise self._cannot("fold_in (adding a new user without retraining)")

    def recommend_for_ratings(
        self, ratings: Any, n: int = 10, *, exclude_rated: bool = True
    ) -> Recommendations:
        """Top-``n`` items for an anonymous user described by ``ratings`` (not stored)."""
        raise self._cannot("recommend_for_ratings (recommendations for unseen users)")

    def partial_fit(self, ratings: Ratings) -> Recommender:
        """Update users (known and new) from fresh ratings without a full refit."""
        raise self._cannot("partial_fit (updating users without a full refit)")

    def similar_items(
        self, item_ids: Any, n: int = 10, *, block_size: int | None = None
    ) -> Recommendations:
        """The ``n`` items most similar to each of ``item_ids``."""
        raise self._cannot("similar_items (it has no item latent space)")


def _check_indices(ratings: Ratings, what: str) -> None:
    """Ratings built by their trusting constructor may hold any index: check the bounds
    once here, at the boundary, so that no kernel ever indexes out of range."""
    for name, index, size in (
        ("user", ratings.user_index, ratings.n_users),
        ("item", ratings.item_index, ratings.n_items),
    ):
        if len(index) and (int(index.min()) < 0 or int(index.max()) >= size):
            raise DataError(
                f"{what} hold {name} indices outside 0..{size - 1} (their {name} vocabulary "
                f"has {size} ids); build Ratings with Ratings.from_arrays or read_ratings"
            )


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except Exception:  # numpy arrays or generators compare oddly
        return a is b


def _one_se_margin(rating: np.ndarray, start: np.ndarray, best: np.ndarray) -> float:
    """How much better ``best`` predicts ``rating`` than ``start``: the mean per-rating
    drop in squared error minus its standard error (> 0: better by more than one
    standard error)."""
    y = np.asarray(rating, dtype=np.float64)
    drop = (np.asarray(start, dtype=np.float64) - y) ** 2 - (np.asarray(best, np.float64) - y) ** 2
    if len(drop) < 2:
        return float(np.mean(drop))
    return float(np.mean(drop) - np.std(drop, ddof=1) / np.sqrt(len(drop)))


def _rmse(truth: np.ndarray, predicted: np.ndarray) -> float:
    diff = np.asarray(predicted, dtype=np.float64) - truth
    return float(np.sqrt(np.mean(diff * diff)))


class FactorModel(FoldIn, TopN, Recommender):
    """A model whose score is ``global_mean_ + user_bias_[u] + item_bias_[i] +
    user_factors_[u] . item_factors_[i]`` (biases optional; the global mean omitted
    when ``_uses_global_mean`` is False).

    Fit must set ``user_factors_`` and ``item_factors_`` (and the biases, or None).
    """

    _fitted_arrays: ClassVar[tuple[str, ...]] = FACTOR_ARRAYS

    def _intercept(self) -> float:
        return self.global_mean_ if self._uses_global_mean else 0.0

    def _check_fitted(self) -> None:
        # Every public method passes here: an O(1) check that the arrays the kernels
        # index agree with the vocabularies (kernels do not check bounds themselves).
        super()._check_fitted()
        if self.__dict__.get("_training_order") is not None:
            raise NotFittedError(
                f"this {type(self).__name__} is being fitted: until fit returns, its "
                "learned arrays are in training order, not in the order of its user and "
                "item ids. Read the epoch record a fit callback receives instead, or "
                "predict after fit returns"
            )
        n_users, n_items = len(self.users_), len(self.items_)
        p, q = getattr(self, "user_factors_", None), getattr(self, "item_factors_", None)
        problem = None
        if not isinstance(p, np.ndarray) or not isinstance(q, np.ndarray):
            problem = "user_factors_ or item_factors_ is missing"
        elif p.ndim != 2 or q.ndim != 2 or p.shape != (n_users, q.shape[1]):
            problem = f"user_factors_ {p.shape} and item_factors_ {q.shape} disagree"
        elif q.shape[0] != n_items:
            problem = f"item_factors_ has {q.shape[0]} rows for {n_items} items"
        else:
            for key, rows in (("user_bias_", n_users), ("item_bias_", n_items)):
                bias = getattr(self, key, None)
                if bias is not None and (not isinstance(bias, np.ndarray) or bias.shape != (rows,)):
                    problem = f"{key} does not have one entry per {key[:4]}"
            seen = getattr(self, "_seen_csr", None)
            if seen is not None and seen.shape != (n_users, n_items):
                problem = f"seen items {seen.shape} do not match {n_users} users x {n_items} items"
        if problem is not None:
            raise DataError(
                f"this {type(self).__name__} is in an inconsistent state ({problem}); were "
                "learned arrays replaced by hand? Refit it or load it from its file"
            )

    def _score_pairs(self, user_index: np.ndarray, item_index: np.ndarray) -> np.ndarray:
        from mfrec.kernels.score import score_pairs

        user_bias = self.user_bias_ if self.user_bias_ is not None else _EMPTY
        item_bias = self.item_bias_ if self.item_bias_ is not None else _EMPTY
        from mfrec._threads import threads_for_work

        out = np.empty(len(user_index), dtype=np.float64)
        with threads_for_work(len(user_index) * self.user_factors_.shape[1]):
            score_pairs(
                self.user_factors_,
                self.item_factors_,
                user_bias,
                item_bias,
                self._intercept(),
                np.ascontiguousarray(user_index, dtype=np.int32),
                np.ascontiguousarray(item_index, dtype=np.int32),
                out,
            )
        return out

    def _score_block(self, user_index: np.ndarray) -> np.ndarray:
        from mfrec.kernels.score import score_block

        item_factors_t = self._item_factors_t()
        dtype = item_factors_t.dtype
        out = np.empty((len(user_index), item_factors_t.shape[1]), dtype=np.float32)
        score_block(
            self.user_factors_.astype(dtype, copy=False),
            item_factors_t,
            _as32(self.user_bias_),
            _as32(self.item_bias_),
            self._intercept(),
            np.ascontiguousarray(user_index, dtype=np.int32),
            out,
        )
        return out

    def _item_factors_t(self) -> np.ndarray:
        """float32 transposed item factors, cached per factor array."""
        cached = getattr(self, "_qt_cache", None)
        if cached is None or cached[0] is not self.item_factors_:
            qt = np.ascontiguousarray(self.item_factors_.T, dtype=np.float32)
            self._qt_cache = (self.item_factors_, qt)
            return qt
        return cached[1]

    @property
    def n_factors_(self) -> int:
        return int(self.item_factors_.shape[1])

    def _uses_standard_scoring(self) -> bool:
        """Whether scores are exactly FactorModel's formula (no subclass override)."""
        return type(self)._score_pairs is FactorModel._score_pairs

    def _factor_reg_unit(self) -> float:
        """What the factors' L2 is multiplied by in the ratings' units: 1, except for
        models whose hyperparameters are in units of a reference scale (``rating_unit``
        of the SGD models)."""
        return 1.0

    def _fixed_row_penalty(self) -> tuple[float, float]:
        """(reg_row, reg_bias_row): the count-aware part of the penalty, a fixed amount
        per row on its factors and its bias (0, 0 for a model without one)."""
        return (
            float(getattr(self, "reg_row", 0.0) or 0.0),
            float(getattr(self, "reg_bias_row", 0.0) or 0.0),
        )
