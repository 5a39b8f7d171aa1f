"""Per-owner scorecards (docs/redis.md), cut out of the cluster-wide SPEC 5 document (pure).

A rep's scorecard is what a sales manager reads about one owner in one pipeline: the
open pipeline they hold now (SPEC 4.8's open segment: count, amount, weighted amount,
stale, plus the stale leads by level) and, per window, the creations and closes that
count for them (4.8's window segment: leads created, won, lost, won amount, win rate,
close rate, average deal size, sales cycle). Owner names are in it (Redis is not a
metrics label store); lead ids, lead names, emails and attributes never are.

Leads without an owner (`null`) have no scorecard: they are nobody's. Their figures are
the `null` entries of the owner segments in `P report`.
"""
from __future__ import annotations

__all__ = ["scorecards", "EMPTY_WINDOW"]

# A window's figures for an owner with no creation or close in it (SPEC 4.2's formulas over nothing).
EMPTY_WINDOW = {"leads_created": 0, "won": 0, "lost": 0, "won_amount": 0.0, "win_rate": None, "close_rate": None,
                "avg_deal_size": None, "sales_cycle_days": {"mean": None, "count": 0}}
_EMPTY_OPEN = {"count": 0, "amount": 0.0, "weighted_amount": 0.0, "stale": 0}


def scorecards(doc: dict) -> dict[str, dict[str, dict]]:
    """pipeline -> owner -> scorecard, for every owner with an open lead, a creation or a
    close in some window of the document."""
    out: dict[str, dict[str, dict]] = {}
    for name, p in doc["pipelines"].items():
        open_by_owner = {e["value"]: e for e in p["open"]["segments"]["owner"] if e["value"] is not None}
        windows = {w: {e["value"]: e for e in pw["segments"]["owner"] if e["value"] is not None}
                   for w, pw in p["windows"].items()}
        levels: dict[str, list[int]] = {}
        for e in p["stale"]:
            if e["owner"] is not None:
                levels.setdefault(e["owner"], [0, 0, 0])[e["level"] - 1] += 1
        owners = set(open_by_owner).union(*windows.values())
        cards = out[name] = {}
        for owner in sorted(owners, key=str.encode):
            o = open_by_owner.get(owner)
            by_level = levels.get(owner, [0, 0, 0])
            cards[owner] = {
                "pipeline": name,
                "owner": owner,
                "as_of": doc["as_of"],
                "open": {**({k: o[k] for k in _EMPTY_OPEN} if o else _EMPTY_OPEN),
                         "stale_by_level": {"1": by_level[0], "2": by_level[1], "3": by_level[2]}},
                "windows": {
                    w: {"from": p["windows"][w]["from"], "to": p["windows"][w]["to"],
                        **{k: v for k, v in (by_owner.get(owner) or EMPTY_WINDOW).items() if k != "value"}}
                    for w, by_owner in windows.items()
                },
            }
    return out
