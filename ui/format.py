"""Turning snapshots into tables and words for the pages (pure functions)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime, timezone

import pandas as pd

from pipeline.state import MarketSnapshot
from pipeline.stocks import Stock

MARKET_COLUMNS = ["Symbol", "Company", "NAV", "Change %", "High", "Low", "VWAP", "Volume", "Transactions",
                  "Last trade (UTC)"]


def market_table(snapshot: MarketSnapshot, stocks: Mapping[str, Stock]) -> pd.DataFrame:
    rows = []
    for symbol, agg in sorted(snapshot.stocks.items()):
        rows.append({
            "Symbol": symbol,
            "Company": stocks[symbol].company if symbol in stocks else "",
            "NAV": float(agg.nav),
            "Change %": round(agg.change_pct, 2) if agg.change_pct is not None else None,
            "High": float(agg.high),
            "Low": float(agg.low),
            "VWAP": float(agg.vwap) if agg.vwap is not None else None,
            "Volume": agg.volume,
            "Transactions": agg.trades,
            "Last trade (UTC)": agg.last_trade_time.astimezone(timezone.utc).replace(tzinfo=None),
        })
    return pd.DataFrame(rows, columns=MARKET_COLUMNS)


def ago(timestamp: float | None, now: float | None = None) -> str:
    if timestamp is None:
        return "never"
    seconds = max(0.0, (now or time.time()) - timestamp)
    if seconds < 1:
        return "just now"
    if seconds < 60:
        return f"{seconds:.0f} s ago"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min ago"
    return datetime.fromtimestamp(timestamp, tz=timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def price_history(snapshot: MarketSnapshot, symbol: str) -> pd.DataFrame:
    ticks = snapshot.recent_ticks.get(symbol, ())
    return pd.DataFrame(
        [{"Trade time": t.trade_time.replace(tzinfo=None), "Price": float(t.price), "Quantity": t.quantity,
          "Side": t.side or "", "Event id": t.event_id} for t in ticks],
        columns=["Trade time", "Price", "Quantity", "Side", "Event id"],
    )
