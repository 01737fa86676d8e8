"""The ``mfrec`` command: parses arguments, calls the library, prints.

Thin by design: every computation lives in the library. Heavy imports happen inside
the commands, so ``mfrec --help`` starts instantly. Progress bars go to stderr and only
when it is a terminal; ``--json`` prints one JSON object on stdout and nothing else.

One module per command group; the options and plumbing they share live in
:mod:`mfrec.cli._common`.
"""

from __future__ import annotations

import logging
import sys

import click

from mfrec.cli import demo as _demo
from mfrec.cli import evaluate as _evaluate
from mfrec.cli import info as _info
from mfrec.cli import recommend as _recommend
from mfrec.cli import spark as _spark
from mfrec.cli import train as _train
from mfrec.cli._common import CliError


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


for _command in (
    _info.models,
    _info.datasets,
    _evaluate.evaluate,
    _evaluate.tune,
    _train.train,
    _train.update,
    _recommend.recommend,
    _recommend.similar,
    _demo.demo,
    _spark.spark,
):
    main.add_command(_command)

__all__ = ["CliError", "main"]
