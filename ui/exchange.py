"""Exchange time: the dashboard shows every time in India Standard Time (IST, 24-hour), as the NSE does.

Data stays in UTC everywhere else (storage, the pipeline); only what is shown is converted, on the
server, so the viewer's browser zone never changes a time on screen.
"""

from __future__ import annotations

from datetime import datetime, time, timezone
from zoneinfo import ZoneInfo

IST = ZoneInfo("Asia/Kolkata")
ZONE_NOTE = "times in IST (Asia/Kolkata, UTC+05:30)"
MARKET_OPENS, MARKET_CLOSES = time(9, 15), time(15, 30)  # the NSE's normal session, Monday to Friday


def to_ist(moment: datetime) -> datetime:
    """The same instant in IST. A naive datetime is taken to be UTC (as the pipeline stores it)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(IST)


def naive_ist(moment: datetime | None) -> datetime | None:
    """IST wall-clock time without a zone: tables and charts show a naive time as it is."""
    return None if moment is None else to_ist(moment).replace(tzinfo=None)


def ist_of_timestamp(timestamp: float) -> datetime:
    """A Unix timestamp as a naive IST wall-clock time."""
    return datetime.fromtimestamp(timestamp, tz=IST).replace(tzinfo=None)


def ist_text(moment: datetime, seconds: bool = True) -> str:
    """``2025-11-24 14:45:03 IST`` (24-hour)."""
    return to_ist(moment).strftime("%Y-%m-%d %H:%M:%S IST" if seconds else "%Y-%m-%d %H:%M IST")


def market_open(now: datetime) -> bool:
    """Whether the NSE's normal session is on at ``now``: from 09:15:00 IST (open) until 15:30:00 IST
    (closed from then on), Monday to Friday. Exchange holidays are not known here."""
    local = to_ist(now)
    return local.weekday() < 5 and MARKET_OPENS <= local.time() < MARKET_CLOSES


def market_badge(now: datetime) -> str:
    """A short badge for the page: open or closed, with the session's hours."""
    if market_open(now):
        return "🟢 NSE open · 09:15–15:30 IST"
    return "⚪ NSE closed · opens 09:15 IST, Mon–Fri (the simulator keeps trading)"
