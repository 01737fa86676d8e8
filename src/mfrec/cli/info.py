"""`mfrec models` and `mfrec datasets`: what mfrec offers and what it found."""

from __future__ import annotations

import click

from mfrec.cli._common import _echo_json, _threads_option


@click.command()
@_threads_option
@click.option("--json", "json_output", is_flag=True, help="Print JSON.")
def models(json_output: bool) -> None:
    """List the models, their hyperparameters (defaults) and their tuned presets
    (--preset NAME)."""
    import shutil
    import textwrap

    from mfrec.models import MODELS
    from mfrec.models.presets import preset, preset_names

    rows = []
    for name, cls in MODELS.items():
        doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        rows.append(
            {
                "name": name,
                "class": cls.__name__,
                "summary": doc.replace("``", ""),
                "params": cls.param_defaults(),
                "presets": {p: preset(name, p) for p in preset_names(name)},
            }
        )
    if json_output:
        _echo_json(rows)
        return
    name_w = max(len("name"), *(len(r["name"]) for r in rows)) + 2
    class_w = max(len("class"), *(len(r["class"]) for r in rows)) + 2
    indent = " " * (name_w + class_w)
    width = max(60, min(shutil.get_terminal_size((100, 24)).columns, 120))
    click.echo(f"{'name':<{name_w}}{'class':<{class_w}}summary")
    for row in rows:
        click.echo(f"{row['name']:<{name_w}}{row['class']:<{class_w}}{row['summary']}")
        params = ", ".join(f"{k}={v!r}" for k, v in row["params"].items())
        lines = [f"params: {params}"] if params else []
        presets = ", ".join(row["presets"]) or "none"
        lines.append(f"presets: {presets}")
        for line in lines:
            click.echo(
                textwrap.fill(
                    line,
                    width=width,
                    initial_indent=indent,
                    subsequent_indent=indent + "  ",
                    break_on_hyphens=False,
                )
            )
    click.echo("\nUse a preset with --preset NAME (e.g. mfrec evaluate ml-100k --model svdpp "
               "--preset ml-100k); --param NAME=VALUE overrides one value.")  # fmt: skip


@click.command()
@_threads_option
@click.option("--json", "json_output", is_flag=True, help="Print JSON.")
def datasets(json_output: bool) -> None:
    """Known datasets and where each was found."""
    from mfrec.data.movielens import dataset_status

    rows = dataset_status()
    if json_output:
        _echo_json(rows)
        return
    width = max(len(row["name"]) for row in rows) + 2
    for row in rows:
        where = row.get("path") or "not found locally (downloaded on first use)"
        click.echo(f"{row['name']:<{width}}{row['description']}")
        click.echo(f"{'':<{width}}{where}")
