"""What the stream does with a change event: which operations are ticks, and why a message is set aside."""

TICK_OPERATIONS = ("insert", "update", "replace")

# Why a message is set aside. Stable identifiers: dashboards and tests count by them.
REJECT_REASONS = {
    "not_json": "message is not a JSON object",
    "unsupported_operation": "change event operation is not insert/update/replace/delete",
    "missing_document": "change event carries no fullDocument",
    "missing_symbol": "trade has no symbol",
    "unknown_symbol": "symbol is not in stockmarket.stock",
    "missing_price": "trade has no price",
    "invalid_price": "price is not a positive finite number",
    "invalid_quantity": "quantity is not a positive integer",
    "invalid_side": "side is not buy or sell",
    "invalid_trade_time": "trade time cannot be parsed",
    "absurd_trade_time": "trade time is before 2000 or more than a day ahead of the database clock",
}
