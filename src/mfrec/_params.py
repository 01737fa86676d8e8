"""Declarative hyperparameter constraints, checked in one place (house rule 1).

Each model class declares ``_constraints = {"n_factors": Integer(1, None), ...}``; the
base class checks them at ``fit`` and ``set_params`` time and the CLI uses the same
objects to parse ``--param NAME=VALUE`` strings.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np

from mfrec.exceptions import ParameterError


class Constraint:
    """A rule a hyperparameter value must follow."""

    def check(self, name: str, value: Any) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def parse(self, text: str) -> Any:
        """Turn a command-line string into a value (then checked by ``check``)."""
        return text

    def describe(self) -> str:  # pragma: no cover - interface
        raise NotImplementedError


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


@dataclass(frozen=True)
class Interval(Constraint):
    """A number in ``[low, high]``; ``open_low``/``open_high`` exclude the ends.

    ``low`` or ``high`` of None means unbounded on that side. ``integer`` requires an int.
    ``none_ok`` also accepts None (e.g. "no limit"); ``auto_ok`` the string ``"auto"``
    (the model estimates the value from the data).
    """

    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False
    integer: bool = False
    none_ok: bool = False
    auto_ok: bool = False

    def describe(self) -> str:
        kind = "an int" if self.integer else "a number"
        lo = "-inf" if self.low is None else repr(self.low)
        hi = "inf" if self.high is None else repr(self.high)
        left = "(" if self.open_low or self.low is None else "["
        right = ")" if self.open_high or self.high is None else "]"
        text = f"{kind} in {left}{lo}, {hi}{right}"
        return text + (" or None" if self.none_ok else "") + (" or 'auto'" if self.auto_ok else "")

    def check(self, name: str, value: Any) -> None:
        if value is None and self.none_ok:
            return
        if self.auto_ok and isinstance(value, str) and value == "auto":
            return
        ok_type = _is_int(value) if self.integer else _is_real(value)
        if not ok_type or (not self.integer and not math.isfinite(float(value))):
            raise ParameterError(
                f"{name} must be {self.describe()}, got {value!r} ({type(value).__name__})"
            )
        v = float(value)
        too_low = self.low is not None and (v <= self.low if self.open_low else v < self.low)
        too_high = self.high is not None and (v >= self.high if self.open_high else v > self.high)
        if too_low or too_high:
            raise ParameterError(f"{name} must be {self.describe()}, got {value!r}")

    def parse(self, text: str) -> Any:
        if self.none_ok and text.lower() in {"none", "null"}:
            return None
        if self.auto_ok and text.lower() == "auto":
            return "auto"
        try:
            return int(text) if self.integer else float(text)
        except ValueError:
            raise ParameterError(f"expected {self.describe()}, got {text!r}") from None


def Integer(low: float | None = None, high: float | None = None, **kw: Any) -> Interval:
    """Shorthand for an integer interval."""
    return Interval(low, high, integer=True, **kw)


def Real(low: float | None = None, high: float | None = None, **kw: Any) -> Interval:
    """Shorthand for a real interval."""
    return Interval(low, high, **kw)


@dataclass(frozen=True)
class Options(Constraint):
    """One of a fixed set of values."""

    values: tuple[Any, ...]

    def describe(self) -> str:
        return "one of " + ", ".join(repr(v) for v in self.values)

    def check(self, name: str, value: Any) -> None:
        if value not in self.values:
            raise ParameterError(f"{name} must be {self.describe()}, got {value!r}")

    def parse(self, text: str) -> Any:
        for v in self.values:
            if str(v).lower() == text.lower():
                return v
        raise ParameterError(f"expected {self.describe()}, got {text!r}")


@dataclass(frozen=True)
class Boolean(Constraint):
    """True or False."""

    def describe(self) -> str:
        return "True or False"

    def check(self, name: str, value: Any) -> None:
        if not isinstance(value, (bool, np.bool_)):
            raise ParameterError(f"{name} must be True or False, got {value!r}")

    def parse(self, text: str) -> Any:
        low = text.lower()
        if low in {"1", "true", "yes", "on"}:
            return True
        if low in {"0", "false", "no", "off"}:
            return False
        raise ParameterError(f"expected true or false, got {text!r}")


@dataclass(frozen=True)
class RandomStateConstraint(Constraint):
    """None, a non-negative int, or a numpy Generator."""

    def describe(self) -> str:
        return "None, a non-negative int or a numpy.random.Generator"

    def check(self, name: str, value: Any) -> None:
        if value is None or isinstance(value, np.random.Generator):
            return
        if _is_int(value) and value >= 0:
            return
        raise ParameterError(f"{name} must be {self.describe()}, got {value!r}")

    def parse(self, text: str) -> Any:
        return None if text.lower() in {"none", "null"} else Integer(0).parse(text)


def check_params(owner: str, params: dict[str, Any], constraints: dict[str, Constraint]) -> None:
    """Check every parameter against its constraint; the error names owner and parameter."""
    for name, value in params.items():
        rule = constraints.get(name)
        if rule is None:
            continue
        try:
            rule.check(name, value)
        except ParameterError as exc:
            raise ParameterError(f"{owner}: {exc}") from None
