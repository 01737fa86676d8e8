"""`mfrec serve` as a real process: kill -9 under write load, SIGHUP and admin reloads,
the API key, the loopback rule; and `mfrec retrain`."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from click.testing import CliRunner

import mfrec
from mfrec.cli import main

KEY = "s3cret-" + "x" * 20


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    def __init__(self, model: Path, store: str, key_file: Path, port: int, log: Path) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        command = [
            sys.executable, "-c", "from mfrec.cli import main; main()", "serve", str(model),
            "--port", str(port), "--store", store, "--api-key-file", str(key_file),
            "--log-level", "warning",
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command, stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited: {log.read_text()}")
            try:
                if httpx.get(self.url + "/health/ready", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise AssertionError(f"server did not become ready: {log.read_text()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def served(small_model_path, tmp_path):
    model = tmp_path / "served.mfrec"
    model.write_bytes(small_model_path.read_bytes())
    key_file = tmp_path / "key"
    key_file.write_text(KEY + "\n")
    store = f"sqlite:///{tmp_path / 'feedback.sqlite'}"
    port = _free_port()
    servers: list[Server] = []

    def start() -> Server:
        servers.append(Server(model, store, key_file, port, tmp_path / "server.log"))
        return servers[-1]

    yield model, start
    for server in servers:
        server.stop()


@pytest.mark.slow
def test_kill_9_loses_no_acknowledged_feedback(served):
    _, start = served
    server = start()
    acknowledged: list[tuple[int, int]] = []
    lock = threading.Lock()
    stop = threading.Event()
    headers = {"authorization": f"Bearer {KEY}"}

    def client(worker: int) -> None:
        with httpx.Client(base_url=server.url, headers=headers, timeout=10) as http:
            k = 0
            while not stop.is_set():
                user = 10_000 + worker
                row = {"user": user, "item": k % 120 + 1, "rating": (k % 5) + 1, "timestamp": k}
                try:
                    answer = http.post("/feedback", json={"ratings": [row]})
                except httpx.HTTPError:
                    return  # the server died mid-request: not acknowledged
                if answer.status_code == 200:
                    with lock:
                        acknowledged.append((user, k))
                k += 1

    threads = [threading.Thread(target=client, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 30
    while len(acknowledged) < 60 and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(server.process.pid, signal.SIGKILL)
    server.process.wait()
    stop.set()
    for thread in threads:
        thread.join()
    assert len(acknowledged) >= 60

    server = start()
    with httpx.Client(base_url=server.url, timeout=10) as http:
        for worker in range(4):
            user = 10_000 + worker
            stored = {r["timestamp"] for r in http.get(f"/users/{user}/feedback").json()["ratings"]}
            mine = {k for u, k in acknowledged if u == user}
            assert mine <= stored, f"user {user} lost {sorted(mine - stored)[:10]}"


@pytest.mark.slow
def test_reload_by_sighup_and_admin_refuses_corrupt_files(served, tmp_path):
    model, start = served
    server = start()
    headers = {"x-api-key": KEY}
    http = httpx.Client(base_url=server.url, timeout=10)
    try:
        first = http.get("/model").json()
        row = {"ratings": [{"user": 1, "item": 2, "rating": 4}]}
        assert http.post("/feedback", json=row).status_code == 401
        assert http.post("/feedback", json=row, headers=headers).status_code == 200

        from mfrec.data.synthetic import make_ratings
        from mfrec.models import BiasedMF

        retrained = BiasedMF(n_factors=3, n_epochs=3, random_state=2).fit(
            make_ratings(300, 120, density=0.1, random_state=0).ratings
        )
        retrained.save(model)  # atomic replace of the served path
        os.kill(server.process.pid, signal.SIGHUP)
        assert _eventually(lambda: http.get("/model").json()["n_factors"] == 3)
        second = http.get("/model").json()
        assert second["version"] != first["version"]

        good = model.read_bytes()
        model.write_bytes(good[: len(good) // 3])  # a torn file where the model was
        os.kill(server.process.pid, signal.SIGHUP)
        time.sleep(1.0)
        assert http.get("/model").json()["version"] == second["version"]
        assert http.get("/users/1/recommendations").status_code == 200
        refused = http.post("/admin/reload", headers=headers)
        assert refused.status_code == 422 and "still serving" in refused.json()["error"]
        assert http.post("/admin/reload").status_code == 401
        model.write_bytes(good)
        reloaded = http.post("/admin/reload", headers=headers)
        assert reloaded.status_code == 200 and reloaded.json()["version"] == second["version"]
        metrics = http.get("/metrics").text
        assert 'mfrec_model_reloads_total{result="refused"} 2.0' in metrics
        assert server.process.poll() is None
    finally:
        http.close()


def _eventually(check, timeout=30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return False


def test_serve_refuses_a_public_address_without_a_key(small_model_path, tmp_path):
    result = CliRunner().invoke(main, ["serve", str(small_model_path), "--host", "0.0.0.0"])
    assert result.exit_code == 1 and "without an API key" in result.output
    short = tmp_path / "key"
    short.write_text("abc")
    result = CliRunner().invoke(
        main, ["serve", str(small_model_path), "--api-key-file", str(short)]
    )
    assert result.exit_code == 1 and "at least 16 characters" in result.output
    result = CliRunner().invoke(main, ["serve", str(small_model_path), "--store", "mysql://x"])
    assert result.exit_code == 1 and "unknown store URL" in result.output


def test_retrain_refits_on_training_plus_feedback(small_model_path, tmp_path):
    from mfrec.serve.store import Feedback, open_store

    store_url = f"sqlite:///{tmp_path / 'f.sqlite'}"
    store = open_store(store_url)
    old = mfrec.load(small_model_path)
    rated = int(old.items_.take(old.seen_items[0].indices)[0])
    user0 = int(old.users_.ids[0])
    store.append(
        [
            Feedback(str(user0), str(rated), 1.0, 1),  # overrides a training rating
            Feedback("9001", "5", 5.0, 2),  # a new user
            Feedback("9001", "500", 4.0, 3),  # a new item
            Feedback("9002", "500", 5.0, 4),
        ]
    )
    store.close()
    out = tmp_path / "new.mfrec"
    result = CliRunner().invoke(
        main, ["retrain", str(small_model_path), "--store", store_url, "--out", str(out), "--json"]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["feedback_rows"] == 4 and summary["new_users"] == 2 and summary["new_items"] == 1
    assert summary["n_ratings"] == old.seen_items.nnz + 3
    new = mfrec.load(out)
    assert type(new) is type(old) and new.get_params() == old.get_params()
    assert 9001 in new.users_ and 500 in new.items_
    seen = new.seen_items[new.users_.index([user0])[0]]
    assert seen[0, new.items_.index([rated])[0]] == 1.0
    assert new.item_titles_[new.items_.index([5])[0]] == old.item_titles_[old.items_.index([5])[0]]
    assert np.isfinite(new.predict(9001, 500))


def test_workers_get_time_to_start_on_a_busy_machine(small_model_path, tmp_path, monkeypatch):
    """uvicorn's supervisor kills a worker that is not ready within
    ``timeout_worker_healthcheck`` (5 s by default): a worker loading a model on a busy
    machine needs longer, so `mfrec serve --workers` gives it a minute."""
    import inspect

    import uvicorn

    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: calls.append(kwargs))
    model = tmp_path / "m.mfrec"
    model.write_bytes(small_model_path.read_bytes())
    result = CliRunner().invoke(main, ["serve", str(model), "--workers", "2"])
    assert result.exit_code == 0, result.output
    assert calls and calls[0]["workers"] == 2
    if "timeout_worker_healthcheck" in inspect.signature(uvicorn.Config).parameters:
        assert calls[0]["timeout_worker_healthcheck"] == 60
    else:  # an older uvicorn without the setting: nothing passed that it would refuse
        assert "timeout_worker_healthcheck" not in calls[0]
