"""Round-trip properties: everything the protocol layer encodes decodes back unchanged.

Round trips alone cannot catch a misreading of the wire format that encoder and decoder
share (see ``test_protocol_golden.py`` for that); they catch asymmetries, lost values,
range and sign mistakes, and byte-order mix-ups between the two directions.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import (
    ATTRS,
    I16_MAX,
    I16_MIN,
    I64_MAX,
    I64_MIN,
    U16_MAX,
    U32_MAX,
    U64_MAX,
    all_properties_feed,
    binary_stream_updates,
    envelopes,
    feed_updates,
    json_stream_updates,
    payloads,
    server_messages,
    subscribe_requests,
    unsubscribe_requests,
)

from pylazer_sync.errors import ProtocolError
from pylazer_sync.protocol import (
    EvmMessage,
    JsonMessage,
    LeEcdsaMessage,
    LeUnsignedMessage,
    Payload,
    Property,
    SolanaMessage,
    StreamUpdate,
    SubscribeRequest,
    UnsubscribeRequest,
    decode_binary_update,
    decode_frame,
    decode_message,
    decode_payload,
    encode_payload,
    encode_server_message,
    encode_stream_update_binary,
    parse_request,
    parse_server_message,
)
from pylazer_sync.protocol.payload import FeedUpdate

BYTE_ORDERS = ("little", "big")


def wire_values(feed: FeedUpdate) -> list[tuple[Property, Any]]:
    """(property, value) in wire order: what must survive a binary round trip, order included."""
    return [(p, getattr(feed, ATTRS[p])) for p in feed.properties]


# -- payloads ------------------------------------------------------------------------


@pytest.mark.parametrize("byte_order", BYTE_ORDERS)
@given(payload=payloads(binary=True))
def test_binary_payload_round_trip(byte_order: str, payload: Payload) -> None:
    raw = encode_payload(payload, byte_order)  # type: ignore[arg-type]
    decoded = decode_payload(raw, byte_order)  # type: ignore[arg-type]
    assert decoded == payload
    # Equality ignores the wire order; the binary format must keep it exactly.
    assert [wire_values(f) for f in decoded.feeds] == [wire_values(f) for f in payload.feeds]
    # Re-encoding the decoded payload gives the same bytes: nothing was normalised away.
    assert encode_payload(decoded, byte_order) == raw  # type: ignore[arg-type]


@given(payload=payloads(binary=True))
def test_byte_orders_differ_only_in_integer_layout(payload: Payload) -> None:
    le = encode_payload(payload, "little")
    be = encode_payload(payload, "big")
    assert len(le) == len(be)
    assert le[:4] == bytes.fromhex("75d3c793")
    assert be[:4] == bytes.fromhex("93c7d375")
    assert decode_payload(le, "little") == decode_payload(be, "big")
    # Read in the wrong byte order, the magic gives it away.
    with pytest.raises(ProtocolError, match="bad payload magic"):
        decode_payload(le, "big")
    with pytest.raises(ProtocolError, match="bad payload magic"):
        decode_payload(be, "little")


@pytest.mark.parametrize("byte_order", BYTE_ORDERS)
@given(
    feed=all_properties_feed(feed_id=U32_MAX),
    timestamp=st.sampled_from([0, 1, U64_MAX]),
    channel_id=st.sampled_from([0, 1, 4, 255]),
)
def test_every_property_and_edge_header_values(
    byte_order: str, feed: FeedUpdate, timestamp: int, channel_id: int
) -> None:
    payload = Payload(timestamp_us=timestamp, feeds=[feed], channel_id=channel_id)
    decoded = decode_payload(encode_payload(payload, byte_order), byte_order)  # type: ignore[arg-type]
    assert decoded == payload
    assert decoded.feeds[0].properties == tuple(Property)


@pytest.mark.parametrize("byte_order", BYTE_ORDERS)
def test_extreme_values_all_properties(byte_order: str) -> None:
    """i64 min/max, u64 max, u16 max, i16 min/max, an unknown session code."""
    for extremes in (
        dict(
            price=I64_MIN, best_bid_price=I64_MAX, best_ask_price=-1, publisher_count=U16_MAX,
            exponent=I16_MIN, confidence=I64_MAX, funding_rate=I64_MIN,
            funding_timestamp=U64_MAX, funding_rate_interval=0, market_session="closed",
            ema_price=I64_MIN, ema_confidence=1, feed_update_timestamp=U64_MAX,
        ),
        dict(
            price=I64_MAX, best_bid_price=None, best_ask_price=None, publisher_count=0,
            exponent=I16_MAX, confidence=None, funding_rate=0, funding_timestamp=None,
            funding_rate_interval=U64_MAX, market_session=str(I16_MIN), ema_price=None,
            ema_confidence=None, feed_update_timestamp=0,
        ),
    ):  # fmt: skip
        feed = FeedUpdate(U32_MAX, **extremes, properties=tuple(Property))
        payload = Payload(timestamp_us=U64_MAX, feeds=[feed], channel_id=255)
        decoded = decode_payload(encode_payload(payload, byte_order), byte_order)  # type: ignore[arg-type]
        assert decoded == payload
        assert decoded.feeds[0].market_session == extremes["market_session"]


@pytest.mark.parametrize("byte_order", BYTE_ORDERS)
def test_255_feeds(byte_order: str) -> None:
    feeds = [
        FeedUpdate(i, price=i + 1, exponent=-8, properties=(Property.PRICE, Property.EXPONENT))
        for i in range(255)
    ]
    payload = Payload(timestamp_us=1, feeds=feeds, channel_id=1)
    raw = encode_payload(payload, byte_order)  # type: ignore[arg-type]
    assert raw[13] == 255  # the feed count byte
    assert len(raw) == 14 + 255 * (5 + 9 + 3)
    assert decode_payload(raw, byte_order) == payload  # type: ignore[arg-type]


@given(payload=payloads(binary=False))
def test_json_payload_round_trip(payload: Payload) -> None:
    obj = payload.to_json_obj()
    # Through real JSON text, as on the wire.
    decoded = Payload.from_json_obj(json.loads(json.dumps(obj)))
    assert decoded == payload
    assert decoded.channel_id is None


@given(payload=payloads(binary=False))
def test_json_payload_value_types(payload: Payload) -> None:
    """PROTOCOL.md's JSON column: prices and timestampUs are strings, the rest numbers."""
    obj = payload.to_json_obj()
    assert isinstance(obj["timestampUs"], str)
    strings = {"price", "bestBidPrice", "bestAskPrice", "emaPrice", "marketSession"}
    for feed_obj, feed in zip(obj["priceFeeds"], payload.feeds, strict=True):
        assert feed_obj["priceFeedId"] == feed.feed_id
        for key, value in feed_obj.items():
            if key == "priceFeedId":
                continue
            assert value is not None  # absent values are left out, never null
            assert isinstance(value, str if key in strings else int), key
        # Every property with a value is present, and nothing else.
        present = {p.value for p in feed.properties if getattr(feed, ATTRS[p]) is not None}
        assert set(feed_obj) - {"priceFeedId"} == present


@given(payload=payloads(binary=True))
def test_binary_to_json_loses_only_channel_and_absent_keys(payload: Payload) -> None:
    decoded = Payload.from_json_obj(payload.to_json_obj())
    assert decoded.channel_id is None
    assert decoded.timestamp_us == payload.timestamp_us
    assert decoded.feeds == payload.feeds


# -- envelopes -----------------------------------------------------------------------


@given(envelope=envelopes())
def test_envelope_round_trip(envelope: Any) -> None:
    raw = envelope.encode()
    decoded = decode_message(raw)
    assert type(decoded) is type(envelope)
    assert decoded == envelope
    assert decoded.encode() == raw


@pytest.mark.parametrize(
    ("cls", "byte_order"),
    [
        (SolanaMessage, "little"),
        (EvmMessage, "big"),
        (LeEcdsaMessage, "little"),
        (LeUnsignedMessage, "little"),
    ],
)
@given(payload=payloads(binary=True, max_feeds=3), data=st.data())
def test_envelope_payload_uses_its_byte_order(
    cls: type, byte_order: str, payload: Payload, data: st.DataObject
) -> None:
    raw_payload = payload.to_bytes(byte_order)  # type: ignore[arg-type]
    envelope: Any
    if cls is SolanaMessage:
        envelope = cls(bytes(64), data.draw(st.binary(min_size=32, max_size=32)), raw_payload)
    elif cls is LeUnsignedMessage:
        envelope = cls(raw_payload)
    else:
        envelope = cls(bytes(64), data.draw(st.integers(0, 255)), raw_payload)
    decoded = decode_message(envelope.encode())
    assert decoded.decode_payload() == payload


@given(payload=payloads(binary=False, max_feeds=3))
def test_json_envelope_round_trip(payload: Payload) -> None:
    message = JsonMessage.from_payload(payload)
    decoded = decode_message(message.encode())
    assert isinstance(decoded, JsonMessage)
    assert decoded.decode_payload() == payload


# -- messages ------------------------------------------------------------------------


@given(update=binary_stream_updates())
def test_binary_update_frame_round_trip(update: StreamUpdate) -> None:
    raw = encode_stream_update_binary(update)
    decoded = decode_binary_update(raw)
    assert decoded == update
    assert decoded.messages == update.messages
    assert decoded.payload == update.payload
    assert encode_stream_update_binary(decoded) == raw


@pytest.mark.parametrize("encoding", ["base64", "hex"])
@given(update=json_stream_updates())
def test_json_stream_update_round_trip(encoding: str, update: StreamUpdate) -> None:
    text = encode_server_message(update, encoding)
    decoded = parse_server_message(text)
    assert isinstance(decoded, StreamUpdate)
    assert decoded == update
    assert decoded.payload == update.payload
    for name in ("evm", "solana", "leEcdsa", "leUnsigned"):
        if name in json.loads(text):
            assert json.loads(text)[name]["encoding"] == encoding


@given(update=binary_stream_updates())
def test_decode_frame_keeps_the_raw_frame_of_an_update(update: StreamUpdate) -> None:
    raw = encode_stream_update_binary(update)
    decoded = decode_frame(raw, False)
    assert isinstance(decoded, StreamUpdate)
    assert (decoded.frame, decoded.frame_is_text) == (raw, False)
    text = encode_server_message(update).encode()
    decoded = decode_frame(text, True)
    assert isinstance(decoded, StreamUpdate)
    assert (decoded.frame, decoded.frame_is_text) == (text, True)
    assert decode_frame(decoded.frame, decoded.frame_is_text) == decoded
    # Built any other way, an update has no frame; the frame is not part of equality.
    assert decode_binary_update(raw).frame is None
    assert decode_binary_update(raw) == decode_frame(raw, False)


@given(message=server_messages())
def test_server_message_round_trip(message: Any) -> None:
    text = encode_server_message(message)
    decoded = parse_server_message(text)
    assert type(decoded) is type(message)
    assert decoded == message
    # Bytes (UTF-8), as websocket libraries sometimes hand over text frames, decode the same.
    assert parse_server_message(text.encode()) == message


# -- requests ------------------------------------------------------------------------


@given(request=subscribe_requests())
def test_subscribe_request_round_trip(request: SubscribeRequest) -> None:
    text = request.to_json()
    parsed = parse_request(text)
    assert parsed == request
    assert parsed.to_json() == text
    assert SubscribeRequest.from_wire(json.loads(text)) == request


@given(request=subscribe_requests(with_id=False), sub_id=st.integers(0, U64_MAX))
def test_params_round_trip(request: SubscribeRequest, sub_id: int) -> None:
    params = request.params()
    assert "type" not in params and "subscriptionId" not in params
    assert SubscribeRequest.from_params(params) == request
    assert request.with_id(sub_id) == SubscribeRequest.from_params(params, sub_id)


@given(request=unsubscribe_requests())
def test_unsubscribe_request_round_trip(request: UnsubscribeRequest) -> None:
    assert parse_request(request.to_json()) == request


@settings(max_examples=20)
@given(feed=feed_updates(max_properties=13))
def test_feed_equality_ignores_wire_order(feed: FeedUpdate) -> None:
    reordered = FeedUpdate(
        feed.feed_id,
        **{ATTRS[p]: getattr(feed, ATTRS[p]) for p in feed.properties},
        properties=tuple(reversed(feed.properties)),
    )
    assert reordered == feed
