"""PostgreSQL outages, simulated by cutting a loopback TCP proxy between mfrec and the
shared server (never by touching the server): readiness fails, feedback gets 503 with
nothing half-written, and mfrec recovers by itself when the proxy is restored."""

from __future__ import annotations

import threading
import time
from urllib.parse import urlsplit

import psycopg
import pytest
from fastapi.testclient import TestClient

from mfrec.serve.app import ServeConfig, create_app


@pytest.fixture
def proxied(pg_url, pg_schema_prefix, tcp_proxy):
    target = urlsplit(pg_url)
    proxy = tcp_proxy((target.hostname or "127.0.0.1", target.port or 5432))
    schema = f"{pg_schema_prefix}_outage_{proxy.port}"
    url = f"postgresql://{target.username or 'postgres'}@127.0.0.1:{proxy.port}{target.path}"
    return proxy, f"{url}?schema={schema}", schema


def _count(pg_url: str, schema: str, user: str | None = None) -> int:
    with psycopg.connect(pg_url) as conn:
        if user is None:
            return conn.execute(f'SELECT count(*) FROM "{schema}".feedback').fetchone()[0]
        return conn.execute(
            f'SELECT count(*) FROM "{schema}".feedback WHERE user_id = %s', (user,)
        ).fetchone()[0]


def _wait_until(check, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return False


def test_outage_then_recovery_without_restart(proxied, pg_url, small_model_path):
    proxy, store_url, schema = proxied
    app = create_app(ServeConfig(str(small_model_path), store_url))
    rows = {"ratings": [{"user": 4, "item": i, "rating": 5} for i in (10, 11, 12)]}
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/health/ready").status_code == 200
        assert client.post("/feedback", json=rows).status_code == 200
        before = client.get("/users/4/recommendations").json()
        assert before["feedback_used"]

        proxy.cut()
        ready = client.get("/health/ready")
        assert ready.status_code == 503 and ready.json()["status"] == "unavailable"
        refused = client.post(
            "/feedback",
            json={"ratings": [{"user": 4, "item": i, "rating": 1} for i in range(30, 40)]},
        )
        assert refused.status_code == 503 and refused.json()["field"] == "store"
        assert client.get("/users/4/feedback").status_code == 503
        # reads keep going: the user's last known history still ranks them
        assert client.get("/users/4/recommendations").json() == before
        assert client.get("/health/live").status_code == 200
        assert _count(pg_url, schema) == 3  # nothing of the refused request

        proxy.restore()
        assert _wait_until(lambda: client.get("/health/ready").status_code == 200)
        again = client.post("/feedback", json={"ratings": [{"user": 4, "item": 40, "rating": 2}]})
        assert again.status_code == 200, again.text
        assert [r["item"] for r in client.get("/users/4/feedback").json()["ratings"]] == [
            10,
            11,
            12,
            40,
        ]
    assert _count(pg_url, schema) == 4


def test_a_cut_during_writes_leaves_each_request_whole(proxied, pg_url, small_model_path):
    """Requests in flight when the connection dies: an acknowledged one is all there; a
    refused one is all absent (or, if the server committed before the ack was lost, all
    present) -- never a part of one."""
    proxy, store_url, schema = proxied
    app = create_app(ServeConfig(str(small_model_path), store_url))
    outcomes: dict[str, int] = {}
    lock = threading.Lock()

    with TestClient(app, raise_server_exceptions=False) as client:

        def post(worker: int) -> None:
            for k in range(40):
                user = f"{1000 + worker * 100 + k}"
                body = {"ratings": [{"user": user, "item": i, "rating": 3} for i in range(1, 21)]}
                status = client.post("/feedback", json=body).status_code
                with lock:
                    outcomes[user] = status

        threads = [threading.Thread(target=post, args=(w,)) for w in range(4)]
        for thread in threads:
            thread.start()
        time.sleep(0.3)
        proxy.cut()
        for thread in threads:
            thread.join()
        proxy.restore()
    assert set(outcomes.values()) <= {200, 503}
    assert 200 in outcomes.values() and 503 in outcomes.values()
    with psycopg.connect(pg_url) as conn:
        counts = dict(
            conn.execute(f'SELECT user_id, count(*) FROM "{schema}".feedback GROUP BY user_id')
        )
    for user, status in outcomes.items():
        stored = counts.get(user, 0)
        if status == 200:
            assert stored == 20, user
        else:
            assert stored in (0, 20), user
