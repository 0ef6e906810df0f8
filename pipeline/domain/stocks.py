"""Reference data: the NSE stocks the dashboard knows (seeded into ``stockmarket.stock`` by ``sinks.mongo``)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple


class Stock(NamedTuple):
    symbol: str
    company: str
    sector: str
    reference_price: float  # rupees, a recent close; the simulator's random walk starts here


NSE_STOCKS: tuple[Stock, ...] = (
    Stock("RELIANCE", "Reliance Industries Ltd", "Energy", 1285.0),
    Stock("TCS", "Tata Consultancy Services Ltd", "Information Technology", 3470.0),
    Stock("HDFCBANK", "HDFC Bank Ltd", "Financial Services", 1720.0),
    Stock("ICICIBANK", "ICICI Bank Ltd", "Financial Services", 1290.0),
    Stock("INFY", "Infosys Ltd", "Information Technology", 1560.0),
    Stock("HINDUNILVR", "Hindustan Unilever Ltd", "FMCG", 2370.0),
    Stock("ITC", "ITC Ltd", "FMCG", 415.0),
    Stock("SBIN", "State Bank of India", "Financial Services", 805.0),
    Stock("BHARTIARTL", "Bharti Airtel Ltd", "Telecommunication", 1860.0),
    Stock("KOTAKBANK", "Kotak Mahindra Bank Ltd", "Financial Services", 2080.0),
    Stock("LT", "Larsen & Toubro Ltd", "Construction", 3560.0),
    Stock("AXISBANK", "Axis Bank Ltd", "Financial Services", 1150.0),
    Stock("ASIANPAINT", "Asian Paints Ltd", "Consumer Durables", 2290.0),
    Stock("MARUTI", "Maruti Suzuki India Ltd", "Automobile", 12450.0),
    Stock("SUNPHARMA", "Sun Pharmaceutical Industries Ltd", "Healthcare", 1690.0),
    Stock("TITAN", "Titan Company Ltd", "Consumer Durables", 3380.0),
    Stock("BAJFINANCE", "Bajaj Finance Ltd", "Financial Services", 8950.0),
    Stock("WIPRO", "Wipro Ltd", "Information Technology", 250.0),
    Stock("ULTRACEMCO", "UltraTech Cement Ltd", "Construction Materials", 11900.0),
    Stock("NTPC", "NTPC Ltd", "Power", 335.0),
    Stock("POWERGRID", "Power Grid Corporation of India Ltd", "Power", 290.0),
    Stock("TATASTEEL", "Tata Steel Ltd", "Metals & Mining", 150.0),
    Stock("ONGC", "Oil & Natural Gas Corporation Ltd", "Oil & Gas", 245.0),
    Stock("HCLTECH", "HCL Technologies Ltd", "Information Technology", 1620.0),
    Stock("TATAMOTORS", "Tata Motors Ltd", "Automobile", 690.0),
)

SYMBOLS: frozenset[str] = frozenset(stock.symbol for stock in NSE_STOCKS)



# A listed symbol: what NSE uses (letters, digits, & and -), upper case, at most 32 characters.
SYMBOL_PATTERN = re.compile(r"[A-Z0-9][A-Z0-9&-]{0,31}")


def listed_symbol(document: Mapping[str, Any]) -> str | None:
    """The symbol a ``stock`` document lists: its ``symbol`` (or the original design's ``stock``) field,
    else an ``_id`` that is a string; upper-cased. None when it names no usable symbol."""
    named = [document[key] for key in ("symbol", "stock") if document.get(key) is not None]
    candidate = named[0] if named else document.get("_id")  # a symbol field, when there is one, decides
    if isinstance(candidate, str) and SYMBOL_PATTERN.fullmatch(candidate.strip().upper()):
        return candidate.strip().upper()
    return None


def unusable_reason(document: Mapping[str, Any]) -> str:
    """Why :func:`listed_symbol` found nothing in ``document``, in words for the Pipeline page."""
    named = [document.get(key) for key in ("symbol", "stock") if document.get(key) is not None]
    if not named and not isinstance(document.get("_id"), str):
        return "no `symbol` field and no text `_id`"
    return f"symbol {str((named or [document.get('_id')])[0])[:40]!r} is not 1-32 letters, digits, & or -"


class StockList(NamedTuple):
    """The listed symbols of a set of ``stock`` documents, and the documents skipped (``_id``, reason)."""

    symbols: frozenset[str]
    skipped: tuple[tuple[str, str], ...]

    @classmethod
    def of(cls, documents: Iterable[Mapping[str, Any]]) -> StockList:
        symbols, skipped = set(), []
        for document in documents:
            symbol = listed_symbol(document)
            if symbol is None:
                skipped.append((str(document.get("_id"))[:40], unusable_reason(document)))
            else:
                symbols.add(symbol)
        return cls(frozenset(symbols), tuple(skipped))


def stock_of(document: Mapping[str, Any]) -> Stock | None:
    """The reference data of a ``stock`` document (missing or odd fields become blanks), None if it lists
    no usable symbol."""
    symbol = listed_symbol(document)
    if symbol is None:
        return None
    try:
        reference_price = float(document.get("reference_price") or 0)
    except (TypeError, ValueError):
        reference_price = 0.0
    text = {key: value if isinstance(value := document.get(key), str) else "" for key in ("company", "sector")}
    return Stock(symbol, text["company"], text["sector"], reference_price if reference_price > 0 else 0.0)
