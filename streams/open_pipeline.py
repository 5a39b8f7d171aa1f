"""The open pipeline at T (SPEC 4.4, 4.7): open leads and their amounts by current stage."""
from __future__ import annotations

from pulse.config import PipelineConfig

from .exact import from_fixed, to_fixed, weighted, weighted_sum


class OpenPipeline:
    """Counts and exact amount sums of open leads per current stage.

    Filled at report time from the groups of an OpenIndex (open_index.py), which the live
    worker keeps per event and `pulse report` builds once from its open leads.
    """

    def __init__(self, n_stages: int):
        self.count = [0] * n_stages
        self.amount = [0] * n_stages    # exact, units of 2**-1074

    def add(self, stage: int, amount: float | None) -> None:
        self.count[stage] += 1
        if amount:
            self.amount[stage] += to_fixed(amount)

    def merge(self, other: OpenPipeline) -> None:
        for i, c in enumerate(other.count):
            if c:
                self.count[i] += c
                self.amount[i] += other.amount[i]

    def opportunities(self, first_stage: int) -> int:
        """Open leads in `first_stage` or later (SPEC 4.7)."""
        return sum(self.count[first_stage:])

    def totals(self, pipeline: PipelineConfig) -> dict:
        """SPEC 4.4's pipeline totals: count, amount, weighted_amount."""
        return {
            "count": sum(self.count),
            "amount": from_fixed(sum(self.amount)),
            "weighted_amount": weighted_sum((st.probability, self.amount[st.index]) for st in pipeline.stages),
        }

    def report(self, pipeline: PipelineConfig, stale_by_stage: list[int]) -> dict:
        stages = {}
        for st in pipeline.stages:
            i = st.index
            stages[st.name] = {
                "count": self.count[i],
                "amount": from_fixed(self.amount[i]),
                "weighted_amount": weighted(st.probability, self.amount[i]),
                "stale": stale_by_stage[i],
            }
        return {
            **self.totals(pipeline),
            "opportunities": self.opportunities(pipeline.opportunity_index),
            "stages": stages,
        }
