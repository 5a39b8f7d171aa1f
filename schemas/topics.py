"""Topic names of SPEC section 1: the one place that spells them.

Every live component (worker, replay, simulate, tests) takes its names from here, with
the configured prefix (SPEC 7.1 `--topic-prefix`) prepended as is: no separator is
added, so `--topic-prefix staging.` gives `staging.crm.lead-created`.
"""
from __future__ import annotations

LEAD_CREATED = "crm.lead-created"
LEAD_UPDATED = "crm.lead-updated"
STAGE_CHANGED = "crm.stage-changed"
DEAL_CLOSED = "crm.deal-closed"
NOTIFICATIONS = "pipeline.notifications"
DEADLETTER = "pipeline.deadletter"

#: event `type` -> the default name of the input topic that carries it
TOPIC_OF_TYPE: dict[str, str] = {
    "lead.created": LEAD_CREATED,
    "lead.updated": LEAD_UPDATED,
    "lead.stage_changed": STAGE_CHANGED,
    "deal.closed": DEAL_CLOSED,
}
#: the four co-partitioned input topics (SPEC 1: same partition count)
INPUT_TOPICS: tuple[str, ...] = (LEAD_CREATED, LEAD_UPDATED, STAGE_CHANGED, DEAL_CLOSED)
#: all six topics of SPEC 1
ALL_TOPICS: tuple[str, ...] = INPUT_TOPICS + (NOTIFICATIONS, DEADLETTER)
#: where an input without a known `type` is published (the worker dead-letters it there)
FALLBACK_TOPIC = LEAD_CREATED
#: record header by which `pulse replay`/`simulate` number their messages (8 bytes, big-endian):
#: the worker orders same-millisecond records of different input topics by it (agents/align.py)
SEQ_HEADER = "pulse.seq"


def topic_names(prefix: str = "") -> dict[str, str]:
    """Default name -> actual name, for the six topics of SPEC 1.

    >>> topic_names("t1.")[LEAD_CREATED]
    't1.crm.lead-created'
    """
    return {name: prefix + name for name in ALL_TOPICS}

