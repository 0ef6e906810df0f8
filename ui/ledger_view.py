"""The Pipeline page's ledgers as plain data: what was set aside (rejected messages by reason, late ticks by
symbol), as pure functions of a snapshot.

Rejects and late ticks reach the state by the live path within a fraction of a second, so the ledgers are
pushed to the open page like the Market table (``ui/push.py``) instead of waiting for the page's rerun.
Every text is final here: the browser only places it (as text, never as HTML).
"""

from __future__ import annotations

from pipeline.domain.reasons import REJECT_REASONS
from pipeline.domain.snapshot import MarketSnapshot

REJECTED, LATE = "Rejected (dead letter)", "Late ticks"
REJECTED_COLUMNS, LATE_COLUMNS = ["Reason", "Messages", "Meaning"], ["Symbol", "Late ticks"]  # of the rows below


def rejected_rows(snapshot: MarketSnapshot) -> list[tuple[str, int, str]]:
    """(reason, messages, what the reason means), the most frequent first."""
    return [(reason, count, REJECT_REASONS.get(reason, ""))
            for reason, count in sorted(snapshot.rejected_by_reason.items(), key=lambda item: (-item[1], item[0]))]


def late_rows(snapshot: MarketSnapshot) -> list[tuple[str, int]]:
    """(symbol, late ticks), the most frequent first."""
    return sorted(snapshot.late_by_symbol.items(), key=lambda item: (-item[1], item[0]))


def ledger_view(snapshot: MarketSnapshot) -> dict[str, object]:
    """Both ledgers: each a count (its figure) and a table; ``kinds`` says how a column is laid out
    ("count": right-aligned, "wrap": long text that wraps)."""
    rejected, late = rejected_rows(snapshot), late_rows(snapshot)
    return {
        "version": snapshot.version,
        "ledgers": [
            {"label": REJECTED, "value": f"{sum(count for _, count, _ in rejected):,}",
             "columns": REJECTED_COLUMNS, "kinds": ["text", "count", "wrap"],
             "rows": [[reason, f"{count:,}", meaning] for reason, count, meaning in rejected],
             "empty": "No message was rejected."},
            {"label": LATE, "value": f"{sum(count for _, count in late):,}",
             "columns": LATE_COLUMNS, "kinds": ["text", "count"],
             "rows": [[symbol, f"{count:,}"] for symbol, count in late],
             "empty": "No tick came late."},
        ],
    }
