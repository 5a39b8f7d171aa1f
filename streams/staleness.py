"""Stale leads (SPEC 4.5): an open lead whose current stay is older than its stage allows."""
from __future__ import annotations

import heapq
from functools import partial
from typing import Any, Callable, Iterator, Mapping


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


def stale_limits(pipelines: Mapping[str, Any]) -> dict[str, list[int | None]]:
    """Per pipeline, each stage's stale limit in microseconds by stage index (None: never stale)."""
    return {name: [stage.stale_after_us for stage in pc.stages] for name, pc in pipelines.items()}


class DueHeap:
    """Stays of leads, earliest first by the instant their next stale level falls due: a
    check costs in proportion to what is due, not to the open leads (a million quiet leads
    sit in it untouched).

    Entries are tuples `(due_us, pipeline, lead_id, stage, stay_start, ...)`. They are
    never removed early: one that no longer matches its lead's current stay is the
    caller's to skip when it surfaces.
    """

    __slots__ = ("entries", "push")

    def __init__(self) -> None:
        self.entries: list[tuple] = []      # a heapq heap; never replaced (push is bound to it)
        # push(entry): a C call, no Python frame: it runs once per event (StaleLeadDetector.watch)
        self.push: Callable[[tuple], None] = partial(heapq.heappush, self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def any_due(self, now_us: int) -> bool:
        """Whether an entry is due at `now_us` (a peek: the caller skips the walk when none is)."""
        return bool(self.entries) and self.entries[0][0] <= now_us

    def pop_due(self, now_us: int) -> Iterator[tuple]:
        """Take out each entry due at `now_us`, earliest first (those pushed meanwhile too)."""
        entries = self.entries
        while entries and entries[0][0] <= now_us:
            yield heapq.heappop(entries)
