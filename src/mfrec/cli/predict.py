"""`mfrec predict`: the predicted rating of given (user, item) pairs from a saved model."""

from __future__ import annotations

from typing import Any

import click

from mfrec.cli._common import CliError, _echo_json, _threads_option, _user_errors


@click.command()
@click.argument("model_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--user", "user_ids", multiple=True, help="User id; repeat, paired with --item.")
@click.option("--item", "item_ids", multiple=True, help="Item id; repeat, paired with --user.")
@click.option(
    "--pairs",
    "pairs_path",
    type=click.Path(exists=True, dir_okay=False),
    help="A file of user,item rows (CSV/TSV, header optional; further columns ignored).",
)
@click.option(
    "--clip/--no-clip",
    default=True,
    show_default=True,
    help="Clip predicted ratings to the training rating scale (--no-clip: the raw score "
    "that ranks recommendations). implicit-als scores are never clipped.",
)
@_threads_option
@click.option("--json", "json_output", is_flag=True, help="Print JSON instead of CSV.")
def predict(model_file, user_ids, item_ids, pairs_path, clip, json_output) -> None:
    """Predicted ratings of (user, item) pairs, as CSV (user,item,rating) on stdout.

    Pairs come from --user/--item given in turn (--user 196 --item 242 --user 186
    --item 302; one --user with several --item, or the reverse, pairs it with each) or
    from --pairs FILE. An id unseen in training is predicted by the library's one
    policy (the global mean and the biases that exist) and flagged known=false; a note
    on stderr says how many. For implicit-als the column is 'score', a preference score.
    """
    import warnings

    import mfrec
    from mfrec.exceptions import UnknownIdWarning

    if pairs_path is not None and (user_ids or item_ids):
        raise CliError("give pairs with --user/--item or with --pairs FILE, not both")
    if pairs_path is None:
        users_text, items_text = _paired(user_ids, item_ids)
    else:
        users_text, items_text = _read_pairs(pairs_path)
    with _user_errors():
        model = mfrec.load(model_file)
        users = model.users_.parse(users_text)
        items = model.items_.parse(items_text)
        ratings = model.predicts_ratings
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UnknownIdWarning)
            values = model.predict(users, items, clip=clip and ratings)
    known = (model.users_.lookup(users) >= 0) & (model.items_.lookup(items) >= 0)
    notes = [str(w.message) for w in caught if issubclass(w.category, UnknownIdWarning)]
    column = "rating" if ratings else "score"
    rows = [
        {"user": _plain(u), "item": _plain(i), column: float(v), "known": bool(k)}
        for u, i, v, k in zip(users, items, values, known, strict=True)
    ]
    if json_output:
        _echo_json({"predictions": rows, "clipped": bool(clip and ratings), "notes": notes})
        return
    click.echo(f"user,item,{column},known")
    for row in rows:
        click.echo(
            f"{_csv(row['user'])},{_csv(row['item'])},{row[column]:.6g},{str(row['known']).lower()}"
        )
    for note in notes:
        click.echo(f"note: {note}", err=True)


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _csv(value: Any) -> str:
    text = str(value)
    if any(c in text for c in ',"\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


def _paired(user_ids: tuple[str, ...], item_ids: tuple[str, ...]) -> tuple[list[str], list[str]]:
    if not user_ids or not item_ids:
        raise CliError(
            "give the pairs to predict: --user ID --item ID (repeat for several), or "
            "--pairs FILE of user,item rows"
        )
    users, items = list(user_ids), list(item_ids)
    if len(users) == len(items):
        return users, items
    if len(users) == 1:
        return users * len(items), items
    if len(items) == 1:
        return users, items * len(users)
    raise CliError(
        f"{len(users)} --user and {len(items)} --item: give them in pairs (equal counts), "
        "or one --user with several --item (or the reverse)"
    )


def _read_pairs(path: str) -> tuple[list[str], list[str]]:
    """user,item columns of a text file: a header is recognised by its names (user,
    userId, item, movieId, ...); without one the first two columns are user and item."""
    import pandas as pd

    from mfrec.data.readers import HEADER_NAMES

    try:
        frame = pd.read_csv(path, sep=None, engine="python", header=None, dtype=str)
    except (ValueError, pd.errors.ParserError) as exc:
        raise CliError(f"{path}: cannot read it as user,item rows ({exc})") from None
    if frame.shape[1] < 2:
        raise CliError(f"{path}: expected two columns, user and item (e.g. 196,242)")
    first = [str(v).strip().lower() for v in frame.iloc[0]]
    user_col, item_col = 0, 1
    named = {
        role: [i for i, v in enumerate(first) if v in HEADER_NAMES[role]]
        for role in ("user", "item")
    }
    if named["user"] or named["item"]:
        if not (named["user"] and named["item"]):
            raise CliError(
                f"{path}: its header {list(frame.iloc[0])} names no "
                f"{'user' if not named['user'] else 'item'} column (e.g. user,item)"
            )
        user_col, item_col = named["user"][0], named["item"][0]
        frame = frame.iloc[1:]
    if frame.empty:
        raise CliError(f"{path} has no user,item rows")
    missing = frame[[user_col, item_col]].isna().any(axis=1).to_numpy()
    if missing.any():
        raise CliError(f"{path}: row {int(missing.argmax()) + 1} lacks a user or an item id")
    return (
        frame[user_col].str.strip().tolist(),
        frame[item_col].str.strip().tolist(),
    )
