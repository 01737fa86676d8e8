"""`mfrec models` and `mfrec datasets`: what mfrec offers and what it found."""

from __future__ import annotations

import click

from mfrec.cli._common import (
    _echo_json,
)


@click.command()
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


@click.command()
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
