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
from mfrec.cli import predict as _predict
from mfrec.cli import recommend as _recommend
from mfrec.cli import serve as _serve
from mfrec.cli import spark as _spark
from mfrec.cli import train as _train
from mfrec.cli._common import (
    CliError,
    _check_env_threads,
    _show_compile_progress,
    _user_message,
)


class _Main(click.Group):
    """The command group, and the one error boundary of the CLI: an error a user can fix
    (bad file, bad data, bad parameter, any OSError) is one line on stderr and exit
    status 1; a usage error exit status 2; anything else (a bug) one line asking for
    ``-vv``, which shows the traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except KeyboardInterrupt:
            raise click.Abort() from None
        except Exception as exc:
            verbose = ctx.params.get("verbose") or 0
            message = _user_message(exc)
            if message is not None:
                if verbose >= 2:
                    logging.getLogger("mfrec").debug("traceback", exc_info=True)
                raise CliError(message) from None
            if verbose >= 2:
                raise
            raise CliError(
                f"unexpected {type(exc).__name__}: {exc} -- this is a bug in mfrec; rerun "
                "with -vv for the traceback and report it"
            ) from None


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="mfrec")
@click.option("-v", "--verbose", count=True, help="Log more (-v info, -vv debug).")
def main(verbose: int) -> None:
    """mfrec: collaborative filtering by matrix factorization.

    Train rating-prediction models on MovieLens or your own ratings, evaluate them on
    fair splits, and recommend top-N items. Start with `mfrec demo`.

    Every command takes --threads N (or set MFREC_THREADS=N) to cap the threads it uses.
    """
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(
        level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    _check_env_threads()
    if sys.stderr.isatty() and not verbose:
        _show_compile_progress()


for _command in (
    _info.models,
    _info.datasets,
    _evaluate.evaluate,
    _evaluate.tune,
    _train.train,
    _train.update,
    _recommend.recommend,
    _recommend.similar,
    _predict.predict,
    _demo.demo,
    _serve.serve,
    _serve.retrain,
    _spark.spark,
):
    main.add_command(_command)

__all__ = ["CliError", "main"]
