"""Reference data: the NSE stocks the dashboard knows (seeded into ``stockmarket.stock`` by ``sinks.mongo``)."""

from __future__ import annotations

from typing import NamedTuple


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

