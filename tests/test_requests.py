"""Subscribe/unsubscribe requests: validation at construction, exact wire field names."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pylazer_sync.errors import InvalidRequestError, LazerError
from pylazer_sync.protocol import (
    Channel,
    DeliveryFormat,
    Format,
    JsonBinaryEncoding,
    MarketSession,
    Property,
    SubscribeRequest,
    UnsubscribeRequest,
    parse_request,
)


def req(**overrides: Any) -> SubscribeRequest:
    """A valid request with the given arguments replaced (a key set to ... is removed)."""
    kwargs: dict[str, Any] = {"properties": ["price"], "price_feed_ids": [1]}
    kwargs.update(overrides)
    return SubscribeRequest(**{k: v for k, v in kwargs.items() if v is not ...})


def invalid(match: str) -> Any:
    return pytest.raises(InvalidRequestError, match=match)


def test_invalid_request_error_is_a_value_error() -> None:
    assert issubclass(InvalidRequestError, ValueError)
    assert issubclass(InvalidRequestError, LazerError)


# -- the wire format ------------------------------------------------------------------------


def test_subscribe_wire_text() -> None:
    request = SubscribeRequest(
        subscription_id=1,
        price_feed_ids=[1, 2],
        properties=["price", "exponent", "feedUpdateTimestamp"],
        formats=["solana"],
        delivery_format="json",
        json_binary_encoding="hex",
        parsed=True,
        channel="fixed_rate@200ms",
        ignore_invalid_feeds=False,
    )
    # PROTOCOL.md's example, field for field (the order is this library's).
    assert request.to_json() == (
        '{"type":"subscribe","subscriptionId":1,"priceFeedIds":[1,2],'
        '"properties":["price","exponent","feedUpdateTimestamp"],"formats":["solana"],'
        '"deliveryFormat":"json","jsonBinaryEncoding":"hex","parsed":true,'
        '"channel":"fixed_rate@200ms","ignoreInvalidFeeds":false}'
    )


def test_subscribe_wire_fields_with_symbols_and_sessions() -> None:
    request = SubscribeRequest(
        subscription_id=2**64 - 1,
        symbols=["Crypto.BTC/USD", "Equity.US.AAPL/USD"],
        properties=[Property.BEST_BID_PRICE, "best_ask_price", "marketSession"],
        formats=[Format.EVM, "leEcdsa", "leUnsigned", "solana"],
        delivery_format=DeliveryFormat.BINARY,
        channel=Channel.REAL_TIME,
        market_sessions=["regular", MarketSession.PRE_MARKET],
        parsed=False,
        ignore_invalid_feeds=True,
    )
    wire = request.to_wire()
    assert wire == {
        "type": "subscribe",
        "subscriptionId": 18446744073709551615,
        "symbols": ["Crypto.BTC/USD", "Equity.US.AAPL/USD"],
        "properties": ["bestBidPrice", "bestAskPrice", "marketSession"],
        "formats": ["evm", "leEcdsa", "leUnsigned", "solana"],
        "deliveryFormat": "binary",
        "jsonBinaryEncoding": "base64",
        "parsed": False,
        "channel": "real_time",
        "ignoreInvalidFeeds": True,
        "marketSessions": ["regular", "preMarket"],
    }
    assert "priceFeedIds" not in wire
    # Every value is a plain JSON type (no enum leaks into json.dumps output).
    assert json.loads(request.to_json()) == wire


def test_defaults_follow_the_protocol() -> None:
    request = req()
    assert request.delivery_format is DeliveryFormat.JSON
    assert request.json_binary_encoding is JsonBinaryEncoding.BASE64
    assert request.parsed is True
    assert request.ignore_invalid_feeds is False
    assert request.formats == ()
    assert request.market_sessions is None
    assert request.channel is Channel.FIXED_RATE_200MS
    assert "marketSessions" not in request.params()


def test_params_are_the_rest_body() -> None:
    params = req(price_feed_ids=[3]).params()
    assert params == {
        "priceFeedIds": [3],
        "properties": ["price"],
        "formats": [],
        "deliveryFormat": "json",
        "jsonBinaryEncoding": "base64",
        "parsed": True,
        "channel": "fixed_rate@200ms",
        "ignoreInvalidFeeds": False,
    }


def test_unsubscribe_wire_text() -> None:
    assert UnsubscribeRequest(7).to_json() == '{"type":"unsubscribe","subscriptionId":7}'
    assert parse_request('{"type":"unsubscribe","subscriptionId":7}') == UnsubscribeRequest(7)


# -- accepted spellings ---------------------------------------------------------------------


def test_every_property_spelling_is_accepted() -> None:
    for prop in Property:
        for spelling in (prop, prop.value, prop.attr, prop.name):
            assert req(properties=[spelling]).properties == (prop,)


def test_enum_members_and_strings_normalise_alike() -> None:
    a = req(channel="real_time", formats=["evm"], delivery_format="binary")
    b = req(channel=Channel.REAL_TIME, formats=[Format.EVM], delivery_format=DeliveryFormat.BINARY)
    assert a == b
    assert a.channel is Channel.REAL_TIME and a.formats == (Format.EVM,)
    assert str(Channel.FIXED_RATE_50MS) == "fixed_rate@50ms"


def test_iterables_are_accepted() -> None:
    request = req(price_feed_ids=(i for i in (5, 6)), properties={"price": 1}.keys())
    assert request.price_feed_ids == (5, 6)
    assert request.properties == (Property.PRICE,)


def test_from_wire_accepts_old_field_names() -> None:
    request = SubscribeRequest.from_wire(
        {
            "type": "subscribe",
            "subscriptionId": 4,
            "priceFeedIds": [1],
            "properties": ["price"],
            "chains": ["evm", "solana"],
            "channel": "real_time",
            "ignoreInvalidFeedIds": True,
        }
    )
    assert request.formats == (Format.EVM, Format.SOLANA)
    assert request.ignore_invalid_feeds is True
    assert request.subscription_id == 4
    # And the request goes out under the current names.
    wire = request.to_wire()
    assert wire["formats"] == ["evm", "solana"] and wire["ignoreInvalidFeeds"] is True
    assert "chains" not in wire and "ignoreInvalidFeedIds" not in wire


def test_old_names_are_validated_too() -> None:
    base = {"type": "subscribe", "subscriptionId": 4, "priceFeedIds": [1], "channel": "real_time"}
    with invalid(r"formats: duplicate value 'evm'"):
        SubscribeRequest.from_wire({**base, "properties": ["price"], "chains": ["evm", "evm"]})
    with invalid(r"ignore_invalid_feeds: expected true or false, got 'yes'"):
        SubscribeRequest.from_wire({**base, "properties": ["price"], "ignoreInvalidFeedIds": "yes"})


def test_from_wire_keeps_unknown_fields() -> None:
    text = (
        '{"type":"subscribe","subscriptionId":1,"priceFeedIds":[1],"properties":["price"],'
        '"channel":"real_time","futureOption":{"a":1}}'
    )
    request = parse_request(text)
    assert isinstance(request, SubscribeRequest)
    assert request.extra == {"futureOption": {"a": 1}}
    assert request.to_wire()["futureOption"] == {"a": 1}


def test_with_id_copies_and_keeps_the_original() -> None:
    request = req(symbols=["Crypto.BTC/USD"], price_feed_ids=...)
    assert request.subscription_id is None
    with_id = request.with_id(9)
    assert with_id.subscription_id == 9 and request.subscription_id is None
    assert with_id.symbols == ("Crypto.BTC/USD",)
    with invalid(r"subscription_id: -1 is not an integer in 0\.\.18446744073709551615"):
        request.with_id(-1)


def test_requests_are_frozen() -> None:
    request = req()
    with pytest.raises(AttributeError):
        request.channel = Channel.REAL_TIME  # type: ignore[misc]


# -- validation: each rule, with the field and value in the message ---------------------------


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        # exactly one of price_feed_ids and symbols
        ({"price_feed_ids": ...}, r"exactly one of price_feed_ids and symbols must be given"),
        (
            {"symbols": ["Crypto.BTC/USD"]},
            r"exactly one of price_feed_ids and symbols .*price_feed_ids=\[1\].*"
            r"symbols=\['Crypto.BTC/USD'\]",
        ),
        # non-empty, unique, well-typed lists
        ({"price_feed_ids": []}, r"price_feed_ids: must not be empty"),
        ({"price_feed_ids": [1, 2, 1]}, r"price_feed_ids: duplicate value 1"),
        ({"price_feed_ids": "12"}, r"price_feed_ids: expected a list, got '12'"),
        ({"price_feed_ids": 12}, r"price_feed_ids: expected a list, got 12"),
        ({"price_feed_ids": ["1"]}, r"price_feed_ids: '1' is not an integer in 0\.\.4294967295"),
        ({"price_feed_ids": [1.0]}, r"price_feed_ids: 1\.0 is not an integer"),
        ({"price_feed_ids": [True]}, r"price_feed_ids: True is not an integer"),
        ({"price_feed_ids": [-1]}, r"price_feed_ids: -1 is not an integer in 0\.\.4294967295"),
        ({"price_feed_ids": [2**32]}, r"price_feed_ids: 4294967296 is not an integer"),
        ({"price_feed_ids": ..., "symbols": []}, r"symbols: must not be empty"),
        ({"price_feed_ids": ..., "symbols": ["A", "B", "A"]}, r"symbols: duplicate value 'A'"),
        ({"price_feed_ids": ..., "symbols": [""]}, r"symbols: '' is not a non-empty string"),
        ({"price_feed_ids": ..., "symbols": [7]}, r"symbols: 7 is not a non-empty string"),
        ({"price_feed_ids": ..., "symbols": "Crypto.BTC/USD"}, r"symbols: expected a list"),
        # properties
        ({"properties": []}, r"properties: must not be empty"),
        ({"properties": ["price", "price"]}, r"properties: duplicate value 'price'"),
        (
            {"properties": ["price", Property.PRICE]},
            r"properties: duplicate value 'price'",
        ),
        (
            {"properties": ["bestBidPrice", "best_bid_price"]},
            r"properties: duplicate value 'bestBidPrice'",
        ),
        ({"properties": ["volume"]}, r"properties: unknown property 'volume'; expected one of"),
        ({"properties": ["Price"]}, r"properties: unknown property 'Price'"),
        ({"properties": [3]}, r"properties: unknown property 3"),
        ({"properties": "price"}, r"properties: expected a list, got 'price'"),
        # formats
        ({"formats": ["evm", "evm"]}, r"formats: duplicate value 'evm'"),
        ({"formats": [Format.SOLANA, "solana"]}, r"formats: duplicate value 'solana'"),
        ({"formats": ["ethereum"]}, r"formats: unknown value 'ethereum'; expected one of 'evm'"),
        ({"formats": ["EVM"]}, r"formats: unknown value 'EVM'"),
        ({"formats": "evm"}, r"formats: expected a list, got 'evm'"),
        # channel and other enums
        (
            {"channel": "fixed_rate@10ms"},
            r"channel: unknown value 'fixed_rate@10ms'; expected one of 'real_time', "
            r"'fixed_rate@1ms', 'fixed_rate@50ms', 'fixed_rate@200ms', 'fixed_rate@1000ms'",
        ),
        ({"channel": "realtime"}, r"channel: unknown value 'realtime'"),
        ({"channel": None}, r"channel: unknown value None"),
        ({"channel": ["real_time"]}, r"channel: unknown value \['real_time'\]"),
        ({"delivery_format": "protobuf"}, r"delivery_format: unknown value 'protobuf'"),
        ({"json_binary_encoding": "base32"}, r"json_binary_encoding: unknown value 'base32'"),
        ({"market_sessions": ["lunch"]}, r"market_sessions: unknown value 'lunch'"),
        (
            {"market_sessions": ["regular", "regular"]},
            r"market_sessions: duplicate value 'regular'",
        ),
        # booleans and ids
        ({"parsed": "true"}, r"parsed: expected true or false, got 'true'"),
        ({"parsed": 1}, r"parsed: expected true or false, got 1"),
        ({"ignore_invalid_feeds": None}, r"ignore_invalid_feeds: expected true or false"),
        ({"subscription_id": -1}, r"subscription_id: -1 is not an integer in 0\.\."),
        ({"subscription_id": 2**64}, r"subscription_id: 18446744073709551616 is not an integer"),
        ({"subscription_id": "1"}, r"subscription_id: '1' is not an integer"),
        # extra must not smuggle in (unvalidated) known fields
        ({"extra": {"channel": "bogus"}}, r"extra: 'channel' is a known field"),
        ({"extra": {"type": "unsubscribe"}}, r"extra: 'type' is a known field"),
        ({"extra": {"subscriptionId": 5}}, r"extra: 'subscriptionId' is a known field"),
        ({"extra": {"chains": ["evm"]}}, r"extra: 'chains' is a known field"),
    ],
)
def test_invalid_requests(overrides: dict[str, Any], match: str) -> None:
    with invalid(match):
        req(**overrides)


def test_to_wire_needs_an_id() -> None:
    with invalid(r"subscription_id: must be set before sending"):
        req().to_wire()
    with invalid(r"subscription_id: must be set"):
        req().to_json()


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("{", r"request is not valid JSON"),
        (b"\xff", r"request is not valid JSON"),
        ("[1]", r"request: expected a JSON object, got list"),
        ('{"type":"subscribe"}', r"subscriptionId: missing"),
        ('{"subscriptionId":1}', r"type: unknown request type None"),
        ('{"type":"sub","subscriptionId":1}', r"type: unknown request type 'sub'"),
        (
            '{"type":"subscribe","subscriptionId":1,"priceFeedIds":[1],"channel":"real_time"}',
            r"properties: missing",
        ),
        (
            '{"type":"subscribe","subscriptionId":1,"priceFeedIds":[1],"properties":["price"]}',
            r"channel: missing",
        ),
        (
            '{"type":"subscribe","subscriptionId":-1,"priceFeedIds":[1],"properties":["price"],'
            '"channel":"real_time"}',
            r"subscriptionId: -1 is not an integer",
        ),
        (
            '{"type":"subscribe","subscriptionId":1,"priceFeedIds":[1],"properties":["price"],'
            '"channel":"real_time","formats":null,"parsed":"no"}',
            r"parsed: expected true or false, got 'no'",
        ),
        ('{"type":"unsubscribe"}', r"subscriptionId: missing"),
        ('{"type":"unsubscribe","subscriptionId":true}', r"subscriptionId: True is not an int"),
    ],
)
def test_invalid_request_frames(text: str | bytes, match: str) -> None:
    with invalid(match):
        parse_request(text)


def test_unsubscribe_validation() -> None:
    with invalid(r"subscription_id: -1 is not an integer"):
        UnsubscribeRequest(-1)
    with invalid(r"subscriptionId: missing"):
        UnsubscribeRequest.from_wire([])  # type: ignore[arg-type]


def test_formats_may_be_empty_and_null_on_the_wire() -> None:
    request = SubscribeRequest.from_params(
        {"priceFeedIds": [1], "properties": ["price"], "channel": "real_time", "formats": None}
    )
    assert request.formats == ()
