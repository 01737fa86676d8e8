"""One place that turns ``random_state`` into a numpy Generator (house rule 5)."""

from __future__ import annotations

import numbers

import numpy as np

from mfrec.exceptions import ParameterError

RandomState = None | int | np.random.Generator


def check_random_state(random_state: RandomState) -> np.random.Generator:
    """Normalise ``None | int | Generator`` to a ``numpy.random.Generator``.

    An int always gives the same stream; ``None`` draws fresh OS entropy; a Generator is
    used as is (and advanced by the caller's use of it).
    """
    if random_state is None:
        return np.random.default_rng()
    if isinstance(random_state, np.random.Generator):
        return random_state
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        if random_state < 0:
            raise ParameterError(f"random_state must be a non-negative int, got {random_state}")
        return np.random.default_rng(int(random_state))
    raise ParameterError(
        "random_state must be None, a non-negative int or a numpy.random.Generator, "
        f"got {type(random_state).__name__}"
    )


def spawn_seeds(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` independent 64-bit seeds derived from ``rng`` (for numba threads or blocks).

    Seeds come from the generator's stream, so they depend only on ``random_state`` and
    ``n`` -- never on how many cores run them.
    """
    return rng.integers(0, 2**63 - 1, size=n, dtype=np.int64)
