"""What the kernels share: fastmath flags and a small seeded random generator.

splitmix64 (Steele, Lea & Flood 2014) gives every block or row its own reproducible
stream from one 64-bit seed, so shuffles and draws never depend on which thread runs
them (house rule 5).
"""

import numpy as np
from numba import njit

# Reassociation (vectorised reductions) and fused multiply-add, but NaN and infinity
# semantics kept: divergence must stay visible.
FAST = {"reassoc", "contract", "nsz", "arcp"}

_MASK = 0xFFFFFFFFFFFFFFFF


@njit(cache=True, nogil=True)
def splitmix64(state):
    """Advance ``state`` (uint64) and return ``(state, 64 random bits)``."""
    state = (state + np.uint64(0x9E3779B97F4A7C15)) & np.uint64(_MASK)
    z = state
    z = ((z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & np.uint64(_MASK)
    z = ((z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & np.uint64(_MASK)
    return state, z ^ (z >> np.uint64(31))


@njit(cache=True, nogil=True)
def shuffle(values, start, stop, state):
    """Fisher-Yates shuffle of values[start:stop]; returns the advanced state."""
    for t in range(stop - 1, start, -1):
        state, draw = splitmix64(state)
        j = start + np.int64(draw % np.uint64(t - start + 1))
        values[t], values[j] = values[j], values[t]
    return state


@njit(cache=True, nogil=True)
def shuffle_pairs(a, b, start, stop, state):
    """Shuffle a[start:stop] and b[start:stop] with the same permutation; returns the
    advanced state."""
    for t in range(stop - 1, start, -1):
        state, draw = splitmix64(state)
        j = start + np.int64(draw % np.uint64(t - start + 1))
        a[t], a[j] = a[j], a[t]
        b[t], b[j] = b[j], b[t]
    return state
