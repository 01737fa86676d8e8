"""Dataset lookup and checksummed download, against a local HTTP server (never the internet)."""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import io
import os
import socket
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest

from mfrec.data import fetch
from mfrec.data.fetch import ChecksumError, cache_dir, data_dirs, ensure_dataset, find_dataset
from mfrec.data.movielens import DATASETS, load_movielens
from mfrec.exceptions import DatasetNotFoundError


def _ratings_rows(seed: int, n: int = 40) -> list[tuple[int, int, int, int]]:
    rng = np.random.default_rng(seed)
    pairs = rng.choice(15 * 25, size=n, replace=False)
    return [
        (int(p // 25 + 1), int(p % 25 + 1), int(r), int(t))
        for p, r, t in zip(pairs, rng.integers(1, 6, n), rng.integers(8e8, 9e8, n), strict=True)
    ]


def _u_data(rows) -> str:
    return "".join(f"{u}\t{i}\t{r}\t{t}\n" for u, i, r, t in rows)


def _write_folder(folder: Path, rows) -> Path:
    folder.mkdir(parents=True)
    (folder / "u.data").write_text(_u_data(rows))
    return folder


def _zip(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, text in files.items():
            zf.writestr(name, text)
    return buffer.getvalue()


def _official_like_zip(rows) -> bytes:
    return _zip(
        {
            "ml-100k/u.data": _u_data(rows),
            "ml-100k/u.item": "1|One (1990)|||x|1|0\n2|Two (1991)|||y|0|1\n",
            "ml-100k/u.genre": "unknown|0\nAction|1\n",
            "ml-100k/README": "generated for tests\n",
        }
    )


class _Server:
    """Serves files from a dict on 127.0.0.1 and counts requests."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[str] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append(self.path)
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


@pytest.fixture
def server():
    s = _Server()
    yield s
    s.close()


@pytest.fixture
def cache(monkeypatch, tmp_path) -> Path:
    """An empty cache folder; no MFREC_DATA_DIR, downloads allowed."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("MFREC_CACHE_DIR", str(folder))
    monkeypatch.delenv("MFREC_DATA_DIR", raising=False)
    monkeypatch.delenv("MFREC_OFFLINE", raising=False)
    return folder


def _spec(url: str, payload: bytes, **changes):
    fields = {
        "url": url,
        "sha256": hashlib.sha256(payload).hexdigest(),
        "size": len(payload),
        "md5": None,
    }
    fields.update(changes)
    return dataclasses.replace(DATASETS["ml-100k"], **fields)


def _everything_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


def _loaded_rows(ratings) -> list[tuple[int, int, int, int]]:
    frame = ratings.to_frame()
    return [
        (int(u), int(i), int(r), int(t))
        for u, i, r, t in zip(
            frame["user"], frame["item"], frame["rating"], frame["timestamp"], strict=True
        )
    ]


# -- lookup ---------------------------------------------------------------------------
def test_cache_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("MFREC_CACHE_DIR", str(tmp_path / "a"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "a"
    monkeypatch.delenv("MFREC_CACHE_DIR")
    assert cache_dir() == tmp_path / "xdg" / "mfrec"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "mfrec"


def test_data_dirs_split_on_pathsep(monkeypatch, tmp_path):
    monkeypatch.setenv(
        "MFREC_DATA_DIR", os.pathsep.join([str(tmp_path / "a"), "", str(tmp_path / "b")])
    )
    assert data_dirs() == [tmp_path / "a", tmp_path / "b"]
    monkeypatch.delenv("MFREC_DATA_DIR")
    assert data_dirs() == []


def test_data_dir_takes_precedence_over_cache(monkeypatch, cache, tmp_path, server):
    spec = _spec(server.url("/ml-100k.zip"), b"unused")
    in_cache = _ratings_rows(seed=1)
    in_data = _ratings_rows(seed=2)
    _write_folder(cache / "ml-100k", in_cache)
    _write_folder(tmp_path / "second" / "ml-100k", in_data)
    (tmp_path / "first").mkdir()
    monkeypatch.setenv(
        "MFREC_DATA_DIR", os.pathsep.join([str(tmp_path / "first"), str(tmp_path / "second")])
    )
    assert find_dataset(spec) == tmp_path / "second" / "ml-100k"
    assert _loaded_rows(load_movielens(spec)) == in_data
    monkeypatch.delenv("MFREC_DATA_DIR")
    assert _loaded_rows(load_movielens(spec)) == in_cache
    assert server.requests == []


def test_folder_without_ratings_file_does_not_count(cache):
    (cache / "ml-100k").mkdir(parents=True)
    (cache / "ml-100k" / "u.item").write_text("1|A (1990)|||x|0\n")
    assert find_dataset(DATASETS["ml-100k"]) is None


def test_explicit_data_dir(tmp_path):
    rows = _ratings_rows(seed=3)
    folder = _write_folder(tmp_path / "here" / "ml-100k", rows)
    spec = DATASETS["ml-100k"]
    assert find_dataset(spec, tmp_path / "here") == folder
    assert find_dataset(spec, folder) == folder  # the dataset folder itself
    assert ensure_dataset(spec, data_dir=folder, download=False) == folder
    empty = tmp_path / "empty"
    with pytest.raises(DatasetNotFoundError) as info:
        ensure_dataset(spec, data_dir=empty, download=False)
    assert f"(looked in {empty / 'ml-100k'})" in str(info.value)
    assert f"so that {empty / 'ml-100k' / 'u.data'} exists" in str(info.value)


# -- download -------------------------------------------------------------------------
def test_download_verify_unpack_load(cache, server):
    rows = _ratings_rows(seed=4)
    payload = _official_like_zip(rows)
    server.files["/ml-100k.zip"] = payload
    spec = _spec(server.url("/ml-100k.zip"), payload)
    seen = []
    ratings = load_movielens(spec, progress=lambda done, total: seen.append((done, total)))
    assert _loaded_rows(ratings) == rows
    assert ratings.item_info.loc[2, "title"] == "Two (1991)"
    assert ratings.item_info.loc[1, "genres"] == "unknown"
    assert seen[0] == (0, len(payload))
    assert seen[-1] == (len(payload), len(payload))
    assert _everything_under(cache) == sorted(
        ["ml-100k", "ml-100k/README", "ml-100k/u.data", "ml-100k/u.genre", "ml-100k/u.item"]
    )
    # Found in the cache from now on: no second request.
    assert _loaded_rows(load_movielens(spec)) == rows
    assert server.requests == ["/ml-100k.zip"]


def test_md5_is_used_when_there_is_no_sha256(cache, server):
    rows = _ratings_rows(seed=5)
    payload = _official_like_zip(rows)
    server.files["/ml-100k.zip"] = payload
    spec = _spec(
        server.url("/ml-100k.zip"),
        payload,
        sha256=None,
        size=None,
        md5=hashlib.md5(payload).hexdigest(),
    )
    assert _loaded_rows(load_movielens(spec)) == rows


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"sha256": "0" * 64}, r"expected sha256 0{64} \(\d[\d,]* bytes\), got [0-9a-f]{64}"),
        ({"sha256": None, "md5": "f" * 32, "size": None}, r"expected md5 f{32}, got [0-9a-f]{32}"),
        ({"size": 12}, r"expected sha256 [0-9a-f]{64} \(12 bytes\), got"),
    ],
)
def test_checksum_mismatch_leaves_nothing(cache, server, changes, message):
    payload = _official_like_zip(_ratings_rows(seed=6))
    server.files["/ml-100k.zip"] = payload
    spec = _spec(server.url("/ml-100k.zip"), payload, **changes)
    with pytest.raises(ChecksumError, match=message):
        load_movielens(spec)
    assert _everything_under(cache) == []


def test_no_checksum_no_download(cache, server):
    spec = _spec(server.url("/ml-100k.zip"), b"", sha256=None, md5=None)
    with pytest.raises(DatasetNotFoundError, match="no checksum is known"):
        load_movielens(spec)
    assert server.requests == []


def test_unreachable_server_says_what_to_do(cache):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/ml-100k.zip"
    spec = _spec(url, b"x")
    expected_path = cache / "ml-100k" / "u.data"
    with pytest.raises(DatasetNotFoundError) as info:
        ensure_dataset(spec, timeout=5)
    message = str(info.value)
    assert f"{url} failed (" in message
    assert f"Download {url} yourself and unzip it so that {expected_path} exists" in message
    assert "or set MFREC_DATA_DIR to a folder holding ml-100k/" in message
    assert _everything_under(cache) == []


def test_http_error_is_reported(cache, server):
    spec = _spec(server.url("/missing.zip"), b"x")
    with pytest.raises(DatasetNotFoundError, match=r"missing\.zip failed \(HTTP Error 404"):
        load_movielens(spec)
    assert _everything_under(cache) == []


def test_offline_forbids_downloading(monkeypatch, cache, server):
    payload = _official_like_zip(_ratings_rows(seed=7))
    server.files["/ml-100k.zip"] = payload
    spec = _spec(server.url("/ml-100k.zip"), payload)
    monkeypatch.setenv("MFREC_OFFLINE", "1")
    with pytest.raises(
        DatasetNotFoundError, match=r"MFREC_OFFLINE=1.*Download .*ml-100k\.zip yourself"
    ):
        load_movielens(spec)
    with pytest.raises(DatasetNotFoundError, match=r"download=False"):
        load_movielens(spec, download=False)
    monkeypatch.delenv("MFREC_OFFLINE")
    with pytest.raises(DatasetNotFoundError, match=r"download=False"):
        load_movielens(spec, download=False)
    assert server.requests == []
    assert len(load_movielens(spec)) == 40


def test_incomplete_folder_is_replaced(cache, server):
    (cache / "ml-100k").mkdir(parents=True)
    (cache / "ml-100k" / "stale").write_text("left from an interrupted attempt")
    rows = _ratings_rows(seed=8)
    payload = _official_like_zip(rows)
    server.files["/ml-100k.zip"] = payload
    assert _loaded_rows(load_movielens(_spec(server.url("/ml-100k.zip"), payload))) == rows
    assert not (cache / "ml-100k" / "stale").exists()
    assert [p.name for p in cache.iterdir()] == ["ml-100k"]


@pytest.mark.parametrize(
    "evil", ["../escaped.txt", "/tmp/absolute.txt", "ml-100k/../../escaped.txt"]
)
def test_entries_escaping_the_folder_are_refused(cache, server, tmp_path, evil):
    payload = _zip({"ml-100k/u.data": _u_data(_ratings_rows(seed=9)), evil: "gotcha"})
    server.files["/ml-100k.zip"] = payload
    with pytest.raises(
        DatasetNotFoundError, match=r"refusing to unpack .* would be written outside"
    ):
        load_movielens(_spec(server.url("/ml-100k.zip"), payload))
    assert _everything_under(cache) == []
    assert not (tmp_path / "escaped.txt").exists()


def test_archive_without_ratings_file(cache, server):
    payload = _zip({"other/u.data": "1\t1\t1\t1\n"})
    server.files["/ml-100k.zip"] = payload
    with pytest.raises(DatasetNotFoundError, match=r"does not contain ml-100k/u\.data"):
        load_movielens(_spec(server.url("/ml-100k.zip"), payload))
    assert _everything_under(cache) == []


def test_not_a_zip(cache, server):
    payload = b"<html>a captive portal</html>"
    server.files["/ml-100k.zip"] = payload
    with pytest.raises(DatasetNotFoundError, match="is not a readable zip archive"):
        load_movielens(_spec(server.url("/ml-100k.zip"), payload))
    assert _everything_under(cache) == []


def test_download_file_cleans_up_on_interruption(tmp_path, server):
    server.files["/f"] = b"x" * (3 << 20)

    def stop(done, total):
        if done > 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fetch.download_file(server.url("/f"), tmp_path, progress=stop)
    assert list(tmp_path.iterdir()) == []
