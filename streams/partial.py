"""A worker's share of the state, as bytes another worker can merge (GET /report/partial).

Carries what a report needs and nothing else: the input counters, the per-day
accumulators, and the open leads' current stays. Not the event histories. MessagePack,
with the exact big integers (money sums in units of 2**-1074, dwell sums) as decimal
strings: no pickle between processes.
"""
from __future__ import annotations

import msgspec

from pulse.schemas.config import Config

from .deals import DealFlow
from .engine import PulseEngine
from .flow import StageFlow, _DayFlow

_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.decode
# Bumped whenever the layout changes: during a rolling upgrade a worker must not merge a peer's
# share that it would misread (2: SPEC v2 segments and opening figures, open leads' source;
# 3: segment counts per (owner, team, source) rather than per dimension).
FORMAT = 3


class PartialFormatError(ValueError):
    """A peer's share in another layout (a rolling upgrade in progress)."""


def dump_partial(engine: PulseEngine) -> bytes:
    pipelines = {}
    for name, p in engine.pipelines.items():
        pipelines[name] = {
            "implicit": p.implicit_creates,
            "flow": [(d, b.entered, b.exits, [str(x) for x in b.dwell_sum_us], list(b.dwell_hist.items()),
                      list(b.transitions.items()), b.open_fix, [str(x) for x in b.open_amount])
                     for d, b in p.flow._days.items()],
            "deals": p.deals.dump(),
            "open": list(p.open_rows()),
        }
    counters = engine.counters()
    return _encode({"format": FORMAT, "counters": counters, "pipelines": pipelines})


def load_partial(config: Config, data: bytes) -> PulseEngine:
    """An engine holding a peer's share: enough to merge and report, not to take events."""
    doc = _decode(data)
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise PartialFormatError(f"a peer's /report/partial is not in format {FORMAT} (a worker of another version?)")
    engine = PulseEngine(config)
    engine.restore_counters(doc["counters"])
    for name, part in doc["pipelines"].items():
        p = engine.pipelines.get(name)
        if p is None:
            continue                                    # configured differently over there: skip
        p.implicit_creates = part["implicit"]
        flow = StageFlow(p.flow.n_stages)
        for d, entered, exits, dwell_sum, hist, transitions, open_fix, open_amount in part["flow"]:
            b = flow._days[d] = _DayFlow(flow.n_stages)
            b.entered, b.exits, b.dwell_sum_us = list(entered), list(exits), [int(x) for x in dwell_sum]
            b.dwell_hist, b.transitions = dict(hist), dict(transitions)
            b.open_fix, b.open_amount = list(open_fix), [int(x) for x in open_amount]
        p.flow = flow
        p.deals = DealFlow.load(part["deals"])
        p.merged_rows.append(part["open"])              # its open leads, as rows: read once, by a report
    return engine
