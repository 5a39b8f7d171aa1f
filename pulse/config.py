"""Pipeline configuration (SPEC section 2): types and the YAML loader.

Everything the rest of the program knows about pipelines, stages and windows
comes from a `Config` built here; no other module reads YAML or the environment.
"""
from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from difflib import get_close_matches
from importlib import resources
from typing import Any, Mapping

import yaml
from yaml.nodes import MappingNode, ScalarNode, SequenceNode


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


# --------------------------------------------------------------------------------------
# Durations
# --------------------------------------------------------------------------------------

_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_SHORT_RE = re.compile(r"([0-9]+)([smhdw])")
_ISO_RE = re.compile(
    r"P(?:([0-9]+)W)?(?:([0-9]+)D)?(?:T(?:([0-9]+)H)?(?:([0-9]+)M)?(?:([0-9]+)S)?)?"
)
_ISO_SECONDS = (604800, 86400, 3600, 60, 1)      # W, D, H, M, S
_DURATION_HINT = "(use e.g. 45s, 90m, 36h, 7d, 2w or ISO 8601 like P3DT12H)"


def show_value(value: Any) -> str:
    """A value as it appears in an error message: strings quoted, YAML spellings for the rest."""
    if isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
        return text if len(text) <= 60 else text[:56] + '..."'
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return kind_of(value)


def kind_of(value: Any) -> str:
    """What a YAML value is, in words: 'a string', 'a number', 'a list', ..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"a {type(value).__name__}"          # dates, timestamps, binary, sets


def _why_not_duration(text: Any) -> str:
    """The reason (possibly empty) that `text` is not a duration, for the error message."""
    if isinstance(text, bool) or not isinstance(text, (str, int, float)):
        return "expected text like 7d"
    if not isinstance(text, str):
        return "a bare number has no unit"
    s = text.strip()
    if not s:
        return "it is empty"
    if s.startswith("-"):
        return "it must not be negative"
    if re.fullmatch(r"[0-9]+", s):
        return "a bare number has no unit"
    if re.search(r"[0-9][.,][0-9]", s):
        return "fractions are not allowed"
    if re.fullmatch(r"[0-9]+[SMHDW]", s):
        return "units are lowercase"
    if s.startswith("P"):
        if re.fullmatch(r"P[^T]*[YM].*", s):
            return "months and years are not allowed"
        if s in ("P", "PT"):
            return "it has no value"
        if s.endswith("T"):
            return "T must be followed by hours, minutes or seconds"
    return ""


def parse_duration(text: Any) -> int:
    """Parse a SPEC section 2 duration into whole seconds.

    Accepts a non-negative integer with a lowercase unit s, m, h, d or w (`45s`, `90m`,
    `36h`, `7d`, `2w`) or an ISO 8601 duration of whole weeks, days, hours, minutes and
    seconds (`P2W`, `P7D`, `PT36H`, `P3DT12H`, `PT0S`). Raises ValueError otherwise;
    the message starts with the value and says why.
    """
    if isinstance(text, str):
        m = _SHORT_RE.fullmatch(text)
        if m:
            return _to_int(m.group(1), text) * _UNIT_SECONDS[m.group(2)]
        m = _ISO_RE.fullmatch(text)
        if m and any(g is not None for g in m.groups()) and not text.endswith("T"):
            return sum(_to_int(g, text) * unit for g, unit in zip(m.groups(), _ISO_SECONDS) if g is not None)
    reason = _why_not_duration(text)
    raise ValueError(f"{show_value(text)} is not a duration{': ' + reason if reason else ''} {_DURATION_HINT}")


def _to_int(digits: str, text: str) -> int:
    try:
        return int(digits)
    except ValueError:                              # beyond Python's int-from-string digit limit
        raise ValueError(f"{show_value(text)} is not a duration: the number is too long {_DURATION_HINT}") from None


# --------------------------------------------------------------------------------------
# YAML loading with duplicate-key detection
# --------------------------------------------------------------------------------------

_MERGE_TAG = "tag:yaml.org,2002:merge"


class _DuplicateKey(Exception):
    def __init__(self, path: tuple, first_line: int, line: int):
        self.path, self.first_line, self.line = path, first_line, line


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects a mapping with the same key twice (PyYAML keeps the last).

    The check runs on the composed node tree, before construction, so it sees every
    mapping as written (merge keys `<<` are not duplicates: overriding a merged key is
    what they are for) and can report where the duplicate is, as a key path.
    """

    def construct_document(self, node):
        self._check_duplicates(node)
        return super().construct_document(node)

    def _key_value(self, key_node) -> Any:
        if isinstance(key_node, ScalarNode):
            try:
                value = self.construct_object(key_node)
                hash(value)
                return ("v", value)
            except Exception:                       # left for construction to report
                pass
        return ("n", key_node.tag, id(key_node))

    def _check_duplicates(self, root) -> None:
        seen_nodes: set[int] = set()
        stack: list[tuple[Any, tuple]] = [(root, ())]
        while stack:
            node, path = stack.pop()
            if id(node) in seen_nodes:              # an alias, or a recursive structure
                continue
            seen_nodes.add(id(node))
            if isinstance(node, MappingNode):
                first: dict[Any, int] = {}
                children = []
                for key_node, value_node in node.value:
                    label = key_node.value if isinstance(key_node, ScalarNode) else "?"
                    child_path = path + (label,)
                    if key_node.tag != _MERGE_TAG:
                        key = self._key_value(key_node)
                        line = key_node.start_mark.line + 1
                        if key in first:
                            raise _DuplicateKey(child_path, first[key], line)
                        first[key] = line
                    children.append((value_node, child_path))
                stack.extend(reversed(children))
            elif isinstance(node, SequenceNode):
                stack.extend(reversed([(item, path + (i,)) for i, item in enumerate(node.value)]))


# --------------------------------------------------------------------------------------
# The loader
# --------------------------------------------------------------------------------------

DEFAULT_CONFIG_RESOURCE = "default_pipeline.yaml"
DEFAULT_WINDOWS = ("7d", "30d", "90d")
_PIPELINE_KEYS = ("stages", "qualified_stage", "opportunity_stage")
_STAGE_KEYS = ("name", "stale_after", "probability")
_SIMPLE_KEY_RE = re.compile(r"[\w-]+")


def _key(path: tuple) -> str:
    """A key path as text: `pipelines.default.stages[2].stale_after`.

    Keys that are not plain words (dots, spaces, brackets, empty) are written `["a.b"]`.
    """
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, str) and _SIMPLE_KEY_RE.fullmatch(part):
            out += ("." if out else "") + part
        else:
            out += "[" + json.dumps(str(part), ensure_ascii=False) + "]"
    return out or "(top level)"


class ConfigChecker:
    """Validates the parsed YAML of one file; every error names the file, key and problem.

    The one validator style for every configuration section: other sections' checkers
    (Slack routing, gateway sources) subclass it, raise `self.fail(path, problem)` with
    the key path as a tuple, and word values with `show_value` and `kind_of`.
    """

    def __init__(self, source: str):
        self.source = source

    def fail(self, path: tuple | str, problem: str) -> ConfigError:
        return ConfigError(self.source, path if isinstance(path, str) else _key(path), problem)

    def unknown_key(self, path: tuple, key: Any, allowed: tuple[str, ...], where: str) -> ConfigError:
        problem = f"unknown key {show_value(key)} in {where} (allowed: {', '.join(allowed)})"
        if isinstance(key, str):
            close = get_close_matches(key, allowed, n=1) or [a for a in allowed if a.lower() == key.lower()]
            if close:
                problem += f'; did you mean "{close[0]}"?'
        return self.fail(path + (key if isinstance(key, str) else show_value(key),), problem)

    def optional_mapping(self, path: tuple, value: Any, what: str = "a mapping") -> dict:
        """The mapping at `path` ({} when the key is absent or null); anything else fails."""
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail(path, f"must be {what}, got {kind_of(value)}")
        return value

    def name(self, path: tuple, value: Any, what: str) -> str:
        if not isinstance(value, str):
            hint = f' (quote it: "{show_value(value)}")' if isinstance(value, (bool, int, float)) else ""
            raise self.fail(path, f"{what} must be a string, got {kind_of(value)}{hint}")
        if not value:
            raise self.fail(path, f"{what} must not be empty")
        return value

    def duration(self, path: tuple, value: Any) -> int:
        try:
            return parse_duration(value)
        except ValueError as e:
            raise self.fail(path, str(e)) from None

    # -- sections ---------------------------------------------------------------------

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


def _parse_yaml(data: bytes, source: str) -> Any:
    loader = None
    try:
        loader = _StrictLoader(data)            # the reader checks the encoding here
        return loader.get_single_data()
    except _DuplicateKey as e:
        raise ConfigError(source, _key(e.path),
                          f"duplicate key (line {e.line}; first on line {e.first_line})") from None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(yaml)"
        problem = f"invalid YAML: {e.problem or e.context}"
        if e.context and e.problem:
            problem += f" ({e.context})"
        raise ConfigError(source, where, problem) from None
    except yaml.reader.ReaderError as e:           # bytes that are not UTF-8, or a control character
        if e.encoding != "unicode":                 # PyYAML's marker for a printable-character check
            problem = f"not valid {e.encoding} (byte 0x{e.character:02x}: {e.reason})"
        else:
            problem = f"invalid YAML: unacceptable character #x{e.character:04x} ({e.reason})"
        raise ConfigError(source, f"byte {e.position}", problem) from None
    except yaml.YAMLError as e:
        raise ConfigError(source, "(yaml)", f"invalid YAML: {' '.join(str(e).split())}") from None
    finally:
        if loader is not None:
            loader.dispose()


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
    doc = _parse_yaml(data, source)
    check = ConfigChecker(source)
    if not isinstance(doc, dict):
        what = "the file is empty" if doc is None else f"got {kind_of(doc)}"
        raise ConfigError(source, "(top level)", f"expected a mapping with a pipelines section; {what}")
    timezone = check.timezone(doc.get("timezone"))
    windows = check.windows(doc.get("windows"))
    pipelines = check.pipelines(doc.get("pipelines"), "pipelines" in doc)
    extra = {k: v for k, v in doc.items() if k not in ("timezone", "windows", "pipelines")}
    return Config(pipelines=pipelines, windows=windows, timezone=timezone, source=source, extra=extra)
