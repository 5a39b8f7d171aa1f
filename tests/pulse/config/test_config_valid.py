"""The pipeline configuration loader (SPEC section 2): valid variations.

Fixtures (`write`, `load`, `fails`) in conftest.py; YAML builders in tests/support/config_yaml.py.
"""
from __future__ import annotations

from pulse.config import load_config
from pulse.schemas.config import PipelineConfig, Stage
from tests.support.config_yaml import DAY, MINIMAL, pipeline


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
