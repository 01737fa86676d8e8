"""The ``mfrec`` command: parses arguments, calls the library, prints.

Thin by design: every computation lives in the library. Heavy imports happen inside
the commands, so ``mfrec --help`` starts instantly. Progress bars go to stderr and only
when it is a terminal; ``--json`` prints one JSON object on stdout and nothing else.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

logger = logging.getLogger("mfrec")

DATA_HELP = (
    "A dataset name (ml-100k, ml-1m, ml-10m, ml-20m, ml-25m, ml-latest-small, synthetic) "
    "or a ratings file (CSV/TSV/'::'/Parquet; see --sep and --columns)."
)


# -- shared plumbing ------------------------------------------------------------------
class CliError(click.ClickException):
    """An error shown as 'Error: ...' with exit code 1 (no traceback)."""


@contextlib.contextmanager
def _user_errors() -> Iterator[None]:
    """Turn the library's documented errors into clean CLI errors."""
    from mfrec.exceptions import (
        DataError,
        DatasetNotFoundError,
        DivergenceError,
        ModelFileError,
        ParameterError,
    )

    try:
        yield
    except (
        DataError,
        ParameterError,
        ModelFileError,
        DivergenceError,
        DatasetNotFoundError,
    ) as exc:
        raise CliError(str(exc)) from None
    except FileNotFoundError as exc:
        raise CliError(str(exc)) from None
    except KeyError as exc:
        raise CliError(exc.args[0] if exc.args else str(exc)) from None


def _progress_enabled(json_output: bool) -> bool:
    return not json_output and sys.stderr.isatty()


def _bar(total: int | None, desc: str, enabled: bool, unit: str = "it"):
    from tqdm.auto import tqdm

    return tqdm(
        total=total, desc=desc, unit=unit, disable=not enabled, leave=False, file=sys.stderr
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
            columns=columns,
            scale=_parse_scale(scale),
            duplicates=duplicates,
            name=path.name,
        )


def _unescape(sep: str | None) -> str | None:
    return None if sep is None else sep.encode().decode("unicode_escape")


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
        "('_' skips a column).",
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
        default="biased-mf",
        show_default=True,
        help="Model name (see `mfrec models`).",
    )(func)
    return func


# -- commands ---------------------------------------------------------------------------
@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="mfrec")
@click.option("-v", "--verbose", count=True, help="Log more (-v info, -vv debug).")
def main(verbose: int) -> None:
    """mfrec: collaborative filtering by matrix factorization.

    Train rating-prediction models on MovieLens or your own ratings, evaluate them on
    fair splits, and recommend top-N items. Start with `mfrec demo`.
    """
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(
        level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )


@main.command()
@click.option("--json", "json_output", is_flag=True, help="Print JSON.")
def models(json_output: bool) -> None:
    """List the models and their hyperparameters."""
    from mfrec.models import MODELS

    rows = []
    for name, cls in MODELS.items():
        doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        rows.append(
            {"name": name, "class": cls.__name__, "summary": doc, "params": cls.param_defaults()}
        )
    if json_output:
        _echo_json(rows)
        return
    for row in rows:
        click.echo(f"{row['name']:<14} {row['class']:<16} {row['summary']}")
        params = ", ".join(f"{k}={v!r}" for k, v in row["params"].items())
        if params:
            click.echo(f"{'':<14} {params}")


@main.command()
@click.option("--json", "json_output", is_flag=True, help="Print JSON.")
def datasets(json_output: bool) -> None:
    """Known datasets and where each was found."""
    from mfrec.data.movielens import dataset_status

    rows = dataset_status()
    if json_output:
        _echo_json(rows)
        return
    for row in rows:
        where = row.get("path") or "not found locally (downloaded on first use)"
        click.echo(f"{row['name']:<16} {row['description']}")
        click.echo(f"{'':<16} {where}")


@main.command()
@click.argument("data")
@_model_options
@click.option(
    "--split",
    "split_spec",
    default="user-holdout:0.2",
    show_default=True,
    help="u1..u5 | u1..u5 one fold | ua | ub | kfold:K | holdout:F | user-holdout:F | "
    "temporal:F | last:K",
)
@click.option(
    "--metrics",
    "metrics_text",
    default="rmse,mae",
    show_default=True,
    help="Comma-separated: rmse, mae, mse and ranking metrics precision@K, recall@K, "
    "ndcg@K, map@K, hit@K, coverage@K, mrr@K, mrr (full ranking). Ranking ranks every item "
    "the user did not rate in training.",
)
@click.option(
    "--relevance-threshold",
    "relevance_text",
    default=None,
    help="A test rating >= this is relevant for ranking metrics, or 'none' (every test "
    "item). Default: 4, or none with --implicit.",
)
@click.option(
    "--implicit",
    "implicit_threshold",
    type=float,
    default=None,
    metavar="T",
    help="Treat the data as implicit feedback first: ratings >= T become interactions "
    "(strength 1), lower ones are dropped.",
)
@_data_options
@click.option("--json", "json_output", is_flag=True, help="Print one JSON object (folds, mean).")
def evaluate(
    data,
    model_name,
    params,
    seed,
    split_spec,
    metrics_text,
    relevance_text,
    implicit_threshold,
    sep,
    columns,
    scale,
    duplicates,
    json_output,
) -> None:
    """Cross-validate a model: per-fold and mean metrics (RMSE and MAE by default; ranking
    metrics with --metrics) and fit seconds."""
    from mfrec.data.split import parse_split
    from mfrec.evaluation.ranking import parse_metrics
    from mfrec.evaluation.validate import cross_validate

    try:
        specs = parse_metrics(metrics_text)
    except ValueError as exc:
        raise CliError(f"--metrics: {exc}") from None
    threshold = _parse_threshold(relevance_text, implicit_threshold)
    enabled = _progress_enabled(json_output)
    model = _build_model(model_name, params, seed)
    ratings = _load_data(data, sep, columns, scale, duplicates, enabled)
    names = [str(s) for s in specs]
    with _user_errors():
        if implicit_threshold is not None:
            from mfrec.data.implicit import to_implicit

            ratings = to_implicit(ratings, implicit_threshold)
        try:
            folds = parse_split(split_spec, ratings, random_state=seed if seed is not None else 0)
        except ValueError as exc:
            raise CliError(str(exc)) from None
        with _bar(len(folds), f"{model_name} folds", enabled, unit="fold") as bar:

            def on_fold(result: dict[str, Any]) -> None:
                bar.update(1)
                if enabled:
                    shown = "  ".join(f"{n} {_fmt(result[n])}" for n in names)
                    bar.write(f"  {result['fold']}: {shown}  fit {result['fit_seconds']:.2f}s")

            report = cross_validate(
                model, folds, specs, relevance_threshold=threshold, on_fold=on_fold
            )
    report = {
        "data": str(ratings.name or data),
        "model": model_name,
        "params": model.get_params(),
        "split": split_spec,
        "metrics": names,
        **({"relevance_threshold": threshold} if any(s.is_ranking for s in specs) else {}),
        **report,
    }
    if json_output:
        _echo_json(report)
        return
    click.echo(f"{model!r} on {ratings!r}, split {split_spec}")
    widths = [max(9, len(n) + 2) for n in names]
    header = "".join(
        f"{n.upper() if n in ('rmse', 'mae', 'mse') else n:>{w}}"
        for n, w in zip(names, widths, strict=True)
    )
    click.echo(f"{'fold':<10}{header}{'fit s':>9}{'test':>9}")
    for r in report["folds"]:
        cells = "".join(f"{_fmt(r[n]):>{w}}" for n, w in zip(names, widths, strict=True))
        click.echo(f"{r['fold']:<10}{cells}{r['fit_seconds']:>9.2f}{r['n_test']:>9,}")
    m = report["mean"]
    cells = "".join(f"{_fmt(m[n]):>{w}}" for n, w in zip(names, widths, strict=True))
    click.echo(f"{'mean':<10}{cells}{m['fit_seconds']:>9.2f}")
    if "users" in report:
        u = report["users"]
        rule = "every test item" if threshold is None else f"test rating >= {threshold:g}"
        click.echo(
            f"ranking: {u['n_users_evaluated']:,} user-folds evaluated, "
            f"{u['n_users_no_relevant']:,} excluded (no relevant item: {rule}); training "
            "items excluded from the candidates"
        )


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


@main.command()
@click.argument("data")
@_model_options
@click.option(
    "--out", "out_path", required=True, type=click.Path(dir_okay=False), help="Model file to write."
)
@_data_options
@click.option("--json", "json_output", is_flag=True, help="Print a JSON summary.")
def train(
    data, model_name, params, seed, out_path, sep, columns, scale, duplicates, json_output
) -> None:
    """Fit a model on all of DATA and save it to --out."""
    enabled = _progress_enabled(json_output)
    model = _build_model(model_name, params, seed)
    ratings = _load_data(data, sep, columns, scale, duplicates, enabled)
    with _user_errors():
        with _bar(
            getattr(model, "n_epochs", None), f"training {model_name}", enabled, unit="epoch"
        ) as bar:
            model.fit(ratings, callback=_epoch_callback(bar))
        model.save(out_path)
    summary = {
        "model": model_name,
        "params": model.get_params(),
        "data": str(ratings.name or data),
        "n_ratings": len(ratings),
        "n_users": ratings.n_users,
        "n_items": ratings.n_items,
        "fit_seconds": model.fit_seconds_,
        "out": str(out_path),
    }
    if json_output:
        _echo_json(summary)
    else:
        click.echo(
            f"trained {model!r} on {ratings!r} in {model.fit_seconds_:.2f}s; saved to {out_path}"
        )


@main.command()
@click.argument("model_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--user", "user_ids", multiple=True, help="User id; repeat for several.")
@click.option(
    "--all-users", is_flag=True, help="Every user of the model, streamed to --out in blocks."
)
@click.option(
    "--ratings",
    "ratings_path",
    type=click.Path(exists=True, dir_okay=False),
    help="A new user's ratings (file with item,rating columns): recommend for them by "
    "fold-in, without retraining (items the model does not know are ignored).",
)
@click.option("-n", "n", type=click.IntRange(min=1), default=10, show_default=True)
@click.option(
    "--include-seen", is_flag=True, help="Also recommend items the user rated in training."
)
@click.option(
    "--out",
    "out_path",
    type=click.Path(dir_okay=False),
    help="Write (user, rank, item, score) rows to this .parquet/.csv/.tsv file.",
)
@click.option(
    "--block-size",
    type=click.IntRange(min=1),
    default=None,
    help="Users scored at once (memory ~ block size x items x 4 bytes; default 64 MiB).",
)
@click.option("--json", "json_output", is_flag=True, help="Print JSON.")
def recommend(
    model_file,
    user_ids,
    all_users,
    ratings_path,
    n,
    include_seen,
    out_path,
    block_size,
    json_output,
) -> None:
    """Top-N recommendations from a saved model (titles shown when known).

    Give users with --user, or --all-users --out recs.parquet for everyone (memory stays
    bounded by --block-size whatever the number of users), or a new user's ratings with
    --ratings FILE.
    """
    import warnings

    import mfrec
    from mfrec.exceptions import UnknownIdWarning

    if ratings_path is not None:
        if user_ids or all_users or out_path:
            raise CliError("--ratings recommends for one new user: drop --user/--all-users/--out")
        _recommend_for_file(model_file, ratings_path, n, include_seen, json_output)
        return
    if bool(user_ids) == all_users:
        raise CliError("give --user ID (one or more) or --all-users, not both and not neither")
    if out_path is None and all_users:
        raise CliError("--all-users writes a file: add --out recs.parquet (or .csv/.tsv)")
    with _user_errors():
        model = mfrec.load(model_file)
        if out_path is not None:
            _write_all(model, out_path, n, None if all_users else model.users_.parse(user_ids),
                       not include_seen, block_size, json_output)  # fmt: skip
            return
        users = model.users_.parse(user_ids)
        unknown = [
            str(u) for u, idx in zip(users, model.users_.lookup(users), strict=True) if idx < 0
        ]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UnknownIdWarning)
            recs = model.recommend(users, n=n, exclude_seen=not include_seen)
    titles = model.item_titles_
    result = []
    for row, user in enumerate(users):
        items = []
        for item, score in zip(recs.item_ids[row], recs.scores[row], strict=True):
            if not math.isfinite(float(score)):
                continue
            entry = {"item": item.item() if hasattr(item, "item") else item, "score": float(score)}
            if titles is not None:
                entry["title"] = titles[model.items_.lookup([item])[0]]
            items.append(entry)
        result.append(
            {
                "user": user.item() if hasattr(user, "item") else user,
                "known": str(user) not in unknown,
                "items": items,
            }
        )
    if json_output:
        _echo_json(result)
        return
    for entry in result:
        note = "" if entry["known"] else "  (unknown user: ranked by global mean + item bias)"
        click.echo(f"user {entry['user']}{note}")
        for rank, item in enumerate(entry["items"], 1):
            title = f"  {item['title']}" if "title" in item else ""
            click.echo(f"  {rank:>3}. {item['item']!s:<10} {item['score']:.3f}{title}")


def _read_user_ratings(path: str, model: Any) -> tuple[Any, Any]:
    """(items, ratings) of a one-user file: two columns item,rating, header optional."""
    import pandas as pd

    try:
        frame = pd.read_csv(path, sep=None, engine="python", header=None, dtype=str)
    except (ValueError, pd.errors.ParserError) as exc:
        raise CliError(f"{path}: cannot read it as item,rating rows ({exc})") from None
    if frame.shape[1] < 2:
        raise CliError(f"{path}: expected two columns, item and rating (e.g. 50,5)")
    values = pd.to_numeric(frame[1].str.strip(), errors="coerce")
    first_line = 1
    if len(frame) and pd.isna(values.iloc[0]):  # a header line
        frame, values, first_line = frame.iloc[1:], values.iloc[1:], 2
    bad = values.isna().to_numpy()
    if bad.any():
        row = int(bad.argmax())
        raise CliError(
            f"{path} line {first_line + row}: rating {frame[1].iloc[row]!r} is not a number"
        )
    items = model.items_.parse(frame[0].str.strip().tolist())
    return items, values.to_numpy(dtype=float)


def _recommend_for_file(model_file, ratings_path, n, include_seen, json_output) -> None:
    import warnings

    import mfrec
    from mfrec.exceptions import UnknownIdWarning

    with _user_errors():
        model = mfrec.load(model_file)
        items, values = _read_user_ratings(ratings_path, model)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UnknownIdWarning)
            try:
                recs = model.recommend_for_ratings(
                    (items, values), n=n, exclude_rated=not include_seen
                )
            except NotImplementedError as exc:
                raise CliError(str(exc)) from None
    ignored = [str(w.message) for w in caught if issubclass(w.category, UnknownIdWarning)]
    entries = _entries(model, recs.item_ids, recs.scores)
    if json_output:
        _echo_json({"ratings": len(values), "notes": ignored, "items": entries})
        return
    click.echo(f"new user with {len(values)} ratings (folded in, not stored)")
    for note in ignored:
        click.echo(f"  note: {note}")
    _echo_entries(entries)


def _entries(model: Any, item_ids: Any, scores: Any) -> list[dict[str, Any]]:
    titles = model.item_titles_
    out = []
    for item, score in zip(item_ids, scores, strict=True):
        if not math.isfinite(float(score)):
            continue
        entry = {"item": item.item() if hasattr(item, "item") else item, "score": float(score)}
        if titles is not None:
            entry["title"] = titles[model.items_.lookup([item])[0]]
        out.append(entry)
    return out


def _echo_entries(entries: list[dict[str, Any]]) -> None:
    for rank, item in enumerate(entries, 1):
        title = f"  {item['title']}" if "title" in item else ""
        click.echo(f"  {rank:>3}. {item['item']!s:<10} {item['score']:.3f}{title}")


@main.command()
@click.argument("model_file", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--item", "item_ids", multiple=True, required=True, help="Item id; repeat for several."
)
@click.option("-n", "n", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--json", "json_output", is_flag=True, help="Print JSON.")
def similar(model_file, item_ids, n, json_output) -> None:
    """Items most similar to --item: cosine similarity of the item factors (the item itself
    excluded), with titles when known."""
    import mfrec

    with _user_errors():
        model = mfrec.load(model_file)
        items = model.items_.parse(item_ids)
        try:
            recs = model.similar_items(items, n=n)
        except NotImplementedError as exc:
            raise CliError(str(exc)) from None
    titles = model.item_titles_
    result = []
    for row, item in enumerate(items):
        entry: dict[str, Any] = {"item": item.item() if hasattr(item, "item") else item}
        if titles is not None:
            entry["title"] = titles[model.items_.lookup([item])[0]]
        entry["similar"] = _entries(model, recs.item_ids[row], recs.scores[row])
        result.append(entry)
    if json_output:
        _echo_json(result)
        return
    for entry in result:
        title = f"  {entry['title']}" if "title" in entry else ""
        click.echo(f"item {entry['item']}{title}")
        _echo_entries(entry["similar"])


@main.command()
@click.argument("model_file", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--ratings",
    "ratings_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="New ratings (user,item,rating file) of known and new users.",
)
@click.option(
    "--out",
    "out_path",
    type=click.Path(dir_okay=False),
    help="Model file to write (default: overwrite MODEL_FILE).",
)
@_data_options
@click.option("--json", "json_output", is_flag=True, help="Print a JSON summary.")
def update(
    model_file, ratings_path, out_path, sep, columns, scale, duplicates, json_output
) -> None:
    """Update a saved model with new ratings, without retraining (partial_fit): each user
    in the file -- known or new -- gets their factors re-solved from all their ratings,
    the items staying fixed."""
    import time
    import warnings

    import mfrec
    from mfrec.exceptions import UnknownIdWarning

    target = out_path or model_file
    with _user_errors():
        model = mfrec.load(model_file)
        ratings = _load_data(ratings_path, sep, columns, scale, duplicates, False)
        n_before = len(model.users_)
        started = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UnknownIdWarning)
            try:
                model.partial_fit(ratings)
            except NotImplementedError as exc:
                raise CliError(str(exc)) from None
        seconds = time.perf_counter() - started
        model.save(target)
    notes = [str(w.message) for w in caught if issubclass(w.category, UnknownIdWarning)]
    summary = {
        "ratings": len(ratings),
        "users_in_file": ratings.n_users,
        "new_users": len(model.users_) - n_before,
        "seconds": seconds,
        "notes": notes,
        "out": str(target),
    }
    if json_output:
        _echo_json(summary)
        return
    for note in notes:
        click.echo(f"note: {note}")
    click.echo(
        f"updated {summary['users_in_file']:,} users ({summary['new_users']:,} new) from "
        f"{len(ratings):,} ratings in {seconds * 1000:.1f} ms; saved to {target}"
    )


def _write_all(model, out_path, n, users, exclude_seen, block_size, json_output) -> None:
    import time

    from mfrec.export import write_recommendations

    total = len(model.users_) if users is None else len(users)
    started = time.perf_counter()
    with _bar(total, "recommending", _progress_enabled(json_output), unit="user") as bar:
        rows = write_recommendations(
            model, out_path, n, users=users, exclude_seen=exclude_seen, block_size=block_size,
            progress=lambda done: bar.update(done - bar.n),
        )  # fmt: skip
    seconds = time.perf_counter() - started
    summary = {"out": str(out_path), "users": total, "rows": rows, "seconds": seconds}
    if json_output:
        _echo_json(summary)
    else:
        click.echo(
            f"wrote {rows:,} recommendations for {total:,} users to {out_path} in {seconds:.1f}s"
        )


@main.command()
@click.argument("data")
@_model_options
@click.option(
    "--grid",
    "grid_spec",
    metavar="SPEC",
    help="Grid search: NAME=V1,V2;NAME=... (every combination), e.g. "
    "'n_factors=50,100;reg=0.02,0.05'.",
)
@click.option(
    "--random",
    "random_spec",
    metavar="SPEC",
    help="Random search: NAME=DIST;... with int(a,b), logint(a,b), uniform(a,b), "
    "loguniform(a,b), choice(v1,v2,...) or a fixed value, e.g. "
    "'n_factors=int(10,200);lr=loguniform(1e-3,1e-1)'.",
)
@click.option(
    "--n-iter", type=click.IntRange(min=1), default=20, show_default=True, help="Random draws."
)
@click.option(
    "--folds",
    type=click.IntRange(min=2),
    default=5,
    show_default=True,
    help="K of the K-fold cross-validation on the searched data.",
)
@click.option(
    "--split",
    "split_spec",
    default=None,
    help="Hold out a test part first (one train/test split: u1, holdout:0.2, temporal:0.1, "
    "...): the search sees only its training part; the best model is then refitted on it "
    "and its test RMSE reported once. Without --split the search uses all of DATA.",
)
@click.option(
    "--threads",
    "n_threads",
    type=click.IntRange(min=1),
    default=None,
    help="Threads per fit (numba and BLAS); configurations run one after another. "
    "Default: all cores.",
)
@click.option(
    "--out",
    "out_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Refit the best configuration (on all of DATA, or on the --split training part) "
    "and save it here.",
)
@_data_options
@click.option("--json", "json_output", is_flag=True, help="Print one JSON object.")
def tune(
    data,
    model_name,
    params,
    seed,
    grid_spec,
    random_spec,
    n_iter,
    folds,
    split_spec,
    n_threads,
    out_path,
    sep,
    columns,
    scale,
    duplicates,
    json_output,
) -> None:
    """Search hyperparameters by K-fold cross-validated RMSE; print every configuration
    and the best, optionally refit and save it.

    Selection uses validation folds of the training data only; with --split the held-out
    test RMSE of the refitted best model is reported once and never used to choose."""
    import warnings

    from mfrec.data.split import parse_split
    from mfrec.evaluation.metrics import rmse
    from mfrec.evaluation.search import (
        configure,
        grid_configurations,
        parse_grid,
        parse_space,
        random_configurations,
        search,
        thread_limits,
    )
    from mfrec.exceptions import UnknownIdWarning

    if (grid_spec is None) == (random_spec is None):
        raise CliError("give exactly one of --grid SPEC or --random SPEC")
    enabled = _progress_enabled(json_output)
    base = _build_model(model_name, params, seed)
    seed_value = 0 if seed is None else seed
    with _user_errors():
        if grid_spec is not None:
            configs, method = grid_configurations(parse_grid(grid_spec, base)), "grid"
        else:
            space = parse_space(random_spec, base)
            configs, method = random_configurations(space, n_iter, seed_value), "random"
    ratings = _load_data(data, sep, columns, scale, duplicates, enabled)
    with _user_errors():
        test = None
        searched = ratings
        if split_spec is not None:
            try:
                parts = parse_split(split_spec, ratings, random_state=seed_value)
            except ValueError as exc:
                raise CliError(str(exc)) from None
            if len(parts) != 1:
                raise CliError(
                    f"--split {split_spec} gives {len(parts)} folds; tune holds out one test "
                    "part (e.g. u1, holdout:0.2, temporal:0.1) and cross-validates with --folds"
                )
            searched, test = parts[0].train, parts[0].test
        total = len(configs) * folds
        with _bar(total, f"tuning {model_name}", enabled, unit="fit") as bar:

            def on_fold(index: int, fold: int, _result: dict[str, Any]) -> None:
                bar.set_description(f"config {index + 1}/{len(configs)}")
                bar.update(1)

            def on_config(result) -> None:
                if enabled:
                    shown = " ".join(f"{k}={_show(v)}" for k, v in result.params.items())
                    score = (
                        f"failed ({result.error})"
                        if result.error
                        else f"RMSE {result.mean_rmse:.4f} ± {result.std_rmse:.4f}"
                    )
                    bar.write(f"  #{result.index + 1} {shown}: {score}")

            result = search(
                base,
                configs,
                searched,
                folds=folds,
                random_state=seed_value,
                n_threads=n_threads,
                method=method,
                on_fold=on_fold,
                on_config=on_config,
            )
        best = result.best_params
        report: dict[str, Any] = {
            "data": str(ratings.name or data),
            "model": model_name,
            "search": {"method": method, "spec": grid_spec or random_spec, "folds": folds},
            "searched_ratings": len(searched),
            "split": split_spec,
            **result.to_dict(),
        }
        refit = None
        if test is not None or out_path is not None:
            refit = configure(type(base)(**best), {}, n_threads)
            with thread_limits(n_threads):
                refit.fit(searched)
            report["refit"] = {"n_ratings": len(searched), "fit_seconds": refit.fit_seconds_}
        if test is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UnknownIdWarning)
                predicted = refit.predict_ratings(test, clip=True)
            report["test_rmse"] = rmse(test.rating, predicted)
            report["n_test"] = len(test)
        if out_path is not None:
            refit.save(out_path)
            report["out"] = str(out_path)
    if json_output:
        _echo_json(report)
        return
    where = f"the training part of {split_spec}" if split_spec else "all of the data"
    click.echo(
        f"{method} search of {type(base).__name__} on {where} ({len(searched):,} ratings of "
        f"{ratings!r}), {folds}-fold CV, {len(configs)} configurations, "
        f"{result.seconds:.1f}s"
    )
    click.echo(result.table())
    chosen = result.best
    click.echo(
        f"\nbest (#{chosen.index + 1}, mean validation RMSE {chosen.mean_rmse:.4f} ± "
        f"{chosen.std_rmse:.4f}):"
    )
    changed = {k: v for k, v in best.items() if k in chosen.params or k in dict(_pairs(params))}
    preset_name = click.get_current_context().meta.get("mfrec_preset")
    flags = [f"--preset {preset_name}"] if preset_name else []
    flags += [f"--param {k}={_show(v)}" for k, v in changed.items()]
    click.echo("  " + " ".join(flags))
    if test is not None:
        click.echo(
            f"held-out test RMSE of the best model refitted on the training part: "
            f"{report['test_rmse']:.4f} ({len(test):,} ratings; reported once, not used for "
            "selection)"
        )
    if out_path is not None:
        click.echo(f"saved the refitted best model to {out_path}")


def _pairs(params: tuple[str, ...]) -> list[tuple[str, str]]:
    return [
        (k.strip().replace("-", "_"), v) for k, v in (p.split("=", 1) for p in params if "=" in p)
    ]


def _show(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


@main.command()
@click.option(
    "--model", "model_name", default="biased-mf", show_default=True, help="Model to demonstrate."
)
@click.option(
    "--param", "params", multiple=True, metavar="NAME=VALUE", help="A model hyperparameter."
)
@click.option(
    "--preset",
    "preset_name",
    default="ml-100k",
    show_default=True,
    help="Tuned hyperparameters to start from (tuned on u1.base only, so u1.test stays "
    "clean; the synthetic data is ML-100K-shaped); 'none' for the model's defaults. "
    "Ignored for a model without that preset.",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--out-dir",
    type=click.Path(file_okay=False),
    default="mfrec-demo",
    show_default=True,
    help="Folder for the plots.",
)
def demo(model_name, params, preset_name, seed, out_dir) -> None:
    """The main job, end to end: train on ML-100K (or synthetic data), compare with
    baselines, recommend, and plot."""
    import warnings

    from mfrec.data.movielens import dataset_status, load_dataset
    from mfrec.data.split import ml100k_official, user_holdout
    from mfrec.evaluation.metrics import error_distribution, mae, rmse
    from mfrec.exceptions import UnknownIdWarning
    from mfrec.models import BiasBaseline, GlobalMean
    from mfrec.models.presets import PRESETS, preset, preset_names
    from mfrec.plots import plot_error_histogram, plot_history

    enabled = _progress_enabled(False)
    model = _build_model(model_name, params, seed)
    known = sorted({name for _, name in PRESETS})
    if preset_name != "none" and preset_name not in known:
        raise CliError(f"no preset {preset_name!r}; presets: {', '.join(known)}, or none")
    settings = "defaults"
    if preset_name != "none" and preset_name in preset_names(model_name):
        given = {name for name, _ in _pairs(params)}
        tuned = {k: v for k, v in preset(model_name, preset_name).items() if k not in given}
        model.set_params(**tuned)
        settings = f"preset {preset_name}: " + ", ".join(
            f"{k}={_show(v)}" for k, v in tuned.items()
        )
    local = {row["name"]: row.get("path") for row in dataset_status()}
    with _user_errors():
        if local.get("ml-100k"):
            ratings = load_dataset("ml-100k", download=False)
            fold = ml100k_official(ratings, "u1")
            click.echo(
                f"Data: MovieLens 100K from {local['ml-100k']} -- official split u1 "
                f"({len(fold.train):,} train / {len(fold.test):,} test ratings)"
            )
        else:
            ratings = load_dataset("synthetic")
            fold = user_holdout(ratings, 0.2, random_state=seed)
            click.echo(
                "Data: ML-100K is not available locally (set MFREC_DATA_DIR to a folder holding "
                "ml-100k/, or run `mfrec datasets`), so this demo uses mfrec's embedded synthetic "
                f"ratings -- {len(fold.train):,} train / {len(fold.test):,} test"
            )
        click.echo(f"Model: {model_name} ({settings})")
        click.echo("")
        rows = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UnknownIdWarning)
            for label, candidate in (
                ("global mean", GlobalMean()),
                ("bias only", BiasBaseline()),
                (model_name, model),
            ):
                if candidate is model:
                    with _bar(
                        getattr(model, "n_epochs", None), f"training {model_name}", enabled, "epoch"
                    ) as bar:
                        candidate.fit(
                            fold.train, validation=fold.test, callback=_epoch_callback(bar)
                        )
                else:
                    candidate.fit(fold.train)
                predicted = candidate.predict_ratings(fold.test, clip=True)
                rows.append(
                    (
                        label,
                        rmse(fold.test.rating, predicted),
                        mae(fold.test.rating, predicted),
                        candidate.fit_seconds_,
                    )
                )
    click.echo(f"{'model':<14}{'test RMSE':>11}{'MAE':>9}{'fit s':>9}")
    for label, r, a, s in rows:
        click.echo(f"{label:<14}{r:>11.4f}{a:>9.4f}{s:>9.2f}")
    dist = error_distribution(fold.test.rating, predicted, step=1.0, scale=model.rating_scale_)
    shares = "  ".join(f"{int(e)}: {share:.1%}" for e, share in dist.items())
    click.echo(f"\n|error| of rounded {model_name} predictions -- {shares}")

    user = model.users_.ids[0]
    recs = model.recommend(user, n=10)
    click.echo(f"\nTop 10 for user {user} (items they rated in training excluded):")
    titles = model.item_titles_
    for rank, (item, score) in enumerate(zip(recs.item_ids, recs.scores, strict=True), 1):
        title = titles[model.items_.lookup([item])[0]] if titles is not None else ""
        click.echo(f"  {rank:>2}. {score:5.2f}  {item!s:<6} {title}")

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    if model.history_:
        path = out / "history.png"
        plot_history(
            model.history_,
            path,
            title=f"{model_name} on {ratings.name}",
            val_label="test RMSE (monitoring only)",
        )
        written.append(path)
    path = out / "errors.png"
    plot_error_histogram(fold.test.rating, predicted, path, title=f"{model_name}: test errors")
    written.append(path)
    click.echo("\nWrote " + ", ".join(str(p) for p in written))


if __name__ == "__main__":  # pragma: no cover
    main()
