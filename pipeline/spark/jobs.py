"""What feeds MarketState in a process that runs the queries: the micro-batch query (the record) and, in
the default ``STREAM_MODE=realtime``, the live-ticks query with the feed of its ticks into the state.

Both queries share the process's SparkSession; the live-ticks query stops first so that the session it
runs on is still there. A failing live path never stops the record: the figures then move at the
micro-batch pace, and the status says why.
"""

from __future__ import annotations

from dataclasses import replace

from pyspark.sql import SparkSession

from pipeline.domain.state import MarketState
from pipeline.domain.status import QueryStatus
from pipeline.settings import Settings
from pipeline.sinks.live_feed import LiveFeed
from pipeline.spark.microbatch import MarketJob
from pipeline.spark.realtime import LiveTicksJob


class StreamingJobs:
    """The record and the live path, started, watched and stopped together."""

    def __init__(self, settings: Settings, state: MarketState | None = None, spark: SparkSession | None = None) -> None:
        self.settings = settings
        self.market = MarketJob(settings, state, spark=spark)
        self.listed = self.market.listed
        self.state = self.market.state
        live = settings.stream_mode == "realtime"
        self.live = LiveTicksJob(settings) if live else None
        # Only a process that shows the state reads the live ticks back (``python -m pipeline job`` does not).
        self.feed = LiveFeed(settings, self.state) if live and state is not None else None

    @property
    def restarts(self) -> int:
        return self.market.restarts

    def start(self) -> StreamingJobs:
        """Start synchronously (tests), raising on failure; then supervised as in :meth:`start_in_background`."""
        self.market.start()
        if self.live is not None:
            self.live.start()
        return self.start_in_background()  # each supervisor finds its query running and watches it

    def start_in_background(self) -> StreamingJobs:
        self.market.start_in_background()
        if self.live is not None:
            self.live.start_in_background()
        if self.feed is not None:
            self.feed.start_in_background()
        return self

    def status(self) -> QueryStatus:
        status = self.market.status()
        if self.live is None:
            return status
        live = self.live.status()
        problem = live.error or (self.feed.error if self.feed is not None else None)
        return replace(status, mode="realtime", live=f"live ticks: {problem}" if problem else f"live ticks: {live.state.value}")

    def stop(self) -> None:
        if self.feed is not None:
            self.feed.stop()
        if self.live is not None:
            self.live.stop()
        self.market.stop()
