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

``meta["checksums"]`` holds the SHA-256 of every member (its dtype, shape and bytes)
and, under ``"meta"``, of the metadata itself (canonical JSON without the checksums):
any edit or corruption of a file is detected and names the member it is in. Files
written before checksums existed still load (verified by structure only).

Files are written atomically (a temporary file beside the target, then one rename).
Loading verifies the file whole before any of it is used: format name and version,
the checksums, the model class and its hyperparameters, the type of every scalar, and
of every array its dtype, shape, agreement with the others (vocabulary sizes, factor
widths), finiteness, the seen-items CSR (monotone ``indptr``, item indices within
bounds, sorted and distinct per user) and distinct vocabulary ids -- so that a loaded
model can never crash a kernel or predict nonsense. Anything wrong is a
:class:`ModelFileError` naming the member and the fix.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import math
import numbers
import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import scipy.sparse as sp

from mfrec._atomic import atomic_write
from mfrec._version import __version__
from mfrec.data.vocab import Vocabulary
from mfrec.exceptions import ModelFileError

logger = logging.getLogger(__name__)

FORMAT = "mfrec-model"
FORMAT_VERSION = 1
_FIX = "re-create it with model.save() or `mfrec train --out` (or restore a backup)"


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
    meta = json.loads(json.dumps(meta, allow_nan=True))  # exactly what load will see
    meta["checksums"] = {"meta": _meta_digest(meta)} | {
        name: _array_digest(value) for name, value in sorted(arrays.items())
    }
    arrays["meta"] = np.frombuffer(json.dumps(meta, allow_nan=True).encode(), dtype=np.uint8)
    with atomic_write(path) as handle:
        np.savez(handle, **arrays)


def _array_digest(value: np.ndarray) -> str:
    """SHA-256 of an array's dtype, shape and bytes."""
    arr = np.ascontiguousarray(value)
    digest = hashlib.sha256(f"{arr.dtype.str}|{arr.shape}|".encode())
    if arr.size:
        digest.update(arr.reshape(-1).view(np.uint8))
    return digest.hexdigest()


def _meta_digest(meta: dict) -> str:
    """SHA-256 of the metadata without its checksums, as canonical JSON."""
    body = {k: v for k, v in meta.items() if k != "checksums"}
    text = json.dumps(body, sort_keys=True, allow_nan=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


_SCALARS = ("global_mean_", "fit_seconds_", "best_epoch_")


def load(path: str | os.PathLike[str], classes: Mapping[str, type]):
    """Load a model written by ``model.save(path)``, verified whole (see the module
    docstring): a file that loads is a model that predicts what was saved.

    ``classes`` maps a class name (``"BiasedMF"``) to the model class: the registry
    :func:`mfrec.load` passes, so that this module never imports the models (they
    import it to save).

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    ModelFileError
        The file is not an mfrec model, is truncated, corrupted, edited or internally
        inconsistent, or was written by an incompatible version. The message names
        the member at fault and the fix.
    """
    import stat

    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no model file at {path}")
    mode = os.stat(path).st_mode
    if stat.S_ISDIR(mode):
        raise ModelFileError(f"{path} is a folder, not a model file; give the .mfrec file")
    if not stat.S_ISREG(mode):
        raise ModelFileError(
            f"{path} is not a regular file (a pipe, socket or device); copy the model to a file"
        )
    with open(path, "rb") as handle:
        magic = handle.read(4)
    if magic != b"PK\x03\x04":
        raise ModelFileError(
            f"{path} is not an mfrec model file (it is not a zip archive; model files are "
            "written by model.save() or `mfrec train --out`)"
        )
    return _load_from(path, path, classes)


def _load_from(source: Any, path: str, classes: Mapping[str, type]):
    """Load from ``source`` (a path or a binary file object); ``path`` names it in
    messages. Members are checked as they are read, the metadata first, so that a
    damaged file is refused at the first damaged member."""
    try:
        archive = np.load(source, allow_pickle=False)
    except Exception as exc:  # zipfile raises many kinds on a damaged directory
        raise ModelFileError(
            f"{path} is not a readable mfrec model file (damaged zip directory, or "
            f"truncated: {type(exc).__name__}: {exc}); {_FIX}"
        ) from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ModelFileError(f"{path} is a bare numpy array, not an mfrec model file")
    with archive:
        _check_stored(archive, path)
        if "meta" not in archive.files:
            raise ModelFileError(
                f"{path} is incomplete: member 'meta' is missing (not an mfrec model file?)"
            )
        raw_meta = _read(archive, "meta", path)
        meta = _parse_meta(raw_meta, path)
        cls = _model_class(meta, path, classes)
        sums = _checksums(meta, path)
        members = {"meta": raw_meta}
        for key in archive.files:
            if key != "meta":
                members[key] = _read(archive, key, path)
                if sums is not None:
                    _verify_member(sums, key, members[key], path)
    if sums is not None:
        missing = sorted(set(sums) - set(members))
        if missing:
            raise ModelFileError(f"{path} is incomplete: member {missing[0]!r} is missing; {_FIX}")
    return _build(cls, members, meta, path)


def _check_stored(archive: np.lib.npyio.NpzFile, path: str) -> None:
    """Members must be stored as model.save writes them, uncompressed: the bytes read
    are then bounded by the file's size (a compressed member could expand without
    bound, a "zip bomb")."""
    import zipfile

    for info in archive.zip.infolist():
        if info.compress_type != zipfile.ZIP_STORED or info.file_size != info.compress_size:
            raise ModelFileError(
                f"{path}: member {info.filename!r} is compressed, but mfrec model files "
                "store their members uncompressed (as model.save() writes them); save the "
                "model again rather than recompressing the file"
            )


def _read(archive: np.lib.npyio.NpzFile, key: str, path: str) -> np.ndarray:
    try:
        value = archive[key]
    except MemoryError:
        raise ModelFileError(
            f"{path} is corrupted (member {key!r} claims an impossible size); {_FIX}"
        ) from None
    except Exception as exc:  # CRC errors, bad .npy headers, truncation, ...
        raise ModelFileError(
            f"{path} is corrupted (member {key!r}: {type(exc).__name__}: {exc}); {_FIX}"
        ) from None
    if not isinstance(value, np.ndarray):
        raise ModelFileError(f"{path} is corrupted (member {key!r} is not an array); {_FIX}")
    return value


def _bad(path: str, member: str, problem: str) -> ModelFileError:
    return ModelFileError(f"{path} is inconsistent: {member} {problem}; {_FIX}")


def _parse_meta(raw: np.ndarray, path: str) -> dict:
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise _bad(path, "member 'meta'", f"is {raw.dtype} of shape {raw.shape}, not UTF-8 bytes")
    try:
        meta = json.loads(raw.tobytes().decode())
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ModelFileError(
            f"{path}: model metadata (member 'meta') is not valid JSON ({exc}); {_FIX}"
        ) from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        shown = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise ModelFileError(f"{path} is not an mfrec model file (format {shown!r})")
    version = meta.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise _bad(path, "meta.format_version", f"is {version!r}, not a positive int")
    if version > FORMAT_VERSION:
        raise ModelFileError(
            f"{path} has model format version {version!r}, newer than this mfrec "
            f"({__version__}) reads (up to {FORMAT_VERSION}); upgrade mfrec to load it"
        )
    return meta


def _checksums(meta: dict, path: str) -> dict[str, str] | None:
    """The member checksums, after checking the metadata's own; None for a file saved
    before checksums existed."""
    sums = meta.get("checksums")
    if sums is None:
        logger.info(
            "%s has no checksums (saved by an older mfrec): verified by structure only; "
            "save it again to add them",
            path,
        )
        return None
    if not isinstance(sums, dict) or not all(isinstance(v, str) for v in sums.values()):
        raise _bad(path, "meta.checksums", "is not a mapping of member names to digests")
    if sums.get("meta") != _meta_digest(meta):
        raise ModelFileError(
            f"{path} is corrupted or was edited: its metadata (member 'meta') does not match "
            f"its checksum; {_FIX}"
        )
    return sums


def _verify_member(sums: dict[str, str], name: str, value: np.ndarray, path: str) -> None:
    if name not in sums:
        raise ModelFileError(
            f"{path} was altered: member {name!r} has no checksum (it was not written "
            f"by model.save()); {_FIX}"
        )
    try:
        digest = _array_digest(value)
    except (ValueError, TypeError) as exc:
        raise ModelFileError(f"{path} is corrupted (member {name!r}: {exc}); {_FIX}") from None
    if digest != sums[name]:
        raise ModelFileError(
            f"{path} is corrupted or was edited: member {name!r} does not match its "
            f"checksum; {_FIX}"
        )


def _model_class(meta: dict, path: str, classes: Mapping[str, type]) -> type:
    name = meta.get("model_class")
    if isinstance(name, str) and name in classes:
        return classes[name]
    raise ModelFileError(
        f"{path} holds a model of unknown class {name!r}; it may need a newer mfrec"
    )


def _build(cls: type, members: dict[str, np.ndarray], meta: dict, path: str):
    params = meta.get("params")
    if not isinstance(params, dict):
        raise _bad(path, "meta.params", "is not a mapping of hyperparameters")
    try:
        model = cls()
        # A file older than a hyperparameter gets the value it was trained with.
        model.set_params(**{**getattr(cls, "_params_before_they_existed", {}), **params})
    except Exception as exc:  # ParameterError, or a value a constraint cannot compare
        raise ModelFileError(
            f"{path}: stored hyperparameters (meta.params) are invalid for {cls.__name__} "
            f"(is the model class right?): {exc}; {_FIX}"
        ) from None
    try:
        _Restorer(model, members, meta, path).run()
    except ModelFileError:
        raise
    except Exception as exc:  # a value no check above foresaw: still the file's fault
        raise ModelFileError(
            f"{path} is inconsistent ({type(exc).__name__}: {exc}); {_FIX}"
        ) from None
    return model


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


class _Restorer:
    """Check every member of a parsed file against the model class, then set the
    model's learned state from them."""

    def __init__(self, model: Any, members: dict[str, np.ndarray], meta: dict, path: str):
        self.model, self.members, self.meta, self.path = model, members, meta, path
        self.cls_name = type(model).__name__

    def bad(self, member: str, problem: str) -> ModelFileError:
        return _bad(self.path, member, problem)

    def member(self, key: str) -> np.ndarray:
        if key not in self.members:
            raise ModelFileError(f"{self.path} is incomplete: member {key!r} is missing; {_FIX}")
        value = self.members[key]
        if value.dtype.byteorder not in ("=", "|") and not value.dtype.isnative:
            value = value.astype(value.dtype.newbyteorder("="))
        return np.ascontiguousarray(value)

    def floats(self, key: str, shape: tuple[int | None, ...]) -> np.ndarray:
        value = self.member(key)
        what = f"member {key!r}"
        if value.dtype not in (np.float32, np.float64):
            raise self.bad(what, f"has dtype {value.dtype}, expected float32 or float64")
        if value.ndim != len(shape) or any(
            want is not None and got != want for got, want in zip(value.shape, shape, strict=True)
        ):
            expected = tuple("k" if s is None else s for s in shape)
            raise self.bad(what, f"has shape {value.shape}, expected {expected}")
        if not np.isfinite(value).all():
            raise self.bad(what, "holds NaN or infinite values")
        return value

    def run(self) -> None:
        self.restore_vocabularies()
        self.restore_seen()
        self.restore_scalars()
        self.restore_arrays()
        unexpected = sorted(set(self.members) - self.used - {"meta"})
        if unexpected:
            raise self.bad(f"member {unexpected[0]!r}", "does not belong to an mfrec model file")

    # -- vocabularies and seen items ----------------------------------------------
    def vocabulary(self, side: str) -> Vocabulary:
        kind = self.meta.get(f"{side}s_kind")
        key = f"{side}s"
        arr = self.member(key)
        what = f"member {key!r}"
        expected = {"int": "i", "uint": "u", "str": "U", "bigint": "U"}
        if not isinstance(kind, str) or kind not in expected:
            raise self.bad(f"meta.{side}s_kind", f"is {kind!r}, not one of {sorted(expected)}")
        if arr.dtype.kind != expected[kind] or arr.ndim != 1:
            raise self.bad(what, f"is {arr.dtype} of shape {arr.shape} for {kind} ids")
        if len(arr) == 0:
            raise self.bad(what, f"is empty: a fitted model knows at least one {side}")
        if len(np.unique(arr)) != len(arr):
            raise self.bad(what, f"holds a {side} id more than once; ids must be distinct")
        try:
            return Vocabulary.from_array(kind, arr, side)
        except (ValueError, TypeError) as exc:
            raise self.bad(what, f"cannot be read as {kind} ids ({exc})") from None

    def restore_vocabularies(self) -> None:
        self.used = {"users", "items", "seen_indptr", "seen_indices", "seen_data"}
        self.model.users_ = self.vocabulary("user")
        self.model.items_ = self.vocabulary("item")
        self.n_users, self.n_items = len(self.model.users_), len(self.model.items_)

    def restore_seen(self) -> None:
        indptr = self.member("seen_indptr")
        indices = self.member("seen_indices")
        data = self.member("seen_data")
        for key, value in (("seen_indptr", indptr), ("seen_indices", indices)):
            if value.dtype.kind not in "iu" or value.ndim != 1:
                raise self.bad(f"member {key!r}", f"is {value.dtype} of shape {value.shape}")
        if len(indptr) != self.n_users + 1:
            raise self.bad(
                "member 'seen_indptr'", f"has {len(indptr)} entries for {self.n_users} users"
            )
        nnz = len(indices)
        if indptr[0] != 0 or indptr[-1] != nnz or (np.diff(indptr) < 0).any():
            raise self.bad(
                "member 'seen_indptr'",
                f"is not a monotone row pointer from 0 to {nnz} (the seen-items count)",
            )
        if nnz and (indices.min() < 0 or indices.max() >= self.n_items):
            raise self.bad(
                "member 'seen_indices'", f"holds item indices outside 0..{self.n_items - 1}"
            )
        if nnz > 1:
            increasing = indices[1:] > indices[:-1]  # one bool per pair, no wider temporary
            starts = indptr[1:-1].astype(np.int64)
            increasing[starts[(starts > 0) & (starts < nnz)] - 1] = True  # across users
            if not increasing.all():
                raise self.bad(
                    "member 'seen_indices'", "is not sorted and distinct within each user"
                )
        data = self.floats("seen_data", (nnz,))
        index_type = np.int32 if max(nnz, self.n_items) < 2**31 - 1 else np.int64
        self.model._seen = sp.csr_matrix(
            (
                data.astype(np.float32, copy=False),
                indices.astype(index_type, copy=False),
                indptr.astype(index_type, copy=False),
            ),
            shape=(self.n_users, self.n_items),
        )
        titles = None
        if "item_titles" in self.members:
            self.used.add("item_titles")
            raw = self.member("item_titles")
            if raw.dtype.kind != "U" or raw.shape != (self.n_items,):
                raise self.bad(
                    "member 'item_titles'",
                    f"is {raw.dtype} of shape {raw.shape}, expected {self.n_items} strings",
                )
            titles = np.array(raw.tolist(), dtype=object)
        self.model.item_titles_ = titles

    # -- scalars and metadata -----------------------------------------------------
    def restore_scalars(self) -> None:
        model, meta = self.model, self.meta
        scale = meta.get("rating_scale")
        if (
            not isinstance(scale, list)
            or len(scale) != 2
            or not all(_is_real(v) and math.isfinite(v) for v in scale)
            or scale[0] > scale[1]
        ):
            raise self.bad("meta.rating_scale", f"is {scale!r}, not a finite [low, high]")
        model.rating_scale_ = (float(scale[0]), float(scale[1]))
        history = meta.get("history", [])
        if not isinstance(history, list) or not all(
            isinstance(r, dict)
            and all(v is None or isinstance(v, (int, float, str)) for v in r.values())
            for r in history
        ):
            raise self.bad("meta.history", "is not a list of per-epoch records")
        model.history_ = history
        scalars = meta.get("scalars")
        if not isinstance(scalars, dict):
            raise self.bad("meta.scalars", "is not a mapping")
        allowed = (*_SCALARS, *type(model)._fitted_scalars)
        for key, value in scalars.items():
            where = f"meta.scalars.{key}"
            if key not in allowed:
                raise self.bad(where, f"is not a learned value of {self.cls_name}")
            if key == "best_epoch_":
                ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
            elif key == "solver_":
                ok = isinstance(value, str)
            else:
                ok = _is_real(value) and math.isfinite(value)
                ok = ok and (key == "global_mean_" or value >= 0)
            if not ok:
                raise self.bad(where, f"is {value!r}, not a valid value")
            setattr(model, key, float(value) if _is_real(value) and key != "best_epoch_" else value)
        if "global_mean_" not in scalars:
            raise self.bad("meta.scalars", "has no global_mean_")

    # -- learned arrays -----------------------------------------------------------
    def restore_arrays(self) -> None:
        model, meta = self.model, self.meta
        names = meta.get("arrays")
        expected = {*type(model)._fitted_arrays, *type(model)._extra_arrays}
        if not isinstance(names, dict) or set(names) != expected:
            shown = sorted(names) if isinstance(names, dict) else names
            raise self.bad(
                "meta.arrays",
                f"lists {shown}, but a {self.cls_name} has {sorted(expected)} "
                "(is the model class right?)",
            )
        for key, member in names.items():
            if member is not None and member != f"a.{key}":
                raise self.bad(f"meta.arrays.{key}", f"names member {member!r}, not 'a.{key}'")
        present = {key for key, member in names.items() if member is not None}
        for key in ("user_factors_", "item_factors_"):
            if key in expected and key not in present:
                raise self.bad(f"meta.arrays.{key}", "is null, but every model has it")
        biases = model._bias_layout()
        if biases is not None:
            for key, wanted in zip(("user_bias_", "item_bias_"), biases, strict=True):
                if (key in present) != wanted:
                    state = "has" if key in present else "lacks"
                    raise self.bad(
                        f"member 'a.{key}'",
                        f"-- the file {state} it, but a {self.cls_name} with these "
                        "hyperparameters never does (is the model class right?)",
                    )
        self.used |= {f"a.{key}" for key in present}
        n_u, n_i = self.n_users, self.n_items
        values: dict[str, np.ndarray | None] = dict.fromkeys(names)
        p = self.floats("a.user_factors_", (n_u, None))
        k = p.shape[1]
        values["user_factors_"] = p
        values["item_factors_"] = self.floats("a.item_factors_", (n_i, k))
        shapes: dict[str, tuple[int | None, ...]] = {
            "user_bias_": (n_u,),
            "item_bias_": (n_i,),
            "implicit_factors_": (n_i, k),
            "user_bias_samples_": (n_u, None),
            "item_bias_samples_": (n_i, None),
            "singular_values_": (k,),
        }
        for key in present - {"user_factors_", "item_factors_"}:
            values[key] = self.floats(f"a.{key}", shapes.get(key, (None,)))
        self.check_dtypes(values)
        if "user_bias_samples_" in present:
            samples = values["user_bias_samples_"].shape[1]
            other = values["item_bias_samples_"].shape[1]
            if samples < 1 or other != samples or k % samples:
                raise self.bad(
                    "member 'a.item_bias_samples_'",
                    f"has {other} samples, user side {samples}, factor width {k}: they disagree",
                )
        if "singular_values_" in present and (values["singular_values_"] < 0).any():
            raise self.bad("member 'a.singular_values_'", "holds negative singular values")
        extra = {}
        for key, value in values.items():
            if key in type(model)._fitted_arrays:
                setattr(model, key, value)
            else:
                extra[key] = value
        model._restore_extra_state(extra)

    def check_dtypes(self, values: dict[str, np.ndarray | None]) -> None:
        wanted = self.model.get_params().get("dtype")
        if wanted not in ("float32", "float64"):
            return
        for key in ("user_factors_", "item_factors_", "user_bias_", "item_bias_"):
            value = values.get(key)
            if value is not None and value.dtype != np.dtype(wanted):
                raise self.bad(
                    f"member 'a.{key}'", f"is {value.dtype}, but the model's dtype is {wanted}"
                )
