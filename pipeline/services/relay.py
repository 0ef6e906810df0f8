"""CDC relay: MongoDB change stream of ``stockmarket.transaction`` -> Kafka trades topic.

The default change data capture (``CDC_MODE=debezium`` and ``connect`` run a connector on Kafka Connect instead).
Each message is the full change event as relaxed Extended JSON (what the MongoDB Kafka Connector publishes with
its RelaxedJson formatter), keyed by the trade's symbol: one symbol's events stay in order on one partition.

Delivery is at-least-once: the resume token of a batch is stored only after Kafka acknowledged every
one of its messages (while events flow, at most every ``TOKEN_SAVE_S``), so a crash or a refused send can
only re-send events, which the pipeline drops by event id. A change event too large for the topic goes as
a small *oversize* message instead (see ``change_events``): set aside with a reason downstream, never
dropped. Any failure is logged in one line, shown in the status file, and retried from the last stored
token with a growing pause.

Cost (``python -m bench.relay``): read 5 µs of CPU an event, JSON 7; the Kafka client is librdkafka's
(``pipeline.services.producer`` says why), which at 1,000 trades/s in ~200 batches a second takes a fifth of
what kafka-python did.

A stored position older than the oldest oplog entry (ChangeStreamHistoryLost, code 286: the relay was down
longer than the oplog's window) cannot be resumed: the relay says so in one ERROR line and in its status
(``last_error``, ``history_lost``) and resyncs from the current time; the events in between are not relayed.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Mapping
from functools import partial
from typing import Any

from bson import Timestamp
from bson.codec_options import DatetimeConversion
from pymongo import MongoClient
from pymongo.errors import OperationFailure, PyMongoError

from pipeline.services.change_events import commit_time_ms, encode_for_topic, oversize_stub
from pipeline.services.heartbeat import ServiceStatus
from pipeline.services.paths import relay_paths
from pipeline.services.producer import CLIENT_LOG, DeliveryError, Outgoing, RefusedAsTooLarge, TopicProducer
from pipeline.services.resume_tokens import ResumeTokenStore, describe_position
from pipeline.settings import Settings
from pipeline.sinks import mongo, topics
from pipeline.sinks.topics import TRADES_MAX_MESSAGE_BYTES

log = logging.getLogger("stockdash.relay")

MAX_BATCH = 5000
# An empty getMore waits up to AWAIT_MS for the next write (awaitData, as MongoDB's): an idle stream costs two
# getMores a second. A server that answers one at once (taking < AWAITED_S) is polled with backoff, not spun on.
AWAIT_MS, AWAITED_S = 500, 0.05
IDLE_BACKOFF_S, RETRY_BACKOFF_S = (0.001, 0.001, 0.002, 0.005, 0.01, 0.02), (1.0, 2.0, 5.0, 10.0)  # retry: last repeats
DELIVERY_TIMEOUT_S = 120.0
# While events flow, the acknowledged batches' token is stored at most this often (at once when idle): each store is
# an fsync (~8 % of the relay at 10,000 trades/s); a crash re-sends at most this much, dropped by event id.
TOKEN_SAVE_S = 0.1
# An idle stream's position (postBatchResumeToken), stored this often: a long-idle relay restarts inside the oplog.
IDLE_TOKEN_SAVE_S = 1.0
HISTORY_LOST = 286  # ChangeStreamHistoryLost: the resume point is no longer in the oplog


RECORD_OVERHEAD_BYTES = 512  # a message's key, headers and batch framing, on top of its value
MIN_LIMIT_BYTES = 64 * 1024  # no sane topic takes less; a limit learned from refusals never goes below


class LimitLowered(DeliveryError):
    """Kafka refused a message as too large for the topic: the relay lowered its limit and sends the batch again."""


class ChangeRelay:
    """Follows the change stream of ``transaction`` into the trades topic until ``stop`` is set: each batch
    is in Kafka before its resume token is stored (at-least-once; the pipeline drops replays by event id)."""

    def __init__(self, settings: Settings, stop: threading.Event | None = None,
                 delivery_timeout_s: float = DELIVERY_TIMEOUT_S) -> None:
        self.settings = settings
        self.stop = stop or threading.Event()
        self.delivery_timeout_s = delivery_timeout_s
        self.delivered = False  # since the last failure
        self.opened = False  # the change stream, since the last failure
        self.limit: int | None = None  # the largest change event sent whole; above it, an oversize message
        token_path, status_path = relay_paths(settings)
        self.tokens = ResumeTokenStore(token_path)
        self.status = ServiceStatus(status_path, events=0, last_event_at=None, set_aside=0, history_lost=0)
        self.history_lost_error: str | None = None  # stays in the status (events were skipped) until another error
        self._unsaved: Mapping[str, Any] | None = None  # the token of acknowledged batches, not yet stored
        self._saved: Mapping[str, Any] | None = None  # the token stored last
        self._saved_at = 0.0

    def run(self) -> None:
        """Relay until ``stop`` is set, starting again from the last stored token after any failure."""
        failures = 0
        resynced = False  # the last round ended in a resync
        while not self.stop.is_set():
            self.delivered = self.opened = False
            try:
                self._relay_once()
            except LimitLowered as exc:
                log.error("CDC relay: %s", exc)  # sent again at once, the too large one as an oversize message
            except Exception as exc:  # noqa: BLE001 - whatever it was, the relay must not die: say it, retry
                again = resynced and not self.opened  # lost again at once: resync, but after a pause
                resynced = isinstance(exc, OperationFailure) and exc.code == HISTORY_LOST
                if resynced:
                    self._resync(exc)  # never retried from the lost position: that would fail forever
                    if not again:
                        continue
                failures = 0 if self.delivered else failures  # the pause grows only while nothing gets through
                pause = RETRY_BACKOFF_S[min(failures, len(RETRY_BACKOFF_S) - 1)]
                message = f"{type(exc).__name__}: {str(exc)[:300]}"
                log.error("CDC relay interrupted (%s); retrying in %.0f s from the last stored token", message, pause)
                self.status.update(force=True, state="retrying", last_error=message)
                failures += 1
                self.stop.wait(pause)
        self.status.update(force=True, state="stopped")

    def _relay_once(self) -> None:
        # Dates beyond Python's range and invalid UTF-8 are decoded, not fatal: the event is relayed as it is.
        client = mongo.client(self.settings, datetime_conversion=DatetimeConversion.DATETIME_AUTO,
                              unicode_decode_error_handler="replace")
        producer: TopicProducer | None = None
        try:
            token, start_at = self._position(client)
            producer = TopicProducer(self.settings.effective_kafka_bootstrap, self.settings.trades_topic,
                                     self.delivery_timeout_s)
            if self.limit is None:
                topic_limit = topics.max_message_bytes(self.settings, self.settings.trades_topic) or TRADES_MAX_MESSAGE_BYTES
                self.limit = min(TRADES_MAX_MESSAGE_BYTES, topic_limit) - RECORD_OVERHEAD_BYTES
            collection = client[self.settings.database]["transaction"]
            with mongo.open_change_stream(collection, token, start_at, max_await_time_ms=AWAIT_MS) as stream:
                self.opened = True
                self.status.update(force=True, state="running", last_error=self.history_lost_error)
                log.info("CDC relay running: %s.transaction -> %s", self.settings.database, self.settings.trades_topic)
                idle = 0
                while not self.stop.is_set():
                    asked = time.monotonic()
                    if self._relay_batch(stream, producer):
                        idle = 0
                    else:
                        self._follow_idle_position(stream.resume_token, first_idle_poll=idle == 0)
                        self.status.update()
                        if time.monotonic() - asked < AWAITED_S:
                            self.stop.wait(IDLE_BACKOFF_S[min(idle, len(IDLE_BACKOFF_S) - 1)])
                        idle += 1
        finally:
            try:
                self._save_token()  # whatever failed, those batches are in Kafka
            except OSError as exc:
                log.error("CDC relay: could not store the resume token (%s); those events will be sent again", exc)
            if producer is not None:
                producer.close()
            client.close()

    def _position(self, client: MongoClient) -> tuple[Mapping[str, Any] | None, Timestamp | None]:
        """Where to go on from: the stored token or first start time; on the very first start, now (kept)."""
        token, start_at = self.tokens.load()
        if token is None and start_at is None:
            start_at = mongo.initial_operation_time(client)
            self.tokens.save_start(start_at)
        return token, start_at

    def _resync(self, exc: Exception) -> None:
        """The stored position fell off the oplog: say so once, loudly, and go on from the current time."""
        token, start_at = self.tokens.load()
        with mongo.client(self.settings) as client:
            now = mongo.initial_operation_time(client)
            try:  # the newest oplog entry: surely still kept (a server's "now" may be our wall-clock fallback)
                newest = client.local["oplog.rs"].find_one(sort=[("$natural", -1)], projection={"ts": True})
                now = max(now, newest["ts"]) if newest else now
            except PyMongoError:
                pass  # not readable here: the server's operation time it is
        self.tokens.save_start(now)
        lost = self.status.values["history_lost"] + 1
        self.history_lost_error = (
            f"change stream history lost: the stored position ({describe_position(token, start_at)}) is no longer in "
            f"the oplog, so changes from then until {describe_position(None, now)} were NOT relayed; resynced from "
            "the current time. Backfill them from MongoDB if needed; keep the relay's downtime within the oplog "
            f"window (a larger oplog: LOCAL_MONGO_OPLOG_ENTRIES / replSetResizeOplog). Server: {str(exc)[:200]}")
        log.error("CDC relay: %s", self.history_lost_error)
        self.status.update(force=True, state="resyncing", last_error=self.history_lost_error, history_lost=lost)

    def _relay_batch(self, stream: Any, producer: TopicProducer) -> int:
        events = []
        event = stream.try_next()  # at most one getMore, which waits for the next write
        while event is not None:
            events.append(event)
            # The rest of what that getMore brought, and no other: one that found nothing would wait out
            # AWAIT_MS before these were delivered.
            event = stream.try_next() if len(events) < MAX_BATCH and mongo.has_buffered(stream) else None
        if not events:
            return 0
        set_aside = self._deliver(producer, events)
        self._unsaved = stream.resume_token  # every event of the batch acknowledged: its token may be stored
        if time.monotonic() - self._saved_at >= TOKEN_SAVE_S:
            self._save_token()
        self.delivered = True
        self.status.update(events=self.status.values["events"] + len(events), last_event_at=time.time(),
                           set_aside=self.status.values["set_aside"] + set_aside)
        return len(events)

    def _save_token(self) -> None:
        if self._unsaved is not None:
            self.tokens.save(self._unsaved)
            self._saved, self._unsaved, self._saved_at = self._unsaved, None, time.monotonic()

    def _follow_idle_position(self, position: Mapping[str, Any] | None, first_idle_poll: bool) -> None:
        """On an empty poll: what was delivered is stored at once; the position past the oplog's other entries
        (every event up to it delivered) at most every IDLE_TOKEN_SAVE_S."""
        if position is not None and position != self._saved and self._unsaved is None:
            self._unsaved = position
        if first_idle_poll or time.monotonic() - self._saved_at >= IDLE_TOKEN_SAVE_S:
            self._save_token()

    def _deliver(self, producer: TopicProducer, events: list[Mapping[str, Any]]) -> int:
        """Send every event and wait until Kafka acknowledged each; returns how many went as oversize
        stubs. Raises :class:`DeliveryError` if any was not acknowledged."""
        limit = self.limit or TRADES_MAX_MESSAGE_BYTES
        batch, stubs = [], 0
        for event in events:
            key, value, oversize = encode_for_topic(event, limit)
            if oversize:
                stubs += 1
                self._log_oversize(event)
            batch.append(Outgoing(key, value, commit_time_ms(event),
                                  partial(oversize_stub, event, len(value), TRADES_MAX_MESSAGE_BYTES)))
        try:
            producer.deliver(batch)
        except RefusedAsTooLarge as exc:
            # The topic takes less than we thought (made elsewhere, or changed). Kafka fails the whole request,
            # so the largest refused message is the one too large: below it from now on, and the batch again.
            self.limit = max(MIN_LIMIT_BYTES, max(exc.sizes) - 1)
            raise LimitLowered(f"Kafka refused a message of {max(exc.sizes):,} bytes as too large for "
                               f"{self.settings.trades_topic}; events over {self.limit:,} bytes go as oversize "
                               "messages from now on; sending the batch again") from exc
        return stubs

    def _log_oversize(self, event: Mapping[str, Any]) -> None:
        log.error("change event %s is too large for topic %s; sent as an oversize message (set aside downstream as "
                  "event_too_large; the document stays in MongoDB)", str(event.get("_id"))[:120], self.settings.trades_topic)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Both Kafka clients log every reconnect attempt as an error; our own one-line messages say what matters.
    logging.getLogger("kafka").setLevel(logging.CRITICAL)
    CLIENT_LOG.setLevel(logging.CRITICAL)
    settings = Settings.from_env()
    relay = ChangeRelay(settings)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: relay.stop.set())
    relay.run()


if __name__ == "__main__":
    main()
