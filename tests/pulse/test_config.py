"""The pipeline configuration loader (SPEC section 2)."""
from __future__ import annotations

import pickle
import textwrap

import pytest

from pulse.config import Config, ConfigError, PipelineConfig, Stage, Window, load_config, parse_duration
from tests.support import ROOT

# --------------------------------------------------------------------------------------
# Durations
# --------------------------------------------------------------------------------------

VALID_DURATIONS = [
    ("0s", 0),
    ("45s", 45),
    ("90m", 5400),
    ("36h", 129600),
    ("7d", 604800),
    ("2w", 1209600),
    ("07d", 604800),
    ("P2W", 1209600),
    ("P7D", 604800),
    ("PT36H", 129600),
    ("P3DT12H", 302400),
    ("PT0S", 0),
    ("P0D", 0),
    ("PT90M", 5400),
    ("PT45S", 45),
    ("P1DT2H3M4S", 93784),
    ("P1W1D", 691200),
]

INVALID_DURATIONS = [
    # (value, words the message must contain)
    ("", "empty"),
    ("   ", "empty"),
    ("7", "no unit"),
    (7, "no unit"),
    (1.5, "no unit"),
    (True, "expected text"),
    (None, "expected text"),
    (["7d"], "expected text"),
    ("-1d", "negative"),
    ("1.5d", "fractions"),
    ("PT1.5H", "fractions"),
    ("P1M", "months and years"),
    ("P1Y", "months and years"),
    ("P1Y2M3D", "months and years"),
    ("P", "no value"),
    ("PT", "no value"),
    ("P1DT", "T must be followed"),
    ("7D", "lowercase"),
    ("3 days", "use e.g."),
    ("7 d", "use e.g."),
    (" 7d", "use e.g."),
    ("1d12h", "use e.g."),
    ("+7d", "use e.g."),
    ("7dd", "use e.g."),
    ("d", "use e.g."),
    ("p7d", "use e.g."),
    ("P7d", "use e.g."),
    ("PT7D", "use e.g."),
    ("P1H", "use e.g."),
    ("P1D1W", "use e.g."),
    ("٧d", "use e.g."),           # a non-ASCII digit
    ("7ms", "use e.g."),
    ("9" * 5000 + "s", "too long"),
]


@pytest.mark.parametrize("text, seconds", VALID_DURATIONS)
def test_valid_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("value, words", INVALID_DURATIONS)
def test_invalid_durations(value, words):
    with pytest.raises(ValueError) as e:
        parse_duration(value)
    msg = str(e.value)
    assert "is not a duration" in msg
    assert words in msg


def test_duration_message_shape():
    with pytest.raises(ValueError) as e:
        parse_duration("3 days")
    assert str(e.value) == '"3 days" is not a duration (use e.g. 45s, 90m, 36h, 7d, 2w or ISO 8601 like P3DT12H)'


# --------------------------------------------------------------------------------------
# The shipped default
# --------------------------------------------------------------------------------------

SPEC_EXAMPLE = """\
timezone: UTC            # v1 accepts only UTC (anything else is a configuration error)
windows: [7d, 30d, 90d]  # rolling windows reported: whole days only (see 4.1)
pipelines:
  default:
    qualified_stage: qualified      # first stage that counts as "qualified" (4.6)
    opportunity_stage: qualified    # first stage that counts as an open opportunity (4.7)
    stages:                         # in pipeline order, earliest first
      - {name: new,         stale_after: 3d,  probability: 0.05}
      - {name: prospecting, stale_after: 7d,  probability: 0.10}
      - {name: qualified,   stale_after: 10d, probability: 0.20}
      - {name: contacted,   stale_after: 7d,  probability: 0.35}
      - {name: proposal,    stale_after: 21d, probability: 0.60}
      - {name: negotiation, stale_after: 14d, probability: 0.80}
"""

DAY = 86400


def test_default_matches_spec_example():
    cfg = load_config()
    assert cfg.timezone == "UTC"
    assert cfg.windows == (Window("7d", 7), Window("30d", 30), Window("90d", 90))
    assert list(cfg.pipelines) == ["default"]
    p = cfg.pipelines["default"]
    assert p.name == "default"
    assert p.stages == (
        Stage("new", 0, 3 * DAY, 0.05),
        Stage("prospecting", 1, 7 * DAY, 0.10),
        Stage("qualified", 2, 10 * DAY, 0.20),
        Stage("contacted", 3, 7 * DAY, 0.35),
        Stage("proposal", 4, 21 * DAY, 0.60),
        Stage("negotiation", 5, 14 * DAY, 0.80),
    )
    assert dict(p.stage_index) == {s.name: s.index for s in p.stages}
    assert p.qualified_index == 2 and p.opportunity_index == 2
    assert dict(cfg.extra) == {}
    assert cfg.source.endswith("default_pipeline.yaml")


def test_default_file_holds_the_spec_example_verbatim():
    text = (ROOT / "pulse" / "default_pipeline.yaml").read_text("utf-8")
    assert SPEC_EXAMPLE in text


def test_spec_example_loaded_from_a_file_equals_the_default(tmp_path):
    f = tmp_path / "spec.yaml"
    f.write_text(SPEC_EXAMPLE)
    cfg = load_config(f)
    assert cfg.pipelines == load_config().pipelines
    assert cfg.windows == load_config().windows
    assert cfg.source == str(f)


def test_config_pickles():
    cfg = load_config()
    assert pickle.loads(pickle.dumps(cfg)) == cfg


# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------

MINIMAL = """\
pipelines:
  default:
    stages:
      - {name: new}
      - {name: won}
"""


@pytest.fixture
def write(tmp_path, monkeypatch):
    """Write YAML to cfg.yaml in a temporary directory and return the relative path."""
    monkeypatch.chdir(tmp_path)

    def _write(text: str, name: str = "cfg.yaml") -> str:
        (tmp_path / name).write_text(textwrap.dedent(text), encoding="utf-8")
        return name

    return _write


@pytest.fixture
def load(write):
    def _load(text: str) -> Config:
        return load_config(write(text))

    return _load


@pytest.fixture
def fails(write):
    """Load YAML that must be rejected; check file, key and problem words; return the error."""

    def _fails(text: str, key: str, *words: str) -> ConfigError:
        path = write(text)
        with pytest.raises(ConfigError) as e:
            load_config(path)
        err = e.value
        assert err.file == path
        assert err.key == key, str(err)
        for w in words:
            assert w in err.problem, str(err)
        assert str(err) == f"{path}: {key}: {err.problem}"
        return err

    return _fails


def pipeline(stages: str, extra: str = "", top: str = "") -> str:
    """A config with one pipeline `default` whose stages list is `stages` (flow YAML)."""
    return f"{top}pipelines:\n  default:\n{extra}    stages: {stages}\n"


# --------------------------------------------------------------------------------------
# Valid variations
# --------------------------------------------------------------------------------------


def test_minimal_config_defaults(load):
    cfg = load(MINIMAL)
    assert cfg.timezone == "UTC"
    assert [(w.key, w.days) for w in cfg.windows] == [("7d", 7), ("30d", 30), ("90d", 90)]
    p = cfg.pipelines["default"]
    assert p.stages == (Stage("new", 0, None, 0.0), Stage("won", 1, None, 0.0))
    assert p.qualified_index == 1 and p.opportunity_index == 1   # the second stage
    assert cfg.source == "cfg.yaml"


def test_single_stage_defaults_to_first(load):
    p = load(pipeline("[{name: only}]")).pipelines["default"]
    assert p.qualified_index == 0 and p.opportunity_index == 0


def test_null_values_mean_defaults(load):
    cfg = load(pipeline(
        "[{name: a, stale_after: null, probability: null}, {name: b, stale_after: ~}]",
        extra="    qualified_stage: null\n    opportunity_stage:\n",
        top="timezone:\nwindows:\n",
    ))
    p = cfg.pipelines["default"]
    assert [s.stale_after_s for s in p.stages] == [None, None]
    assert [s.probability for s in p.stages] == [0.0, 0.0]
    assert p.qualified_index == 1
    assert [w.key for w in cfg.windows] == ["7d", "30d", "90d"]


def test_zero_stale_after_and_bounds_of_probability(load):
    p = load(pipeline("[{name: a, stale_after: 0s, probability: 0}, {name: b, stale_after: PT0S, probability: 1}]"))
    assert p.pipelines["default"].stages == (Stage("a", 0, 0, 0.0), Stage("b", 1, 0, 1.0))
    assert all(type(s.probability) is float for s in p.pipelines["default"].stages)


def test_explicit_stage_refs_and_several_pipelines(load):
    cfg = load("""\
        pipelines:
          default:
            qualified_stage: c
            opportunity_stage: a
            stages: [{name: a}, {name: b}, {name: c}]
          Enterprise:
            stages: [{name: A}, {name: a}]
        """)
    assert list(cfg.pipelines) == ["default", "Enterprise"]
    d = cfg.pipelines["default"]
    assert (d.qualified_index, d.opportunity_index) == (2, 0)
    e = cfg.pipelines["Enterprise"]
    assert isinstance(e, PipelineConfig)
    assert dict(e.stage_index) == {"A": 0, "a": 1}               # names are case-sensitive


def test_windows_keys_as_written(load):
    cfg = load(pipeline("[{name: a}]", top='windows: [7d, "2w", 48h, P90D, P1W, 1d, 1w]\n'))
    assert [(w.key, w.days) for w in cfg.windows] == [
        ("7d", 7), ("2w", 14), ("48h", 2), ("P90D", 90), ("P1W", 7), ("1d", 1), ("1w", 7)]


def test_empty_windows_list_is_allowed(load):
    assert load(pipeline("[{name: a}]", top="windows: []\n")).windows == ()


def test_extra_sections_are_kept_untouched(load):
    cfg = load(pipeline("[{name: a}]", top="slack:\n  routes: [{team: emea, channel: '#x'}]\nfoo: 3\n"))
    assert dict(cfg.extra) == {"slack": {"routes": [{"team": "emea", "channel": "#x"}]}, "foo": 3}


def test_path_like_and_str_sources(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text(MINIMAL)
    assert load_config(f).source == str(f)
    assert load_config(str(f)).source == str(f)


def test_yaml_anchors_and_merge_keys_are_fine(load):
    cfg = load("""\
        base: &base {stale_after: 3d, probability: 0.5}
        pipelines:
          default:
            stages:
              - {<<: *base, name: a}
              - {<<: *base, name: b, probability: 0.7}
        """)
    assert [(s.stale_after_s, s.probability) for s in cfg.pipelines["default"].stages] == [
        (3 * DAY, 0.5), (3 * DAY, 0.7)]


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
