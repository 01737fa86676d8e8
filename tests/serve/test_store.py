"""The feedback stores: one suite, run against SQLite and PostgreSQL alike."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from mfrec.serve.store import (
    SCHEMA_VERSION,
    Feedback,
    SQLiteStore,
    StoreError,
    default_store_url,
    open_store,
)


@pytest.fixture
def store(store_url):
    opened = open_store(store_url)
    yield opened
    opened.close()


def test_rows_come_back_in_order_per_user(store):
    store.append([Feedback("1", "10", 4.0, 100), Feedback("2", "10", 2.5, 101)])
    store.append([Feedback("1", "11", 5.0, 102), Feedback("1", "10", 1.0, 103)])
    assert store.user_feedback("1") == [
        Feedback("1", "10", 4.0, 100),
        Feedback("1", "11", 5.0, 102),
        Feedback("1", "10", 1.0, 103),
    ]
    assert store.user_feedback("nobody") == []
    assert store.count() == 4
    assert [row.timestamp for row in store.iter_all(chunk=3)] == [100, 101, 102, 103]


def test_versions_change_exactly_when_a_users_history_does(store):
    assert store.versions(["a", "b"]) == {}
    store.append([Feedback("a", "x", 1.0, 1)])
    first = store.versions(["a", "b"])
    assert set(first) == {"a"}
    store.append([Feedback("b", "x", 1.0, 1)])
    second = store.versions(["a", "b"])
    assert second["a"] == first["a"] and second["b"] > first["a"]
    store.append([Feedback("a", "y", 2.0, 2)])
    assert store.versions(["a"])["a"] > second["b"]


def test_text_ids_are_kept_exactly(store):
    odd = ["007", "ünï cödé", "a'b\"c; DROP TABLE feedback", " spaced "]
    store.append([Feedback(text, text, 3.0, 0) for text in odd])
    for text in odd:
        assert store.user_feedback(text) == [Feedback(text, text, 3.0, 0)]


def test_concurrent_writers_are_grouped_and_all_durable(store):
    """Many threads at once: every acknowledged row is there, none twice."""
    acknowledged = []
    lock = threading.Lock()

    def writer(t: int) -> None:
        for k in range(25):
            store.append([Feedback(f"u{t}", f"i{k}", float(k % 5 + 1), k)])
            with lock:
                acknowledged.append((f"u{t}", f"i{k}"))

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stored = [(row.user, row.item) for row in store.iter_all()]
    assert sorted(stored) == sorted(acknowledged)
    assert len(stored) == 200


def test_reopening_keeps_rows_and_schema(store_url):
    first = open_store(store_url)
    first.append([Feedback("1", "2", 3.0, 4)])
    first.close()
    again = open_store(store_url)
    try:
        assert again.user_feedback("1") == [Feedback("1", "2", 3.0, 4)]
    finally:
        again.close()


def test_a_closed_store_refuses_writes(store_url):
    from mfrec.serve.store import StoreUnavailable

    store = open_store(store_url)
    store.close()
    with pytest.raises(StoreUnavailable):
        store.append([Feedback("1", "2", 3.0, 4)])


def test_sqlite_is_wal_and_fully_synchronous(tmp_path):
    store = SQLiteStore(tmp_path / "f.sqlite")
    try:
        conn = store._reader()
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    finally:
        store.close()


def test_a_newer_schema_is_refused(tmp_path):
    path = tmp_path / "f.sqlite"
    SQLiteStore(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute(
            "UPDATE mfrec_meta SET value = ? WHERE key = 'schema_version'",
            (str(SCHEMA_VERSION + 1),),
        )
    with pytest.raises(StoreError, match="newer than this mfrec"):
        SQLiteStore(path)


def test_store_urls(tmp_path):
    assert default_store_url(tmp_path / "m.mfrec") == f"sqlite:///{tmp_path}/m.feedback.sqlite"
    with pytest.raises(StoreError, match="unknown store URL"):
        open_store("mysql://x")
    with pytest.raises(StoreError, match="is missing"):
        open_store(f"sqlite:///{tmp_path}/no/such/dir/f.sqlite")
    store = open_store(f"sqlite:///{tmp_path}/f.sqlite")
    assert store.path == tmp_path / "f.sqlite"
    store.close()


def test_postgres_schema_is_migrated_into_its_own_namespace(pg_store_url):
    import psycopg

    store = open_store(pg_store_url)
    try:
        with psycopg.connect(store.conninfo) as conn:
            version = conn.execute(
                f'SELECT value FROM "{store.schema}".mfrec_meta WHERE key = %s',
                ("schema_version",),
            ).fetchone()[0]
        assert int(version) == SCHEMA_VERSION
        assert store.url.endswith(f"schema={store.schema}")
    finally:
        store.drop()
        store.close()
