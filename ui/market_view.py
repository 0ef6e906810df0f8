"""The Market page's live part as plain data: the market's figures and one row of texts per traded stock
(pure functions of a snapshot), drawn by the page when it runs and by the browser at each push
(``ui/push.py``), as ``ui.stock_view`` is for the Stock page."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass

from pipeline.domain.snapshot import MarketSnapshot
from pipeline.domain.stocks import Stock
from ui.format import LIVE, ago, breadth, market_records, ranked_movers
from ui.stock_view import Figure, money


@dataclass(frozen=True)
class Column:
    key: str  # the market table's column (``ui.format.MARKET_COLUMNS``)
    header: str
    help: str
    kind: str = "text"  # how its value is written: text, price, signed, percent, compact, time, trend


def columns(stale_after_s: float) -> list[Column]:
    """The table's columns, in order: the company is on the Stock page, so that the table fits 1440 px."""
    return [
        Column("Symbol", "Symbol", "opens the stock's page (candles, latest trades)"),
        Column("Sector", "Sector", "the stock's sector"),
        Column("Last", "Last", "the latest trade's price (by trade time) on the trading day", "price"),
        Column("Change", "Chg ₹", "last price minus the previous close", "signed"),
        Column("Change %", "Chg %", "against the previous close", "percent"),
        Column("Trend", "Trend", "recent trade prices: green rising, red falling", "trend"),
        Column("High", "High", "the trading day's highest price", "price"),
        Column("Low", "Low", "the trading day's lowest price", "price"),
        Column("Prev close", "Prev", "last price of the previous session, else the reference price", "price"),
        Column("VWAP", "VWAP", "the day's volume-weighted average price", "price"),
        Column("Volume", "Vol", "shares traded today", "compact"),
        Column("Buy %", "Buy", "share of today's volume bought (buy-side trades)", "share"),
        Column("Trades", "Trades", "trades today", "compact"),
        Column("Last trade (IST)", "Time", "event time of the latest trade, IST 24-hour", "time"),
        Column("Freshness", "Fresh", f"stale: no trade for more than {stale_after_s:g} s"),
    ]


def compact(value: float) -> str:
    """``22K``, ``1.3M``: a count in few characters."""
    for limit, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= limit:
            return f"{value / limit:.1f}".removesuffix(".0") + suffix
    return f"{value:.0f}"


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def cell_text(kind: str, value: object) -> str:
    if _missing(value):
        return "–"
    texts = {
        "price": lambda: money(float(value)),  # type: ignore[arg-type]
        "signed": lambda: f"{value:+,.2f}",
        "percent": lambda: f"{value:+.2f}%",
        "compact": lambda: compact(float(value)),  # type: ignore[arg-type]
        "share": lambda: f"{value:.0f}%",
        "time": lambda: value.strftime("%H:%M:%S"),  # type: ignore[attr-defined]
        "trend": lambda: "",
    }
    return texts.get(kind, lambda: str(value))()


def sort_key(kind: str, value: object) -> object:
    """What the browser sorts a column by: numbers as numbers, times as their text, nothing as null."""
    if _missing(value) or kind == "trend":
        return None
    if kind == "time":
        return value.strftime("%H:%M:%S.%f")  # type: ignore[attr-defined]
    return float(value) if kind != "text" else str(value)  # type: ignore[arg-type]


def rows(records: list[dict[str, object]], shown: list[Column]) -> list[dict[str, object]]:
    result = []
    for row in records:
        change = row["Change %"]
        result.append({
            "symbol": row["Symbol"], "sector": row["Sector"],
            "tone": "" if _missing(change) or change == 0 else "up" if change > 0 else "down",  # type: ignore[operator]
            "cells": [cell_text(c.kind, row[c.key]) for c in shown],
            "sort": [sort_key(c.kind, row[c.key]) for c in shown],
            "trend": [round(price, 2) for price in row["Trend"]],  # type: ignore[attr-defined]
        })
    return result


def figures(records: list[dict[str, object]], snapshot: MarketSnapshot, stale_after_s: float) -> list[Figure]:
    wide = breadth(row["Change %"] for row in records)
    live = sum(row["Freshness"] == LIVE for row in records)
    traded = len(records)
    return [
        Figure("Stocks traded", f"{traded:,}"),
        Figure("Advancers", f"{wide.advancers:,}"),
        Figure("Decliners", f"{wide.decliners:,}"),
        Figure("Unchanged", f"{wide.unchanged:,}"),
        Figure("Trades today", f"{sum(int(row['Trades']) for row in records):,}",  # type: ignore[call-overload]
               help=f"trading day {snapshot.trading_day or '–'} (IST); {snapshot.total_trades:,} since the start"),
        Figure("Live", f"{live:,} of {traded:,}",
               help=f"a stock is stale when its last trade is more than {stale_after_s:g} s old"),
    ]


def movers(records: list[dict[str, object]]) -> dict[str, list[dict[str, object]]]:
    """The top gainers and losers of the whole market (filters aside), as rows of texts and their tone."""
    def mover(record: Mapping[str, object]) -> dict[str, object]:
        change = float(record["Change %"])  # type: ignore[arg-type]
        return {"cells": [record["Symbol"], cell_text("price", record["Last"]), cell_text("percent", change)],
                "tone": "up" if change > 0 else "down"}

    gainers, losers = ranked_movers(records)
    return {"gainers": [mover(record) for record in gainers], "losers": [mover(record) for record in losers]}


def caption(snapshot: MarketSnapshot, now: float | None = None) -> str:
    return (f"Last updated: {ago(snapshot.updated_at, now)} · {sum(snapshot.rejected_by_reason.values()):,} rejected "
            f"and {sum(snapshot.late_by_symbol.values()):,} late ticks set aside (see Pipeline)")


def market_view(snapshot: MarketSnapshot, stocks: Mapping[str, Stock], stale_after_s: float,
                now: float | None = None) -> dict[str, object]:
    """Everything the live part of the Market page shows, as JSON-ready data (no pandas: it is built at each
    push, up to 20 times a second)."""
    records = market_records(snapshot, stocks, stale_after_s, now)
    shown = columns(stale_after_s)
    return {
        "version": snapshot.version,
        "figures": [asdict(figure) for figure in figures(records, snapshot, stale_after_s)],
        "caption": caption(snapshot, now),
        "columns": [{"header": c.header, "help": c.help, "kind": c.kind} for c in shown],
        "rows": rows(records, shown),
        "movers": movers(records),
    }
