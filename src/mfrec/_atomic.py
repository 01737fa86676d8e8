"""Atomic file writes: a reader sees the old file or the new one, never half of one.

The temporary file is named ``.<target name>.<random>.mfrec-tmp`` beside the target.
A process killed mid-write (kill -9, power loss) leaves it behind; the next atomic
write into the same folder removes such files once they are older than
:data:`STALE_SECONDS` -- only files matching mfrec's own name pattern, never anyone
else's, and never a fresh one that another process may still be writing.

The new file gets the mode an ordinary ``open(path, "w")`` would give it
(``0o666 & ~umask``), or the mode of the file it replaces.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

logger = logging.getLogger(__name__)

TEMP_SUFFIX = ".mfrec-tmp"
#: A temporary file this old (by modification time) is litter from a dead writer.
STALE_SECONDS = 3600.0
_TEMP_NAME = re.compile(r"^\..+\.[0-9a-f]{16}" + re.escape(TEMP_SUFFIX) + r"$")


def current_umask() -> int:
    """The process umask, read without changing it where the system allows (Linux
    /proc); else by setting it and straight back."""
    with (
        contextlib.suppress(OSError, ValueError),
        open("/proc/self/status", encoding="ascii", errors="replace") as status,
    ):
        for line in status:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _new_mode(target: Path) -> int:
    """The permission bits of the new file: the replaced file's, else 0666 & ~umask."""
    with contextlib.suppress(OSError):
        return stat.S_IMODE(os.stat(target).st_mode)
    return 0o666 & ~current_umask()


def remove_stale_temporaries(folder: str | os.PathLike[str], max_age: float = STALE_SECONDS) -> int:
    """Remove mfrec's own temporary files in ``folder`` older than ``max_age`` seconds;
    returns how many were removed. Anything not matching the pattern is left alone."""
    removed = 0
    now = time.time()
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    for entry in entries:
        if not _TEMP_NAME.match(entry.name):
            continue
        try:
            info = entry.stat(follow_symlinks=False)
            if not stat.S_ISREG(info.st_mode) or now - info.st_mtime < max_age:
                continue
            os.unlink(entry.path)
            removed += 1
        except OSError:
            continue  # gone already, or not ours to remove
    if removed:
        logger.info("removed %d stale temporary file(s) from %s", removed, folder)
    return removed


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """Open a temporary file beside ``path`` for binary writing; on success it replaces
    ``path`` in one ``os.replace``; on error it is removed and ``path`` is untouched."""
    target = Path(path)
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise FileNotFoundError(f"cannot write {target}: folder {parent} does not exist")
    if target.is_dir():
        raise IsADirectoryError(f"cannot write {target}: it is a folder")
    remove_stale_temporaries(parent)
    mode = _new_mode(target)
    tmp = parent / f".{target.name}.{secrets.token_hex(8)}{TEMP_SUFFIX}"
    # O_EXCL: never reuse (or follow a symlink to) an existing name.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
            os.fchmod(handle.fileno(), mode)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
