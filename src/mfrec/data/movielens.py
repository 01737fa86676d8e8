"""MovieLens datasets: official layouts, parsers, item metadata, URLs and checksums.

Each variant is described by a :class:`MovieLensSpec` in :data:`DATASETS`. The parsers
read the files exactly as GroupLens publishes them and keep the ratings in file order
(the official ML-100K splits are defined by line numbers of ``u.data``).

Checksums: SHA-256 for every zip but ``ml-10m.zip``, for which no SHA-256 is published;
that one is verified against GroupLens' own MD5.
"""

from __future__ import annotations

import difflib
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mfrec.data.fetch import Progress, ensure_dataset, find_dataset
from mfrec.data.ratings import Ratings
from mfrec.data.readers import read_ratings
from mfrec.exceptions import DataError, DatasetNotFoundError

logger = logging.getLogger(__name__)

BASE_URL = "https://files.grouplens.org/datasets/movielens"

# The 19 genres of ML-100K in flag order, used when u.genre is absent.
ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
    "Romance", "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip

_YEAR = re.compile(r"\((\d{4})\)\s*$")


@dataclass(frozen=True, kw_only=True)
class MovieLensSpec:
    """One MovieLens variant: where it comes from and how its files are laid out.

    Attributes
    ----------
    name : str
        The dataset's name in mfrec (``"ml-100k"``).
    folder : str
        The folder the official zip unpacks to (``"ml-10M100K"`` for ml-10m).
    url : str
        Download address of the official zip.
    size : int or None
        Size of the zip in bytes, when published.
    sha256, md5 : str or None
        Checksum of the zip. SHA-256 is used when known; MD5 only when it is all that
        is published (ml-10m).
    ratings_file, ratings_format : str
        Ratings file in the folder and its layout: ``"tab"`` (``u.data``), ``"dat"``
        (``::``-separated) or ``"csv"`` (with header).
    items_file, items_format : str
        Movie file and its layout: ``"u.item"``, ``"dat"`` or ``"csv"``.
    encoding : str
        Text encoding of the movie file.
    scale : (float, float)
        Rating scale.
    rating_step : float
        Ratings are multiples of this (1 for whole stars, 0.5 for half stars).
    n_ratings : int
        Number of ratings in the official release.
    description : str
        One line for listings.
    """

    name: str
    folder: str
    url: str
    size: int | None
    sha256: str | None
    n_ratings: int
    description: str
    # The layout of the CSV releases (ml-20m and later) unless said otherwise.
    md5: str | None = None
    ratings_file: str = "ratings.csv"
    ratings_format: str = "csv"
    items_file: str = "movies.csv"
    items_format: str = "csv"
    encoding: str = "utf-8"
    scale: tuple[float, float] = (0.5, 5.0)
    rating_step: float = 0.5
    #: Whether GroupLens replaces this dataset with new releases under the same name:
    #: then a copy found on disk is described from its own README, not from the spec.
    updated: bool = False


DATASETS: dict[str, MovieLensSpec] = {
    spec.name: spec
    for spec in (
        MovieLensSpec(
            name="ml-100k",
            folder="ml-100k",
            url=f"{BASE_URL}/ml-100k.zip",
            size=4924029,
            sha256="50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229",
            ratings_file="u.data",
            ratings_format="tab",
            items_file="u.item",
            items_format="u.item",
            encoding="latin-1",
            scale=(1.0, 5.0),
            rating_step=1.0,
            n_ratings=100_000,
            description="MovieLens 100K (1998): 100,000 ratings 1-5 by 943 users of 1,682 movies",
        ),
        MovieLensSpec(
            name="ml-1m",
            folder="ml-1m",
            url=f"{BASE_URL}/ml-1m.zip",
            size=5917549,
            sha256="a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20",
            ratings_file="ratings.dat",
            ratings_format="dat",
            items_file="movies.dat",
            items_format="dat",
            encoding="latin-1",
            scale=(1.0, 5.0),
            rating_step=1.0,
            n_ratings=1_000_209,
            description="MovieLens 1M (2003): 1,000,209 ratings 1-5 by 6,040 users of 3,706 movies",
        ),
        MovieLensSpec(
            name="ml-10m",
            folder="ml-10M100K",
            url=f"{BASE_URL}/ml-10m.zip",
            size=None,
            sha256=None,  # none is published; verified by GroupLens' MD5
            md5="ce571fd55effeba0271552578f2648bd",
            ratings_file="ratings.dat",
            ratings_format="dat",
            items_file="movies.dat",
            items_format="dat",
            n_ratings=10_000_054,
            description=(
                "MovieLens 10M (2009): 10,000,054 ratings 0.5-5 by 69,878 users of 10,677 movies"
            ),
        ),
        MovieLensSpec(
            name="ml-20m",
            folder="ml-20m",
            url=f"{BASE_URL}/ml-20m.zip",
            size=198702078,
            sha256="96f243c338a8665f6bcc89c53edf6ee39162a846940de6b7c8c48aeada765ff3",
            n_ratings=20_000_263,
            description=(
                "MovieLens 20M (2015): 20,000,263 ratings 0.5-5 by 138,493 users of 26,744 movies"
            ),
        ),
        MovieLensSpec(
            name="ml-25m",
            folder="ml-25m",
            url=f"{BASE_URL}/ml-25m.zip",
            size=261978986,
            sha256="8b21cfb7eb1706b4ec0aac894368d90acf26ebdfb6aced3ebd4ad5bd1eb9c6aa",
            n_ratings=25_000_095,
            description=(
                "MovieLens 25M (2019): 25,000,095 ratings 0.5-5 by 162,541 users of 59,047 movies"
            ),
        ),
        MovieLensSpec(
            name="ml-latest-small",
            folder="ml-latest-small",
            url=f"{BASE_URL}/ml-latest-small.zip",
            size=978202,
            sha256="696d65a3dfceac7c45750ad32df2c259311949efec81f0f144fdfb91ebc9e436",
            n_ratings=100_836,
            description=(
                "MovieLens latest-small (2018 release): 100,836 ratings 0.5-5 by 610 users "
                "of 9,724 movies; GroupLens updates it from time to time"
            ),
            updated=True,
        ),
    )
}

SYNTHETIC = "synthetic"


def _spec(name: str | MovieLensSpec) -> MovieLensSpec:
    if isinstance(name, MovieLensSpec):
        return name
    key = str(name).strip().lower()
    if key in DATASETS:
        return DATASETS[key]
    by_folder = {spec.folder.lower(): spec for spec in DATASETS.values()}
    if key in by_folder:
        return by_folder[key]
    raise _unknown(name, DATASETS)


def _unknown(name: Any, known: Any) -> DatasetNotFoundError:
    names = list(known)
    close = difflib.get_close_matches(str(name).strip().lower(), names, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return DatasetNotFoundError(
        f"unknown dataset {name!r}; the known ones are {', '.join(names)}.{hint}"
    )


# -- parsers --------------------------------------------------------------------------
def read_movielens(folder: str | os.PathLike[str], name: str | MovieLensSpec) -> Ratings:
    """Parse an unpacked MovieLens folder in its official layout.

    Parameters
    ----------
    folder : path-like
        The folder holding the ratings file (``u.data``, ``ratings.dat`` or
        ``ratings.csv``) and, optionally, the movie file.
    name : str or MovieLensSpec
        Which variant the folder holds (``"ml-100k"``, ...).

    Returns
    -------
    Ratings
        Ratings in file order, with timestamps, the variant's scale, ``name`` set to the
        dataset name and ``item_info`` (``title``, ``year``, ``genres``) when the movie
        file is present.
    """
    spec = _spec(name)
    folder = Path(folder)
    path = folder / spec.ratings_file
    if spec.ratings_format == "csv":
        columns: Any = {
            "user": "userId",
            "item": "movieId",
            "rating": "rating",
            "timestamp": "timestamp",
        }
        sep, header = ",", True
    else:
        columns, header = "user,item,rating,timestamp", False
        sep = "\t" if spec.ratings_format == "tab" else "::"
    ratings = read_ratings(
        path, sep=sep, columns=columns, header=header, scale=spec.scale, name=spec.name
    )
    _check_step(ratings.rating, spec.rating_step, path, int(header))
    items_path = folder / spec.items_file
    item_info = None
    if items_path.is_file():
        item_info = read_items(items_path, spec.items_format, spec.encoding)
    else:
        logger.warning("%s not found: %s has no titles", items_path, spec.name)
    return Ratings(
        ratings.user_index,
        ratings.item_index,
        ratings.rating,
        ratings.users,
        ratings.items,
        ratings.timestamp,
        ratings.scale,
        item_info,
        spec.name,
    )


def _check_step(rating: np.ndarray, step: float, path: Path, header_lines: int) -> None:
    scaled = rating.astype(np.float64) / step
    off = scaled != np.round(scaled)
    if off.any():
        pos = int(np.flatnonzero(off)[0])
        raise DataError(
            f"rating {rating[pos]:g} at line {pos + 1 + header_lines} of {path} is not a "
            f"multiple of {step:g}; the file is not an official MovieLens release"
        )


def read_items(path: str | os.PathLike[str], layout: str, encoding: str = "utf-8") -> pd.DataFrame:
    """Movie metadata of a MovieLens movie file.

    Parameters
    ----------
    path : path-like
        ``u.item``, ``movies.dat`` or ``movies.csv``.
    layout : {"u.item", "dat", "csv"}
        The file's layout.
    encoding : str
        Its text encoding (``latin-1`` for ML-100K and ML-1M); a file that is not valid
        in it is read as latin-1.

    Returns
    -------
    pandas.DataFrame
        Indexed by raw item id (``item``), with columns ``title`` (str), ``year`` (Int64,
        from the title's ``(1995)``; missing when absent) and ``genres`` (``|``-joined).
    """
    path = Path(path)
    text = _decode(path.read_bytes(), encoding, path)
    if layout == "u.item":
        ids, titles, genres = _parse_u_item(text, path)
    elif layout == "dat":
        ids, titles, genres = _parse_movies_dat(text, path)
    elif layout == "csv":
        ids, titles, genres = _parse_movies_csv(text, path)
    else:
        raise DataError(f"unknown MovieLens item layout {layout!r}; use 'u.item', 'dat' or 'csv'")
    frame = pd.DataFrame(
        {"title": titles, "year": _years(titles), "genres": genres},
        index=pd.Index(np.asarray(ids, dtype=np.int64), name="item"),
    )
    return frame


def _decode(data: bytes, encoding: str, path: Path) -> str:
    try:
        return data.decode(encoding)
    except UnicodeDecodeError:
        logger.warning("%s is not valid %s; reading it as latin-1", path, encoding)
        return data.decode("latin-1")


def _lines(text: str) -> list[str]:
    return [line.rstrip("\r") for line in text.split("\n") if line.strip()]


def _item_id(text: str, path: Path, number: int) -> int:
    try:
        return int(text)
    except ValueError:
        raise DataError(f"line {number} of {path}: movie id {text!r} is not an integer") from None


def _parse_u_item(text: str, path: Path) -> tuple[list[int], list[str], list[str]]:
    genre_file = path.with_name("u.genre")
    names = list(ML100K_GENRES)
    if genre_file.is_file():
        pairs = [
            line.split("|")
            for line in _lines(_decode(genre_file.read_bytes(), "latin-1", genre_file))
        ]
        names = [genre for genre, _ in sorted(pairs, key=lambda p: int(p[1]))]
    ids, titles, genres = [], [], []
    for number, line in enumerate(text.split("\n"), 1):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        fields = line.split("|")
        if len(fields) != 5 + len(names):
            raise DataError(
                f"line {number} of {path} has {len(fields)} fields, "
                f"expected {5 + len(names)} (sep='|')"
            )
        ids.append(_item_id(fields[0], path, number))
        titles.append(fields[1])
        genres.append("|".join(g for g, flag in zip(names, fields[5:], strict=True) if flag == "1"))
    return ids, titles, genres


def _parse_movies_dat(text: str, path: Path) -> tuple[list[int], list[str], list[str]]:
    ids, titles, genres = [], [], []
    for number, line in enumerate(text.split("\n"), 1):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        fields = line.split("::")
        if len(fields) < 3:
            raise DataError(
                f"line {number} of {path} has {len(fields)} fields, expected 3 (sep='::')"
            )
        ids.append(_item_id(fields[0], path, number))
        titles.append("::".join(fields[1:-1]))
        genres.append(fields[-1])
    return ids, titles, genres


def _parse_movies_csv(text: str, path: Path) -> tuple[list[int], list[str], list[str]]:
    import csv
    import io

    reader = csv.reader(io.StringIO(text))
    head = next(reader, None)
    if head is None or [h.strip().lower() for h in head[:3]] != ["movieid", "title", "genres"]:
        raise DataError(f"{path} should start with the header movieId,title,genres, got {head}")
    ids, titles, genres = [], [], []
    for row in reader:
        if not row:
            continue
        if len(row) != 3:
            raise DataError(
                f"line {reader.line_num} of {path} has {len(row)} fields, expected 3 (sep=',')"
            )
        ids.append(_item_id(row[0], path, reader.line_num))
        titles.append(row[1])
        genres.append(row[2])
    return ids, titles, genres


def _years(titles: list[str]) -> pd.api.extensions.ExtensionArray:
    years = [int(m.group(1)) if (m := _YEAR.search(t)) else None for t in titles]
    return pd.array(years, dtype="Int64")


# -- loading --------------------------------------------------------------------------
def load_movielens(
    name: str | MovieLensSpec,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = True,
    progress: Progress | None = None,
) -> Ratings:
    """Load a MovieLens variant, downloading it (checksummed) when it is not on disk.

    Parameters
    ----------
    name : str or MovieLensSpec
        One of :data:`DATASETS` (``"ml-100k"``, ``"ml-1m"``, ``"ml-10m"``, ``"ml-20m"``,
        ``"ml-25m"``, ``"ml-latest-small"``).
    data_dir : path-like, optional
        Look (and download) only here instead of ``MFREC_DATA_DIR`` and the user cache;
        see :mod:`mfrec.data.fetch`.
    download : bool, default True
        Whether a missing dataset may be downloaded.
    progress : callable, optional
        ``progress(done_bytes, total_bytes)`` during a download.

    Returns
    -------
    Ratings
        See :func:`read_movielens`.

    Raises
    ------
    mfrec.exceptions.DatasetNotFoundError
        When the name is unknown, or the data is not on disk and cannot be downloaded.
    """
    spec = _spec(name)
    folder = ensure_dataset(spec, data_dir=data_dir, download=download, progress=progress)
    logger.info("reading %s from %s", spec.name, folder)
    return read_movielens(folder, spec)


def load_dataset(name: str, **kwargs: Any) -> Ratings:
    """Load a dataset by name: a MovieLens variant or ``"synthetic"``.

    Parameters
    ----------
    name : str
        ``"ml-100k"``, ``"ml-1m"``, ``"ml-10m"``, ``"ml-20m"``, ``"ml-25m"``,
        ``"ml-latest-small"`` or ``"synthetic"`` (a planted low-rank dataset, see
        :func:`mfrec.data.synthetic.default_synthetic`).
    **kwargs
        Passed on to :func:`load_movielens` (``data_dir``, ``download``, ``progress``)
        or to ``default_synthetic`` (``random_state``; the MovieLens options are
        ignored there, so one call works for every name).

    Returns
    -------
    Ratings

    Raises
    ------
    mfrec.exceptions.DatasetNotFoundError
        For an unknown name (the message lists the known ones) or a dataset that is not
        on disk and cannot be downloaded.
    """
    if str(name).strip().lower() == SYNTHETIC:
        from mfrec.data.synthetic import default_synthetic

        # Built in: where-to-find-it options of the MovieLens loaders do not apply.
        for option in ("data_dir", "download", "progress"):
            kwargs.pop(option, None)
        return default_synthetic(**kwargs).ratings
    try:
        spec = _spec(name)
    except DatasetNotFoundError:
        raise _unknown(name, [*DATASETS, SYNTHETIC]) from None
    return load_movielens(spec, **kwargs)


def dataset_status(data_dir: str | os.PathLike[str] | None = None) -> list[dict[str, Any]]:
    """What is known about each MovieLens variant and whether it is on this machine.

    Returns
    -------
    list of dict
        One per dataset, with keys ``name``, ``description``, ``n_ratings`` (in the
        official release), ``url`` and ``path`` (the folder found, as a string, or None
        when it would have to be downloaded). ``"synthetic"`` is always available and not
        listed.
    """
    rows = []
    for spec in DATASETS.values():
        found = find_dataset(spec, data_dir)
        release = None if found is None or not spec.updated else found_release(found)
        rows.append(
            {
                "name": spec.name,
                "description": spec.description
                if release is None
                else _describe_release(spec, release),
                "n_ratings": spec.n_ratings,
                "url": spec.url,
                "path": None if found is None else str(found),
                **({} if release is None else {"release": release}),
            }
        )
    return rows


# Sentences of the README.txt of GroupLens' updated releases (ml-latest-small):
# "It contains 100023 ratings and 2488 tag applications across 8570 movies. These data
# were created by 706 users between ... This dataset was generated on April 01, 2015."
_README_FACTS = {
    "n_ratings": r"contains ([\d,]+) ratings",
    "n_items": r"across ([\d,]+) movies",
    "n_users": r"created by ([\d,]+) users",
    "generated": r"generated on ([A-Z][a-z]+ \d{1,2}, \d{4})",
}


def found_release(folder: str | os.PathLike[str]) -> dict[str, Any] | None:
    """What a MovieLens copy's README.txt says of its release: ``generated`` (the date,
    as written), ``n_ratings``, ``n_users``, ``n_items``; None without a README that
    says when it was generated."""
    path = Path(folder) / "README.txt"
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    text = " ".join(text.split())
    facts: dict[str, Any] = {}
    for key, pattern in _README_FACTS.items():
        match = re.search(pattern, text)
        if match is not None:
            value = match.group(1)
            facts[key] = value if key == "generated" else int(value.replace(",", ""))
    return facts if "generated" in facts else None


def _describe_release(spec: MovieLensSpec, release: dict[str, Any]) -> str:
    low, high = spec.scale
    counts = []
    if "n_ratings" in release:
        counts.append(f"{release['n_ratings']:,} ratings {low:g}-{high:g}")
    if "n_users" in release:
        counts.append(f"by {release['n_users']:,} users")
    if "n_items" in release:
        counts.append(f"of {release['n_items']:,} movies")
    title = spec.description.split(":")[0].split(" (")[0]
    return (
        f"{title} as found here, the release generated {release['generated']}"
        + (f": {' '.join(counts)}" if counts else "")
        + f" (the release a download brings now has {spec.n_ratings:,} ratings)"
    )
