"""What the stream does with a change event: which operations are ticks, and why a message is set aside."""

# Upper bounds of a trade the pipeline accepts: with them, a turnover (price × quantity, summed) cannot
# overflow its exact decimal (38 digits in Spark, 34 in MongoDB's Decimal128) for ~10^15 trades.
MAX_PRICE = 1_000_000_000
MAX_QUANTITY = 1_000_000_000
DEFAULT_MAX_CLOCK_SKEW_S = 60

TICK_OPERATIONS = ("insert", "update", "replace")

# Why a message is set aside. Stable identifiers: dashboards and tests count by them.
REJECT_REASONS = {
    "not_json": "message is not a JSON object",
    "event_too_large": "change event is larger than the trades topic takes; the document stays in MongoDB",
    "unsupported_operation": "change event operation is not insert/update/replace/delete (Debezium: c/r/u/d)",
    "missing_document": "change event carries no document (fullDocument; Debezium: after)",
    "missing_symbol": "trade has no symbol",
    "unknown_symbol": "symbol is not in stockmarket.stock",
    "missing_price": "trade has no price",
    "invalid_price": f"price is not a positive number up to {MAX_PRICE:,}",
    "invalid_quantity": f"quantity is not a whole number from 1 to {MAX_QUANTITY:,}",
    "invalid_side": "side is not buy or sell",
    "invalid_trade_time": "trade time cannot be parsed",
    "absurd_trade_time": "trade time is before 2000, or ahead of the database clock by more than MAX_CLOCK_SKEW_S",
    "behind_replay_horizon": "change event is more than DEDUPE_HORIZON_S (database time) behind the newest one seen: "
                             "maybe a replay older than the ids the stream remembers, so not counted; re-inject it "
                             "if it is new",
}

# Reasons about the message's shape: they rank before an unlisted symbol (``unknown_symbol``), the others after.
SHAPE_REASONS = ("not_json", "unsupported_operation", "missing_document", "missing_symbol")

# Why a valid trade is late: counted since the start, left out of candles and the day's figures, in the
# late ledger with one of these.
LATE_REASONS = {
    "behind_watermark": "older than its symbol's latest trade minus CANDLE_LATENESS_S",
    "earlier_session": "dated in an earlier NSE session (IST date) than the trading day",
}
