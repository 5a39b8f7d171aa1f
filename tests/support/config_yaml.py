"""YAML builders shared by the configuration loader's tests (tests/pulse/config/)."""
from __future__ import annotations

DAY = 86400

MINIMAL = """\
pipelines:
  default:
    stages:
      - {name: new}
      - {name: won}
"""


def pipeline(stages: str, extra: str = "", top: str = "") -> str:
    """A config with one pipeline `default` whose stages list is `stages` (flow YAML)."""
    return f"{top}pipelines:\n  default:\n{extra}    stages: {stages}\n"
