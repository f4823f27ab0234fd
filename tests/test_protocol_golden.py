"""Golden byte strings written by hand from PROTOCOL.md, byte by byte.

The simulator encodes with the same functions the client decodes with, so a misreading
of the wire format shared by both passes every round trip. These literals were written
from the spec's tables (never produced by ``struct`` or by this library's encoders); each
test decodes them into expected objects and encodes the objects back to exactly them.
Expected integers are written as hex literals so each byte can be checked by eye.
"""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from pylazer_sync.errors import ProtocolError
from pylazer_sync.protocol import (
    BINARY_UPDATE_MAGIC,
    EVM_MAGIC,
    JSON_MAGIC,
    LE_ECDSA_MAGIC,
    LE_UNSIGNED_MAGIC,
    PAYLOAD_MAGIC,
    SOLANA_MAGIC,
    Channel,
    Envelope,
    EvmMessage,
    JsonMessage,
    LeEcdsaMessage,
    LeUnsignedMessage,
    Payload,
    Property,
    ServerError,
    SolanaMessage,
    StreamUpdate,
    Subscribed,
    SubscribedWithIgnoredFeeds,
    SubscriptionError,
    UnknownMessage,
    Unsubscribed,
    decode_binary_update,
    decode_frame,
    decode_message,
    decode_payload,
    encode_binary_update,
    encode_message,
    encode_payload,
    encode_server_message,
    parse_server_message,
)
from pylazer_sync.protocol.messages import parse_json_update
from pylazer_sync.protocol.payload import FeedUpdate


def h(text: str) -> bytes:
    """Hex with any whitespace (one field per line below) to bytes."""
    return bytes.fromhex("".join(text.split()))


# -- constants, straight from PROTOCOL.md's tables ----------------------------------


def test_magic_numbers() -> None:
    # (decimal from the spec, first bytes from the spec): the u32 LE reading of each.
    assert BINARY_UPDATE_MAGIC == 461928307 == 0x1B887773
    assert PAYLOAD_MAGIC == 2479346549 == 0x93C7D375
    assert JSON_MAGIC == 3302625434 == 0xC4DA109A
    assert EVM_MAGIC == 2593727018 == 0x9A99222A
    assert SOLANA_MAGIC == 2182742457 == 0x821A01B9
    assert LE_ECDSA_MAGIC == 1296547300 == 0x4D47BDE4
    assert LE_UNSIGNED_MAGIC == 1499680012 == 0x59634D0C


def test_property_ids_and_names() -> None:
    table = [
        (0, "price"), (1, "bestBidPrice"), (2, "bestAskPrice"), (3, "publisherCount"),
        (4, "exponent"), (5, "confidence"), (6, "fundingRate"), (7, "fundingTimestamp"),
        (8, "fundingRateInterval"), (9, "marketSession"), (10, "emaPrice"),
        (11, "emaConfidence"), (12, "feedUpdateTimestamp"),
    ]  # fmt: skip
    assert [(p.id, p.value) for p in Property] == table
    assert [Property(name).id for _, name in table] == list(range(13))


def test_channel_ids() -> None:
    def channel_of(channel_id: int) -> Channel | None:
        return Payload(timestamp_us=0, feeds=[], channel_id=channel_id).channel

    assert channel_of(1) is Channel.REAL_TIME
    assert channel_of(2) is Channel.FIXED_RATE_50MS
    assert channel_of(3) is Channel.FIXED_RATE_200MS
    assert channel_of(4) is Channel.FIXED_RATE_1000MS
    assert channel_of(0) is None and channel_of(5) is None and channel_of(255) is None


# -- one feed with all 13 properties, in both byte orders ----------------------------


def _strip_comments(block: str) -> bytes:
    """Each line: hex bytes, then a comment after two or more spaces."""
    out = []
    for line in block.strip().splitlines():
        out.append(line.strip().split("  ")[0])
    return h(" ".join(out))


# timestamp 0x00060A0B0C0D0E0F, channel 3 (fixed_rate@200ms), one feed 0x01020304.
PAYLOAD_ALL_LE = _strip_comments("""
    75 d3 c7 93                       payload magic (LE bytes from the spec)
    0f 0e 0d 0c 0b 0a 06 00           timestamp u64
    03                                channel id
    01                                number of feeds
    04 03 02 01                       feed id u32
    0d                                13 properties
    00 08 07 06 05 04 03 02 01        0 price i64 = 0x0102030405060708
    01 00 00 00 00 00 00 00 80        1 bestBidPrice i64 = i64 min
    02 ff ff ff ff ff ff ff 7f        2 bestAskPrice i64 = i64 max
    03 17 00                          3 publisherCount u16 = 23
    04 f8 ff                          4 exponent i16 = -8
    05 00 00 00 00 00 00 00 00        5 confidence i64 = 0: absent
    06 01 fe ff ff ff ff ff ff ff     6 fundingRate flag 1, i64 = -2
    07 01 ff ff ff ff ff ff ff ff     7 fundingTimestamp flag 1, u64 = u64 max
    08 00                             8 fundingRateInterval flag 0: absent, no value
    09 02 00                          9 marketSession i16 = 2 postMarket
    0a 00 01 00 00 00 00 00 00        10 emaPrice i64 = 256
    0b 0a 00 00 00 00 00 00 00        11 emaConfidence i64 = 10
    0c 01 00 0e 0d 0c 0b 0a 06 00     12 feedUpdateTimestamp flag 1, u64 = 0x00060A0B0C0D0E00
""")

PAYLOAD_ALL_BE = _strip_comments("""
    93 c7 d3 75                       payload magic, big-endian
    00 06 0a 0b 0c 0d 0e 0f           timestamp u64
    03                                channel id
    01                                number of feeds
    01 02 03 04                       feed id u32
    0d                                13 properties
    00 01 02 03 04 05 06 07 08        0 price
    01 80 00 00 00 00 00 00 00        1 bestBidPrice = i64 min
    02 7f ff ff ff ff ff ff ff        2 bestAskPrice = i64 max
    03 00 17                          3 publisherCount = 23
    04 ff f8                          4 exponent = -8
    05 00 00 00 00 00 00 00 00        5 confidence absent
    06 01 ff ff ff ff ff ff ff fe     6 fundingRate = -2
    07 01 ff ff ff ff ff ff ff ff     7 fundingTimestamp = u64 max
    08 00                             8 fundingRateInterval absent
    09 00 02                          9 marketSession = postMarket
    0a 00 00 00 00 00 00 01 00        10 emaPrice = 256
    0b 00 00 00 00 00 00 00 0a        11 emaConfidence = 10
    0c 01 00 06 0a 0b 0c 0d 0e 00     12 feedUpdateTimestamp
""")

FEED_ALL = FeedUpdate(
    feed_id=0x01020304,
    price=0x0102030405060708,
    best_bid_price=-0x8000000000000000,
    best_ask_price=0x7FFFFFFFFFFFFFFF,
    publisher_count=23,
    exponent=-8,
    confidence=None,
    funding_rate=-2,
    funding_timestamp=0xFFFFFFFFFFFFFFFF,
    funding_rate_interval=None,
    market_session="postMarket",
    ema_price=0x100,
    ema_confidence=10,
    feed_update_timestamp=0x00060A0B0C0D0E00,
    properties=tuple(Property),
)
PAYLOAD_ALL = Payload(timestamp_us=0x00060A0B0C0D0E0F, feeds=[FEED_ALL], channel_id=3)

SIG = h(
    "00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f 10 11 12 13 14 15 16 17 18 19 1a 1b 1c 1d 1e 1f"
    "20 21 22 23 24 25 26 27 28 29 2a 2b 2c 2d 2e 2f 30 31 32 33 34 35 36 37 38 39 3a 3b 3c 3d 3e 3f"
)
PUBKEY = h(
    "a0 a1 a2 a3 a4 a5 a6 a7 a8 a9 aa ab ac ad ae af b0 b1 b2 b3 b4 b5 b6 b7 b8 b9 ba bb bc bd be bf"
)


def test_golden_self_check() -> None:
    """The hand-written blocks have the lengths counted by hand.

    14 header + 5 feed header + 95 property bytes = 114 = 0x72.
    """
    assert len(PAYLOAD_ALL_LE) == len(PAYLOAD_ALL_BE) == 0x72
    assert len(SIG) == 64 and SIG[0] == 0 and SIG[63] == 0x3F
    assert len(PUBKEY) == 32


@pytest.mark.parametrize(
    ("raw", "byte_order"), [(PAYLOAD_ALL_LE, "little"), (PAYLOAD_ALL_BE, "big")]
)
def test_payload_all_properties_decode(raw: bytes, byte_order: str) -> None:
    payload = decode_payload(raw, byte_order)  # type: ignore[arg-type]
    assert payload.timestamp_us == 0x00060A0B0C0D0E0F
    assert payload.channel_id == 3
    assert payload.channel is Channel.FIXED_RATE_200MS
    assert len(payload.feeds) == 1
    feed = payload.feeds[0]
    # Field by field, so a failure names the property.
    assert feed.feed_id == 0x01020304
    assert feed.price == 0x0102030405060708
    assert feed.best_bid_price == -(2**63)
    assert feed.best_ask_price == 2**63 - 1
    assert feed.publisher_count == 23
    assert feed.exponent == -8
    assert feed.confidence is None
    assert feed.funding_rate == -2
    assert feed.funding_timestamp == 2**64 - 1
    assert feed.funding_rate_interval is None
    assert feed.market_session == "postMarket"
    assert feed.ema_price == 256
    assert feed.ema_confidence == 10
    assert feed.feed_update_timestamp == 0x00060A0B0C0D0E00
    assert feed.properties == tuple(Property)
    assert payload == PAYLOAD_ALL
    assert feed.real("price") == Decimal("726238597.90382856")
    assert feed.real("bestAskPrice") == Decimal("92233720368.54775807")


@pytest.mark.parametrize(
    ("raw", "byte_order"), [(PAYLOAD_ALL_LE, "little"), (PAYLOAD_ALL_BE, "big")]
)
def test_payload_all_properties_encode(raw: bytes, byte_order: str) -> None:
    assert encode_payload(PAYLOAD_ALL, byte_order) == raw  # type: ignore[arg-type]
    assert PAYLOAD_ALL.to_bytes(byte_order) == raw  # type: ignore[arg-type]


# Two feeds, properties in the subscription's (not the id) order, an unknown channel id,
# an unknown market session code, a cleared flag, big-endian.
PAYLOAD_ORDER_BE = _strip_comments("""
    93 c7 d3 75                       magic
    00 00 00 00 00 00 00 01           timestamp 1
    09                                channel id 9: unknown, kept raw
    02                                two feeds
    00 00 00 01                       feed 1
    02                                two properties
    0c 00                             feedUpdateTimestamp, flag 0
    00 00 00 00 00 00 00 00 2a        price 42
    00 00 00 02                       feed 2
    02                                two properties
    09 00 07                          marketSession code 7: unknown
    09 ff ff                          marketSession again, code -1
""")


def test_payload_order_and_unknown_codes() -> None:
    payload = decode_payload(PAYLOAD_ORDER_BE, "big")
    assert payload.channel_id == 9 and payload.channel is None
    f1, f2 = payload.feeds
    assert f1.feed_id == 1 and f1.price == 42 and f1.feed_update_timestamp is None
    assert f1.properties == (Property.FEED_UPDATE_TIMESTAMP, Property.PRICE)
    assert f2.feed_id == 2
    # The later value wins; an unknown code is kept as its decimal string.
    assert f2.market_session == "-1"
    expected = Payload(
        timestamp_us=1,
        channel_id=9,
        feeds=[
            FeedUpdate(1, price=42, properties=(Property.FEED_UPDATE_TIMESTAMP, Property.PRICE)),
            FeedUpdate(2, market_session="-1"),
        ],
    )
    assert payload == expected


def test_payload_order_encode() -> None:
    payload = Payload(
        timestamp_us=1,
        channel_id=9,
        feeds=[
            FeedUpdate(1, price=42, properties=(Property.FEED_UPDATE_TIMESTAMP, Property.PRICE)),
            FeedUpdate(2, market_session="7", properties=(Property.MARKET_SESSION,)),
        ],
    )
    expected = h(
        "93c7d375 0000000000000001 09 02 00000001 02 0c00 00000000000000002a 00000002 01 090007"
    )
    assert encode_payload(payload, "big") == expected


def test_payload_without_properties_encodes_set_fields_in_id_order() -> None:
    # No wire order known: every field with a value, in id order.
    feed = FeedUpdate(5, exponent=-2, price=-1)
    assert encode_payload(Payload(0, [feed], 1), "little") == h(
        "75d3c793 0000000000000000 01 01 05000000 02 00ffffffffffffffff 04feff"
    )


def test_empty_payload() -> None:
    raw = h("75d3c793 0f0e0d0c0b0a0600 04 00")
    payload = Payload(timestamp_us=0x00060A0B0C0D0E0F, feeds=[], channel_id=4)
    assert decode_payload(raw, "little") == payload
    assert encode_payload(payload, "little") == raw
    assert payload.channel is Channel.FIXED_RATE_1000MS


# -- envelopes -----------------------------------------------------------------------

SOLANA_ENV = h("b9 01 1a 82") + SIG + PUBKEY + h("72 00") + PAYLOAD_ALL_LE  # u16 LE length
EVM_ENV = h("2a 22 99 9a") + SIG + h("01") + h("00 72") + PAYLOAD_ALL_BE  # rec id, u16 BE
LE_ECDSA_ENV = h("e4 bd 47 4d") + SIG + h("00") + h("72 00") + PAYLOAD_ALL_LE
LE_UNSIGNED_ENV = h("0c 4d 63 59") + h("72 00") + PAYLOAD_ALL_LE
JSON_TEXT = (
    b'{"timestampUs":"1700000000000000","priceFeeds":'
    b'[{"priceFeedId":1,"price":"100000000","exponent":-8}]}'
)
JSON_ENV = h("9a 10 da c4") + JSON_TEXT
JSON_PAYLOAD = Payload(
    timestamp_us=1700000000000000,
    feeds=[
        FeedUpdate(1, price=100000000, exponent=-8, properties=(Property.PRICE, Property.EXPONENT))
    ],
)


def test_envelope_lengths() -> None:
    # 4 magic + 64 signature + 32 key + 2 length + 114 payload, and so on.
    assert len(SOLANA_ENV) == 216 == 0xD8
    assert len(EVM_ENV) == len(LE_ECDSA_ENV) == 185 == 0xB9
    assert len(LE_UNSIGNED_ENV) == 120 == 0x78
    assert len(JSON_ENV) == 105 == 0x69


def test_solana_envelope() -> None:
    m = decode_message(SOLANA_ENV)
    assert isinstance(m, SolanaMessage)
    assert m.signature == SIG
    assert m.public_key == PUBKEY
    assert m.payload == PAYLOAD_ALL_LE
    assert m.decode_payload() == PAYLOAD_ALL
    assert encode_message(SolanaMessage(SIG, PUBKEY, PAYLOAD_ALL_LE)) == SOLANA_ENV


def test_evm_envelope() -> None:
    m = decode_message(EVM_ENV)
    assert isinstance(m, EvmMessage)
    assert m.signature == SIG
    assert m.recovery_id == 1
    assert m.payload == PAYLOAD_ALL_BE
    assert m.decode_payload() == PAYLOAD_ALL
    assert encode_message(EvmMessage(SIG, 1, PAYLOAD_ALL_BE)) == EVM_ENV


def test_le_ecdsa_envelope() -> None:
    m = decode_message(LE_ECDSA_ENV)
    assert isinstance(m, LeEcdsaMessage)
    assert m.signature == SIG
    assert m.recovery_id == 0
    assert m.payload == PAYLOAD_ALL_LE
    assert m.decode_payload() == PAYLOAD_ALL
    assert encode_message(LeEcdsaMessage(SIG, 0, PAYLOAD_ALL_LE)) == LE_ECDSA_ENV


def test_le_unsigned_envelope() -> None:
    m = decode_message(LE_UNSIGNED_ENV)
    assert isinstance(m, LeUnsignedMessage)
    assert m.payload == PAYLOAD_ALL_LE
    assert m.decode_payload() == PAYLOAD_ALL
    assert encode_message(LeUnsignedMessage(PAYLOAD_ALL_LE)) == LE_UNSIGNED_ENV


def test_json_envelope() -> None:
    m = decode_message(JSON_ENV)
    assert isinstance(m, JsonMessage)
    assert m.data == JSON_TEXT
    assert m.decode_payload() == JSON_PAYLOAD
    assert m.decode_payload().channel_id is None
    assert encode_message(JsonMessage(JSON_TEXT)) == JSON_ENV
    # from_payload writes the same compact text as the hand-written one.
    assert JsonMessage.from_payload(JSON_PAYLOAD).encode() == JSON_ENV


def test_payload_byte_orders_are_not_interchangeable() -> None:
    # An EVM envelope must carry a big-endian payload: a little-endian one is refused.
    wrong = h("2a 22 99 9a") + SIG + h("01 00 72") + PAYLOAD_ALL_LE
    with pytest.raises(ProtocolError, match="bad payload magic"):
        decode_message(wrong).decode_payload()


# -- binary update frame -------------------------------------------------------------

FRAME = (
    h("73 77 88 1b")  # frame magic, u32 LE
    + h("00 00 00 00 00 00 01 02")  # subscription id 0x0102 = 258, u64 BIG endian
    + h("00 d8")  # u16 BE length 216
    + SOLANA_ENV
    + h("00 b9")  # 185
    + EVM_ENV
    + h("00 b9")
    + LE_ECDSA_ENV
    + h("00 78")  # 120
    + LE_UNSIGNED_ENV
)


def test_binary_frame_decode() -> None:
    update = decode_binary_update(FRAME)
    assert update.subscription_id == 0x0102
    assert update.solana == SolanaMessage(SIG, PUBKEY, PAYLOAD_ALL_LE)
    assert update.evm == EvmMessage(SIG, 1, PAYLOAD_ALL_BE)
    assert update.le_ecdsa == LeEcdsaMessage(SIG, 0, PAYLOAD_ALL_LE)
    assert update.le_unsigned == LeUnsignedMessage(PAYLOAD_ALL_LE)
    assert [type(m) for m in update.messages] == [
        SolanaMessage,
        EvmMessage,
        LeEcdsaMessage,
        LeUnsignedMessage,
    ]
    assert update.parsed is None
    assert update.payload == PAYLOAD_ALL  # from the first envelope
    assert update.timestamp_us == 0x00060A0B0C0D0E0F
    assert update.feed(0x01020304) == FEED_ALL
    assert decode_frame(FRAME) == update


def test_binary_frame_encode() -> None:
    messages: list[Envelope] = [
        SolanaMessage(SIG, PUBKEY, PAYLOAD_ALL_LE),
        EvmMessage(SIG, 1, PAYLOAD_ALL_BE),
        LeEcdsaMessage(SIG, 0, PAYLOAD_ALL_LE),
        LeUnsignedMessage(PAYLOAD_ALL_LE),
    ]
    assert encode_binary_update(0x0102, messages) == FRAME


def test_binary_frame_with_json_envelope() -> None:
    frame = (
        h("73 77 88 1b")
        + h("01 02 03 04 05 06 07 08")  # subscription id, big-endian
        + h("00 69")  # 105
        + JSON_ENV
    )
    update = decode_binary_update(frame)
    assert update.subscription_id == 0x0102030405060708
    assert update.parsed == JSON_PAYLOAD
    assert update.payload == JSON_PAYLOAD
    assert update.solana is None and update.evm is None
    assert encode_binary_update(0x0102030405060708, [JsonMessage(JSON_TEXT)]) == frame


def test_binary_frame_without_messages() -> None:
    frame = h("73 77 88 1b ff ff ff ff ff ff ff ff")
    update = decode_binary_update(frame)
    assert update.subscription_id == 2**64 - 1
    assert update.messages == () and update.payload is None and update.feeds == []
    assert encode_binary_update(2**64 - 1, []) == frame


# -- JSON text frames ----------------------------------------------------------------

# A small EVM envelope: one feed, price 100000000 (0x05f5e100), exponent -8; payload 31 bytes.
SMALL_PAYLOAD_BE = h(
    "93 c7 d3 75  00 06 0a 0b 0c 0d 0e 0f  03  01"
    "  00 00 00 01  02  00 00 00 00 00 05 f5 e1 00  04 ff f8"
)
SMALL_EVM_ENV_HEX = "2a22999a" + SIG.hex() + "00" + "001f" + SMALL_PAYLOAD_BE.hex()
# A LeUnsigned envelope with no feeds, base64 worked out by hand from its 20 bytes
# 0c 4d 63 59 | 0e 00 | 75 d3 c7 93 | 0f 0e 0d 0c 0b 0a 06 00 | 01 | 00.
SMALL_LE_UNSIGNED_B64 = "DE1jWQ4AddPHkw8ODQwLCgYAAQA="
SMALL_LE_UNSIGNED = h("0c4d6359 0e00 75d3c793 0f0e0d0c0b0a0600 01 00")

STREAM_UPDATED_TEXT = """
{"type": "streamUpdated", "subscriptionId": "7", "someFutureField": {"x": [1, 2]},
 "parsed": {"timestampUs": "1700000000000000", "newThing": true, "priceFeeds": [
   {"priceFeedId": 1, "price": "6543210987654", "bestBidPrice": "6543210000000",
    "bestAskPrice": "6543211000000", "publisherCount": 17, "exponent": -8,
    "confidence": 123456, "emaPrice": "6543200000000", "emaConfidence": "654321",
    "marketSession": "regular", "feedUpdateTimestamp": 1699999999999000,
    "someNewProperty": "x"},
   {"priceFeedId": "2", "price": "-5", "fundingRate": "-12",
    "fundingTimestamp": "1700000000000000", "fundingRateInterval": 28800000000,
    "confidence": "77", "exponent": "-5", "emaPrice": null}
 ]},
 "evm": {"encoding": "hex", "data": "EVM_HEX"},
 "leUnsigned": {"encoding": "base64", "data": "LE_UNSIGNED_B64"}}
""".replace("EVM_HEX", SMALL_EVM_ENV_HEX).replace("LE_UNSIGNED_B64", SMALL_LE_UNSIGNED_B64)


def test_stream_updated_json() -> None:
    update = parse_server_message(STREAM_UPDATED_TEXT)
    assert isinstance(update, StreamUpdate)
    assert update.subscription_id == 7
    parsed = update.parsed
    assert parsed is not None
    assert parsed.timestamp_us == 1700000000000000
    assert parsed.channel_id is None  # the parsed object does not carry the channel
    f1, f2 = parsed.feeds
    assert f1 == FeedUpdate(
        1,
        price=6543210987654,
        best_bid_price=6543210000000,
        best_ask_price=6543211000000,
        publisher_count=17,
        exponent=-8,
        confidence=123456,
        ema_price=6543200000000,
        ema_confidence=654321,
        market_session="regular",
        feed_update_timestamp=1699999999999000,
    )
    assert f1.real("price") == Decimal("65432.10987654")
    assert f1.properties == (
        Property.PRICE, Property.BEST_BID_PRICE, Property.BEST_ASK_PRICE,
        Property.PUBLISHER_COUNT, Property.EXPONENT, Property.CONFIDENCE, Property.EMA_PRICE,
        Property.EMA_CONFIDENCE, Property.MARKET_SESSION, Property.FEED_UPDATE_TIMESTAMP,
    )  # fmt: skip
    assert f2 == FeedUpdate(
        2,
        price=-5,
        funding_rate=-12,
        funding_timestamp=1700000000000000,
        funding_rate_interval=28800000000,
        confidence=77,
        exponent=-5,
    )
    assert f2.ema_price is None  # null is absent
    assert f2.real("price") == Decimal("-0.00005")
    assert update.payload is parsed

    assert update.evm == EvmMessage(SIG, 0, SMALL_PAYLOAD_BE)
    assert update.evm.decode_payload() == Payload(
        timestamp_us=0x00060A0B0C0D0E0F,
        channel_id=3,
        feeds=[FeedUpdate(1, price=100000000, exponent=-8)],
    )
    assert update.le_unsigned == LeUnsignedMessage(SMALL_LE_UNSIGNED[6:])
    assert update.le_unsigned.decode_payload() == Payload(0x00060A0B0C0D0E0F, [], 1)
    assert update.solana is None and update.le_ecdsa is None


def test_stream_updated_encode() -> None:
    update = StreamUpdate(
        5,
        JSON_PAYLOAD,
        le_unsigned=LeUnsignedMessage(SMALL_LE_UNSIGNED[6:]),
    )
    parsed = (
        '"parsed":{"timestampUs":"1700000000000000","priceFeeds":'
        '[{"priceFeedId":1,"price":"100000000","exponent":-8}]}'
    )
    assert encode_server_message(update, "base64") == (
        '{"type":"streamUpdated","subscriptionId":5,' + parsed + ","
        '"leUnsigned":{"encoding":"base64","data":"DE1jWQ4AddPHkw8ODQwLCgYAAQA="}}'
    )
    assert encode_server_message(update, "hex") == (
        '{"type":"streamUpdated","subscriptionId":5,' + parsed + ","
        '"leUnsigned":{"encoding":"hex","data":"0c4d63590e0075d3c7930f0e0d0c0b0a06000100"}}'
    )


def test_json_value_types_in_parsed() -> None:
    """Strings for price, bestBidPrice, bestAskPrice, emaPrice, marketSession; numbers else."""
    feed = FeedUpdate(
        3, price=1, best_bid_price=2, best_ask_price=3, publisher_count=4, exponent=-5,
        confidence=6, funding_rate=7, funding_timestamp=8, funding_rate_interval=9,
        market_session="closed", ema_price=10, ema_confidence=11, feed_update_timestamp=12,
        properties=tuple(Property),
    )  # fmt: skip
    text = json.dumps(Payload(13, [feed]).to_json_obj(), separators=(",", ":"))
    assert text == (
        '{"timestampUs":"13","priceFeeds":[{"priceFeedId":3,"price":"1","bestBidPrice":"2",'
        '"bestAskPrice":"3","publisherCount":4,"exponent":-5,"confidence":6,"fundingRate":7,'
        '"fundingTimestamp":8,"fundingRateInterval":9,"marketSession":"closed","emaPrice":"10",'
        '"emaConfidence":11,"feedUpdateTimestamp":12}]}'
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"type":"subscribed","subscriptionId":1}', Subscribed(1)),
        ('{"type":"subscribed","subscriptionId":"18446744073709551615"}', Subscribed(2**64 - 1)),
        ('{"type":"unsubscribed","subscriptionId":2,"reason":"x"}', Unsubscribed(2)),
        (
            '{"type":"subscriptionError","subscriptionId":3,"error":"unknown feed 99"}',
            SubscriptionError(3, "unknown feed 99"),
        ),
        (
            '{"type":"subscriptionError","subscriptionId":"3","message":"unknown feed 99"}',
            SubscriptionError(3, "unknown feed 99"),
        ),
        ('{"type":"error","error":"bad request"}', ServerError("bad request")),
        ('{"type":"error","message":"bad request"}', ServerError("bad request")),
        (
            '{"type":"subscribedWithInvalidFeedIdsIgnored","subscriptionId":4,'
            '"subscribedFeedIds":[1,"2"],"ignoredInvalidFeedIds":{"unknownIds":[99],'
            '"unknownSymbols":["Crypto.NOPE/USD"],"unsupportedChannels":[3],"unstable":[5],'
            '"future":[]}}',
            SubscribedWithIgnoredFeeds(4, (1, 2), (99,), ("Crypto.NOPE/USD",), (3,), (5,)),
        ),
        (
            '{"type":"subscribedWithInvalidFeedIdsIgnored","subscriptionId":4,'
            '"subscribedFeedIds":[1],"ignoredInvalidFeedIds":{}}',
            SubscribedWithIgnoredFeeds(4, (1,), (), (), (), ()),
        ),
    ],
)
def test_json_control_messages(text: str, expected: object) -> None:
    assert parse_server_message(text) == expected
    assert parse_server_message(text.encode()) == expected


def test_unknown_message_type_is_kept() -> None:
    text = '{"type":"newKindOfThing","a":[1,{"b":null}]}'
    message = parse_server_message(text)
    assert isinstance(message, UnknownMessage)
    assert message.type == "newKindOfThing"
    assert message.raw == {"type": "newKindOfThing", "a": [1, {"b": None}]}
    assert encode_server_message(message) == text


@pytest.mark.parametrize(
    ("message", "text"),
    [
        (Subscribed(1), '{"type":"subscribed","subscriptionId":1}'),
        (Unsubscribed(2), '{"type":"unsubscribed","subscriptionId":2}'),
        (
            SubscriptionError(3, "no"),
            '{"type":"subscriptionError","subscriptionId":3,"error":"no"}',
        ),
        (ServerError("bad"), '{"type":"error","error":"bad"}'),
        (
            SubscribedWithIgnoredFeeds(4, (1,), (9,), ("X",), (), ()),
            '{"type":"subscribedWithInvalidFeedIdsIgnored","subscriptionId":4,'
            '"subscribedFeedIds":[1],"ignoredInvalidFeedIds":{"unknownIds":[9],'
            '"unknownSymbols":["X"],"unsupportedChannels":[],"unstable":[]}}',
        ),
    ],
)
def test_json_control_messages_encode(message: object, text: str) -> None:
    assert encode_server_message(message) == text  # type: ignore[arg-type]


def test_rest_json_update() -> None:
    """The REST answer: a streamUpdated body without type and subscriptionId."""
    text = (
        '{"parsed":{"timestampUs":"1700000000000000","priceFeeds":'
        '[{"priceFeedId":1,"price":"100000000","exponent":-8}]},'
        '"leUnsigned":{"encoding":"base64","data":"DE1jWQ4AddPHkw8ODQwLCgYAAQA="}}'
    )
    update = parse_json_update(text)
    assert update.subscription_id == 0
    assert update.parsed == JSON_PAYLOAD
    assert update.le_unsigned == LeUnsignedMessage(SMALL_LE_UNSIGNED[6:])
    assert parse_json_update(text.encode(), subscription_id=5).subscription_id == 5
    with pytest.raises(ProtocolError, match="JSON update: expected an object, got list"):
        parse_json_update("[]")
    with pytest.raises(ProtocolError, match="JSON update is not valid JSON"):
        parse_json_update(b"\xff")
    with pytest.raises(ProtocolError, match=r"parsed\.timestampUs: 'x' is not a decimal integer"):
        parse_json_update('{"parsed":{"timestampUs":"x","priceFeeds":[]}}')
