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
    _user_errors,
)


@click.command()
@click.argument("model_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--user", "user_ids", multiple=True, help="User id; repeat for several.")
@click.option(
    "--all-users", is_flag=True, help="Every user of the model, streamed to --out in blocks."
)
@click.option(
    "--ratings",
    "ratings_path",
    type=click.Path(exists=True, dir_okay=False),
    help="A new user's ratings (file with item,rating columns): recommend for them by "
    "fold-in, without retraining (items the model does not know are ignored).",
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
    """
    import warnings

    import mfrec
    from mfrec.exceptions import UnknownIdWarning

    if ratings_path is not None:
        if user_ids or all_users or out_path:
            raise CliError("--ratings recommends for one new user: drop --user/--all-users/--out")
        _recommend_for_file(model_file, ratings_path, n, include_seen, json_output)
        return
    if bool(user_ids) == all_users:
        raise CliError("give --user ID (one or more) or --all-users, not both and not neither")
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
    titles = model.item_titles_
    result = []
    for row, user in enumerate(users):
        items = []
        for item, score in zip(recs.item_ids[row], recs.scores[row], strict=True):
            if not math.isfinite(float(score)):
                continue
            entry = {"item": item.item() if hasattr(item, "item") else item, "score": float(score)}
            if titles is not None:
                entry["title"] = titles[model.items_.lookup([item])[0]]
            items.append(entry)
        result.append(
            {
                "user": user.item() if hasattr(user, "item") else user,
                "known": str(user) not in unknown,
                "items": items,
            }
        )
    if json_output:
        _echo_json(result)
        return
    for entry in result:
        note = "" if entry["known"] else "  (unknown user: ranked by global mean + item bias)"
        click.echo(f"user {entry['user']}{note}")
        for rank, item in enumerate(entry["items"], 1):
            title = f"  {item['title']}" if "title" in item else ""
            click.echo(f"  {rank:>3}. {item['item']!s:<10} {item['score']:.3f}{title}")


_USER_SEPARATORS = (",", "\t", ";", "|")


def _read_user_ratings(path: str, model: Any) -> tuple[Any, Any]:
    """(items, ratings) of a one-user file: two columns item,rating, header optional;
    separated by ',', tab, ';', '|' or spaces (only these: a digit is never one)."""
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
    return model.items_.parse(items), np.array(values, dtype=float)


def _recommend_for_file(model_file, ratings_path, n, include_seen, json_output) -> None:
    import warnings

    import mfrec
    from mfrec.exceptions import UnknownIdWarning

    with _user_errors():
        model = mfrec.load(model_file)
        items, values = _read_user_ratings(ratings_path, model)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UnknownIdWarning)
            try:
                recs = model.recommend_for_ratings(
                    (items, values), n=n, exclude_rated=not include_seen
                )
            except NotImplementedError as exc:
                raise CliError(str(exc)) from None
    ignored = [str(w.message) for w in caught if issubclass(w.category, UnknownIdWarning)]
    entries = _entries(model, recs.item_ids, recs.scores)
    if json_output:
        _echo_json({"ratings": len(values), "notes": ignored, "items": entries})
        return
    click.echo(f"new user with {len(values)} ratings (folded in, not stored)")
    for note in ignored:
        click.echo(f"  note: {note}")
    _echo_entries(entries)


@click.command()
@click.argument("model_file", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--item", "item_ids", multiple=True, required=True, help="Item id; repeat for several."
)
@click.option("-n", "n", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--json", "json_output", is_flag=True, help="Print JSON.")
def similar(model_file, item_ids, n, json_output) -> None:
    """Items most similar to --item: cosine similarity of the item factors (the item itself
    excluded), with titles when known."""
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
        entry["similar"] = _entries(model, recs.item_ids[row], recs.scores[row])
        result.append(entry)
    if json_output:
        _echo_json(result)
        return
    for entry in result:
        title = f"  {entry['title']}" if "title" in entry else ""
        click.echo(f"item {entry['item']}{title}")
        _echo_entries(entry["similar"])


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
