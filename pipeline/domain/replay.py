"""The replay floor: how far behind the newest database time of its partition a change event may be and
still be counted.

Spark remembers event ids for ``DEDUPE_HORIZON_S`` of the query's own time (``spark.parse.deduplicate``),
so a replay older than that would be counted again. An event more than the horizon behind the newest
database time seen *in its trades-topic partition* is therefore set aside (``behind_replay_horizon``, in
the rejected ledger with its topic, partition and offset): never counted twice, never dropped unseen.

Per partition: CDC appends a partition's changes in database-time order, so a new event is never far
behind its own partition (however far one partition lags another in a catch-up), while a replay appended
again later (an archived day, say) is.

The floor of a batch depends only on the batches before it, and a batch re-run after a crash gets the
floor its first run had (the clock keeps the newest times before and after its last batch): the same rows
are set aside, and the figures stay exactly once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ReplayClock:
    """Per partition, the newest database time (epoch µs) before and after batch ``batch_id``."""

    batch_id: int
    before_us: Mapping[int, int] = field(default_factory=dict)
    after_us: Mapping[int, int] = field(default_factory=dict)

    def newest_before(self, batch_id: int) -> Mapping[int, int]:
        """The newest times seen before ``batch_id`` ran (again, if it is this clock's batch)."""
        return self.before_us if batch_id == self.batch_id else self.after_us


def replay_floors(clock: ReplayClock | None, batch_id: int, horizon_s: int) -> dict[int, int]:
    """Per partition, the database time (epoch µs) below which batch ``batch_id`` sets an event aside
    (a partition not seen yet has none)."""
    newest = clock.newest_before(batch_id) if clock is not None else {}
    return {partition: time_us - horizon_s * 1_000_000 for partition, time_us in newest.items()}


def advanced(clock: ReplayClock | None, batch_id: int, batch_newest_us: Mapping[int, int]) -> ReplayClock:
    """The clock after batch ``batch_id``, whose newest database time per partition was ``batch_newest_us``."""
    before = dict(clock.newest_before(batch_id)) if clock is not None else {}
    after = dict(before)
    for partition, time_us in batch_newest_us.items():
        after[partition] = max(time_us, after.get(partition, time_us))
    return ReplayClock(batch_id, before, after)
