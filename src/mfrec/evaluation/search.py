"""Hyperparameter search: grid and random, scored by K-fold cross-validated RMSE.

The search only ever sees the ratings it is given -- pass it the *training* part of a
split and keep the test part for one final, honest measurement of the chosen model
(``mfrec tune --split`` does exactly that). Every configuration is scored on the same K
folds with the same model seed (common random numbers), so differences between
configurations are not differences of luck. The pick is the lowest mean validation RMSE
(predictions clipped to the rating scale); ties go to the earlier configuration.

Search spaces are dicts, or strings in the command-line syntax (:data:`GRID_SYNTAX`,
:data:`RANDOM_SYNTAX`) parsed against the model's own hyperparameter rules::

    grid = parse_grid("n_factors=50,100;reg=0.02,0.05", BiasedMF)
    space = parse_space("n_factors=int(10,200);lr=loguniform(1e-3,1e-1)", BiasedMF)
    result = random_search(BiasedMF(), space, fold.train, n_iter=20, folds=5, random_state=0)
    print(result.table())
    best = BiasedMF(**result.best_params).fit(fold.train)   # then score fold.test once
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mfrec._params import Constraint
from mfrec._random import RandomState, check_random_state
from mfrec.data.ratings import Ratings
from mfrec.exceptions import DivergenceError, ParameterError
from mfrec.models.base import Recommender

logger = logging.getLogger(__name__)

GRID_SYNTAX = (
    "a grid is NAME=V1,V2,...;NAME=V1,... -- every combination is tried, e.g. "
    "'n_factors=50,100;reg=0.02,0.05'"
)
RANDOM_SYNTAX = (
    "a random space is NAME=DIST;NAME=DIST;... with DIST one of int(LOW,HIGH), "
    "logint(LOW,HIGH) (integers, both ends included), uniform(LOW,HIGH), "
    "loguniform(LOW,HIGH) (0 < LOW < HIGH), choice(V1,V2,...) or a single fixed value, "
    "e.g. 'n_factors=int(10,200);lr=loguniform(1e-3,1e-1)'"
)


# -- distributions ------------------------------------------------------------------------
@dataclass(frozen=True)
class IntUniform:
    """Integers ``low..high`` (both included), equally likely (``int(low,high)``)."""

    low: int
    high: int

    def sample(self, rng: np.random.Generator) -> int:
        return int(rng.integers(self.low, self.high + 1))

    def __str__(self) -> str:
        return f"int({self.low},{self.high})"


@dataclass(frozen=True)
class LogIntUniform:
    """Integers ``low..high`` (both included), uniform in log scale (``logint``)."""

    low: int
    high: int

    def sample(self, rng: np.random.Generator) -> int:
        value = math.exp(rng.uniform(math.log(self.low - 0.5), math.log(self.high + 0.5)))
        return int(min(self.high, max(self.low, round(value))))

    def __str__(self) -> str:
        return f"logint({self.low},{self.high})"


@dataclass(frozen=True)
class Uniform:
    """Reals uniform in ``[low, high)`` (``uniform(low,high)``)."""

    low: float
    high: float

    def sample(self, rng: np.random.Generator) -> float:
        return float(rng.uniform(self.low, self.high))

    def __str__(self) -> str:
        return f"uniform({self.low:g},{self.high:g})"


@dataclass(frozen=True)
class LogUniform:
    """Reals whose logarithm is uniform in ``[log low, log high)`` (``loguniform``)."""

    low: float
    high: float

    def sample(self, rng: np.random.Generator) -> float:
        return float(math.exp(rng.uniform(math.log(self.low), math.log(self.high))))

    def __str__(self) -> str:
        return f"loguniform({self.low:g},{self.high:g})"


@dataclass(frozen=True)
class Choice:
    """One of ``values``, equally likely (``choice(v1,v2,...)``; one value: fixed)."""

    values: tuple[Any, ...]

    def sample(self, rng: np.random.Generator) -> Any:
        return self.values[int(rng.integers(len(self.values)))]

    def __str__(self) -> str:
        if len(self.values) == 1:
            return str(self.values[0])
        return "choice(" + ",".join(str(v) for v in self.values) + ")"


Distribution = IntUniform | LogIntUniform | Uniform | LogUniform | Choice


# -- parsing -------------------------------------------------------------------------------
def _model_class(model: Any) -> type[Recommender]:
    if isinstance(model, type) and issubclass(model, Recommender):
        return model
    if isinstance(model, Recommender):
        return type(model)
    from mfrec.models import get_model_class

    return get_model_class(str(model))


def _split_entries(spec: str, syntax: str) -> list[tuple[str, str]]:
    if not isinstance(spec, str) or not spec.strip():
        raise ParameterError(f"empty search space; {syntax}")
    entries: list[tuple[str, str]] = []
    for chunk in spec.split(";"):
        if not chunk.strip():
            continue
        if "=" not in chunk:
            raise ParameterError(f"{chunk.strip()!r} is not NAME=VALUES; {syntax}")
        name, values = (s.strip() for s in chunk.split("=", 1))
        name = name.replace("-", "_")
        if not values:
            raise ParameterError(f"{name}= has no values; {syntax}")
        if name in dict(entries):
            raise ParameterError(f"{name} is given twice; {syntax}")
        entries.append((name, values))
    if not entries:
        raise ParameterError(f"empty search space; {syntax}")
    return entries


def _rule(cls: type[Recommender], name: str, syntax: str) -> Constraint | None:
    names = cls._param_names()
    if name not in names:
        raise ParameterError(
            f"{cls.__name__} has no parameter {name!r}; it has: {', '.join(names)}. {syntax}"
        )
    return cls._constraints.get(name)


def _parse_value(cls: type[Recommender], name: str, text: str, syntax: str) -> Any:
    rule = _rule(cls, name, syntax)
    text = text.strip()
    try:
        value = rule.parse(text) if rule is not None else _guess(text)
        if rule is not None:
            rule.check(name, value)
    except ParameterError as exc:
        raise ParameterError(f"{cls.__name__}: {name}={text}: {exc}; {syntax}") from None
    return value


def _guess(text: str) -> Any:
    for cast in (int, float):
        with contextlib.suppress(ValueError):
            return cast(text)
    return text


def parse_grid(spec: str, model: Any) -> dict[str, list[Any]]:
    """Parse ``"NAME=V1,V2;NAME=..."`` into ``{name: [values]}`` for ``model`` (a model,
    class or CLI name): names must be its hyperparameters, values pass its rules.

    Raises
    ------
    ParameterError
        Naming the problem and showing the accepted syntax (:data:`GRID_SYNTAX`).
    """
    cls = _model_class(model)
    grid: dict[str, list[Any]] = {}
    for name, values in _split_entries(spec, GRID_SYNTAX):
        if "(" in values:
            raise ParameterError(
                f"{name}={values}: distributions belong to a random search (--random); "
                f"{GRID_SYNTAX}"
            )
        parsed = [_parse_value(cls, name, v, GRID_SYNTAX) for v in values.split(",")]
        if len(set(map(repr, parsed))) != len(parsed):
            raise ParameterError(f"{name} lists a value twice; {GRID_SYNTAX}")
        grid[name] = parsed
    return grid


_DIST = re.compile(r"(int|logint|uniform|loguniform|choice)\s*\((.*)\)", re.S)


def parse_space(spec: str, model: Any) -> dict[str, Distribution]:
    """Parse ``"NAME=DIST;..."`` (see :data:`RANDOM_SYNTAX`) into distributions for
    ``model`` (a model, class or CLI name). Every value a distribution can produce is
    checked against the hyperparameter's rule here, before any fit.

    Raises
    ------
    ParameterError
        Naming the problem and showing the accepted syntax.
    """
    cls = _model_class(model)
    space: dict[str, Distribution] = {}
    for name, text in _split_entries(spec, RANDOM_SYNTAX):
        match = _DIST.fullmatch(text)
        if match is None:
            if "(" in text or "," in text:
                raise ParameterError(f"{name}={text} is not a distribution; {RANDOM_SYNTAX}")
            space[name] = Choice((_parse_value(cls, name, text, RANDOM_SYNTAX),))
            continue
        kind, inner = match.groups()
        args = [a.strip() for a in inner.split(",")]
        if kind == "choice":
            values = tuple(_parse_value(cls, name, a, RANDOM_SYNTAX) for a in args)
            space[name] = Choice(values)
            continue
        if len(args) != 2:
            raise ParameterError(f"{name}={text}: {kind} takes LOW,HIGH; {RANDOM_SYNTAX}")
        try:
            if kind in ("int", "logint"):
                low, high = (int(a) for a in args)
            else:
                low, high = (float(a) for a in args)
        except ValueError:
            wanted = "integers" if kind in ("int", "logint") else "numbers"
            raise ParameterError(
                f"{name}={text}: {kind} takes two {wanted}; {RANDOM_SYNTAX}"
            ) from None
        if not low < high or (kind.startswith("log") and low <= 0):
            raise ParameterError(
                f"{name}={text}: needs LOW < HIGH"
                + (" and LOW > 0 (log scale)" if kind.startswith("log") else "")
                + f"; {RANDOM_SYNTAX}"
            )
        dist = {"int": IntUniform, "logint": LogIntUniform}.get(kind) or (
            Uniform if kind == "uniform" else LogUniform
        )
        rule = _rule(cls, name, RANDOM_SYNTAX)
        if rule is not None:
            for end in (low, high):
                try:
                    rule.check(name, end)
                except ParameterError as exc:
                    hint = (
                        " (an integer parameter: use int(LOW,HIGH) or logint(LOW,HIGH))"
                        if kind in ("uniform", "loguniform") and float(end).is_integer()
                        else ""
                    )
                    raise ParameterError(
                        f"{cls.__name__}: {name}={text} reaches {end!r}: {exc}{hint}; "
                        f"{RANDOM_SYNTAX}"
                    ) from None
        space[name] = dist(low, high)
    return space


def grid_configurations(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every combination of the grid's values, the last name varying fastest."""
    names = list(grid)
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*grid.values())]


def random_configurations(
    space: Mapping[str, Distribution | Sequence[Any]], n_iter: int, random_state: RandomState
) -> list[dict[str, Any]]:
    """``n_iter`` distinct configurations drawn from ``space`` (fewer if the space holds
    fewer), reproducibly for a given ``random_state``. A plain list means choice."""
    if not isinstance(n_iter, (int, np.integer)) or n_iter < 1:
        raise ParameterError(f"n_iter must be a positive int, got {n_iter!r}")
    rng = check_random_state(random_state)
    dists = {
        k: v if hasattr(v, "sample") else Choice(tuple(v))  # type: ignore[arg-type]
        for k, v in space.items()
    }
    configs: list[dict[str, Any]] = []
    seen: set[str] = set()
    for _ in range(100 * n_iter):
        config = {name: dist.sample(rng) for name, dist in dists.items()}
        key = repr(sorted(config.items()))
        if key not in seen:
            seen.add(key)
            configs.append(config)
            if len(configs) == n_iter:
                break
    if len(configs) < n_iter:
        logger.info("the random space holds only %d distinct configurations", len(configs))
    return configs


# -- results -------------------------------------------------------------------------------
@dataclass
class ConfigResult:
    """One configuration's cross-validated scores.

    ``params`` are the searched values (the rest are the base model's); ``fold_rmse``
    one validation RMSE per fold; ``fit_seconds`` the mean fit time per fold. A
    configuration that failed (diverged) has ``error`` set and NaN scores.
    """

    index: int
    params: dict[str, Any]
    fold_rmse: list[float] = field(default_factory=list)
    fit_seconds: float = math.nan
    error: str | None = None

    @property
    def mean_rmse(self) -> float:
        return float(np.mean(self.fold_rmse)) if self.fold_rmse and not self.error else math.nan

    @property
    def std_rmse(self) -> float:
        return float(np.std(self.fold_rmse)) if self.fold_rmse and not self.error else math.nan

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "params": self.params,
            "mean_rmse": self.mean_rmse,
            "std_rmse": self.std_rmse,
            "fold_rmse": list(self.fold_rmse),
            "fit_seconds": self.fit_seconds,
            "error": self.error,
        }


@dataclass
class SearchResult:
    """The outcome of a search: every configuration's scores and the best one.

    Attributes
    ----------
    model : str
        The model's class name.
    method : {"grid", "random"}
    base_params : dict
        The base model's hyperparameters (what the searched values were applied to).
    results : list of ConfigResult
        In the order they were run.
    n_folds : int
    seconds : float
        Wall time of the whole search.
    """

    model: str
    method: str
    base_params: dict[str, Any]
    results: list[ConfigResult]
    n_folds: int
    seconds: float = 0.0

    @property
    def best(self) -> ConfigResult:
        """The configuration with the lowest mean validation RMSE (earliest on ties)."""
        scored = [r for r in self.results if math.isfinite(r.mean_rmse)]
        if not scored:
            raise DivergenceError(
                "every configuration failed: "
                + "; ".join(f"#{r.index + 1}: {r.error}" for r in self.results[:3])
            )
        return min(scored, key=lambda r: (r.mean_rmse, r.index))

    @property
    def best_params(self) -> dict[str, Any]:
        """The full hyperparameters of the best model (base settings + best values)."""
        return {**self.base_params, **self.best.params}

    @property
    def best_rmse(self) -> float:
        return self.best.mean_rmse

    def ranked(self) -> list[ConfigResult]:
        """Configurations best first (failed ones last)."""
        return sorted(
            self.results,
            key=lambda r: (not math.isfinite(r.mean_rmse), r.mean_rmse, r.index),
        )

    def to_frame(self):
        """A DataFrame: one row per configuration (its values, mean/std RMSE, fit s)."""
        import pandas as pd

        rows = [
            {
                "config": r.index + 1,
                **r.params,
                "mean_rmse": r.mean_rmse,
                "std_rmse": r.std_rmse,
                "fit_seconds": r.fit_seconds,
                "error": r.error,
            }
            for r in self.results
        ]
        return pd.DataFrame(rows)

    def table(self, limit: int | None = None) -> str:
        """A text table, best first: rank, configuration number, the searched values,
        mean and standard deviation of the validation RMSE over folds, fit seconds."""
        names = list(dict.fromkeys(k for r in self.results for k in r.params))
        shown = self.ranked()[:limit] if limit else self.ranked()
        cells = [[_show(r.params.get(n)) for n in names] for r in shown]
        widths = [max(len(n), *(len(c[j]) for c in cells)) for j, n in enumerate(names)]
        head = f"{'rank':>4} {'#':>4}  " + "  ".join(
            f"{n:>{w}}" for n, w in zip(names, widths, strict=True)
        )
        lines = [head + f"  {'RMSE':>8} {'± std':>8} {'fit s':>7}"]
        for rank, (r, row) in enumerate(zip(shown, cells, strict=True), 1):
            values = "  ".join(f"{c:>{w}}" for c, w in zip(row, widths, strict=True))
            if r.error:
                score = f"  failed: {r.error}"
            else:
                score = f"  {r.mean_rmse:>8.4f} {r.std_rmse:>8.4f} {r.fit_seconds:>7.2f}"
            lines.append(f"{rank:>4} {r.index + 1:>4}  {values}{score}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "method": self.method,
            "n_folds": self.n_folds,
            "seconds": self.seconds,
            "base_params": self.base_params,
            "best_params": self.best_params,
            "best_rmse": self.best_rmse,
            "best_config": self.best.index + 1,
            "results": [r.to_dict() for r in self.results],
        }


def _show(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


# -- running -------------------------------------------------------------------------------
@contextlib.contextmanager
def thread_limits(n_threads: int | None) -> Iterator[None]:
    """numba and BLAS pools both limited to ``n_threads`` inside the block (None:
    leave them as they are)."""
    if n_threads is None:
        yield
        return
    from mfrec._threads import blas_threads, numba_threads

    with numba_threads(n_threads), blas_threads(n_threads):
        yield


def configure(model: Any, params: Mapping[str, Any], n_threads: int | None) -> Recommender:
    """A fresh model: ``model``'s hyperparameters with ``params`` applied, and -- for a
    model with an ``n_threads`` hyperparameter left at None -- ``n_threads``."""
    cls = _model_class(model)
    base = model.get_params() if isinstance(model, Recommender) else {}
    settings = {**base, **params}
    if (
        n_threads is not None
        and "n_threads" in cls._param_names()
        and settings.get("n_threads") is None
    ):
        settings["n_threads"] = n_threads
    fresh = cls(**settings)
    fresh._validate_params()
    return fresh


FoldCallback = Callable[[int, int, dict[str, Any]], Any]
ConfigCallback = Callable[[ConfigResult], Any]


def search(
    model: Any,
    configurations: Sequence[Mapping[str, Any]],
    ratings: Ratings,
    *,
    folds: int = 5,
    random_state: RandomState = 0,
    n_threads: int | None = None,
    method: str = "grid",
    on_fold: FoldCallback | None = None,
    on_config: ConfigCallback | None = None,
    callback: Callable[[dict[str, Any]], Any] | None = None,
) -> SearchResult:
    """Cross-validate each configuration on ``ratings`` and pick the best.

    Parameters
    ----------
    model : Recommender, class or CLI name
        The base model: its hyperparameters apply wherever a configuration is silent.
    configurations : sequence of dict
        Hyperparameter values to try (e.g. from :func:`grid_configurations`).
    ratings : Ratings
        The data to search on -- the training part only; nothing else is seen.
    folds : int, default 5
        K of the K-fold cross-validation (the same folds for every configuration).
    random_state : None, int or numpy Generator
        Seeds the folds and, when the base model's ``random_state`` is None, the model
        seed shared by all configurations.
    n_threads : int, optional
        Threads each fit may use (numba and BLAS); configurations and folds run one
        after another, so the machine is never oversubscribed. None: the defaults.
    method : str
        Recorded in the result (``"grid"`` or ``"random"``).
    on_fold : callable, optional
        ``on_fold(config_index, fold_index, fold_result)`` after each fit.
    callback : callable, optional
        Passed to every ``fit``: called with each epoch's record (progress inside a fit).
    on_config : callable, optional
        ``on_config(ConfigResult)`` after each configuration.

    Returns
    -------
    SearchResult
    """
    from mfrec.data.split import kfold
    from mfrec.evaluation.validate import evaluate_fold

    cls = _model_class(model)
    if not isinstance(ratings, Ratings):
        raise ParameterError(f"search expects mfrec Ratings, got {type(ratings).__name__}")
    if not configurations:
        raise ParameterError("no configurations to search")
    rng = check_random_state(random_state)
    fold_seed, model_seed = (int(s) for s in rng.integers(0, 2**31 - 1, size=2))
    base = model.get_params() if isinstance(model, Recommender) else cls.param_defaults()
    if "random_state" in base and base["random_state"] is None:
        base["random_state"] = model_seed
    # Build (and so validate) every model before the first fit.
    models = [configure(cls(**base), config, n_threads) for config in configurations]
    splits = kfold(ratings, folds, random_state=fold_seed)
    started = time.perf_counter()
    results: list[ConfigResult] = []
    with thread_limits(n_threads):
        for index, (config, candidate) in enumerate(zip(configurations, models, strict=True)):
            result = ConfigResult(index, dict(config))
            seconds = []
            for j, fold in enumerate(splits):
                try:
                    scored = evaluate_fold(candidate, fold, ("rmse",), callback=callback)
                except DivergenceError as exc:
                    result.error = str(exc)
                    logger.info("configuration %d failed: %s", index + 1, exc)
                    break
                result.fold_rmse.append(float(scored["rmse"]))
                seconds.append(float(scored["fit_seconds"]))
                if on_fold is not None:
                    on_fold(index, j, scored)
            result.fit_seconds = float(np.mean(seconds)) if seconds else math.nan
            results.append(result)
            logger.info("search %d/%d %s -> %.4f", index + 1, len(models), config, result.mean_rmse)
            if on_config is not None:
                on_config(result)
    return SearchResult(
        model=cls.__name__,
        method=method,
        base_params=base,
        results=results,
        n_folds=folds,
        seconds=time.perf_counter() - started,
    )


def grid_search(
    model: Any, grid: Mapping[str, Sequence[Any]] | str, ratings: Ratings, **kwargs: Any
) -> SearchResult:
    """Search every combination of ``grid`` (a dict or a :data:`GRID_SYNTAX` string);
    see :func:`search` for the other arguments."""
    if isinstance(grid, str):
        grid = parse_grid(grid, model)
    else:
        _check_space_names(model, grid)
    return search(model, grid_configurations(grid), ratings, method="grid", **kwargs)


def random_search(
    model: Any,
    space: Mapping[str, Any] | str,
    ratings: Ratings,
    *,
    n_iter: int = 20,
    random_state: RandomState = 0,
    **kwargs: Any,
) -> SearchResult:
    """Search ``n_iter`` configurations drawn from ``space`` (a dict of distributions or
    lists, or a :data:`RANDOM_SYNTAX` string). The draws and the folds both follow
    ``random_state`` (``mfrec tune --random ... --seed S`` is ``random_state=S``); see
    :func:`search` for the other arguments."""
    if isinstance(space, str):
        space = parse_space(space, model)
    else:
        _check_space_names(model, space)
    configs = random_configurations(space, n_iter, random_state)
    return search(model, configs, ratings, random_state=random_state, method="random", **kwargs)


def _check_space_names(model: Any, space: Mapping[str, Any]) -> None:
    cls = _model_class(model)
    for name in space:
        _rule(cls, name, "Search only its hyperparameters.")
