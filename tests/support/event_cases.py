"""The event cases shared by the parser tests (test_schemas_*.py, test_parse_paths.py): a
two-pipeline configuration, an event builder, the hand-written corpus
(tests/schemas/corpus/events.jsonl) and generated mutations of every field of every type."""
from __future__ import annotations

import binascii
import json

import pytest

from pulse.schemas.config import Config, PipelineConfig, Stage, Window
from pulse.schemas.parse import parse_event
from pulse.schemas.types import Event, Rejected
from tests.support import CORPUS

CORPUS_FILE = CORPUS / "events.jsonl"
TYPES = ("lead.created", "lead.updated", "lead.stage_changed", "deal.closed")
DEFAULT_STAGES = ("new", "prospecting", "qualified", "contacted", "proposal", "negotiation")
ENTERPRISE_STAGES = ("discovery", "demo", "trial", "contract")
TS = "2026-03-01T10:15:00Z"
TS_US = 1_772_360_100_000_000


def make_config(pipelines: dict[str, tuple[str, ...]]) -> Config:
    pcs = {}
    for name, stage_names in pipelines.items():
        stages = tuple(Stage(s, i, 86_400, 0.5) for i, s in enumerate(stage_names))
        q = 1 if len(stages) > 1 else 0
        pcs[name] = PipelineConfig(name, stages, {s.name: s.index for s in stages}, q, q)
    return Config(pcs, (Window("7d", 7),))


CONFIG = make_config({"default": DEFAULT_STAGES, "enterprise": ENTERPRISE_STAGES})


def ev(t: str = "lead.created", **fields) -> dict:
    d = {"type": t, "event_id": "e-1", "lead_id": "L-1", "occurred_at": TS}
    if t == "lead.stage_changed":
        d["to_stage"] = "qualified"
    if t == "deal.closed":
        d["outcome"] = "won"
    for k, v in fields.items():
        if v is ABSENT:
            d.pop(k, None)
        else:
            d[k] = v
    return d


ABSENT = object()


def enc(d) -> bytes:
    return json.dumps(d, ensure_ascii=False).encode("utf-8")


def reason_of(raw, config=CONFIG, expected_type=None) -> str | None:
    r = parse_event(raw, config, expected_type)
    assert isinstance(r, (Event, Rejected))
    return r.reason if isinstance(r, Rejected) else None


def _corpus_cases():
    out = []
    for line in CORPUS_FILE.read_text(encoding="utf-8").splitlines():
        c = json.loads(line)
        if "raw_hex" in c:
            raw = binascii.unhexlify(c["raw_hex"])
        elif "raw" in c:
            raw = c["raw"].encode("utf-8")
        else:
            raw = enc(c["event"])
        out.append(pytest.param(raw, c["expect"], id=c["case"]))
    return out


CORPUS_CASES = _corpus_cases()


def _mutations():
    """Every event type x every known field x a set of interesting values (and absent)."""
    values = [None, "", "a", "x" * 128, "x" * 129, "\U0001F600" * 128, "\U0001F600" * 129,
              0, -1, 1.5, -0.5, 1e308, 10**30, True, False, [], {}, ["x"], {"k": "v"},
              TS, "2026-03-01T10:15:00", "2023-02-29T00:00:00Z", "2026-03-01T10:15:00.123456789+05:30",
              "won", "lost", "WON", "EUR", "eu", "E1R", "new", "qualified",
              "lead.created", "lead.stage_changed", "deal.closed", "lead.updated"]
    fields = ["type", "event_id", "lead_id", "occurred_at", "pipeline", "owner", "team", "amount",
              "currency", "attributes", "stage", "source", "to_stage", "from_stage", "outcome",
              "reason", "unknown_extra"]
    out = []
    for t in TYPES:
        base = ev(t)
        for f in fields:
            d = dict(base)
            d.pop(f, None)
            out.append(d)
            for v in values:
                d = dict(base)
                d[f] = v
                out.append(d)
    # pairs of faults and missing-field combinations
    for t in TYPES:
        for a, b in [("event_id", "occurred_at"), ("type", "lead_id"), ("amount", "currency"),
                     ("to_stage", "outcome"), ("attributes", "owner")]:
            for va in (None, 5, ""):
                out.append({**ev(t), a: va, b: va})
    return out


MUTATIONS = _mutations()
