"""`mfrec serve` and `mfrec retrain`: the HTTP service and its scheduled refit."""

from __future__ import annotations

import inspect
import ipaddress
import os
from pathlib import Path

import click

from mfrec.cli._common import CliError, _echo_json, _threads_option, _user_errors


def _need_serve_extra() -> None:
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        raise CliError('mfrec serve needs the serve extra: pip install "mfrec[serve]"') from None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _read_key(path: str | None) -> str | None:
    if path is None:
        return None
    key = Path(path).read_text(encoding="utf-8").strip()
    if len(key) < 16:
        raise CliError(f"{path}: the API key must be at least 16 characters (got {len(key)})")
    return key


def _open_store(model: str, store: str | None):
    from mfrec.serve.store import StoreError, default_store_url, open_store

    try:
        return open_store(store or default_store_url(model))
    except StoreError as exc:
        raise CliError(str(exc)) from None


@click.command()
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--store",
    default=None,
    help="sqlite:///PATH or postgresql://USER@HOST/DB[?schema=NAME]; "
    "default: MODEL.feedback.sqlite beside the model.",
)
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64))
@click.option(
    "--api-key-file",
    type=click.Path(exists=True, dir_okay=False),
    help="File holding the key that /feedback and /admin/* require (needed off loopback).",
)
@click.option("--log-level", default="info", show_default=True)
@_threads_option
def serve(model, host, port, store, workers, api_key_file, log_level) -> None:
    """Serve MODEL over HTTP: recommendations, fold-in, feedback, a try-it page at /.

    SIGHUP (or POST /admin/reload) reloads the model file without dropping a request.
    """
    _need_serve_extra()
    import uvicorn

    from mfrec.serve.app import CONFIG_ENV, ServeConfig, config_to_env, create_app
    from mfrec.serve.store import default_store_url

    key = _read_key(api_key_file)
    if key is None and not _is_loopback(host):
        raise CliError(
            f"refusing to listen on {host} without an API key: anyone who can reach it could "
            "write feedback and reload models; pass --api-key-file (or keep --host 127.0.0.1)"
        )
    config = ServeConfig(
        model_path=str(Path(model).resolve()),
        store_url=store or default_store_url(Path(model).resolve()),
        api_key_file=str(Path(api_key_file).resolve()) if api_key_file else None,
    )
    if workers == 1:
        with _user_errors():
            try:
                app = create_app(config)
            except Exception as exc:  # a model or store that cannot serve: say so, no traceback
                raise CliError(f"cannot serve {model}: {exc}") from None
        uvicorn.run(app, host=host, port=port, log_level=log_level)
        return
    from mfrec.serve.workers import METRICS_ENV, make_run_dir, remove_run_dir

    _open_store(model, config.store_url).close()  # schema created once, errors shown here
    # the workers' shared run folder: multiprocess metrics and the served model's name
    run = make_run_dir()
    config.run_dir = str(run)
    os.environ[CONFIG_ENV] = config_to_env(config)
    os.environ[METRICS_ENV] = str(run / "metrics")
    try:
        uvicorn.run(
            "mfrec.serve.app:create_app_from_env",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level=log_level,
            **_worker_timeout(uvicorn.Config),
        )
    finally:
        remove_run_dir(run)


# A worker loads the model file and warms its kernels before it answers uvicorn's
# supervisor; on a busy machine that takes longer than uvicorn's default 5 s, and the
# supervisor then kills the new worker (a SIGHUP restart is aborted) or a live one it
# pinged while it was busy. One minute is still short enough to replace a hung worker.
WORKER_HEALTHCHECK_SECONDS = 60


def _worker_timeout(config_class) -> dict[str, int]:
    """``timeout_worker_healthcheck`` for the uvicorn versions that have it."""
    if "timeout_worker_healthcheck" in inspect.signature(config_class).parameters:
        return {"timeout_worker_healthcheck": WORKER_HEALTHCHECK_SECONDS}
    return {}


@click.command()
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@click.option("--store", default=None, help="The feedback store (as for `mfrec serve`).")
@click.option(
    "--out", "out_path", required=True, type=click.Path(dir_okay=False), help="Model file to write."
)
@click.option("--json", "json_output", is_flag=True, help="Print a JSON summary.")
@_threads_option
def retrain(model, store, out_path, json_output) -> None:
    """Refit MODEL's model on its training ratings plus the stored feedback; write --out
    atomically (then POST /admin/reload or send SIGHUP to serve it)."""
    from mfrec.serve.retrain import retrain as run

    feedback = _open_store(model, store)
    try:
        with _user_errors():
            summary = run(model, feedback, out_path)
    finally:
        feedback.close()
    if json_output:
        _echo_json(summary)
    else:
        click.echo(
            f"retrained {summary['model']} on {summary['training_ratings']:,} training ratings "
            f"+ {summary['feedback_rows']:,} feedback rows ({summary['new_users']} new users, "
            f"{summary['new_items']} new items) in {summary['fit_seconds']:.2f}s; "
            f"saved to {out_path}"
        )
