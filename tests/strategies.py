"""Hypothesis strategies for the wire types of ``pylazer_sync.protocol``.

Shared by the round-trip, malformed-input and (later) fuzz tests. Every strategy draws
values that the wire format can carry *and* read back unchanged:

- a nullable i64 (price-like fields) is ``None`` or non-zero, because binary ``0`` means
  absent; flagged fields (funding*, feedUpdateTimestamp) may be anything in range or ``None``;
- ``publisherCount``, ``exponent`` and ``marketSession`` have no "absent" in binary, so a
  feed that lists them always carries a value;
- a payload meant for JSON has ``channel_id=None`` (the ``parsed`` object does not carry it).

Bounds come from the integer limits written out here, not from the package, so a wrong
constant in the package cannot make the strategies agree with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from pylazer_sync.protocol import (
    Channel,
    Envelope,
    EvmMessage,
    Format,
    JsonMessage,
    LeEcdsaMessage,
    LeUnsignedMessage,
    MarketSession,
    Payload,
    Property,
    ServerError,
    SolanaMessage,
    StreamUpdate,
    Subscribed,
    SubscribedWithIgnoredFeeds,
    SubscribeRequest,
    SubscriptionError,
    UnknownMessage,
    Unsubscribed,
    UnsubscribeRequest,
    stream_update_from_envelopes,
)
from pylazer_sync.protocol.payload import FeedUpdate

I16_MIN, I16_MAX = -32768, 32767
I64_MIN, I64_MAX = -9223372036854775808, 9223372036854775807
U16_MAX = 65535
U32_MAX = 4294967295
U64_MAX = 18446744073709551615

SESSION_NAMES = ("regular", "preMarket", "postMarket", "overNight", "closed")

# Property -> snake_case attribute on FeedUpdate, written out (not taken from the package).
ATTRS: dict[Property, str] = {
    Property.PRICE: "price",
    Property.BEST_BID_PRICE: "best_bid_price",
    Property.BEST_ASK_PRICE: "best_ask_price",
    Property.PUBLISHER_COUNT: "publisher_count",
    Property.EXPONENT: "exponent",
    Property.CONFIDENCE: "confidence",
    Property.FUNDING_RATE: "funding_rate",
    Property.FUNDING_TIMESTAMP: "funding_timestamp",
    Property.FUNDING_RATE_INTERVAL: "funding_rate_interval",
    Property.MARKET_SESSION: "market_session",
    Property.EMA_PRICE: "ema_price",
    Property.EMA_CONFIDENCE: "ema_confidence",
    Property.FEED_UPDATE_TIMESTAMP: "feed_update_timestamp",
}

u8s = st.integers(0, 255)
u16s = st.integers(0, U16_MAX)
u32s = st.integers(0, U32_MAX)
u64s = st.integers(0, U64_MAX)
i16s = st.integers(I16_MIN, I16_MAX)
i64s = st.integers(I64_MIN, I64_MAX)
# Edge values are drawn often on purpose: they are where byte-order and sign bugs live.
i64_edges = st.sampled_from([I64_MIN, I64_MIN + 1, -1, 1, I64_MAX - 1, I64_MAX])
u64_edges = st.sampled_from([0, 1, 2**32 - 1, 2**32, 2**63, U64_MAX])
nonzero_i64s = st.one_of(i64_edges, i64s.filter(bool))
any_i64s = st.one_of(i64_edges, i64s)
any_u64s = st.one_of(u64_edges, u64s)

# A session as FeedUpdate holds it: a known name, or an unknown binary code as its decimal string.
unknown_session_codes = st.integers(I16_MIN, I16_MAX).filter(lambda c: not 0 <= c <= 4)
market_sessions = st.one_of(st.sampled_from(SESSION_NAMES), unknown_session_codes.map(str))


def property_values(prop: Property) -> st.SearchStrategy[Any]:
    """Values one property can carry and read back unchanged (``None`` = absent)."""
    if prop in (
        Property.PRICE,
        Property.BEST_BID_PRICE,
        Property.BEST_ASK_PRICE,
        Property.CONFIDENCE,
        Property.EMA_PRICE,
        Property.EMA_CONFIDENCE,
    ):
        return st.none() | nonzero_i64s
    if prop is Property.FUNDING_RATE:
        return st.none() | any_i64s
    if prop in (
        Property.FUNDING_TIMESTAMP,
        Property.FUNDING_RATE_INTERVAL,
        Property.FEED_UPDATE_TIMESTAMP,
    ):
        return st.none() | any_u64s
    if prop is Property.PUBLISHER_COUNT:
        return u16s
    if prop is Property.EXPONENT:
        return i16s
    assert prop is Property.MARKET_SESSION
    return market_sessions


@st.composite
def feed_updates(
    draw: st.DrawFn, feed_ids: st.SearchStrategy[int] = u32s, max_properties: int = 13
) -> FeedUpdate:
    """A feed with a random subset of the 13 properties, in a random wire order."""
    order = draw(st.permutations(list(Property)))
    props = tuple(order[: draw(st.integers(0, max_properties))])
    values = {ATTRS[p]: draw(property_values(p)) for p in props}
    return FeedUpdate(draw(feed_ids), **values, properties=props)


def all_properties_feed(feed_id: int) -> st.SearchStrategy[FeedUpdate]:
    """A feed carrying all 13 properties in id order."""
    props = tuple(Property)
    return st.fixed_dictionaries({ATTRS[p]: property_values(p) for p in props}).map(
        lambda values: FeedUpdate(feed_id, **values, properties=props)
    )


@st.composite
def payloads(draw: st.DrawFn, binary: bool = True, max_feeds: int = 6) -> Payload:
    """A payload; ``binary=False`` leaves ``channel_id`` as ``None`` (JSON ``parsed``)."""
    feeds = draw(st.lists(feed_updates(), max_size=max_feeds))
    channel_id = draw(u8s) if binary else None
    return Payload(timestamp_us=draw(any_u64s), feeds=feeds, channel_id=channel_id)


signatures = st.binary(min_size=64, max_size=64)
ed25519_keys = st.binary(min_size=32, max_size=32)


def raw_payloads(max_size: int = 300) -> st.SearchStrategy[bytes]:
    """Opaque payload bytes: envelopes carry them without looking inside."""
    return st.binary(max_size=max_size)


def solana_messages(payload: st.SearchStrategy[bytes]) -> st.SearchStrategy[SolanaMessage]:
    return st.builds(SolanaMessage, signatures, ed25519_keys, payload)


def evm_messages(payload: st.SearchStrategy[bytes]) -> st.SearchStrategy[EvmMessage]:
    return st.builds(EvmMessage, signatures, u8s, payload)


def le_ecdsa_messages(payload: st.SearchStrategy[bytes]) -> st.SearchStrategy[LeEcdsaMessage]:
    return st.builds(LeEcdsaMessage, signatures, u8s, payload)


def le_unsigned_messages(
    payload: st.SearchStrategy[bytes],
) -> st.SearchStrategy[LeUnsignedMessage]:
    return st.builds(LeUnsignedMessage, payload)


def json_messages() -> st.SearchStrategy[JsonMessage]:
    return payloads(binary=False, max_feeds=3).map(JsonMessage.from_payload)


def envelopes(payload: st.SearchStrategy[bytes] | None = None) -> st.SearchStrategy[Any]:
    """Any of the five envelope kinds (opaque payload bytes for the four binary ones)."""
    p = payload if payload is not None else raw_payloads()
    return st.one_of(
        solana_messages(p),
        evm_messages(p),
        le_ecdsa_messages(p),
        le_unsigned_messages(p),
        json_messages(),
    )


def encoded_payloads(byte_order: str, max_feeds: int = 3) -> st.SearchStrategy[bytes]:
    """Valid binary payloads in one byte order (for envelopes whose payload gets decoded)."""
    return payloads(max_feeds=max_feeds).map(lambda p: p.to_bytes(byte_order))  # type: ignore[arg-type]


@st.composite
def binary_stream_updates(draw: st.DrawFn) -> StreamUpdate:
    """A StreamUpdate as a binary frame carries it: any mix of envelopes, valid payloads.

    At most one envelope of each format: a frame carrying two would keep only the
    first in the named attributes, and equality compares those.
    """
    le, be = encoded_payloads("little"), encoded_payloads("big")
    candidates: dict[str, st.SearchStrategy[Any]] = {
        "json": json_messages(),
        "evm": evm_messages(be),
        "solana": solana_messages(le),
        "le_ecdsa": le_ecdsa_messages(le),
        "le_unsigned": le_unsigned_messages(le),
    }
    chosen = draw(st.permutations(list(candidates)))[: draw(st.integers(0, len(candidates)))]
    messages: list[Envelope] = [draw(candidates[name]) for name in chosen]
    return stream_update_from_envelopes(draw(u64s), messages)


@st.composite
def json_stream_updates(draw: st.DrawFn) -> StreamUpdate:
    """A StreamUpdate as a JSON ``streamUpdated`` carries it (``parsed`` has no channel)."""
    le, be = encoded_payloads("little"), encoded_payloads("big")
    kwargs: dict[str, Any] = {}
    for name, strategy in (
        ("evm", evm_messages(be)),
        ("solana", solana_messages(le)),
        ("le_ecdsa", le_ecdsa_messages(le)),
        ("le_unsigned", le_unsigned_messages(le)),
    ):
        if draw(st.booleans()):
            kwargs[name] = draw(strategy)
    parsed = draw(st.none() | payloads(binary=False, max_feeds=4))
    return StreamUpdate(draw(u64s), parsed, **kwargs)


texts = st.text(max_size=40)
KNOWN_TYPES = frozenset(
    {
        "subscribed",
        "subscribedWithInvalidFeedIdsIgnored",
        "unsubscribed",
        "subscriptionError",
        "error",
        "streamUpdated",
    }
)

# JSON values that survive a round trip through json.dumps/loads unchanged (no floats:
# NaN and -0.0 compare oddly; nothing here needs them).
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)


@st.composite
def unknown_messages(draw: st.DrawFn) -> UnknownMessage:
    kind = draw(st.text(max_size=20).filter(lambda t: t not in KNOWN_TYPES))
    raw = draw(st.dictionaries(st.text(max_size=8).filter(lambda k: k != "type"), json_values))
    raw["type"] = kind
    return UnknownMessage(kind, raw)


def server_messages() -> st.SearchStrategy[Any]:
    """Every JSON server message kind, streamUpdated included."""
    u32_lists = st.lists(u32s, max_size=5).map(tuple)
    return st.one_of(
        st.builds(Subscribed, u64s),
        st.builds(Unsubscribed, u64s),
        st.builds(SubscriptionError, u64s, texts),
        st.builds(ServerError, texts),
        st.builds(
            SubscribedWithIgnoredFeeds,
            u64s,
            u32_lists,
            u32_lists,
            st.lists(texts, max_size=3).map(tuple),
            u32_lists,
            u32_lists,
        ),
        unknown_messages(),
        json_stream_updates(),
    )


# -- requests ------------------------------------------------------------------------


# How a caller may spell a property: the enum, the wire name or the snake_case name.
def property_spellings(prop: Property) -> st.SearchStrategy[Any]:
    return st.sampled_from([prop, prop.value, ATTRS[prop]])


@st.composite
def subscribe_requests(draw: st.DrawFn, with_id: bool = True) -> SubscribeRequest:
    """A valid subscribe request with its arguments spelled in any accepted way."""
    props = draw(st.lists(st.sampled_from(list(Property)), min_size=1, max_size=13, unique=True))
    by_ids = draw(st.booleans())
    sessions = draw(
        st.none() | st.lists(st.sampled_from(list(MarketSession)), unique=True, max_size=5)
    )
    return SubscribeRequest(
        properties=[draw(property_spellings(p)) for p in props],
        price_feed_ids=draw(st.lists(u32s, min_size=1, max_size=8, unique=True))
        if by_ids
        else None,
        symbols=None
        if by_ids
        else draw(st.lists(st.text(min_size=1, max_size=16), min_size=1, max_size=5, unique=True)),
        channel=draw(st.sampled_from(list(Channel)) | st.sampled_from([c.value for c in Channel])),
        formats=[
            draw(st.sampled_from([f, f.value]))
            for f in draw(st.lists(st.sampled_from(list(Format)), unique=True, max_size=4))
        ],
        delivery_format=draw(st.sampled_from(["json", "binary"])),
        json_binary_encoding=draw(st.sampled_from(["base64", "hex"])),
        parsed=draw(st.booleans()),
        ignore_invalid_feeds=draw(st.booleans()),
        market_sessions=sessions,
        subscription_id=draw(u64s) if with_id else None,
    )


def unsubscribe_requests() -> st.SearchStrategy[UnsubscribeRequest]:
    return st.builds(UnsubscribeRequest, u64s)


# -- structure-aware mutations (for the fuzz tests) ---------------------------------------
#
# Where the length and count fields of a valid binary frame, envelope or payload are, by
# PROTOCOL.md's layout written out again here (not taken from the package), so a mutation
# can aim at them: a length pointing past the end, a count of 255, a zero.

FRAME_MAGIC = bytes.fromhex("7377881b")
ENVELOPE_LAYOUTS: dict[bytes, tuple[int, str]] = {
    # format magic -> (offset of the u16 payload length, its byte order = the payload's)
    bytes.fromhex("2a22999a"): (69, "big"),  # EVM: signature 64, recovery id 1
    bytes.fromhex("b9011a82"): (100, "little"),  # Solana: signature 64, public key 32
    bytes.fromhex("e4bd474d"): (69, "little"),  # LeEcdsa: signature 64, recovery id 1
    bytes.fromhex("0c4d6359"): (4, "little"),  # LeUnsigned
}
# Property id -> size of its value (flagged properties: None, a u8 flag then 8 bytes if set).
PROPERTY_VALUE_SIZES: dict[int, int | None] = {
    0: 8, 1: 8, 2: 8, 3: 2, 4: 2, 5: 8, 6: None, 7: None, 8: None, 9: 2, 10: 8, 11: 8, 12: None,
}  # fmt: skip


@dataclass(frozen=True)
class WireField:
    """A length or count field of a valid input: where it is, how wide, which byte order."""

    offset: int
    size: int
    order: str
    kind: str

    def read(self, raw: bytes) -> int:
        return int.from_bytes(raw[self.offset : self.offset + self.size], self.order)  # type: ignore[arg-type]

    def write(self, raw: bytes, value: int) -> bytes:
        value &= (1 << (8 * self.size)) - 1
        encoded = value.to_bytes(self.size, self.order)  # type: ignore[arg-type]
        return raw[: self.offset] + encoded + raw[self.offset + self.size :]


def payload_fields(raw: bytes, base: int, order: str) -> list[WireField]:
    """The feed count, each feed's property count and each property id of a payload."""
    fields = [WireField(base + 13, 1, order, "feed count")]
    off = base + 14
    for _ in range(raw[base + 13]):
        fields.append(WireField(off + 4, 1, order, "property count"))
        count = raw[off + 4]
        off += 5
        for _ in range(count):
            fields.append(WireField(off, 1, order, "property id"))
            size = PROPERTY_VALUE_SIZES[raw[off]]
            off += 1
            if size is None:
                off += 1 + (8 if raw[off] else 0)
            else:
                off += size
    return fields


def envelope_fields(raw: bytes, base: int = 0) -> list[WireField]:
    """The payload length of an envelope (none for JSON) and its payload's fields."""
    layout = ENVELOPE_LAYOUTS.get(raw[base : base + 4])
    if layout is None:
        return []
    offset, order = layout
    length = WireField(base + offset, 2, order, "envelope payload length")
    return [length, *payload_fields(raw, base + offset + 2, order)]


def frame_fields(raw: bytes) -> list[WireField]:
    """Every message length of a binary frame, and the fields inside each envelope."""
    assert raw[:4] == FRAME_MAGIC
    fields: list[WireField] = []
    off = 12
    while off < len(raw):
        length = WireField(off, 2, "big", "frame message length")
        fields.append(length)
        fields += envelope_fields(raw, off + 2)
        off += 2 + length.read(raw)
    return fields


@st.composite
def field_mutations(draw: st.DrawFn, raw: bytes, fields: list[WireField]) -> bytes:
    """``raw`` with one to three of its ``fields`` set to hostile values: past the end,
    the maximum (a huge count), zero, one off, or anything; sometimes also truncated
    right after a field, so a length points past a shorter end."""
    if not fields:
        return raw
    for _ in range(draw(st.integers(1, 3))):
        f = draw(st.sampled_from(fields))
        top = (1 << (8 * f.size)) - 1
        value = f.read(raw)
        new = draw(
            st.sampled_from([0, 1, top, value + 1, value - 1, value + len(raw), len(raw)])
            | st.integers(0, top)
        )
        raw = f.write(raw, new)
        if draw(st.integers(0, 4)) == 0:
            raw = raw[: f.offset + f.size + draw(st.integers(0, 8))]
            fields = [g for g in fields if g.offset + g.size <= len(raw)]
            if not fields:
                break
    return raw


INVALID_UTF8 = (
    b"\xff",
    b"\xfe\xff",
    b"\x80",  # a lone continuation byte
    b"\xc3\x28",  # a lead byte without its continuation
    b"\xe2\x82",  # truncated three-byte sequence
    b"\xc0\xaf",  # overlong encoding of '/'
    b"\xed\xa0\x80",  # an encoded surrogate (U+D800)
    b"\xf4\x90\x80\x80",  # past U+10FFFF
    b"\x00",
)


@st.composite
def invalid_utf8_mutations(draw: st.DrawFn, text: bytes) -> bytes:
    """JSON text with invalid UTF-8 inside a string value (just after a quote) or anywhere."""
    quotes = [i + 1 for i, b in enumerate(text) if b == 0x22]
    positions = st.sampled_from(quotes) if quotes else st.integers(0, len(text))
    for _ in range(draw(st.integers(1, 3))):
        i = draw(positions | st.integers(0, len(text)))
        text = text[:i] + draw(st.sampled_from(INVALID_UTF8)) + text[i:]
    return text


def nested_json(depth: int, kind: str = "list") -> str:
    """JSON text of ``0`` wrapped in ``depth`` lists (or single-key objects), built as
    text: ``json.dumps`` itself cannot go past the recursion limit."""
    if kind == "list":
        return "[" * depth + "0" + "]" * depth
    return '{"a":' * depth + "0" + "}" * depth
