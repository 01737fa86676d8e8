"""Implicit feedback: interactions built from explicit ratings or from raw event counts.

Implicit-feedback models (:class:`~mfrec.models.ImplicitALS`) read a
:class:`~mfrec.data.Ratings` whose values are non-negative interaction strengths: 1 for
"interacted", or a count (plays, clicks, purchases). Every stored pair is an interaction;
every absent pair is "no interaction" (not "disliked").

Two ways to get there:

- :func:`to_implicit` -- from explicit ratings, by a threshold: a rating ``>= threshold``
  becomes an interaction (``values="binary"``: strength 1; ``values="raw"``: strength =
  the rating), lower ratings are dropped. MovieLens "ratings >= 4 as interactions" is
  ``to_implicit(ratings, 4.0)``.
- :func:`from_events` -- from an event log with repeated (user, item) pairs, summing
  their counts (or weights) into one strength per pair.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pandas as pd

from mfrec.data.ratings import Ratings
from mfrec.exceptions import DataError


def to_implicit(
    ratings: Ratings,
    threshold: float | None = 4.0,
    *,
    values: Literal["binary", "raw"] = "binary",
) -> Ratings:
    """Explicit ratings as implicit interactions.

    Parameters
    ----------
    ratings : Ratings
    threshold : float or None, default 4.0
        Keep the ratings ``>= threshold`` as interactions and drop the others; None
        keeps every rating (any rating is an interaction).
    values : {"binary", "raw"}, default "binary"
        Strength of an interaction: 1.0, or the rating itself (so that a 5 weighs more
        than a 4 in the confidence ``1 + alpha r``).

    Returns
    -------
    Ratings
        The kept rows, with the input's vocabularies, timestamps and item metadata, no
        declared scale, and the name suffixed with ``"implicit>=threshold"``.
    """
    if not isinstance(ratings, Ratings):
        raise DataError(f"to_implicit expects mfrec Ratings, got {type(ratings).__name__}")
    if values not in ("binary", "raw"):
        raise DataError(f"values must be 'binary' or 'raw', got {values!r}")
    keep = np.ones(len(ratings), dtype=bool) if threshold is None else ratings.rating >= threshold
    if not keep.any():
        raise DataError(
            f"no rating is >= {threshold:g}: there are no interactions; lower the threshold"
        )
    if values == "raw" and (ratings.rating[keep] < 0).any():
        raise DataError("raw interaction strengths must be >= 0; use values='binary'")
    kept = ratings.subset(keep)
    strength = np.ones(len(kept), dtype=np.float32) if values == "binary" else kept.rating
    label = "all" if threshold is None else f">={threshold:g}"
    return Ratings(
        kept.user_index,
        kept.item_index,
        strength,
        kept.users,
        kept.items,
        kept.timestamp,
        None,
        kept.item_info,
        f"{ratings.name or 'ratings'} (implicit {label})",
    )


def from_events(
    users: Any,
    items: Any,
    counts: Any = None,
    *,
    item_info: pd.DataFrame | None = None,
    name: str | None = None,
) -> Ratings:
    """Implicit interactions from an event log: one row per (user, item) pair, whose
    strength is the number of events of the pair (or the sum of their ``counts``).

    Parameters
    ----------
    users, items : array-like
        Raw ids of each event.
    counts : array-like, optional
        Non-negative weight of each event (default 1).
    item_info : pandas.DataFrame, optional
    name : str, optional

    Returns
    -------
    Ratings
    """
    n = len(users)
    weights = np.ones(n) if counts is None else np.asarray(counts, dtype=np.float64)
    if len(items) != n or len(weights) != n:
        raise DataError(
            f"columns differ in length: {n} users, {len(items)} items, {len(weights)} counts"
        )
    if not np.all(np.isfinite(weights)) or (weights < 0).any():
        raise DataError("event counts must be finite and >= 0")
    frame = pd.DataFrame({"user": users, "item": items, "count": weights})
    summed = frame.groupby(["user", "item"], sort=False, as_index=False, dropna=False)[
        "count"
    ].sum()
    return Ratings.from_arrays(
        summed["user"], summed["item"], summed["count"], item_info=item_info, name=name
    )
