"""The Faust topology of `pulse worker`: what connects to what. The logic is in live.py.

    crm.lead-created ─┐  BatchingConsumer   TimeAligner        LivePulse (PulseEngine per partition)
    crm.stage-changed ├─▶ (one batch per ─▶ (per partition, ─▶ process ─┬▶ dead letters ─▶ pipeline.deadletter
    crm.deal-closed  ─┘    fetch)            timestamp order)           ├▶ alerts ─▶ pipeline.notifications
                                                                        └▶ dirty state
    every 0.2 s, DurableAcks: dead letters acked ─▶ state (`leads` changelog) acked ─▶ alerts acked ─▶ ack to Faust ─▶ commit
    HTTP: GET /report, GET /health, GET /metrics, GET /stale (from Redis, with --redis: docs/redis.md),
          GET / (the dashboard: agents/web.py); /report, /metrics and the dashboard read one snapshot
          (agents/snapshot.py); GET /metrics is answered by the scrape front, a process of its own
          serving what the worker publishes (agents/scrape_front.py), or in aiohttp's protocol
          (agents/fast_http.py)
"""
from __future__ import annotations

import contextlib
import logging
import time
from typing import Iterable

import asyncio

import aiohttp
import faust
import orjson
from faust.types import TP

from pulse.schemas import topics
from pulse.schemas.settings import Settings
from pulse.streams.partial import PartialFormatError, dump_partial, load_partial
from pulse.streams.report import build_document

from .alert_feed import AlertFeed
from .align import TimeAligner, messages_behind
from .batching import DurableAcks
from .changelog import read_partitions
from .faust_compat import PulseApp, ack_records, aiokafka_producer, read_offset, use_input_records, use_raw_changelog
from .live import LivePulse
from .metrics import (CONTENT_TYPE, FaustProbe, ProcessingStats, make_registry, metrics_options, pipeline_exposition,
                      render)
from .scrape_front import PUBLISH_EVERY_S, ScrapeFront
from .snapshot import KEEP_FRESH_S, Snapshots, refresh_interval, run_forked
from .views import FigureViews, Views, encode_views
from .web import Dashboard

log = logging.getLogger("pulse.worker")

FLUSH_EVERY_S = 0.2     # how often processed messages are made durable, then acked (agents/batching.py)
# Messages taken from the fetcher at a time, and how many a topic-partition may buffer in the
# aligner before it is paused (resumed at ALIGN_LOW). Deep enough that aiokafka, which fetches a
# partition again only once its last fetch was handed over, keeps fetching the fast topic while the
# others wait in the aligner: on the worker bench (2,000 and 1,000/250) a third of the time went
# waiting for a fetch of the topic a partition needed next; 10,000 and 4,000/1,000 cut that to a
# fifth (memory: ~0.5 KB a buffered message, at most ALIGN_HIGH per topic-partition).
MAX_POLL_RECORDS = 10_000
ALIGN_HIGH, ALIGN_LOW = 4_000, 1_000
MAX_UNACKED = 20_000    # processed messages awaiting a flush before input waits (bounds memory)
# GET /metrics takes pipeline gauges up to this old rather than wait for a build (at 130,000 leads a
# build takes ~0.5-1 s; Prometheus scrapes every 15 s by default, so every scrape would wait)
METRICS_MAX_AGE_S = 60.0
# This worker's snapshots are built in process: what changed since the previous build is taken into
# the kept sums in steps, with the event loop running between them (a ~40 ms build after 20,000
# events at 130,000 leads held the loop ~7 ms). While the worker catches up on a backlog the builds
# are spaced BACKLOG_FRESH_S apart (agents/snapshot.py). They used to be forked at full speed: each
# child took in every change since the last build in process (at 560,000 leads ~2.4 s of CPU a
# build) and the worker paid the fork's copy-on-write faults: with a build per 12 s and a scraper
# reading, forked cost ~12 % of the worker's rate at 200,000-560,000 leads, in process ~4-7 %
# there and ~2-4 % of its time at ~240,000 (bench/README.md, "A build per 12 s while catching
# up"). With peers the build is forked (their shares come as rows to merge).
BATCH_LIMIT = 100       # messages applied per turn of the event loop (~2-8 ms: flushes, HTTP and timers stay live)
YIELD_EVERY = 500       # records appended to produce batches, or messages acked, per turn of the loop in a flush
NO_HEADERS: list = []   # a record without headers (a list: aiokafka's batch builder takes no tuple; only read)
# How long a partition waits for an input topic known to have more (agents/align.py). The wait
# only happens for messages already on the broker, so it ends as soon as they are fetched; the
# bound is for fetch starvation: on the worker bench (embedded broker, which answers a fetch with
# the data of one or a few partitions) a topic-partition went unfetched for 2-6 s in about half
# the runs, and with a 2 s bound those runs released 6,000-83,000 messages early and re-folded
# 3,500-98,000 leads (up to a quarter of the worker's time); with 6 s, none in 8 runs. (With
# Faust's 1,500 ms fetch long poll, 6 s also delayed a quarter of the bench's stale alerts past
# 60 s; with FETCH_MAX_WAIT_MS it does not.)
ALIGN_IDLE_S = 6.0


def create_app(settings: Settings) -> tuple[faust.App, LivePulse]:
    config = settings.config
    names = topics.topic_names(settings.topic_prefix)
    input_names = [names[t] for t in topics.INPUT_TOPICS]
    app = PulseApp(
        settings.app_id,
        broker=settings.broker,
        store="memory://",
        autodiscover=False,
        web_port=settings.web_port,
        web_host=settings.web_host,
        canonical_url=settings.canonical_url,
        datadir=settings.data_dir,
        topic_partitions=settings.partitions,
        topic_replication_factor=1 if settings.partitions else None,
        broker_session_timeout=settings.session_timeout,
        broker_rebalance_timeout=settings.rebalance_timeout,
        broker_heartbeat_interval=settings.heartbeat_interval,
        broker_commit_interval=settings.commit_interval,
        # The aligner pauses a topic-partition that runs ahead, but only after what it already
        # took: records stay compact in the fetcher and are taken a few thousand at a time.
        # (A partition's fetch size does not bound this: the embedded broker ignores it.)
        broker_max_poll_records=MAX_POLL_RECORDS,
        # State and outputs go as record batches (write_batches): 512 KB, not 16 KB, lets a
        # flush of thousands of leads take a few produce requests per partition, not hundreds
        # in a row (the producer keeps one batch per partition in flight).
        producer_max_batch_size=512 * 1024,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        table_standby_replicas=0,
    )
    inputs = app.topic(*input_names, key_serializer="raw", value_serializer="raw")
    app.topics.add(inputs)      # subscribed and acked as an agent's topic would be; consumed by on_batch
    leads = app.Table("leads", default=None, partitions=settings.partitions)
    use_raw_changelog(leads)    # opaque bytes: live.py's records
    output_topics = {"notifications": names[topics.NOTIFICATIONS], "deadletter": names[topics.DEADLETTER]}

    def send(role: str, key: bytes | None, value: bytes, partition: int, headers: tuple) -> None:
        # Written with the next flush (at once for an alert): a dead letter before the state
        # that counts it, an alert after the state that remembers it (batching.py says why).
        # Held as a tuple of atoms (headers a tuple: write_outputs makes the list aiokafka takes),
        # which the collector stops walking: an alert burst holds thousands until the flush.
        acks.output((output_topics[role], partition, key, value, headers), alert=role == "notifications")
        if role == "notifications":
            feed.publish_own(value)     # the dashboard's feed (agents/alert_feed.py), while watched

    def input_ends(partition: int) -> dict[str, int] | None:
        """The partition's input topics' end offsets as last fetched; None until all are known."""
        ends = {}
        try:
            for name in input_names:
                end = app.consumer.highwater(TP(name, partition))
                if end is None:
                    return None
                ends[name] = end
        except Exception:                       # noqa: BLE001  not (or no longer) assigned, or not started
            return None
        return ends

    live = LivePulse(
        config,
        type_of_topic={names[topics.TOPIC_OF_TYPE[t]]: t for t in topics.TOPIC_OF_TYPE},
        clock=settings.clock,
        send=send,
        now_us=lambda: time.time_ns() // 1000,
        # wall clock: a partition catching up holds its stale checks (live.py, LAG_HOLD_MESSAGES)
        input_ends=input_ends if settings.clock == "wall" else None,
    )
    feed = AlertFeed(settings.bootstrap_servers, names[topics.NOTIFICATIONS], own_partitions=lambda: live.partitions)
    stats = ProcessingStats()
    # GET /metrics: the processing metrics rendered per scrape; the pipeline gauges come with the
    # shared snapshot (built_views below). `registry` (both) renders them when there is no snapshot.
    probe = FaustProbe(app, input_names)
    registry = make_registry(live, stats, config, clock=settings.clock, probe=probe)
    processing = make_registry(live, stats, config, clock=settings.clock, probe=probe, pipeline=False)

    def assigned_partitions() -> set[int]:
        first = input_names[0]
        return {tp.partition for tp in app.consumer.assignment() if tp.topic == first}

    @leads.on_recover
    async def on_recover() -> None:
        # Rebuild newly assigned partitions from their changelog (see changelog.py for
        # why we read it ourselves rather than take leads.data as Faust recovered it).
        mine = assigned_partitions()
        new = mine - set(live.partitions)
        records = await read_partitions(settings.bootstrap_servers, leads.changelog_topic.get_topic_name(), new)
        alerts = await read_partitions(settings.bootstrap_servers, names[topics.NOTIFICATIONS], new)
        live.restore(mine, records, [value for _key, value in alerts if value is not None])
        for key in list(leads.data.keys()):     # the engines hold the state now
            leads.data.pop(key, None)
        live.ready = True

    @app.on_partitions_revoked.connect
    async def on_revoked(app_, revoked, **kwargs) -> None:
        # Faust has already waited for the processed messages to be acked (durable);
        # this writes what changed since (alert memory from the timer) before forgetting.
        gone = {tp.partition for tp in revoked if tp.topic == input_names[0]}
        aligner.clear()
        await acks.flush()
        live.drop(gone)

    changelog_name = leads.changelog_topic.get_topic_name()

    async def write_batches(batches: dict[tuple[str, int], Iterable[tuple]]) -> None:
        """Records (key, value, headers) as one Kafka record batch per topic-partition, awaited
        until acknowledged. A batch is appended atomically, and it costs one produce request
        instead of one Faust message per record: measured, Faust's per-message path took ~40 %
        of the worker's CPU at ~1 changelog record per event. The loop gets a turn every
        YIELD_EVERY records (the lead records are encoded as they are read: LivePulse.take_state)."""
        producer = aiokafka_producer(app)
        pending = []
        appended = 0
        for (topic, partition), records in batches.items():
            batch = producer.create_batch()
            for key, value, headers in records:
                if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:  # full
                    pending.append(await producer.send_batch(batch, topic, partition=partition))
                    batch = producer.create_batch()
                    batch.append(key=key, value=value, timestamp=None, headers=headers)
                appended += 1
                if appended % YIELD_EVERY == 0:
                    await asyncio.sleep(0)          # HTTP requests and timers wait ~1-2 ms at most
            pending.append(await producer.send_batch(batch, topic, partition=partition))
        if pending:
            await asyncio.gather(*pending)

    async def write_outputs(outputs: list[tuple]) -> None:
        batches: dict[tuple[str, int], list[tuple]] = {}
        for topic, partition, key, value, headers in outputs:
            batches.setdefault((topic, partition), []).append((key, value, list(headers) if headers else NO_HEADERS))
        await write_batches(batches)

    async def write_state(dirty: dict[int, Iterable[tuple[bytes, bytes | None]]]) -> None:
        """Dirty leads, then the partition's counters record (last: it vouches for the rest)."""
        await write_batches({(changelog_name, p): ((key, value, NO_HEADERS) for key, value in records)
                             for p, records in dirty.items()})

    def ack(batch) -> None:
        ack_records(app.consumer, batch.messages)
        app.consumer.unacked.discard(batch)

    acks = DurableAcks(take_state=live.take_state, write_outputs=write_outputs, write_state=write_state,
                       ack=ack, generation=lambda: app.consumer_generation_id, yield_every=YIELD_EVERY)

    def lag_of(topic: str, partition: int) -> int:
        high, read = app.consumer.highwater(TP(topic, partition)), read_offset(app, topic, partition)
        if high is None:
            # No fetch answered for it yet (just assigned): it may hold earlier messages, so the
            # aligner waits for it (at most ALIGN_IDLE_S) rather than let the other topics run
            # ahead: the merge order, hence the event-clock alerts, stays the same on every run.
            return 1
        return messages_behind(high, read)

    def pause(topic: str, partition: int) -> None:
        app.consumer.on_buffer_full(TP(topic, partition))

    def resume(topic: str, partition: int) -> None:
        tp = TP(topic, partition)
        if tp in app.consumer.assignment():     # after a rebalance Faust resumes what it assigns itself
            app.consumer.on_buffer_drop(tp)

    aligner = TimeAligner(input_names, max_idle_s=ALIGN_IDLE_S, lag=lag_of, on_full=pause, on_drop=resume,
                          high=ALIGN_HIGH, low=ALIGN_LOW)
    aligned = [None]        # the consumer generation of what the aligner holds

    def process(messages: list) -> None:
        """Apply input records (align.input_record) in order; `acks` acks them once durable."""
        if not messages:
            return
        on_message, observe, clock = live.on_message, stats.observe, time.perf_counter_ns
        for _ts, _seq, topic, partition, offset, key, value in messages:
            started = clock()
            result = on_message(topic, partition, offset, key, value)
            observe(topic, result, clock() - started)
        # Faust waits for what its consumer holds as unacked before a rebalance or stop.
        app.consumer.unacked.add(acks.processed(messages, app.consumer_generation_id))

    def on_batch(messages: list) -> bool:
        """The input messages of one fetch (BatchingConsumer; may be empty): aligned, then up to
        BATCH_LIMIT applied. True: more are ready (the consumer calls again after a yield)."""
        if aligned[0] != app.consumer_generation_id:     # what it holds belongs to a revoked assignment
            aligner.clear()
            aligned[0] = app.consumer_generation_id
        if not app.flow_control.is_active():
            aligner.clear()         # rebalancing: not processed, not acked; fetched again afterwards
            return False
        aligner.add(messages)
        if acks.pending >= MAX_UNACKED:
            return False            # wait for the flush (the aligner pauses fetching meanwhile)
        ready = aligner.release(time.monotonic(), BATCH_LIMIT)
        process(ready)
        stats.buffered, stats.unacked = len(aligner), acks.pending
        return bool(ready)

    app.batch_topics, app.on_batch = frozenset(input_names), on_batch
    use_input_records(app.batch_topics)     # fetched as input tuples (faust_compat.InputRecords)

    @app.task
    async def make_durable() -> None:
        # Runs until the app's futures are stopped, which is after Faust's consumer has
        # waited for the unacked messages: a clean stop or rebalance loses nothing.
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(acks.wake.wait(), FLUSH_EVERY_S)
            if not live.ready:
                continue
            try:
                await acks.flush()
                stats.unacked, stats.flush_seconds = acks.pending, acks.last_flush_s
            except Exception as exc:        # the broker refused state: stop rather than ack it
                log.error("could not write state to the changelog: %r; stopping", exc)
                await app.crash(exc)
                return
            while on_batch([]):             # what waited for this flush (MAX_UNACKED), or for a topic
                await asyncio.sleep(0)

    @app.timer(interval=settings.alert_interval)
    async def raise_due_alerts() -> None:
        if live.ready:
            for _ in live.ticking():
                await asyncio.sleep(0)      # a partition's alerts per turn of the loop (LivePulse.ticking)

    def json_response(web, doc, status=200):
        return web.bytes(orjson.dumps(doc), content_type="application/json", status=status)

    class PeerUnreachable(Exception):
        pass

    def peer_urls() -> list[str]:
        own = str(app.conf.canonical_url).rstrip("/")
        urls = sorted(str(url).rstrip("/") for url in app.assignor.changelog_distribution) if live.ready else []
        return [url for url in urls if url != own]

    async def peer_partials() -> list[bytes]:
        """Every other worker's /report/partial; PeerUnreachable when one cannot be read."""
        out: list[bytes] = []
        if not peer_urls():
            return out
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
                for url in peer_urls():
                    async with session.get(f"{url}/report/partial") as r:
                        if r.status != 200:
                            raise aiohttp.ClientError(f"{url} answered {r.status}")
                        out.append(await r.read())
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            log.warning("report: a peer worker could not be reached: %s", exc)
            raise PeerUnreachable(str(exc)) from None
        return out

    def merged_report(partials: list[bytes], pipeline: str | None = None) -> dict:
        """The report over this worker's share and its peers' (`partials`: O(their open leads))."""
        if not partials:
            return live.own_figures()[0].document(pipeline)
        engine = live.merged_engine()
        for data in partials:
            engine.merge(load_partial(config, data))
        return build_document(engine, live.report_as_of(engine), pipeline)

    async def cluster_report(pipeline: str | None = None) -> dict | None:
        """The document over all partitions, built on the loop (the Redis serving layer's
        source). None when a peer's share cannot be had."""
        try:
            return merged_report(await peer_partials(), pipeline)
        except PeerUnreachable:
            return None
        except PartialFormatError as exc:
            log.warning("report: a peer worker's share could not be had: %s", exc)
            return None

    def forked_views(partials: list[bytes]) -> bytes:
        """In a forked child: the report (this worker's share merged with its peers') as views,
        and this worker's pipeline gauges."""
        figures, leads_in_state, as_of = live.own_figures()
        return encode_views(merged_report(partials), pipeline_exposition(figures, leads_in_state, as_of))

    report_read = [float("-inf")]              # when GET /report last asked for the snapshot (monotonic)
    metrics_read = [float("-inf")]             # ... and GET /metrics
    previous_build = [0, time.monotonic()]      # events read and when, at the previous build (at start: none)

    async def build_views() -> Views | FigureViews:
        """The snapshot. This worker's own figures are built in process: the sums are kept between
        builds (streams/cluster.py), and what changed since the previous build is taken into them
        in steps of a few milliseconds with the event loop running between (LivePulse.catch_up_steps),
        then the figures are built at one instant from the rest (130,000 leads: ~5 ms after 8,000
        events, where the whole build held the loop ~25 ms). The interval to the next build is set
        here (refresh_interval: longer while catching up on a backlog). Built in a forked child
        with peers (their shares come as rows: agents/snapshot.py)."""
        partials = await peer_partials()
        events, now = live.events_read(), time.monotonic()
        read, seconds = events - previous_build[0], now - previous_build[1]
        previous_build[:] = events, now
        snapshots.set_interval(refresh_interval(input_waiting(), read / seconds if seconds > 0 else 0.0))
        if partials:
            return Views.decode(await run_forked(lambda: forked_views(partials)))
        for _ in live.catch_up_steps():
            await asyncio.sleep(0)
        figures, leads_in_state, as_of = live.own_figures()
        views = FigureViews(figures, lambda: pipeline_exposition(figures, leads_in_state, as_of))
        if now - metrics_read[0] < METRICS_MAX_AGE_S:
            # GET /metrics is being scraped: its pipeline gauges rendered here, a step of their own
            # (~5-25 ms at full speed), not in the first scrape of this snapshot, which then waited
            await asyncio.sleep(0)
            views.metrics  # noqa: B018  (rendered on first use, and kept)
        if now - report_read[0] < KEEP_FRESH_S + snapshots.fresh_s:
            # GET /report is being read: render it before the snapshot is served, in chunks between
            # the loop's other work (at full speed ~50-90 ms in all at 120,000 leads), rather than
            # in the reader's request, which then waited for every chunk
            await asyncio.sleep(0)
            await views.render_report()
        return views

    def input_waiting() -> int | None:
        """Input messages on the broker that this worker has not read yet (None: not known)."""
        found = probe.lag(live.offsets_of)
        return sum(n for _, _, n in found) if found else None

    def state_token():
        """Changes whenever this worker's report could; None with peers (their changes are not seen here)."""
        if peer_urls():
            return None
        clock = live.clock_us() // 1_000_000 if settings.clock == "wall" else None
        return tuple(sorted(live.partitions)), live.events_read(), live.alerts_sent, clock

    snapshots = Snapshots(build_views, token=state_token, keep_fresh_s=KEEP_FRESH_S)

    @app.on_before_shutdown.connect
    async def stop_snapshot_keeper(app_, **kwargs) -> None:
        snapshots.close()       # the keeper starts no (forked) build while the worker stops
    unreachable = {"error": "a worker holding part of the state is unreachable; retry"}

    @app.page("/report")
    async def report(web, request):
        pipeline = request.query.get("pipeline")
        if pipeline is not None and pipeline not in config.pipelines:
            return json_response(web, {"error": "unknown pipeline"}, 404)
        report_read[0] = time.monotonic()
        try:
            snap = await snapshots.get()
        except (PeerUnreachable, PartialFormatError) as exc:
            if isinstance(exc, PartialFormatError):
                log.warning("report: a peer worker's share could not be had: %s", exc)
            return json_response(web, unreachable, 503)
        return web.bytes(await snap.views.render_report(pipeline), content_type="application/json")

    def report_error(exc: Exception) -> tuple[int, dict]:
        if isinstance(exc, (PeerUnreachable, PartialFormatError)):
            return 503, unreachable
        log.error("dashboard: the report could not be built: %r", exc)
        return 500, {"error": "the report could not be built; see the worker's log"}

    Dashboard(snapshots, feed, list(config.pipelines),
              windows=[w.key for w in config.windows], report_error=report_error).install(app)

    # The Redis serving layer (docs/redis.md): a sync task, and GET /stale read from Redis.
    serving = None
    if settings.redis_url:
        from .serving import RedisServing
        serving = RedisServing.from_settings(live, settings, report_source=cluster_report)
        app.task(serving.run)

    @app.page("/stale")
    async def stale(web, request):
        """Not in SPEC 7.1 (an extra): the stale leads from Redis, ?pipeline=&stage=&owner=&team=&limit=."""
        if serving is None:
            return json_response(web, {"error": "no Redis serving layer: start the worker with --redis"}, 404)
        status, doc = await serving.http_stale(request.query)
        return json_response(web, doc, status)

    @app.page("/report/partial")
    async def report_partial(web, request):
        """This worker's share of the state, for the other workers' /report."""
        if not live.ready:
            return json_response(web, {"status": "starting"}, 503)
        data = await run_forked(lambda: dump_partial(live.merged_engine()))     # off the loop (snapshot.py)
        return web.bytes(bytes(data), content_type="application/msgpack")

    def metrics_now() -> bytes | None:
        """GET /metrics, answered in the turn of the event loop that reads the request
        (agents/fast_http.py: while the worker consumes at full speed, aiohttp's three turns
        made a scrape's p99 ~27 ms): this worker's processing metrics rendered now, and the
        pipeline gauges of the shared snapshot (the same build and T as /report and the
        dashboard: at most one build per refresh interval, whatever the number of scrapers).
        A scrape never waits for a build while a snapshot under METRICS_MAX_AGE_S exists: it
        gets that one's gauges (`pulse_as_of_timestamp_seconds` says their T) and starts the
        build the next scrape reads. None (no such snapshot): the handler below answers."""
        metrics_read[0] = time.monotonic()
        return exposition_now()

    def exposition_now(*, scraped: bool = True) -> bytes | None:
        """This worker's processing metrics rendered now and the snapshot's gauges. `scraped`:
        for a scrape, which starts the build the next one reads (Snapshots.peek); publishing
        for the scrape front between scrapes starts none."""
        if scraped:
            snap = snapshots.peek(max_age_s=METRICS_MAX_AGE_S)
        else:
            snap = snapshots.current
            if snap is not None and snap.age() > METRICS_MAX_AGE_S:
                snap = None
        return None if snap is None else render(processing) + snap.views.metrics
    app.web.fast_routes.add("/metrics", CONTENT_TYPE, metrics_now)

    def scraped_by_front() -> None:
        """The front answered scrapes: as for a scrape answered here, the snapshot is kept no
        older than its refresh interval (a build started if it is older)."""
        metrics_read[0] = time.monotonic()
        snapshots.peek(max_age_s=METRICS_MAX_AGE_S)

    async def exposition_waited() -> bytes:
        """What neither metrics_now nor the front's published copy can answer: the first scrape
        (it waits for the first build), or one after a pause. Without a snapshot (a peer's share
        unreachable) this worker's gauges are built for it, forked."""
        metrics_read[0] = time.monotonic()
        try:
            snap = await snapshots.get(max_age_s=METRICS_MAX_AGE_S)
        except Exception as exc:        # noqa: BLE001 - whatever the cluster build's failure, this worker can answer
            log.debug("metrics: no snapshot (%r): this worker's gauges built for this scrape", exc)
            return bytes(await run_forked(lambda: render(registry)))
        return render(processing) + snap.views.metrics

    # GET /metrics answered by a process of its own (agents/scrape_front.py), from what this
    # worker publishes while it is scraped: every PUBLISH_EVERY_S, and at each new snapshot
    # (so the front never serves older pipeline gauges than GET /report's).
    front = ScrapeFront(CONTENT_TYPE, on_scrape=scraped_by_front, exposition=exposition_waited) if (
        metrics_options(config).scrape_front) else None
    app.web.fast_routes.front = front

    def publish_exposition(_snapshot=None) -> None:
        if front is None or not front.is_serving() or time.monotonic() - metrics_read[0] >= METRICS_MAX_AGE_S:
            return
        try:
            body = exposition_now(scraped=False)
            if body is not None:
                front.publish(body)
        except Exception:       # noqa: BLE001 - e.g. no room left: the front then hands scrapes to the loop
            log.warning("GET /metrics: the exposition could not be published for the scrape front", exc_info=True)

    if front is not None:
        snapshots.listeners.append(publish_exposition)

        @app.timer(interval=PUBLISH_EVERY_S)
        async def publish_for_the_scrape_front() -> None:
            publish_exposition()

    @app.page("/metrics")
    async def metrics(web, request):
        """Prometheus text exposition: this worker's share of the pipeline metrics, and its
        processing, for a request neither the front nor metrics_now takes (e.g. a closing
        connection, or the first scrape without the front)."""
        return web.bytes(await exposition_waited(), headers={"Content-Type": CONTENT_TYPE})

    @app.page("/health")
    async def health(web, request):
        ok = live.ready and not app.rebalancing
        return web.bytes(orjson.dumps({"status": "ok" if ok else "starting"}), content_type="application/json",
                         status=200 if ok else 503)

    return app, live
