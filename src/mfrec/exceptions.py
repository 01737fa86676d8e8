"""Exceptions and warnings raised by mfrec.

Every error names the problem and, where there is one, the fix. They subclass the
built-in exception a caller would naturally catch (``ValueError`` for bad input, ...).
"""

from __future__ import annotations


class DataError(ValueError):
    """Ratings data that cannot be used as given (missing columns, NaN, bad ids, ...)."""


class ParameterError(ValueError):
    """A hyperparameter outside its allowed range or of the wrong type."""


class NotFittedError(RuntimeError):
    """A model was used before ``fit`` was called."""


class DivergenceError(ArithmeticError):
    """Training produced non-finite parameters (usually: the learning rate is too high)."""


class ModelFileError(ValueError):
    """A model file that is truncated, corrupted, foreign or of an unsupported version."""


class DatasetNotFoundError(FileNotFoundError):
    """A dataset is neither on disk nor downloadable; the message says where to put it."""


class ChecksumError(DatasetNotFoundError):
    """A download whose size or checksum differs from the published one (nothing is kept)."""


class UnknownIdWarning(UserWarning):
    """Some ids were not seen in training; their predictions fell back to the biases."""
