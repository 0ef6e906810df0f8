"""Change events -> trades: parsing and validation as one Spark SQL query (a pure transformation).

Input: rows with the Kafka source's columns (``value`` binary, ``topic``, ``partition``, ``offset``,
``timestamp``). Each message is one change of ``stockmarket.transaction`` in one of two envelopes:
- a MongoDB change event (relaxed Extended JSON), as our relay (or the MongoDB Kafka Connector) publishes it;
- a Debezium MongoDB connector envelope (``CDC_MODE=debezium``, JsonConverter without schemas):
  ``{"after": "<the document as JSON text>", "updateDescription": ..., "source": {"ts_ms", "ord", ...},
  "op": "c"|"u"|"r"|"d", "ts_ms": ...}``, ``after`` in the Java driver's strict Extended JSON (dates as
  ``{"$date": <epoch ms>}``). It is told apart by its ``source`` block.
Output: one row per message with the parsed trade and a ``reject_reason`` (null for a valid trade or a delete).

Semantics:
- every insert, update or replace is one *tick* at the document's price; a delete changes nothing
  (``op = 'delete'``, counted, not rejected);
- a tick's identity is the change's position in the oplog, the same when a connector re-sends it after
  a restart: the resume token ``_id._data`` of a change event; ``debezium/<source.ts_ms>/<source.ord>/<_id>``
  of a Debezium envelope, which carries no resume token (``ord`` is the cluster time's increment, ``ts_ms``
  the change's wall time, else its cluster time; the document id keeps apart the changes of one transaction,
  which share a cluster time: two changes of one document in one transaction would share an id);
- its event time is the document's trade time (``trade_time``; also ``tradeTime``/``timestamp``):
  ``{"$date": ...}``, an ISO-8601 string or epoch milliseconds. A document without a trade time gets the
  time the database recorded the change (``clusterTime``; Debezium's ``source.ts_ms``);
- Debezium's ops map onto change events': ``c`` and ``r`` (a snapshot read) are inserts, ``u`` an update
  (Debezium reports a replace as ``u`` too; with ``capture.mode=change_streams_update_full`` the whole
  document is in ``after``), ``d`` a delete, any other ``debezium:<op>`` (unsupported); the document is
  ``after``, so an update without it is ``missing_document`` as for a change event without ``fullDocument``;
- the original design's shape is accepted: ``stock`` for ``symbol``, ``type`` for ``side``, price as
  a numeric string; a missing quantity counts as 1;
- prices are exact decimals with 4 places, so sums and VWAP do not depend on batch boundaries.

Written as SQL text on purpose: a micro-batch plan built from Python Column objects costs hundreds
of py4j calls per batch; one ``spark.sql`` call costs one.
"""

from __future__ import annotations

from collections.abc import Iterable

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from pipeline.domain.reasons import DEFAULT_MAX_CLOCK_SKEW_S, MAX_PRICE, MAX_QUANTITY, SHAPE_REASONS

# Every document field is read as text: a wrong type then yields a reason instead of a null row. ``op``,
# ``after`` and ``source`` are Debezium's (``after`` is the document as JSON text; an object is taken as its text
# too). ``_UNPARSED`` is where the parser puts a message it could not read whole (Spark's corrupt-record column).
_UNPARSED = "stockdash_unparsed"
_EVENT_SCHEMA = ("struct<_id:string,operationType:string,clusterTime:string,fullDocument:map<string,string>,"
                 f"op:string,after:string,source:string,stockdashOversize:string,{_UNPARSED}:string>")
# NaN and Infinity are not JSON: read strictly, a message holding them is not read whole (and is then not JSON).
_EVENT_OPTIONS = f"map('columnNameOfCorruptRecord', '{_UNPARSED}', 'allowNonNumericNumbers', 'false')"
# Whether a message is a JSON object. Asking it of every message parsed each one a second time, whole (an eighth of
# the parse's time); now only a message the envelope's parse could not read whole is asked (a strict parser, which
# also refuses a top-level array or scalar): the same reasons on 4,077 hostile, fuzzed and real messages.
_NOT_JSON = f"CASE WHEN e IS NOT NULL AND e.{_UNPARSED} IS NULL THEN false ELSE json_object_keys(raw) IS NULL END"


def _maybe_object(field: str) -> str:
    """SQL: whether a text may hold a JSON object. Each ``get_json_object`` parses its text afresh (a parser and
    an 8 KiB buffer a call; over half the Spark executors' time in this query once), so a path is only looked up
    in a text with a ``{``: any other text has no object to find it in, and the lookup's NULL is known.
    (``chr(123)`` is ``{``, which the query text cannot hold: ``spark.sql`` formats it with its arguments.)"""
    return f"instr({field}, chr(123)) > 0"


def _number(field: str) -> str:
    """SQL for a decimal from a number, a numeric string or Extended JSON {"$numberX": "..."}."""
    extended = ", ".join(f"get_json_object({field}, '$.$number{kind}')" for kind in ("Decimal", "Double", "Long", "Int"))
    return f"try_cast(CASE WHEN {_maybe_object(field)} THEN coalesce({extended}, {field}) ELSE {field} END AS DECIMAL(18,4))"


# Epoch numbers outside 1900..9999 are not times: converting them would overflow and fail the whole
# batch (found by the fuzz test), so they become NULL, i.e. "invalid_trade_time".
_EPOCH_MILLIS_RANGE = (-2_208_988_800_000, 253_402_300_799_999)


def _epoch_millis(expression: str) -> str:
    low, high = _EPOCH_MILLIS_RANGE
    return f"CASE WHEN {expression} BETWEEN {low} AND {high} THEN timestamp_millis({expression}) END"


# A message the CDC relay wrote in place of a change event too large for the topic (see services.relay).
# The envelope's parse tells whether the key is there at all; only then is the message parsed again for it.
_OVERSIZE = "oversize_marked AND get_json_object(raw, '$.stockdashOversize.bytes') IS NOT NULL"
# The query's clock: ``current_timestamp()``, the batch's time, as epoch microseconds. Spark writes it into the
# Java it generates for a stage as a literal, new every batch, so each batch compiled the ~1,900-line parse
# stage again (janino 50-240 ms, twice, then the JIT on the new class). Inside ``java_method`` (an expression
# Spark evaluates without generating code) it is read at run time, and the stage's code stays the same.
BATCH_CLOCK = "CAST(java_method('java.lang.String', 'valueOf', unix_micros(current_timestamp())) AS BIGINT)"
# A real-time batch runs for minutes and ``current_timestamp()`` is its start: a query in real-time mode
# takes the change's own time, and whoever reads its output bounds the trade time by a clock of its own.
NO_CLOCK = "253402214400000000"  # 9999-12-31, in epoch microseconds
# The database clock, never ahead of this query's: a forged cluster time in the future must neither move
# the replay horizon nor widen the trade-time check.
_DB_TIME = "timestamp_micros(least(unix_micros(coalesce(cluster_time, ingest_time)), {clock}))"
_DEDUPE_TIME = f"timestamp_micros({BATCH_CLOCK})"

PARSE_SQL = f"""
WITH events AS (
  SELECT CAST(value AS STRING) AS raw, from_json(CAST(value AS STRING), '{_EVENT_SCHEMA}', {_EVENT_OPTIONS}) AS e,
         topic, partition, offset, timestamp AS ingest_time
  FROM {{messages}}
), envelopes AS (
  SELECT *, e.operationType IS NULL AND e.source IS NOT NULL AS debezium,
    CASE WHEN {_maybe_object("e.source")} THEN get_json_object(e.source, '$.ts_ms') END AS source_ts_ms,
    CASE WHEN {_maybe_object("e.source")} THEN get_json_object(e.source, '$.ord') END AS source_ord,
    CASE WHEN {_maybe_object("e.clusterTime")}
      THEN try_cast(get_json_object(e.clusterTime, '$.$timestamp.t') AS BIGINT) END AS cluster_seconds
  FROM events
), documents AS (
  SELECT *,
    CASE WHEN debezium THEN from_json(e.after, 'map<string,string>') ELSE e.fullDocument END AS doc,
    CASE WHEN NOT debezium THEN lower(e.operationType)
      WHEN e.op IN ('c', 'r') THEN 'insert' WHEN e.op = 'u' THEN 'update' WHEN e.op = 'd' THEN 'delete'
      ELSE concat('debezium:', e.op)
    END AS op
  FROM envelopes
), fields AS (
  SELECT raw, topic, partition, offset, ingest_time, op,
    {_NOT_JSON} AS not_json,
    doc IS NULL AS no_document,
    CASE WHEN {_maybe_object("doc['_id']")} THEN coalesce(get_json_object(doc['_id'], '$.$oid'), doc['_id'])
      ELSE doc['_id'] END AS trade_id,
    upper(trim(coalesce(doc['symbol'], doc['stock']))) AS symbol,
    lower(trim(coalesce(doc['side'], doc['type']))) AS side,
    doc['price'] AS price_raw,
    doc['quantity'] AS quantity_raw,
    coalesce(doc['trade_time'], doc['tradeTime'], doc['timestamp']) AS time_raw,
    CASE WHEN debezium THEN {_epoch_millis("try_cast(source_ts_ms AS BIGINT)")}
      ELSE timestamp_seconds(CASE WHEN cluster_seconds BETWEEN 0 AND 253402300799 THEN cluster_seconds END)
    END AS cluster_time,
    debezium, source_ts_ms, source_ord, e._id AS change_id, e.stockdashOversize IS NOT NULL AS oversize_marked
  FROM documents
), identified AS (
  SELECT *,
    left(coalesce(
      CASE WHEN debezium AND source_ts_ms IS NOT NULL AND source_ord IS NOT NULL
        THEN concat_ws('/', 'debezium', source_ts_ms, source_ord, trade_id) END,
      CASE WHEN {_maybe_object("change_id")} THEN get_json_object(change_id, '$._data') END, change_id,
      concat_ws('/', 'kafka', topic, partition, offset)), 512) AS event_id
  FROM fields
), typed AS (
  SELECT *,
    {_number("price_raw")} AS price,
    {_number("quantity_raw")} AS quantity_number,
    CASE WHEN {_maybe_object("time_raw")} THEN coalesce(get_json_object(time_raw, '$.$date'), time_raw)
      ELSE time_raw END AS date_text
  FROM identified
), dated AS (
  SELECT *, CASE WHEN {_maybe_object("date_text")} THEN get_json_object(date_text, '$.$numberLong') END AS date_millis
  FROM typed
), timed AS (
  SELECT *,
    CASE
      WHEN time_raw IS NULL THEN cluster_time
      WHEN date_millis IS NOT NULL THEN {_epoch_millis("try_cast(date_millis AS BIGINT)")}
      WHEN date_text RLIKE '^-?[0-9]+$' AND length(date_text) >= 10
        THEN {_epoch_millis("try_cast(date_text AS BIGINT)")}
      ELSE try_cast(date_text AS TIMESTAMP)
    END AS trade_time
  FROM dated
)
SELECT event_id, op, trade_id, symbol, side, price,
  CAST(coalesce(quantity_number, 1) AS BIGINT) AS quantity,
  trade_time, cluster_time, ingest_time, {_DB_TIME} AS db_time, topic, partition, offset, raw,
  CASE
    WHEN not_json THEN 'not_json'
    WHEN {_OVERSIZE} THEN 'event_too_large'
    WHEN op IS NULL OR op NOT IN ('insert', 'update', 'replace', 'delete') THEN 'unsupported_operation'
    WHEN op = 'delete' THEN NULL
    WHEN no_document THEN 'missing_document'
    WHEN symbol IS NULL OR symbol = '' THEN 'missing_symbol'
    WHEN price_raw IS NULL THEN 'missing_price'
    WHEN price IS NULL OR price <= 0 OR price > {MAX_PRICE} THEN 'invalid_price'
    WHEN quantity_raw IS NOT NULL AND NOT coalesce(quantity_number > 0 AND quantity_number <= {MAX_QUANTITY}
                                                   AND quantity_number = floor(quantity_number), false)
      THEN 'invalid_quantity'
    WHEN side IS NOT NULL AND side NOT IN ('buy', 'sell') THEN 'invalid_side'
    WHEN trade_time IS NULL THEN 'invalid_trade_time'
    WHEN trade_time < TIMESTAMP '2000-01-01 00:00:00'
      OR trade_time > {_DB_TIME} + make_dt_interval(0, 0, 0, {{max_skew_s}}) THEN 'absurd_trade_time'
  END AS reject_reason
FROM timed
"""


# Whether a symbol is listed is checked per micro-batch (the list can change while the stream runs);
# it ranks after the reasons about the message's shape and before those about price, quantity, time.
_SYMBOL_CHECK = f"""
CASE
  WHEN op = 'delete' OR reject_reason IN ({", ".join(f"'{reason}'" for reason in SHAPE_REASONS)}) THEN reject_reason
  WHEN NOT array_contains(split('{{known}}', ','), symbol) THEN 'unknown_symbol'
  ELSE reject_reason
END
"""


def parse_change_events(messages: DataFrame, known_symbols: Iterable[str] | None = None,
                        max_skew_s: int = DEFAULT_MAX_CLOCK_SKEW_S, clock: str = BATCH_CLOCK) -> DataFrame:
    """Parse and validate; one output row per input message (see the module docstring).

    Works on a streaming DataFrame too (the job parses in the stream's plan, built once). Without
    ``known_symbols`` the listed-symbol check is left to :func:`check_symbols`. A trade dated more than
    ``max_skew_s`` ahead of the database clock is ``absurd_trade_time``.
    """
    # The skew goes into the text (a whole number): the plan is built once, and no parameter marker is needed.
    sql = PARSE_SQL.replace("{max_skew_s}", str(int(max_skew_s))).replace("{clock}", clock)
    parsed = messages.sparkSession.sql(sql, messages=messages)
    return parsed if known_symbols is None else check_symbols(parsed, known_symbols)


def check_symbols(parsed: DataFrame, known_symbols: Iterable[str]) -> DataFrame:
    """Reject ticks whose symbol is not listed in ``stockmarket.stock``."""
    known = ",".join(sorted(symbol for symbol in set(known_symbols) if symbol.replace("-", "").replace("&", "").isalnum()))
    return parsed.withColumn("reject_reason", F.expr(_SYMBOL_CHECK.format(known=known)))


def valid_ticks(parsed: DataFrame) -> DataFrame:
    return parsed.where("reject_reason IS NULL AND op IN ('insert', 'update', 'replace')")



def deduplicate(parsed: DataFrame, horizon_seconds: int) -> DataFrame:
    """Drop redelivered change events by event id, keeping ids for ``horizon_seconds`` of *this query's*
    time (the batch's clock).

    CDC is at-least-once: after a restart the relay (or connector) re-sends what followed its last
    stored position, with the same ids, so a bounded horizon catches every replay while the state stays
    small. Spark keeps that state in the checkpoint: exactly once across crashes.

    The query's clock, not the database's: Spark's dedupe drops every row behind its watermark, first seen
    or not, and a watermark on database time would drop a new event of a partition lagging the others by
    more than the horizon, unseen. On the batch's clock no row is ever behind (each batch is stamped with
    its own time), and an id is still remembered for the horizon even when nothing flows (the watermark
    moves only with new rows). An event far behind in database time is set aside by the batch handler
    instead (``behind_replay_horizon``): it may be a replay older than what the state remembers.
    """
    return (
        parsed.withColumn("dedupe_time", F.expr(_DEDUPE_TIME))
        .withWatermark("dedupe_time", f"{horizon_seconds} seconds")
        .dropDuplicatesWithinWatermark(["event_id"])
        .drop("dedupe_time")
    )
