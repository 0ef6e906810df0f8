"""The CDC relay's Kafka producer: a batch of change events sent and acknowledged, or an error saying why not.

It is librdkafka's (``confluent-kafka``), not kafka-python's like the project's other Kafka clients, because the
relay sends small batches many times a second and kafka-python's I/O loop, written in Python, costs per
round trip what librdkafka's C threads do not. Measured 2026-11-27 on the stack's broker, 1,000 messages a
second in 200 rounds of 5, each round flushed (the relay's pattern at 1,000 trades/s): kafka-python 49-50 % of
a core and a round 2.9 ms at p50; confluent-kafka 9-10 % and 1.0-1.1 ms. In the running relay at that rate:
51 % of a core for the whole process, half of it kafka-python's sender thread.

Partitions as Kafka's Java producer picks them (``murmur2_random``: murmur2 of the key over all partitions),
as Debezium's path and the relay before this module did: one symbol stays on one partition.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from pipeline.sinks.topics import TRADES_MAX_MESSAGE_BYTES

# librdkafka reports every failed reconnect; the relay's own one-line messages say what matters.
CLIENT_LOG = logging.getLogger("stockdash.relay.librdkafka")
TOO_LARGE = (KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.RECORD_LIST_TOO_LARGE)
CLOSE_TIMEOUT_S = 5.0


class DeliveryError(RuntimeError):
    """Kafka did not acknowledge a message of the batch: its resume token must not be stored."""


class RefusedAsTooLarge(DeliveryError):
    """Kafka refused messages as too large for the topic; ``sizes`` are theirs, in bytes."""

    def __init__(self, sizes: Sequence[int]) -> None:
        super().__init__(f"Kafka refused {len(sizes)} message(s) as too large, the largest {max(sizes):,} bytes")
        self.sizes = sizes


@dataclass(frozen=True)
class Outgoing:
    key: bytes | None
    value: bytes
    timestamp_ms: int | None
    stub: Callable[[], bytes]  # sent instead if the producer itself refuses ``value`` as too large


class TopicProducer:
    """Sends batches to one topic and waits for every acknowledgement (acks=all)."""

    def __init__(self, bootstrap: str, topic: str, delivery_timeout_s: float, client_id: str = "stockdash-cdc-relay") -> None:
        self.topic = topic
        self.delivery_timeout_s = delivery_timeout_s
        self.last_client_error: str | None = None  # the client's latest complaint (broker down, ...), for messages
        timeout_ms = int(delivery_timeout_s * 1000)
        self._producer = Producer({
            "bootstrap.servers": bootstrap,
            "client.id": client_id,
            "acks": "all",
            "linger.ms": 0,  # freshness first: a batch is already formed by draining the change stream
            "message.max.bytes": TRADES_MAX_MESSAGE_BYTES + 64 * 1024,
            "message.timeout.ms": timeout_ms,
            "request.timeout.ms": min(30_000, timeout_ms),
            "partitioner": "murmur2_random",
            "logger": CLIENT_LOG,
            "error_cb": self._client_error,
        })

    def _client_error(self, error: KafkaError) -> None:
        self.last_client_error = error.str()

    def deliver(self, batch: Sequence[Outgoing]) -> None:
        """Send every message and wait until Kafka acknowledged each. Raises :class:`RefusedAsTooLarge` if the
        broker refused some as too large (nothing of the batch counts as delivered then), or
        :class:`DeliveryError` if any other was not acknowledged."""
        acknowledged, refused, errors = 0, [], []

        def delivered(error: KafkaError | None, message: Message) -> None:
            nonlocal acknowledged
            if error is None:
                acknowledged += 1
            elif error.code() in TOO_LARGE:
                refused.append(len(message.value() or b""))
            else:
                errors.append(error)

        for outgoing in batch:
            self._produce(outgoing, delivered)
        pending = self._producer.flush(self.delivery_timeout_s + 10)
        if refused:
            raise RefusedAsTooLarge(refused)
        if acknowledged < len(batch):
            why = errors[0].str() if errors else f"none after {self.delivery_timeout_s + 10:.0f} s, {pending} still queued"
            hint = f"; client: {self.last_client_error}" if self.last_client_error else ""
            raise DeliveryError(f"Kafka did not acknowledge {len(batch) - acknowledged} of {len(batch)} messages "
                                f"({why}{hint}); the resume token was not stored")

    def _produce(self, outgoing: Outgoing, delivered: Callable[[KafkaError | None, Message], None]) -> None:
        try:
            self._send(outgoing.key, outgoing.value, outgoing.timestamp_ms, delivered)
        except KafkaException as exc:
            if exc.args[0].code() not in TOO_LARGE:
                raise DeliveryError(f"the Kafka client refused a message: {exc.args[0].str()}") from exc
            # Over the producer's own limit: cannot happen below the relay's, but never drop it.
            self._send(outgoing.key, outgoing.stub(), outgoing.timestamp_ms, delivered)

    def _send(self, key: bytes | None, value: bytes, timestamp_ms: int | None,
              delivered: Callable[[KafkaError | None, Message], None]) -> None:
        while True:
            try:
                self._producer.produce(self.topic, value=value, key=key, timestamp=timestamp_ms or 0,
                                       on_delivery=delivered)
                return
            except BufferError:  # the client's queue is full: let it drain, then go on
                self._producer.poll(0.1)

    def close(self) -> None:
        """Deliver what is queued (for a while), then drop the rest: the caller stored no token for it."""
        self._producer.flush(CLOSE_TIMEOUT_S)
        self._producer.purge()
        self._producer.poll(0)
