"""Fixtures of the service tests: models on disk, stores, a PostgreSQL server.

PostgreSQL tests use ``MFREC_TEST_POSTGRES`` (a libpq URL, trust auth). Each test session
works in a schema of its own (``mfrec_test_<pid>_<random>``), dropped at the end, so
parallel runs never collide. Under ``CI=true`` a missing server is a failure.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the service tests need the serve extra: mfrec[serve]")

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
PG_URL = os.environ.get("MFREC_TEST_POSTGRES")

warnings.filterwarnings("ignore", message=".*httpx2.*")


def _unavailable(message: str) -> None:
    if IN_CI:
        pytest.fail(message + " -- PostgreSQL tests are required when CI=true")
    pytest.skip(message)


@pytest.fixture(scope="session")
def pg_url() -> str:
    """A reachable PostgreSQL URL (skips, or fails under CI, without one)."""
    if not PG_URL:
        _unavailable("MFREC_TEST_POSTGRES is not set (e.g. postgresql://postgres@127.0.0.1/test)")
    import psycopg

    try:
        psycopg.connect(PG_URL, connect_timeout=3).close()
    except psycopg.Error as exc:
        _unavailable(f"PostgreSQL at MFREC_TEST_POSTGRES is unreachable: {exc}")
    return PG_URL


@pytest.fixture(scope="session")
def pg_schema_prefix(pg_url):
    """A schema-name prefix unique to this session; every schema with it is dropped after."""
    import psycopg

    prefix = f"mfrec_test_{os.getpid()}_{secrets.token_hex(3)}"
    yield prefix
    with psycopg.connect(pg_url, autocommit=True) as conn:
        names = conn.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE %s", (prefix + "%",)
        ).fetchall()
        for (name,) in names:
            conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


_counter = iter(range(10**9))


@pytest.fixture
def pg_store_url(pg_url, pg_schema_prefix) -> str:
    """A fresh PostgreSQL store URL (its own schema) for one test."""
    sep = "&" if "?" in pg_url else "?"
    return f"{pg_url}{sep}schema={pg_schema_prefix}_{next(_counter)}"


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path) -> str:
    """Each store kind in turn: the same tests run against both."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'feedback.sqlite'}"
    return request.getfixturevalue("pg_store_url")


def titled(model):
    """Give a model titles with markup in them, to check that pages escape them."""
    ids = model.items_.ids
    model.item_titles_ = np.array(
        [f"Item {i} <b>bold</b> & <script>x()</script>" for i in ids], dtype=object
    )
    return model


@pytest.fixture(scope="session")
def small_model_path(tmp_path_factory) -> Path:
    """A BiasedMF on generated ratings (300 users x 120 items), with markup titles."""
    from mfrec.data.synthetic import make_ratings
    from mfrec.models import BiasedMF

    data = make_ratings(300, 120, density=0.1, random_state=0)
    model = BiasedMF(n_factors=8, n_epochs=15, random_state=0).fit(data.ratings)
    path = tmp_path_factory.mktemp("small") / "small.mfrec"
    titled(model).save(path)
    return path


@pytest.fixture(scope="session")
def ml100k_model_path(ml100k_dir, tmp_path_factory) -> Path:
    """A BiasedMF on all of ML-100K (titles from u.item)."""
    import mfrec
    from mfrec.models import BiasedMF

    ratings = mfrec.load_dataset("ml-100k", download=False)
    model = BiasedMF(n_factors=20, n_epochs=15, random_state=0).fit(ratings)
    path = tmp_path_factory.mktemp("ml100k") / "ml100k.mfrec"
    model.save(path)
    return path


@pytest.fixture
def tcp_proxy():
    """Factory of :class:`TcpProxy` objects, all closed after the test."""
    made = []

    def make(target: tuple[str, int]) -> TcpProxy:
        made.append(TcpProxy(target))
        return made[-1]

    yield make
    for proxy in made:
        proxy.close()


class TcpProxy:
    """A loopback TCP proxy to ``target`` that a test can cut (every connection dropped,
    new ones refused) and restore -- an outage of a shared server without touching it."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self.restore()

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        if self._listener is not None:
            # shutdown wakes the thread blocked in accept(); close alone would not, and
            # the kernel would keep accepting on its behalf
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
        with self._lock:
            conns, self._conns = self._conns, []
        for s in conns:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def close(self) -> None:
        self.cut()
