"""The Redis serving tests' shared parts (test_redis.py, test_scorecards.py): a real
redis-server that can be stopped and started again on the same port, a two-pipeline
configuration (one name needs escaping in keys), and what Redis must hold.

The fixtures (`redis_server`, `pipelines_config`) are registered for every test by
tests/conftest.py (`pytest_plugins`).
"""
from __future__ import annotations

import orjson
import pytest

from pulse.config import load_config
from pulse.embedded_redis import EmbeddedRedis
from pulse.streams.engine import PulseEngine


class RedisServer(EmbeddedRedis):
    """The embedded Redis of pulse dev: stop(save=True) then start() keeps the data."""

    def stop(self, save: bool = True) -> None:
        super().stop(save=save)


@pytest.fixture
def redis_server(tmp_path):
    s = RedisServer(tmp_path).start()
    yield s
    s.stop(save=False)


STAGES = """
    stages:
      - {name: new,         stale_after: 3d}
      - {name: prospecting, stale_after: 7d}
      - {name: qualified,   stale_after: 10d}
      - {name: contacted,   stale_after: 7d}
      - {name: proposal,    stale_after: 21d}
      - {name: negotiation, stale_after: 14d}
"""
PIPELINES = ("default", "ent:eu%")          # a name that needs escaping in keys


@pytest.fixture(scope="module")
def pipelines_config(tmp_path_factory):
    """PIPELINES, each with STAGES."""
    path = tmp_path_factory.mktemp("cfg") / "pulse.yaml"
    path.write_text("pipelines:\n" + "".join(f'  "{p}":{STAGES}' for p in PIPELINES))
    return load_config(str(path))


def offline_engine(config, lines) -> PulseEngine:
    engine = PulseEngine(config)
    for line in lines:
        engine.ingest(line)
    return engine


def expected_stale(engine: PulseEngine) -> list[dict]:
    """The stale entries of every pipeline, in `pulse stale`'s order (oldest first)."""
    doc = engine.report()
    out = [{"pipeline": name, **e} for name, p in doc["pipelines"].items() for e in p["stale"]]
    out.sort(key=lambda e: (-e["age_days"], e["lead_id"].encode(), e["pipeline"].encode()))
    return out


def event(kind: str, eid: str, lead: str, at: str, **fields) -> bytes:
    return orjson.dumps({"type": kind, "event_id": eid, "lead_id": lead, "occurred_at": at, **fields})
