"""`mfrec spark train` and `mfrec spark recommend`: ALS and top-N for every user on a
Spark cluster (the ``spark`` extra). pyspark is imported only when a command runs."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import click

from mfrec.cli._common import (
    CliError,
    _echo_json,
    _parse_params,
    _threads_option,
    _user_errors,
)

_MODELS = {"als": "ALS", "implicit-als": "ImplicitALS"}


@contextlib.contextmanager
def _spark_errors() -> Iterator[None]:
    """Missing pyspark or Java, and Spark's analysis errors, as clean CLI errors."""
    try:
        with _user_errors():
            yield
    except ImportError as exc:
        raise CliError(str(exc)) from None
    except RuntimeError as exc:
        if "Java" in str(exc) or "JAVA_HOME" in str(exc):
            raise CliError(str(exc)) from None
        raise
    except Exception as exc:
        if type(exc).__name__ in ("AnalysisException", "PySparkException"):
            raise CliError(str(exc).splitlines()[0]) from None
        raise


def _session(master: str, conf: tuple[str, ...]) -> Any:
    from mfrec.spark._session import start_session

    settings = {}
    for pair in conf:
        if "=" not in pair:
            raise CliError(f"--conf expects KEY=VALUE, got {pair!r}")
        key, value = pair.split("=", 1)
        settings[key.strip()] = value.strip()
    return start_session(master, "mfrec", settings)


def _read(spark: Any, path: str, fmt: str, sep: str, header: bool, columns: list[str]) -> Any:
    """A ratings DataFrame from Parquet or CSV on any Hadoop-compatible file system."""
    if fmt == "auto":
        lowered = path.rstrip("/").lower()
        fmt = "csv" if lowered.endswith((".csv", ".tsv", ".txt", ".csv.gz")) else "parquet"
    if fmt == "parquet":
        return spark.read.parquet(path)
    df = spark.read.csv(path, header=header, inferSchema=True, sep=sep)
    if not header:
        if len(df.columns) < 3:
            raise CliError(f"{path}: expected at least 3 columns (user, item, rating)")
        df = df.toDF(*columns, *df.columns[len(columns) :])
    return df


def _common(func):
    options = [
        click.option("--master", default="local[2]", show_default=True, help="Spark master URL."),
        click.option(
            "--conf", multiple=True, metavar="KEY=VALUE", help="A Spark setting (repeatable)."
        ),
        click.option("--json", "json_output", is_flag=True, help="Print a JSON summary."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _data(func):
    options = [
        click.option(
            "--format",
            "fmt",
            type=click.Choice(["auto", "parquet", "csv"]),
            default="auto",
            show_default=True,
            help="Input format (auto: by extension, Parquet otherwise).",
        ),
        click.option("--sep", default=",", show_default=True, help="CSV field separator."),
        click.option(
            "--header/--no-header", default=True, show_default=True, help="CSV has a header."
        ),
        click.option(
            "--columns",
            default="user,item,rating",
            show_default=True,
            help="The user, item and rating column names.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _columns(text: str) -> list[str]:
    names = [c.strip() for c in text.split(",")]
    if len(names) != 3 or not all(names):
        raise CliError(f"--columns expects three names user,item,rating, got {text!r}")
    return names


@click.group("spark")
@_threads_option
def spark() -> None:
    """Train and recommend on Spark (pip install "mfrec[spark]"; Java 17+).

    The model file written by `spark train` is an ordinary .mfrec model: `mfrec
    recommend`, `mfrec serve` and fold-in work on it.
    """


@spark.command("train")
@click.argument("path")
@click.option(
    "--model",
    "model_name",
    type=click.Choice(sorted(_MODELS)),
    default="als",
    show_default=True,
    help="als (explicit, biased) or implicit-als.",
)
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE", help="A hyperparameter.")
@click.option("--seed", type=int, default=None, help="random_state.")
@click.option("--num-blocks", type=int, default=None, help="Blocks per side (default: cores).")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False))
@_data
@_common
@_threads_option
def train(
    path, model_name, params, seed, num_blocks, out_path, fmt, sep, header, columns, master, conf,
    json_output,
) -> None:  # fmt: skip
    """Fit ALS on the ratings at PATH (Parquet or CSV, any Hadoop-compatible file
    system: file://, hdfs://, s3a://, ...) on Spark and save an .mfrec model to --out."""
    from mfrec import models

    names = _columns(columns)
    cls = getattr(models, _MODELS[model_name])
    parsed = _parse_params(cls, params)
    with _spark_errors():
        from mfrec.spark import fit_als

        session = _session(master, conf)
        df = _read(session, path, fmt, sep, header, names)
        model = fit_als(
            df,
            user=names[0],
            item=names[1],
            rating=names[2],
            implicit=model_name == "implicit-als",
            num_blocks=num_blocks,
            random_state=seed if seed is not None else parsed.pop("random_state", None),
            **{k: v for k, v in parsed.items() if k != "random_state"},
        )
        model.save(out_path)
    summary = {
        "model": model_name,
        "params": model.get_params(),
        "n_users": len(model.users_),
        "n_items": len(model.items_),
        "num_blocks": model.spark_blocks_,
        "fit_seconds": model.fit_seconds_,
        "train_rmse": model.history_[-1].get("train_rmse") if model.history_ else None,
        "out": str(out_path),
    }
    if json_output:
        _echo_json(summary)
    else:
        click.echo(
            f"trained {model!r} on {summary['n_users']:,} users x {summary['n_items']:,} items "
            f"({summary['num_blocks']} blocks) in {model.fit_seconds_:.1f}s; saved to {out_path}"
        )


@spark.command("recommend")
@click.argument("model_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", "out_path", required=True, help="Parquet output (a directory).")
@click.option(
    "--ratings",
    "ratings_path",
    default=None,
    help="Recommend for the known users in these ratings and exclude their items too "
    "(default: every user, excluding the training ratings).",
)
@click.option("-n", "--n", "n", type=int, default=10, show_default=True, help="Items per user.")
@click.option("--include-seen", is_flag=True, help="Do not exclude already rated items.")
@click.option("--overwrite", is_flag=True, help="Replace --out if it exists.")
@_data
@_common
@_threads_option
def recommend(
    model_file, out_path, ratings_path, n, include_seen, overwrite, fmt, sep, header, columns,
    master, conf, json_output,
) -> None:  # fmt: skip
    """Write the top-N items of every user of MODEL_FILE to Parquet, computed on Spark:
    columns user, rank, item, score -- the lists `mfrec recommend` gives, exactly."""
    import os
    import time

    import mfrec

    names = _columns(columns)
    if n < 1:
        raise CliError(f"-n must be a positive int, got {n}")
    if os.path.exists(out_path) and not overwrite:
        raise CliError(f"{out_path} exists; pass --overwrite to replace it")
    with _spark_errors():
        from mfrec.spark import recommend_all

        model = mfrec.load(model_file)
        session = _session(master, conf)
        users = None
        if ratings_path is not None:
            users = _with_ratings(
                model, _read(session, ratings_path, fmt, sep, header, names), names
            )
        started = time.perf_counter()
        frame = recommend_all(model, session, n, exclude_seen=not include_seen, users=users)
        frame.write.mode("overwrite" if overwrite else "errorifexists").parquet(out_path)
        seconds = time.perf_counter() - started
    n_users = len(model.users_) if users is None else len(users)
    summary = {"users": n_users, "n": n, "seconds": seconds, "out": str(out_path)}
    if json_output:
        _echo_json(summary)
    else:
        click.echo(f"wrote top-{n} lists of {n_users:,} users in {seconds:.1f}s to {out_path}")


def _with_ratings(model: Any, df: Any, names: list[str]) -> Any:
    """The known users of ``df``; their items in ``df`` join the model's seen items."""
    import numpy as np
    import scipy.sparse as sp

    from mfrec.spark._session import check_columns

    check_columns(df, {"user": names[0], "item": names[1]})
    pairs = df.select(names[0], names[1]).distinct().toPandas()
    u = model.users_.lookup(pairs[names[0]].to_numpy())
    i = model.items_.lookup(pairs[names[1]].to_numpy())
    keep = (u >= 0) & (i >= 0)
    if not (u >= 0).any():
        raise CliError("none of the users in --ratings is known to the model")
    extra = sp.csr_matrix(
        (np.ones(int(keep.sum()), dtype=np.float32), (u[keep], i[keep])),
        shape=model._seen.shape,
    )
    seen = (model._seen + extra).tocsr()
    seen.sort_indices()
    model._seen = seen
    return model.users_.take(np.unique(u[u >= 0]))
