"""The files under deploy/, as the deployment tests (tests/deploy/) read them."""
from __future__ import annotations

from pathlib import Path

import yaml

from tests.support import ROOT

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
