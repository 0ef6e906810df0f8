"""Live rejects: messages the real-time query set aside that the micro-batch query has not applied yet.

The record (the micro-batch query) keeps the rejected ledger, but its batches land 2-4 s after the insert.
The real-time query passes each rejected message on with its reason within tens of milliseconds
(``pipeline.spark.realtime``), so the ledger counts it at once, as the record will. Exact by Kafka
position, as live ticks are (``pipeline.domain.live``): a reject is pending while its offset is past what the
record applied in its partition, and dropped once it is not (the record counts it from then on). The
record's word is final: a message it files under another reason (a replay it drops, say) moves there.

Pure and not thread-safe: ``MarketState`` owns one under its lock.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

# A record that stopped applying (MongoDB down, say) must not make the pending rejects grow without bound:
# past this, new ones wait for the record.
PENDING_KEPT = 50_000
SEEN_KEPT = 100_000  # event ids of the latest rejects: a change event the CDC sent twice counts once


@dataclass(frozen=True)
class LiveReject:
    """A message the real-time query set aside, with its place on the trades topic."""

    reason: str
    symbol: str | None  # at most SET_ASIDE_SYMBOL_CHARS characters, as the ledger keeps it
    event_id: str
    partition: int
    offset: int


class LiveRejects:
    def __init__(self) -> None:
        self.applied: dict[int, int] = {}  # partition -> the greatest offset the record applied
        self.pending: dict[tuple[int, int], LiveReject] = {}
        self.seen: OrderedDict[str, None] = OrderedDict()

    def add(self, rejects: Iterable[LiveReject]) -> int:
        """Take the rejects the record has not applied; returns how many are new here."""
        added = 0
        for reject in rejects:
            place = (reject.partition, reject.offset)
            if reject.offset <= self.applied.get(reject.partition, -1) or place in self.pending \
                    or reject.event_id in self.seen or len(self.pending) >= PENDING_KEPT:
                continue
            self.pending[place] = reject
            self.seen[reject.event_id] = None
            if len(self.seen) > SEEN_KEPT:
                self.seen.popitem(last=False)
            added += 1
        return added

    def confirm(self, offsets: Mapping[int, int]) -> bool:
        """The record applied every message up to these offsets; True if a pending reject went with them."""
        for partition, offset in offsets.items():
            self.applied[partition] = max(offset, self.applied.get(partition, -1))
        before = len(self.pending)
        self.pending = {place: reject for place, reject in self.pending.items()
                        if place[1] > self.applied.get(place[0], -1)}
        return len(self.pending) != before

    def reset(self) -> None:
        """The feed lost its place: the record alone counts until the feed reads on."""
        self.pending.clear()

    def by_reason(self) -> Counter:
        return Counter(reject.reason for reject in self.pending.values())

    def by_symbol(self) -> Counter:
        return Counter(reject.symbol for reject in self.pending.values())
