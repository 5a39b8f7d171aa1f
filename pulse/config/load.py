"""Pipeline configuration (SPEC section 2): the YAML loader and the checks of its sections.

Everything the rest of the program knows about pipelines, stages and windows comes from
a `Config` (pulse.schemas.config) built here; no other module reads the pipeline YAML.
"""
from __future__ import annotations

import math
import os
from importlib import resources
from typing import Any

from pulse.schemas.config import Config, ConfigError, PipelineConfig, Stage, Window

from .checks import ConfigChecker, kind_of, show_value
from .strict_yaml import parse_yaml

DEFAULT_CONFIG_RESOURCE = "default_pipeline.yaml"
DEFAULT_WINDOWS = ("7d", "30d", "90d")
_PIPELINE_KEYS = ("stages", "qualified_stage", "opportunity_stage")
_STAGE_KEYS = ("name", "stale_after", "probability")


class _PipelineChecker(ConfigChecker):
    """The sections of the pipeline configuration: timezone, windows, pipelines."""

    def timezone(self, value: Any) -> str:
        if value is None:
            return "UTC"
        if value != "UTC" or not isinstance(value, str):
            raise self.fail(("timezone",), f'{show_value(value)} is not supported: v1 accepts only "UTC"')
        return "UTC"

    def windows(self, value: Any) -> tuple[Window, ...]:
        if value is None:
            value = list(DEFAULT_WINDOWS)
        if not isinstance(value, list):
            raise self.fail(("windows",), f"must be a list of durations like [7d, 30d, 90d], got {kind_of(value)}")
        windows: list[Window] = []
        where: dict[str, int] = {}
        for i, entry in enumerate(value):
            path = ("windows", i)
            seconds = self.duration(path, entry)
            if seconds % 86400:
                raise self.fail(path, f"{show_value(entry)} is not a whole number of days "
                                      "(a window is whole UTC days, e.g. 7d, 2w, 48h, P90D)")
            if seconds == 0:
                raise self.fail(path, f"{show_value(entry)} is shorter than one day (a window is at least 1d)")
            if entry in where:
                raise self.fail(path, f"{show_value(entry)} is listed twice (also windows[{where[entry]}])")
            where[entry] = i
            windows.append(Window(key=entry, days=seconds // 86400))
        return tuple(windows)

    def pipelines(self, value: Any, present: bool) -> dict[str, PipelineConfig]:
        path = ("pipelines",)
        if not present:
            raise self.fail(path, "missing: the configuration needs a pipelines section "
                                  "(a mapping of pipeline name to its stages)")
        if not isinstance(value, dict):
            raise self.fail(path, f"must be a mapping of pipeline name to pipeline, got {kind_of(value)}")
        if not value:
            raise self.fail(path, "must define at least one pipeline")
        out: dict[str, PipelineConfig] = {}
        for name, body in value.items():
            if not isinstance(name, str) or not name:
                raise self.fail(path + (name if isinstance(name, str) else show_value(name),),
                                f"a pipeline name must be a non-empty string, got {show_value(name)}")
            out[name] = self.pipeline(path + (name,), name, body)
        return out

    def pipeline(self, path: tuple, name: str, body: Any) -> PipelineConfig:
        if not isinstance(body, dict):
            raise self.fail(path, f"a pipeline must be a mapping with a stages list, got {kind_of(body)}")
        for key in body:
            if key not in _PIPELINE_KEYS:
                raise self.unknown_key(path, key, _PIPELINE_KEYS, f'pipeline "{name}"')
        if "stages" not in body:
            raise self.fail(path + ("stages",), "missing: a pipeline needs a non-empty stages list")
        entries = body["stages"]
        if not isinstance(entries, list) or not entries:
            got = "an empty list" if isinstance(entries, list) else kind_of(entries)
            raise self.fail(path + ("stages",), f"must be a non-empty list of stages, got {got}")
        stages: list[Stage] = []
        index: dict[str, int] = {}
        for i, entry in enumerate(entries):
            stage = self.stage(path + ("stages", i), i, entry)
            if stage.name in index:
                raise self.fail(path + ("stages", i, "name"),
                                f"duplicate stage name {show_value(stage.name)} (also stages[{index[stage.name]}])")
            index[stage.name] = i
            stages.append(stage)
        default = 1 if len(stages) > 1 else 0
        qualified = self.stage_ref(path + ("qualified_stage",), body.get("qualified_stage"), index, name, default)
        opportunity = self.stage_ref(path + ("opportunity_stage",), body.get("opportunity_stage"), index, name, default)
        return PipelineConfig(name=name, stages=tuple(stages), stage_index=index,
                              qualified_index=qualified, opportunity_index=opportunity)

    def stage(self, path: tuple, i: int, entry: Any) -> Stage:
        if not isinstance(entry, dict):
            raise self.fail(path, "a stage must be a mapping like {name: new, stale_after: 3d, "
                                  f"probability: 0.05}}, got {kind_of(entry)}")
        for key in entry:
            if key not in _STAGE_KEYS:
                raise self.unknown_key(path, key, _STAGE_KEYS, "a stage entry")
        if "name" not in entry:
            raise self.fail(path + ("name",), "missing: every stage needs a name")
        name = self.name(path + ("name",), entry["name"], "a stage name")
        stale = entry.get("stale_after")
        stale_s = None if stale is None else self.duration(path + ("stale_after",), stale)
        prob = entry.get("probability")
        if prob is None:
            prob = 0.0
        elif isinstance(prob, bool) or not isinstance(prob, (int, float)):
            raise self.fail(path + ("probability",), f"{show_value(prob)} is not a number (expected 0 to 1, e.g. 0.25)")
        elif math.isnan(prob) or not 0 <= prob <= 1:
            raise self.fail(path + ("probability",), f"{show_value(prob)} is outside [0, 1]")
        return Stage(name=name, index=i, stale_after_s=stale_s, probability=float(prob))

    def stage_ref(self, path: tuple, value: Any, index: dict[str, int], pipeline: str, default: int) -> int:
        if value is None:
            return default
        self.name(path, value, "a stage name")
        if value not in index:
            raise self.fail(path, f'{show_value(value)} is not a stage of pipeline "{pipeline}" '
                                  f"(stages: {', '.join(index)})")
        return index[value]


def load_config(path: str | os.PathLike | None = None) -> Config:
    """Load and validate a pipeline configuration (SPEC section 2).

    `path` None loads the shipped default (`pulse/default_pipeline.yaml`). Raises
    ConfigError, naming the file (as given), the key and the problem, for anything
    that is not a valid configuration, including a file that cannot be read.
    """
    if path is None:
        resource = resources.files("pulse").joinpath(DEFAULT_CONFIG_RESOURCE)
        source = str(resource)
        reader = resource.read_bytes
    else:
        source = os.fsdecode(os.fspath(path))

        def reader() -> bytes:
            with open(path, "rb") as f:
                return f.read()
    try:
        data = reader()
    except OSError as e:
        raise ConfigError(source, "(file)", f"cannot read: {e.strerror or e}") from None
    doc = parse_yaml(data, source)
    check = _PipelineChecker(source)
    if not isinstance(doc, dict):
        what = "the file is empty" if doc is None else f"got {kind_of(doc)}"
        raise ConfigError(source, "(top level)", f"expected a mapping with a pipelines section; {what}")
    timezone = check.timezone(doc.get("timezone"))
    windows = check.windows(doc.get("windows"))
    pipelines = check.pipelines(doc.get("pipelines"), "pipelines" in doc)
    extra = {k: v for k, v in doc.items() if k not in ("timezone", "windows", "pipelines")}
    return Config(pipelines=pipelines, windows=windows, timezone=timezone, source=source, extra=extra)
