"""Order-independent sums of money amounts.

Float addition is not associative, so a running float sum depends on the order
in which leads contributed — and the report must not depend on arrival order
(SPEC section 3). Every finite double is an integer multiple of 2**-1074, so we
keep sums as exact Python integers in that unit: adding and removing a lead's
contribution is exact, and the value reported is the correctly rounded sum.
"""
from __future__ import annotations

_SHIFT = 1074
_ONE = 1 << _SHIFT


_cache: dict[float, int] = {}
#: to_fixed's memo, for hot paths that look a value up before calling it (`_cache.get(x) or to_fixed(x)`
#: for x != 0): a dict look-up instead of a Python call. Only ever cleared in place.
FIXED_CACHE = _cache


def to_fixed(x: float) -> int:
    """The exact value of `x` in units of 2**-1074."""
    v = _cache.get(x)
    if v is None:
        # Leads repeat their amount on many events: memoise, within a bounded size.
        if len(_cache) > 65536:
            _cache.clear()
        n, d = x.as_integer_ratio()  # d is a power of two <= 2**1074
        v = _cache[x] = n << (_SHIFT + 1 - d.bit_length())
    return v


def from_fixed(total: int) -> float:
    """The double nearest to an exact fixed-point sum (int / int is correctly rounded)."""
    return total / _ONE


def weighted(probability: float, total: int) -> float:
    """probability × total, rounded once: the exact Σ amount × probability of SPEC 4.4."""
    return weighted_sum(((probability, total),))


def weighted_sum(pairs) -> float:
    """Σ probability_i × total_i over (probability, fixed total) pairs, rounded once.

    probability = n / 2**k exactly, so the sum is Σ n_i × total_i × 2**(K - k_i) / 2**(1074 + K):
    products by 53-bit numerators, not by the ~1,100-bit fixed form of the probability
    (int / int is correctly rounded, so this is the same float as with to_fixed)."""
    total = 0
    scale = 0                               # K so far
    for probability, amount in pairs:
        n, d = probability.as_integer_ratio()
        k = d.bit_length() - 1
        if k > scale:
            total <<= k - scale
            scale = k
        total += (n * amount) << (scale - k)
    return total / (1 << (_SHIFT + scale))
