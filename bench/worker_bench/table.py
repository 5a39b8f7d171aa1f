"""The human-readable table of a run's results."""
from __future__ import annotations


from .common import POLL_S, worker_key


def _times100(v):
    return None if v is None else 100 * v


def _fmt(v, spec=",.0f", unit="") -> str:
    return "-" if v is None else f"{v:{spec}}{unit}"


def print_table(res: dict) -> None:
    g = lambda k, f: res.get(k, {}).get(f)                                  # noqa: E731

    def runs(values, spec) -> str:
        return " / ".join(_fmt(v, spec) for v in values)

    def ratio(k: str) -> str:
        text = f"{_fmt(res.get(f'c_over_{k}'), '.2f')}  ({_fmt(res.get(f'c_over_{k}_cpu'), '.2f')})"
        if res.get(f"c_over_{k}_runs") and res.get(f"c_over_{k}") is not None:
            text += f"   runs {runs(res[f'c_over_{k}_runs'], '.2f')}  ({runs(res[f'c_over_{k}_cpu_runs'], '.2f')})"
        return text

    def rate(k: str) -> str:
        if not res.get(k):
            return "-"
        text = (f"{_fmt(g(k, 'events_per_s'), ',.0f')} events/s   "
                f"[{_fmt(g(k, 'events_per_cpu_s'), ',.0f')} per CPU-s; load avg {_fmt(g(k, 'loadavg'), '.1f')}]")
        if g(k, "capped"):
            text += f"  (first {g(k, 'events'):,} events: stopped after {res['max_seconds']:g} s)"
        if g(k, "timed_by") == "worker":
            text += (f"  (timed inside, first to last batch; by committed offsets: "
                     f"{_fmt(g(k, 'events_per_s_offsets'), ',.0f')})")
        elif g(k, "poll_mode") == "offsets":
            text += "  (timed by committed offsets)"
        if g(k, "events_per_s_runs"):
            text += (f"  medians of {runs(g(k, 'events_per_s_runs'), ',.0f')}  "
                     f"[{runs(g(k, 'events_per_cpu_s_runs'), ',.0f')}]; load avg "
                     f"{runs(g(k, 'loadavg_runs'), '.1f')}")
        elif g(k, "events_per_s_upper"):
            text += (f"  (<= {g(k, 'events_per_s_upper'):,.0f}: end seen within "
                     f"{g(k, 'end_uncertainty_s'):.2f} s, /report every {POLL_S} s)")
        return text

    rows = [
        ("events / leads / partitions", f"{res['events']:,} / {res['leads']:,} / {res['partitions']}"),
        ("publish (pulse replay, once)", _fmt(res.get("publish_seconds"), ".1f", " s")),
        ("(a) Faust agent, parse only", rate("a")),
        ("(b) Faust agent + Table write per event", rate("b")),
        ("(q) Quix Streams, state get + set per event", rate("q")),
        ("(c) pulse worker (event clock, dev)", rate("c")),
        ("(d) raw aiokafka getmany + orjson", rate("d")),
        ("c / a  (per CPU-s)", ratio("a")),
        ("c / b  (per CPU-s)", ratio("b")),
        ("pulse / Quix = c / q  (per CPU-s)", ratio("q")),
        ("pulse / raw = c / d  (per CPU-s)", ratio("d")),
        ("(c) peak RSS (VmHWM)", _fmt((g("c", "peak_rss") or 0) / 2**20 if g("c", "peak_rss") else None,
                                      ",.0f", " MiB")),
        ("(c) bytes / lead (peak; above idle)",
         f"{_fmt(g('c', 'bytes_per_lead'))} ; {_fmt(g('c', 'bytes_per_lead_above_idle'))}"),
        ("(c) bytes / lead above an idle worker (peak; end)",
         f"{_fmt(g('c', 'bytes_per_lead_peak_above_idle_worker'))} ; "
         f"{_fmt(g('c', 'bytes_per_lead_end_above_idle_worker'))}"),
        ("(c) changelog records per event; MiB written",
         f"{_fmt(g('c', 'changelog_records_per_event'), '.2f')}; "
         f"{_fmt(g('c', 'changelog_bytes') / 2**20 if g('c', 'changelog_bytes') else None, ',.0f')}"),
        ("(q) changelog records per event; MiB written",
         f"{_fmt(g('q', 'changelog_records_per_event'), '.2f')}; "
         f"{_fmt(g('q', 'changelog_bytes') / 2**20 if g('q', 'changelog_bytes') else None, ',.1f')}"),
        ("(c) /report call mean/max; worker busy serving it",
         f"{_fmt(g('c', 'report_call_ms_mean'), '.1f')} / {_fmt(g('c', 'report_call_ms_max'), '.1f')} ms; "
         f"{_fmt(_times100(g('c', 'report_busy_fraction')), '.1f')} %"),
        ("(e) alert latency p50 / p99 (ack -> resolved)",
         f"{_fmt(g('e', 'p50_ms'), ',.0f')} / {_fmt(g('e', 'p99_ms'), ',.0f')} ms"
         + (f"  ({g('e', 'leads')} leads)" if g("e", "leads") else "")),
        ("(e) tailer floor p50 / p99 (broker round trip)",
         f"{_fmt(g('e', 'tailer_floor_p50_ms'), ',.0f')} / {_fmt(g('e', 'tailer_floor_p99_ms'), ',.0f')} ms"),
    ]
    for n in res.get("workers") or ():
        k = worker_key(n)
        if n == 1 or not res.get(k):
            continue
        rows.insert(rows.index(next(r for r in rows if r[0].startswith("(d)"))),
                    (f"(c) {n} pulse workers, one group", rate(k)))
    scaling = [(n, res[worker_key(n)]) for n in res.get("workers") or () if res.get(worker_key(n))]
    if len(scaling) > 1:
        def scale(n: int, r: dict, field: str) -> str:
            text = _fmt(r.get(field))
            return text + (f" (x{_fmt(r.get(field + '_over_one'), '.2f')})" if n > 1 else "")

        rows.append(("(c) scaling, N workers: events/s (x one)",
                     "   ".join(f"{n}: {scale(n, r, 'events_per_s')}" for n, r in scaling)))
        rows.append(("(c) scaling, steady rate (20-80 % of the events)",
                     "   ".join(f"{n}: {scale(n, r, 'events_per_s_mid')}" for n, r in scaling)))
    if scaling:
        rows.append(("(c) cores busy: workers + broker (Tansu)",
                     "   ".join(f"{n}: {_fmt(r.get('worker_cores'), '.2f')} + {_fmt(r.get('broker_cores'), '.2f')}"
                                for n, r in scaling)))
        rows.append(("(c) the same, steady (20-80 %); events per CPU-s",
                     "   ".join(f"{n}: {_fmt(r.get('worker_cores_mid'), '.2f')} + "
                                f"{_fmt(r.get('broker_cores_mid'), '.2f')}; {_fmt(r.get('events_per_cpu_s_mid'))}"
                                for n, r in scaling)))
    if len(scaling) <= 1 and g("c", "events_per_s_mid"):
        rows.append(("(c) steady rate (20-80 % of the events)", f"{_fmt(g('c', 'events_per_s_mid'))} events/s"))
    for k in "abqd":
        if g(k, "peak_rss"):
            rows.append((f"({k}) peak RSS", f"{g(k, 'peak_rss') / 2**20:,.0f} MiB"))
    width = max(len(r[0]) for r in rows)
    print(f"\nPipeline Pulse worker benchmark ({res['cores']} cores, embedded Tansu broker)")
    la = lambda k: ", ".join(f"{x:.2f}" for x in res[k]) if res.get(k) else "-"      # noqa: E731
    print(f"  started {res.get('started', '-')}; load average (1, 5, 15 min) at the start: {la('loadavg_start')}, "
          f"at the end: {la('loadavg_end')}")
    for name, value in rows:
        print(f"  {name.ljust(width)}  {value}")
    prof = res.get("profile")
    if prof:
        print(f"\n  py-spy, pulse worker under load ({prof['samples']} samples; "
              f"still consuming at the end: {prof['still_consuming_at_end']}), top self time:")
        for f, p in prof["top_self"]:
            print(f"    {p:5.1f} %  {f}")
        print("  this project's functions, inclusive time:")
        for f, p in prof["project_inclusive"]:
            print(f"    {p:5.1f} %  {f}")
    print(f"\n  command: {res['command']}")


