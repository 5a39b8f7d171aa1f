"""deploy/: every file parses, the deployment configuration is valid, docker-compose and the
Dockerfile wire the services together.

`docker compose config` runs only where a Compose CLI is installed (no engine is needed for it).
The files are read through tests/support/deploy_files.py.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
import yaml

from pulse.agents.metrics import metrics_options
from pulse.config import load_config
from pulse.settings import _ENV
from pulse.schemas.topics import ALL_TOPICS, INPUT_TOPICS
from pulse.slack.config import slack_config

from tests.support import ROOT
from tests.support.deploy_files import DEPLOY, K8S, PROMETHEUS, compose, load_all, yaml_files


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
    from pulse.schemas.config import ConfigError
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
