"""STAND-IN (engineer W replaces it): the merged accumulators, rebuilt per refresh."""
from __future__ import annotations

from .deals import DealFlow
from .flow import StageFlow


class FlowTotals:
    def __init__(self, n_stages: int):
        self.n_stages = n_stages
        self._merged = StageFlow(n_stages)

    def refresh(self, sources) -> None:
        self._merged = StageFlow(self.n_stages)
        for s in sources:
            self._merged.merge(s)

    def window(self, days):
        return self._merged.window(days)

    def open_at_day_starts(self, days):
        return self._merged.open_at_day_starts(days)


class DealTotals:
    def __init__(self):
        self._merged = DealFlow()

    def refresh(self, sources) -> None:
        self._merged = DealFlow()
        for s in sources:
            self._merged.merge(s)

    def window(self, days):
        return self._merged.window(days)

    def segments(self, days):
        return self._merged.segments(days)
