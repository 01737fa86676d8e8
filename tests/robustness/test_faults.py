"""Faults: a save killed with SIGKILL leaves the previous file intact, and its temporary
file is removed by the next save into the folder (only mfrec's own, only stale ones).
Files are created with the mode the umask gives, like any other program's."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import mfrec
from mfrec._atomic import STALE_SECONDS, TEMP_SUFFIX, atomic_write, remove_stale_temporaries
from mfrec.export import write_recommendations

from .conftest import known_pairs

# The child saves the model, but its np.savez writes half of the archive, says so and
# sleeps: the parent then kills it with SIGKILL in the middle of the save.
CHILD = textwrap.dedent(
    """
    import io, sys, time
    import numpy as np
    import mfrec, mfrec.persist
    model = mfrec.load(sys.argv[1])
    real = np.savez
    def slow_savez(handle, **arrays):
        buffer = io.BytesIO()
        real(buffer, **arrays)
        data = buffer.getvalue()
        handle.write(data[: len(data) // 2])
        handle.flush()
        open(sys.argv[2], "w").close()
        time.sleep(120)
        handle.write(data[len(data) // 2 :])
    mfrec.persist.np.savez = slow_savez
    model.save(sys.argv[1])
    """
)


def test_kill_during_save_keeps_old_file_and_next_save_cleans_up(tiny_model, tmp_path):
    path = tmp_path / "model.mfrec"
    tiny_model.save(path)
    before = path.read_bytes()
    ready = tmp_path / "ready"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(path), str(ready)])
    try:
        deadline = time.monotonic() + 120
        while not ready.exists():
            assert child.poll() is None, "the child ended before writing"
            assert time.monotonic() < deadline, "the child never started writing"
            time.sleep(0.05)
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
    assert path.read_bytes() == before  # the old file, whole
    users, items = known_pairs()
    np.testing.assert_array_equal(
        mfrec.load(path).predict(users, items), tiny_model.predict(users, items)
    )
    litter = [p for p in tmp_path.iterdir() if p.name.endswith(TEMP_SUFFIX)]
    assert len(litter) == 1 and litter[0].stat().st_size > 0
    # Not yet stale: another process might still be writing it. Age it, then save again.
    tiny_model.save(path)
    assert litter[0].exists()
    old = time.time() - STALE_SECONDS - 60
    os.utime(litter[0], (old, old))
    tiny_model.save(path)
    assert not litter[0].exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.mfrec", "ready"]


def test_only_mfrec_stale_temporaries_are_removed(tmp_path):
    old = time.time() - STALE_SECONDS - 60
    ours = tmp_path / f".model.mfrec.0123456789abcdef{TEMP_SUFFIX}"
    fresh = tmp_path / f".other.csv.fedcba9876543210{TEMP_SUFFIX}"
    foreign = [
        tmp_path / ".model.mfrec.tmp",  # another program's pattern
        tmp_path / f"model.mfrec.0123456789abcdef{TEMP_SUFFIX}",  # no leading dot
        tmp_path / f".x.0123456789ABCDEF{TEMP_SUFFIX}",  # not our hex
        tmp_path / "notes.txt",
    ]
    for p in (ours, fresh, *foreign):
        p.write_bytes(b"x")
    folder = tmp_path / f".dir.0123456789abcdef{TEMP_SUFFIX}"
    folder.mkdir()
    for p in (ours, *foreign, folder):
        os.utime(p, (old, old))
    assert remove_stale_temporaries(tmp_path) == 1
    assert not ours.exists()
    assert fresh.exists() and folder.exists() and all(p.exists() for p in foreign)


def test_failed_write_leaves_nothing(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")

    def write_half():
        with atomic_write(target) as handle:
            handle.write(b"half")
            raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        write_half()
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


@pytest.fixture
def umask():
    previous = os.umask(0o022)
    yield lambda mask: os.umask(mask)
    os.umask(previous)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
def test_files_follow_the_umask(tiny_model, tmp_path, umask, mask):
    umask(mask)
    model_path = tmp_path / "m.mfrec"
    tiny_model.save(model_path)
    assert _mode(model_path) == 0o666 & ~mask
    csv = tmp_path / "recs.csv"
    write_recommendations(tiny_model, csv, n=2)
    assert _mode(csv) == 0o666 & ~mask
    parquet = tmp_path / "recs.parquet"
    write_recommendations(tiny_model, parquet, n=2)
    assert _mode(parquet) == 0o666 & ~mask


def test_replacing_a_file_keeps_its_mode(tiny_model, tmp_path, umask):
    path = tmp_path / "m.mfrec"
    path.write_bytes(b"old")
    os.chmod(path, 0o640)
    tiny_model.save(path)
    assert _mode(path) == 0o640
    assert mfrec.load(path).n_factors_ == 2
