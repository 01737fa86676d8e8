"""`mfrec serve --workers 2` as a real process: the workers share the store (feedback
posted to one is used by the next request, whichever worker serves it), /metrics adds up
every worker, and a reload reaches every worker."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

import mfrec

KEY = "workers-key-" + "y" * 20


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        out += [int(c) for c in (task / "children").read_text().split()]
    return out


def _workers(pid: int) -> list[int]:
    """uvicorn's worker processes: the children running the app (the supervisor may
    also have multiprocessing's helper processes)."""
    found = []
    for child in _children(pid):
        try:
            environ = Path(f"/proc/{child}/environ").read_bytes()
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if b"PROMETHEUS_MULTIPROC_DIR=" in environ and b"resource_tracker" not in cmdline:
            found.append(child)
    return found


def _get(url: str, path: str) -> httpx.Response:
    # a fresh connection per request: the kernel hands it to either worker
    with httpx.Client(base_url=url, timeout=10) as http:
        return http.get(path)


def _metric(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    assert match, f"{name} not in /metrics"
    return float(match.group(1))


@pytest.fixture
def two_workers(small_model_path, tmp_path):
    model = tmp_path / "served.mfrec"
    model.write_bytes(small_model_path.read_bytes())
    key_file = tmp_path / "key"
    key_file.write_text(KEY + "\n")
    port = _free_port()
    log = tmp_path / "server.log"
    command = [
        sys.executable, "-c", "from mfrec.cli import main; main()", "serve", str(model),
        "--port", str(port), "--store", f"sqlite:///{tmp_path / 'feedback.sqlite'}",
        "--api-key-file", str(key_file), "--workers", "2", "--log-level", "warning",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    process = subprocess.Popen(
        command, stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True, env=env
    )
    url = f"http://127.0.0.1:{port}"
    try:
        assert _eventually(lambda: _ready(url, process), 180), log.read_text()
        assert _eventually(lambda: len(_workers(process.pid)) == 2, 60), log.read_text()
        yield model, url, process, log
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def _ready(url: str, process) -> bool:
    if process.poll() is not None:
        raise AssertionError("server exited")
    try:
        return _get(url, "/health/ready").status_code == 200
    except httpx.HTTPError:
        return False


def _eventually(check, timeout=30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return False


@pytest.mark.slow
def test_two_workers_share_feedback_metrics_and_reloads(two_workers, tmp_path):
    model_path, url, process, log = two_workers
    headers = {"authorization": f"Bearer {KEY}"}
    model = mfrec.load(model_path)
    item = int(model.items_.ids[0])
    n_rounds = 12
    for k in range(n_rounds):
        user = 900_000 + k  # new users: only their feedback makes them known
        with httpx.Client(base_url=url, headers=headers, timeout=10) as http:
            stored = http.post("/feedback", json={"ratings": [{"user": user, "item": item,
                                                              "rating": 5}]})  # fmt: skip
        assert stored.status_code == 200, stored.text
        assert stored.json()["new_users"] == [user]
        answer = _get(url, f"/users/{user}/recommendations?n=5")
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["feedback_used"] is True
        assert item not in [entry["item"] for entry in body["items"]]  # rated: excluded
    # every answer of /metrics counts every worker's requests
    for _ in range(8):
        text = _get(url, "/metrics").text
        assert _metric(text, "mfrec_feedback_rows_total") == n_rounds
        served = re.findall(
            r'^mfrec_requests_total\{endpoint="/users/\{user\}/recommendations",'
            r'method="GET",status="200"\} (\S+)$',
            text,
            re.MULTILINE,
        )
        assert [float(v) for v in served] == [n_rounds]
    # ... and both workers answered some of them (each worker's own files)
    from prometheus_client.multiprocess import MultiProcessCollector

    shares = []
    for pid in _workers(process.pid):
        environ = Path(f"/proc/{pid}/environ").read_bytes()
        folder = environ.split(b"PROMETHEUS_MULTIPROC_DIR=")[1].split(b"\0")[0].decode()
        merged = MultiProcessCollector.merge([f"{folder}/counter_{pid}.db"], accumulate=True)
        shares.append(
            sum(s.value for m in merged if m.name == "mfrec_requests" for s in m.samples
                if s.name == "mfrec_requests_total")
        )  # fmt: skip
    assert len(shares) == 2 and min(shares) > 0, shares

    # a reload through one worker reaches the other
    from mfrec.data.synthetic import make_ratings
    from mfrec.models import BiasedMF

    other = tmp_path / "other.mfrec"
    BiasedMF(n_factors=3, n_epochs=3, random_state=2).fit(
        make_ratings(300, 120, density=0.1, random_state=0).ratings
    ).save(other)
    with httpx.Client(base_url=url, headers=headers, timeout=30) as http:
        answer = http.post("/admin/reload", json={"path": str(other)})
    assert answer.status_code == 200, answer.text
    version = answer.json()["version"]

    def all_new() -> bool:
        return all(_get(url, "/model").json()["version"] == version for _ in range(10))

    assert _eventually(all_new, 30), log.read_text()
    # restarted workers (SIGHUP to the supervisor) serve the file the workers switched to
    before = set(_workers(process.pid))
    os.kill(process.pid, signal.SIGHUP)
    assert _eventually(lambda: not before & set(_workers(process.pid)), 120), log.read_text()
    assert _eventually(lambda: _ready(url, process), 60)
    assert all(_get(url, "/model").json()["path"] == str(other) for _ in range(6))
    text = _get(url, "/metrics").text
    assert _metric(text, "mfrec_feedback_rows_total") == n_rounds  # kept across restarts
    assert re.search(r'^mfrec_model_info\{.*version="' + version + r'".*\} 1\.0$', text, re.M)
