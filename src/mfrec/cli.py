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
        params = _parse_params(cls, pairs)
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


def _model_options(func):
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
@_data_options
@click.option("--json", "json_output", is_flag=True, help="Print one JSON object (folds, mean).")
def evaluate(
    data, model_name, params, seed, split_spec, sep, columns, scale, duplicates, json_output
) -> None:
    """Cross-validate a model: per-fold and mean RMSE, MAE and fit seconds."""
    from mfrec.data.split import parse_split
    from mfrec.evaluation.validate import cross_validate

    enabled = _progress_enabled(json_output)
    model = _build_model(model_name, params, seed)
    ratings = _load_data(data, sep, columns, scale, duplicates, enabled)
    with _user_errors():
        try:
            folds = parse_split(split_spec, ratings, random_state=seed if seed is not None else 0)
        except ValueError as exc:
            raise CliError(str(exc)) from None
        with _bar(len(folds), f"{model_name} folds", enabled, unit="fold") as bar:

            def on_fold(result: dict[str, Any]) -> None:
                bar.update(1)
                if enabled:
                    bar.write(
                        f"  {result['fold']}: RMSE {result['rmse']:.4f}  MAE {result['mae']:.4f}  "
                        f"fit {result['fit_seconds']:.2f}s"
                    )

            report = cross_validate(model, folds, on_fold=on_fold)
    report = {
        "data": str(ratings.name or data),
        "model": model_name,
        "params": model.get_params(),
        "split": split_spec,
        **report,
    }
    if json_output:
        _echo_json(report)
        return
    click.echo(f"{model!r} on {ratings!r}, split {split_spec}")
    click.echo(f"{'fold':<10}{'RMSE':>9}{'MAE':>9}{'fit s':>9}{'test':>9}")
    for r in report["folds"]:
        click.echo(
            f"{r['fold']:<10}{r['rmse']:>9.4f}{r['mae']:>9.4f}{r['fit_seconds']:>9.2f}{r['n_test']:>9,}"
        )
    m = report["mean"]
    click.echo(f"{'mean':<10}{m['rmse']:>9.4f}{m['mae']:>9.4f}{m['fit_seconds']:>9.2f}")


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
@click.option(
    "--user", "user_ids", multiple=True, required=True, help="User id; repeat for several."
)
@click.option("-n", "n", type=click.IntRange(min=1), default=10, show_default=True)
@click.option(
    "--include-seen", is_flag=True, help="Also recommend items the user rated in training."
)
@click.option("--json", "json_output", is_flag=True, help="Print JSON.")
def recommend(model_file, user_ids, n, include_seen, json_output) -> None:
    """Top-N recommendations from a saved model (titles shown when known)."""
    import warnings

    import mfrec
    from mfrec.exceptions import UnknownIdWarning

    with _user_errors():
        model = mfrec.load(model_file)
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


@main.command()
@click.option(
    "--model", "model_name", default="biased-mf", show_default=True, help="Model to demonstrate."
)
@click.option(
    "--param", "params", multiple=True, metavar="NAME=VALUE", help="A model hyperparameter."
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--out-dir",
    type=click.Path(file_okay=False),
    default="mfrec-demo",
    show_default=True,
    help="Folder for the plots.",
)
def demo(model_name, params, seed, out_dir) -> None:
    """The main job, end to end: train on ML-100K (or synthetic data), compare with
    baselines, recommend, and plot."""
    import warnings

    from mfrec.data.movielens import dataset_status, load_dataset
    from mfrec.data.split import ml100k_official, user_holdout
    from mfrec.evaluation.metrics import error_distribution, mae, rmse
    from mfrec.exceptions import UnknownIdWarning
    from mfrec.models import BiasBaseline, GlobalMean
    from mfrec.plots import plot_error_histogram, plot_history

    enabled = _progress_enabled(False)
    model = _build_model(model_name, params, seed)
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
