"""Malformed input: every failure is a ProtocolError that says what was wrong, and where.

No decoder may leak IndexError, struct.error, KeyError, TypeError, UnicodeDecodeError or
RecursionError: the connection thread catches ProtocolError per message and carries on,
anything else would look like a bug in the client.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import binary_stream_updates, json_stream_updates, payloads

from pylazer_sync.errors import LazerError, ProtocolError
from pylazer_sync.protocol import (
    JsonMessage,
    LeUnsignedMessage,
    Payload,
    Property,
    decode_binary_update,
    decode_frame,
    decode_message,
    decode_payload,
    encode_server_message,
    encode_stream_update_binary,
    parse_server_message,
)
from pylazer_sync.protocol.payload import FeedUpdate


def h(text: str) -> bytes:
    return bytes.fromhex("".join(text.split()))


def raises(match: str) -> Any:
    return pytest.raises(ProtocolError, match=match)


def test_protocol_error_is_a_value_error_and_lazer_error() -> None:
    assert issubclass(ProtocolError, ValueError)
    assert issubclass(ProtocolError, LazerError)


# A valid little-endian payload: one feed (id 1), price 1, exponent -8, channel 1.
HEADER = "75d3c793 0100000000000000 01"
GOOD_PAYLOAD = h(HEADER + " 01 01000000 02 00 0100000000000000 04 f8ff")
assert len(GOOD_PAYLOAD) == 14 + 5 + 9 + 3


def test_good_payload_is_good() -> None:
    feed = decode_payload(GOOD_PAYLOAD, "little").feeds[0]
    assert (feed.feed_id, feed.price, feed.exponent) == (1, 1, -8)


# -- binary payload --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        (b"", r"payload too short: 0 bytes"),
        (h("75d3c793 01000000"), r"payload too short: 8 bytes"),
        (h("75d3c794 0100000000000000 01 00"), r"bad payload magic at offset 0"),
        (h("93c7d375 0100000000000000 01 00"), r"bad payload magic"),  # big-endian magic
        (h(HEADER + " 01"), r"truncated at offset 14: feed 0 of 1 needs a 5-byte header"),
        (h(HEADER + " 02 01000000 00 0200"), r"truncated at offset 19: feed 1 of 2"),
        (h(HEADER + " 01 01000000 01"), r"truncated at offset 19: feed 1 announces 1 properties"),
        (h(HEADER + " 01 01000000 01 0d 00"), r"unknown property id 13 at offset 19 \(feed 1\)"),
        (h(HEADER + " 01 01000000 01 ff"), r"unknown property id 255 at offset 19"),
        (
            h(HEADER + " 01 01000000 01 00 010203"),
            r"truncated at offset 20: value of property price",
        ),
        (h(HEADER + " 01 01000000 01 03 01"), r"value of property publisherCount .* runs past"),
        (h(HEADER + " 01 01000000 01 04 f8"), r"value of property exponent"),
        (h(HEADER + " 01 01000000 01 09 00"), r"value of property marketSession"),
        (h(HEADER + " 01 01000000 01 06"), r"value of property fundingRate"),
        (h(HEADER + " 01 01000000 01 0c 01 0000"), r"value of property feedUpdateTimestamp"),
        (h(HEADER + " 01 01000000 01 07 01"), r"value of property fundingTimestamp"),
        (GOOD_PAYLOAD + b"\x00", r"1 unexpected trailing bytes at offset 31"),
        (h(HEADER + " 00 00000000"), r"4 unexpected trailing bytes at offset 14"),
    ],
)
def test_malformed_payload(raw: bytes, match: str) -> None:
    with raises(match):
        decode_payload(raw, "little")


def test_payload_unknown_id_big_endian_offset() -> None:
    raw = h("93c7d375 0000000000000001 01 01 00000001 02 04 fff8 0e")
    with raises(r"unknown property id 14 at offset 22 \(feed 1\)"):
        decode_payload(raw, "big")


@pytest.mark.parametrize("bad", ["not bytes", None, 12, 3.5, [1, 2, 3]])
def test_payload_wrong_type(bad: Any) -> None:
    with raises(r"expected bytes"):
        decode_payload(bad, "little")


def test_payload_accepts_bytes_like() -> None:
    expected = decode_payload(GOOD_PAYLOAD, "little")
    # (The signature says bytes; bytes-like objects work too, as websocket libraries vary.)
    assert decode_payload(bytearray(GOOD_PAYLOAD), "little") == expected  # type: ignore[arg-type]
    assert decode_payload(memoryview(GOOD_PAYLOAD), "little") == expected  # type: ignore[arg-type]


# -- envelopes ---------------------------------------------------------------------------

SIG = bytes(range(64))
KEY = bytes(range(100, 132))


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        (b"", r"envelope too short: 0 bytes"),
        (h("b9011a"), r"envelope too short: 3 bytes"),
        (h("01020304"), r"unknown envelope format magic 67305985 \(bytes 01020304\) at offset 0"),
        (h("7377881b") + bytes(20), r"unknown envelope format magic"),  # a frame, not a message
        (h("b9011a82") + SIG + KEY, r"Solana envelope truncated: 100 bytes, the header needs 102"),
        (h("2a22999a") + SIG + h("00"), r"EVM envelope truncated: 69 bytes, the header needs 71"),
        (h("e4bd474d") + SIG, r"LeEcdsa envelope truncated: 68 bytes"),
        (h("0c4d6359 1f"), r"LeUnsigned envelope truncated: 5 bytes"),
        (
            h("b9011a82") + SIG + KEY + h("1f00") + GOOD_PAYLOAD[:30],
            r"Solana envelope: payload length 31 at offset 100 runs past the end",
        ),
        (
            h("2a22999a") + SIG + h("00 001f") + GOOD_PAYLOAD + b"\x00",
            r"EVM envelope: payload length 31 at offset 69 leaves 1 trailing bytes",
        ),
        (
            # The EVM length is big-endian: 1f 00 read as BE is 7936, far past the end.
            h("2a22999a") + SIG + h("00 1f00") + GOOD_PAYLOAD,
            r"EVM envelope: payload length 7936 at offset 69 runs past the end",
        ),
        (
            # LeEcdsa's is little-endian: 00 1f read as LE is 7936.
            h("e4bd474d") + SIG + h("00 001f") + GOOD_PAYLOAD,
            r"LeEcdsa envelope: payload length 7936 at offset 69",
        ),
        (
            h("0c4d6359 2000") + GOOD_PAYLOAD,
            r"LeUnsigned envelope: payload length 32 at offset 4 runs past",
        ),
    ],
)
def test_malformed_envelope(raw: bytes, match: str) -> None:
    with raises(match):
        decode_message(raw)


@pytest.mark.parametrize("bad", ["0c4d6359", None, 10**12, 7, object()])
def test_envelope_wrong_type(bad: Any) -> None:
    # An int must not be taken as a length (bytes(10**12) would try to allocate 1 TB).
    with raises(r"expected bytes"):
        decode_message(bad)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"{", r"JSON envelope is not valid JSON"),
        (b"", r"JSON envelope is not valid JSON"),
        (b'{"timestampUs":"1","priceFeeds":[]}\xff', r"not valid JSON"),
        (b"\xff\xfe\x00", r"not valid JSON"),
        (b"[" * 100_000, r"not valid JSON"),
        (b"[]", r"parsed: expected an object, got list"),
        (b'{"priceFeeds":[]}', r"parsed: missing field 'timestampUs'"),
        (b'{"timestampUs":"1"}', r"parsed: missing field 'priceFeeds'"),
    ],
)
def test_malformed_json_envelope(data: bytes, match: str) -> None:
    message = decode_message(h("9a10dac4") + data)
    assert isinstance(message, JsonMessage)
    with raises(match):
        message.decode_payload()


# -- binary update frames ------------------------------------------------------------------

FRAME_HEAD = h("7377881b 0000000000000001")
LE_UNSIGNED = h("0c4d6359 1f00") + GOOD_PAYLOAD  # 37 bytes


def test_good_frame_is_good() -> None:
    update = decode_binary_update(FRAME_HEAD + h("0025") + LE_UNSIGNED)
    assert update.le_unsigned == LeUnsignedMessage(GOOD_PAYLOAD)


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        (b"", r"binary frame too short: 0 bytes, the header needs 12"),
        (FRAME_HEAD[:11], r"binary frame too short: 11 bytes"),
        (h("7377881c") + bytes(8), r"bad binary frame magic at offset 0: .*\(bytes 7377881c\)"),
        (h("1b887773") + bytes(8), r"bad binary frame magic"),  # magic written big-endian
        (FRAME_HEAD + h("00"), r"binary frame truncated at offset 12: a message length needs 2"),
        (
            FRAME_HEAD + h("0026") + LE_UNSIGNED,
            r"message at offset 14 announces 38 bytes, 37 left",
        ),
        (
            # The length is big-endian: 25 00 would be 9472 bytes.
            FRAME_HEAD + h("2500") + LE_UNSIGNED,
            r"message at offset 14 announces 9472 bytes",
        ),
        (FRAME_HEAD + h("0000"), r"envelope too short: 0 bytes"),
        (FRAME_HEAD + h("0025") + LE_UNSIGNED + h("00"), r"truncated at offset 51"),
        (FRAME_HEAD + h("0004 01020304"), r"unknown envelope format magic"),
        (
            FRAME_HEAD + h("0025 0c4d6359 1f00") + GOOD_PAYLOAD[:19] + h("0d") + GOOD_PAYLOAD[20:],
            r"unknown property id 13 at offset 19",
        ),
        (FRAME_HEAD + h("0006 9a10dac4 7b7d"), r"parsed: missing field"),  # {}
        (FRAME_HEAD + h("0005 9a10dac4 ff"), r"JSON envelope is not valid JSON"),
    ],
)
def test_malformed_frame(raw: bytes, match: str) -> None:
    with raises(match):
        decode_binary_update(raw)
    with raises(match):
        decode_frame(raw)


@pytest.mark.parametrize("bad", ["7377881b", None, 10**12, [0x73]])
def test_frame_wrong_type(bad: Any) -> None:
    with raises(r"expected bytes"):
        decode_binary_update(bad)


def test_decode_frame_refuses_text_as_binary() -> None:
    with raises(r"a binary frame must be bytes, not str"):
        decode_frame("abc", is_text=False)


# -- JSON text frames ----------------------------------------------------------------------


def su(**fields: Any) -> str:
    """A streamUpdated text with the given fields (subscriptionId 1 unless overridden)."""
    return json.dumps({"type": "streamUpdated", "subscriptionId": 1, **fields})


def parsed(*feeds: Any, ts: Any = "1") -> dict[str, Any]:
    return {"timestampUs": ts, "priceFeeds": list(feeds)}


LONG = "9" * 5000

MALFORMED_JSON: list[tuple[str | bytes, str]] = [
    # not JSON at all
    ("", r"server message is not valid JSON"),
    ("{", r"server message is not valid JSON"),
    ('{"type":"subscribed",}', r"not valid JSON"),
    (b'{"type":"error","error":"\xff"}', r"not valid JSON: 'utf-8' codec can't decode byte 0xff"),
    (b"\xc3\x28", r"not valid JSON"),
    ("[" * 100_000, r"not valid JSON"),
    ('{"type":"subscribed","subscriptionId":' + LONG + "}", r"not valid JSON.*digits"),
    # not an object / no type
    ("[]", r"expected a JSON object, got list"),
    ("42", r"expected a JSON object, got int"),
    ('"subscribed"', r"expected a JSON object, got str"),
    ("null", r"expected a JSON object, got NoneType"),
    ("{}", r"missing or non-string 'type' \(None\)"),
    ('{"type":7}', r"missing or non-string 'type' \(7\)"),
    ('{"type":["subscribed"]}', r"missing or non-string 'type'"),
    # subscriptionId
    ('{"type":"subscribed"}', r"subscribed message: missing field 'subscriptionId'"),
    ('{"type":"unsubscribed"}', r"unsubscribed message: missing field 'subscriptionId'"),
    ('{"type":"subscribed","subscriptionId":null}', r"subscriptionId: expected an integer"),
    ('{"type":"subscribed","subscriptionId":1.0}', r"subscriptionId: expected an integer.*1\.0"),
    ('{"type":"subscribed","subscriptionId":1e3}', r"subscriptionId: expected an integer"),
    ('{"type":"subscribed","subscriptionId":true}', r"subscriptionId: expected an integer.*True"),
    ('{"type":"subscribed","subscriptionId":[1]}', r"subscriptionId: expected an integer"),
    ('{"type":"subscribed","subscriptionId":NaN}', r"subscriptionId: expected an integer.*nan"),
    ('{"type":"subscribed","subscriptionId":-1}', r"subscriptionId: -1 is out of range 0\.\."),
    (
        '{"type":"subscribed","subscriptionId":18446744073709551616}',
        r"subscriptionId: 18446744073709551616 is out of range 0\.\.18446744073709551615",
    ),
    (
        '{"type":"subscribed","subscriptionId":"18446744073709551616"}',
        r"subscriptionId: 18446744073709551616 is out of range",
    ),
    ('{"type":"subscribed","subscriptionId":"abc"}', r"subscriptionId: 'abc' is not a decimal int"),
    ('{"type":"subscribed","subscriptionId":""}', r"subscriptionId: '' is not a decimal integer"),
    ('{"type":"subscribed","subscriptionId":"0x10"}', r"'0x10' is not a decimal integer"),
    ('{"type":"subscribed","subscriptionId":"1e3"}', r"'1e3' is not a decimal integer"),
    ('{"type":"subscribed","subscriptionId":"1.0"}', r"'1.0' is not a decimal integer"),
    ('{"type":"subscribed","subscriptionId":"1_000"}', r"'1_000' is not a decimal integer"),
    ('{"type":"subscribed","subscriptionId":" 1"}', r"' 1' is not a decimal integer"),
    ('{"type":"subscribed","subscriptionId":"+1"}', r"'\+1' is not a decimal integer"),
    ('{"type":"subscribed","subscriptionId":"\\u0661"}', r"is not a decimal integer"),
    (
        '{"type":"subscribed","subscriptionId":"' + LONG + '"}',
        r"subscriptionId: a string of 5000 characters is too long for an integer",
    ),
    (
        '{"type":"subscribed","subscriptionId":' + "9" * 4000 + "}",
        r"subscriptionId: 99999999999999999999\.\.\. \(4000 digits\) is out of range",
    ),
    # errors
    ('{"type":"error"}', r"error message: missing field 'error' \(or 'message'\)"),
    (
        '{"type":"subscriptionError","subscriptionId":1}',
        r"subscriptionError message: missing field 'error' \(or 'message'\)",
    ),
    ('{"type":"subscriptionError","error":"x"}', r"missing field 'subscriptionId'"),
    # subscribedWithInvalidFeedIdsIgnored
    (
        '{"type":"subscribedWithInvalidFeedIdsIgnored","subscriptionId":1,"subscribedFeedIds":3}',
        r"subscribedFeedIds: expected a list, got int",
    ),
    (
        '{"type":"subscribedWithInvalidFeedIdsIgnored","subscriptionId":1,'
        '"subscribedFeedIds":[1,4294967296]}',
        r"subscribedFeedIds\[1\]: 4294967296 is out of range 0\.\.4294967295",
    ),
    (
        '{"type":"subscribedWithInvalidFeedIdsIgnored","subscriptionId":1,'
        '"ignoredInvalidFeedIds":[1]}',
        r"ignoredInvalidFeedIds: expected an object",
    ),
    (
        '{"type":"subscribedWithInvalidFeedIdsIgnored","subscriptionId":1,'
        '"ignoredInvalidFeedIds":{"unknownIds":["x"]}}',
        r"ignoredInvalidFeedIds\.unknownIds\[0\]: 'x' is not a decimal integer",
    ),
    (
        '{"type":"subscribedWithInvalidFeedIdsIgnored","subscriptionId":1,'
        '"ignoredInvalidFeedIds":{"unknownSymbols":[1]}}',
        r"ignoredInvalidFeedIds\.unknownSymbols: expected a list of strings",
    ),
    # streamUpdated: subscription id and parsed
    ('{"type":"streamUpdated"}', r"streamUpdated message: missing field 'subscriptionId'"),
    (su(subscriptionId=-5), r"subscriptionId: -5 is out of range"),
    (su(parsed=[]), r"parsed: expected an object, got list"),
    (su(parsed="x"), r"parsed: expected an object, got str"),
    (su(parsed={"priceFeeds": []}), r"parsed: missing field 'timestampUs'"),
    (su(parsed={"timestampUs": "1"}), r"parsed: missing field 'priceFeeds'"),
    (su(parsed=parsed(ts=-1)), r"parsed\.timestampUs: -1 is out of range 0\.\."),
    (su(parsed=parsed(ts=1.5)), r"parsed\.timestampUs: expected an integer"),
    (su(parsed=parsed(ts="soon")), r"parsed\.timestampUs: 'soon' is not a decimal integer"),
    (su(parsed={"timestampUs": "1", "priceFeeds": {}}), r"parsed\.priceFeeds: expected a list"),
    (su(parsed=parsed(1)), r"parsed\.priceFeeds\[0\]: expected an object, got int"),
    (su(parsed=parsed({}, {})), r"parsed\.priceFeeds\[0\]: missing priceFeedId"),
    (
        su(parsed=parsed({"priceFeedId": 1}, {"price": "1"})),
        r"parsed\.priceFeeds\[1\]: missing priceFeedId",
    ),
    (
        su(parsed=parsed({"priceFeedId": 4294967296})),
        r"parsed\.priceFeeds\[0\]\.priceFeedId: 4294967296 is out of range 0\.\.4294967295",
    ),
    (su(parsed=parsed({"priceFeedId": "one"})), r"priceFeeds\[0\]\.priceFeedId: 'one' is not"),
    (
        su(parsed=parsed({"priceFeedId": 1, "price": "9223372036854775808"})),
        r"parsed\.priceFeeds\[0\]\.price: 9223372036854775808 is out of range "
        r"-9223372036854775808\.\.9223372036854775807",
    ),
    (
        su(parsed=parsed({"priceFeedId": 1, "bestBidPrice": "-9223372036854775809"})),
        r"priceFeeds\[0\]\.bestBidPrice: -9223372036854775809 is out of range",
    ),
    (
        su(parsed=parsed({"priceFeedId": 1, "price": 1.5})),
        r"priceFeeds\[0\]\.price: expected an integer \(number or string\), got 1\.5",
    ),
    (
        su(parsed=parsed({"priceFeedId": 1, "price": "12.50"})),
        r"priceFeeds\[0\]\.price: '12\.50' is not a decimal integer",
    ),
    (
        su(parsed=parsed({"priceFeedId": 1, "price": "--1"})),
        r"priceFeeds\[0\]\.price: '--1' is not a decimal integer",
    ),
    (
        su(parsed=parsed({"priceFeedId": 1, "price": "-"})),
        r"priceFeeds\[0\]\.price: '-' is not a decimal integer",
    ),
    (
        su(parsed=parsed({"priceFeedId": 1, "price": "1" * 100})),
        r"priceFeeds\[0\]\.price: a string of 100 characters is too long for an integer",
    ),
    (su(parsed=parsed({"priceFeedId": 1, "price": True})), r"price: expected an integer"),
    (su(parsed=parsed({"priceFeedId": 1, "price": ["1"]})), r"price: expected an integer"),
    (su(parsed=parsed({"priceFeedId": 1, "price": {}})), r"price: expected an integer"),
    (
        su(parsed=parsed({"priceFeedId": 1, "publisherCount": 65536})),
        r"priceFeeds\[0\]\.publisherCount: 65536 is out of range 0\.\.65535",
    ),
    (
        su(parsed=parsed({"priceFeedId": 1, "publisherCount": -1})),
        r"publisherCount: -1 is out of range 0\.\.65535",
    ),
    (
        su(parsed=parsed({"priceFeedId": 1, "exponent": 32768})),
        r"priceFeeds\[0\]\.exponent: 32768 is out of range -32768\.\.32767",
    ),
    (
        su(parsed=parsed({"priceFeedId": 1, "fundingTimestamp": -1})),
        r"priceFeeds\[0\]\.fundingTimestamp: -1 is out of range 0\.\.18446744073709551615",
    ),
    (
        su(parsed=parsed({"priceFeedId": 1, "feedUpdateTimestamp": "18446744073709551616"})),
        r"feedUpdateTimestamp: 18446744073709551616 is out of range",
    ),
    (
        su(parsed=parsed({"priceFeedId": 1, "marketSession": 2})),
        r"priceFeeds\[0\]\.marketSession: expected a session name string, got 2",
    ),
    # streamUpdated: embedded envelopes
    (su(evm="2a22999a"), r"evm: expected an object with encoding and data"),
    (su(solana={"encoding": "hex"}), r"solana\.data: expected a string, got None"),
    (su(solana={"encoding": "hex", "data": 7}), r"solana\.data: expected a string, got 7"),
    (
        su(leEcdsa={"encoding": "base32", "data": "AA"}),
        r"leEcdsa\.encoding: unknown encoding 'base32'; expected hex or base64",
    ),
    (su(leEcdsa={"data": "AA"}), r"leEcdsa\.encoding: unknown encoding None"),
    (su(evm={"encoding": "hex", "data": "2a22999"}), r"evm\.data: invalid hex"),
    (su(evm={"encoding": "hex", "data": "zz"}), r"evm\.data: invalid hex"),
    (su(evm={"encoding": "hex", "data": "é"}), r"evm\.data: invalid hex"),
    (su(evm={"encoding": "base64", "data": "KiKZ"}), r"envelope too short: 3 bytes"),
    (su(evm={"encoding": "base64", "data": "KiKZmg=="}), r"EVM envelope truncated: 4 bytes"),
    (su(evm={"encoding": "base64", "data": "KiKZm"}), r"evm\.data: invalid base64"),
    (su(evm={"encoding": "base64", "data": "Ki$Zmg=="}), r"evm\.data: invalid base64"),
    (su(evm={"encoding": "base64", "data": "é"}), r"evm\.data: invalid base64"),
    (su(evm={"encoding": "hex", "data": ""}), r"envelope too short: 0 bytes"),
    (
        su(
            solana={
                "encoding": "hex",
                "data": "0c4d6359 1f00".replace(" ", "") + GOOD_PAYLOAD.hex(),
            }
        ),
        r"solana: carries a LeUnsignedMessage, expected SolanaMessage",
    ),
    (
        su(leUnsigned={"encoding": "hex", "data": "0c4d6359 1f00".replace(" ", "") + "00" * 31}),
        r"bad payload magic at offset 0",
    ),
]


@pytest.mark.parametrize(("text", "match"), MALFORMED_JSON)
def test_malformed_json_message(text: str | bytes, match: str) -> None:
    with raises(match) as info:
        parse_server_message(text)
    # Errors say what was wrong without flooding logs with the input.
    assert len(str(info.value)) < 400


def test_envelope_payload_is_checked_when_the_update_is_decoded() -> None:
    # The first payload-bearing envelope is decoded with the update, so its errors show there.
    bad = h("0c4d6359 1f00") + GOOD_PAYLOAD[:19] + h("0d") + GOOD_PAYLOAD[20:]
    with raises(r"unknown property id 13 at offset 19"):
        parse_server_message(su(leUnsigned={"encoding": "hex", "data": bad.hex()}))


def test_null_fields_are_absent_not_errors() -> None:
    message = parse_server_message(
        su(parsed=parsed({"priceFeedId": 1, "price": None}), evm=None, solana=None)
    )
    assert message.feeds == [FeedUpdate(1)]  # type: ignore[union-attr]


# -- encoding out-of-range values fails clearly too ------------------------------------------


@pytest.mark.parametrize(
    ("feed", "match"),
    [
        (FeedUpdate(1, price=2**63), r"price = 9223372036854775808 does not fit"),
        (FeedUpdate(1, price=-(2**63) - 1), r"price = .* does not fit"),
        (FeedUpdate(2**32), r"feed_id = 4294967296 does not fit"),
        (FeedUpdate(1, publisher_count=65536), r"publisher_count = 65536 does not fit"),
        (FeedUpdate(1, exponent=-32769), r"exponent = -32769 does not fit"),
        (FeedUpdate(1, funding_timestamp=-1), r"funding_timestamp = -1 does not fit"),
        (FeedUpdate(1, market_session="lunch"), r"unknown market session 'lunch'"),
        (FeedUpdate(1, price=1.5), r"price = 1\.5 does not fit"),  # type: ignore[arg-type]
        (FeedUpdate(1, price=True), r"price = True does not fit"),
    ],
)
def test_encode_out_of_range(feed: FeedUpdate, match: str) -> None:
    with raises(match):
        Payload(timestamp_us=0, feeds=[feed], channel_id=1).to_bytes("little")


def test_encode_limits() -> None:
    with raises(r"at most 255 feeds, not 256"):
        Payload(0, [FeedUpdate(i) for i in range(256)], 1).to_bytes("big")
    with raises(r"needs a channel_id"):
        Payload(0, [], None).to_bytes("big")
    with raises(r"channel_id = 256"):
        Payload(0, [], 256).to_bytes("big")
    with raises(r"timestamp_us = -1"):
        Payload(-1, [], 1).to_bytes("big")
    with raises(r"payload of 65536 bytes does not fit a u16 length"):
        LeUnsignedMessage(bytes(65536)).encode()
    with raises(r"feed 1 has more than 255 properties"):
        Payload(0, [FeedUpdate(1, price=1, properties=(Property.PRICE,) * 256)], 1).to_bytes(
            "little"
        )


# -- mutation fuzzing: decoders raise ProtocolError or succeed, nothing else ------------------


def _mutations() -> st.SearchStrategy[Any]:
    """A function turning valid bytes into (probably) invalid ones."""

    def flip(data: st.DataObject, raw: bytes) -> bytes:
        if not raw:
            return raw
        b = bytearray(raw)
        for _ in range(data.draw(st.integers(1, 4))):
            i = data.draw(st.integers(0, len(b) - 1))
            b[i] ^= 1 << data.draw(st.integers(0, 7))
        return bytes(b)

    def truncate(data: st.DataObject, raw: bytes) -> bytes:
        return raw[: data.draw(st.integers(0, max(len(raw) - 1, 0)))]

    def overwrite(data: st.DataObject, raw: bytes) -> bytes:
        if not raw:
            return raw
        i = data.draw(st.integers(0, len(raw) - 1))
        chunk = data.draw(st.binary(min_size=1, max_size=8))
        return raw[:i] + chunk + raw[i + len(chunk) :]

    def insert(data: st.DataObject, raw: bytes) -> bytes:
        i = data.draw(st.integers(0, len(raw)))
        return raw[:i] + data.draw(st.binary(min_size=1, max_size=8)) + raw[i:]

    def delete(data: st.DataObject, raw: bytes) -> bytes:
        if not raw:
            return raw
        i = data.draw(st.integers(0, len(raw) - 1))
        return raw[:i] + raw[i + data.draw(st.integers(1, 8)) :]

    def replace(data: st.DataObject, raw: bytes) -> bytes:
        return data.draw(st.binary(max_size=64))

    return st.sampled_from([flip, truncate, overwrite, insert, delete, replace])


def _mutate(data: st.DataObject, raw: bytes) -> bytes:
    for _ in range(data.draw(st.integers(1, 3))):
        raw = data.draw(_mutations())(data, raw)
    return raw


def _only_protocol_errors(fn: Any, *args: Any) -> None:
    try:
        fn(*args)
    except ProtocolError as exc:
        assert str(exc)  # never an empty message
        assert len(str(exc)) < 400


FUZZ = settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(update=binary_stream_updates(), data=st.data())
def test_mutated_binary_frames(update: Any, data: st.DataObject) -> None:
    raw = _mutate(data, encode_stream_update_binary(update))
    _only_protocol_errors(decode_binary_update, raw)


@FUZZ
@given(update=binary_stream_updates(), data=st.data())
def test_mutated_envelopes(update: Any, data: st.DataObject) -> None:
    for message in update.messages:
        raw = _mutate(data, message.encode())
        try:
            decoded = decode_message(raw)
        except ProtocolError:
            continue
        _only_protocol_errors(decoded.decode_payload)


@FUZZ
@given(payload=payloads(), byte_order=st.sampled_from(["little", "big"]), data=st.data())
def test_mutated_payloads(payload: Payload, byte_order: str, data: st.DataObject) -> None:
    raw = _mutate(data, payload.to_bytes(byte_order))  # type: ignore[arg-type]
    _only_protocol_errors(decode_payload, raw, byte_order)


@FUZZ
@given(
    update=json_stream_updates(),
    encoding=st.sampled_from(["hex", "base64"]),
    data=st.data(),
)
def test_mutated_json_text(update: Any, encoding: str, data: st.DataObject) -> None:
    raw = _mutate(data, encode_server_message(update, encoding).encode())
    _only_protocol_errors(parse_server_message, raw)
    text = raw.decode("utf-8", errors="replace")
    _only_protocol_errors(parse_server_message, text)


# JSON-level mutations: valid JSON with a value swapped for one of the wrong type or range.
_weird_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True),
    st.text(max_size=30),
    st.sampled_from(["", "-", "0x1", "1e3", "\u0661", "9" * 30, "-9" * 10, "1 ", "AAAA", "zz"]),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.sampled_from(["encoding", "data", "x"]), st.text(max_size=8), max_size=3),
)


def _paths(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _paths(v, (*prefix, i))
    return out


@FUZZ
@given(update=json_stream_updates(), data=st.data())
def test_json_values_of_wrong_type_or_range(update: Any, data: st.DataObject) -> None:
    obj = json.loads(encode_server_message(update, "hex"))
    path = data.draw(st.sampled_from(_paths(obj)[1:]))
    target = obj
    for key in path[:-1]:
        target = target[key]
    if data.draw(st.booleans()) and isinstance(target, dict):
        del target[path[-1]]
    else:
        target[path[-1]] = data.draw(_weird_values)
    _only_protocol_errors(parse_server_message, json.dumps(obj))


@FUZZ
@given(text=st.text(max_size=200) | st.binary(max_size=200))
def test_random_text(text: str | bytes) -> None:
    _only_protocol_errors(parse_server_message, text)


@FUZZ
@given(raw=st.binary(max_size=300))
def test_random_bytes(raw: bytes) -> None:
    _only_protocol_errors(decode_binary_update, raw)
    _only_protocol_errors(decode_message, raw)
    _only_protocol_errors(decode_payload, raw, "little")
    _only_protocol_errors(decode_payload, raw, "big")


def test_error_messages_name_offsets() -> None:
    """Spot-check that offsets in messages are the real positions of the bad bytes."""
    raw = h(HEADER + " 02 01000000 01 04 f8ff  02000000 01 0d")
    with raises(r"offset (\d+)") as info:
        decode_payload(raw, "little")
    offset = int(re.search(r"offset (\d+)", str(info.value)).group(1))  # type: ignore[union-attr]
    assert raw[offset] == 0x0D
