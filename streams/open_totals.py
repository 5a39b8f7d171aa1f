"""STAND-IN (engineer O replaces it)."""
from __future__ import annotations

from .open_index import open_figures


class OpenLeadTotals:
    def __init__(self, pipeline):
        self.pipeline = pipeline

    def figures(self, indexes, as_of):
        return open_figures(indexes, self.pipeline, as_of)
