"""How quotes and durations read on a terminal."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any


def price(value: Any) -> str:
    return f"{value:,.2f}" if isinstance(value, (int, float)) else "–"


def change(data: dict[str, Any]) -> str:
    delta, percent = data.get("change"), data.get("changePercent")
    if not isinstance(delta, (int, float)):
        return "–"
    text = f"{delta:+,.2f}"
    if isinstance(percent, (int, float)):
        text += f" ({percent:+.2f}%)"
    return text


def age_seconds(data: dict[str, Any], now: datetime | None = None) -> float | None:
    """Seconds since the quote's own timestamp (None when it has none we can read)."""
    stamp = data.get("timestamp")
    if not isinstance(stamp, str):
        return None
    try:
        taken = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    if taken.tzinfo is None:
        taken = taken.replace(tzinfo=timezone.utc)
    return max(0.0, ((now or datetime.now(timezone.utc)) - taken).total_seconds())


def seconds(value: float | None) -> str:
    if value is None:
        return "–"
    if value < 60:
        return f"{value:.1f} s"
    if value < 3600:
        return f"{value / 60:.0f} min"
    return f"{value / 3600:.1f} h"


def quote_line(body: dict[str, Any], edge: str | None) -> str:
    """One line for `tickwire quote`: symbol, price, change, age, staleness, source, edge."""
    age = body.get("ageMs")
    parts = [f"{body.get('symbol', '?'):<8}", f"{price(body.get('price')):>12}",
             f"{change(body):>18}",
             f"age {seconds(age / 1000 if isinstance(age, (int, float)) else None)}"]
    if body.get("stale"):
        parts.append("STALE")
    parts.append(f"source {body.get('source', '?')}")
    if edge:
        parts.append(f"edge {edge}")
    return "  ".join(parts)
