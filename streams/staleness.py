"""Stale leads (SPEC 4.5): an open lead whose current stay is older than its stage allows."""
from __future__ import annotations


def stale_level(age_us: int, stale_after_us: int | None) -> int:
    """0 when not stale, else the largest k in {1, 2, 3} with age > k × stale_after."""
    if stale_after_us is None or age_us <= stale_after_us:
        return 0
    if age_us > 3 * stale_after_us:
        return 3
    if age_us > 2 * stale_after_us:
        return 2
    return 1


def next_level_due_us(stay_start_us: int, stale_after_us: int | None, level: int) -> int | None:
    """The first instant at which a stay is past `level` + 1 (None: never, or already at 3).

    Stale means age strictly greater than k × stale_after, so the level is reached
    one microsecond after the boundary.
    """
    if stale_after_us is None or level >= 3:
        return None
    return stay_start_us + (level + 1) * stale_after_us + 1
