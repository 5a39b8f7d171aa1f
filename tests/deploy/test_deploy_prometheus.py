"""deploy/prometheus, the Grafana dashboard and docs/operations.md: promtool accepts the
config and rules, the rules' unit tests pass, and they all refer only to metrics and labels
the worker and the gateway expose.

promtool comes from the Debian package `prometheus` (.ci/run installs it).
The files are read through tests/support/deploy_files.py.
"""
from __future__ import annotations

import json
import re
import subprocess

import pytest
import yaml
from prometheus_client import generate_latest

from tests.support import ROOT
from tests.support.kafka_feed import Worker, messy_lines, route
from tests.support.metrics import require_binary
from tests.support.deploy_files import DASHBOARD, DEPLOY, PROMETHEUS, compose



@pytest.fixture(scope="module")
def exposed() -> dict[str, set[str]]:
    """Sample name -> label names, from the exposition of a worker that has seen messy traffic."""
    w = Worker()
    for line in messy_lines(120):
        w.feed(*route(line, 4), line)
    w.live.tick()
    from prometheus_client.parser import text_string_to_metric_families

    names: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(w.exposition().decode()):
        for s in family.samples:
            names.setdefault(s.name, set()).update(s.labels)
    # Series that exist only in a running worker with a consumer (FaustProbe).
    names.setdefault("pulse_consumer_lag_messages", set()).update({"topic", "partition"})
    for name, labels in gateway_exposed().items():
        names.setdefault(name, set()).update(labels)
    return names


def gateway_exposed() -> dict[str, set[str]]:
    """Sample name -> label names of the gateway's exposition (pulse/gateway/metrics.py), with
    one child of every labelled family, so that every series it can expose appears."""
    from prometheus_client import Counter, Histogram
    from prometheus_client.parser import text_string_to_metric_families

    from pulse.gateway.metrics import GatewayMetrics

    metrics = GatewayMetrics()
    for family in vars(metrics).values():
        labelnames = getattr(family, "_labelnames", ())
        child = family.labels(*(f"x-{n}" for n in labelnames)) if labelnames else family
        if isinstance(family, Histogram):
            child.observe(0.1)
        elif isinstance(family, Counter):
            child.inc()
        elif hasattr(child, "set"):
            child.set(1)
    names: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(generate_latest(metrics.registry).decode()):
        for s in family.samples:
            names.setdefault(s.name, set()).update(s.labels)
    return names


# --------------------------------------------------------------------------------------
# Prometheus: config, rules and their unit tests
# --------------------------------------------------------------------------------------

def promtool(*args: str) -> None:
    result = subprocess.run([require_binary("promtool"), *args], cwd=PROMETHEUS, capture_output=True, timeout=120)
    assert result.returncode == 0, (result.stdout + result.stderr).decode()


def test_promtool_check_config_and_rules():
    promtool("check", "config", "prometheus.yml")
    promtool("check", "rules", "rules.yml")


def test_promtool_test_rules():
    promtool("test", "rules", "rules_test.yml")


def test_every_required_alert_exists_and_is_unit_tested():
    rules = yaml.safe_load((PROMETHEUS / "rules.yml").read_text())
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    assert {"PulseWorkerDown", "PulseConsumerLagHigh", "PulseDeadLetterRateHigh", "PulseStaleLeadsPilingUp",
            "PulseStageConversionDrop"} <= alerts
    assert {"PulseNoGateways", "PulseGatewayBrokerUnreachable", "PulseGatewayUnavailable", "PulseGatewayAuthFailures",
            "PulseGatewaySourceRejected", "PulseGatewayInvalidDeliveries", "PulseGatewayLatencyHigh"} <= alerts
    gateway_rules = [r for g in rules["groups"] for r in g["rules"] if "pulse_gateway" in r["expr"] or
                     "pulse-gateway" in r["expr"]]
    assert len(gateway_rules) >= 8
    tests = yaml.safe_load((PROMETHEUS / "rules_test.yml").read_text())
    fired = {t["alertname"] for case in tests["tests"] for t in case["alert_rule_test"] if t["exp_alerts"]}
    assert fired == alerts


# --------------------------------------------------------------------------------------
# Dashboard and rules use only exposed metrics and labels
# --------------------------------------------------------------------------------------

_SELECTOR = re.compile(r"\b(pulse_[a-z0-9_]+|up)\b(\{[^}]*\})?")
_MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")
_BY = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
SCRAPE_LABELS = {"job", "instance"}


def check_promql(expr: str, exposed: dict[str, set[str]]) -> set[str]:
    """The metric names of `expr`; asserts they and their label matchers and `by` labels exist."""
    names, labels = set(), set(SCRAPE_LABELS)
    for m in _SELECTOR.finditer(expr):
        name, selector = m.group(1), m.group(2) or ""
        if name == "up":
            continue
        assert name in exposed, f"{name} is not exposed by the worker or the gateway (in {expr!r})"
        names.add(name)
        labels |= exposed[name]
        for label in _MATCHER.findall(selector):
            assert label in exposed[name] | SCRAPE_LABELS, f"{name} has no label {label} (in {expr!r})"
    for group in _BY.findall(expr):
        for label in filter(None, (x.strip() for x in group.split(","))):
            assert label in labels, f"no metric of {expr!r} has label {label}"
    return names


def dashboard_panels() -> list[dict]:
    return [p for p in json.loads(DASHBOARD.read_text())["panels"] if p["type"] != "row"]


def test_dashboard_has_the_panels():
    titles = " | ".join(p["title"].lower() for p in dashboard_panels())
    for needle in ("funnel", "conversion rate by stage", "drop-off", "sales velocity", "lead velocity",
                   "stale leads by stage and level", "open pipeline", "weighted pipeline", "win rate",
                   "throughput", "consumer lag", "dead letters", "open and weighted pipeline by team",
                   "open and weighted pipeline by source", "won amount by team", "won amount by source",
                   "forecast against actual", "forecast attainment", "gateway requests by source and code",
                   "gateway events published by type", "gateway request latency p99", "gateway auth failures"):
        assert needle in titles, needle
    ids = [p["id"] for p in json.loads(DASHBOARD.read_text())["panels"]]
    assert len(ids) == len(set(ids))


def test_dashboard_uses_only_exposed_metrics_and_the_provisioned_datasource(exposed):
    dashboard = json.loads(DASHBOARD.read_text())
    datasources = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text())
    uid = datasources["datasources"][0]["uid"]
    used = set()
    for panel in dashboard_panels():
        assert panel["datasource"]["uid"] == uid, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            expr = target["expr"].replace("$__rate_interval", "5m")
            expr = expr.replace("$pipeline", "default").replace("$window", "30d")
            used |= check_promql(expr, exposed)
    for variable in dashboard["templating"]["list"]:
        m = re.fullmatch(r"label_values\((\w+), (\w+)\)", variable["query"]["query"])
        assert m and m.group(2) in exposed[m.group(1)], variable
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert {"pipeline", "window", "team", "source"} <= variables
    for panel in dashboard_panels():            # a team/source panel follows the team/source picker
        for target in panel["targets"]:
            for dim in ("team", "source"):
                if f"pulse_{dim}_" in target["expr"]:
                    assert f'{dim}=~"${dim}"' in target["expr"], (panel["title"], target["expr"])
    # The dashboard covers the families a reader needs.
    for name in ("pulse_open_leads", "pulse_open_weighted_amount", "pulse_stage_entered", "pulse_stage_exits",
                 "pulse_stale_leads", "pulse_events_consumed_total", "pulse_consumer_lag_messages",
                 "pulse_events_dead_lettered_total", "pulse_sales_cycle_sum_seconds", "pulse_won_amount",
                 "pulse_team_open_amount", "pulse_source_open_amount", "pulse_team_won_amount",
                 "pulse_source_won_amount", "pulse_team_stale_leads", "pulse_forecast_open_at_start_weighted_amount",
                 "pulse_gateway_requests_total", "pulse_gateway_events_published_total",
                 "pulse_gateway_request_seconds_bucket", "pulse_gateway_auth_failures_total",
                 "pulse_gateway_dead_letters_total", "pulse_gateway_broker_connected"):
        assert name in used, name
    provider = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/pipeline-pulse.yml").read_text())
    mount = {v.split(":")[1] for v in compose()["services"]["grafana"]["volumes"] if "dashboards" in v}
    assert provider["providers"][0]["options"]["path"] in mount


def test_alerting_rules_use_only_exposed_metrics(exposed):
    rules = yaml.safe_load((PROMETHEUS / "rules.yml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            check_promql(rule["expr"], exposed)
            assert rule["labels"]["severity"] in {"critical", "warning", "info"}
            assert rule["annotations"]["summary"]


def test_operations_guide_names_only_exposed_metrics(exposed):
    text = (ROOT / "docs" / "operations.md").read_text()
    families = {n.removesuffix("_total").removesuffix("_bucket") for n in exposed}
    for name in set(re.findall(r"\bpulse_[a-z0-9_]+\b", text)):
        if name.endswith("_"):                 # a prefix in prose, e.g. pulse_stage_dwell_mean_seconds, _p50_...
            continue
        assert name in exposed or name in families or name.removesuffix("_total") in families, name
    assert "Aggregating across workers" in text and "leads-changelog" in text
