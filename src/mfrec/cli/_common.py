"""Shared plumbing of the ``mfrec`` commands: options, data and model loading, errors,
progress bars and output."""

from __future__ import annotations

import ast
import contextlib
import json
import logging
import math
import os
import re
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from mfrec._defaults import DEFAULT_MODEL

logger = logging.getLogger("mfrec")

DATA_HELP = (
    "A dataset name (ml-100k, ml-1m, ml-10m, ml-20m, ml-25m, ml-latest-small, synthetic) "
    "or a ratings file (CSV/TSV/'::'/Parquet; see --sep and --columns)."
)


class CliError(click.ClickException):
    """An error shown as 'Error: ...' with exit code 1 (no traceback)."""


@contextlib.contextmanager
def _user_errors() -> Iterator[None]:
    """Turn the library's documented errors, and every OSError, into one-line CLI errors
    (exit status 1); ``-vv`` logs the traceback too."""
    try:
        yield
    except click.ClickException:
        raise
    except Exception as exc:
        message = _user_message(exc)
        if message is None:
            raise
        logger.debug("traceback of the error below", exc_info=True)
        raise CliError(message) from None


def _user_message(exc: BaseException) -> str | None:
    """The one-line message for an error a user can fix; None for anything else (a bug)."""
    if isinstance(exc, OSError):
        return _os_message(exc)
    if _from_mfrec(exc):
        return _cli_advice(str(exc))
    if isinstance(exc, KeyError):
        return str(exc.args[0]) if exc.args else str(exc)
    if isinstance(exc, MemoryError):
        return "out of memory; try a smaller --block-size, fewer factors or a smaller data set"
    return None


def _from_mfrec(exc: BaseException) -> bool:
    from mfrec.exceptions import DataError, DivergenceError, ModelFileError, ParameterError

    return isinstance(exc, (DataError, ParameterError, ModelFileError, DivergenceError))


def _os_message(exc: OSError) -> str:
    """``OSError`` as 'cannot <do it> FILE: reason; fix'."""
    import errno

    from mfrec.exceptions import DatasetNotFoundError

    if isinstance(exc, DatasetNotFoundError) or not exc.filename:
        return str(exc)
    name = exc.filename
    reason = exc.strerror or str(exc)
    fixes = {
        errno.EACCES: "check its permissions, or choose another path",
        errno.EPERM: "check its permissions, or choose another path",
        errno.ENOENT: "check the path",
        errno.EISDIR: "give a file, not a folder",
        errno.ENOTDIR: "a part of the path is a file, not a folder",
        errno.ENOSPC: "free some disk space, or write elsewhere",
        errno.EROFS: "write to a writable place",
    }
    fix = fixes.get(exc.errno or 0, "check the path")
    return f"{name}: {reason}; {fix}"


class _CompileNotes(logging.Handler):
    """Prints the library's first-run compile notes (:mod:`mfrec._compile`) above any
    progress bar."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm.auto import tqdm

        tqdm.write(f"mfrec: {record.getMessage()}", file=sys.stderr)


def _show_compile_progress() -> None:
    """On a terminal, say when kernels are being compiled once, and which."""
    notes = logging.getLogger("mfrec.compile")
    if not any(isinstance(h, _CompileNotes) for h in notes.handlers):
        notes.addHandler(_CompileNotes(logging.INFO))
    notes.setLevel(logging.INFO)
    notes.propagate = False


# The library's errors advise Python keywords (``header=False``, ``sep=``,
# ``duplicates='last'``, ``columns='user,item,rating'``); on the command line each
# becomes its flag here, in one place, so that no library message needs to know the CLI.
_KEYWORD_ADVICE = re.compile(
    r"(?<![\w.-])(header|sep|columns|duplicates|scale)="
    r"(\{[^{}]*\}|'[^']*'|\"[^\"]*\"|\([^()]*\)|True|False|None)?"
)


def _cli_advice(message: str) -> str:
    """``message`` with every Python keyword the CLI has a flag for written as that flag."""
    return _KEYWORD_ADVICE.sub(_as_flag, message)


def _as_flag(match: re.Match[str]) -> str:
    name, text = match.group(1), match.group(2)
    if name == "header":
        return {"True": "--header", "False": "--no-header"}.get(text or "", "--header/--no-header")
    flag = f"--{name}"
    if not text:
        return flag
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return f"{flag} {text}"
    if name == "sep":
        return f"{flag} {text}"  # the Python literal reads as the shell argument: ',' '\t'
    if isinstance(value, dict):
        value = ",".join(f"{role}={column}" for role, column in value.items())
    elif isinstance(value, tuple | list):
        value = ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)
    return f"{flag} {shlex.quote(str(value))}"


def _progress_enabled(json_output: bool) -> bool:
    return not json_output and sys.stderr.isatty()


def _bar(total: int | None, desc: str, enabled: bool, unit: str = "it", position: int = 0):
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        disable=not enabled,
        leave=False,
        file=sys.stderr,
        position=position,
    )


def _parse_params(model_cls: type, pairs: tuple[str, ...]) -> dict[str, Any]:
    from mfrec.exceptions import ParameterError

    names = model_cls._param_names()
    params: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise CliError(f"--param expects NAME=VALUE, got {pair!r}")
        key, text = (s.strip() for s in pair.split("=", 1))
        key = key.replace("-", "_")
        if key not in names:
            raise CliError(
                f"{model_cls.__name__} has no parameter {key!r}; it has: {', '.join(names)}"
            )
        rule = model_cls._constraints.get(key)
        try:
            params[key] = rule.parse(text) if rule is not None else _guess(text)
        except ParameterError as exc:
            raise CliError(f"--param {key}: {exc}") from None
    return params


def _guess(text: str) -> Any:
    for cast in (int, float):
        with contextlib.suppress(ValueError):
            return cast(text)
    return text


def _build_model(name: str, pairs: tuple[str, ...], seed: int | None):
    from mfrec.models import get_model_class

    with _user_errors():
        cls = get_model_class(name)
        params = {**_preset_params(cls), **_parse_params(cls, pairs)}
        if (
            seed is not None
            and "random_state" in cls._param_names()
            and "random_state" not in params
        ):
            params["random_state"] = seed
        model = cls(**params)
        model._validate_params()
    return model


def _load_data(
    data: str,
    sep: str | None,
    columns: str | None,
    scale: str | None,
    duplicates: str,
    enabled: bool,
):
    from mfrec.data.movielens import DATASETS, load_dataset

    with _user_errors():
        if data in DATASETS or data == "synthetic":
            if sep or columns:
                raise CliError("--sep and --columns apply to files, not to named datasets")
            with _bar(None, f"downloading {data}", enabled, unit="B") as bar:

                def progress(done: int, total: int | None) -> None:
                    bar.total = total
                    bar.n = done
                    bar.refresh()

                return (
                    load_dataset(data, progress=progress)
                    if data != "synthetic"
                    else load_dataset(data)
                )
        path = Path(data)
        if not path.exists():
            known = ", ".join([*DATASETS, "synthetic"])
            raise CliError(f"{data!r} is neither a known dataset ({known}) nor an existing file")
        from mfrec.data.readers import read_ratings

        return read_ratings(
            path,
            sep=_unescape(sep),
            columns=_parse_columns(columns),
            header=_header_choice(),
            scale=_parse_scale(scale),
            duplicates=duplicates,
            name=path.name,
        )


def _parse_columns(columns: str | None) -> str | dict[str, str] | None:
    """--columns: roles in order (``user,item,rating,_``) or header names by role
    (``user=userId,item=movieId,rating=rating``)."""
    if columns is None or "=" not in columns:
        return columns
    named: dict[str, str] = {}
    for part in columns.split(","):
        role, _, column = part.partition("=")
        if not role.strip() or not column.strip():
            raise CliError(
                f"--columns expects ROLE=HEADER_NAME pairs (e.g. user=userId,item=movieId,"
                f"rating=rating) or roles in order (e.g. user,item,rating,_), got {columns!r}"
            )
        named[role.strip()] = column.strip()
    return named


def _remember_header(ctx: click.Context, _param: click.Parameter, value: bool | None) -> None:
    ctx.meta["mfrec_header"] = value


def _header_choice() -> bool | str:
    """The command's --header/--no-header, or "infer" when neither was given."""
    ctx = click.get_current_context(silent=True)
    value = ctx.meta.get("mfrec_header") if ctx is not None else None
    return "infer" if value is None else value


def _unescape(sep: str | None) -> str | None:
    if sep is None:
        return None
    try:
        return sep.encode().decode("unicode_escape")
    except UnicodeDecodeError:
        raise CliError(
            f"--sep {sep!r} is not a valid separator; give it as is (e.g. --sep ';') or "
            "escaped (e.g. --sep '\\t')"
        ) from None


def _parse_scale(scale: str | None) -> tuple[float, float] | None:
    if scale is None:
        return None
    try:
        low, high = (float(v) for v in scale.replace(":", ",").split(","))
    except ValueError:
        raise CliError(f"--scale expects LOW,HIGH (e.g. 1,5), got {scale!r}") from None
    return low, high


def _epoch_callback(bar):
    def callback(record: dict[str, Any]) -> None:
        bar.update(1)
        shown = {k: f"{record[k]:.4f}" for k in ("train_rmse", "val_rmse") if k in record}
        bar.set_postfix(shown, refresh=False)

    return callback


def _echo_json(payload: Any) -> None:
    click.echo(json.dumps(payload, indent=2, default=_json_default))


def _json_default(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _data_options(func):
    func = click.option(
        "--header/--no-header",
        default=None,
        expose_value=False,
        callback=_remember_header,
        help="Whether the file's first line is a header (default: detected -- it is when "
        "its rating field is not a number).",
    )(func)
    func = click.option(
        "--duplicates",
        type=click.Choice(["error", "last", "mean"]),
        default="error",
        show_default=True,
        help="What to do with repeated (user, item) pairs in a file.",
    )(func)
    func = click.option("--scale", help="Declared rating scale of a file, LOW,HIGH (e.g. 1,5).")(
        func
    )
    func = click.option(
        "--columns",
        help="Role of each file column in order, e.g. user,item,rating,timestamp "
        "('_' skips a column), or header names by role, e.g. "
        "user=userId,item=movieId,rating=rating.",
    )(func)
    func = click.option(
        "--sep", help="Field separator of a file (default: detected), e.g. ',' '\\t' '::'."
    )(func)
    return func


def _remember_preset(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    ctx.meta["mfrec_preset"] = value


def _preset_params(cls: type) -> dict[str, Any]:
    """The hyperparameters of the command's --preset for ``cls`` (none without one)."""
    from mfrec.models.presets import preset

    ctx = click.get_current_context(silent=True)
    name = ctx.meta.get("mfrec_preset") if ctx is not None else None
    return {} if name is None else preset(cls.name, name)


def _model_options(func):
    func = click.option(
        "--preset",
        metavar="NAME",
        expose_value=False,
        callback=_remember_preset,
        help="Tuned hyperparameters for the model, e.g. ml-100k (see mfrec.models.presets); "
        "--param values override them.",
    )(func)
    func = click.option(
        "--seed", type=int, default=None, help="Random seed (sets the model's random_state)."
    )(func)
    func = click.option(
        "--param",
        "params",
        multiple=True,
        metavar="NAME=VALUE",
        help="A model hyperparameter; repeat for several.",
    )(func)
    func = click.option(
        "--model",
        "model_name",
        default=DEFAULT_MODEL,
        show_default=True,
        help="Model name (see `mfrec models`).",
    )(func)
    return func


def _fmt(value: Any) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _parse_threshold(text: str | None, implicit_threshold: float | None) -> float | None:
    if text is None:
        return None if implicit_threshold is not None else 4.0
    if text.strip().lower() in {"none", "all"}:
        return None
    try:
        return float(text)
    except ValueError:
        raise CliError(f"--relevance-threshold expects a number or 'none', got {text!r}") from None


def _entries(model: Any, item_ids: Any, scores: Any, ratings: bool = True) -> list[dict[str, Any]]:
    """JSON-ready top-N rows: the raw ``score`` (what ranks), and with ``ratings`` for a
    model that predicts ratings also ``rating``, the score clipped to the rating scale."""
    titles = model.item_titles_
    with_rating = ratings and getattr(model, "predicts_ratings", True)
    out = []
    for item, score in zip(item_ids, scores, strict=True):
        if not math.isfinite(float(score)):
            continue
        entry = {"item": item.item() if hasattr(item, "item") else item, "score": float(score)}
        if with_rating:
            entry["rating"] = _clipped(model, float(score))
        if titles is not None:
            entry["title"] = titles[model.items_.lookup([item])[0]]
        out.append(entry)
    return out


def _echo_entries(entries: list[dict[str, Any]], label: str = "score") -> None:
    """Rank, item, score (named by ``label``) and title, under a header line."""
    if not entries:
        click.echo("  (nothing to recommend)")
        return
    width = max(10, *(len(str(e["item"])) for e in entries))
    title = "  title" if any("title" in e for e in entries) else ""
    click.echo(f"  {'rank':>4}  {'item':<{width}} {label:>8}{title}")
    for rank, item in enumerate(entries, 1):
        shown = f"  {item['title']}" if "title" in item else ""
        click.echo(f"  {rank:>4}  {item['item']!s:<{width}} {item['score']:>8.3f}{shown}")


def _pairs(params: tuple[str, ...]) -> list[tuple[str, str]]:
    return [
        (k.strip().replace("-", "_"), v) for k, v in (p.split("=", 1) for p in params if "=" in p)
    ]


def _show(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


# -- threads --------------------------------------------------------------------------
def _set_threads(ctx: click.Context, _param: click.Parameter, value: int | None) -> int | None:
    """--threads N caps the threads of the command: it sets MFREC_THREADS, which the
    library reads wherever a model's n_threads is None, until the command ends."""
    if value is not None:
        from mfrec._threads import ENV_THREADS

        previous = os.environ.get(ENV_THREADS)
        os.environ[ENV_THREADS] = str(value)

        def restore() -> None:  # for callers that run commands in-process (tests)
            if previous is None:
                os.environ.pop(ENV_THREADS, None)
            else:
                os.environ[ENV_THREADS] = previous

        ctx.call_on_close(restore)
    return value


THREADS_HELP = (
    "Threads for numba's kernels (sets MFREC_THREADS for this run; a model's n_threads "
    "param wins). Default: MFREC_THREADS, else every core."
)


def _threads_option(func=None, *, expose: bool = False):
    """The --threads option every command has (``expose``: also pass it as n_threads)."""

    def decorate(f):
        return click.option(
            "--threads",
            "n_threads",
            type=click.IntRange(min=1),
            default=None,
            expose_value=expose,
            is_eager=True,
            callback=_set_threads,
            help=THREADS_HELP,
        )(f)

    return decorate if func is None else decorate(func)


def _check_env_threads() -> None:
    """A bad MFREC_THREADS is refused before any work, with the fix."""
    from mfrec._threads import env_threads
    from mfrec.exceptions import ParameterError

    try:
        env_threads()
    except ParameterError as exc:
        raise CliError(str(exc)) from None


# -- seeds ----------------------------------------------------------------------------
def _resolve_seed(seed: int | None) -> int:
    """``seed``, or a fresh one drawn from the OS when none was given -- printed by the
    command so that the run can be repeated with --seed."""
    if seed is not None:
        return seed
    import secrets

    return secrets.randbelow(2**31 - 1)


# -- progress inside a fit ------------------------------------------------------------
def _n_steps(model: Any) -> int | None:
    """Epochs (or Gibbs sweeps) one fit of ``model`` runs, for a progress bar."""
    if hasattr(model, "n_samples") and hasattr(model, "burn_in"):
        return int(model.burn_in) + int(model.n_samples)
    epochs = getattr(model, "n_epochs", None)
    return int(epochs) if isinstance(epochs, int) else None


def _step_unit(model: Any) -> str:
    return "sample" if hasattr(model, "n_samples") else "epoch"


@contextlib.contextmanager
def _fit_progress(model: Any, enabled: bool, desc: str, position: int = 0):
    """``(callback, bar)``: a bar of the epochs (Gibbs samples for BayesianMF) inside a
    fit and the fit callback that advances it; ``bar.reset()`` starts it again for the
    next fit. Shown only when ``enabled`` (a terminal, no --json) and the model has
    epochs."""
    total = _n_steps(model)
    with _bar(
        total, desc, enabled and total is not None, unit=_step_unit(model), position=position
    ) as bar:
        yield _epoch_callback(bar), bar


# -- scores ---------------------------------------------------------------------------
def _score_note(model: Any, scores: Any) -> str | None:
    """What the printed scores are, when a reader could take them for ratings."""
    if not getattr(model, "predicts_ratings", True):
        return f"scores are {model.name} preference scores (about 0 to 1, for ranking), not ratings"
    low, high = (float(v) for v in model.rating_scale_)
    values = [float(v) for v in scores if math.isfinite(float(v))]
    outside = sum(v > high or v < low for v in values)
    if not outside:
        return None
    return (
        f"scores rank the items: predicted ratings before clipping; {outside} of "
        f"{len(values)} lie outside the rating scale {low:g}..{high:g} (a predicted rating "
        "is clipped to the scale: see 'rating' in --json, or `mfrec predict`)"
    )


def _clipped(model: Any, score: float) -> float:
    low, high = (float(v) for v in model.rating_scale_)
    return min(max(score, low), high)
