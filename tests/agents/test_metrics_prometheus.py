"""GET /metrics of a real `pulse worker`, scraped by a real Prometheus server.

The worker (embedded broker, event clock) consumes a replayed file; then its /metrics
must show GET /report's numbers, pass `promtool check metrics`, and a Prometheus
server scraping it every second must answer PromQL queries with the same numbers.
Prometheus and promtool come from the Debian package `prometheus` (.ci/run installs it):
missing, the test fails under CI=true and is skipped otherwise.
"""
from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import time
import urllib.parse
import urllib.request

from pulse.agents.metrics import CONTENT_TYPE
from pulse.kafka.broker import free_port
from pulse.schemas.topics import INPUT_TOPICS

from tests.support.live_harness import WorkerProcess, offline_report, replay
from tests.support.metrics import (assert_metrics_match_report, parse_exposition, promtool_check_metrics,
                                   require_binary)


class PrometheusServer:
    def __init__(self, binary: str, target: str, workdir):
        self.port = free_port()
        config = workdir / "prometheus.yml"
        config.write_text(json.dumps({        # JSON is YAML
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [{"job_name": "pulse-worker", "static_configs": [{"targets": [target]}]}],
        }))
        self.log_path = workdir / "prometheus.log"
        self.argv = [binary, f"--config.file={config}", f"--storage.tsdb.path={workdir / 'tsdb'}",
                     f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"]
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> "PrometheusServer":
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.argv, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log_path.read_text()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=1) as r:
                    if r.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"prometheus not ready:\n{self.log_path.read_text()}")

    def __exit__(self, *exc) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self._log.close()

    def query(self, promql: str) -> list[dict]:
        url = f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(url, timeout=5) as r:
            body = json.loads(r.read())
        assert body["status"] == "success", body
        return body["data"]["result"]

    def value(self, promql: str) -> float | None:
        result = self.query(promql)
        assert len(result) <= 1, result
        return float(result[0]["value"][1]) if result else None

    def eventually(self, promql: str, expected: float, timeout: float = 30) -> None:
        """Prometheus scrapes every second: wait until the query answers `expected`."""
        deadline = time.monotonic() + timeout
        got = None
        while time.monotonic() < deadline:
            got = self.value(promql)
            if got == expected:
                return
            time.sleep(0.5)
        raise AssertionError(f"{promql} = {got}, expected {expected}\n{self.log_path.read_text()[-2000:]}")


def test_prometheus_scrapes_the_reports_numbers(broker, topic_prefix, messy_file, tmp_path):
    prometheus_bin = require_binary("prometheus")
    require_binary("promtool")
    expected, n = offline_report(messy_file)
    worker = WorkerProcess(broker.url, topic_prefix, f"g-{topic_prefix}", tmp_path).start()
    try:
        with PrometheusServer(prometheus_bin, f"127.0.0.1:{worker.port}", tmp_path) as prom:
            assert replay(broker, topic_prefix, messy_file).wait(60) == 0
            report = worker.wait_consumed(n)
            assert report == expected

            # curl /metrics: the report's numbers, lint-clean.
            exposition = worker.get_bytes("/metrics")
            samples = parse_exposition(exposition)
            assert_metrics_match_report(samples, report)
            promtool_check_metrics(exposition)
            dq = report["data_quality"]
            consumed = sum(v for (name, _), v in samples.items() if name == "pulse_events_consumed_total")
            assert consumed == dq["events_read"]
            dead = sum(v for (name, _), v in samples.items() if name == "pulse_events_dead_lettered_total")
            assert dead == dq["dead_lettered"]
            assert samples[("pulse_state_ready", frozenset())] == 1
            assert samples[("pulse_assigned_partitions", frozenset())] == 4
            lag = [v for (name, _), v in samples.items() if name == "pulse_consumer_lag_messages"]
            assert len(lag) == len(INPUT_TOPICS) * 4 and all(v >= 0 for v in lag)

            # A kept-alive scraper (urllib above closes its connection: aiohttp answered) is answered
            # by the scrape front (agents/scrape_front.py: no Server header), with the same exposition.
            conn = http.client.HTTPConnection("127.0.0.1", worker.port, timeout=10)
            try:
                for _ in range(2):
                    conn.request("GET", "/metrics")
                    response = conn.getresponse()
                    kept_alive = response.read()
                    assert response.status == 200 and response.getheader("Server") is None
                    assert response.getheader("Content-Type") == CONTENT_TYPE
            finally:
                conn.close()
            fast = parse_exposition(kept_alive)
            assert set(fast) == set(samples)
            assert_metrics_match_report(fast, report)
            promtool_check_metrics(kept_alive)

            # They were the scrape front's (agents/scrape_front.py), a process of its own, which
            # answers even while the worker is stopped (Prometheus keeps the exposition fresh).
            fronts = [pid for pid in children(worker.proc.pid) if b"scrape_front" in cmdline(pid)]
            assert len(fronts) == 1
            argv = cmdline(fronts[0]).split(b"\0")
            published = argv[argv.index(b"--file") + 1]
            deadline = time.monotonic() + 10
            while time.time() - os.stat(published).st_mtime > 0.5:      # just published (every 1 s)
                assert time.monotonic() < deadline, "the worker does not publish for the scrape front"
                time.sleep(0.05)
            os.kill(worker.proc.pid, signal.SIGSTOP)
            try:
                conn = http.client.HTTPConnection("127.0.0.1", worker.port, timeout=2)
                conn.request("GET", "/metrics")
                response = conn.getresponse()
                assert response.status == 200
                assert set(parse_exposition(response.read())) == set(samples)
                conn.close()
            finally:
                os.kill(worker.proc.pid, signal.SIGCONT)

            # PromQL over what Prometheus scraped.
            pipe = report["pipelines"]["default"]
            w30 = pipe["windows"]["30d"]
            prom.eventually('up{job="pulse-worker"}', 1)
            prom.eventually('sum(pulse_open_leads{pipeline="default"})', pipe["open"]["count"])
            prom.eventually('pulse_open_amount{pipeline="default",stage="proposal"}',
                            pipe["open"]["stages"]["proposal"]["amount"])
            prom.eventually('pulse_deals_closed{pipeline="default",window="30d",outcome="won"}', w30["won"])
            prom.eventually('sum(pulse_deals_closed{pipeline="default",window="30d",outcome="won"})'
                            ' / sum(pulse_deals_closed{pipeline="default",window="30d"})', w30["win_rate"])
            prom.eventually('sum(pulse_stale_leads{pipeline="default"})', len(pipe["stale"]))
            prom.eventually('sum(pulse_events_consumed_total)', dq["events_read"])

            # v2: per team and source (bounded, summed back to the pipeline) and the forecast.
            prom.eventually('sum(pulse_team_open_leads{pipeline="default"})', pipe["open"]["count"])
            team = next(e for e in pipe["open"]["segments"]["team"] if e["value"] is not None)
            prom.eventually(f'pulse_team_open_amount{{pipeline="default",team="{team["value"]}"}}', team["amount"])
            source = next(e for e in w30["segments"]["source"] if e["won"])
            prom.eventually(f'pulse_source_deals_closed{{pipeline="default",window="30d",source="{source["value"]}",'
                            f'outcome="won"}}', source["won"])
            prom.eventually('sum(pulse_source_won_amount{pipeline="default",window="30d"})', w30["won_amount"])
            prom.eventually('pulse_forecast_open_at_start_weighted_amount{pipeline="default",window="30d"}',
                            w30["forecast"]["open_at_start"]["weighted_amount"])
            if w30["forecast"]["attainment"] is not None:
                prom.eventually('sum(pulse_won_amount{pipeline="default",window="30d"}) / '
                                'sum(pulse_forecast_open_at_start_weighted_amount{pipeline="default",window="30d"})',
                                w30["forecast"]["attainment"])
    finally:
        worker.stop()


def children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(") ", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except (FileNotFoundError, ProcessLookupError, IndexError):
                continue
    return found


def cmdline(pid: int) -> bytes:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read()
