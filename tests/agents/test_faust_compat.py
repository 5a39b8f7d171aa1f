"""agents/faust_compat.py: the Faust internals the worker relies on are still the ones it was
written against, and the fetch loop logs what kills it (as upstream's does).

No broker: the app and its consumer are made, never started (tests/agents/test_worker.py runs
them against a real broker).
"""
from __future__ import annotations

import asyncio
import hashlib
import importlib
import inspect
import logging
from types import SimpleNamespace

import faust
import pytest
from faust.transport.consumer import CONSUMER_FETCHING

from pulse.agents import faust_compat
from pulse.agents.faust_compat import OVERRIDDEN, PRIVATE_ATTRIBUTES, BatchingConsumer, PulseApp


def _upstream(ref: str):
    module, qualname = ref.split(":")
    found = importlib.import_module(module)
    for part in qualname.split("."):
        found = getattr(found, part)
    return found


@pytest.mark.parametrize("ref", sorted(OVERRIDDEN))
def test_each_overridden_upstream_method_is_the_one_our_override_copies(ref):
    source = inspect.getsource(_upstream(ref))
    digest = hashlib.sha256(source.encode()).hexdigest()
    assert digest == OVERRIDDEN[ref], (
        f"Faust's {ref} changed (faust-streaming {faust.__version__}): agents/faust_compat.py overrides it "
        f"with an edited copy. Re-read the new upstream source, port its changes into the override (error "
        f"handling, offsets, flags, commit), run tests/agents/test_worker.py and tests/agents/test_batching.py, "
        f"then record the new hash {digest} in faust_compat.OVERRIDDEN.")


def test_the_overrides_listed_are_the_methods_faust_compat_overrides():
    ours = {"faust.transport.consumer:Consumer._drain_messages": BatchingConsumer._drain_messages,
            "faust.app.base:App._new_consumer": PulseApp._new_consumer}
    assert set(ours) == set(OVERRIDDEN)
    for ref, method in ours.items():
        assert method is not _upstream(ref), f"{ref} is no longer overridden: drop it from OVERRIDDEN"


@pytest.fixture
def app():
    app = PulseApp("compat-test", broker="kafka://127.0.0.1:9", store="memory://", autodiscover=False,
                   web_enabled=False)
    yield app


def test_every_private_attribute_used_is_still_there(app):
    objects = {"consumer": app.consumer, "producer": app.producer, "table": app.Table("t", default=None)}
    assert isinstance(objects["consumer"], BatchingConsumer)
    for what, name in PRIVATE_ATTRIBUTES:
        # The producer's aiokafka producer is made at start: its class declares it.
        target = objects[what]
        assert hasattr(target, name) or name in getattr(type(target), "__annotations__", {}), (
            f"Faust {faust.__version__}: the {what} ({type(target).__module__}.{type(target).__qualname__}) has "
            f"no {name} any more; agents/faust_compat.py uses it. Find what replaced it upstream and adapt.")


def test_the_compat_helpers_read_what_they_name(app):
    table = app.Table("leads", default=None)
    faust_compat.use_raw_changelog(table)
    assert table.changelog_topic.key_serializer == table.changelog_topic.value_serializer == "raw"
    assert faust_compat.read_offset(app, "t", 0) is None
    app.consumer._read_offset[faust.types.TP("t", 0)] = 41
    assert faust_compat.read_offset(app, "t", 0) == 41
    assert faust_compat.aiokafka_producer(app) is app.producer._producer


def test_an_error_in_on_batch_is_logged_with_its_traceback_and_stops_the_fetch_loop(app, caplog):
    # A real BatchingConsumer, never started: only `getmany` (the broker's side) is replaced,
    # by one fetch of one message of an input topic.
    message = SimpleNamespace(topic="crm.lead-created", partition=0, offset=0)

    flags_while_fetching = []

    async def getmany(timeout):
        flags_while_fetching.append(set(consumer.diag.flags))
        yield faust.types.TP("crm.lead-created", 0), message

    def on_batch(messages):
        raise ValueError(f"boom on {len(messages)} message(s)")

    app.batch_topics, app.on_batch = frozenset({"crm.lead-created"}), on_batch
    consumer = app.consumer
    consumer.getmany = getmany
    fetcher = SimpleNamespace(_stopped=asyncio.Event())
    with caplog.at_level(logging.ERROR), pytest.raises(ValueError, match="boom on 1 message"):
        asyncio.run(consumer._drain_messages(fetcher))
    [record] = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert "Drain messages raised" in record.getMessage() and "boom on 1 message" in record.getMessage()
    assert record.exc_info is not None and record.exc_info[0] is ValueError
    assert consumer._read_offset[faust.types.TP("crm.lead-created", 0)] == 0     # the message was read
    assert flags_while_fetching == [{CONSUMER_FETCHING}] and not consumer.diag.flags     # upstream's flag
