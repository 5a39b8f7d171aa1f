"""The pipeline configuration loader (SPEC section 2): durations and the shipped default."""
from __future__ import annotations

import pickle

import pytest

from pulse.config import load_config
from pulse.config.checks import parse_duration
from pulse.schemas.config import Stage, Window
from tests.support import ROOT
from tests.support.config_yaml import DAY


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
