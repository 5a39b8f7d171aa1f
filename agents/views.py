"""What the dashboard and GET /report serve, prepared once per snapshot (agents/snapshot.py).

Two forms answer the same requests:

- `FigureViews`: this worker's own figures (streams/cluster.py), built in process at one
  instant. Nothing is rendered per lead at the build: the stale rows are rendered when a
  page of them is asked for (and kept for the other viewers of that snapshot), the whole
  report when GET /report asks for it, in chunks between which the worker takes events.
- `Views`: a whole cluster's document, when peers hold part of the state (their shares
  are merged in a forked child of the worker). Pure functions, no I/O:
  `encode_views(doc)` turns one SPEC 5 document (all pipelines) into a compact bytes form
  in the child; `Views.decode` turns it back into something every request can be
  answered from in proportion to what it returns, never to the number of leads:

- the report document itself, as JSON bytes (whole, or one pipeline), spliced from
  per-pipeline parts: nothing is re-encoded per request;
- per pipeline, the dashboard's summary (the pipeline's report without its stale list,
  plus the stale leads' counts by level, owner and team);
- per pipeline, the stale leads as one JSON row each (in the report's order), with
  per-row owner/team/level ids and, per value, the rows that have it: a filtered page
  walks the smallest matching index only.
"""
from __future__ import annotations

import asyncio
from array import array
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Callable, Mapping

import msgspec
import orjson

from pulse.schemas.timestamps import format_timestamp
from pulse.streams.open_index import OWNER, STAGE, TEAM

if TYPE_CHECKING:
    from pulse.streams.report import PipelineFigures, ReportFigures

__all__ = ["encode_views", "Views", "PipelineViews", "FigureViews", "StalePage", "FILTERS", "MAX_PAGE"]

FILTERS = ("owner", "team", "level")        # the stale table's filters
MAX_PAGE = 200                              # rows per stale page, at most
_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.decode
_STALE_KEY = b'"stale":'


def _facet(values: list, counts: dict) -> list[list]:
    """[[value, count], ...] sorted as SPEC 5 sorts segments: by value, null last."""
    return [[v, counts[v]] for v in sorted((v for v in counts if v is not None)) + ([None] if None in counts else [])]


def _encode_pipeline(name: str, section: dict) -> dict:
    stale = section["stale"]
    rest = {k: v for k, v in section.items() if k != "stale"}
    rows = [orjson.dumps(entry) for entry in stale]
    offsets = array("Q", [0])       # row i is blob[offsets[i]:offsets[i + 1] - 1] (rows are comma-separated)
    total = 0
    for r in rows:
        total += len(r) + 1
        offsets.append(total)
    ids: dict[str, dict] = {f: {} for f in FILTERS}
    per_row: dict[str, array] = {f: array("I") for f in FILTERS}
    for entry in stale:
        for f in FILTERS:
            per_row[f].append(ids[f].setdefault(entry[f], len(ids[f])))
    values = {f: list(ids[f]) for f in FILTERS}
    index: dict[str, list[bytes]] = {}
    counts: dict[str, dict] = {}
    for f in FILTERS:
        rows_of = [array("I") for _ in values[f]]
        for i, vid in enumerate(per_row[f]):
            rows_of[vid].append(i)
        index[f] = [a.tobytes() for a in rows_of]
        counts[f] = {v: len(rows_of[vid]) for v, vid in ids[f].items()}
    summary = {
        **rest,
        "stale_summary": {
            "total": len(stale),
            "by_level": {str(level): counts["level"].get(level, 0) for level in (1, 2, 3)},
            "owners": _facet(values["owner"], counts["owner"]),
            "teams": _facet(values["team"], counts["team"]),
        },
    }
    return {
        "name": name,
        "rest": orjson.dumps(rest),
        "summary": orjson.dumps(summary),
        "rows": b",".join(rows),
        "offsets": offsets.tobytes(),
        "values": values,
        "per_row": {f: per_row[f].tobytes() for f in FILTERS},
        "index": index,
    }


def encode_views(doc: Mapping[str, Any], metrics: bytes = b"") -> bytes:
    """The views of one SPEC 5 document (every pipeline), as bytes for Views.decode; `metrics`:
    the pipeline gauges' text exposition built with it (GET /metrics)."""
    return _encode({
        "as_of": doc["as_of"],
        "metrics": metrics,
        "data_quality": orjson.dumps(doc["data_quality"]),
        "pipelines": [_encode_pipeline(name, section) for name, section in doc["pipelines"].items()],
    })


@dataclass(frozen=True)
class StalePage:
    total: int          # rows matching the filters
    offset: int
    rows: bytes         # a JSON array of report stale entries

    def to_json(self, limit: int) -> bytes:
        return b'{"total":%d,"offset":%d,"limit":%d,"rows":%s}' % (self.total, self.offset, limit, self.rows)


class PipelineViews:
    def __init__(self, part: dict):
        self.name: str = part["name"]
        self.rest: bytes = part["rest"]             # the pipeline's section without "stale"
        self.summary: bytes = part["summary"]
        self._rows: bytes = part["rows"]
        self._offsets = array("Q")
        self._offsets.frombytes(part["offsets"])
        self._values: dict[str, list] = part["values"]
        self._ids = {f: {v: i for i, v in enumerate(self._values[f])} for f in FILTERS}
        self._per_row = {f: _array(part["per_row"][f]) for f in FILTERS}
        self._index = {f: part["index"][f] for f in FILTERS}     # decoded lazily, per value asked for
        self._section: bytes | None = None

    @property
    def stale_count(self) -> int:
        return len(self._offsets) - 1

    def section(self) -> bytes:
        """The pipeline's report section (SPEC 5), as JSON bytes."""
        if self._section is None:
            rows = self._rows_json(range(self.stale_count))
            self._section = b"{" + _STALE_KEY + rows + (b"," + self.rest[1:] if len(self.rest) > 2 else b"}")
        return self._section

    def _rows_json(self, which) -> bytes:
        off, rows = self._offsets, self._rows
        if isinstance(which, range):            # contiguous: one slice of the comma-separated blob
            if which.start >= which.stop:
                return b"[]"
            return b"[" + rows[off[which.start]:off[which.stop] - 1] + b"]"
        return b"[" + b",".join(rows[off[i]:off[i + 1] - 1] for i in which) + b"]"

    def stale_page(self, filters: Mapping[str, Any], offset: int, limit: int) -> StalePage:
        """Rows matching every given filter (owner, team: a value or None for "not set";
        level: 1-3), in the report's order, `limit` of them from `offset`."""
        wanted = {f: filters[f] for f in FILTERS if f in filters}
        if not wanted:
            n = self.stale_count
            start, stop = min(offset, n), min(offset + limit, n)
            return StalePage(n, offset, self._rows_json(range(start, stop)))
        ids = {}
        for f, v in wanted.items():
            vid = self._ids[f].get(v)
            if vid is None:
                return StalePage(0, offset, b"[]")
            ids[f] = vid
        # the smallest index of the asked values, checked against the other filters row by row
        lists = {f: _array(self._index[f][vid]) for f, vid in ids.items()}
        first = min(lists, key=lambda f: len(lists[f]))
        others = [(self._per_row[f], vid) for f, vid in ids.items() if f != first]
        if others:
            matches = [i for i in lists[first] if all(col[i] == vid for col, vid in others)]
        else:
            matches = lists[first]
        return StalePage(len(matches), offset, self._rows_json(matches[offset:offset + limit]))


def _report(views: "Views | FigureViews", pipeline: str | None) -> bytes:
    """The document spliced from the pipelines' sections (the whole one assembled once per snapshot)."""
    if pipeline is None and views._whole is not None:
        return views._whole
    names = list(views.pipelines) if pipeline is None else [pipeline]
    # one join: the sections are megabytes at 100,000s of leads, each copy of them milliseconds
    parts = [b'{"as_of":%s,"data_quality":%s,"pipelines":{' % (orjson.dumps(views.as_of), views.data_quality)]
    for i, name in enumerate(names):
        parts += [b"," if i else b"", orjson.dumps(name), b":", views.pipelines[name].section()]
    parts.append(b"}}")
    out = b"".join(parts)
    if pipeline is None:
        views._whole = out
    return out


def _array(data: bytes) -> array:
    a = array("I")
    a.frombytes(data)
    return a


class Views:
    """One snapshot's answers. Built from encode_views' bytes in time proportional to the
    number of pipelines and filter values, not leads."""

    def __init__(self, as_of: str, data_quality: bytes, pipelines: dict[str, PipelineViews], metrics: bytes = b""):
        self.as_of = as_of
        self.metrics = metrics          # this worker's pipeline gauges (text exposition), same instant
        self.data_quality = data_quality
        self.pipelines = pipelines
        self._whole: bytes | None = None

    @classmethod
    def decode(cls, data: bytes) -> "Views":
        doc = _decode(data)
        return cls(doc["as_of"], doc["data_quality"],
                   {part["name"]: PipelineViews(part) for part in doc["pipelines"]}, doc.get("metrics", b""))

    def report(self, pipeline: str | None = None) -> bytes:
        """The SPEC 5 document (or its one-pipeline form) as JSON bytes."""
        return _report(self, pipeline)

    async def render_report(self, pipeline: str | None = None) -> bytes:
        """report(), as FigureViews.render_report (everything here is rendered already)."""
        return self.report(pipeline)


# --------------------------------------------------------------------------------------
# This worker's own figures, rendered as asked (see the module docstring)
# --------------------------------------------------------------------------------------

RENDER_CHUNK = 1000         # stale rows rendered per turn of the event loop (~2-3 ms)
_PAGES_KEPT = 64            # rendered stale pages kept per pipeline and snapshot (ten viewers ask the same)


class FigurePipelineViews:
    """One pipeline of FigureViews: PipelineViews' answers from its PipelineFigures."""

    def __init__(self, name: str, figures: "PipelineFigures"):
        self.name = name
        self._open = figures.open
        self._stale = figures.open._stale               # (stay_start, lead_id, row), in the report's order
        rest = {k: v for k, v in figures.section.items() if k != "stale"}
        self.rest: bytes = orjson.dumps(rest)
        levels = {str(level): 0 for level in (1, 2, 3)}
        for (_, level), n in self._open.stale_by_level.items():
            levels[str(level)] += n
        # The open segments count each value's stale leads already, in the facets' order (by value, null last).
        segments = rest["open"]["segments"]
        self.summary: bytes = orjson.dumps({**rest, "stale_summary": {
            "total": len(self._stale),
            "by_level": levels,
            "owners": [[e["value"], e["stale"]] for e in segments["owner"] if e["stale"]],
            "teams": [[e["value"], e["stale"]] for e in segments["team"] if e["stale"]],
        }})
        self._matches: dict[tuple, list[int]] = {}
        self._pages: dict[tuple, StalePage] = {}
        self._levels: list[int] | None = None
        self._section: bytes | None = None

    @property
    def stale_count(self) -> int:
        return len(self._stale)

    def rows_json(self, start: int, stop: int) -> bytes:
        """Stale rows [start, stop) as a JSON array (the report's entries)."""
        return orjson.dumps(self._open.stale_entries(start, stop))

    def stale_page(self, filters: Mapping[str, Any], offset: int, limit: int) -> StalePage:
        """As PipelineViews.stale_page; a page asked before from this snapshot is not rendered again."""
        wanted = tuple((f, filters[f]) for f in FILTERS if f in filters)
        key = (wanted, offset, limit)
        page = self._pages.get(key)
        if page is None:
            if len(self._pages) >= _PAGES_KEPT:
                self._pages.clear()
            page = self._pages[key] = self._page(wanted, offset, limit)
        return page

    def _page(self, wanted: tuple, offset: int, limit: int) -> StalePage:
        if not wanted:
            n = self.stale_count
            return StalePage(n, offset, self.rows_json(min(offset, n), min(offset + limit, n)))
        matches = self._matches.get(wanted)
        if matches is None:
            matches = self._matches[wanted] = self._match(dict(wanted))
        chosen = matches[offset:offset + limit]
        return StalePage(len(matches), offset, orjson.dumps(_entries(self._open, [self._stale[i] for i in chosen])))

    def _match(self, wanted: dict) -> list[int]:
        """Indexes of the stale rows with every wanted value (one pass, once per snapshot and filter)."""
        stale = self._stale
        matches: list[int] | range = range(len(stale))
        for name, field in (("owner", OWNER), ("team", TEAM)):
            if name in wanted:
                value = wanted[name]
                matches = [i for i in matches if stale[i][2][field] == value]
        if "level" in wanted:
            levels, level = self._row_levels(), wanted["level"]
            matches = [i for i in matches if levels[i] == level]
        return list(matches)

    def _row_levels(self) -> list[int]:
        if self._levels is None:                # stale_level, inlined: level k when stay_start < T - k × limit
            as_of, limits = self._open._as_of, [st.stale_after_us or 0 for st in self._open._config.stages]
            cut2, cut3 = [as_of - 2 * limit for limit in limits], [as_of - 3 * limit for limit in limits]
            self._levels = [3 if start < cut3[row[STAGE]] else 2 if start < cut2[row[STAGE]] else 1
                            for start, _, row in self._stale]
        return self._levels

    def section(self) -> bytes:
        """The pipeline's report section (SPEC 5), as JSON bytes (rendered whole: see render_section)."""
        if self._section is None:
            self._section = self._assemble([self.rows_json(0, self.stale_count)])
        return self._section

    async def render_section(self) -> bytes:
        """section(), rendered RENDER_CHUNK rows per turn of the event loop."""
        if self._section is None:
            chunks = []
            for start in range(0, self.stale_count, RENDER_CHUNK):
                chunks.append(self.rows_json(start, min(start + RENDER_CHUNK, self.stale_count)))
                await asyncio.sleep(0)
            if self._section is None:           # another reader may have finished first
                self._section = self._assemble(chunks)
        return self._section

    def _assemble(self, chunks: list[bytes]) -> bytes:
        """The section from its chunks of rows (JSON arrays), in one copy."""
        parts: list = [b"{" + _STALE_KEY + b"["]
        for chunk in chunks:
            if len(chunk) > 2:
                if len(parts) > 1:
                    parts.append(b",")
                parts.append(memoryview(chunk)[1:-1])
        parts.append(b"]" + (b"," + self.rest[1:] if len(self.rest) > 2 else b"}"))
        return b"".join(parts)


def _entries(figures, stale: list[tuple]) -> list[dict]:
    """The report's stale entries of some of an OpenFigures' stale leads."""
    return replace(figures, _stale=stale).stale_entries()


class FigureViews:
    """Views' answers from this worker's ReportFigures (see the module docstring). `metrics`:
    the pipeline gauges' text exposition of the same figures, made on first use."""

    def __init__(self, figures: "ReportFigures", metrics: Callable[[], bytes] = bytes):
        self.as_of = format_timestamp(figures.as_of)
        self.data_quality: bytes = orjson.dumps(figures.data_quality)
        self.pipelines = {name: FigurePipelineViews(name, p) for name, p in figures.pipelines.items()}
        self._metrics_of = metrics
        self._metrics: bytes | None = None
        self._whole: bytes | None = None

    @property
    def metrics(self) -> bytes:
        if self._metrics is None:
            self._metrics = self._metrics_of()
        return self._metrics

    def report(self, pipeline: str | None = None) -> bytes:
        """The SPEC 5 document (or its one-pipeline form) as JSON bytes, as Views.report."""
        return _report(self, pipeline)

    async def render_report(self, pipeline: str | None = None) -> bytes:
        """report(), its stale rows rendered a chunk per turn of the event loop."""
        for name in (list(self.pipelines) if pipeline is None else [pipeline]):
            await self.pipelines[name].render_section()
        return self.report(pipeline)
