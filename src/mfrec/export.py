"""Writing recommendations for many users to a file, with bounded memory.

Long format, one row per recommendation: ``user``, ``rank`` (1 = best), ``item``,
``score``. Users are scored block by block (:meth:`Recommender.iter_recommendations`)
and each block is appended to the file as it is computed, so memory depends on the block
size, not on users x items. The file appears only when complete (written to a temporary
file beside it, then renamed). String and very large integer ids are written as text.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from mfrec._atomic import atomic_write

FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".tsv": "tsv"}


def write_recommendations(
    model: Any,
    path: str | os.PathLike[str],
    n: int = 10,
    *,
    users: Any = None,
    exclude_seen: bool = True,
    block_size: int | None = None,
    progress: Callable[[int], Any] | None = None,
) -> int:
    """Write the top-``n`` items of every user (or of ``users``) to ``path``.

    The format follows the extension: ``.parquet``/``.pq`` (one row group per block),
    ``.csv`` or ``.tsv``. ``progress(n_users_done)`` is called after each block.
    Returns the number of rows written (padded slots of users with fewer than ``n``
    candidates are left out).
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    target = Path(path)
    fmt = FORMATS.get(target.suffix.lower())
    if fmt is None:
        from mfrec.exceptions import ParameterError

        raise ParameterError(
            f"cannot tell the format of {target.name!r}: use one of {', '.join(FORMATS)}"
        )
    schema = pa.schema(
        [
            ("user", _id_type(model.users_.kind)),
            ("rank", pa.int16()),
            ("item", _id_type(model.items_.kind)),
            ("score", pa.float32()),
        ]
    )
    rows = done = 0
    with atomic_write(target) as handle:
        writer = (
            pq.ParquetWriter(handle, schema)
            if fmt == "parquet"
            else pacsv.CSVWriter(
                handle,
                schema,
                write_options=pacsv.WriteOptions(delimiter="," if fmt == "csv" else "\t"),
            )
        )
        with writer:
            for user_ids, recs in model.iter_recommendations(
                n, users=users, exclude_seen=exclude_seen, block_size=block_size
            ):
                table = _block_table(user_ids, recs, schema)
                writer.write_table(table)
                rows += table.num_rows
                done += len(user_ids)
                if progress is not None:
                    progress(done)
    return rows


def _id_type(kind: str):
    import pyarrow as pa

    return {"int": pa.int64(), "uint": pa.uint64()}.get(kind, pa.string())


def _block_table(user_ids: np.ndarray, recs: Any, schema):
    import pyarrow as pa

    valid = np.isfinite(recs.scores)
    rows, ranks = np.nonzero(valid)
    columns = [
        user_ids[rows],
        (ranks + 1).astype(np.int16),
        recs.item_ids[valid],
        recs.scores[valid],
    ]
    arrays = [
        pa.array([str(v) for v in col] if field.type == pa.string() else col, field.type)
        for col, field in zip(columns, schema, strict=True)
    ]
    return pa.Table.from_arrays(arrays, schema=schema)
