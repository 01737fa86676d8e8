"""MovieLens specs, parsers of the official layouts (on generated files) and the real data."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from mfrec.data.movielens import (
    DATASETS,
    MovieLensSpec,
    dataset_status,
    load_dataset,
    load_movielens,
    read_items,
    read_movielens,
)
from mfrec.exceptions import DataError, DatasetNotFoundError


@pytest.fixture(autouse=True)
def _no_downloads(monkeypatch, tmp_path):
    """Nothing here may reach the network or the user's cache."""
    monkeypatch.setenv("MFREC_OFFLINE", "1")
    monkeypatch.setenv("MFREC_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("MFREC_DATA_DIR", raising=False)


def _rows(n: int = 50, seed: int = 0, half: bool = False) -> np.ndarray:
    rng = np.random.default_rng(seed)
    pairs = rng.choice(20 * 30, size=n, replace=False)
    ratings = rng.integers(1, 11, n) / 2 if half else rng.integers(1, 6, n).astype(float)
    return np.column_stack([pairs // 30 + 1, pairs % 30 + 1, ratings, rng.integers(8e8, 9e8, n)])


def _write_ml100k(folder: Path, rows: np.ndarray) -> None:
    folder.mkdir(parents=True)
    (folder / "u.data").write_text(
        "".join(f"{int(u)}\t{int(i)}\t{int(r)}\t{int(t)}\n" for u, i, r, t in rows)
    )
    (folder / "u.genre").write_text("unknown|0\nAction|1\nComedy|2\n\n")
    items = [
        "1|Héros (1995)|01-Jan-1995||http://x|0|1|1",
        "2|unknown||||1|0|0",
        "3|Two Words (1977)|01-Jan-1977||http://y|0|0|1",
    ]
    (folder / "u.item").write_bytes(("\n".join(items) + "\n").encode("latin-1"))


# -- specs --------------------------------------------------------------------------
def test_every_variant_is_described():
    assert set(DATASETS) == {"ml-100k", "ml-1m", "ml-10m", "ml-20m", "ml-25m", "ml-latest-small"}
    for name, spec in DATASETS.items():
        assert spec.name == name
        assert spec.url == f"https://files.grouplens.org/datasets/movielens/{name}.zip"
        assert spec.description
        if spec.sha256 is not None:
            assert re.fullmatch(r"[0-9a-f]{64}", spec.sha256)
            assert spec.md5 is None
    assert DATASETS["ml-10m"].folder == "ml-10M100K"
    assert DATASETS["ml-10m"].sha256 is None
    assert DATASETS["ml-10m"].md5 == "ce571fd55effeba0271552578f2648bd"
    assert DATASETS["ml-100k"].scale == (1.0, 5.0)
    assert DATASETS["ml-100k"].rating_step == 1.0
    assert DATASETS["ml-25m"].scale == (0.5, 5.0)
    assert DATASETS["ml-25m"].rating_step == 0.5


def test_specs_are_frozen():
    with pytest.raises(AttributeError):
        DATASETS["ml-100k"].url = "http://elsewhere"  # type: ignore[misc]


# -- parsers on generated files in the official layouts -----------------------------
def test_ml100k_layout(tmp_path):
    rows = _rows()
    _write_ml100k(tmp_path / "ml-100k", rows)
    ratings = read_movielens(tmp_path / "ml-100k", "ml-100k")
    frame = ratings.to_frame()
    np.testing.assert_array_equal(frame["user"], rows[:, 0].astype(np.int64))
    np.testing.assert_array_equal(frame["item"], rows[:, 1].astype(np.int64))
    np.testing.assert_array_equal(frame["rating"], rows[:, 2])
    np.testing.assert_array_equal(frame["timestamp"], rows[:, 3].astype(np.int64))
    assert ratings.name == "ml-100k"
    assert ratings.scale == (1.0, 5.0)
    info = ratings.item_info
    assert list(info.index) == [1, 2, 3]
    assert info.loc[1, "title"] == "Héros (1995)"
    assert info.loc[1, "year"] == 1995
    assert info.loc[1, "genres"] == "Action|Comedy"
    assert info.loc[2, "genres"] == "unknown"
    assert info["year"].isna().tolist() == [False, True, False]
    assert str(info["year"].dtype) == "Int64"


def test_ml100k_half_star_is_rejected(tmp_path):
    rows = _rows()
    _write_ml100k(tmp_path / "ml-100k", rows)
    path = tmp_path / "ml-100k" / "u.data"
    lines = path.read_text().splitlines()
    lines[6] = "1\t1\t3.5\t881250949"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(
        DataError, match=r"rating 3\.5 at line 7 of .*u\.data is not a multiple of 1"
    ):
        read_movielens(tmp_path / "ml-100k", "ml-100k")


def test_ml100k_out_of_scale_names_the_line(tmp_path):
    _write_ml100k(tmp_path / "ml-100k", _rows())
    path = tmp_path / "ml-100k" / "u.data"
    lines = path.read_text().splitlines()
    lines[3] = "1\t1\t6\t881250949"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(
        DataError, match=r"rating 6 at line 4 of .*u\.data is outside the declared scale"
    ):
        read_movielens(tmp_path / "ml-100k", "ml-100k")


def test_ml1m_layout(tmp_path):
    rows = _rows(seed=1)
    folder = tmp_path / "ml-1m"
    folder.mkdir()
    (folder / "ratings.dat").write_text(
        "".join(f"{int(u)}::{int(i)}::{int(r)}::{int(t)}\n" for u, i, r, t in rows)
    )
    movies = (
        '1::Amélie (2001)::Comedy|Romance\n2::"Great" Cats (1998)::Musical\n3::No Year::Drama\n'
    )
    (folder / "movies.dat").write_bytes(movies.encode("latin-1"))
    ratings = read_movielens(folder, "ml-1m")
    np.testing.assert_array_equal(ratings.to_frame()["user"], rows[:, 0].astype(np.int64))
    np.testing.assert_array_equal(ratings.rating, rows[:, 2])
    info = ratings.item_info
    assert info.loc[1, "title"] == "Amélie (2001)"
    assert info.loc[1, "genres"] == "Comedy|Romance"
    assert info.loc[2, "title"] == '"Great" Cats (1998)'
    assert info.loc[2, "year"] == 1998
    assert info["year"].isna().tolist() == [False, False, True]


def test_csv_layout(tmp_path):
    rows = _rows(seed=2, half=True)
    folder = tmp_path / "ml-latest-small"
    folder.mkdir()
    body = "".join(f"{int(u)},{int(i)},{r:.1f},{int(t)}\n" for u, i, r, t in rows)
    (folder / "ratings.csv").write_text("userId,movieId,rating,timestamp\n" + body)
    (folder / "movies.csv").write_text(
        "movieId,title,genres\n"
        '1,"American President, The (1995)",Comedy|Drama|Romance\n'
        "2,Babylon 5 ,Sci-Fi\n"
        "3,Señor (2010) ,(no genres listed)\n",
        encoding="utf-8",
    )
    ratings = read_movielens(folder, "ml-latest-small")
    np.testing.assert_array_equal(ratings.rating, rows[:, 2])
    np.testing.assert_array_equal(ratings.timestamp, rows[:, 3].astype(np.int64))
    info = ratings.item_info
    assert info.loc[1, "title"] == "American President, The (1995)"
    assert info.loc[1, "year"] == 1995
    assert info.loc[3, "title"] == "Señor (2010) "
    assert info.loc[3, "year"] == 2010
    assert info["year"].isna().tolist() == [False, True, False]
    assert list(ratings.item_titles()[:1]) == [info.loc[ratings.items.ids[0], "title"]]


def test_missing_items_file_still_loads(tmp_path, caplog):
    rows = _rows()
    _write_ml100k(tmp_path / "ml-100k", rows)
    (tmp_path / "ml-100k" / "u.item").unlink()
    ratings = read_movielens(tmp_path / "ml-100k", "ml-100k")
    assert len(ratings) == len(rows)
    assert ratings.item_info is None
    assert "has no titles" in caplog.text


def test_bad_items_file(tmp_path):
    path = tmp_path / "movies.csv"
    path.write_text("id,name\n1,x\n")
    with pytest.raises(DataError, match=r"should start with the header movieId,title,genres"):
        read_items(path, "csv")
    path = tmp_path / "movies.dat"
    path.write_text("1::A (1990)::Drama\nx::B (1991)::Drama\n")
    with pytest.raises(DataError, match=r"line 2 of .*movies\.dat: movie id 'x' is not an integer"):
        read_items(path, "dat")


# -- loading by name ----------------------------------------------------------------
def test_load_dataset_from_data_dir(monkeypatch, tmp_path):
    rows = _rows()
    _write_ml100k(tmp_path / "data" / "ml-100k", rows)
    monkeypatch.setenv("MFREC_DATA_DIR", str(tmp_path / "data"))
    ratings = load_dataset("ml-100k")
    assert len(ratings) == len(rows)
    assert load_dataset("ML-100K").n_users == ratings.n_users


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(
        DatasetNotFoundError,
        match=r"unknown dataset 'ml100k'.*ml-100k, ml-1m.*synthetic.*Did you mean 'ml-100k'",
    ):
        load_dataset("ml100k")
    with pytest.raises(DatasetNotFoundError, match=r"unknown dataset 'netflix'"):
        load_movielens("netflix")


def test_missing_dataset_says_what_to_do():
    with pytest.raises(
        DatasetNotFoundError,
        match=r"ml-1m is not on this machine.*MFREC_OFFLINE=1.*ml-1m\.zip yourself",
    ):
        load_dataset("ml-1m")


def test_synthetic_dataset():
    synthetic = pytest.importorskip("mfrec.data.synthetic")
    ratings = load_dataset("synthetic", download=False)
    expected = synthetic.default_synthetic().ratings
    assert len(ratings) == len(expected) > 0
    np.testing.assert_array_equal(ratings.rating, expected.rating)
    other = load_dataset("synthetic", random_state=1)
    assert not np.array_equal(other.rating, expected.rating)


def test_dataset_status(monkeypatch, tmp_path):
    _write_ml100k(tmp_path / "data" / "ml-100k", _rows())
    (tmp_path / "data" / "ml-1m").mkdir()  # no ratings file: does not count
    monkeypatch.setenv("MFREC_DATA_DIR", str(tmp_path / "data"))
    status = {row["name"]: row for row in dataset_status()}
    assert list(status) == list(DATASETS)
    assert status["ml-100k"]["path"] == str(tmp_path / "data" / "ml-100k")
    assert status["ml-1m"]["path"] is None
    assert status["ml-25m"]["n_ratings"] == 25_000_095
    assert all(row["description"] for row in status.values())


def test_custom_spec_is_accepted(tmp_path):
    rows = _rows()
    _write_ml100k(tmp_path / "mine", rows)
    spec = MovieLensSpec(**{**DATASETS["ml-100k"].__dict__, "name": "mine", "folder": "mine"})
    ratings = load_movielens(spec, data_dir=tmp_path)
    assert ratings.name == "mine"
    assert len(ratings) == len(rows)


# -- the real data ------------------------------------------------------------------
@pytest.mark.realdata
def test_ml100k_real(ml100k_dir, monkeypatch):
    monkeypatch.setenv("MFREC_DATA_DIR", str(ml100k_dir.parent))
    ratings = load_dataset("ml-100k")
    assert len(ratings) == 100_000
    assert ratings.n_users == 943
    assert ratings.n_items == 1682
    assert ratings.name == "ml-100k"
    # Row order is u.data's line order (the official splits depend on it).
    lines = np.loadtxt(ml100k_dir / "u.data", dtype=np.int64)
    frame = ratings.to_frame()
    np.testing.assert_array_equal(frame["user"], lines[:, 0])
    np.testing.assert_array_equal(frame["item"], lines[:, 1])
    np.testing.assert_array_equal(frame["rating"], lines[:, 2])
    np.testing.assert_array_equal(frame["timestamp"], lines[:, 3])
    info = ratings.item_info
    assert len(info) == 1682
    assert info.loc[1, "title"].startswith("Toy Story")
    assert info.loc[1, "year"] == 1995
    assert info.loc[1, "genres"] == "Animation|Children's|Comedy"
    assert info["title"].notna().all()
    assert info["year"].notna().sum() > 1600


@pytest.mark.realdata
def test_ml_latest_small_real(ml_latest_small_dir, monkeypatch):
    monkeypatch.setenv("MFREC_DATA_DIR", str(ml_latest_small_dir.parent))
    ratings = load_dataset("ml-latest-small")
    with open(ml_latest_small_dir / "ratings.csv") as handle:
        n_lines = sum(1 for line in handle if line.strip())
    assert len(ratings) == n_lines - 1
    assert ratings.scale == (0.5, 5.0)
    assert np.any(ratings.rating % 1 == 0.5)
    assert set(np.unique(ratings.rating)) <= {v / 2 for v in range(1, 11)}
    first = np.loadtxt(ml_latest_small_dir / "ratings.csv", delimiter=",", skiprows=1, max_rows=5)
    np.testing.assert_array_equal(ratings.to_frame()["user"][:5], first[:, 0].astype(np.int64))
    np.testing.assert_array_equal(ratings.rating[:5], first[:, 2])
    assert ratings.item_info.loc[1, "title"].startswith("Toy Story")
    assert ratings.item_info.loc[1, "year"] == 1995
