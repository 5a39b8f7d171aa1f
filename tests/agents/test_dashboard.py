"""The dashboard (GET /) in a real headless Chromium, against a real worker fed known events.

Every figure the page shows carries `data-field` (its path in GET /report) and
`data-value` (the raw value); the tests read them all and compare with the report.
Screenshots go to tests/screenshots/ (git-ignored); with PULSE_UPDATE_SCREENSHOT=1 the
wide one also replaces docs/img/dashboard.png (the README's).

Chromium is the system one (Debian `chromium`, installed by `make tools` as root), driven
by Playwright for Python (a test dependency: a plain import) without `playwright install`.
Without the browser the tests are skipped, except under CI=true, where they fail.
"""
from __future__ import annotations

import importlib.resources
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import uuid
from pathlib import Path

import orjson
import pytest
from kafka import KafkaConsumer, KafkaProducer
from playwright.sync_api import sync_playwright

from pulse.kafka.broker import create_topics
from pulse.dev.synth import generate
from pulse.schemas.topics import NOTIFICATIONS, STAGE_CHANGED, topic_names

from tests.support import ROOT, TESTS
from tests.support.live_harness import WorkerProcess

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SHOTS = TESTS / "screenshots"
DEMO = Path(str(importlib.resources.files("pulse") / "samples" / "demo.jsonl"))
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--no-first-run", "--disable-sync"]
WIDE, PHONE = {"width": 1280, "height": 800}, {"width": 390, "height": 844}

if not CHROMIUM:
    reason = "needs the system Chromium (apt-get install chromium; `make tools` as root)"
    if os.environ.get("CI") == "true":
        pytest.fail(reason, pytrace=False)
    pytestmark = pytest.mark.skip(reason=reason)

TWO_PIPELINES = """
timezone: UTC
windows: [7d, 30d, 90d]
pipelines:
  default:
    qualified_stage: qualified
    opportunity_stage: qualified
    stages:
      - {name: new, stale_after: 3d, probability: 0.05}
      - {name: prospecting, stale_after: 7d, probability: 0.10}
      - {name: qualified, stale_after: 10d, probability: 0.20}
      - {name: contacted, stale_after: 7d, probability: 0.35}
      - {name: proposal, stale_after: 21d, probability: 0.60}
      - {name: negotiation, stale_after: 14d, probability: 0.80}
  partners:
    qualified_stage: qualified
    opportunity_stage: contacted
    stages:
      - {name: new, stale_after: 2d, probability: 0.1}
      - {name: prospecting, stale_after: 5d, probability: 0.2}
      - {name: qualified, stale_after: 10d, probability: 0.3}
      - {name: contacted, stale_after: 10d, probability: 0.4}
      - {name: proposal, stale_after: 14d, probability: 0.7}
      - {name: negotiation, stale_after: 14d, probability: 0.9}
"""


@pytest.fixture(scope="module")
def chromium():
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield browser
        browser.close()


def start_worker(broker, tmp_path, files: list[Path], extra_env: dict | None = None) -> WorkerProcess:
    prefix = f"dash{uuid.uuid4().hex[:8]}."
    create_topics(broker.bootstrap, list(topic_names(prefix).values()), 4)
    worker = WorkerProcess(broker.url, prefix, f"g-{prefix}", tmp_path, extra_env=extra_env).start()
    worker.prefix = prefix
    for f in files:
        subprocess.run([sys.executable, "-m", "pulse.cli", "replay", str(f), "--broker", broker.url,
                        "--topic-prefix", prefix, "--no-progress"], check=True, capture_output=True, timeout=120)
    lines = sum(1 for f in files for line in f.read_bytes().split(b"\n") if line.strip())
    worker.wait_consumed(lines)
    return worker


def get_kept_alive(worker, path: str) -> tuple[dict[str, str], bytes]:
    """GET `path` as a browser's fetch does (HTTP/1.1, the connection kept alive), on a raw
    socket: the response's headers (lower-case names) and body. (urllib asks to close the
    connection, which the worker's fast path leaves to aiohttp.)"""
    host, port = worker.url("").split("//")[1].split("/")[0].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"GET %s HTTP/1.1\r\nHost: %s\r\nAccept: application/json\r\n\r\n" % (path.encode(), host.encode()))
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(65536)
        head, body = data.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        assert lines[0] == "HTTP/1.1 200 OK", lines[0]
        headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
        while len(body) < int(headers["content-length"]):
            body += sock.recv(65536)
    return headers, body


def read_alerts(broker, prefix: str) -> list[dict]:
    consumer = KafkaConsumer(topic_names(prefix)[NOTIFICATIONS], bootstrap_servers=broker.bootstrap,
                             auto_offset_reset="earliest", consumer_timeout_ms=1500, group_id=None)
    try:
        return [orjson.loads(m.value) for m in consumer]
    finally:
        consumer.close()


def open_page(chromium, worker, viewport, errors: list, path: str = "/"):
    page = chromium.new_page(viewport=viewport)
    page.on("console", lambda m: errors.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: errors.append(f"request failed: {r.url}") if "/dashboard/events" not in r.url else None)
    page.goto(worker.url(path))
    page.wait_for_selector("#stale-table tbody tr")
    return page


def at(doc, path: str):
    """The value at a dotted path of the report (list items by index)."""
    node = doc
    for part in path.split("."):
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def shown_figures(page) -> list[tuple[str, object, str]]:
    return [(f, orjson.loads(v), text) for f, v, text in page.eval_on_selector_all(
        "[data-field][data-value]", "els => els.map(e => [e.dataset.field, e.dataset.value, e.textContent])")]


def assert_figures_match(page, report: dict, pipeline: str, window: str) -> int:
    figures = shown_figures(page)
    paths = {f for f, _, _ in figures}
    # the headline figures, the funnel and the open pipeline are all there
    for must in (f"pipelines.{pipeline}.open.amount", f"pipelines.{pipeline}.open.weighted_amount",
                 f"pipelines.{pipeline}.windows.{window}.win_rate", f"pipelines.{pipeline}.windows.{window}.close_rate",
                 f"pipelines.{pipeline}.windows.{window}.avg_deal_size",
                 f"pipelines.{pipeline}.windows.{window}.sales_cycle_days.mean",
                 f"pipelines.{pipeline}.windows.{window}.sales_velocity_per_day",
                 f"pipelines.{pipeline}.lead_velocity_rate.rate",
                 f"pipelines.{pipeline}.windows.{window}.stages.new.conversion_rate",
                 f"pipelines.{pipeline}.windows.{window}.stages.new.dwell_days.p90",
                 f"pipelines.{pipeline}.open.stages.proposal.stale",
                 f"pipelines.{pipeline}.windows.{window}.forecast.attainment",      # SPEC v2 4.9
                 f"pipelines.{pipeline}.windows.{window}.forecast.open_at_start.weighted_amount",
                 f"pipelines.{pipeline}.open.segments.owner.0.count",                # SPEC v2 4.8
                 "data_quality.events_read", "data_quality.dead_lettered", "as_of"):
        assert must in paths, must
    for path, value, text in figures:
        assert path.startswith(("data_quality.", "as_of", f"pipelines.{pipeline}.")), path
        assert value == at(report, path), (path, value, at(report, path))
        assert text.strip(), path
        if value is None:
            assert text == "—", (path, text)
    # the scorecards: every owner with activity in the window or open leads now, one row each
    section = report["pipelines"][pipeline]
    owners = {orjson.dumps(s["value"]) for s in section["windows"][window]["segments"]["owner"]}
    owners |= {orjson.dumps(s["value"]) for s in section["open"]["segments"]["owner"]}
    assert page.eval_on_selector_all("#segments-table tbody tr", "rs => rs.length") == max(1, len(owners))
    return len(figures)


def wait_until(page, expression: str, timeout: float = 30.0) -> None:
    """Poll a JS expression until true. (Playwright's wait_for_function evaluates strings with
    eval, which the page's Content-Security-Policy rightly forbids; evaluate goes through CDP.)"""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise AssertionError(f"not true after {timeout} s: {expression}")
        page.wait_for_timeout(100)


def stale_rows(page) -> list[str]:
    return page.eval_on_selector_all("#stale-table tbody tr[data-lead-id]", "rs => rs.map(r => r.dataset.leadId)")


def no_horizontal_overflow(page) -> bool:
    return page.evaluate("document.scrollingElement.scrollWidth <= window.innerWidth")


def test_dashboard_shows_the_report_and_follows_live_events(broker, tmp_path, chromium):
    SHOTS.mkdir(exist_ok=True)
    worker = start_worker(broker, tmp_path, [DEMO])
    errors: list[str] = []
    try:
        report = worker.get_json("/report")
        # one request per refresh: the figures and the stale page shown (filters as /dashboard/stale takes them)
        both = worker.get_json("/dashboard/data?pipeline=default&filters=%7B%22level%22%3A3%7D&offset=2&limit=5")
        level3 = [s for s in report["pipelines"]["default"]["stale"] if s["level"] == 3]
        assert both["stale"] == {"total": len(level3), "offset": 2, "limit": 5, "rows": level3[2:7]}
        assert both["section"]["stale_summary"]["by_level"]["3"] == len(level3) > 7
        assert both["refresh_s"] == 4.0         # every input read: no backlog, the 4 s interval (agents/snapshot.py)
        # the page's request (kept alive) is answered in the protocol (agents/fast_http.py: no
        # aiohttp, hence no Server header), with what aiohttp's handler answered above
        headers, body = get_kept_alive(worker, "/dashboard/data?pipeline=default&filters=%7B%22level%22%3A3%7D&offset=2&limit=5")
        assert "server" not in headers and headers["content-type"] == "application/json"
        fast = orjson.loads(body)
        for doc in (fast, both):            # when and how it was built (the same figures: nothing read since)
            for key in ("age_s", "built_at", "build"):
                doc.pop(key)
        assert fast == both
        for query, status in (("pipeline=nope", 404), ("limit=ten", 400)):    # refused, with the reason
            with pytest.raises(urllib.error.HTTPError) as refused:
                worker.get_json("/dashboard/data?" + query)
            assert refused.value.code == status and orjson.loads(refused.value.read())["error"]
        page = open_page(chromium, worker, WIDE, errors)
        # the alerts: every worker's, from the notifications topic, newest first (50 at most)
        raised = read_alerts(broker, worker.prefix)
        assert raised
        wait_until(page, f"document.querySelectorAll('#alerts li').length === {min(50, len(raised))}")
        shown_ids = page.eval_on_selector_all("#alerts li", "ls => ls.map(l => l.dataset.alertId)")
        assert set(shown_ids) <= {a["alert_id"] for a in raised}
        for window in ("30d", "90d", "7d"):                 # switching the window updates every figure
            page.click(f"label[for='w-{window}']")
            page.wait_for_selector(f"[data-field='pipelines.default.windows.{window}.win_rate']")
            assert assert_figures_match(page, report, "default", window) > 60
        # the stale table: the report's order, 25 a page, the total
        stale = report["pipelines"]["default"]["stale"]
        assert stale_rows(page) == [s["lead_id"] for s in stale[:25]]
        assert page.get_attribute("#stale-table", "data-total") == str(len(stale))
        page.click("#next")
        wait_until(page, f"document.querySelector('#stale-table tbody tr').dataset.leadId === {orjson.dumps(stale[25]['lead_id']).decode()}")
        assert stale_rows(page) == [s["lead_id"] for s in stale[25:50]]
        # filters: a team, then level 3 as well (the report's order kept)
        page.select_option("#f-team", '"emea"')
        expected = [s["lead_id"] for s in stale if s["team"] == "emea"]
        wait_until(page, f"document.querySelector('#stale-table').dataset.total === '{len(expected)}'")
        assert stale_rows(page) == expected[:25]
        page.click("#levels [data-level='3']")
        expected = [s["lead_id"] for s in stale if s["team"] == "emea" and s["level"] == 3]
        wait_until(page, f"document.querySelector('#stale-table').dataset.total === '{len(expected)}'")
        assert stale_rows(page) == expected[:25]
        page.select_option("#f-team", "")
        page.select_option("#f-level", "")
        wait_until(page, f"document.querySelector('#stale-table').dataset.total === '{len(stale)}'")
        page.evaluate("window.scrollTo(0, 0)")
        page.wait_for_timeout(300)
        page.screenshot(path=str(SHOTS / "dashboard-1280.png"), full_page=True)
        if os.environ.get("PULSE_UPDATE_SCREENSHOT") == "1":
            shot = ROOT / "docs" / "img" / "dashboard.png"
            shot.parent.mkdir(exist_ok=True)
            page.screenshot(path=str(shot))

        # a stale lead leaves its stage: it leaves the table and its resolution shows in the feed
        lead = stale[0]
        to_stage = "negotiation" if lead["stage"] != "negotiation" else "proposal"
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
        producer.send(topic_names(worker.prefix)[STAGE_CHANGED], key=lead["lead_id"].encode(), value=orjson.dumps(
            {"type": "lead.stage_changed", "event_id": f"dash-{uuid.uuid4().hex}", "lead_id": lead["lead_id"],
             "occurred_at": report["as_of"], "to_stage": to_stage}))
        producer.flush()
        producer.close()
        sent = time.monotonic()
        wait_until(page, f"!document.querySelector('#stale-table tbody tr[data-lead-id={orjson.dumps(lead['lead_id']).decode()}]')")
        removed_after = time.monotonic() - sent
        page.wait_for_selector(f"#alerts li[data-type='lead.stale_resolved'][data-lead-id='{lead['lead_id']}']",
                               timeout=30_000)
        print(f"stale lead left the page {removed_after:.1f} s after its event was sent")
        after = worker.get_json("/report")
        assert after["data_quality"]["events_read"] == report["data_quality"]["events_read"] + 1
        assert lead["lead_id"] not in [s["lead_id"] for s in after["pipelines"]["default"]["stale"]]
        wait_until(page, "document.querySelector('#events-read').dataset.value === "
                               f"'{after['data_quality']['events_read']}'")
        assert assert_figures_match(page, after, "default", "7d") > 60
        assert no_horizontal_overflow(page)
        page.close()

        # a phone: the same figures, nothing wider than the screen but the tables' own scroll
        phone = open_page(chromium, worker, PHONE, errors)
        assert assert_figures_match(phone, after, "default", "7d") > 60
        assert no_horizontal_overflow(phone)
        phone.screenshot(path=str(SHOTS / "dashboard-390.png"), full_page=True)
        phone.screenshot(path=str(SHOTS / "dashboard-390-top.png"))
        phone.close()
        # keyboard: the window switch and the filters are reachable with Tab
        kb = open_page(chromium, worker, WIDE, errors)
        focused = []
        for _ in range(12):
            kb.keyboard.press("Tab")
            focused.append(kb.evaluate("document.activeElement.id || document.activeElement.tagName"))
        assert "pipeline" in focused and "f-owner" in focused and any(f.startswith("w-") for f in focused), focused
        kb.close()
        assert errors == []
    finally:
        worker.stop()


def test_dashboard_switches_pipeline(broker, tmp_path, chromium):
    config = tmp_path / "pipelines.yaml"
    config.write_text(TWO_PIPELINES)
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\n".join(generate(leads=160, seed=11, late=0.05, duplicates=0.02, invalid=0.02,
                                           pipelines=("default", "partners"))) + b"\n")
    worker = start_worker(broker, tmp_path, [events], extra_env={"PULSE_CONFIG": str(config)})
    errors: list[str] = []
    try:
        report = worker.get_json("/report")
        assert set(report["pipelines"]) == {"default", "partners"}
        page = open_page(chromium, worker, WIDE, errors)
        assert assert_figures_match(page, report, "default", "7d") > 60
        page.select_option("#pipeline", "partners")
        page.wait_for_selector("[data-field='pipelines.partners.open.amount']")
        assert assert_figures_match(page, report, "partners", "7d") > 60
        stale = report["pipelines"]["partners"]["stale"]
        assert stale_rows(page) == [s["lead_id"] for s in stale[:25]]
        page.click("label[for='w-90d']")
        page.wait_for_selector("[data-field='pipelines.partners.windows.90d.win_rate']")
        assert assert_figures_match(page, report, "partners", "90d") > 60
        owner = next((s["owner"] for s in stale if s["owner"] is not None), None)
        if owner is not None:
            page.select_option("#f-owner", orjson.dumps(owner).decode())
            expected = [s["lead_id"] for s in stale if s["owner"] == owner]
            wait_until(page, f"document.querySelector('#stale-table').dataset.total === '{len(expected)}'")
            assert stale_rows(page) == expected[:25]
        # the pipeline and window survive a reload (they are in the address)
        page.reload()
        page.wait_for_selector("[data-field='pipelines.partners.windows.90d.win_rate']")
        assert page.eval_on_selector("#pipeline", "s => s.value") == "partners"
        assert errors == []
    finally:
        worker.stop()
