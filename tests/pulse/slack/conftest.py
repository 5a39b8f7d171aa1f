"""Fixtures of the `pulse slack` tests: a real Redis server for each module, the fake Slack
Web API, the test configuration, a ledger prefix per test."""
from __future__ import annotations

import dataclasses
import uuid

import pytest

from pulse.config import load_config
from pulse.dev.embedded_redis import EmbeddedRedis
from pulse.slack.config import slack_config
from tests.support.fake_slack import FakeSlack
from tests.support.slack_harness import CONFIG


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    """A real Redis server for the module (the embedded one of pulse dev)."""
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis")).start()
    yield server.url
    server.stop()


@pytest.fixture
def slack():
    with FakeSlack() as fake:
        yield fake


@pytest.fixture(scope="module")
def config_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("cfg") / "pulse.yaml"
    path.write_text(CONFIG)
    return path


@pytest.fixture
def cfg(config_path):
    # whole seconds in YAML; tests want short retries and a short claim lease
    return dataclasses.replace(slack_config(load_config(config_path)), retry_initial_s=0.05, retry_max_s=0.2,
                               claim_lease_s=1.0, request_timeout_s=5.0)


@pytest.fixture
def prefix():
    return f"test:{uuid.uuid4().hex[:8]}:"
