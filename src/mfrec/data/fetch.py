"""Where datasets live: ``MFREC_DATA_DIR``, the user cache, or a checksummed download.

Lookup order for a dataset folder (say ``ml-100k/``):

1. ``$MFREC_DATA_DIR/ml-100k`` (``MFREC_DATA_DIR`` may list several folders, separated
   by :data:`os.pathsep`);
2. the user cache: ``$MFREC_CACHE_DIR``, else ``$XDG_CACHE_HOME/mfrec``, else
   ``~/.cache/mfrec``;
3. a download into the cache, unless ``MFREC_OFFLINE=1``.

A folder counts only when its ratings file exists. A download streams to a temporary
file in the cache, is verified (SHA-256, or MD5 where that is all the publisher gives)
before anything is unpacked, is unpacked into a temporary folder and moved into place
with one rename, so a reader never sees half a dataset; every failure cleans up after
itself.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import logging
import os
import shutil
import tempfile
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Protocol

from mfrec.exceptions import ChecksumError, DatasetNotFoundError

logger = logging.getLogger(__name__)

ENV_DATA_DIR = "MFREC_DATA_DIR"
ENV_CACHE_DIR = "MFREC_CACHE_DIR"
ENV_OFFLINE = "MFREC_OFFLINE"
DEFAULT_TIMEOUT = 60.0
_CHUNK = 1 << 20

Progress = Callable[[int, "int | None"], None]


class RemoteDataset(Protocol):
    """What fetching needs to know about a dataset (see ``MovieLensSpec``)."""

    @property
    def name(self) -> str: ...
    @property
    def folder(self) -> str: ...
    @property
    def url(self) -> str: ...
    @property
    def ratings_file(self) -> str: ...
    @property
    def sha256(self) -> str | None: ...
    @property
    def md5(self) -> str | None: ...
    @property
    def size(self) -> int | None: ...


# -- where to look --------------------------------------------------------------------
def data_dirs() -> list[Path]:
    """The folders listed in ``MFREC_DATA_DIR`` (empty when it is unset)."""
    value = os.environ.get(ENV_DATA_DIR, "")
    return [Path(p).expanduser() for p in value.split(os.pathsep) if p.strip()]


def cache_dir() -> Path:
    """The user cache folder: ``$MFREC_CACHE_DIR``, ``$XDG_CACHE_HOME/mfrec`` or
    ``~/.cache/mfrec`` (it need not exist yet)."""
    explicit = os.environ.get(ENV_CACHE_DIR, "").strip()
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    if xdg:
        return Path(xdg).expanduser() / "mfrec"
    return Path.home() / ".cache" / "mfrec"


def offline() -> bool:
    """True when ``MFREC_OFFLINE`` forbids downloads (``1``, ``true``, ``yes``, ``on``)."""
    return os.environ.get(ENV_OFFLINE, "").strip().lower() in {"1", "true", "yes", "on"}


def search_roots(data_dir: str | os.PathLike[str] | None = None) -> list[Path]:
    """The folders searched for a dataset folder, in order: ``data_dir`` alone when
    given, else ``MFREC_DATA_DIR`` then the cache."""
    if data_dir is not None:
        return [Path(data_dir).expanduser()]
    return [*data_dirs(), cache_dir()]


def find_dataset(
    spec: RemoteDataset, data_dir: str | os.PathLike[str] | None = None
) -> Path | None:
    """The folder holding ``spec``'s ratings file, or None when it is nowhere.

    ``data_dir`` may be the parent of the dataset folder or the dataset folder itself.
    """
    if data_dir is not None and (Path(data_dir).expanduser() / spec.ratings_file).is_file():
        return Path(data_dir).expanduser()
    for root in search_roots(data_dir):
        folder = root / spec.folder
        if (folder / spec.ratings_file).is_file():
            return folder
    return None


def ensure_dataset(
    spec: RemoteDataset,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = True,
    progress: Progress | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> Path:
    """The dataset folder of ``spec``, downloading it into the cache (or ``data_dir``)
    when it is nowhere on disk.

    Parameters
    ----------
    spec : RemoteDataset
        Folder name, ratings file, URL and checksum of the dataset.
    data_dir : path-like, optional
        Look only here (the parent of the dataset folder, or the folder itself) and
        download here, instead of ``MFREC_DATA_DIR`` and the cache.
    download : bool, default True
        Whether a missing dataset may be downloaded (``MFREC_OFFLINE=1`` forbids it too).
    progress : callable, optional
        Called as ``progress(done_bytes, total_bytes)`` while downloading; ``total_bytes``
        is None when unknown.
    timeout : float
        Seconds to wait for the server before giving up.

    Returns
    -------
    pathlib.Path
        The folder holding the dataset's files.

    Raises
    ------
    mfrec.exceptions.DatasetNotFoundError
        When the dataset is not on disk and cannot be downloaded; the message names the
        URL, the reason and where to put the files by hand.
    ChecksumError
        When the download does not match the published checksum.
    """
    found = find_dataset(spec, data_dir)
    if found is not None:
        return found
    root = Path(data_dir).expanduser() if data_dir is not None else cache_dir()
    if not download:
        raise not_found(spec, root, "downloading was not allowed (download=False)")
    if offline():
        raise not_found(spec, root, f"downloading is switched off ({ENV_OFFLINE}=1)")
    return download_dataset(spec, root, progress=progress, timeout=timeout)


def not_found(spec: RemoteDataset, root: Path, reason: str) -> DatasetNotFoundError:
    """The error for a dataset that is missing from ``root`` (the cache, or an explicit
    data folder), saying exactly how to provide it."""
    roots = search_roots() if root == cache_dir() else [root]
    looked = ", ".join(str(r / spec.folder) for r in roots)
    return DatasetNotFoundError(
        f"{spec.name} is not on this machine (looked in {looked}) and was not downloaded: "
        f"{reason}. Download {spec.url} yourself and unzip it so that "
        f"{root / spec.folder / spec.ratings_file} exists, or set {ENV_DATA_DIR} to a folder "
        f"holding {spec.folder}/."
    )


# -- downloading ----------------------------------------------------------------------
def download_dataset(
    spec: RemoteDataset,
    root: Path,
    *,
    progress: Progress | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> Path:
    """Download ``spec.url`` into ``root``, verify it, unpack it to ``root/spec.folder``.

    Nothing is left behind on failure: not the partial download, nor a half-unpacked
    folder.
    """
    if spec.sha256 is None and spec.md5 is None:
        raise not_found(spec, root, "no checksum is known for it, so a download cannot be verified")
    algorithm, expected = ("sha256", spec.sha256) if spec.sha256 else ("md5", spec.md5)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise not_found(spec, root, f"cannot create {root}: {exc}") from None
    logger.info("downloading %s into %s", spec.url, root)
    try:
        archive, digest, size = download_file(
            spec.url, root, algorithm=algorithm, timeout=timeout, progress=progress, total=spec.size
        )
    except (OSError, http.client.HTTPException) as exc:
        raise not_found(spec, root, f"{spec.url} failed ({_reason(exc)})") from None
    try:
        if digest != str(expected).lower() or (spec.size is not None and size != spec.size):
            raise ChecksumError(
                f"the download of {spec.url} does not match its published checksum: expected "
                f"{algorithm} {expected}"
                + ("" if spec.size is None else f" ({spec.size:,} bytes)")
                + f", got {digest} ({size:,} bytes). It was deleted; try again, or download "
                f"the file yourself, check it and unzip it so that "
                f"{root / spec.folder / spec.ratings_file} exists."
            )
        logger.info("verified %s (%s %s); unpacking", spec.url, algorithm, digest)
        return unpack(archive, root, spec)
    finally:
        with contextlib.suppress(FileNotFoundError):
            archive.unlink()


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    if reason is not None and not hasattr(exc, "code"):
        return str(reason)  # URLError: the underlying socket error
    return str(exc) or type(exc).__name__


def download_file(
    url: str,
    folder: Path,
    *,
    algorithm: str = "sha256",
    timeout: float = DEFAULT_TIMEOUT,
    progress: Progress | None = None,
    total: int | None = None,
) -> tuple[Path, str, int]:
    """Stream ``url`` to a temporary file in ``folder``, hashing it on the way.

    Returns ``(path, hex digest, size in bytes)``; the caller owns (and deletes) the
    file. On any error the partial file is removed and the error propagates.
    """
    fd, name = tempfile.mkstemp(prefix=".download-", suffix=".part", dir=folder)
    path = Path(name)
    hasher = hashlib.new(algorithm, usedforsecurity=False)
    done = 0
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            if length is not None and length.isdigit():
                total = int(length)
            if progress is not None:
                progress(0, total)
            while chunk := response.read(_CHUNK):
                out.write(chunk)
                hasher.update(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(done, total)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        raise
    return path, hasher.hexdigest(), done


# -- unpacking ------------------------------------------------------------------------
def unpack(archive: Path, root: Path, spec: RemoteDataset) -> Path:
    """Unzip ``archive`` and move its ``spec.folder`` to ``root/spec.folder`` in one rename.

    Refuses archives with entries that would land outside the target (absolute paths,
    ``..``) and archives without ``spec.folder/spec.ratings_file``.
    """
    staging = Path(tempfile.mkdtemp(prefix=f".{spec.folder}.", suffix=".unpack", dir=root))
    try:
        try:
            with zipfile.ZipFile(archive) as zf:
                for member in zf.namelist():
                    _check_member(member, staging, spec.url)
                zf.extractall(staging)
        except (zipfile.BadZipFile, zipfile.LargeZipFile) as exc:
            raise not_found(
                spec, root, f"{spec.url} is not a readable zip archive ({exc})"
            ) from None
        unpacked = staging / spec.folder
        if not (unpacked / spec.ratings_file).is_file():
            raise not_found(
                spec, root, f"{spec.url} does not contain {spec.folder}/{spec.ratings_file}"
            )
        target = root / spec.folder
        _move_into_place(unpacked, target, staging, spec.ratings_file)
        logger.info("%s is ready in %s", spec.name, target)
        return target
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _check_member(member: str, staging: Path, url: str) -> None:
    parts = PurePosixPath(member.replace("\\", "/"))
    escapes = (
        parts.is_absolute() or ".." in parts.parts or ":" in (parts.parts[0] if parts.parts else "")
    )
    if not escapes:
        resolved = (staging / parts).resolve()
        escapes = not resolved.is_relative_to(staging.resolve())
    if escapes:
        raise DatasetNotFoundError(
            f"refusing to unpack {url}: its entry {member!r} would be written outside the "
            "target folder"
        )


def _move_into_place(unpacked: Path, target: Path, staging: Path, ratings_file: str) -> None:
    try:
        os.replace(unpacked, target)
        return
    except OSError:
        if (target / ratings_file).is_file():
            logger.info("%s appeared meanwhile (another process); keeping it", target)
            return
    # An incomplete folder from an earlier attempt: move it aside (it is deleted with
    # the staging folder), then move the new one in.
    os.replace(target, staging / ".previous")
    os.replace(unpacked, target)
