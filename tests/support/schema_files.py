"""The published JSON Schema files (`schemas/*.schema.json`) as validators, for the tests
that check the run-time parser against them (tests/schemas/test_schemas_*.py)."""
from __future__ import annotations

import json
from pathlib import Path

from jsonschema import Draft202012Validator

from pulse.schemas import generate
from tests.support.event_cases import TYPES

SCHEMA_DIR = Path(generate.__file__).resolve().parent


def load_schema(name: str) -> dict:
    return json.loads((SCHEMA_DIR / name).read_text(encoding="utf-8"))


SCHEMA_FILES = ("event.schema.json",) + tuple(f"{t}.schema.json" for t in TYPES)
COMBINED = Draft202012Validator(load_schema("event.schema.json"))
PER_TYPE = {t: Draft202012Validator(load_schema(f"{t}.schema.json")) for t in TYPES}


def schema_valid(obj: dict) -> bool:
    ok = COMBINED.is_valid(obj)
    t = obj.get("type")
    if isinstance(t, str) and t in PER_TYPE:  # the per-type file must say the same as the combined one
        assert PER_TYPE[t].is_valid(obj) == ok, obj
    return ok
