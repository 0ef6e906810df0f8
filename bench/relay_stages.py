"""Stage 1 of ``python -m bench.relay``: each stage of the CDC relay timed alone over the same change events
(CPU µs a record, best of the repeats), the relay as it was (json_util, kafka-python with its key partitioner and
pure-Python CRC-32C) against the relay as it is (librdkafka's producer, ``pipeline.services.producer``)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from bson import decode, json_util
from bson.codec_options import CodecOptions, DatetimeConversion
from bson.json_util import RELAXED_JSON_OPTIONS
from bson.raw_bson import RawBSONDocument
from kafka import KafkaProducer
from kafka.record import default_records
from kafka.record import util as record_util

from pipeline.domain.stocks import NSE_STOCKS
from pipeline.services.change_events import _symbol_key, commit_time_ms, relaxed_json
from pipeline.services.producer import Outgoing, TopicProducer
from pipeline.settings import Settings
from pipeline.sinks import mongo
from pipeline.sinks.topics import TRADES_MAX_MESSAGE_BYTES
from simulator.trades import RandomWalk

# What the relay reads with (see ChangeRelay._relay_once).
RELAY_CODEC: CodecOptions = CodecOptions(datetime_conversion=DatetimeConversion.DATETIME_AUTO,
                                         unicode_decode_error_handler="replace")
PURE_CRC = record_util.crc32c_py
C_CRC = record_util.crc32c_c or record_util.crc32c_py  # C when the crc32c package is installed


@dataclass
class Timing:
    cpu_us: float  # CPU of this process (every thread) per record
    wall_us: float


def _best(run: Callable[[], object], records: int, repeats: int) -> Timing:
    best: Timing | None = None
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        run()
        timing = Timing((time.process_time() - cpu) / records * 1e6, (time.perf_counter() - wall) / records * 1e6)
        best = timing if best is None or timing.cpu_us < best.cpu_us else best
    assert best is not None
    return best


# -- 1. stages -------------------------------------------------------------------------------------------------
def insert_trades(settings: Settings, count: int, seed: int = 1) -> None:
    walk = RandomWalk({s.symbol: s.reference_price for s in NSE_STOCKS}, seed=seed)
    with mongo.client(settings) as client:
        transactions = client[settings.database]["transaction"]
        for start in range(0, count, 5000):
            transactions.insert_many([walk.next_trade().to_document() for _ in range(min(5000, count - start))])


def read_events(settings: Settings, count: int, raw: bool) -> tuple[list, Timing]:
    """``count`` new trades' change events, read from a change stream as the relay reads them (decoded) or
    as RawBSONDocument; and the reading's cost."""
    with mongo.client(settings, **({"document_class": RawBSONDocument} if raw else dict(
            datetime_conversion=DatetimeConversion.DATETIME_AUTO, unicode_decode_error_handler="replace"))) as client:
        time.sleep(2.1)  # the stand-in's "now" is the wall clock less 2 s: start after the events of earlier reads
        start_at = mongo.initial_operation_time(client)
        insert_trades(settings, count)
        events: list = []
        with mongo.open_change_stream(client[settings.database]["transaction"], None, start_at) as stream:
            wall, cpu = time.perf_counter(), time.process_time()
            deadline = time.monotonic() + 120
            while len(events) < count and time.monotonic() < deadline:
                event = stream.try_next()
                if event is not None:
                    events.append(event)
            timing = Timing((time.process_time() - cpu) / count * 1e6, (time.perf_counter() - wall) / count * 1e6)
    return events[-count:], timing


def _producer(settings: Settings, **overrides: object) -> KafkaProducer:
    config = dict(bootstrap_servers=settings.effective_kafka_bootstrap, acks="all", linger_ms=0, batch_size=256 * 1024,
                  max_request_size=TRADES_MAX_MESSAGE_BYTES + 64 * 1024, retries=5)
    return KafkaProducer(**{**config, **overrides})


@contextlib.contextmanager
def crc(implementation: Callable) -> Iterator[None]:
    """kafka-python's CRC-32C of record batches: the C one (crc32c package) or its pure-Python fallback."""
    saved = default_records.calc_crc32c  # bound when kafka-python was imported
    default_records.calc_crc32c = implementation
    try:
        yield
    finally:
        default_records.calc_crc32c = saved


def send_all(producer: KafkaProducer, topic: str, records: list[tuple[bytes | None, bytes]]) -> tuple[float, float]:
    """Send and flush with kafka-python; returns (CPU of this thread; CPU of the whole, every thread) in s."""
    cpu, calls = time.process_time(), time.thread_time()
    futures = [producer.send(topic, key=key, value=value) for key, value in records]
    producer.flush(timeout=60)
    calls = time.thread_time() - calls
    failed = [f for f in futures if not f.is_done or f.failed()]
    if failed:
        raise RuntimeError(f"{len(failed)} of {len(futures)} not acknowledged")
    return calls, time.process_time() - cpu


def deliver_all(producer: TopicProducer, records: list[tuple[bytes | None, bytes]]) -> tuple[float, float]:
    """The same with the relay's producer."""
    batch = [Outgoing(key, value, None, lambda: b"") for key, value in records]
    cpu, calls = time.process_time(), time.thread_time()
    producer.deliver(batch)
    return time.thread_time() - calls, time.process_time() - cpu


def stages(settings: Settings, count: int, repeats: int) -> list[tuple[str, float, float]]:
    """(stage, before µs, after µs) per record, CPU."""
    events, read_dict = read_events(settings, count, raw=False)
    raws, read_raw = read_events(settings, count, raw=True)
    rows = [("read: change stream (getMore + BSON decode)", read_dict.cpu_us, read_dict.cpu_us)]
    raw_then_decode = _best(lambda: [decode(r.raw, RELAY_CODEC) for r in raws], count, repeats)
    rows.append(("  (read as RawBSONDocument + decode: info)", read_dict.cpu_us, read_raw.cpu_us + raw_then_decode.cpu_us))
    key = _best(lambda: [_symbol_key(e) for e in events], count, repeats).cpu_us
    rows.append(("key (symbol)", key, key))
    old = _best(lambda: [json_util.dumps(e, json_options=RELAXED_JSON_OPTIONS).encode() for e in events], count, repeats)
    new = _best(lambda: [relaxed_json(e) for e in events], count, repeats)
    assert all(relaxed_json(e) == json_util.dumps(e, json_options=RELAXED_JSON_OPTIONS).encode() for e in events)
    rows.append(("encode: relaxed Extended JSON", old.cpu_us, new.cpu_us))
    stamp = _best(lambda: [commit_time_ms(e) for e in events], count, repeats).cpu_us
    rows.append(("timestamp (wallTime)", stamp, stamp))
    records = [(_symbol_key(e), relaxed_json(e)) for e in events]

    old_calls, old_whole = _produce(settings, records, repeats, PURE_CRC)
    c_calls, c_whole = _produce(settings, records, repeats, C_CRC)
    new_calls, new_whole = _deliver(settings, records, repeats)
    rows.append(("send: the relay's thread (partition, append, acks)", old_calls, new_calls))
    rows.append(("client's own threads: framing, CRC-32C, I/O", old_whole - old_calls, new_whole - new_calls))
    rows.append(("  (kafka-python with the C CRC-32C, whole send: info)", old_whole, c_whole))
    return rows


def _produce(settings: Settings, records: list[tuple[bytes | None, bytes]], repeats: int,
             implementation: Callable) -> tuple[float, float]:
    """kafka-python's (this thread, whole) in µs a record, best of ``repeats``, with this CRC-32C."""
    topic = settings.trades_topic
    producer = _producer(settings)
    try:
        producer.send(topic, key=b"warm-up", value=b"{}").get(timeout=60)
        with crc(implementation):
            return _best_of(lambda: send_all(producer, topic, records), len(records), repeats)
    finally:
        producer.close(timeout=5)


def _deliver(settings: Settings, records: list[tuple[bytes | None, bytes]], repeats: int) -> tuple[float, float]:
    """The relay's producer: (this thread, whole) in µs a record, best of ``repeats``."""
    producer = TopicProducer(settings.effective_kafka_bootstrap, settings.trades_topic, 60.0, client_id="bench")
    try:
        producer.deliver([Outgoing(b"warm-up", b"{}", None, lambda: b"")])
        return _best_of(lambda: deliver_all(producer, records), len(records), repeats)
    finally:
        producer.close()


def _best_of(send: Callable[[], tuple[float, float]], count: int, repeats: int) -> tuple[float, float]:
    best = (float("inf"), float("inf"))
    for _ in range(repeats):
        calls, whole = send()
        best = min(best, (calls / count * 1e6, whole / count * 1e6), key=lambda pair: pair[1])
    return best


def print_stages(rows: list[tuple[str, float, float]]) -> None:
    print(f"\n{'stage (CPU µs a record)':<50} {'before':>8} {'after':>8} {'ratio':>7}")
    total_old = total_new = 0.0
    for name, old, new in rows:
        info = name.startswith(" ")
        if not info:
            total_old, total_new = total_old + old, total_new + new
        ratio = f"{old / new:.1f}x" if new > 0.05 else "–"
        print(f"{name:<50} {old:>8.1f} {new:>8.1f} {ratio:>7}")
    print(f"{'total':<50} {total_old:>8.1f} {total_new:>8.1f} {total_old / total_new:>6.1f}x")
    print(f"{'records/s on one core':<50} {1e6 / total_old:>8,.0f} {1e6 / total_new:>8,.0f}")


# -- 2. catch-up ---------------------------------------------------------------------------------------------
