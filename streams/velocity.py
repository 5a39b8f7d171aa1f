"""Rates and velocity over a window (SPEC 4.2, 4.6): pure functions of window totals."""
from __future__ import annotations

from .deals import DealWindow
from .exact import from_fixed
from .windows import DAY_US


def deal_metrics(w: DealWindow, open_opportunities: int) -> dict:
    """The per-pipeline fields of one window, in report order (SPEC 4.2)."""
    out = deal_rates(w)
    cycle_mean = out["sales_cycle_days"]["mean"]
    out["qualified_leads"] = w.qualified
    out["sales_velocity_per_day"] = sales_velocity(open_opportunities, out["win_rate"], out["avg_deal_size"],
                                                   cycle_mean)
    return out


def deal_rates(w: DealWindow) -> dict:
    """4.2's fields over creations and closes alone: a segment's window entry (4.8) has just these."""
    won_amount = from_fixed(w.won_amount)
    decided = w.won + w.lost
    return {
        "leads_created": w.created,
        "won": w.won,
        "lost": w.lost,
        "won_amount": won_amount,
        "win_rate": w.won / decided if decided else None,
        "close_rate": w.won / w.created if w.created else None,
        "avg_deal_size": won_amount / w.won if w.won else None,
        "sales_cycle_days": {"mean": w.cycle_us / (w.won * DAY_US) if w.won else None, "count": w.won},
    }


def sales_velocity(open_opportunities: int, win_rate: float | None, avg_deal_size: float | None,
                   cycle_mean_days: float | None) -> float | None:
    """opportunities × win rate × average deal size / cycle length; null when a factor is null or the cycle is 0."""
    if win_rate is None or avg_deal_size is None or not cycle_mean_days:
        return None
    return open_opportunities * win_rate * avg_deal_size / cycle_mean_days


def lead_velocity_rate(current: int, previous: int) -> dict:
    """Growth of qualified leads, current 30 days against the 30 before (SPEC 4.6)."""
    return {
        "window": "30d",
        "current": current,
        "previous": previous,
        "rate": (current - previous) / previous if previous else None,
    }
