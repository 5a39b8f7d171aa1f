"""deploy/ and docs/operations.md: files parse, tools accept them, and they refer only to
metrics the worker exposes, settings the worker reads and topics it uses.

promtool comes from the Debian package `prometheus` (.ci/run installs it); `docker compose
config` runs only where a Compose CLI is installed (no engine is needed for it).
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import generate_latest

from pulse.agents.metrics import metrics_options
from pulse.config import load_config
from pulse.settings import _ENV
from pulse.slack.config import slack_config
from pulse.topics import ALL_TOPICS, INPUT_TOPICS

from tests.support import ROOT
from tests.support.kafka_feed import Worker, messy_lines, route
from tests.support.metrics import require_binary

DEPLOY = ROOT / "deploy"
PROMETHEUS = DEPLOY / "prometheus"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "pipeline-pulse.json"
K8S = DEPLOY / "k8s"


def yaml_files() -> list[Path]:
    return sorted(p for p in DEPLOY.rglob("*") if p.suffix in (".yml", ".yaml"))


def load_all(path: Path) -> list:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def compose() -> dict:
    return yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())


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
# Every file parses
# --------------------------------------------------------------------------------------

def test_every_yaml_and_json_file_in_deploy_parses():
    files = yaml_files()
    assert len(files) >= 12, files
    for path in files:
        assert load_all(path), path
    for path in DEPLOY.rglob("*.json"):
        json.loads(path.read_text())


def test_the_deployment_configuration_is_a_valid_pipeline_configuration():
    config = load_config(str(DEPLOY / "config" / "pipeline.yaml"))
    assert metrics_options(config).cache_seconds == 5
    windows = {w.key for w in config.windows}
    assert {"7d", "90d"} <= windows           # the alerting rules compare these two
    assert slack_config(config).default_channel


def test_the_deployment_configuration_has_gateway_sources_with_secrets_from_the_environment():
    from pulse.config import ConfigError
    from pulse.gateway.sources import gateway_sources

    config = load_config(str(DEPLOY / "config" / "pipeline.yaml"))
    entries = config.extra["sources"]
    assert any(e["kind"] == "hubspot" and "secret_env" in e for e in entries.values())
    variables = {e["secret_env"] for e in entries.values() if "secret_env" in e}
    assert all("secret" not in e for e in entries.values())          # never inline
    sources = gateway_sources(config, {var: f"test-{var}" for var in variables})
    assert {s.kind for s in sources.values()} >= {"hubspot"}
    with pytest.raises(ConfigError, match="HUBSPOT_CLIENT_SECRET"):  # no secret: exit 2 at start
        gateway_sources(config, {})
    # Every variable is in the compose example env file (empty there) and documented for Kubernetes.
    example = dict(line.split("=", 1) for line in (DEPLOY / "gateway.env.example").read_text().splitlines()
                   if line and not line.startswith("#"))
    assert set(example) == variables and not any(example.values())
    k8s_note = (K8S / "gateway-deployment.yaml").read_text()
    assert all(f"--from-literal={var}=" in k8s_note for var in variables)
    assert "deploy/gateway.env" in (ROOT / ".gitignore").read_text().split()


# --------------------------------------------------------------------------------------
# docker-compose
# --------------------------------------------------------------------------------------

def test_compose_has_the_services_and_wires_them_together():
    c = compose()
    services = c["services"]
    assert {"kafka", "kafka-init", "redis", "prometheus", "grafana", "worker-1", "worker-2", "slack",
            "gateway"} <= set(services)
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert "broker,controller" in services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"]   # KRaft

    workers = {name: s for name, s in services.items() if s.get("command") == ["worker"]}
    assert set(workers) == {"worker-1", "worker-2"}
    for name, s in workers.items():
        env = s["environment"]
        assert env["PULSE_ADVERTISED_HOST"] == s["hostname"] == name
        assert env["PULSE_BROKER"] == "kafka://kafka:9092"
        assert set(env) <= {var for var, _ in _ENV.values()} | {"PULSE_PARTITIONS", "PULSE_PROFILE"}, set(env)
        assert s["build"]["dockerfile"] == "deploy/Dockerfile"
        assert s["healthcheck"]["test"][-1].endswith("urlopen('http://127.0.0.1:6066/health', timeout=3)")

    slack = services["slack"]
    assert slack["command"][0] == "slack" and "--slack-token-file" in slack["command"]
    assert slack["secrets"] == ["slack_bot_token"] and "slack_bot_token" in c["secrets"]
    assert "SLACK_BOT_TOKEN" not in slack.get("environment", {})     # the token is a secret file, not env

    # Prometheus scrapes exactly the workers, on the worker's port.
    scrape = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in scrape["scrape_configs"]}
    assert sorted(jobs["pulse-worker"]["static_configs"][0]["targets"]) == [f"{name}:6066" for name in sorted(workers)]
    port = slack["environment"]["PULSE_SLACK_METRICS_PORT"]
    assert jobs["pulse-slack"]["static_configs"][0]["targets"] == [f"slack:{port}"]
    port = services["gateway"]["environment"]["PULSE_GATEWAY_PORT"]
    assert jobs["pulse-gateway"]["static_configs"][0]["targets"] == [f"gateway:{port}"]

    # Every bind-mounted file exists.
    for name, s in services.items():
        for volume in s.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), (name, volume)


def test_compose_runs_the_gateway_with_its_secrets_from_an_env_file():
    c = compose()
    gateway = c["services"]["gateway"]
    assert gateway["command"] == ["gateway"]
    assert gateway["image"] == c["services"]["worker-1"]["image"]             # the same image
    env = gateway["environment"]
    assert set(env) <= {var for var, _ in _ENV.values()}, set(env)
    assert env["PULSE_BROKER"] == c["services"]["worker-1"]["environment"]["PULSE_BROKER"]
    assert env["PULSE_CONFIG"] == c["services"]["worker-1"]["environment"]["PULSE_CONFIG"]
    port = env["PULSE_GATEWAY_PORT"]
    assert f"{port}:{port}" in gateway["ports"]
    assert gateway["healthcheck"]["test"][-1].endswith(f"urlopen('http://127.0.0.1:{port}/health', timeout=3)")
    assert gateway["depends_on"]["kafka-init"]["condition"] == "service_completed_successfully"
    # Secrets: from an env file (not in git), never a value in the compose file.
    (env_file,) = gateway["env_file"]
    assert env_file["path"] == "./gateway.env"
    variables = {e["secret_env"] for e in load_config(str(DEPLOY / "config" / "pipeline.yaml")).extra["sources"].values()}
    assert not variables & set(env)
    assert not (DEPLOY / "gateway.env").exists() or "deploy/gateway.env" in (ROOT / ".gitignore").read_text()
    assert "EXPOSE 6066 8088" in (DEPLOY / "Dockerfile").read_text()


def test_compose_creates_the_topics_the_workers_use():
    c = compose()
    script = c["services"]["kafka-init"]["command"][0]
    created = {m.group(1): (int(m.group(2)), m.group(3)) for m in
               re.finditer(r"^\s*topic (\S+)\s+(\d+)(.*)$", script, re.MULTILINE)}
    env = c["services"]["worker-1"]["environment"]
    partitions = int(env["PULSE_PARTITIONS"])
    assert set(ALL_TOPICS) <= set(created)
    for topic in INPUT_TOPICS:
        assert created[topic][0] == partitions
    changelog = f"{env['PULSE_APP_ID']}-leads-changelog"
    assert created[changelog][0] == partitions
    assert "cleanup.policy=compact" in created[changelog][1]
    assert "retention.ms=-1" in created["pipeline.notifications"][1]


def _compose_cli() -> list[str] | None:
    """A Docker Compose CLI of version 2.24 or later (secrets from the environment, optional env_file), if installed."""
    for argv in (["docker", "compose"], ["docker-compose"]):
        if not shutil.which(argv[0]):
            continue
        try:
            out = subprocess.run([*argv, "version", "--short"], capture_output=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            continue
        m = re.match(r"v?(\d+)\.(\d+)", out.stdout.decode().strip())
        if out.returncode == 0 and m and (int(m.group(1)), int(m.group(2))) >= (2, 24):
            return argv
    return None


def test_docker_compose_config_accepts_the_file():
    cli = _compose_cli()
    if cli is None:
        pytest.skip("no Docker Compose CLI >= 2.24 here (`docker compose version` fails): the structure is "
                    "checked by the other tests of this file")
    result = subprocess.run([*cli, "-f", str(DEPLOY / "docker-compose.yml"), "config", "--quiet"],
                            capture_output=True, timeout=60, env={"SLACK_BOT_TOKEN": "xoxb-test", "PATH": "/usr/bin:/bin:/usr/local/bin"})
    assert result.returncode == 0, result.stderr.decode()


def test_dockerfile_copies_what_the_package_needs():
    text = (DEPLOY / "Dockerfile").read_text()
    for line in text.splitlines():
        if line.startswith("COPY") and "--from" not in line:
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), source
    assert 'ENTRYPOINT ["pulse"]' in text and "EXPOSE 6066" in text
    assert re.search(r"^USER \d+", text, re.MULTILINE)             # not root
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text()
    assert "!pulse/" in ignore and "!agents/" in ignore


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


# --------------------------------------------------------------------------------------
# Kubernetes
# --------------------------------------------------------------------------------------

def k8s_objects() -> dict[tuple[str, str], dict]:
    objects = {}
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in load_all(path):
            assert {"apiVersion", "kind", "metadata"} <= set(doc), path
            assert doc["metadata"].get("namespace", "pipeline-pulse") == "pipeline-pulse"
            objects[(doc["kind"], doc["metadata"]["name"])] = doc
    return objects


def test_kustomization_lists_existing_files():
    k = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    for resource in k["resources"]:
        assert (K8S / resource).exists(), resource
    assert "podmonitor.yaml" not in k["resources"]        # needs the Prometheus Operator's CRD
    assert "gateway-ingress.yaml" not in k["resources"]   # an example: host, certificate, controller are the user's


def test_worker_statefulset_services_and_config():
    objects = k8s_objects()
    sts = objects[("StatefulSet", "pulse-worker")]
    peers = objects[("Service", sts["spec"]["serviceName"])]
    assert peers["spec"]["clusterIP"] == "None" and peers["spec"]["publishNotReadyAddresses"] is True
    assert objects[("Service", "pulse-worker")]["spec"]["ports"][0]["port"] == 6066
    pod = sts["spec"]["template"]
    assert pod["metadata"]["labels"].items() >= sts["spec"]["selector"]["matchLabels"].items()
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == "6066"
    (container,) = pod["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert f".{sts['spec']['serviceName']}." in env["PULSE_ADVERTISED_HOST"]["value"]
    assert "$(POD_NAME)" in env["PULSE_ADVERTISED_HOST"]["value"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/health"
    assert "httpGet" not in container["livenessProbe"]    # /health is 503 while rebalancing: not a liveness check
    settings = objects[("ConfigMap", container["envFrom"][0]["configMapRef"]["name"])]["data"]
    known = {var for var, _ in _ENV.values()} | {"PULSE_PARTITIONS", "PULSE_PROFILE"}
    assert set(settings) | {k for k in env if k.startswith("PULSE_")} <= known
    mounted = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert settings["PULSE_CONFIG"] == mounted["pipeline"] + "/pipeline.yaml"
    pipeline = objects[("ConfigMap", volumes["pipeline"]["configMap"]["name"])]["data"]["pipeline.yaml"]
    assert pipeline == (DEPLOY / "config" / "pipeline.yaml").read_text()
    pdb = objects[("PodDisruptionBudget", "pulse-worker")]
    assert pdb["spec"]["selector"]["matchLabels"] == sts["spec"]["selector"]["matchLabels"]


def test_slack_notifier_reads_its_token_from_a_secret():
    objects = k8s_objects()
    deployment = objects[("Deployment", "pulse-slack")]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    secret = volumes["slack-token"]["secret"]
    mount = next(m for m in container["volumeMounts"] if m["name"] == "slack-token")
    assert container["args"][0] == "slack"
    token_file = container["args"][container["args"].index("--slack-token-file") + 1]
    assert token_file == f"{mount['mountPath']}/{secret['items'][0]['path']}"
    assert secret["secretName"] == "pulse-slack"
    assert not {e["name"] for e in container.get("env", [])} & {"SLACK_BOT_TOKEN", "SLACK_WEBHOOK_URL"}
    port = container["ports"][0]["containerPort"]
    assert deployment["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"] == str(port)
    assert {"name": "PULSE_SLACK_METRICS_PORT", "value": str(port)} in container["env"]


def test_gateway_deployment_service_pdb_and_scrape():
    objects = k8s_objects()
    deployment = objects[("Deployment", "pulse-gateway")]
    spec = deployment["spec"]
    assert spec["replicas"] == 2                          # stateless: two, so a drain or rollout keeps one
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    pod = spec["template"]
    selector = spec["selector"]["matchLabels"]
    assert pod["metadata"]["labels"].items() >= selector.items()
    (container,) = pod["spec"]["containers"]
    assert container["args"] == ["gateway"]
    env = {e["name"]: e for e in container.get("env", [])}
    port = int(env["PULSE_GATEWAY_PORT"]["value"])
    (http,) = container["ports"]
    assert http["containerPort"] == port and pod["metadata"]["annotations"]["prometheus.io/port"] == str(port)
    assert container["readinessProbe"]["httpGet"] == {"path": "/health", "port": http["name"]}
    assert "httpGet" not in container["livenessProbe"]    # a broker outage is not cured by a restart
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    # Settings from the shared ConfigMap; secrets only from the Secret, no value in the manifests.
    refs = container["envFrom"]
    assert {"configMapRef": {"name": "pulse-settings"}} in refs
    assert {"secretRef": {"name": "pulse-gateway"}} in refs
    assert not [o for o in objects.values() if o["kind"] == "Secret"]
    assert set(env) <= {var for var, _ in _ENV.values()}
    mounted = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    settings = objects[("ConfigMap", "pulse-settings")]["data"]
    assert settings["PULSE_CONFIG"] == mounted["pipeline"] + "/pipeline.yaml"
    assert volumes["pipeline"]["configMap"]["name"] == "pulse-pipeline"        # the config with `sources`
    service = objects[("Service", "pulse-gateway")]["spec"]
    assert service["selector"] == selector and service["ports"][0]["targetPort"] == http["name"]
    assert service["ports"][0]["port"] == port
    pdb = objects[("PodDisruptionBudget", "pulse-gateway")]["spec"]
    assert pdb["selector"]["matchLabels"] == selector and pdb["minAvailable"] == 1
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert "gateway-deployment.yaml" in kustomization["resources"]
    # The example Ingress exposes only /ingest/ of the Service (not /metrics), over TLS.
    ingress = objects[("Ingress", "pulse-gateway")]["spec"]
    (rule,) = ingress["rules"]
    assert ingress["tls"][0]["hosts"] == [rule["host"]]
    assert [(p["path"], p["backend"]["service"]["name"], p["backend"]["service"]["port"]["name"])
            for p in rule["http"]["paths"]] == [("/ingest/", "pulse-gateway", "http")]
    monitors = {d["metadata"]["name"]: d for d in load_all(K8S / "podmonitor.yaml")}
    assert monitors["pulse-gateway"]["spec"]["selector"]["matchLabels"] == selector
    assert monitors["pulse-gateway"]["spec"]["podMetricsEndpoints"][0]["port"] == http["name"]


def test_kustomize_builds_the_manifests():
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("no kubectl here: the manifests are checked by the other tests of this file")
    result = subprocess.run([kubectl, "kustomize", str(K8S)], capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr.decode()
    kinds = {(d["kind"], d["metadata"]["name"]) for d in yaml.safe_load_all(result.stdout) if d}
    assert {("Deployment", "pulse-gateway"), ("Service", "pulse-gateway"),
            ("PodDisruptionBudget", "pulse-gateway"), ("StatefulSet", "pulse-worker")} <= kinds
