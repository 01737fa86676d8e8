"""`mfrec train` and `mfrec update`: fit a model, or update its users, and save it."""

from __future__ import annotations

import click

from mfrec.cli._common import (
    CliError,
    _build_model,
    _data_options,
    _echo_json,
    _fit_progress,
    _load_data,
    _model_options,
    _progress_enabled,
    _threads_option,
    _user_errors,
)


@click.command()
@click.argument("data")
@_model_options
@click.option(
    "--out", "out_path", required=True, type=click.Path(dir_okay=False), help="Model file to write."
)
@_data_options
@_threads_option
@click.option("--json", "json_output", is_flag=True, help="Print a JSON summary.")
def train(
    data, model_name, params, seed, out_path, sep, columns, scale, duplicates, json_output
) -> None:
    """Fit a model on all of DATA and save it to --out."""
    enabled = _progress_enabled(json_output)
    model = _build_model(model_name, params, seed)
    ratings = _load_data(data, sep, columns, scale, duplicates, enabled)
    with _user_errors():
        with _fit_progress(model, enabled, f"training {model_name}") as (callback, _):
            model.fit(ratings, callback=callback)
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


@click.command()
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
@_threads_option
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
