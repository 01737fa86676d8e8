"""Feedback stores: an append-only log of (user, item, rating, timestamp) rows.

Two implementations behind one interface, :class:`FeedbackStore`:

* :class:`SQLiteStore` (the default, a file beside the model): WAL journal with
  ``synchronous=FULL``, so a committed transaction is on disk before its writer is told.
* :class:`PostgresStore` (psycopg 3): the schema is created and migrated by mfrec, inside
  a PostgreSQL schema of its own (``?schema=name`` in the URL, default ``mfrec``).

Durability and throughput come from group commit: :meth:`FeedbackStore.submit` hands the
rows of one request to a single writer thread, which writes every request waiting at that
moment in one transaction and commits once; each request's future completes only after
that commit returned. A failed commit fails every request of the batch and writes none of
them (one transaction), so an acknowledged row is durable and an unacknowledged one is
absent -- or, if the connection broke after the server committed, present once (a client
retry then stores it twice, which is harmless: the latest rating of a pair wins).

Ids are stored as text: the canonical string of the raw id (``str(int)`` for integer ids).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

logger = logging.getLogger(__name__)

#: Version of the feedback schema this mfrec writes; stores are migrated up to it.
SCHEMA_VERSION = 1
#: Most rows written in one transaction by the group-commit writer.
MAX_BATCH_ROWS = 20_000


class StoreUnavailable(Exception):
    """The store cannot be reached or refused the write; nothing of the request was stored."""


class StoreError(Exception):
    """The store is unusable as configured (bad URL, newer schema, ...)."""


class Feedback(NamedTuple):
    """One stored rating."""

    user: str
    item: str
    rating: float
    timestamp: int


class FeedbackStore:
    """Append-only feedback log with group commit (see the module docstring)."""

    kind = "abstract"
    #: Reads are local file reads of microseconds (they may run on the event loop).
    local_reads = False

    def __init__(self) -> None:
        self._queue: queue.Queue[tuple[list[Feedback], Future] | None] = queue.Queue()
        self._writer = threading.Thread(target=self._write_loop, name="mfrec-store", daemon=True)
        self._closed = False
        self._writer.start()

    # -- writing --------------------------------------------------------------------
    def submit(self, rows: Sequence[Feedback]) -> Future:
        """Queue ``rows`` for the next commit; the future completes once they are durable
        (result: None) or fails with :class:`StoreUnavailable` (nothing stored)."""
        future: Future = Future()
        if self._closed:
            future.set_exception(StoreUnavailable("the store is closed"))
        elif not rows:
            future.set_result(None)
        else:
            self._queue.put((list(rows), future))
        return future

    def append(self, rows: Sequence[Feedback], timeout: float | None = 60.0) -> None:
        """Store ``rows`` durably (blocking)."""
        self.submit(rows).result(timeout)

    def _write_loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            n_rows = len(first[0])
            stop = False
            while n_rows < MAX_BATCH_ROWS:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                batch.append(more)
                n_rows += len(more[0])
            rows = [row for part, _ in batch for row in part]
            try:
                self._write(rows)
            except Exception as exc:  # every waiter learns; the writer lives on
                error = exc if isinstance(exc, StoreUnavailable) else StoreUnavailable(str(exc))
                logger.warning("feedback write of %d rows failed: %s", len(rows), exc)
                for _, future in batch:
                    future.set_exception(error)
            else:
                for _, future in batch:
                    future.set_result(None)
            if stop:
                return

    def _write(self, rows: list[Feedback]) -> None:
        """Write ``rows`` in one transaction and commit (writer thread only)."""
        raise NotImplementedError

    # -- reading --------------------------------------------------------------------
    def user_feedback(self, user: str) -> list[Feedback]:
        """The user's stored rows, oldest first."""
        raise NotImplementedError

    def versions(self, users: Sequence[str]) -> dict[str, int]:
        """For each of ``users`` with stored feedback, the id of their latest row: a
        version number that changes whenever their history does."""
        raise NotImplementedError

    def iter_all(self, chunk: int = 50_000) -> Iterator[Feedback]:
        """Every stored row, oldest first."""
        raise NotImplementedError

    def count(self) -> int:
        raise NotImplementedError

    def ping(self) -> None:
        """Raise :class:`StoreUnavailable` unless the store answers now."""
        raise NotImplementedError

    def close(self) -> None:
        """Finish queued writes, then release connections."""
        if not self._closed:
            self._closed = True
            self._queue.put(None)
            self._writer.join(timeout=30)


# ---------------------------------------------------------------------------- SQLite
_SQLITE_MIGRATIONS = {
    1: [
        "CREATE TABLE feedback (id INTEGER PRIMARY KEY AUTOINCREMENT, user_id TEXT NOT NULL, "
        "item_id TEXT NOT NULL, rating REAL NOT NULL, ts INTEGER NOT NULL)",
        "CREATE INDEX feedback_user ON feedback (user_id, id)",
    ],
}


class SQLiteStore(FeedbackStore):
    """Feedback in one SQLite file (WAL, ``synchronous=FULL``)."""

    kind = "sqlite"
    local_reads = True

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.parent.is_dir():
            raise StoreError(f"cannot open store {self.path}: folder {self.path.parent} is missing")
        self.url = f"sqlite:///{self.path}"
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        setup = self._connect()
        try:
            self._migrate(setup)
        finally:
            setup.close()
        self._write_conn: sqlite3.Connection | None = None
        super().__init__()

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self.path, timeout=30, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA busy_timeout=30000")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open SQLite store {self.path}: {exc}") from None
        return conn

    def _migrate(self, conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("CREATE TABLE IF NOT EXISTS mfrec_meta (key TEXT PRIMARY KEY, value TEXT)")
            row = conn.execute(
                "SELECT value FROM mfrec_meta WHERE key = 'schema_version'"
            ).fetchone()
            version = int(row[0]) if row else 0
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"store {self.path} has schema version {version}, newer than this mfrec "
                    f"({SCHEMA_VERSION}); upgrade mfrec"
                )
            for step in range(version + 1, SCHEMA_VERSION + 1):
                for statement in _SQLITE_MIGRATIONS[step]:
                    conn.execute(statement)
            conn.execute(
                "INSERT OR REPLACE INTO mfrec_meta VALUES ('schema_version', ?)",
                (str(SCHEMA_VERSION),),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _reader(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            with self._readers_lock:
                self._readers.append(conn)
        return conn

    def _write(self, rows: list[Feedback]) -> None:
        if self._write_conn is None:
            self._write_conn = self._connect()
        conn = self._write_conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(
                "INSERT INTO feedback (user_id, item_id, rating, ts) VALUES (?, ?, ?, ?)", rows
            )
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise StoreUnavailable(f"SQLite store {self.path}: {exc}") from None

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        try:
            return self._reader().execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"SQLite store {self.path}: {exc}") from None

    def user_feedback(self, user: str) -> list[Feedback]:
        rows = self._read(
            "SELECT user_id, item_id, rating, ts FROM feedback WHERE user_id = ? ORDER BY id",
            (user,),
        )
        return [Feedback(*row) for row in rows]

    def versions(self, users: Sequence[str]) -> dict[str, int]:
        out: dict[str, int] = {}
        users = list(dict.fromkeys(users))
        for start in range(0, len(users), 500):
            part = users[start : start + 500]
            marks = ",".join("?" * len(part))
            for user, version in self._read(
                f"SELECT user_id, max(id) FROM feedback WHERE user_id IN ({marks}) "
                "GROUP BY user_id",
                part,
            ):
                out[user] = int(version)
        return out

    def iter_all(self, chunk: int = 50_000) -> Iterator[Feedback]:
        last = 0
        while True:
            rows = self._read(
                "SELECT id, user_id, item_id, rating, ts FROM feedback WHERE id > ? "
                "ORDER BY id LIMIT ?",
                (last, chunk),
            )
            if not rows:
                return
            for row in rows:
                yield Feedback(*row[1:])
            last = rows[-1][0]

    def count(self) -> int:
        return int(self._read("SELECT count(*) FROM feedback")[0][0])

    def ping(self) -> None:
        self._read("SELECT 1")

    def close(self) -> None:
        super().close()
        with self._readers_lock:
            for conn in self._readers:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            self._readers.clear()
        if self._write_conn is not None:
            self._write_conn.close()
            self._write_conn = None


# ------------------------------------------------------------------------ PostgreSQL
def _pg_migrations(schema) -> dict[int, list]:
    from psycopg import sql

    table = sql.Identifier(schema, "feedback")
    return {
        1: [
            sql.SQL(
                "CREATE TABLE {} (id BIGSERIAL PRIMARY KEY, user_id TEXT NOT NULL, "
                "item_id TEXT NOT NULL, rating DOUBLE PRECISION NOT NULL, ts BIGINT NOT NULL)"
            ).format(table),
            sql.SQL("CREATE INDEX {} ON {} (user_id, id)").format(
                sql.Identifier("feedback_user"), table
            ),
        ],
    }


class PostgresStore(FeedbackStore):
    """Feedback in PostgreSQL through psycopg 3, in schema ``schema`` (created and
    migrated here). Broken connections are dropped and reopened on the next use, so
    the store recovers by itself when the server comes back."""

    kind = "postgresql"

    def __init__(self, url: str, schema: str = "mfrec", connect_timeout: float = 3.0) -> None:
        try:
            import psycopg  # noqa: F401
        except ImportError:
            raise StoreError(
                'the PostgreSQL store needs psycopg 3: pip install "mfrec[serve]"'
            ) from None
        if not schema.replace("_", "").isalnum():
            raise StoreError(f"schema must be letters, digits and '_', got {schema!r}")
        self.conninfo = url
        self.schema = schema
        self.connect_timeout = connect_timeout
        parts = urlsplit(url)
        shown = parts.hostname or "localhost"
        self.url = f"postgresql://{shown}:{parts.port or 5432}{parts.path}?schema={schema}"
        self._pool: queue.LifoQueue = queue.LifoQueue()
        self._write_conn = None
        setup = self._connect()
        try:
            self._migrate(setup)
        finally:
            setup.close()
        super().__init__()

    def _connect(self):
        import psycopg

        try:
            return psycopg.connect(
                self.conninfo, autocommit=True, connect_timeout=max(1, int(self.connect_timeout))
            )
        except psycopg.Error as exc:
            raise StoreUnavailable(f"PostgreSQL store {self.url}: {exc}".strip()) from None

    def _migrate(self, conn) -> None:
        from psycopg import sql

        meta = sql.Identifier(self.schema, "mfrec_meta")
        with conn.transaction():
            conn.execute(
                "SELECT pg_advisory_xact_lock(hashtext(%s))", (f"mfrec-schema:{self.schema}",)
            )
            conn.execute(
                sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema))
            )
            conn.execute(
                sql.SQL("CREATE TABLE IF NOT EXISTS {} (key TEXT PRIMARY KEY, value TEXT)").format(
                    meta
                )
            )
            row = conn.execute(
                sql.SQL("SELECT value FROM {} WHERE key = 'schema_version'").format(meta)
            ).fetchone()
            version = int(row[0]) if row else 0
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"store {self.url} has schema version {version}, newer than this mfrec "
                    f"({SCHEMA_VERSION}); upgrade mfrec"
                )
            migrations = _pg_migrations(self.schema)
            for step in range(version + 1, SCHEMA_VERSION + 1):
                for statement in migrations[step]:
                    conn.execute(statement)
            conn.execute(
                sql.SQL(
                    "INSERT INTO {} VALUES ('schema_version', %s) "
                    "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
                ).format(meta),
                (str(SCHEMA_VERSION),),
            )

    def _table(self):
        from psycopg import sql

        return sql.Identifier(self.schema, "feedback")

    def _write(self, rows: list[Feedback]) -> None:
        import psycopg
        from psycopg import sql

        if self._write_conn is None:
            self._write_conn = self._connect()
        conn = self._write_conn
        try:
            with conn.transaction(), conn.cursor() as cur:
                cur.executemany(
                    sql.SQL(
                        "INSERT INTO {} (user_id, item_id, rating, ts) VALUES (%s, %s, %s, %s)"
                    ).format(self._table()),
                    rows,
                )
        except psycopg.Error as exc:
            self._write_conn = None
            with contextlib.suppress(Exception):
                conn.close()
            raise StoreUnavailable(f"PostgreSQL store {self.url}: {exc}".strip()) from None

    @contextlib.contextmanager
    def _borrow(self):
        import psycopg

        try:
            conn = self._pool.get_nowait()
        except queue.Empty:
            conn = self._connect()
        try:
            yield conn
        except psycopg.Error as exc:
            with contextlib.suppress(Exception):
                conn.close()
            self._drain_pool()  # the pooled ones most likely broke the same way
            raise StoreUnavailable(f"PostgreSQL store {self.url}: {exc}".strip()) from None
        else:
            if self._pool.qsize() < 16 and not self._closed:
                self._pool.put(conn)
            else:
                conn.close()

    def _drain_pool(self) -> None:
        while True:
            try:
                conn = self._pool.get_nowait()
            except queue.Empty:
                return
            with contextlib.suppress(Exception):
                conn.close()

    def _read(self, query, params: Sequence[Any] = ()) -> list[tuple]:
        with self._borrow() as conn:
            return conn.execute(query, params).fetchall()

    def user_feedback(self, user: str) -> list[Feedback]:
        from psycopg import sql

        rows = self._read(
            sql.SQL(
                "SELECT user_id, item_id, rating, ts FROM {} WHERE user_id = %s ORDER BY id"
            ).format(self._table()),
            (user,),
        )
        return [Feedback(*row) for row in rows]

    def versions(self, users: Sequence[str]) -> dict[str, int]:
        from psycopg import sql

        users = list(dict.fromkeys(users))
        if not users:
            return {}
        rows = self._read(
            sql.SQL(
                "SELECT user_id, max(id) FROM {} WHERE user_id = ANY(%s) GROUP BY user_id"
            ).format(self._table()),
            (users,),
        )
        return {user: int(version) for user, version in rows}

    def iter_all(self, chunk: int = 50_000) -> Iterator[Feedback]:
        from psycopg import sql

        last = 0
        while True:
            rows = self._read(
                sql.SQL(
                    "SELECT id, user_id, item_id, rating, ts FROM {} WHERE id > %s "
                    "ORDER BY id LIMIT %s"
                ).format(self._table()),
                (last, chunk),
            )
            if not rows:
                return
            for row in rows:
                yield Feedback(*row[1:])
            last = rows[-1][0]

    def count(self) -> int:
        from psycopg import sql

        return int(self._read(sql.SQL("SELECT count(*) FROM {}").format(self._table()))[0][0])

    def ping(self) -> None:
        self._read("SELECT 1")

    def drop(self) -> None:
        """Drop this store's schema and everything in it (tests)."""
        from psycopg import sql

        with self._borrow() as conn:
            conn.execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(self.schema))
            )

    def close(self) -> None:
        super().close()
        self._drain_pool()
        if self._write_conn is not None:
            with contextlib.suppress(Exception):
                self._write_conn.close()
            self._write_conn = None


# --------------------------------------------------------------------------- opening
def default_store_url(model_path: str | Path) -> str:
    """The default store of a model file: ``MODEL.feedback.sqlite`` beside it."""
    path = Path(model_path)
    return f"sqlite:///{path.with_name(path.stem + '.feedback.sqlite')}"


def open_store(url: str, *, connect_timeout: float = 3.0) -> FeedbackStore:
    """Open ``sqlite:///PATH`` (or a plain path) or ``postgresql://...[?schema=NAME]``."""
    if url.startswith(("postgresql://", "postgres://")):
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        schema = next((v for k, v in query if k == "schema"), "mfrec")
        rest = urlencode([(k, v) for k, v in query if k != "schema"])
        conninfo = urlunsplit(parts._replace(query=rest))
        try:
            return PostgresStore(conninfo, schema=schema, connect_timeout=connect_timeout)
        except StoreUnavailable as exc:
            raise StoreError(str(exc)) from None
    if url.startswith("sqlite://"):
        path = url[len("sqlite://") :]
        if path.startswith("/") and not path.startswith("//"):
            path = path[1:]  # sqlite:///relative
        elif path.startswith("//"):
            path = path[1:]  # sqlite:////absolute
        if not path:
            raise StoreError(f"store URL {url!r} names no file: use sqlite:///PATH")
        return SQLiteStore(path)
    if "://" in url:
        raise StoreError(
            f"unknown store URL {url!r}: use sqlite:///PATH or postgresql://USER@HOST/DB"
        )
    return SQLiteStore(url)


def now() -> int:
    return int(time.time())
