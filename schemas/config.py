"""Pipeline configuration types (SPEC section 2): what every layer knows about pipelines,
stages and windows. Built and validated by `pulse.config.load`; nothing here reads a file."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping


@dataclass(frozen=True, slots=True)
class Stage:
    name: str
    index: int                      # position in pipeline order, 0 = earliest
    stale_after_s: int | None       # None: this stage never goes stale
    probability: float              # in [0, 1]

    @property
    def stale_after_us(self) -> int | None:
        """The stale limit in microseconds, as every rule on event times takes it (None: never stale)."""
        return None if self.stale_after_s is None else self.stale_after_s * 1_000_000


@dataclass(frozen=True, slots=True)
class PipelineConfig:
    name: str
    stages: tuple[Stage, ...]
    stage_index: Mapping[str, int]  # stage name -> index
    qualified_index: int            # index of qualified_stage
    opportunity_index: int          # index of opportunity_stage


@dataclass(frozen=True, slots=True)
class Window:
    key: str                        # the entry's text as written in the config, e.g. "7d"
    days: int


@dataclass(frozen=True, slots=True)
class Config:
    pipelines: Mapping[str, PipelineConfig]
    windows: tuple[Window, ...]
    timezone: str = "UTC"
    source: str = "<default>"       # file the configuration came from
    extra: Mapping[str, Any] = field(default_factory=dict)  # other top-level sections (Slack routing, ...)


class ConfigError(Exception):
    """A configuration error: names the file, the key and the problem (exit code 2)."""

    def __init__(self, file: str, key: str, problem: str):
        self.file, self.key, self.problem = file, key, problem
        super().__init__(f"{file}: {key}: {problem}")
