"""What a test that dates trades around now waits for: the trading day is the IST date (``pipeline.domain.days``)."""

from datetime import datetime, timedelta

from pipeline.domain.days import IST
from pipeline.waits import wait_until


def clear_of_midnight_ist(lookback: timedelta = timedelta(minutes=1)) -> None:
    """Waits out the minutes around midnight IST, when the market's trading day rolls over: a trade dated up to
    ``lookback`` back, or another test's dated up to the clock skew ahead, is then in another session than the
    test expects (CI once ran the late-tick test at 23:59 IST and the earlier minute's candle was an earlier
    session's)."""
    def clear() -> bool:
        now = datetime.now(IST)
        last_midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
        next_midnight = last_midnight + timedelta(days=1)
        return next_midnight - now > timedelta(minutes=3) and now - last_midnight > lookback + timedelta(minutes=2)
    wait_until(clear, timeout=(lookback + timedelta(minutes=6)).total_seconds(), interval=1,
               what="the minutes around midnight IST to pass")
