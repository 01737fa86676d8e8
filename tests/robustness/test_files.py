"""Bad ratings files: each gives a DataError (or FileNotFoundError) naming the file, the
line where there is one, and the fix -- or is read correctly. Plus hypothesis fuzzing:
no byte string makes the reader fail in any other way."""

from __future__ import annotations

import bz2
import gzip
import io
import logging
import os
import zipfile

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mfrec.data.readers import read_ratings
from mfrec.exceptions import DataError


def _compressed(data: bytes, codec: str) -> bytes:
    sink = pa.BufferOutputStream()
    stream = pa.CompressedOutputStream(sink, codec)
    stream.write(data)
    stream.close()
    return sink.getvalue().to_pybytes()


def _zip(data: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("ratings.csv", data)
    return out.getvalue()


def _parquet(frame: pd.DataFrame) -> bytes:
    out = io.BytesIO()
    frame.to_parquet(out)
    return out.getvalue()


GOOD = b"1,10,4\n2,10,3\n2,11,5\n"
BIG_GZ = gzip.compress(b"1,2,3\n4,5,6\n" * 5000)

# (id, file name, content, read_ratings keywords, phrase of the DataError)
ERRORS = [
    ("empty", "r.csv", b"", {}, "is empty"),
    ("only-newlines", "r.csv", b"\n\n\r\n", {}, "is empty"),
    ("header-only", "r.csv", b"user,item,rating\n", {}, "a header but no ratings"),
    ("one-column", "r.txt", b"1\n2\n", {}, "cannot tell the separator"),
    ("two-fields", "r.csv", b"1,2\n", {}, "line 1 of"),
    ("five-fields", "r.csv", b"1,2,3,4,5\n", {}, "has 5 fields"),
    ("ragged-line-3", "r.csv", b"1,2,3\n2,3,4\n3,4\n", {}, "line 3 of"),
    ("text-rating", "r.csv", b"1,2,3\n2,3,x\n", {}, "non-numeric rating 'x' at line 2"),
    ("nan-rating", "r.csv", b"1,2,3\n2,3,nan\n", {}, "missing rating (NaN) at line 2"),
    ("empty-rating", "r.csv", b"1,2,3\n2,3,\n", {}, "line 2"),
    ("inf-rating", "r.csv", b"1,2,inf\n", {}, "infinite rating"),
    ("rating-1e39", "r.csv", b"1,2,3\n2,3,1e39\n", {}, "rating 1e+39 at line 2"),
    ("rating-minus-1e39", "r.csv", b"1,2,-1e39\n", {}, "too large to store"),
    ("rating-1e39-text-ids", "r.csv", b"a,2,3\nb,3,1e39\n", {}, "too large to store"),
    ("outside-scale", "r.csv", b"1,2,3\n2,3,9\n", {"scale": (1, 5)}, "outside the declared"),
    ("bad-scale", "r.csv", GOOD, {"scale": (5, 1)}, "low < high"),
    ("missing-user", "r.csv", b"1,2,3\n,3,4\n", {}, "missing user id at line 2"),
    ("missing-item", "r.csv", b"1,2,3\n2,,4\n", {}, "missing item id at line 2"),
    ("duplicate", "r.csv", b"1,2,3\n1,2,4\n", {}, "duplicate rating of item 2 by user 1"),
    ("bad-duplicates", "r.csv", GOOD, {"duplicates": "first"}, "duplicates must be"),
    ("truncated-gzip", "r.csv.gz", BIG_GZ[: len(BIG_GZ) // 2], {}, "cannot read"),
    ("truncated-gzip-as-csv", "r.csv", BIG_GZ[: len(BIG_GZ) // 2], {}, "cannot read"),
    ("zip-archive", "r.csv", _zip(GOOD), {}, "is a zip archive"),
    ("xz-archive", "r.csv", b"\xfd7zXZ\x00" + b"\x00" * 20, {}, "is a xz archive"),
    ("utf16-le", "r.csv", "1,2,3\n".encode("utf-16"), {}, "UTF-16-LE"),
    ("utf16-be", "r.csv", b"\xfe\xff" + "1,2,3\n".encode("utf-16-be"), {}, "UTF-16-BE"),
    ("utf32-le", "r.csv", "1,2,3\n".encode("utf-32"), {}, "UTF-32-LE"),
    ("utf32-be", "r.csv", b"\x00\x00\xfe\xff" + "1,2,3\n".encode("utf-32-be"), {}, "UTF-32-BE"),
    ("utf16-no-bom", "r.csv", "1,2,3\n4,5,6\n".encode("utf-16-le"), {}, "UTF-16 text without"),
    ("binary", "r.csv", bytes(range(256)) * 4, {}, "binary data"),
    ("utf16-in-gzip", "r.csv.gz", gzip.compress("1,2,3\n".encode("utf-16")), {}, "UTF-16-LE"),
    ("encoding-utf16", "r.csv", GOOD, {"encoding": "utf-16"}, "not ASCII-compatible"),
    ("encoding-utf32", "r.csv", GOOD, {"encoding": "utf_32"}, "not ASCII-compatible"),
    ("encoding-unknown", "r.csv", GOOD, {"encoding": "klingon"}, "unknown text encoding"),
    ("invalid-utf8-id", "r.csv", b"1,2,3\n\xff\xfe\xfa,3,4\n", {}, "invalid UTF8"),
    ("first-line-2mib", "r.csv", b"1" * (2 << 20) + b"\n", {}, "longer than 1,048,576"),
    ("first-field-200kb", "r.csv", b"1,2," + b"9" * 200_000 + b"\n", {}, "the first line of"),
    ("line-2-3mib", "r.csv", b"1,2,3\n4,5," + b"6" * (3 << 20) + b"\n", {}, "line 2 of"),
    ("line-3-3mib", "r.csv", b"1,2,3\n1,3,3\n" + b"4" * (3 << 20) + b",5,6\n", {}, "line 3 of"),
    ("typo-id-strict", "r.csv", b"1,2,3\n2,3,4\n2;5,3,4\n", {"ids": "int"}, "'2;5' at line 3"),
    ("bad-ids-option", "r.csv", GOOD, {"ids": "float"}, "ids must be"),
    ("bad-header-option", "r.csv", GOOD, {"header": "yes"}, "header must be"),
    ("empty-sep", "r.csv", GOOD, {"sep": ""}, "sep must be"),
    ("quote-sep", "r.csv", GOOD, {"sep": '"'}, "sep must be"),
    ("newline-sep", "r.csv", GOOD, {"sep": "\n"}, "sep must be"),
    ("no-rating-role", "r.csv", GOOD, {"columns": "user,item"}, "has no rating column"),
    ("unknown-role", "r.csv", GOOD, {"columns": "user,item,rating,x"}, "unknown column role"),
    ("role-twice", "r.csv", GOOD, {"columns": "user,user,rating"}, "is given 2 times"),
    ("role-count", "r.csv", GOOD, {"columns": "user,item,rating,_"}, "gives 4 roles"),
    ("columns-type", "r.csv", GOOD, {"columns": 5}, "columns must be"),
    (
        "dict-missing-name",
        "r.csv",
        b"u,i,r\n1,2,3\n",
        {"columns": {"user": "u", "item": "i", "rating": "score"}},
        "has no column for rating='score'",
    ),
    (
        "dict-and-no-header",
        "r.csv",
        GOOD,
        {"columns": {"user": "u", "item": "i", "rating": "r"}, "header": False},
        "header=False",
    ),
    ("two-user-columns", "r.csv", b"user,userId,item,rating\n1,2,3,4\n", {}, "several user"),
    ("timestamp-huge", "r.csv", b"1,2,3,1e30\n", {}, "out of range"),
    ("timestamp-text", "r.csv", b"1,2,3,noon\n", {}, "timestamp 'noon' at line 1"),
    ("rating-words", "r.csv", b"1,2,3\n1,3,five\n", {}, "non-numeric rating 'five' at line 2"),
    ("parquet-damaged", "r.parquet", b"PAR1" + b"\x00" * 50, {}, "as Parquet"),
    (
        "parquet-no-rating",
        "r.parquet",
        _parquet(pd.DataFrame({"user": [1], "item": [2]})),
        {},
        "has no column for rating",
    ),
    (
        "parquet-nan-rating",
        "r.pq",
        _parquet(pd.DataFrame({"user": [1, 2], "item": [2, 3], "rating": [1.0, np.nan]})),
        {},
        "missing rating (NaN) at row 2",
    ),
    (
        "parquet-empty",
        "r.parquet",
        _parquet(
            pd.DataFrame(
                {
                    "user": pd.Series([], dtype=int),
                    "item": pd.Series([], dtype=int),
                    "rating": pd.Series([], dtype=float),
                }
            )
        ),
        {},
        "has no ratings",
    ),
    ("model-file-as-ratings", "m.mfrec", b"PK\x03\x04" + b"\x00" * 40, {}, "zip archive"),
]


@pytest.mark.parametrize(
    ("name", "content", "kwargs", "phrase"), [c[1:] for c in ERRORS], ids=[c[0] for c in ERRORS]
)
def test_bad_file(tmp_path, name, content, kwargs, phrase):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataError) as caught:
        read_ratings(path, **kwargs)
    assert phrase in str(caught.value)


def _ids(kind, first):
    def check(r):
        assert r.users.kind == kind
        assert r.users.ids[0] == first

    return check


# (id, file name, content, keywords, check of the Ratings read)
READ = [
    ("gzip-named-csv", "r.csv", gzip.compress(GOOD), {}, _ids("int", 1)),
    ("bzip2-named-txt", "r.txt", bz2.compress(GOOD.replace(b",", b"\t")), {}, _ids("int", 1)),
    ("zstd-named-csv", "r.csv", _compressed(GOOD, "zstd"), {}, _ids("int", 1)),
    ("plain-named-gz", "r.csv.gz", GOOD, {}, _ids("int", 1)),
    ("gzip-named-gz", "r.csv.gz", gzip.compress(GOOD), {}, _ids("int", 1)),
    (
        "parquet-named-csv",
        "r.csv",
        _parquet(pd.DataFrame({"user": [1, 2], "item": [3, 4], "rating": [1.0, 2.0]})),
        {},
        _ids("int", 1),
    ),
    ("utf8-bom-no-header", "r.csv", b"\xef\xbb\xbf" + GOOD, {}, _ids("int", 1)),
    ("utf8-bom-header", "r.csv", b"\xef\xbb\xbfuser,item,rating\n" + GOOD, {}, _ids("int", 1)),
    ("crlf", "r.csv", GOOD.replace(b"\n", b"\r\n"), {}, _ids("int", 1)),
    ("cr-only", "r.csv", GOOD.replace(b"\n", b"\r"), {}, _ids("int", 1)),
    ("leading-blank-lines", "r.csv", b"\n\n" + GOOD, {}, _ids("int", 1)),
    ("no-final-newline", "r.csv", GOOD.rstrip(), {}, _ids("int", 1)),
    (
        "latin1",
        "r.csv",
        "ä,10,4\nb,10,3\n".encode("latin-1"),
        {"encoding": "latin-1"},
        lambda r: r.users.kind == "str" and "ä" in r.users,
    ),
    (
        "encoding-utf8-sig",
        "r.csv",
        b"\xef\xbb\xbf" + GOOD,
        {"encoding": "utf-8-sig"},
        _ids("int", 1),
    ),
    ("canonical-leading-zero", "r.csv", b"007,1,3\n8,1,3\n", {}, _ids("str", "007")),
    ("ids-as-str", "r.csv", GOOD, {"ids": "str"}, _ids("str", "1")),
    ("bigint-id", "r.csv", b"%d,1,3\n2,1,3\n" % 2**70, {}, _ids("bigint", 2)),
    ("negative-rating", "r.csv", b"1,2,-3\n", {}, lambda r: r.rating[0] == -3),
    ("rating-3e38-fits", "r.csv", b"1,2,3e38\n", {}, lambda r: np.isfinite(r.rating).all()),
    ("double-colon", "r.dat", GOOD.replace(b",", b"::"), {}, _ids("int", 1)),
    ("quoted-fields", "r.csv", b'"1","10","4"\n"2","10","3"\n', {}, _ids("int", 1)),
    (
        "last-duplicate",
        "r.csv",
        b"1,2,3\n1,2,4\n",
        {"duplicates": "last"},
        lambda r: r.rating.tolist() == [4.0],
    ),
]


@pytest.mark.parametrize(
    ("name", "content", "kwargs", "check"), [c[1:] for c in READ], ids=[c[0] for c in READ]
)
def test_read_correctly(tmp_path, name, content, kwargs, check):
    path = tmp_path / name
    path.write_bytes(content)
    ratings = read_ratings(path, **kwargs)
    assert check(ratings) is not False


def test_typo_in_int_ids_warns_with_line(tmp_path, caplog):
    path = tmp_path / "r.csv"
    path.write_bytes(b"1,2,3\n2,3,4\n2;5,3,4\n4,5,6\n")
    with caplog.at_level(logging.WARNING, logger="mfrec.data.readers"):
        ratings = read_ratings(path)
    assert ratings.users.kind == "str"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "'2;5' at line 3 of" in warnings[0].getMessage()
    assert "ids='int'" in warnings[0].getMessage()


def test_string_ids_do_not_warn(tmp_path, caplog):
    path = tmp_path / "r.csv"
    path.write_bytes(b"a,x,3\nb,y,4\n")
    with caplog.at_level(logging.WARNING, logger="mfrec.data.readers"):
        read_ratings(path)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_pipe_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "ratings.csv"
    os.mkfifo(fifo)  # nobody writes to it: opening it for reading would block forever
    with pytest.raises(DataError, match="not a regular file"):
        read_ratings(fifo)


def test_device_folder_and_missing_file(tmp_path):
    with pytest.raises(DataError, match="not a regular file"):
        read_ratings("/dev/zero")
    with pytest.raises(DataError, match="is a folder"):
        read_ratings(tmp_path)
    with pytest.raises(FileNotFoundError, match="no such ratings file"):
        read_ratings(tmp_path / "absent.csv")


# -- fuzzing --------------------------------------------------------------------------
ALPHABET = st.sampled_from(
    [b"1", b"0", b"7", b"-", b"+", b".", b"e", b",", b"\t", b";", b"::", b'"', b" ", b"\n",
     b"\r", b"a", b"\xff", b"\x00", b"nan", b"inf", b"1e39", b"user", b"rating"]
)  # fmt: skip


def _read_or_data_error(path, **kwargs):
    try:
        ratings = read_ratings(path, **kwargs)
    except DataError:
        return None
    assert len(ratings) > 0
    assert np.isfinite(ratings.rating).all()
    assert ratings.user_index.max() < ratings.n_users
    assert ratings.item_index.max() < ratings.n_items
    return ratings


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tokens=st.lists(ALPHABET, max_size=40), suffix=st.sampled_from([".csv", ".tsv", ".dat"]))
def test_fuzz_text_tokens(tmp_path, tokens, suffix):
    path = tmp_path / f"fuzz{suffix}"
    path.write_bytes(b"".join(tokens))
    _read_or_data_error(path)


@settings(max_examples=100, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=300), compress=st.booleans())
def test_fuzz_bytes(tmp_path, data, compress):
    path = tmp_path / "fuzz.csv"
    path.write_bytes(gzip.compress(data) if compress else data)
    _read_or_data_error(path)


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=st.lists(
        st.tuples(
            st.integers(-5, 2**65) | st.text(max_size=3),
            st.integers(0, 50),
            st.floats(allow_nan=True, allow_infinity=True, width=64),
        ),
        min_size=1,
        max_size=20,
    ),
    ids=st.sampled_from(["auto", "int", "str"]),
)
def test_fuzz_rows(tmp_path, rows, ids):
    lines = [f"{u},{i},{r!r}" for u, i, r in rows]
    path = tmp_path / "rows.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8", errors="surrogatepass")
    ratings = _read_or_data_error(path, ids=ids, duplicates="last")
    if ratings is not None and ids == "int":
        assert ratings.users.kind in ("int", "uint", "bigint")
