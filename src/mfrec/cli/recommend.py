"""`mfrec recommend` and `mfrec similar`: top-N lists from a saved model."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import click

from mfrec.cli._common import (
    CliError,
    _bar,
    _echo_entries,
    _echo_json,
    _entries,
    _progress_enabled,
    _score_note,
    _threads_option,
    _user_errors,
)

USAGE = (
    "say whom to recommend for: --user ID (one or more), --all-users --out recs.parquet, "
    "or --ratings FILE (a new user's item,rating rows, folded in without retraining)"
)


@click.command()
@click.argument("model_file", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--user",
    "user_ids",
    multiple=True,
    help="User id; repeat for several. With --ratings, the one user of a "
    "user,item,rating file to fold in.",
)
@click.option(
    "--all-users", is_flag=True, help="Every user of the model, streamed to --out in blocks."
)
@click.option(
    "--ratings",
    "ratings_path",
    type=click.Path(exists=True, dir_okay=False),
    help="A new user's ratings: recommend for them by fold-in, without retraining (items "
    "the model does not know are ignored). item,rating rows; or user,item,rating[,timestamp] "
    "rows of one user (or pick one with --user).",
)
@click.option("-n", "n", type=click.IntRange(min=1), default=10, show_default=True)
@click.option(
    "--include-seen", is_flag=True, help="Also recommend items the user rated in training."
)
@click.option(
    "--out",
    "out_path",
    type=click.Path(dir_okay=False),
    help="Write (user, rank, item, score) rows to this .parquet/.csv/.tsv file.",
)
@click.option(
    "--block-size",
    type=click.IntRange(min=1),
    default=None,
    help="Users scored at once (memory ~ block size x items x 4 bytes; default 64 MiB).",
)
@_threads_option
@click.option("--json", "json_output", is_flag=True, help="Print JSON.")
def recommend(
    model_file,
    user_ids,
    all_users,
    ratings_path,
    n,
    include_seen,
    out_path,
    block_size,
    json_output,
) -> None:
    """Top-N recommendations from a saved model (titles shown when known).

    Give users with --user, or --all-users --out recs.parquet for everyone (memory stays
    bounded by --block-size whatever the number of users), or a new user's ratings with
    --ratings FILE.

    The score ranks the items: for a rating model it is the predicted rating before
    clipping, so it may lie beyond the rating scale (--json also gives 'rating', clipped
    to the scale); for implicit-als it is a preference score, not a rating.
    """
    import warnings

    import mfrec
    from mfrec.exceptions import UnknownIdWarning

    if ratings_path is not None:
        if all_users or out_path:
            raise CliError("--ratings recommends for one new user: drop --all-users/--out")
        if len(user_ids) > 1:
            raise CliError(
                "--ratings folds in one user: give at most one --user (the user whose rows "
                "of the file to use)"
            )
        _recommend_for_file(
            model_file, ratings_path, user_ids[0] if user_ids else None, n, include_seen,
            json_output,
        )  # fmt: skip
        return
    if not user_ids and not all_users:
        raise CliError(USAGE)
    if user_ids and all_users:
        raise CliError("give --user ID (one or more) or --all-users, not both")
    if out_path is None and all_users:
        raise CliError("--all-users writes a file: add --out recs.parquet (or .csv/.tsv)")
    if out_path is not None:
        from mfrec.export import FORMATS

        if Path(out_path).suffix.lower() not in FORMATS:
            raise CliError(
                f"--out {out_path}: unknown file type; end the name with one of "
                f"{', '.join(FORMATS)} (e.g. --out recs.parquet)"
            )
    with _user_errors():
        model = mfrec.load(model_file)
        if out_path is not None:
            _write_all(model, out_path, n, None if all_users else model.users_.parse(user_ids),
                       not include_seen, block_size, json_output)  # fmt: skip
            return
        users = model.users_.parse(user_ids)
        unknown = [
            str(u) for u, idx in zip(users, model.users_.lookup(users), strict=True) if idx < 0
        ]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UnknownIdWarning)
            recs = model.recommend(users, n=n, exclude_seen=not include_seen)
    result = [
        {
            "user": user.item() if hasattr(user, "item") else user,
            "known": str(user) not in unknown,
            "items": _entries(model, recs.item_ids[row], recs.scores[row]),
        }
        for row, user in enumerate(users)
    ]
    if json_output:
        _echo_json(result)
        return
    for entry in result:
        note = "" if entry["known"] else "  (unknown user: ranked by global mean + item bias)"
        click.echo(f"user {entry['user']}{note}")
        _echo_entries(entry["items"])
    note = _score_note(model, [i["score"] for e in result for i in e["items"]])
    if note:
        click.echo(f"note: {note}")


_USER_SEPARATORS = (",", "\t", ";", "|")


def _read_user_ratings(path: str, model: Any, user: str | None) -> tuple[Any, Any, list[str]]:
    """(items, ratings, notes) of a new user's file: item,rating rows (header optional),
    or user,item,rating[,timestamp] rows of one user -- or of the --user chosen. Fields
    are separated by ',', tab, ';', '|' or spaces (only these: a digit is never one)."""
    import numpy as np

    try:
        text = Path(path).read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise CliError(
            f"{path}: not UTF-8 text (UTF-16? re-save it as UTF-8); expected item,rating lines"
        ) from None
    lines = [(number, line.strip()) for number, line in enumerate(text.splitlines(), 1)]
    lines = [(number, line) for number, line in lines if line]
    if not lines:
        raise CliError(f"{path} is empty: expected item,rating lines (e.g. 50,5)")
    first = lines[0][1]
    sep = next((c for c in _USER_SEPARATORS if c in first), None)
    head = [f.strip().strip('"') for f in (first.split(sep) if sep else first.split())]
    if len(head) >= 3:
        import pandas as pd

        return _one_user_rows(path, pd.DataFrame([head]), model, user)
    if user is not None:
        raise CliError(
            f"--user picks one user's rows of a user,item,rating file, but {path} has two "
            "columns (item,rating): it is one new user's ratings already; drop --user"
        )
    items: list[str] = []
    values: list[float] = []
    for position, (number, line) in enumerate(lines):
        fields = [f.strip().strip('"') for f in (line.split(sep) if sep else line.split())]
        if len(fields) < 2:
            raise CliError(
                f"{path} line {number}: expected two columns, item and rating (e.g. 50,5), "
                f"got {line[:60]!r}"
            )
        try:
            value = float(fields[1])
        except ValueError:
            if position == 0:  # a header line
                continue
            raise CliError(
                f"{path} line {number}: rating {fields[1][:40]!r} is not a number"
            ) from None
        if not math.isfinite(value):
            raise CliError(f"{path} line {number}: rating {fields[1]!r} is not a finite number")
        items.append(fields[0])
        values.append(value)
    if not values:
        raise CliError(f"{path} has a header but no ratings: expected item,rating lines")
    return model.items_.parse(items), np.array(values, dtype=float), []


def _one_user_rows(path: str, frame: Any, model: Any, user: str | None):
    """The rows of one user of a user,item,rating[,timestamp] file (read by the library's
    reader: header names or that column order)."""
    import numpy as np
    import pandas as pd

    from mfrec.data.readers import HEADER_NAMES, read_ratings

    head = [str(v).strip().lower() for v in frame.iloc[0]]
    header = pd.isna(pd.to_numeric(pd.Series([frame.iloc[0, 2]]), errors="coerce")).iloc[0]
    named = [frame.iloc[0, i] for i, v in enumerate(head) if v in HEADER_NAMES["user"]]
    column = f"column {named[0]!r}" if header and named else "its first column"
    ratings = read_ratings(path, name=Path(path).name)
    ids = ratings.users.ids
    if user is None:
        if len(ids) != 1:
            shown = ", ".join(str(u) for u in ids[:5]) + (", ..." if len(ids) > 5 else "")
            raise CliError(
                f"{path} has a user column ({column}) with {len(ids):,} users ({shown}), but "
                "--ratings folds in one new user. Pick one with --user ID, or give a file "
                "of that user's item,rating rows (no user column)"
            )
        index = 0
    else:
        index = int(ratings.users.lookup(ratings.users.parse([user]))[0])
        if index < 0:
            raise CliError(f"--user {user}: no rows of that user in {path} ({column})")
    rows = ratings.user_index == index
    chosen = ids[index]
    items = model.items_.parse([str(v) for v in ratings.items.ids[ratings.item_index[rows]]])
    note = (
        f"{path} has a user column ({column}): using the {int(rows.sum())} ratings of user "
        f"{chosen}, folded in as a new user"
    )
    return items, np.asarray(ratings.rating[rows], dtype=float), [note]


def _recommend_for_file(model_file, ratings_path, user, n, include_seen, json_output) -> None:
    import warnings

    import mfrec
    from mfrec.exceptions import UnknownIdWarning

    with _user_errors():
        model = mfrec.load(model_file)
        items, values, notes = _read_user_ratings(ratings_path, model, user)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UnknownIdWarning)
            try:
                recs = model.recommend_for_ratings(
                    (items, values), n=n, exclude_rated=not include_seen
                )
            except NotImplementedError as exc:
                raise CliError(str(exc)) from None
    notes += [str(w.message) for w in caught if issubclass(w.category, UnknownIdWarning)]
    entries = _entries(model, recs.item_ids, recs.scores)
    if json_output:
        _echo_json({"ratings": len(values), "notes": notes, "items": entries})
        return
    click.echo(f"new user with {len(values)} ratings (folded in, not stored)")
    for note in notes:
        click.echo(f"  note: {note}")
    _echo_entries(entries)
    note = _score_note(model, recs.scores)
    if note:
        click.echo(f"note: {note}")


@click.command()
@click.argument("model_file", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--item", "item_ids", multiple=True, required=True, help="Item id; repeat for several."
)
@click.option("-n", "n", type=click.IntRange(min=1), default=10, show_default=True)
@_threads_option
@click.option("--json", "json_output", is_flag=True, help="Print JSON.")
def similar(model_file, item_ids, n, json_output) -> None:
    """Items most similar to --item: cosine similarity of the item factors (-1..1; the
    item itself excluded), with titles when known."""
    import mfrec

    with _user_errors():
        model = mfrec.load(model_file)
        items = model.items_.parse(item_ids)
        try:
            recs = model.similar_items(items, n=n)
        except NotImplementedError as exc:
            raise CliError(str(exc)) from None
    titles = model.item_titles_
    result = []
    for row, item in enumerate(items):
        entry: dict[str, Any] = {"item": item.item() if hasattr(item, "item") else item}
        if titles is not None:
            entry["title"] = titles[model.items_.lookup([item])[0]]
        entry["similar"] = _entries(model, recs.item_ids[row], recs.scores[row], ratings=False)
        result.append(entry)
    if json_output:
        _echo_json(result)
        return
    for entry in result:
        title = f"  {entry['title']}" if "title" in entry else ""
        click.echo(f"item {entry['item']}{title}")
        _echo_entries(entry["similar"], label="cosine")


def _write_all(model, out_path, n, users, exclude_seen, block_size, json_output) -> None:
    import time

    from mfrec.export import write_recommendations

    total = len(model.users_) if users is None else len(users)
    started = time.perf_counter()
    with _bar(total, "recommending", _progress_enabled(json_output), unit="user") as bar:
        rows = write_recommendations(
            model, out_path, n, users=users, exclude_seen=exclude_seen, block_size=block_size,
            progress=lambda done: bar.update(done - bar.n),
        )  # fmt: skip
    seconds = time.perf_counter() - started
    summary = {"out": str(out_path), "users": total, "rows": rows, "seconds": seconds}
    if json_output:
        _echo_json(summary)
    else:
        click.echo(
            f"wrote {rows:,} recommendations for {total:,} users to {out_path} in {seconds:.1f}s"
        )
