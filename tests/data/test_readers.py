"""read_ratings: formats, separators, headers, column roles, exact ids and every error."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mfrec.data.readers import parse_columns, read_ratings
from mfrec.exceptions import DataError


def _frame(n: int = 60, seed: int = 0) -> pd.DataFrame:
    """Distinct (user, item) pairs with half-star ratings and timestamps."""
    rng = np.random.default_rng(seed)
    pairs = rng.choice(40 * 30, size=n, replace=False)
    return pd.DataFrame(
        {
            "user": pairs // 30 + 1,
            "item": pairs % 30 + 100,
            "rating": rng.integers(1, 11, n) / 2,
            "timestamp": rng.integers(800_000_000, 900_000_000, n),
        }
    )


def _write(path: Path, frame: pd.DataFrame, sep: str, header: list[str] | None = None) -> Path:
    lines = [] if header is None else [sep.join(header)]
    lines += [
        sep.join(f"{v:g}" if isinstance(v, float) else str(v) for v in row)
        for row in frame.itertuples(index=False)
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _assert_same(ratings, frame: pd.DataFrame) -> None:
    """The Ratings hold exactly the rows of ``frame``, in order."""
    got = ratings.to_frame()
    np.testing.assert_array_equal(got["user"].to_numpy(), frame["user"].to_numpy())
    np.testing.assert_array_equal(got["item"].to_numpy(), frame["item"].to_numpy())
    np.testing.assert_array_equal(
        got["rating"].to_numpy(), frame["rating"].to_numpy(dtype=np.float32)
    )
    if "timestamp" in frame:
        np.testing.assert_array_equal(got["timestamp"].to_numpy(), frame["timestamp"].to_numpy())
    else:
        assert ratings.timestamp is None


# -- formats and separators ---------------------------------------------------------
@pytest.mark.parametrize(
    ("filename", "sep"),
    [
        ("r.csv", ","),
        ("r.tsv", "\t"),
        ("ratings.dat", "::"),
        ("r.txt", "\t"),
        ("r.txt", ","),
        ("r.txt", ";"),
        ("r.txt", "|"),
        ("r", "::"),
    ],
)
def test_separator_is_detected(tmp_path, filename, sep):
    frame = _frame()
    path = _write(tmp_path / filename, frame, sep)
    ratings = read_ratings(path)
    _assert_same(ratings, frame)
    assert ratings.users.kind == "int"
    assert ratings.items.kind == "int"
    assert ratings.name == filename


@pytest.mark.parametrize("sep", [" ", ":", "#", "::", "\t"])
def test_explicit_separator(tmp_path, sep):
    frame = _frame()
    path = _write(tmp_path / "r.data", frame, sep)
    _assert_same(read_ratings(path, sep=sep), frame)


def test_escaped_tab_separator_from_command_line(tmp_path):
    frame = _frame()
    path = _write(tmp_path / "r.data", frame, "\t")
    _assert_same(read_ratings(path, sep="\\t"), frame)


def test_csv_extension_wins_over_sniffing(tmp_path):
    # A .csv whose first line contains '|' inside a field is still comma-separated.
    path = tmp_path / "r.csv"
    path.write_text('user,item,rating\n"a|b",1,3\nc,2,4\n')
    ratings = read_ratings(path)
    assert list(ratings.to_frame()["user"]) == ["a|b", "c"]


def test_quoted_fields(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text('"userId","movieId","rating"\n"1","10","4.5"\n"2","10","3"\n')
    ratings = read_ratings(path)
    assert list(ratings.users.ids) == [1, 2]
    np.testing.assert_array_equal(ratings.rating, [4.5, 3.0])


def test_gzip_compressed_csv(tmp_path):
    frame = _frame()
    plain = _write(tmp_path / "plain.csv", frame, ",", ["user", "item", "rating", "timestamp"])
    path = tmp_path / "r.csv.gz"
    path.write_bytes(gzip.compress(plain.read_bytes()))
    _assert_same(read_ratings(path), frame)


def test_crlf_line_endings_and_blank_lines(tmp_path):
    path = tmp_path / "r.csv"
    path.write_bytes(b"\r\n\r\nuser,item,rating\r\n1,2,3\r\n\r\n4,5,2\r\n")
    ratings = read_ratings(path)
    _assert_same(ratings, pd.DataFrame({"user": [1, 4], "item": [2, 5], "rating": [3.0, 2.0]}))


def test_utf8_bom_and_string_ids(tmp_path):
    path = tmp_path / "r.csv"
    path.write_bytes("\ufeffuser,item,rating\nzoé,Amélie,5\nbob,Amélie,4\n".encode())
    ratings = read_ratings(path)
    assert ratings.users.kind == "str"
    assert list(ratings.to_frame()["user"]) == ["zoé", "bob"]
    assert list(ratings.items.ids) == ["Amélie"]


def test_latin1_encoding(tmp_path):
    path = tmp_path / "r.csv"
    path.write_bytes("user,item,rating\nzoé,1,5\n".encode("latin-1"))
    assert list(read_ratings(path, encoding="latin-1").users.ids) == ["zoé"]


def test_parquet(tmp_path):
    frame = _frame()
    path = tmp_path / "r.parquet"
    frame.rename(columns={"user": "userId", "item": "movieId"}).to_parquet(path)
    ratings = read_ratings(path)
    _assert_same(ratings, frame)
    assert ratings.users.kind == "int"
    assert ratings.name == "r.parquet"


def test_parquet_keeps_stored_types_and_roles(tmp_path):
    path = tmp_path / "r.pq"
    table = pa.table(
        {
            "who": pa.array(["007", "7", "007"]).dictionary_encode(),
            "what": pa.array([1, 2, 2], pa.int32()),
            "stars": pa.array([1.0, 2.0, 3.0]),
            "note": ["a", "b", "c"],
        }
    )
    pq.write_table(table, path)
    ratings = read_ratings(path, columns="user,item,rating,_")
    assert ratings.users.kind == "str"
    assert list(ratings.to_frame()["user"]) == ["007", "7", "007"]
    assert list(ratings.to_frame()["item"]) == [1, 2, 2]
    by_name = read_ratings(path, columns={"user": "who", "item": "what", "rating": "stars"})
    np.testing.assert_array_equal(by_name.rating, [1.0, 2.0, 3.0])


def test_dataframe_input_recognises_header_names():
    frame = pd.DataFrame(
        {"UserID": [1, 2], "Movie_Id": [5, 5], "Score": [3.0, 4.0], "TS": [10, 20]}
    )
    ratings = read_ratings(frame)
    _assert_same(
        ratings,
        pd.DataFrame({"user": [1, 2], "item": [5, 5], "rating": [3.0, 4.0], "timestamp": [10, 20]}),
    )


# -- header inference ---------------------------------------------------------------
def test_header_inferred_present_and_absent(tmp_path):
    frame = _frame()
    with_header = _write(
        tmp_path / "h.csv", frame, ",", ["userId", "movieId", "rating", "timestamp"]
    )
    without = _write(tmp_path / "n.csv", frame, ",")
    _assert_same(read_ratings(with_header), frame)
    _assert_same(read_ratings(without), frame)
    assert len(read_ratings(with_header)) == len(read_ratings(without)) == len(frame)


def test_header_true_skips_a_numeric_first_line(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("1,2,3\n4,5,2\n")
    ratings = read_ratings(path, header=True, columns="user,item,rating")
    _assert_same(ratings, pd.DataFrame({"user": [4], "item": [5], "rating": [2.0]}))


def test_header_false_reads_the_header_as_data(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("user,item,rating\n1,2,3\n")
    with pytest.raises(DataError, match=r"non-numeric rating 'rating' at line 1 of .*r\.csv"):
        read_ratings(path, header=False)


def test_header_inference_follows_the_rating_role(tmp_path):
    path = tmp_path / "r.txt"
    path.write_text("3\tu1\ti1\n4\tu2\ti1\n")  # rating first; ids are not numbers
    ratings = read_ratings(path, columns="rating,user,item")
    assert list(ratings.to_frame()["user"]) == ["u1", "u2"]
    np.testing.assert_array_equal(ratings.rating, [3.0, 4.0])


def test_bad_header_argument(tmp_path):
    path = _write(tmp_path / "r.csv", _frame(), ",")
    with pytest.raises(DataError, match="header must be 'infer', True or False"):
        read_ratings(path, header="yes")


# -- column roles -------------------------------------------------------------------
def test_role_string_reorders_and_skips(tmp_path):
    frame = _frame()
    shuffled = frame[["item", "user", "rating", "timestamp"]].assign(extra="x")
    path = _write(tmp_path / "r.csv", shuffled, ",")
    ratings = read_ratings(path, columns="item, USER ,rating,_,_")
    _assert_same(ratings, frame[["user", "item", "rating"]])
    ratings = read_ratings(path, columns=["item", "user", "rating", "timestamp", "_"])
    _assert_same(ratings, frame)


def test_role_dict_names_header_columns(tmp_path):
    frame = _frame()
    path = _write(tmp_path / "r.csv", frame, ",", ["who", "what", "stars", "when"])
    ratings = read_ratings(
        path, columns={"user": "who", "item": "what", "rating": "stars", "timestamp": "when"}
    )
    _assert_same(ratings, frame)
    ratings = read_ratings(path, columns={"user": "WHO", "item": "what", "rating": "stars"})
    _assert_same(ratings, frame[["user", "item", "rating"]])


@pytest.mark.parametrize(
    "names",
    [
        ["user", "item", "rating", "timestamp"],
        ["userId", "movieId", "rating", "timestamp"],
        ["USER_ID", "Item_Id", "Score", "ts"],
        ["user_id", "movie_id", "rating", "time"],
        ["UserId", "ItemId", "rating", "Timestamp"],
    ],
)
def test_header_names_are_recognised(tmp_path, names):
    frame = _frame()
    path = _write(tmp_path / "r.csv", frame, ",", names)
    _assert_same(read_ratings(path), frame)


def test_header_without_timestamp_column(tmp_path):
    frame = _frame()[["item", "rating", "user"]]
    path = _write(tmp_path / "r.csv", frame, ",", ["movieId", "rating", "userId"])
    _assert_same(read_ratings(path), frame)


def test_headerless_file_with_five_columns_needs_roles(tmp_path):
    path = _write(tmp_path / "r.csv", _frame().assign(x=1), ",")
    with pytest.raises(DataError, match=r"line 1 of .*r\.csv has 5 fields .*columns="):
        read_ratings(path)
    assert len(read_ratings(path, columns="user,item,rating,timestamp,_")) == 60


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        ("user,film,rating", r"unknown column role 'film'.*user, item, rating, timestamp and _"),
        ("user,item", r"has no rating column; the roles are user, item, rating, timestamp and _"),
        ("user,item,rating,user", r"column role 'user' is given 2 times"),
        (
            {"user": "u", "movie": "i", "rating": "r"},
            r"unknown column role 'movie'.*user, item, rating and timestamp",
        ),
        ({"user": "u", "rating": "r"}, r"must name the item column"),
        ({"user": "u", "item": 3, "rating": "r"}, r"maps roles to header column names"),
        (42, r"columns must be a comma-separated string, a list of roles or a dict"),
    ],
)
def test_bad_roles(columns, message):
    with pytest.raises(DataError, match=message):
        parse_columns(columns)


def test_role_count_must_match_columns(tmp_path):
    path = _write(tmp_path / "r.csv", _frame(), ",")
    with pytest.raises(
        DataError, match=r"columns= gives 3 roles but .* has 4 columns.*'_' for a column to skip"
    ):
        read_ratings(path, columns="user,item,rating")


def test_missing_header_column_lists_the_header(tmp_path):
    path = _write(tmp_path / "r.csv", _frame(), ",", ["uid", "iid", "rating", "timestamp"])
    with pytest.raises(
        DataError,
        match=r"header of .*r\.csv .*has no column for user, item; its columns are "
        r"\['uid', 'iid', 'rating', 'timestamp'\]\. Name them with columns=, e.g. columns=\{'user'",
    ):
        read_ratings(path)
    with pytest.raises(
        DataError, match=r"has no column for item='movieId'; its columns are \['uid'"
    ):
        read_ratings(path, columns={"user": "uid", "item": "movieId", "rating": "rating"})


def test_ambiguous_header_names(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("user,user_id,item,rating\n1,2,3,4\n")
    with pytest.raises(DataError, match=r"several user columns \['user', 'user_id'\]"):
        read_ratings(path)


def test_dict_roles_need_a_header(tmp_path):
    path = _write(tmp_path / "r.csv", _frame(), ",")
    with pytest.raises(DataError, match="header=False"):
        read_ratings(path, header=False, columns={"user": "a", "item": "b", "rating": "c"})


# -- exact ids ----------------------------------------------------------------------
def test_leading_zeros_keep_ids_as_strings(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("user,item,rating\n007,1,3\n7,1,4\n")
    ratings = read_ratings(path)
    assert ratings.users.kind == "str"
    assert list(ratings.to_frame()["user"]) == ["007", "7"]
    assert ratings.items.kind == "int"


@pytest.mark.parametrize("odd", ["+5", "-0", "0x1F", "5.0", "1e3", "00"])
def test_non_canonical_integers_stay_text(tmp_path, odd):
    path = tmp_path / "r.csv"
    path.write_text(f"user,item,rating\n{odd},1,3\n5,2,4\n")
    ratings = read_ratings(path)
    assert ratings.users.kind == "str"
    assert list(ratings.to_frame()["user"]) == [odd, "5"]


def test_spaces_around_ids_are_kept(tmp_path, caplog):
    path = tmp_path / "r.csv"
    path.write_text("user,item,rating\n 5,1,3\n5,2,4\n")
    ratings = read_ratings(path)
    assert list(ratings.to_frame()["user"]) == [" 5", "5"]
    assert "leading or trailing spaces" in caplog.text


def test_integer_ids_are_int64(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("user,item,rating\n0,-3,3\n9223372036854775807,10,4\n")
    ratings = read_ratings(path)
    assert ratings.users.ids.dtype == np.int64
    assert list(ratings.to_frame()["user"]) == [0, 2**63 - 1]
    assert list(ratings.to_frame()["item"]) == [-3, 10]


def test_huge_integer_ids_round_trip(tmp_path):
    huge = 123456789012345678901234567890
    path = tmp_path / "r.csv"
    path.write_text(f"user,item,rating\n{huge},18446744073709551615,3\n1,18446744073709551614,4\n")
    ratings = read_ratings(path)
    assert ratings.users.kind == "bigint"
    assert list(ratings.to_frame()["user"]) == [huge, 1]
    assert ratings.items.kind == "uint"
    assert list(ratings.to_frame()["item"]) == [2**64 - 1, 2**64 - 2]
    assert ratings.users.lookup([huge])[0] >= 0


_ID_TEXT = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.text(alphabet="0123456789abcXYZ-+_ é", min_size=1, max_size=8),
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ids=st.lists(_ID_TEXT, min_size=1, max_size=12))
def test_ids_come_back_exactly(tmp_path, ids):
    path = tmp_path / "r.csv"
    body = "".join(f'"{raw}",{i},3\n' for i, raw in enumerate(ids))
    path.write_text("user,item,rating\n" + body, encoding="utf-8")
    got = list(read_ratings(path).to_frame()["user"])
    canonical = all(re.fullmatch(r"0|-?[1-9][0-9]*", raw) for raw in ids)
    assert got == ([int(raw) for raw in ids] if canonical else ids)


# -- errors name the file and the line ----------------------------------------------
def test_missing_file():
    with pytest.raises(FileNotFoundError, match=r"no such ratings file: .*nope\.csv"):
        read_ratings("/nonexistent/nope.csv")


def test_folder_is_not_a_file(tmp_path):
    with pytest.raises(DataError, match="is a folder"):
        read_ratings(tmp_path)


@pytest.mark.parametrize("content", ["", "\n\n", "  \n"])
def test_empty_file(tmp_path, content):
    path = tmp_path / "x.csv"
    path.write_text(content)
    with pytest.raises(DataError, match=r"x\.csv is empty"):
        read_ratings(path)


def test_header_only(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("user,item,rating\n")
    with pytest.raises(DataError, match=r"x\.csv has a header but no ratings"):
        read_ratings(path)


def test_wrong_field_count(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("user,item,rating,timestamp\n1,2,3,4\n\n1,3,4,5\n5,6\n1,4,4,6\n")
    with pytest.raises(DataError, match=r"line 5 of .*x\.csv has 2 fields, expected 4 \(sep=','\)"):
        read_ratings(path)


def test_wrong_field_count_in_dat_file(tmp_path):
    path = tmp_path / "x.dat"
    path.write_text("1::2::3::4\n1::3::3::4\n1::4::3\n")
    with pytest.raises(
        DataError, match=r"line 3 of .*x\.dat has 3 fields, expected 4 \(sep='::'\)"
    ):
        read_ratings(path)


def test_too_many_fields(tmp_path):
    path = tmp_path / "x.tsv"
    path.write_text("1\t2\t3\n1\t3\t3\t9\n")
    with pytest.raises(
        DataError, match=r"line 2 of .*x\.tsv has 4 fields, expected 3 \(sep='\\t'\)"
    ):
        read_ratings(path)


def test_no_separator_found(tmp_path):
    path = tmp_path / "x.txt"
    path.write_text("1 2 3\n")
    with pytest.raises(DataError, match=r"cannot tell the separator of .*x\.txt.*pass sep="):
        read_ratings(path)


def test_bad_separator_argument(tmp_path):
    path = _write(tmp_path / "x.csv", _frame(), ",")
    with pytest.raises(DataError, match="sep must be a non-empty string"):
        read_ratings(path, sep="")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("abc", r"non-numeric rating 'abc' at line 4 of .*x\.csv"),
        ("", r"missing rating \(NaN\) at line 4 of .*x\.csv"),
        ("nan", r"missing rating \(NaN\) at line 4 of .*x\.csv"),
        ("inf", r"infinite rating inf at line 4 of .*x\.csv"),
        ("-inf", r"infinite rating -inf at line 4 of .*x\.csv"),
    ],
)
def test_bad_rating(tmp_path, value, message):
    path = tmp_path / "x.csv"
    path.write_text(f"user,item,rating\n1,2,3\n\n1,3,{value}\n1,4,5\n")
    with pytest.raises(DataError, match=message):
        read_ratings(path)


def test_rating_outside_scale(tmp_path):
    path = tmp_path / "x.dat"
    path.write_text("1::2::3\n1::3::6\n1::4::0\n")
    with pytest.raises(
        DataError,
        match=r"rating 6 at line 2 of .*x\.dat is outside the declared scale 1-5 \(2 such",
    ):
        read_ratings(path, scale=(1, 5))
    assert len(read_ratings(path, scale=(0, 6))) == 3


def test_bad_rating_far_into_a_large_file(tmp_path):
    # Far past pyarrow's first block: exercises the second, text-only pass.
    n = 300_000
    lines = [f"{i % 1000},{i // 1000},4" for i in range(n)]
    lines[n - 2] = f"{(n - 2) % 1000},{(n - 2) // 1000},four"
    path = tmp_path / "x.csv"
    path.write_text("user,item,rating\n" + "\n".join(lines) + "\n")
    with pytest.raises(DataError, match=rf"non-numeric rating 'four' at line {n} of .*x\.csv"):
        read_ratings(path)


def test_missing_id(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("user,item,rating\n1,2,3\n1,,3\n")
    with pytest.raises(DataError, match=r"missing item id at line 3 of .*x\.csv"):
        read_ratings(path)


def test_duplicate_pair(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("user,item,rating,timestamp\n1,2,3,10\n1,3,3,11\n1,2,5,12\n")
    with pytest.raises(
        DataError, match=r"duplicate rating of item 2 by user 1 at line 2 of .*x\.csv and line 4 of"
    ):
        read_ratings(path)
    last = read_ratings(path, duplicates="last")
    assert len(last) == 2
    assert last.to_frame().query("item == 2")["rating"].item() == 5.0
    mean = read_ratings(path, duplicates="mean")
    assert mean.to_frame().query("item == 2")["rating"].item() == 4.0


def test_bad_timestamp(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("user,item,rating,timestamp\n1,2,3,100\n1,3,3,soon\n")
    with pytest.raises(DataError, match=r"timestamp 'soon' at line 3 of .*x\.csv is not a number"):
        read_ratings(path)


def test_iso_and_float_timestamps(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("user,item,rating,timestamp\n1,2,3,2015-01-01 00:00:00\n1,3,3,2016-01-01\n")
    np.testing.assert_array_equal(read_ratings(path).timestamp, [1420070400, 1451606400])
    path.write_text("user,item,rating,timestamp\n1,2,3,100.0\n1,3,3,200\n")
    np.testing.assert_array_equal(read_ratings(path).timestamp, [100, 200])


def test_parquet_errors_name_the_row(tmp_path):
    path = tmp_path / "x.parquet"
    pd.DataFrame({"user": [1, 2, 3], "item": [1, 1, 1], "rating": [3.0, np.nan, 2.0]}).to_parquet(
        path
    )
    with pytest.raises(DataError, match=r"missing rating \(NaN\) at row 2 of .*x\.parquet"):
        read_ratings(path)
    pd.DataFrame({"uid": [1], "item": [1], "rating": [3.0]}).to_parquet(path)
    with pytest.raises(
        DataError, match=r"x\.parquet has no column for user; its columns are \['uid'"
    ):
        read_ratings(path)


def test_corrupt_parquet(tmp_path):
    path = tmp_path / "x.parquet"
    path.write_bytes(b"not parquet at all")
    with pytest.raises(DataError, match=r"cannot read .*x\.parquet as Parquet"):
        read_ratings(path)


def test_ids_beyond_int32_stay_exact(tmp_path):
    """The fast path parses ids as int32; an id that overflows it falls back to the
    exact text path instead of wrapping around."""
    path = tmp_path / "big.csv"
    path.write_text("user,item,rating\n1,2,4\n3000000000,2,5\n-7,9,1\n")
    ratings = read_ratings(path)
    assert sorted(ratings.users.ids.tolist()) == [-7, 1, 3000000000]
    assert ratings.users.kind == "int"
