"""StaleLeadDetector (SPEC 4.5, 6), without a broker."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from pulse.streams.alerts import StaleLeadDetector, alert_id
from tests.support.live_cases import CFG, DAY, created, engine_with, moved, ts


def test_levels_rise_one_at_a_time_strictly_after_each_limit():
    engine = engine_with(created("a", "A", "2026-03-01T00:00:00Z", owner="maria", team="emea", amount=10))
    lead = engine.lead("default", "A")
    detector = StaleLeadDetector(dict(CFG.pipelines))
    detector.watch("default", lead)
    start = ts("2026-03-01T00:00:00Z")
    assert detector.due(start + 3 * DAY, engine.lead_by_id) == []          # age == limit: not stale
    ((_, first),) = detector.due(start + 3 * DAY + 1, engine.lead_by_id)
    assert (first["level"], first["severity"], first["stage"], first["owner"], first["amount"]) == (
        1, "warning", "new", "maria", 10.0)
    assert first["summary"] == "Lead A has been in new for 3 days (limit 3 days)"
    assert detector.due(start + 6 * DAY, engine.lead_by_id) == []
    ((_, second),) = detector.due(start + 6 * DAY + 1, engine.lead_by_id)
    ((_, third),) = detector.due(start + 30 * DAY, engine.lead_by_id)
    assert [second["level"], third["level"]] == [2, 3]
    assert detector.due(start + 300 * DAY, engine.lead_by_id) == []         # 3 is the last level
    assert len({first["alert_id"], second["alert_id"], third["alert_id"]}) == 3


def test_a_stay_first_seen_at_level_three_raises_only_level_three():
    engine = engine_with(created("a", "A", "2026-03-01T00:00:00Z"))
    detector = StaleLeadDetector(dict(CFG.pipelines))
    detector.watch("default", engine.lead("default", "A"))
    raised = detector.due(ts("2026-03-01T00:00:00Z") + 10 * DAY, engine.lead_by_id)
    assert [m["level"] for _, m in raised] == [3]


def test_a_finished_stay_is_dropped_and_resolution_reports_the_move():
    engine = engine_with(created("a", "A", "2026-03-01T00:00:00Z"))
    lead = engine.lead("default", "A")
    detector = StaleLeadDetector(dict(CFG.pipelines))
    detector.watch("default", lead)
    detector.due(ts("2026-03-04T00:00:01Z"), engine.lead_by_id)
    engine.ingest(moved("b", "A", "2026-03-05T00:00:00Z", "qualified"))
    resolved = detector.resolution("default", lead, ts("2026-03-05T00:00:00Z"), lead.stage, None)
    assert (resolved["type"], resolved["resolved_by"], resolved["to_stage"], resolved["stage"], resolved["level"]) == (
        "lead.stale_resolved", "stage_changed", "qualified", "new", 1)
    assert resolved["alert_id"] == alert_id("lead.stale_resolved", "default", "A", "new", ts("2026-03-01T00:00:00Z"))
    assert detector.resolution("default", lead, ts("2026-03-05T00:00:00Z"), lead.stage, None) is None  # once
    # The old "new" entry is stale: nothing is raised for it; qualified (10 days) is watched afresh.
    detector.watch("default", lead)
    assert detector.due(ts("2026-03-15T00:00:00Z"), engine.lead_by_id) == []
    assert [m["stage"] for _, m in detector.due(ts("2026-03-15T00:00:01Z"), engine.lead_by_id)] == ["qualified"]


def test_alert_ids_are_the_same_in_every_process_and_differ_per_condition():
    """SPEC 6: the same condition always yields the same id -- also in another worker process
    (another hash seed) -- and the id changes with each part of the condition."""
    base = ["lead.stale", "p", "L", "new", 5, 1]
    conditions = [base] + [base[:i] + [other] + base[i + 1:] for i, other in
                           enumerate(["lead.stale_resolved", "q", "M", "qualified", 6, 2])]
    conditions.append(["lead.stale_resolved", "p", "L", "new", 5])           # a resolution: no level
    here = [alert_id(*c) for c in conditions]
    assert len(set(here)) == len(conditions)
    code = ("import json, sys; from pulse.streams.alerts import alert_id; "
            "print(json.dumps([alert_id(*c) for c in json.loads(sys.argv[1])]))")
    for seed in ("1", "2"):
        done = subprocess.run([sys.executable, "-c", code, json.dumps(conditions)], capture_output=True, text=True,
                              env={**os.environ, "PYTHONHASHSEED": seed}, check=True)
        assert json.loads(done.stdout) == here
