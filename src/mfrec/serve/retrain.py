"""A full refit on a model's training ratings plus the stored feedback (``mfrec retrain``)."""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import numpy as np

from mfrec.serve.store import FeedbackStore

logger = logging.getLogger(__name__)


def _parse(kind: str, text: str) -> Any:
    """A stored id as a raw id of a vocabulary of ``kind``; None when it cannot be one."""
    if kind == "str":
        return text
    try:
        return int(text)
    except ValueError:
        return None


def retrain(model_path: str | os.PathLike[str], store: FeedbackStore, out: str) -> dict[str, Any]:
    """Fit a fresh model of the same class and hyperparameters on the training ratings held
    in ``model_path`` plus every row of ``store`` (the latest rating of a pair wins, so
    feedback overrides training), and write it atomically to ``out``. Items and users
    first seen in feedback become known. Returns a summary."""
    import pandas as pd

    import mfrec
    from mfrec.data.ratings import Ratings

    old = mfrec.load(model_path)
    seen = old.seen_items.tocoo()
    users = [old.users_.ids[seen.row].astype(object)]
    items = [old.items_.ids[seen.col].astype(object)]
    values = [seen.data.astype(np.float64)]
    fb_users, fb_items, fb_values = [], [], []
    skipped = 0
    for row in store.iter_all():
        user, item = _parse(old.users_.kind, row.user), _parse(old.items_.kind, row.item)
        if user is None or item is None:
            skipped += 1
            continue
        fb_users.append(user)
        fb_items.append(item)
        fb_values.append(row.rating)
    if skipped:
        logger.warning(
            "%d feedback rows have ids of another kind than the model's; skipped", skipped
        )
    users.append(np.array(fb_users, dtype=object))
    items.append(np.array(fb_items, dtype=object))
    values.append(np.array(fb_values, dtype=np.float64))
    item_info = None
    if old.item_titles_ is not None:
        item_info = pd.DataFrame(
            {"title": np.asarray(old.item_titles_, dtype=object)},
            index=pd.Index(old.items_.ids, dtype=object),
        )
    ratings = Ratings.from_arrays(
        np.concatenate(users),
        np.concatenate(items),
        np.concatenate(values),
        duplicates="last",
        item_info=item_info,
        name=f"{os.path.basename(str(model_path))} + feedback",
    )
    model = type(old)(**old.get_params())
    started = time.perf_counter()
    model.fit(ratings)
    seconds = time.perf_counter() - started
    model.save(out)
    return {
        "model": type(model).__name__,
        "from": str(model_path),
        "out": str(out),
        "training_ratings": int(seen.nnz),
        "feedback_rows": len(fb_values),
        "skipped_rows": skipped,
        "n_ratings": len(ratings),
        "n_users": ratings.n_users,
        "n_items": ratings.n_items,
        "new_users": ratings.n_users - len(old.users_),
        "new_items": ratings.n_items - len(old.items_),
        "fit_seconds": seconds,
    }
