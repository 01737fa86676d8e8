"""The ``.mfrec`` model file: arrays in an ``.npz`` zip, metadata as JSON, no pickle.

Layout (format version 1). A zip archive written by ``numpy.savez`` holding ``.npy``
members only, loaded back with ``allow_pickle=False`` so that opening a file can never
run code:

``meta``               UTF-8 JSON (as uint8): ``format`` ("mfrec-model"),
                       ``format_version``, ``mfrec_version``, ``model_class``, ``params``
                       (hyperparameters), ``scalars`` (learned numbers such as
                       ``global_mean_``), ``arrays`` (names of learned arrays; ``null``
                       for an absent optional one), vocabulary kinds, ``rating_scale``,
                       ``history`` (per-epoch records) and ``created`` (UTC time).
``users``, ``items``   the vocabularies (int64 / uint64, or text for string and big ids)
``seen_indptr``, ``seen_indices``, ``seen_data``
                       the training ratings as users x items CSR (for ``exclude_seen``)
``item_titles``        display titles, when the training data had them
``a.<name>``           each learned array (``a.user_factors_``, ...)

Files are written atomically (a temporary file beside the target, then one rename).
Loading checks the format name and version, the model class, the presence and shapes
of the arrays, and the zip CRCs; anything wrong is a :class:`ModelFileError`.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import zipfile
from typing import Any

import numpy as np
import scipy.sparse as sp

from mfrec._atomic import atomic_write
from mfrec._version import __version__
from mfrec.data.vocab import Vocabulary
from mfrec.exceptions import ModelFileError, ParameterError

FORMAT = "mfrec-model"
FORMAT_VERSION = 1


def _json_value(value: Any) -> Any:
    if isinstance(value, (np.generic,)):
        return value.item()
    if isinstance(value, np.random.Generator):
        return None  # a Generator's state is not a hyperparameter worth keeping
    if isinstance(value, tuple):
        return list(value)
    return value


def save_model(model: Any, path: str | os.PathLike[str]) -> None:
    """Write a fitted model (see the module docstring for the format)."""
    arrays: dict[str, np.ndarray] = {}
    names: dict[str, str | None] = {}
    for key in model._fitted_arrays:
        value = getattr(model, key, None)
        names[key] = None if value is None else f"a.{key}"
        if value is not None:
            arrays[f"a.{key}"] = np.ascontiguousarray(value)
    for key, value in model._extra_state().items():
        names[key] = f"a.{key}"
        arrays[f"a.{key}"] = np.ascontiguousarray(value)
    seen: sp.csr_matrix = model._seen
    arrays["seen_indptr"] = seen.indptr
    arrays["seen_indices"] = seen.indices
    arrays["seen_data"] = seen.data
    arrays["users"] = model.users_.to_array()
    arrays["items"] = model.items_.to_array()
    if model.item_titles_ is not None:
        arrays["item_titles"] = np.array([str(t) for t in model.item_titles_], dtype=str)
    scalars = {
        key: _json_value(getattr(model, key))
        for key in ("global_mean_", "fit_seconds_", "best_epoch_", *model._fitted_scalars)
        if getattr(model, key, None) is not None
    }
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "mfrec_version": __version__,
        "model_class": type(model).__name__,
        "params": {k: _json_value(v) for k, v in model.get_params().items()},
        "scalars": scalars,
        "arrays": names,
        "users_kind": model.users_.kind,
        "items_kind": model.items_.kind,
        "rating_scale": list(model.rating_scale_),
        "history": [{k: _json_value(v) for k, v in rec.items()} for rec in model.history_],
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    arrays["meta"] = np.frombuffer(json.dumps(meta, allow_nan=True).encode(), dtype=np.uint8)
    with atomic_write(path) as handle:
        np.savez(handle, **arrays)


def load(path: str | os.PathLike[str]):
    """Load a model written by ``model.save(path)``.

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    ModelFileError
        The file is not an mfrec model, is truncated or corrupted, or was written by an
        incompatible version.
    """
    from mfrec.models import get_model_class

    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no model file at {path}")
    with open(path, "rb") as handle:
        magic = handle.read(4)
    if magic != b"PK\x03\x04":
        raise ModelFileError(
            f"{path} is not an mfrec model file (it is not a zip archive; model files are "
            "written by model.save() or `mfrec train --out`)"
        )
    try:
        archive = np.load(path, allow_pickle=False)
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise ModelFileError(
            f"{path} is not a readable mfrec model file (not a zip/npz archive, or truncated): "
            f"{exc}"
        ) from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ModelFileError(f"{path} is a bare numpy array, not an mfrec model file")
    with archive:
        try:
            meta = json.loads(bytes(_read(archive, "meta", path)).decode())
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ModelFileError(f"{path}: model metadata is not valid JSON ({exc})") from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise ModelFileError(
                f"{path} is not an mfrec model file (format {meta.get('format')!r})"
            )
        version = meta.get("format_version")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise ModelFileError(
                f"{path} has model format version {version!r}, newer than this mfrec "
                f"({__version__}) reads (up to {FORMAT_VERSION}); upgrade mfrec to load it"
            )
        try:
            cls = get_model_class(meta["model_class"])
        except (ParameterError, KeyError):
            raise ModelFileError(
                f"{path} holds a model of unknown class {meta.get('model_class')!r}; "
                "it may need a newer mfrec"
            ) from None
        try:
            model = cls()
            model.set_params(**meta["params"])
        except (ParameterError, KeyError, TypeError) as exc:
            raise ModelFileError(f"{path}: stored hyperparameters are invalid: {exc}") from None
        _restore(model, archive, meta, path)
    return model


def _read(archive: np.lib.npyio.NpzFile, key: str, path: str) -> np.ndarray:
    try:
        return archive[key]
    except KeyError:
        raise ModelFileError(f"{path} is incomplete: member {key!r} is missing") from None
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise ModelFileError(f"{path} is corrupted (member {key!r}: {exc})") from None


def _restore(model: Any, archive: np.lib.npyio.NpzFile, meta: dict, path: str) -> None:
    try:
        model.users_ = Vocabulary.from_array(
            meta["users_kind"], _read(archive, "users", path), "user"
        )
        model.items_ = Vocabulary.from_array(
            meta["items_kind"], _read(archive, "items", path), "item"
        )
        n_users, n_items = len(model.users_), len(model.items_)
        model._seen = sp.csr_matrix(
            (
                _read(archive, "seen_data", path),
                _read(archive, "seen_indices", path),
                _read(archive, "seen_indptr", path),
            ),
            shape=(n_users, n_items),
        )
        model.item_titles_ = (
            np.array(_read(archive, "item_titles", path).tolist(), dtype=object)
            if "item_titles" in archive.files
            else None
        )
        model.rating_scale_ = tuple(float(v) for v in meta["rating_scale"])
        model.history_ = list(meta.get("history", []))
        for key, value in meta["scalars"].items():
            setattr(model, key, value)
        extra = {}
        for key, member in meta["arrays"].items():
            value = None if member is None else _read(archive, member, path)
            if key in model._fitted_arrays:
                setattr(model, key, value)
            else:
                extra[key] = value
        model._restore_extra_state(extra)
    except ModelFileError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{path} is inconsistent: {exc}") from None
    _check_shapes(model, n_users, n_items, path)


def _check_shapes(model: Any, n_users: int, n_items: int, path: str) -> None:
    expected = {
        "user_factors_": n_users,
        "user_bias_": n_users,
        "item_factors_": n_items,
        "item_bias_": n_items,
    }
    for key, rows in expected.items():
        value = getattr(model, key, None)
        if value is not None and value.shape[0] != rows:
            raise ModelFileError(
                f"{path} is inconsistent: {key} has {value.shape[0]} rows for {rows} ids"
            )
    if model.item_titles_ is not None and len(model.item_titles_) != n_items:
        raise ModelFileError(
            f"{path} is inconsistent: {len(model.item_titles_)} titles for {n_items} items"
        )
