"""Writes the published JSON Schema files (draft 2020-12) of SPEC section 1's events.

    python -m pulse.schemas.generate           # rewrite schemas/*.schema.json
    python -m pulse.schemas.generate --check   # exit 1 if a file is out of date

The schema files are the contract for CRM publishers in other languages; this module
is their single source, so the per-type files and the combined one cannot drift
apart. `tests/schemas/test_schemas.py` checks that the files match this module's output and
that they agree with `parse_event` on every structural (invalid_event) rule.

What the schemas cannot express (and `parse_event` still checks): JSON-level faults
(byte-order mark, NaN/Infinity, numbers beyond double range, unpaired surrogates),
`type` versus the topic an event arrived on, and the configuration-dependent checks
(unknown pipeline, unknown stage).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

DRAFT = "https://json-schema.org/draft/2020-12/schema"
TYPES = ("lead.created", "lead.updated", "lead.stage_changed", "deal.closed")
HERE = Path(__file__).resolve().parent

# ---- the timestamp pattern ---------------------------------------------------------
# Only [0-9] (never \d, which is Unicode-aware in some engines). Years 0001-9999; real
# calendar dates (Feb 29 only in leap years: divisible by 4 and not by 100, or by 400);
# hours 00-23, minutes and seconds 00-59 (no leap second); optional fraction of one
# or more digits; then Z or +HH:MM / -HH:MM with hours <= 23.
_YEAR = "(?:[0-9]{3}[1-9]|[0-9]{2}[1-9][0-9]|[0-9][1-9][0-9]{2}|[1-9][0-9]{3})"
_MONTH_DAY = ("(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])"
              "|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)"
              "|02-(?:0[1-9]|1[0-9]|2[0-8]))")
_LEAP_YEAR = ("(?:[0-9]{2}(?:0[48]|[2468][048]|[13579][26])"
              "|(?:0[48]|[2468][048]|[13579][26])00)")
_DATE = f"(?:{_YEAR}-{_MONTH_DAY}|{_LEAP_YEAR}-02-29)"
_TIME = "(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\\.[0-9]+)?"
_OFFSET = "(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
TIMESTAMP_PATTERN = f"^{_DATE}T{_TIME}{_OFFSET}$"

_NO_NEWLINE_COMMENT = (
    "The 'not' clause repeats, for regex engines where '$' also matches before a "
    "final newline (Python's re, PCRE), what the ECMA-262 pattern already says: no "
    "newline anywhere.")


def _nullable(t: str) -> list[str]:
    return [t, "null"]


def _timestamp() -> dict[str, Any]:
    return {
        "description": (
            "RFC 3339 timestamp WITH offset: YYYY-MM-DDTHH:MM:SS, an optional fraction "
            "(any number of digits; kept to the microsecond, further digits truncated), "
            "then Z or +HH:MM/-HH:MM (hours <= 23). Uppercase T and Z; seconds required; "
            "no leap second (:60); a real calendar date, years 0001-9999."),
        "examples": ["2026-03-01T10:15:00Z", "2026-03-01T11:15:00.250+01:00"],
        "type": "string",
        "pattern": TIMESTAMP_PATTERN,
        "not": {"pattern": "\n"},
        "$comment": _NO_NEWLINE_COMMENT,
    }


def _id(what: str) -> dict[str, Any]:
    return {"description": what + " 1 to 128 characters (Unicode code points).",
            "type": "string", "minLength": 1, "maxLength": 128}


def _common_properties() -> dict[str, Any]:
    return {
        "event_id": _id(
            "Unique per event. Another event with the same pipeline, lead_id and "
            "event_id is a duplicate: the first one received is applied, the others "
            "are ignored."),
        "lead_id": _id(
            "The lead (deal, opportunity) this event is about; a lead is identified "
            "by (pipeline, lead_id). Also the Kafka message key (UTF-8)."),
        "occurred_at": {"title": "When it happened in the CRM (event time)", **_timestamp()},
        "pipeline": {"description": "Which configured pipeline the lead belongs to. "
                                    "Absent or null: \"default\". Case-sensitive.",
                     "type": _nullable("string")},
        "owner": {"description": "The rep who owns the lead; the latest value wins.",
                  "type": _nullable("string")},
        "team": {"description": "The owner's team; the latest value wins.",
                 "type": _nullable("string")},
        "amount": {"description": "Deal value, >= 0 (JSON true/false are not numbers); "
                                  "the latest value by event time wins.",
                   "type": _nullable("number"), "minimum": 0},
        "currency": {"description": "Informational: exactly 3 ASCII letters (e.g. EUR).",
                     "type": _nullable("string"), "pattern": "^[A-Za-z]{3}$",
                     "minLength": 3, "maxLength": 3},
        "attributes": {"description": "Free-form; carried, never used in metrics.",
                       "type": _nullable("object")},
    }


# Fields that belong to one event type. SPEC: every field of section 1 must have its
# stated type whenever present, so the other types accept them only with that type.
def _type_properties() -> dict[str, dict[str, Any]]:
    return {
        "stage": {"description": "lead.created: the stage the lead starts in (a stage "
                                 "of its pipeline, case-sensitive). Absent or null: "
                                 "the pipeline's first stage.",
                  "type": _nullable("string")},
        "source": {"description": "lead.created, lead.updated: where the lead came from, "
                                  "e.g. marketing, sales; the latest value wins.",
                   "type": _nullable("string")},
        "to_stage": {"description": "lead.stage_changed (required there): the stage the "
                                    "lead moves to (a stage of its pipeline).",
                     "type": _nullable("string")},
        "from_stage": {"description": "lead.stage_changed: informational only, never "
                                      "checked against the configuration.",
                       "type": _nullable("string")},
        "outcome": {"description": "deal.closed (required there): \"won\" or \"lost\".",
                    "enum": ["won", "lost", None]},
        "reason": {"description": "deal.closed: the loss reason.",
                   "type": _nullable("string")},
    }


_OWN_FIELDS = {
    "lead.created": ("stage", "source"),
    "lead.updated": ("source",),
    "lead.stage_changed": ("to_stage", "from_stage"),
    "deal.closed": ("outcome", "reason"),
}
# Typed on its own event type only: SPEC 1 does not list `outcome` among the fields that
# must have their type wherever present, so elsewhere it is an unknown, ignored field.
_ONLY_ON_OWN_TYPE = ("outcome",)
# SPEC 1 (v2): on lead.updated the stage fields are unknown extra fields, ignored whatever their type.
_STAGE_FIELDS = ("stage", "to_stage", "from_stage")
_UNTYPED_ON = {"lead.updated": _STAGE_FIELDS}
_REQUIRED = {
    "lead.created": (),
    "lead.updated": (),
    "lead.stage_changed": ("to_stage",),
    "deal.closed": ("outcome",),
}
_TYPE_DESCRIPTIONS = {
    "lead.created": "A lead was created in the CRM (topic crm.lead-created).",
    "lead.updated": ("A lead's fields (amount, owner, team, source) were edited in the CRM; it "
                     "moves, creates and closes nothing (topic crm.lead-updated)."),
    "lead.stage_changed": "A lead moved to another stage (topic crm.stage-changed).",
    "deal.closed": "A deal was won or lost (topic crm.deal-closed).",
}
_COMMON_REQUIRED = ["type", "event_id", "lead_id", "occurred_at"]
_GENERAL = (
    "Pipeline Pulse input event, one JSON object (UTF-8, no byte-order mark) per Kafka "
    "message or JSON Lines line. A JSON null counts as an absent field. Unknown extra "
    "fields are allowed and ignored. Not expressible here but also rejected: NaN or "
    "Infinity, numbers beyond double range, unpaired surrogate escapes, a type that "
    "does not match the topic, a pipeline or stage that is not configured.")


def _non_null(p: dict[str, Any]) -> dict[str, Any]:
    """The same property without null (a required field: null counts as absent)."""
    q = dict(p)
    if "enum" in q:
        q["enum"] = [v for v in q["enum"] if v is not None]
    else:
        q["type"] = q["type"][0]
    return q


def _per_type_schema(t: str) -> dict[str, Any]:
    props: dict[str, Any] = {"type": {"description": "The event type.", "const": t}}
    props.update(_common_properties())
    own = _type_properties()
    for name in _OWN_FIELDS[t]:
        props[name] = own.pop(name)
        if name in _REQUIRED[t]:
            props[name] = _non_null(props[name])
    for name, p in own.items():       # other types' fields: still typed when present
        if name in _ONLY_ON_OWN_TYPE or name in _UNTYPED_ON.get(t, ()):
            continue
        props[name] = {**p, "description": "Not used by " + t + "; when present it must "
                       "still have its type. " + p["description"]}
    required = _COMMON_REQUIRED + list(_REQUIRED[t])
    schema: dict[str, Any] = {
        "$schema": DRAFT,
        "title": f"Pipeline Pulse event: {t}",
        "description": _TYPE_DESCRIPTIONS[t] + " " + _GENERAL,
        "type": "object",
        "required": required,
        "properties": props,
        "additionalProperties": True,
    }
    return schema


def _combined_schema() -> dict[str, Any]:
    props: dict[str, Any] = {
        "type": {"description": "The event type; it must match the topic the event is "
                                "published to.", "enum": list(TYPES)}}
    props.update(_common_properties())
    own = _type_properties()
    props.update({n: p for n, p in own.items() if n not in _ONLY_ON_OWN_TYPE and n not in _STAGE_FIELDS})
    branches = [{
        "if": {"required": ["type"], "properties": {"type": {"const": "lead.updated"}}},
        "then": {"$comment": "lead.updated: the stage fields are unknown extra fields, ignored."},
        "else": {"properties": {n: own[n] for n in _STAGE_FIELDS}},
    }]
    for t in TYPES:
        if _REQUIRED[t]:
            branches.append({
                "if": {"required": ["type"], "properties": {"type": {"const": t}}},
                "then": {"required": list(_REQUIRED[t]),
                         "properties": {n: _non_null(own[n]) for n in _REQUIRED[t]}},
            })
    return {
        "$schema": DRAFT,
        "title": "Pipeline Pulse event",
        "description": ("Any of lead.created, lead.updated, lead.stage_changed, deal.closed (the "
                        "per-type files say the same, one type each). " + _GENERAL),
        "type": "object",
        "required": _COMMON_REQUIRED,
        "properties": props,
        "additionalProperties": True,
        "allOf": branches,
    }


def schemas() -> dict[str, dict[str, Any]]:
    """File name -> schema document."""
    out = {f"{t}.schema.json": _per_type_schema(t) for t in TYPES}
    out["event.schema.json"] = _combined_schema()
    return out


def render(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    check = "--check" in argv
    stale = []
    for name, doc in schemas().items():
        path = HERE / name
        text = render(doc)
        if check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
        else:
            path.write_text(text, encoding="utf-8")
    if stale:
        print("out of date: " + ", ".join(stale) + " (run python -m pulse.schemas.generate)",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
