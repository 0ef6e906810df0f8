"""Change events as Kafka messages: the relay's own JSON writer gives the very bytes json_util gives, for
trades as they come and for every hostile document and any BSON value, as the relay decodes them."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import bson
from bson import Binary, Code, Decimal128, Int64, MaxKey, MinKey, ObjectId, Regex, Timestamp, json_util
from bson.codec_options import CodecOptions, DatetimeConversion
from bson.json_util import RELAXED_JSON_OPTIONS
from bson.son import SON
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.services.change_events import encode_for_topic, relaxed_json
from tests.integration.hostile_inputs import documents

# As the relay reads change events (ChangeRelay._relay_once).
RELAY_CODEC: CodecOptions = CodecOptions(datetime_conversion=DatetimeConversion.DATETIME_AUTO,
                                         unicode_decode_error_handler="replace")


def as_relayed(document: dict) -> dict:
    """An insert's change event around ``document``, through BSON and back as the relay decodes it."""
    event = {"_id": {"_data": "6b0794eb0000001a"}, "operationType": "insert", "fullDocument": document,
             "documentKey": {"_id": document.get("_id")}, "clusterTime": Timestamp(1795658987, 26),
             "wallTime": datetime(2026, 11, 26, 2, 9, 47, 459000), "ns": {"db": "stockmarket", "coll": "transaction"}}
    return bson.decode(bson.encode(event), RELAY_CODEC)


def reference(event: object) -> bytes:
    return json_util.dumps(event, json_options=RELAXED_JSON_OPTIONS).encode()


def test_a_trade_is_written_as_json_util_writes_it():
    event = as_relayed({"_id": ObjectId(), "symbol": "INFY", "side": "buy", "price": 1523.45, "quantity": 10,
                        "trade_time": datetime.now(timezone.utc)})
    assert relaxed_json(event) == reference(event)
    assert encode_for_topic(event, 10_000) == (b"INFY", reference(event), False)


def test_every_hostile_document_is_written_as_json_util_writes_it():
    at = iter(datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(milliseconds=i) for i in range(10_000))
    for hostile in documents("INFY", lambda: next(at)):
        if hostile.document is None:
            continue
        try:
            event = as_relayed({"_id": ObjectId(), **hostile.document})
        except (bson.errors.InvalidDocument, OverflowError):
            continue  # refused by BSON itself: never a change event
        assert relaxed_json(event) == reference(event), hostile.kind


def test_unusual_values_go_through_json_util():
    odd = {"nan": float("nan"), "inf": float("-inf"), "negative zero": -0.0, "int64": Int64(2**40),
           "decimal": Decimal128("101.1234"), "binary": Binary(b"\x00\xff", 0), "uuid": Binary(uuid.UUID(int=7).bytes, 4),
           "regex": Regex("^a", "i"), "code": Code("x"), "min": MinKey(), "max": MaxKey(), "empty": {}, "none": [],
           "before 1970": datetime(1969, 12, 31, 23, 59, 59), "far": datetime(9999, 12, 31, 23, 59, 59, 999000),
           "whole second": datetime(2026, 1, 1), "aware": datetime(2026, 1, 1, tzinfo=timezone.utc),
           "son": SON([("b", 1), ("a", 2)]), "unicode": "₹ é \u2028 \x00 \"q\"", "nested": [[{"x": [1, None, True]}]]}
    assert relaxed_json(odd) == reference(odd)
    not_a_string_key: dict = {1: "one"}
    assert relaxed_json(not_a_string_key) == reference(not_a_string_key)
    assert relaxed_json(SON([("a", 1)])) == reference(SON([("a", 1)]))


texts = st.text(st.characters(blacklist_categories=["Cs"]))  # BSON strings are UTF-8: no lone surrogates
names = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=8)
bson_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats() | texts
    | st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31))
    | st.binary(min_size=12, max_size=12).map(ObjectId)
    | st.builds(Timestamp, st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(names, children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(names, bson_values, max_size=6))
def test_any_bson_document_is_written_as_json_util_writes_it(document: dict):
    event = as_relayed(document)
    assert relaxed_json(event) == reference(event)
