"""`mfrec demo`: the main job end to end."""

from __future__ import annotations

from pathlib import Path

import click

from mfrec._defaults import DEFAULT_MODEL
from mfrec.cli._common import (
    CliError,
    _build_model,
    _echo_entries,
    _entries,
    _fit_progress,
    _pairs,
    _progress_enabled,
    _score_note,
    _show,
    _threads_option,
    _user_errors,
)


@click.command()
@click.option(
    "--model", "model_name", default=DEFAULT_MODEL, show_default=True, help="Model to demonstrate."
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
@_threads_option
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
                    with _fit_progress(model, enabled, f"training {model_name}") as (callback, _):
                        candidate.fit(fold.train, validation=fold.test, callback=callback)
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
    _echo_entries(_entries(model, recs.item_ids, recs.scores))
    note = _score_note(model, recs.scores)
    if note:
        click.echo(f"  note: {note}")

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
