"""Read ratings files (CSV, TSV, '::'-separated, any separator, Parquet) into :class:`Ratings`.

Text is parsed by pyarrow's multithreaded CSV reader. Id columns are read as text and
become integers only when every value is a canonical decimal integer, so ``"007"`` stays
the string ``"007"`` and nothing is silently renumbered. Every error names the file and
the line (or row, for Parquet) it is about.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import re
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from mfrec.data.ratings import DuplicatePolicy, Ratings
from mfrec.data.vocab import show
from mfrec.exceptions import DataError

logger = logging.getLogger(__name__)

ROLES = ("user", "item", "rating", "timestamp")
SKIP = "_"
REQUIRED_ROLES = ("user", "item", "rating")

# Header names recognised (case-insensitively) when ``columns`` is not given.
HEADER_NAMES: dict[str, tuple[str, ...]] = {
    "user": ("user", "userid", "user_id"),
    "item": ("item", "itemid", "item_id", "movieid", "movie_id"),
    "rating": ("rating", "score"),
    "timestamp": ("timestamp", "time", "ts"),
}

PARQUET_SUFFIXES = (".parquet", ".pq")
COMPRESSION_SUFFIXES = (".gz", ".bz2", ".zst", ".lz4", ".br")
SNIFFED_SEPARATORS = ("::", "\t", ",", ";", "|")
# Bytes that stand in for a multi-byte separator; the first one absent from the file wins.
_STAND_INS = tuple(bytes([b]) for b in (0x1F, 0x1E, 0x1D, 0x1C, *range(1, 9)))
_HEAD_BYTES = 1 << 16
#: The longest first line sniffed for the separator and header (a ratings line is short;
#: a longer one means a wrong file or a missing line break).
MAX_LINE_BYTES = 1 << 20
# Leading bytes of compressed data -> pyarrow's codec name (None: refused with a hint).
_MAGIC: tuple[tuple[bytes, str | None, str], ...] = (
    (b"\x1f\x8b", "gzip", "gzip"),
    (b"BZh", "bz2", "bzip2"),
    (b"\x28\xb5\x2f\xfd", "zstd", "zstandard"),
    (b"\x04\x22\x4d\x18", "lz4", "LZ4"),
    (b"\xfd7zXZ\x00", None, "xz"),
    (b"PK\x03\x04", None, "zip"),
)
_BOMS = (
    (b"\xff\xfe\x00\x00", "UTF-32-LE"),
    (b"\x00\x00\xfe\xff", "UTF-32-BE"),
    (b"\xff\xfe", "UTF-16-LE"),
    (b"\xfe\xff", "UTF-16-BE"),
)
IdType = Literal["auto", "int", "str"]
_CANONICAL_INT = r"^(0|-?[1-9][0-9]*)$"

Header = Literal["infer"] | bool
Columns = str | Sequence[str] | Mapping[str, str] | None


def read_ratings(
    path: str | os.PathLike[str] | pd.DataFrame,
    *,
    sep: str | None = None,
    columns: Columns = None,
    header: Header = "infer",
    scale: tuple[float, float] | None = None,
    duplicates: DuplicatePolicy = "error",
    name: str | None = None,
    encoding: str = "utf-8",
    ids: IdType = "auto",
) -> Ratings:
    """Read a ratings file into :class:`~mfrec.data.ratings.Ratings`.

    Parameters
    ----------
    path : path-like or pandas.DataFrame
        A text file (CSV, TSV, MovieLens ``.dat``, any separator; ``.gz``/``.bz2``/``.zst``
        compressed files are read too) or a Parquet file (``.parquet``/``.pq``). A
        DataFrame is accepted as well; its columns are matched as a file header would be.
    sep : str, optional
        Field separator: ``","``, ``"\\t"``, ``"::"``, ... When omitted: ``,`` for
        ``.csv``, tab for ``.tsv``, else sniffed from the first line (``::``, then tab,
        ``,``, ``;``, ``|``).
    columns : str, sequence of str or dict, optional
        The role of each file column in order, from ``user``, ``item``, ``rating``,
        ``timestamp`` and ``_`` (skip), as a list or a comma-separated string such as
        ``"item,user,rating,_"``; or a dict naming header columns, e.g.
        ``{"user": "userId", "item": "movieId", "rating": "rating"}``. When omitted, a
        header is matched by common names (``userId``, ``movie_id``, ``score``, ``ts``,
        ...) and a file without header is read as ``user,item,rating[,timestamp]``.
    header : {"infer", True, False}, default "infer"
        Whether the first line is a header. ``"infer"``: it is when its rating field is
        not a number. Ignored for Parquet.
    scale : (low, high), optional
        Declared rating scale; a rating outside it is an error.
    duplicates : {"error", "last", "mean"}, default "error"
        Policy for a (user, item) pair rated more than once; see
        :meth:`Ratings.from_frame`.
    name : str, optional
        Name of the data set; defaults to the file name.
    encoding : str, default "utf-8"
        Text encoding (ASCII-compatible encodings only, e.g. ``"latin-1"``). A UTF-8
        byte-order mark is skipped; UTF-16 and UTF-32 files are refused with a message
        naming the encoding (convert them to UTF-8).
    ids : {"auto", "int", "str"}, default "auto"
        Type of the text id columns. ``"auto"``: integers when every value is a canonical
        decimal integer, else strings -- and when only a few values spoil an integer
        column (under half), a WARNING names the first one and its line, since such a
        file usually holds a typo (``2;5``). ``"int"``: every id must be an integer; the
        first one that is not is a :class:`DataError` naming its line. ``"str"``: ids
        are kept as text. Ignored for Parquet and DataFrames (their types are kept).

    Returns
    -------
    Ratings
        Ratings in file order. Text ids are int64 when every value is a canonical decimal
        integer (no sign, no leading zero, no space), uint64 or Python ints when such
        integers do not fit int64, and strings otherwise (see ``ids``). Parquet columns
        keep their stored types. Compression (gzip, bzip2, zstandard, LZ4) is detected
        from the content, whatever the file name; a Parquet file is recognised by its
        content too.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    mfrec.exceptions.DataError
        For a folder, pipe or device instead of a file, a zip/xz archive, a UTF-16/32
        or binary file, a line longer than :data:`MAX_LINE_BYTES` (first line) or than
        pyarrow's block (later lines), an empty file, a line with the wrong number of
        fields, a missing column, a rating that is not a finite number within ``scale``
        (or beyond float32), a missing id, a non-integer id with ``ids="int"``, a
        duplicate pair, ... The message names the file and the line.
    """
    roles = parse_columns(columns)
    if header not in ("infer", True, False):
        raise DataError(f"header must be 'infer', True or False, got {header!r}")
    if ids not in ("auto", "int", "str"):
        raise DataError(f"ids must be 'auto', 'int' or 'str', got {ids!r}")
    if isinstance(path, pd.DataFrame):
        return _read_frame(path, roles, scale, duplicates, name)
    path = Path(os.fspath(path))
    if not path.exists():
        raise FileNotFoundError(f"no such ratings file: {path}")
    if path.is_dir():
        raise DataError(f"{path} is a folder, not a ratings file")
    if not path.is_file():
        raise DataError(
            f"{path} is not a regular file (a pipe, socket or device); save the ratings to "
            "a file first"
        )
    encoding = _check_encoding(encoding)
    name = path.name if name is None else name
    compression = _sniff_content(path)
    if compression == "parquet" or (
        compression is None and path.name.lower().endswith(PARQUET_SUFFIXES)
    ):
        return _read_parquet(path, roles, scale, duplicates, name)
    text = _TextFile(path, sep, roles, header, encoding, compression, ids)
    return text.read(scale, duplicates, name)


def _check_encoding(encoding: str) -> str:
    """The encoding to read with ("utf-8" for any spelling of UTF-8, with or without
    BOM: a UTF-8 BOM is skipped anyway); refuses unknown and non-ASCII-compatible ones."""
    import codecs

    try:
        if codecs.lookup(encoding).name in ("utf-8", "utf-8-sig"):
            return "utf-8"
        encoded = "u,i,1.5\n".encode(encoding)
        ascii_compatible = encoded.removeprefix(codecs.BOM_UTF8) == b"u,i,1.5\n"
    except (LookupError, TypeError, ValueError):
        raise DataError(f"unknown text encoding {encoding!r}; try 'utf-8' or 'latin-1'") from None
    if not ascii_compatible:
        raise DataError(
            f"encoding {encoding!r} is not ASCII-compatible, which the reader needs; "
            f"convert the file to UTF-8 first (e.g. iconv -f {encoding} -t UTF-8)"
        )
    return encoding


def _sniff_content(path: Path) -> str | None:
    """pyarrow's codec of a compressed file, ``"parquet"``, or None for plain text;
    refuses archives, UTF-16/32 and binary files with a message that says why."""
    with open(path, "rb") as handle:  # an OSError (permissions, ...) is left as it is
        head = handle.read(4096)
    if head.startswith(b"PAR1"):
        return "parquet"
    for magic, codec, label in _MAGIC:
        if head.startswith(magic):
            if codec is None:
                raise DataError(
                    f"{path} is a {label} archive, not a ratings file; extract the ratings "
                    "file from it first"
                )
            return codec
    _check_text(head, str(path))
    return None


def _check_text(head: bytes, where: str) -> None:
    """Refuse UTF-16/UTF-32 (naming the encoding) and binary data, from a file's head."""
    for bom, label in _BOMS:
        if head.startswith(bom):
            raise DataError(
                f"{where} is {label} text (it starts with a {label} byte-order mark); mfrec "
                f"reads UTF-8 or another ASCII-compatible encoding: convert it, e.g. "
                f"iconv -f {label} -t UTF-8 (or save it as UTF-8 / CSV UTF-8)"
            )
    if b"\x00" in head:
        zeros = head.count(b"\x00")
        guess = (
            "UTF-16 text without a byte-order mark; convert it to UTF-8"
            if zeros * 3 >= len(head)
            else "binary data, not a text ratings file"
        )
        raise DataError(f"{where} holds NUL bytes: it looks like {guess}")


# -- column roles ---------------------------------------------------------------------
def parse_columns(columns: Columns) -> list[str] | dict[str, str] | None:
    """Check a ``columns`` argument and return it as a role list or a role -> name dict.

    Raises :class:`DataError` for unknown roles, a role given twice or a missing
    user, item or rating role.
    """
    allowed = "user, item, rating, timestamp and _ (skip the column)"
    dict_roles = "user, item, rating and timestamp"
    if columns is None:
        return None
    if isinstance(columns, Mapping):
        roles = {}
        for role, column in columns.items():
            key = str(role).strip().lower()
            if key not in ROLES:
                raise DataError(
                    f"unknown column role {role!r} in columns=; the roles are {dict_roles}"
                )
            if not isinstance(column, str):
                raise DataError(
                    f"columns= maps roles to header column names; {role!r} maps to {column!r}"
                )
            roles[key] = column
        missing = [r for r in REQUIRED_ROLES if r not in roles]
        if missing:
            raise DataError(
                f"columns= must name the {', '.join(missing)} column(s), got {dict(columns)}"
            )
        return roles
    if isinstance(columns, str):
        items = columns.split(",")
    elif isinstance(columns, Sequence) and all(isinstance(c, str) for c in columns):
        items = list(columns)
    else:
        raise DataError(
            f"columns must be a comma-separated string, a list of roles or a dict, got {columns!r}"
        )
    roles_list = [c.strip().lower() for c in items]
    for role in roles_list:
        if role not in (*ROLES, SKIP):
            raise DataError(
                f"unknown column role {role!r} in columns={columns!r}; the roles are {allowed}"
            )
    for role in ROLES:
        if roles_list.count(role) > 1:
            raise DataError(
                f"column role {role!r} is given {roles_list.count(role)} times "
                f"in columns={columns!r}"
            )
    missing = [r for r in REQUIRED_ROLES if r not in roles_list]
    if missing:
        raise DataError(
            f"columns={columns!r} has no {', '.join(missing)} column; the roles are {allowed}"
        )
    return roles_list


def _match_names(
    names: Sequence[str], roles: list[str] | dict[str, str] | None, where: str
) -> dict[str, int]:
    """Role -> column position, from a header (or DataFrame/Parquet column names)."""
    if isinstance(roles, list):
        if len(roles) != len(names):
            raise DataError(
                f"columns= gives {len(roles)} roles but {where} has {len(names)} columns "
                f"{list(names)}; give one role per column, '_' for a column to skip"
            )
        return {role: i for i, role in enumerate(roles) if role != SKIP}
    found: dict[str, int] = {}
    missing: list[str] = []
    if isinstance(roles, dict):
        for role, wanted in roles.items():
            exact = [i for i, n in enumerate(names) if n == wanted]
            loose = [i for i, n in enumerate(names) if n.strip().lower() == wanted.strip().lower()]
            hits = exact or loose
            if len(hits) == 1:
                found[role] = hits[0]
            elif hits:
                raise DataError(f"{where} has {len(hits)} columns named {wanted!r}")
            else:
                missing.append(f"{role}={wanted!r}")
    else:
        lowered = [n.strip().lower() for n in names]
        for role, aliases in HEADER_NAMES.items():
            hits = [i for i, n in enumerate(lowered) if n in aliases]
            if len(hits) > 1:
                raise DataError(
                    f"{where} has several {role} columns {[names[i] for i in hits]}; "
                    "say which one with columns="
                )
            if hits:
                found[role] = hits[0]
            elif role in REQUIRED_ROLES:
                missing.append(role)
    if missing:
        raise DataError(
            f"{where} has no column for {', '.join(missing)}; its columns are {list(names)}. "
            "Name them with columns=, e.g. columns={'user': 'userId', 'item': 'movieId', "
            "'rating': 'rating'} or columns='user,item,rating,_'"
        )
    return found


# -- text files -----------------------------------------------------------------------
class _TextFile:
    """One text ratings file: its separator, header and the map from rows to lines."""

    def __init__(
        self,
        path: Path,
        sep: str | None,
        roles: list[str] | dict[str, str] | None,
        header: Header,
        encoding: str,
        compression: str | None = None,
        ids: IdType = "auto",
    ) -> None:
        self.path = path
        self.encoding = encoding
        self.compression = compression
        self.ids = ids
        first_line, self.lead = self._first_line()
        self.sep = self._separator(sep, first_line)
        self.quoting = len(self.sep) == 1
        fields = self._split(first_line)
        self.n_fields = len(fields)
        self.header, why = self._has_header(header, roles, fields)
        self.skip_rows = self.lead + int(self.header)
        if self.header:
            where = f"the header of {path}" + (f" ({why})" if why else "")
            self.positions = _match_names([f.lstrip("\ufeff") for f in fields], roles, where)
        elif isinstance(roles, list):
            self.positions = _match_names(
                [f"column {i + 1}" for i in range(self.n_fields)], roles, str(path)
            )
        else:
            if self.n_fields not in (3, 4):
                raise DataError(
                    f"line {self.lead + 1} of {path} has {self.n_fields} fields (sep={self.sep!r}) "
                    "and no header; without a header the columns must be user,item,rating"
                    "[,timestamp]. Say which column is which with columns=, e.g. "
                    "columns='user,item,rating,_'"
                )
            self.positions = {role: i for i, role in enumerate(ROLES[: self.n_fields])}
        self._lines: np.ndarray | None = None

    # -- sniffing -----------------------------------------------------------------
    def _open_binary(self) -> pa.NativeFile:
        # The codec comes from the content (see _sniff_content), never from the name.
        return pa.input_stream(str(self.path), compression=self.compression)

    def _first_line(self) -> tuple[str, int]:
        """The first non-empty line and the number of empty lines before it. Reads in
        chunks, looking for a line end in the new chunk only: linear in the line."""
        chunks: list[bytes] = []
        line_bytes = -1  # bytes of the first non-empty line so far (-1: not reached)
        with self._open_binary() as stream:
            while True:
                try:
                    chunk = stream.read(_HEAD_BYTES)
                except (OSError, pa.ArrowException) as exc:
                    raise DataError(
                        f"cannot read {self.path}: {exc} (damaged {self.compression} data?)"
                    ) from None
                if not chunk:
                    break
                chunks.append(chunk)
                rest = chunk
                if line_bytes < 0:
                    rest = chunk.lstrip(b"\r\n")
                    if not rest:
                        continue
                    line_bytes = 0
                if b"\n" in rest or b"\r" in rest:
                    break
                line_bytes += len(rest)
                if line_bytes > MAX_LINE_BYTES:
                    raise DataError(
                        f"the first line of {self.path} is longer than {MAX_LINE_BYTES:,} "
                        "bytes (no line break found): it is not a ratings file, or its lines "
                        "are not separated by line breaks"
                    )
        head = b"".join(chunks)
        if not head.strip():
            raise DataError(f"{self.path} is empty: there are no ratings to read")
        if self.compression is not None:
            _check_text(head[:4096], f"{self.path} (decompressed)")
        text = head.decode(self.encoding, errors="replace")
        lines = re.split(r"\r\n|\r|\n", text)
        lead = 0
        while lines[lead] == "":
            lead += 1
        return lines[lead], lead

    def _separator(self, sep: str | None, first_line: str) -> str:
        if sep is not None:
            if sep == "\\t":
                sep = "\t"
            if not isinstance(sep, str) or not sep or sep in ('"', "\n", "\r"):
                raise DataError(
                    f"sep must be a non-empty string other than a quote or newline, got {sep!r}"
                )
            return sep
        suffixes = [s.lower() for s in self.path.suffixes]
        if suffixes and suffixes[-1] in COMPRESSION_SUFFIXES:
            suffixes.pop()
        ext = suffixes[-1] if suffixes else ""
        if ext == ".csv":
            return ","
        if ext == ".tsv":
            return "\t"
        for candidate in SNIFFED_SEPARATORS:
            if candidate in first_line:
                return candidate
        raise DataError(
            f"cannot tell the separator of {self.path}: its first line {first_line[:80]!r} "
            f"has none of {', '.join(map(repr, SNIFFED_SEPARATORS))}; "
            "pass sep="
        )

    def _split(self, line: str, number: int | None = None) -> list[str]:
        if self.quoting:
            try:
                return next(csv.reader([line], delimiter=self.sep, quotechar='"'), [])
            except csv.Error as exc:
                where = f"line {number}" if number else "the first line"
                raise DataError(
                    f"{where} of {self.path} cannot be split into fields ({exc}); a field "
                    "of a ratings file is short: is this the right file and sep=?"
                ) from None
        return line.split(self.sep)

    def _has_header(
        self, header: Header, roles: list[str] | dict[str, str] | None, fields: list[str]
    ) -> tuple[bool, str]:
        if isinstance(roles, dict):
            if header is False:
                raise DataError(
                    "columns= maps roles to header names, but header=False says there is no "
                    "header; give the role of each column instead, e.g. columns='user,item,rating'"
                )
            return True, ""
        if header != "infer":
            return bool(header), ""
        at = roles.index("rating") if isinstance(roles, list) else 2
        if at >= len(fields):
            return False, ""
        value = fields[at].strip().strip('"')
        if value == "" or _is_number(value):
            return False, ""
        return True, (
            f"the first line, taken as a header because its rating field {value!r} is not a "
            "number; pass header=False if it is data"
        )

    # -- rows and lines -----------------------------------------------------------
    def _read_bytes(self) -> bytes:
        with self._open_binary() as stream:
            return stream.read()

    def line_of(self, row: int) -> int:
        """1-based line number of data row ``row`` (pyarrow skips empty lines)."""
        if self._lines is None:
            buf = np.frombuffer(self._read_bytes(), dtype=np.uint8)
            ends = np.flatnonzero(buf == 10)
            starts = np.concatenate(([0], ends + 1))
            ends = np.concatenate((ends, [len(buf)]))
            length = ends - starts
            cr_only = (length == 1) & (buf[np.minimum(starts, max(len(buf) - 1, 0))] == 13)
            nonempty = np.flatnonzero((length > 0) & ~cr_only)
            self._lines = nonempty[nonempty >= self.skip_rows]
        if 0 <= row < len(self._lines):
            return int(self._lines[row]) + 1
        return row + self.skip_rows + 1

    def describe_row(self, row: int) -> str:
        return f"line {self.line_of(row)} of {self.path}"

    def _bad_line(self) -> tuple[int, int] | None:
        """(line number, field count) of the first line whose field count is wrong."""
        with self._open_binary() as stream:
            text = io.TextIOWrapper(stream, encoding=self.encoding, errors="replace")
            for number, line in enumerate(text, 1):
                line = line.rstrip("\r\n")
                if number <= self.skip_rows or not line:
                    continue
                n = len(self._split(line, number))
                if n != self.n_fields:
                    return number, n
        return None

    # -- reading ------------------------------------------------------------------
    def _ids_parse_exactly_as_ints(self) -> bool:
        """Whether parsing the id columns as integers cannot change an id: no field of the
        file starts like a non-canonical integer (``007``, ``+5``, ``-0``). One byte
        scan, far cheaper than reading 2 x n ids as text to check them."""
        sep = self.sep.encode(self.encoding)[-1]  # '::' -> ':' still starts no number
        with self._open_binary() as handle:  # decompresses .gz/.bz2/.zst
            return not stream_has_noncanonical_int_field(handle, sep)

    def _table(self, as_text: bool, int_ids: bool = False) -> pa.Table:
        """Parse the role columns; with ``as_text`` every column is read as text; with
        ``int_ids`` the id columns are parsed as int32 and the ratings as float32 (only
        when :meth:`_ids_parse_exactly_as_ints` said so)."""
        names = [f"f{i}" for i in range(self.n_fields)]
        # Exact int ids fit int32 in practice (an overflow is a conversion error, and the
        # careful text path takes over); ratings then parse straight to float32 too.
        id_type = pa.int32() if int_ids else pa.string()
        types = {
            "user": id_type,
            "item": id_type,
            "rating": pa.string() if as_text else (pa.float32() if int_ids else pa.float64()),
            "timestamp": pa.string() if as_text else pa.int64(),
        }
        source: Any = str(self.path)
        delimiter = self.sep
        encoding = self.encoding
        if len(self.sep.encode(self.encoding)) != 1:
            # pyarrow wants a one-byte separator: stand a byte absent from the file in
            # for the multi-byte one (MovieLens '::'). Line structure is unchanged.
            data = self._read_bytes()
            stand_in = next((b for b in _STAND_INS if b not in data), None)
            if stand_in is None:
                raise DataError(
                    f"cannot read {self.path}: separator {self.sep!r} is not supported here"
                )
            source = pa.BufferReader(data.replace(self.sep.encode(self.encoding), stand_in))
            delimiter = stand_in.decode("ascii")
        invalid: list[Any] = []

        def on_invalid_row(row: Any) -> str:
            invalid.append(row)
            return "error"

        read_options = pacsv.ReadOptions(
            column_names=names, skip_rows=self.skip_rows, encoding=encoding, use_threads=True
        )
        parse_options = pacsv.ParseOptions(
            delimiter=delimiter,
            quote_char='"' if self.quoting else False,
            invalid_row_handler=on_invalid_row,
        )
        convert_options = pacsv.ConvertOptions(
            column_types={names[i]: types[role] for role, i in self.positions.items()},
            include_columns=[names[i] for i in self.positions.values()],
        )
        suffix = self.path.suffix.lower()
        if isinstance(source, str) and (
            self.compression is not None or suffix in COMPRESSION_SUFFIXES
        ):
            source = self._open_binary()  # the content's codec, not the name's
        try:
            return pacsv.read_csv(source, read_options, parse_options, convert_options)
        except pa.ArrowInvalid as exc:
            if invalid:
                raise self._field_count_error(invalid[0]) from None
            if not as_text and "conversion error" in str(exc).lower():
                raise _NeedsText from None
            if "straddl" in str(exc):
                raise self._long_line_error(read_options.block_size) from None
            raise DataError(f"cannot read {self.path}: {exc}") from None
        except (OSError, pa.ArrowException) as exc:
            raise DataError(f"cannot read {self.path}: {exc}") from None

    def _long_line_error(self, limit: int) -> DataError:
        """The first line longer than pyarrow's block, found in one linear pass."""
        number, offset, line_start = 1, 0, 0
        with self._open_binary() as stream:
            while chunk := stream.read(1 << 24):
                ends = np.flatnonzero(np.frombuffer(chunk, dtype=np.uint8) == 10) + offset
                starts = np.concatenate(([line_start], ends[:-1] + 1))
                long = np.flatnonzero(ends - starts > limit)
                if long.size:
                    number += int(long[0])
                    break
                number += len(ends)
                offset += len(chunk)
                line_start = int(ends[-1]) + 1 if len(ends) else line_start
                if offset - line_start > limit:
                    break
        return DataError(
            f"line {number} of {self.path} is longer than {limit:,} bytes: is it the right "
            "file, with line breaks between ratings? (a field that long cannot be a rating, "
            "an id or a timestamp)"
        )

    def _field_count_error(self, row: Any) -> DataError:
        bad = self._bad_line()
        sep = f"sep={self.sep!r}"
        if bad is not None:
            number, count = bad
            return DataError(
                f"line {number} of {self.path} has {count} field{'s' * (count != 1)}, expected "
                f"{self.n_fields} ({sep}); fix the line, or pass the right sep="
            )
        return DataError(
            f"a line of {self.path} has {row.actual_columns} fields, expected "
            f"{row.expected_columns} ({sep}): {row.text!r}"
        )

    def read(
        self, scale: tuple[float, float] | None, duplicates: DuplicatePolicy, name: str
    ) -> Ratings:
        try:
            return self._read(scale, duplicates, name)
        except (OSError, pa.ArrowException) as exc:  # truncated or damaged compressed data
            what = f" ({self.compression} data truncated or damaged?)" if self.compression else ""
            raise DataError(f"cannot read {self.path}: {exc}{what}") from None

    def _read(
        self, scale: tuple[float, float] | None, duplicates: DuplicatePolicy, name: str
    ) -> Ratings:
        int_ids = False
        table = None
        if self.ids != "str" and self._ids_parse_exactly_as_ints():
            try:
                table = self._table(as_text=False, int_ids=True)
                int_ids = True
            except _NeedsText:  # text ids, or a bad rating: the careful path says which
                table = None
            if table is not None and not _all_finite(table[f"f{self.positions['rating']}"]):
                # float32 parsing turns 1e39 into inf: reread as float64 to say which.
                table, int_ids = None, False
        try:
            if table is None:
                table = self._table(as_text=False)
            as_text = False
        except _NeedsText:
            logger.debug("%s: numeric columns need a second, text-only pass", self.path)
            table = self._table(as_text=True)
            as_text = True
        if table.num_rows == 0:
            what = "a header but no ratings" if self.header else "no ratings"
            raise DataError(f"{self.path} has {what}")
        names = {role: f"f{i}" for role, i in self.positions.items()}
        describe = self.describe_row
        if int_ids:
            users, items = (_column_values(table[names[role]]) for role in ("user", "item"))
        else:
            # pyarrow compute releases the GIL: convert the two id columns side by side.
            with ThreadPoolExecutor(max_workers=2) as pool:
                futures = [
                    pool.submit(_ids_from_text, table[names[role]], role, describe, self.ids)
                    for role in ("user", "item")
                ]
                users, items = (f.result() for f in futures)
        rating = table[names["rating"]]
        rating_values = _numbers_from_text(rating) if as_text else rating.to_numpy()
        timestamps = None
        if "timestamp" in names:
            column = table[names["timestamp"]]
            timestamps = _times_from_text(column) if as_text else column.to_numpy()
        return Ratings.from_arrays(
            users,
            items,
            rating_values,
            timestamps,
            scale=scale,
            duplicates=duplicates,
            name=name,
            describe_row=describe,
        )


def _all_finite(column: pa.ChunkedArray) -> bool:
    return bool(pc.all(pc.is_finite(column)).as_py() is not False)


class _NeedsText(Exception):
    """A numeric column failed to parse: read it again as text to find the bad line."""


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _first(mask: pa.ChunkedArray | pa.Array) -> int:
    return int(pc.index(mask, True).as_py())


def _ids_from_text(
    column: pa.ChunkedArray,
    what: str,
    describe_row: Callable[[int], str],
    ids: IdType = "auto",
) -> np.ndarray:
    """Raw ids from a text column: int64 if all are canonical decimal integers, else text
    (see ``ids`` in :func:`read_ratings`)."""
    lengths = pc.binary_length(column)
    missing = pc.or_kleene(pc.is_null(column), pc.equal(lengths, 0))
    if pc.any(missing).as_py():
        pos = _first(pc.fill_null(missing, True))
        raise DataError(f"missing {what} id at {describe_row(pos)}: every rating needs a {what}")
    if ids == "str":
        return column.to_numpy(zero_copy_only=False)
    # Canonical: ASCII digits without a leading zero, or the same after one "-". (A cast
    # alone would also accept "007", "-0" and "0x1F".) The regex runs only when needed.
    canonical = pc.ascii_is_decimal(column)
    zero_first = pc.starts_with(column, "0")
    if pc.any(zero_first).as_py():
        canonical = pc.and_(canonical, pc.invert(pc.and_(zero_first, pc.greater(lengths, 1))))
    if not pc.all(canonical).as_py() and pc.any(pc.starts_with(column, "-")).as_py():
        canonical = pc.match_substring_regex(column, _CANONICAL_INT)
    if pc.all(canonical).as_py():
        for kind in (pa.int64(), pa.uint64()):
            try:
                return pc.cast(column, kind).to_numpy()
            except pa.ArrowInvalid:
                continue  # out of range for this type
        logger.info("%s ids do not fit 64 bits; keeping them as Python ints", what)
        return np.array([int(v) for v in column.to_pylist()], dtype=object)
    pos = _first(pc.invert(canonical))
    if ids == "int":
        raise DataError(
            f"{what} id {show(column[pos].as_py())} at {describe_row(pos)} is not an integer "
            "(ids='int' was asked); fix that line, or pass ids='auto' to read ids as strings"
        )
    n_odd = len(column) - pc.sum(canonical).as_py()
    if n_odd * 2 < len(column):
        # Mostly integers: a few typos turn every id into a string -- say so loudly.
        logger.warning(
            "%s ids read as strings because %d of %d values are not integers, the first "
            "%s at %s; if those are typos, fix them (or pass ids='int' to refuse such a file)",
            what,
            n_odd,
            len(column),
            show(column[pos].as_py()),
            describe_row(pos),
        )
    else:
        logger.info(
            "%s ids read as strings: %s at %s is not a canonical integer",
            what,
            show(column[pos].as_py()),
            describe_row(pos),
        )
    spaced = pc.not_equal(pc.utf8_trim_whitespace(column), column)
    if pc.any(spaced).as_py():
        pos = _first(spaced)
        logger.warning(
            "%s id %s at %s has leading or trailing spaces; they are kept as part of the id",
            what,
            show(column[pos].as_py()),
            describe_row(pos),
        )
    return column.to_numpy(zero_copy_only=False)


def _numbers_from_text(column: pa.ChunkedArray) -> np.ndarray:
    """Ratings read as text: numbers when they all parse, else text for error reporting."""
    try:
        return pc.cast(column, pa.float64()).to_numpy()
    except pa.ArrowInvalid:
        blank = pc.equal(pc.utf8_trim_whitespace(column), "")
        return pc.if_else(blank, pa.scalar(None, pa.string()), column).to_numpy(
            zero_copy_only=False
        )


def _times_from_text(column: pa.ChunkedArray) -> np.ndarray:
    """Timestamps read as text: integer seconds, whole floats, or ISO dates."""
    for kind in (pa.int64(), pa.float64(), pa.timestamp("s")):
        try:
            return pc.cast(column, kind).to_numpy()
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
    return column.to_numpy(zero_copy_only=False)


# -- Parquet and DataFrames -----------------------------------------------------------
def _column_values(column: pa.ChunkedArray) -> np.ndarray:
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    if pa.types.is_decimal(column.type):
        column = column.cast(pa.float64())
    return column.to_numpy(zero_copy_only=False)


def _read_parquet(
    path: Path,
    roles: list[str] | dict[str, str] | None,
    scale: tuple[float, float] | None,
    duplicates: DuplicatePolicy,
    name: str,
) -> Ratings:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"cannot read {path} as Parquet: {exc}") from None
    names = parquet.schema_arrow.names
    positions = _match_names(names, roles, f"{path}")
    try:
        table = parquet.read(columns=[names[i] for i in positions.values()])
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"cannot read {path} as Parquet: {exc}") from None
    if table.num_rows == 0:
        raise DataError(f"{path} has no ratings")

    def describe_row(row: int) -> str:
        return f"row {row + 1} of {path}"

    values = {role: _column_values(table.column(names[i])) for role, i in positions.items()}
    return Ratings.from_arrays(
        values["user"],
        values["item"],
        values["rating"],
        values.get("timestamp"),
        scale=scale,
        duplicates=duplicates,
        name=name,
        describe_row=describe_row,
    )


def _read_frame(
    frame: pd.DataFrame,
    roles: list[str] | dict[str, str] | None,
    scale: tuple[float, float] | None,
    duplicates: DuplicatePolicy,
    name: str | None,
) -> Ratings:
    names = [str(c) for c in frame.columns]
    positions = _match_names(names, roles, "the DataFrame")
    columns = {role: frame.iloc[:, i] for role, i in positions.items()}
    return Ratings.from_arrays(
        columns["user"],
        columns["item"],
        columns["rating"],
        columns.get("timestamp"),
        scale=scale,
        duplicates=duplicates,
        name=name,
    )


def stream_has_noncanonical_int_field(handle: Any, sep: int, chunk_bytes: int = 64 * 2**20) -> bool:
    """:func:`mfrec.kernels.ingest.has_noncanonical_int_field` over a binary stream, read
    in chunks cut at line ends (a line split across chunks is carried over whole, so
    no field is ever seen in halves). A line longer than a chunk answers True: the
    caller then takes the careful path, which is always correct."""
    from mfrec.kernels.ingest import has_noncanonical_int_field

    buffer = np.empty(chunk_bytes, dtype=np.uint8)  # reused: fresh memory is slow
    carried = 0
    while True:
        size = handle.readinto(memoryview(buffer)[carried:])
        end = carried + (size or 0)
        if not size:  # end of stream: the carried tail is the last line
            return bool(end) and has_noncanonical_int_field(buffer[:end], sep, True)
        last_newline = _last_index(buffer[:end], 10)
        if last_newline < 0:
            if end == chunk_bytes:
                return True
            carried = end
            continue
        if has_noncanonical_int_field(buffer[: last_newline + 1], sep, True):
            return True
        carried = end - last_newline - 1
        buffer[:carried] = buffer[last_newline + 1 : end]


def _last_index(buf: np.ndarray, byte: int) -> int:
    """Index of the last ``byte`` in ``buf``, or -1; scans back from the end."""
    step = 1 << 16
    for stop in range(len(buf), 0, -step):
        hits = np.flatnonzero(buf[max(0, stop - step) : stop] == byte)
        if hits.size:
            return max(0, stop - step) + int(hits[-1])
    return -1
