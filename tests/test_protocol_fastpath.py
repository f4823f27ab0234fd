"""The fast decode paths against the general ones: same message, or the same error.

Two fast paths sit in front of the general decoders (which the other protocol tests pin
down): JSON ``streamUpdated`` frames decoded with msgspec by their *shape* (the text
without digits and minus signs, ``typed_json.py``), and binary feeds read with
precompiled struct layouts (``layouts.py``). Each may only ever answer what the general
path answers. Every check here decodes an input once so the shape or layout is learned,
then compares the public decoder with the general one on the input and on mutations:
equal messages (with equal reprs and the same wire order of properties), or the same
ProtocolError text. The mutations that matter most keep the shape: they only add,
remove or change digits and minus signs, anywhere (in values, in keys, in envelope
data), which is exactly what a learned shape cannot see.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import binary_stream_updates, json_stream_updates, payloads
from test_protocol_malformed import _mutate, _paths, _weird_values

from pylazer_sync.errors import ProtocolError
from pylazer_sync.protocol import (
    FeedUpdate,
    JsonMessage,
    LeUnsignedMessage,
    Payload,
    Property,
    StreamUpdate,
    decode_binary_update,
    decode_frame,
    decode_payload,
    encode_binary_update,
    encode_payload,
    encode_server_message,
    envelopes,
    messages,
    payload,
    typed_json,
)
from pylazer_sync.protocol.layouts import MAX_LAYOUTS
from pylazer_sync.protocol.messages import parse_server_message, parse_server_message_general
from pylazer_sync.protocol.payload import walk_payload

FUZZ = settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
DIGITS_AND_MINUS = "0123456789-"


def outcome(fn: Any, *args: Any) -> tuple[Any, ...]:
    """What a decoder made of an input, in a form that compares everything public."""
    try:
        result = fn(*args)
    except ProtocolError as exc:
        return ("error", str(exc))
    if isinstance(result, StreamUpdate):
        return (
            "update",
            result,
            repr(result),
            wire_order(result.parsed),
            wire_order(result.payload),
        )
    if isinstance(result, Payload):
        return ("payload", result, repr(result), wire_order(result))
    return ("message", result, repr(result))


def wire_order(p: Payload | None) -> Any:
    return None if p is None else [(f.feed_id, f.properties) for f in p.feeds]


def same_json(text: str | bytes) -> None:
    assert outcome(parse_server_message, text) == outcome(parse_server_message_general, text)


def same_payload(raw: bytes, order: str) -> None:
    assert outcome(decode_payload, raw, order) == outcome(walk_payload, raw, order)


def shape_preserving(data: st.DataObject, text: str) -> str:
    """Insert, delete or replace digits and minus signs anywhere: the shape stays."""
    chars = list(text)
    for _ in range(data.draw(st.integers(1, 4))):
        spots = [i for i, c in enumerate(chars) if c in DIGITS_AND_MINUS]
        action = data.draw(st.sampled_from(["insert", "delete", "replace"]))
        if action == "insert" or not spots:
            at = data.draw(st.integers(0, len(chars)))
            chars[at:at] = data.draw(st.text(DIGITS_AND_MINUS, min_size=1, max_size=21))
        elif action == "delete":
            del chars[data.draw(st.sampled_from(spots))]
        else:
            chars[data.draw(st.sampled_from(spots))] = data.draw(st.sampled_from(DIGITS_AND_MINUS))
    return "".join(chars)


def attempt(text: str) -> None:
    """Decode and forget the outcome: a shape is learned only if the decode succeeds."""
    with contextlib.suppress(ProtocolError):
        parse_server_message(text)


def learned(text: str) -> None:
    """Decode once so the shape is known. A generated frame must then be planned, unless
    it holds an integer past int64 (msgspec's bounds; such frames take the general path)
    or envelope data with a digit run the shape cannot empty (both are in the data)."""
    typed_json.PLANS.pause = 0  # other examples may have paused the fast path
    parse_server_message(text)
    frame = text.encode()
    message = typed_json.decode_stream_updated(frame)
    if any(not -(2**63) <= int(n) < 2**63 for n in re.findall(r"(?<![0-9a-zA-Z])-?[0-9]+", text)):
        return
    assert message is not None
    plan = typed_json.PLANS.get(typed_json.message_shape(frame, message))
    assert plan is not None and plan is not typed_json.UNKNOWN, "shape was not planned"


# -- JSON: generated frames and their mutations -------------------------------------------


@FUZZ
@given(update=json_stream_updates(), encoding=st.sampled_from(["hex", "base64"]))
def test_generated_frames_decode_the_same_by_shape(update: StreamUpdate, encoding: str) -> None:
    text = encode_server_message(update, encoding)
    learned(text)
    same_json(text)
    assert parse_server_message(text) == update


@FUZZ
@given(update=json_stream_updates(), encoding=st.sampled_from(["hex", "base64"]), data=st.data())
def test_shape_preserving_mutations(
    update: StreamUpdate, encoding: str, data: st.DataObject
) -> None:
    text = encode_server_message(update, encoding)
    learned(text)
    mutated = shape_preserving(data, text)
    same_json(mutated)
    same_json(mutated.encode())


@FUZZ
@given(update=json_stream_updates(), data=st.data())
def test_byte_mutations(update: StreamUpdate, data: st.DataObject) -> None:
    text = encode_server_message(update, "hex")
    learned(text)
    raw = _mutate(data, text.encode())
    same_json(raw)
    same_json(raw.decode("utf-8", "replace"))


@FUZZ
@given(update=json_stream_updates(), data=st.data())
def test_values_of_wrong_type_or_range(update: StreamUpdate, data: st.DataObject) -> None:
    text = encode_server_message(update, "base64")
    learned(text)
    obj = json.loads(text)
    path = data.draw(st.sampled_from(_paths(obj)[1:]))
    target = obj
    for key in path[:-1]:
        target = target[key]
    if data.draw(st.booleans()) and isinstance(target, dict):
        del target[path[-1]]
    else:
        target[path[-1]] = data.draw(_weird_values)
    mutated = json.dumps(obj, separators=(",", ":"))
    same_json(mutated)
    # And the mutated shape learned, then mutated again within it.
    attempt(mutated)
    same_json(shape_preserving(data, mutated))


# A frame whose shape every case below shares after learning (prices as strings, as the
# server sends them; the other integers as numbers).
BASE = (
    '{"type":"streamUpdated","subscriptionId":1,"parsed":{"timestampUs":"1730986152400000",'
    '"priceFeeds":[{"priceFeedId":1,"price":"7512345678900","bestBidPrice":"7512345628900",'
    '"exponent":-8,"publisherCount":17,"feedUpdateTimestamp":1730986152399000}]}}'
)


@pytest.mark.parametrize(
    "text",
    [
        BASE,
        BASE.replace('"price":"7512345678900"', '"price":"-1"'),
        BASE.replace('"price":"7512345678900"', '"price":"-0"'),
        BASE.replace('"price":"7512345678900"', '"price":"007"'),  # general: 7; msgspec: refuses
        BASE.replace('"price":"7512345678900"', '"price":""'),
        BASE.replace('"price":"7512345678900"', '"price":"-"'),
        BASE.replace('"price":"7512345678900"', '"price":"1-2"'),
        BASE.replace('"price":"7512345678900"', '"price":"9223372036854775808"'),  # > i64
        BASE.replace('"price":"7512345678900"', '"price":"-9223372036854775808"'),
        BASE.replace('"price":"7512345678900"', '"price":"' + "9" * 30 + '"'),
        BASE.replace('"exponent":-8', '"exponent":-32769'),
        BASE.replace('"exponent":-8', '"exponent":--8'),
        BASE.replace('"publisherCount":17', '"publisherCount":65536'),
        BASE.replace('"priceFeedId":1', '"priceFeedId":4294967296'),
        # u64 above int64: the general path decodes it, msgspec's bounds refuse it
        BASE.replace("1730986152399000", "18446744073709551615"),
        BASE.replace('"timestampUs":"1730986152400000"', '"timestampUs":"18446744073709551615"'),
        BASE.replace('"timestampUs":"1730986152400000"', '"timestampUs":"18446744073709551616"'),
        BASE.replace('"subscriptionId":1', '"subscriptionId":18446744073709551615'),
        BASE.replace('"subscriptionId":1', '"subscriptionId":-1'),
        # a digit in a key: pri1ce has the shape of price, and is an unknown key
        BASE.replace('"price":', '"pri1ce":'),
        BASE.replace('"price":', '"-price":'),
        BASE.replace('"exponent":', '"expo-nent":'),
        BASE.replace('"priceFeedId":', '"priceFeed1Id":'),
        BASE.replace('"subscriptionId":', '"subscriptionId2":'),
        BASE.replace('"parsed":', '"parsed3":'),
    ],
)
def test_same_shape_edge_values(text: str) -> None:
    parse_server_message(BASE)
    assert typed_json.text_shape(text.encode()) == typed_json.text_shape(BASE.encode())
    same_json(text)


@pytest.mark.parametrize(
    ("learn", "text"),
    [
        # Spellings lax msgspec would take and the protocol refuses, in a learned shape.
        (BASE, BASE.replace('"7512345678900"', '"7512345678900.0"')),
        (BASE.replace('"7512345678900"', '"1.0"'), BASE.replace('"7512345678900"', '"1.5"')),
        (BASE.replace('"-8', '"-8.0'), BASE.replace('"-8', '"-8.0')),
        (BASE.replace("-8", "1e3"), BASE.replace("-8", "1e3")),
        (BASE.replace('"7512345678900"', '"1e3"'), BASE.replace('"7512345678900"', '"1e3"')),
        (BASE.replace('"7512345678900"', '"null"'), BASE.replace('"7512345678900"', '"null"')),
        (BASE.replace('"7512345678900"', "null"), BASE.replace('"7512345678900"', "null")),
        # Escapes: \u0031\u0065\u0033 is "1e3", with the shape of \u0031\u0030\u0030 ("100").
        (
            BASE.replace('"7512345678900"', r'"\u0031\u0030\u0030"'),
            BASE.replace('"7512345678900"', r'"\u0031\u0065\u0033"'),
        ),
        # A property key twice in a feed (the general path keeps the first place, last value).
        (
            BASE.replace('"exponent":-8', '"price":"5","exponent":-8'),
            BASE.replace('"exponent":-8', '"pri1ce":"5","exponent":-8'),
        ),
        (
            BASE.replace('"exponent":-8', '"pri1ce":"5","exponent":-8'),
            BASE.replace('"exponent":-8', '"price":"5","exponent":-8'),
        ),
        # A property key in an unknown object, in a feed and beside it.
        (
            BASE.replace('"exponent":-8', '"x":{"price":"5"},"exponent":-8'),
            BASE.replace('"exponent":-8', '"x":{"price":"6"},"exponent":-8'),
        ),
        (
            BASE.replace('"priceFeeds":', '"x":{"price":"5"},"priceFeeds":'),
            BASE.replace('"priceFeeds":', '"x":{"price":"6"},"priceFeeds":'),
        ),
        # Unknown keys at every level (tolerated; in a feed they leave it to the general path).
        (
            BASE.replace('"type":', '"new":[1,{"a":"b"}],"type":'),
            BASE.replace('"type":', '"new":[2,{"a":"b"}],"type":'),
        ),
        (
            BASE.replace('"priceFeeds":', '"new":"x","priceFeeds":'),
            BASE.replace('"priceFeeds":', '"new":"x","priceFeeds":'),
        ),
        (
            BASE.replace('"exponent":', '"newProperty":"x","exponent":'),
            BASE.replace('"exponent":', '"newProperty":"x","exponent":'),
        ),
        # Duplicate keys: the last value wins on both paths.
        (
            BASE.replace('"subscriptionId":1', '"subscriptionId":2,"subscriptionId":1'),
            BASE.replace('"subscriptionId":1', '"subscriptionId":"x","subscriptionId":1'),
        ),
        (
            BASE.replace('"type":"streamUpdated"', '"type":"error","type":"streamUpdated"'),
            BASE.replace('"type":"streamUpdated"', '"type":"streamUpdated","type":"error"'),
        ),
        # Whitespace, a string subscription id, an unknown field with a huge float.
        (BASE.replace(",", ", "), BASE.replace(",", ",\n")),
        (
            BASE.replace('"subscriptionId":1', '"subscriptionId":"1"'),
            BASE.replace('"subscriptionId":1', '"subscriptionId":"007"'),
        ),
        (BASE[:-1] + ',"x":1e999}', BASE[:-1] + ',"x":-1e999}'),
        (BASE[:-1] + ',"x":NaN}', BASE[:-1] + ',"x":Infinity}'),
    ],
)
def test_spellings_the_fast_path_must_not_take(learn: str, text: str) -> None:
    attempt(learn)
    same_json(learn)
    same_json(text)


def test_digit_runs_past_the_int_limit_stay_errors() -> None:
    """json.loads refuses a 5000-digit integer even in an unknown field; msgspec skips it."""
    short = BASE[:-1] + ',"x":9}'
    long = BASE[:-1] + ',"x":' + "9" * 5000 + "}"
    parse_server_message(short)
    assert typed_json.text_shape(short.encode()) == typed_json.text_shape(long.encode())
    same_json(long)
    assert outcome(parse_server_message, long)[0] == "error"


def test_non_ascii_and_invalid_utf8_in_envelope_data() -> None:
    """Envelope data is emptied from the shape, so its bytes are checked on their own."""
    envelope = LeUnsignedMessage(encode_payload(Payload(1, [FeedUpdate(1, price=1)], 1), "little"))
    data = envelope.encode().hex()
    ok = BASE[:-1] + f',"leUnsigned":{{"encoding":"hex","data":"{data}"}}}}'
    assert isinstance(parse_server_message(ok), StreamUpdate)
    for bad in (
        data[:-1] + "\u00e9",  # a non-ASCII character
        data[:-1] + r"\u00e9",  # the same as a JSON escape
        data[:-1] + r"\ud800",  # a lone surrogate escape
        data[:-2] + r"\u0030\u0031",  # escaped digits
    ):
        same_json(ok.replace(data, bad))
    same_json(ok.encode().replace(data.encode(), data[:-1].encode() + b"\xff"))
    same_json(ok.encode().replace(data.encode(), data[:-1].encode() + "\u00e9".encode()))


@pytest.mark.parametrize("depth", [60, 64, 65, 200, 990, 1000, 5000])
def test_deep_unknown_fields(depth: int) -> None:
    nested = "[" * depth + "]" * depth
    text = BASE[:-1] + ',"x":' + nested + "}"
    attempt(text)
    same_json(text)


def test_deep_unknown_fields_from_a_fresh_thread() -> None:
    texts = [BASE[:-1] + ',"x":' + "[" * d + "]" * d + "}" for d in range(900, 1010, 3)]
    for text in texts:
        attempt(text)
    results: list[Any] = []

    def run() -> None:
        for text in texts:
            results.append(
                (outcome(parse_server_message, text), outcome(parse_server_message_general, text))
            )

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(60)
    assert not thread.is_alive()
    assert len(results) == len(texts)
    for fast, general in results:
        assert fast == general


def test_a_known_shape_skips_the_general_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Proof that the fast path is taken (not only that it agrees): with the general
    decoder gone, updates of a learned shape still decode, to what it would have said."""
    other = BASE.replace("7512345678900", "7512345679999").replace(
        '"priceFeedId":1', '"priceFeedId":2'
    )
    expected = parse_server_message_general(other)
    typed_json.PLANS.clear()
    parse_server_message(BASE)

    def no_general(text: Any) -> Any:
        raise AssertionError("the general path was used")

    monkeypatch.setattr(messages, "parse_server_message_general", no_general)
    update = decode_frame(other.encode(), True)
    assert outcome(lambda: update) == outcome(lambda: expected)
    assert update.frame == other.encode()  # type: ignore[union-attr]
    assert update.frame_is_text  # type: ignore[union-attr]
    assert [f.properties for f in update.feeds] == [  # type: ignore[union-attr]
        (
            Property.PRICE,
            Property.BEST_BID_PRICE,
            Property.EXPONENT,
            Property.PUBLISHER_COUNT,
            Property.FEED_UPDATE_TIMESTAMP,
        )
    ]


def test_a_stream_of_new_shapes_pauses_the_fast_path() -> None:
    """Frames whose shape is new every time would pay the fast path's attempt on top of
    the general decoder: after a window of them, the fast path pauses, then tries again."""
    plans = typed_json.PLANS
    plans.clear()

    def name(i: int) -> str:
        return "".join(chr(ord("a") + int(d)) for d in str(i))

    for i in range(600):
        same_json(BASE.replace('"type"', f'"z{name(i)}":1,"type"'))
    assert plans.pause > 0
    lookups = plans.lookups
    same_json(BASE)  # paused: straight to the general decoder
    assert plans.lookups == lookups
    plans.pause = 0
    parse_server_message(BASE)
    assert plans.lookups == lookups + 1
    assert type(plans.get(typed_json.text_shape(BASE.encode()))) is tuple


def test_shapes_are_bounded() -> None:
    """However many shapes pass, the plans stay under their byte budget."""
    plans = typed_json.PLANS
    saved = plans.max_bytes
    plans.max_bytes = 20_000
    plans.clear()
    try:
        for n in range(300):
            plans.pause = 0
            extra = ',"k":"x"' * (n % 100)
            text = BASE.replace('"exponent":-8', '"exponent":-8' + extra)
            parse_server_message(text)
            assert plans._bytes <= plans.max_bytes
            assert sum(len(shape) for shape in plans._plans) == plans._bytes
            same_json(text)
    finally:
        plans.max_bytes = saved
        plans.clear()


# -- JSON envelopes of binary frames ---------------------------------------------------------


@FUZZ
@given(p=payloads(binary=False, max_feeds=3), data=st.data())
def test_json_envelopes_by_shape(p: Payload, data: st.DataObject) -> None:
    raw = JsonMessage.from_payload(p).data
    JsonMessage(raw).decode_payload()
    for text in (raw, shape_preserving(data, raw.decode()).encode(), _mutate(data, raw)):
        assert outcome(JsonMessage(text).decode_payload) == outcome(
            envelopes._payload_from_json_text, text
        )


# -- binary payloads: layouts against the walker -----------------------------------------------


@FUZZ
@given(p=payloads(), order=st.sampled_from(["little", "big"]))
def test_layouts_read_what_the_walker_reads(p: Payload, order: str) -> None:
    raw = encode_payload(p, order)  # type: ignore[arg-type]
    decode_payload(raw, order)  # type: ignore[arg-type]
    same_payload(raw, order)
    assert decode_payload(raw, order) == p  # type: ignore[arg-type]


@FUZZ
@given(p=payloads(), order=st.sampled_from(["little", "big"]), data=st.data())
def test_layouts_on_mutated_payloads(p: Payload, order: str, data: st.DataObject) -> None:
    raw = encode_payload(p, order)  # type: ignore[arg-type]
    decode_payload(raw, order)  # type: ignore[arg-type]
    same_payload(_mutate(data, raw), order)


@FUZZ
@given(update=binary_stream_updates(), data=st.data())
def test_binary_frames_with_layouts(update: StreamUpdate, data: st.DataObject) -> None:
    raw = encode_binary_update(update.subscription_id, list(update.messages))
    decode_binary_update(raw)
    mutated = _mutate(data, raw)
    fast = outcome(decode_binary_update, mutated)
    saved = payload.read_by_layouts
    try:
        payload.read_by_layouts = lambda c, data: None  # type: ignore[assignment]
        general = outcome(decode_binary_update, mutated)
    finally:
        payload.read_by_layouts = saved
    assert fast == general


LE_HEADER = bytes.fromhex("75d3c793 0100000000000000 01 01".replace(" ", ""))
FUNDING = bytes.fromhex("01000000 02 06 01 f6ffffffffffffff 00 0100000000000000".replace(" ", ""))


@pytest.mark.parametrize(
    "raw",
    [
        LE_HEADER + FUNDING,
        LE_HEADER + FUNDING.replace(bytes.fromhex("0601"), bytes.fromhex("0602")),  # flag 2
        LE_HEADER + FUNDING.replace(bytes.fromhex("0601f6ffffffffffffff"), bytes.fromhex("0600")),
        LE_HEADER + FUNDING[:-1],
        LE_HEADER + FUNDING + b"\x00",
        LE_HEADER + FUNDING.replace(bytes.fromhex("0601"), bytes.fromhex("0701")),
    ],
)
def test_layout_flags_and_lengths(raw: bytes) -> None:
    decode_payload(LE_HEADER + FUNDING, "little")
    same_payload(raw, "little")


def test_a_known_layout_skips_the_walker(monkeypatch: pytest.MonkeyPatch) -> None:
    feeds = [FeedUpdate(i, price=100 + i, exponent=-8, funding_rate=None, market_session="closed",
                        properties=(Property.PRICE, Property.EXPONENT, Property.FUNDING_RATE,
                                    Property.MARKET_SESSION)) for i in range(3)]  # fmt: skip
    raw = encode_payload(Payload(5, feeds, 3), "big")
    decode_payload(raw, "big")
    other = encode_payload(Payload(6, [FeedUpdate(9, price=7, exponent=2, market_session="closed",
                                                  properties=feeds[0].properties)], 3), "big")  # fmt: skip
    expected = walk_payload(other, "big")

    def no_walker(*args: Any) -> Any:
        raise AssertionError("the walker was used")

    monkeypatch.setattr(payload, "walk_payload", no_walker)
    got = decode_payload(other, "big")
    assert got == expected
    assert wire_order(got) == wire_order(expected)


def test_layouts_are_bounded() -> None:
    cache = payload._codec("little").layouts
    props = list(Property)
    for n in range(300):
        chosen = tuple(props[(n + k) % 13] for k in range(n % 13 + 1))
        feed = FeedUpdate(1, **{p.attr: 1 if p is not Property.MARKET_SESSION else "regular"
                                for p in chosen}, properties=chosen)  # fmt: skip
        decode_payload(encode_payload(Payload(1, [feed], 1), "little"), "little")
    assert 0 < len(cache) <= MAX_LAYOUTS


# -- threads -------------------------------------------------------------------------------


def test_threads_share_the_caches_safely() -> None:
    """Four threads decode a mix of JSON and binary inputs while shapes and layouts are
    learned and forgotten; every result equals the general path's."""
    texts = [
        BASE.replace('"priceFeedId":1', f'"priceFeedId":{i}') + " " * (i % 5) for i in range(40)
    ]
    binaries = [
        encode_payload(Payload(i, [FeedUpdate(i, price=i + 1, exponent=-i % 7,
                                              properties=(Property.PRICE, Property.EXPONENT))], 1),
                       "little" if i % 2 else "big")
        for i in range(40)
    ]  # fmt: skip
    expected_json = [outcome(parse_server_message_general, t) for t in texts]
    expected_bin = [
        outcome(walk_payload, b, "little" if i % 2 else "big") for i, b in enumerate(binaries)
    ]
    failures: list[str] = []

    def run(seed: int) -> None:
        for round_ in range(30):
            for i in range(40):
                j = (i * 7 + seed + round_) % 40
                if outcome(parse_server_message, texts[j]) != expected_json[j]:
                    failures.append(f"json {j}")
                if (
                    outcome(decode_payload, binaries[j], "little" if j % 2 else "big")
                    != expected_bin[j]
                ):
                    failures.append(f"binary {j}")
            if seed == 0 and round_ % 10 == 0:
                typed_json.PLANS.clear()

    threads = [threading.Thread(target=run, args=(seed,)) for seed in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads)
    assert not failures, failures[:5]
