"""deploy/k8s: the Kubernetes manifests.

The files are read through tests/support/deploy_files.py.
"""
from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

from pulse.settings import _ENV

from tests.support.deploy_files import DEPLOY, K8S, load_all


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
