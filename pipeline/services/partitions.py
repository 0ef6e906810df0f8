"""The Kafka partition of each key, computed once: what kafka-python's default partitioner would pick."""

from __future__ import annotations

from kafka import KafkaProducer
from kafka.partitioner.default import murmur2


class KeyPartitions:
    """The partition of each key, as kafka-python's default partitioner picks it (murmur2 of the key over the
    sorted partitions), computed once per key and partition count: the producer's pure-Python murmur2 and
    metadata look-ups cost 2–3 µs a record (``python -m bench.relay``), a tenth of the relay's whole cost."""

    MAX_KEYS = 10_000  # symbols are few; a flood of made-up ones must not grow the cache without end

    def __init__(self, producer: KafkaProducer, topic: str) -> None:
        self.producer = producer
        self.topic = topic
        self._partitions: list[int] = []
        self._of: dict[bytes, int] = {}

    def refresh(self) -> None:
        """Read the topic's partitions again (once a batch: a topic can gain partitions while the relay runs)."""
        partitions = sorted(self.producer.partitions_for(self.topic) or ())
        if partitions != self._partitions:
            self._partitions, self._of = partitions, {}

    def __call__(self, key: bytes | None) -> int | None:
        """The key's partition; None (the producer picks) for no key, or before the topic's partitions are known."""
        if key is None or not self._partitions:
            return None
        partition = self._of.get(key)
        if partition is None:
            if len(self._of) >= self.MAX_KEYS:
                self._of.clear()
            partition = self._of[key] = self._partitions[(murmur2(key) & 0x7FFFFFFF) % len(self._partitions)]
        return partition
