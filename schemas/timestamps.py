"""RFC 3339 timestamps (SPEC section 1) <-> integer microseconds since the Unix epoch (UTC):
the one timestamp parser, shared by the event parser, the CLI (`--as-of`) and the report.

Exact integer arithmetic on the proleptic Gregorian calendar; no datetime, no regular
expressions (the parser runs once per event)."""
from __future__ import annotations

import functools

_US_PER_S = 1_000_000
_US_PER_DAY = 86_400 * _US_PER_S

# Two-character look-up tables: one dict access both validates (ASCII digits, range)
# and converts. `int()` alone would accept "+5", " 5", "0_5" or non-ASCII digits.
_MONTH = {f"{i:02d}": i for i in range(1, 13)}
_DAY = {f"{i:02d}": i for i in range(1, 32)}
_HOUR = {f"{i:02d}": i for i in range(24)}
# "+HH:MM" / "-HH:MM" -> offset in microseconds east of UTC (hours <= 23, minutes <= 59).
_OFFSET = {}
for _h in range(24):
    for _m in range(60):
        _OFFSET[f"+{_h:02d}:{_m:02d}"] = (_h * 60 + _m) * 60 * _US_PER_S
        _OFFSET[f"-{_h:02d}:{_m:02d}"] = -(_h * 60 + _m) * 60 * _US_PER_S
del _h, _m

_DAYS_IN_MONTH = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)

# ":MM:SS" -> microseconds past the hour (3,600 entries): one look-up validates both
# colons, the minute and the second (no :60) and converts them.
_MMSS = {f":{m:02d}:{s:02d}": (m * 60 + s) * _US_PER_S for m in range(60) for s in range(60)}
_MMSSZ = {k + "Z": v for k, v in _MMSS.items()}     # the same, for "...:MM:SSZ" endings

# "YYYY-MM-DDTHH" -> microseconds since the epoch at that hour (local to the
# timestamp's offset). Bounded: cleared when full (32,768 hours is ~3.7 years).
_HOUR_CACHE: dict[str, int] = {}
_HOUR_CACHE_MAX = 1 << 15


def _days_from_civil(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm)."""
    if m <= 2:
        y -= 1
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + 9 if m <= 2 else m - 3) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146_097 + doe - 719_468


def _civil_from_days(z: int) -> tuple[int, int, int]:
    """Inverse of `_days_from_civil`."""
    z += 719_468
    era = z // 146_097
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    return (y + 1 if m <= 2 else y), m, d


def _hour_base(p: str) -> int | None:
    """'YYYY-MM-DDTHH' -> microseconds since the epoch, or None if invalid. Caches."""
    if len(p) != 13 or p[4] != "-" or p[7] != "-" or p[10] != "T":
        return None
    ys = p[:4]
    if not (ys.isascii() and ys.isdigit()):
        return None
    y = int(ys)
    m = _MONTH.get(p[5:7])
    d = _DAY.get(p[8:10])
    h = _HOUR.get(p[11:13])
    if y == 0 or m is None or d is None or h is None:
        return None
    if d > _DAYS_IN_MONTH[m]:
        if not (m == 2 and d == 29 and y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)):
            return None
    base = (_days_from_civil(y, m, d) * 24 + h) * 3600 * _US_PER_S
    if len(_HOUR_CACHE) >= _HOUR_CACHE_MAX:
        _HOUR_CACHE.clear()
    _HOUR_CACHE[p] = base
    return base


def parse_timestamp(s: str) -> int | None:
    """An RFC 3339 timestamp as SPEC section 1 allows it -> microseconds since the epoch.

    Accepted: ``YYYY-MM-DDTHH:MM:SS``, optionally ``.`` and one or more ASCII digits
    (kept to the microsecond, further digits truncated), then ``Z`` or ``±HH:MM``
    (hours <= 23, minutes <= 59). Uppercase ``T``/``Z``, real calendar dates, years
    0001-9999, no leap second. Returns None for anything else (including non-strings).
    """
    if s.__class__ is not str or len(s) < 20:
        return None
    base = _HOUR_CACHE.get(s[:13])
    if base is None:
        base = _hour_base(s[:13])
        if base is None:
            return None
    mmss = _MMSS.get(s[13:19])
    if mmss is None:
        return None
    if len(s) == 20:                                    # "...SSZ": the common case
        return base + mmss if s[19] == "Z" else None
    tail = s[19:]
    if tail[0] == ".":
        if tail[-1] == "Z":
            frac = tail[1:-1]
            off = 0
        else:
            frac = tail[1:-6]
            off = _OFFSET.get(tail[-6:])
            if off is None:
                return None
        if not frac or not (frac.isascii() and frac.isdigit()):
            return None
        us = int(frac[:6]) if len(frac) >= 6 else int(frac) * 10 ** (6 - len(frac))
        return base + mmss - off + us
    off = _OFFSET.get(tail)
    if off is None:
        return None
    return base + mmss - off


def format_timestamp(us: int) -> str:
    """Microseconds since the epoch -> RFC 3339 in UTC with ``Z``.

    The fraction (always six digits) is written only when it is not zero:
    ``2026-03-01T10:15:00Z``, ``2026-03-01T10:15:00.250000Z``. Exact for any int;
    the result is RFC 3339 only for years 0001-9999.
    """
    days, rem = divmod(us, _US_PER_DAY)
    secs, frac = divmod(rem, _US_PER_S)
    hh, r = divmod(secs, 3600)
    mm, ss = divmod(r, 60)
    if frac:
        return f"{_date_text(days)}T{hh:02d}:{mm:02d}:{ss:02d}.{frac:06d}Z"
    return f"{_date_text(days)}T{hh:02d}:{mm:02d}:{ss:02d}Z"


@functools.lru_cache(maxsize=4096)
def _date_text(days: int) -> str:
    """YYYY-MM-DD of a day number (cached: a report formats thousands of times on few days)."""
    y, m, d = _civil_from_days(days)
    return f"{y:04d}-{m:02d}-{d:02d}"
