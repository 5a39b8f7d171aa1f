"""The pipeline configuration loader (SPEC section 2): errors name file, key and problem.

Fixtures (`write`, `load`, `fails`) in conftest.py; YAML builders in tests/support/config_yaml.py.
"""
from __future__ import annotations

import pytest

from pulse.config import load_config
from pulse.schemas.config import ConfigError
from tests.support.config_yaml import MINIMAL, pipeline


# --------------------------------------------------------------------------------------
# Errors: file, key and problem
# --------------------------------------------------------------------------------------


def test_missing_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as e:
        load_config("nope.yaml")
    assert e.value.file == "nope.yaml"
    assert "cannot read" in e.value.problem and "No such file" in e.value.problem
    assert str(e.value).startswith("nope.yaml: ")


def test_directory_is_unreadable(tmp_path):
    with pytest.raises(ConfigError) as e:
        load_config(tmp_path)
    assert e.value.file == str(tmp_path) and "cannot read" in e.value.problem


def test_yaml_syntax_error(fails):
    fails("pipelines:\n  default: [a\n", "line 3, column 1", "invalid YAML")


def test_yaml_several_documents(fails):
    fails(MINIMAL + "---\n" + MINIMAL, "line 6, column 1", "invalid YAML", "single document")


def test_yaml_unsafe_tag(fails):
    fails("pipelines: !!python/object:os.system {}\n", "line 1, column 12", "invalid YAML")


def test_not_utf8(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_bytes(b"pipelines: \xff\xfe\xfa\n")
    with pytest.raises(ConfigError) as e:
        load_config(f)
    assert e.value.file == str(f) and e.value.key == "byte 11" and "not valid utf-8" in e.value.problem


def test_control_character(fails):
    fails("pipelines: a\x01\n", "byte 12", "invalid YAML", "#x0001")


@pytest.mark.parametrize("text, words", [
    ("", "empty"),
    ("# only a comment\n", "empty"),
    ("- a\n- b\n", "a list"),
    ("just text\n", "a string"),
])
def test_top_level_not_a_mapping(fails, text, words):
    fails(text, "(top level)", "expected a mapping", words)


@pytest.mark.parametrize("text, key, words", [
    # top level
    ("pipelines: 1\npipelines: 2\n", "pipelines", ["duplicate key", "line 2", "first on line 1"]),
    # inside a pipeline
    ("pipelines:\n  default:\n    stages: [{name: a}]\n  default:\n    stages: [{name: b}]\n",
     "pipelines.default", ["duplicate key", "line 4", "first on line 2"]),
    # inside a stage entry (flow mapping)
    (pipeline("[{name: a, stale_after: 3d, stale_after: 4d}]"),
     "pipelines.default.stages[0].stale_after", ["duplicate key"]),
    # inside a block stage entry
    ("pipelines:\n  default:\n    stages:\n      - name: a\n      - name: b\n        name: c\n",
     "pipelines.default.stages[1].name", ["duplicate key", "line 6", "first on line 5"]),
    # inside a section that belongs to another component
    ("slack:\n  routes: {a: 1, a: 2}\n" + MINIMAL, "slack.routes.a", ["duplicate key"]),
    # the same key spelled differently
    ("pipelines:\n  default:\n    stages: [{name: a}]\n  'default':\n    stages: [{name: b}]\n",
     "pipelines.default", ["duplicate key"]),
    ("x: {1: a, 01: b}\n" + MINIMAL, "x.01", ["duplicate key"]),
    # a key with a dot is quoted in the path
    ('pipelines:\n  "eu.sales": {stages: [{name: a}]}\n  "eu.sales": {stages: [{name: a}]}\n',
     'pipelines["eu.sales"]', ["duplicate key"]),
])
def test_duplicate_yaml_keys(fails, text, key, words):
    fails(text, key, *words)


def test_merge_key_override_is_not_a_duplicate(load):
    load("a: &a {x: 1}\nb: {<<: *a, x: 2}\n" + MINIMAL)


# -- timezone ---------------------------------------------------------------------------


@pytest.mark.parametrize("tz", ["Europe/Berlin", "utc", "Z", "0", "+00:00"])
def test_timezone_only_utc(fails, tz):
    fails(pipeline("[{name: a}]", top=f"timezone: '{tz}'\n"), "timezone", "only", "UTC", tz)


def test_timezone_not_a_string(fails):
    fails(pipeline("[{name: a}]", top="timezone: 0\n"), "timezone", "only", "UTC")


# -- windows ----------------------------------------------------------------------------


@pytest.mark.parametrize("windows, key, words", [
    ("[7d, 36h]", "windows[1]", ['"36h" is not a whole number of days']),
    ("[P1M]", "windows[0]", ['"P1M" is not a duration', "months"]),
    ("[7d, 30d, 7d]", "windows[2]", ['"7d" is listed twice', "windows[0]"]),
    ("[7]", "windows[0]", ["7 is not a duration", "no unit"]),
    ("[0d]", "windows[0]", ["shorter than one day"]),
    ("[PT0S]", "windows[0]", ["shorter than one day"]),
    ("[1.5d]", "windows[0]", ["fractions"]),
    ("['3 days']", "windows[0]", ['"3 days" is not a duration (use e.g.']),
    ("[null]", "windows[0]", ["null is not a duration"]),
    ("[[7d]]", "windows[0]", ["is not a duration"]),
    ("7d", "windows", ["must be a list"]),
    ("{7d: 1}", "windows", ["must be a list"]),
])
def test_bad_windows(fails, windows, key, words):
    fails(pipeline("[{name: a}]", top=f"windows: {windows}\n"), key, *words)


def test_windows_same_length_different_text_is_fine(load):
    cfg = load(pipeline("[{name: a}]", top="windows: [7d, 1w, P7D, 168h]\n"))
    assert [w.days for w in cfg.windows] == [7, 7, 7, 7]


# -- pipelines --------------------------------------------------------------------------


@pytest.mark.parametrize("text, key, words", [
    ("windows: [7d]\n", "pipelines", ["missing"]),
    ("pipelines:\n", "pipelines", ["must be a mapping", "null"]),
    ("pipelines: {}\n", "pipelines", ["at least one pipeline"]),
    ("pipelines: [default]\n", "pipelines", ["must be a mapping", "a list"]),
    ("pipelines:\n  default:\n", "pipelines.default", ["must be a mapping", "null"]),
    ("pipelines:\n  default: [{name: a}]\n", "pipelines.default", ["must be a mapping", "a list"]),
    ("pipelines:\n  default: {}\n", "pipelines.default.stages", ["missing"]),
    (pipeline("[]"), "pipelines.default.stages", ["non-empty list", "an empty list"]),
    (pipeline("null"), "pipelines.default.stages", ["non-empty list", "null"]),
    (pipeline("{name: a}"), "pipelines.default.stages", ["non-empty list", "a mapping"]),
    ("pipelines:\n  1: {stages: [{name: a}]}\n", "pipelines.1", ["pipeline name", "string"]),
    ("pipelines:\n  '': {stages: [{name: a}]}\n", 'pipelines[""]', ["pipeline name", "non-empty"]),
    ("pipelines:\n  ~: {stages: [{name: a}]}\n", "pipelines.null", ["pipeline name"]),
])
def test_bad_pipelines(fails, text, key, words):
    fails(text, key, *words)


@pytest.mark.parametrize("extra, key, words", [
    ("    stage: [a]\n", "pipelines.default.stage", ['unknown key "stage"', 'did you mean "stages"']),
    ("    qualified: a\n", "pipelines.default.qualified", ['unknown key "qualified"', "allowed:"]),
    ("    1: a\n", "pipelines.default.1", ["unknown key 1"]),
])
def test_unknown_pipeline_keys(fails, extra, key, words):
    fails(pipeline("[{name: a}]", extra=extra), key, *words)


# -- stages -----------------------------------------------------------------------------

S = "pipelines.default.stages"


@pytest.mark.parametrize("stages, key, words", [
    # shape and name
    ("[new]", f"{S}[0]", ["a stage must be a mapping", "a string"]),
    ("[{name: a}, null]", f"{S}[1]", ["a stage must be a mapping", "null"]),
    ("[{stale_after: 3d}]", f"{S}[0].name", ["missing"]),
    ("[{name: null}]", f"{S}[0].name", ["must be a string", "null"]),
    ("[{name: ''}]", f"{S}[0].name", ["must not be empty"]),
    ("[{name: 2024}]", f"{S}[0].name", ["must be a string", 'quote it: "2024"']),
    ("[{name: yes}]", f"{S}[0].name", ["must be a string", "a boolean"]),
    ("[{name: [a]}]", f"{S}[0].name", ["must be a string", "a list"]),
    ("[{name: a}, {name: b}, {name: a}]", f"{S}[2].name", ['duplicate stage name "a"', "stages[0]"]),
    # unknown keys
    ("[{name: a, stale_afer: 3d}]", f"{S}[0].stale_afer", ['unknown key "stale_afer"', 'did you mean "stale_after"']),
    ("[{name: a, Probability: 0.1}]", f"{S}[0].Probability", ["unknown key", 'did you mean "probability"']),
    ("[{name: a, color: red}]", f"{S}[0].color", ['unknown key "color"', "allowed: name, stale_after, probability"]),
    # stale_after
    ("[{name: a}, {name: b}, {name: c, stale_after: 3 days}]", f"{S}[2].stale_after",
     ['"3 days" is not a duration (use e.g. 45s, 90m, 36h, 7d, 2w or ISO 8601 like P3DT12H)']),
    ("[{name: a, stale_after: 3}]", f"{S}[0].stale_after", ["3 is not a duration", "no unit"]),
    ("[{name: a, stale_after: P1M}]", f"{S}[0].stale_after", ["months"]),
    ("[{name: a, stale_after: -1d}]", f"{S}[0].stale_after", ["negative"]),
    ("[{name: a, stale_after: 2.5d}]", f"{S}[0].stale_after", ["fractions"]),
    ("[{name: a, stale_after: ''}]", f"{S}[0].stale_after", ["empty"]),
    ("[{name: a, stale_after: true}]", f"{S}[0].stale_after", ["true is not a duration"]),
    # probability
    ("[{name: a, probability: 1.5}]", f"{S}[0].probability", ["1.5 is outside [0, 1]"]),
    ("[{name: a, probability: -0.1}]", f"{S}[0].probability", ["outside [0, 1]"]),
    ("[{name: a, probability: 2}]", f"{S}[0].probability", ["outside [0, 1]"]),
    ("[{name: a, probability: .nan}]", f"{S}[0].probability", ["outside [0, 1]"]),
    ("[{name: a, probability: .inf}]", f"{S}[0].probability", ["outside [0, 1]"]),
    ("[{name: a, probability: true}]", f"{S}[0].probability", ["true is not a number"]),
    ("[{name: a, probability: '0.5'}]", f"{S}[0].probability", ['"0.5" is not a number']),
    ("[{name: a, probability: 50%}]", f"{S}[0].probability", ["is not a number"]),
])
def test_bad_stages(fails, stages, key, words):
    fails(pipeline(stages), key, *words)


# -- qualified_stage / opportunity_stage --------------------------------------------------


@pytest.mark.parametrize("field", ["qualified_stage", "opportunity_stage"])
@pytest.mark.parametrize("value, words", [
    ("c", ['"c" is not a stage of pipeline "default"', "stages: a, b"]),
    ("A", ['"A" is not a stage']),                          # case-sensitive
    ("''", ["must not be empty"]),
    ("1", ["must be a string"]),
    ("[a]", ["must be a string", "a list"]),
])
def test_bad_stage_refs(fails, field, value, words):
    fails(pipeline("[{name: a}, {name: b}]", extra=f"    {field}: {value}\n"),
          f"pipelines.default.{field}", *words)


def test_error_message_example(fails):
    err = fails(pipeline("[{name: a}, {name: b}, {name: c, stale_after: '3 days'}]"),
                "pipelines.default.stages[2].stale_after")
    assert str(err) == ('cfg.yaml: pipelines.default.stages[2].stale_after: "3 days" is not a duration '
                        "(use e.g. 45s, 90m, 36h, 7d, 2w or ISO 8601 like P3DT12H)")
