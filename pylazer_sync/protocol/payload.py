"""The signed payload: a timestamp, a channel and per-feed property values.

Two spellings of the same data live here: the binary payload carried inside every
envelope (PROTOCOL.md, "Payload"), in either byte order, and the ``parsed`` JSON object
of JSON delivery. Both decode to the same :class:`Payload` / :class:`FeedUpdate` types.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from decimal import Decimal
from typing import Any, Final, Literal

from ..errors import InvalidRequestError, ProtocolError
from .layouts import (
    FLAG_I64,
    FLAG_U64,
    I16,
    I64_NULLABLE,
    KIND_BY_PROPERTY,
    U16,
    LayoutCache,
    signature_of,
)
from .types import (
    CHANNEL_BY_ID,
    I16_MAX,
    I16_MIN,
    I64_MAX,
    I64_MIN,
    MARKET_SESSION_BY_CODE,
    MARKET_SESSION_CODES,
    PRICE_LIKE_ATTRS,
    PROPERTY_ATTRS,
    PROPERTY_BY_ID,
    PROPERTY_BY_NAME,
    PROPERTY_IDS,
    U16_MAX,
    U32_MAX,
    U64_MAX,
    Channel,
    Property,
)

ByteOrder = Literal["little", "big"]

PAYLOAD_MAGIC: Final = 2479346549


@dataclass(slots=True)
class FeedUpdate:
    """The values of one feed in one update.

    Price-like fields hold integer mantissas; their real value is
    ``mantissa * 10**exponent`` (see :meth:`real`). Timestamps are microseconds since
    the Unix epoch. A field is ``None`` when the property was not requested or the
    server had no value (binary ``0`` for prices, a cleared flag for funding fields,
    a key left out in JSON). ``market_session`` is the session name (``"regular"``,
    ``"preMarket"``, ...); an unknown binary code is kept as its decimal string.
    """

    feed_id: int
    price: int | None = None
    best_bid_price: int | None = None
    best_ask_price: int | None = None
    publisher_count: int | None = None
    exponent: int | None = None
    confidence: int | None = None
    funding_rate: int | None = None
    funding_timestamp: int | None = None
    funding_rate_interval: int | None = None
    market_session: str | None = None
    ema_price: int | None = None
    ema_confidence: int | None = None
    feed_update_timestamp: int | None = None
    # The properties as they appeared on the wire, in wire order. The binary encoder
    # needs it (order is part of the format); equality ignores it because JSON leaves
    # absent values out while binary carries them as zero.
    properties: tuple[Property, ...] = field(default=(), compare=False)

    def real(self, name: str) -> Decimal | None:
        """Exact real value ``mantissa x 10^exponent`` of a price-like field.

        ``name`` is one of ``price``, ``best_bid_price``, ``best_ask_price``,
        ``confidence``, ``funding_rate``, ``ema_price``, ``ema_confidence`` (the wire
        names such as ``bestBidPrice`` work too). Returns ``None`` when the value or the
        exponent is absent (subscribe to ``exponent`` to get real values).
        """
        attr = _price_like_attr(name)
        mantissa = getattr(self, attr)
        if mantissa is None or self.exponent is None:
            return None
        return Decimal(mantissa).scaleb(self.exponent)

    def real_values(self) -> dict[str, Decimal]:
        """All price-like fields that have a value, as exact decimals keyed by attribute name."""
        out: dict[str, Decimal] = {}
        if self.exponent is None:
            return out
        for attr in _PRICE_LIKE_ORDER:
            mantissa = getattr(self, attr)
            if mantissa is not None:
                out[attr] = Decimal(mantissa).scaleb(self.exponent)
        return out

    def wire_properties(self) -> tuple[Property, ...]:
        """The properties to encode: the wire order if known, else every field with a value."""
        if self.properties:
            return self.properties
        return tuple(p for p in Property if getattr(self, PROPERTY_ATTRS[p]) is not None)


# The decoders build a FeedUpdate positionally (faster than keywords on the hot path):
# feed_id, then the 13 property fields in property-id order, then ``properties``.
assert [f.name for f in fields(FeedUpdate)] == [
    "feed_id",
    *(PROPERTY_ATTRS[p] for p in Property),
    "properties",
], "FeedUpdate's fields must be feed_id, the properties in id order, then properties"
_NO_VALUES: Final[tuple[None, ...]] = (None,) * len(Property)
# The same class, typed loosely: mypy cannot check a call with a list spread in the middle.
new_feed: Final[Callable[..., FeedUpdate]] = FeedUpdate

_PRICE_LIKE_ORDER: Final = tuple(
    PROPERTY_ATTRS[p] for p in Property if PROPERTY_ATTRS[p] in PRICE_LIKE_ATTRS
)


def _price_like_attr(name: str) -> str:
    prop = PROPERTY_BY_NAME.get(name)
    attr = PROPERTY_ATTRS[prop] if prop is not None else name
    if attr not in PRICE_LIKE_ATTRS:
        raise InvalidRequestError(
            f"{name!r} is not a price-like field; expected one of {', '.join(_PRICE_LIKE_ORDER)}"
        )
    return attr


@dataclass(slots=True)
class Payload:
    """One update's payload: when it was made, on which channel, and the feeds' values.

    ``channel_id`` is the raw id of a binary payload (``None`` for the JSON ``parsed``
    object, which does not carry it); :attr:`channel` names it when known.
    """

    timestamp_us: int
    feeds: list[FeedUpdate]
    channel_id: int | None = None

    @property
    def channel(self) -> Channel | None:
        """The channel named by ``channel_id``, or ``None`` if absent or unknown."""
        return None if self.channel_id is None else CHANNEL_BY_ID.get(self.channel_id)

    def feed(self, feed_id: int) -> FeedUpdate | None:
        """The update of one feed, or ``None`` if this payload does not carry it."""
        for f in self.feeds:
            if f.feed_id == feed_id:
                return f
        return None

    # -- binary -----------------------------------------------------------------

    def to_bytes(self, byte_order: ByteOrder) -> bytes:
        """Encode as the binary payload of an envelope, in the given byte order."""
        return encode_payload(self, byte_order)

    @classmethod
    def from_bytes(cls, data: bytes, byte_order: ByteOrder) -> Payload:
        """Decode a binary payload; raises :class:`ProtocolError` with the offset on bad input."""
        return decode_payload(data, byte_order)

    # -- JSON -------------------------------------------------------------------

    def to_json_obj(self) -> dict[str, Any]:
        """The ``parsed`` JSON object, with PROTOCOL.md's value types."""
        return payload_to_json_obj(self)

    @classmethod
    def from_json_obj(cls, obj: Any) -> Payload:
        """Decode a ``parsed`` JSON object (numbers given as strings are accepted)."""
        return payload_from_json_obj(obj)


# ---------------------------------------------------------------------------------
# Binary payload
# ---------------------------------------------------------------------------------


class _Codec:
    """Precompiled structs for one byte order (built once; the decoder runs per update)."""

    __slots__ = ("feed_head", "head", "i16", "i64", "layouts", "prefix", "u16", "u64")

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.head = struct.Struct(prefix + "IQBB")
        self.feed_head = struct.Struct(prefix + "IB")
        self.i64 = struct.Struct(prefix + "q")
        self.u64 = struct.Struct(prefix + "Q")
        self.u16 = struct.Struct(prefix + "H")
        self.i16 = struct.Struct(prefix + "h")
        self.layouts = LayoutCache(prefix, new_feed)


_CODECS: Final[dict[str, _Codec]] = {"little": _Codec("<"), "big": _Codec(">")}


def _codec(byte_order: str) -> _Codec:
    try:
        return _CODECS[byte_order]
    except KeyError:
        raise InvalidRequestError(
            f"byte_order must be 'little' or 'big', not {byte_order!r}"
        ) from None


def decode_payload(data: bytes, byte_order: ByteOrder) -> Payload:
    """Decode the binary payload of an envelope (PROTOCOL.md, "Payload").

    Feeds whose layout was seen before are read with one precompiled ``struct`` each
    (``layouts.py``); anything else, including every malformed payload, goes through
    :func:`walk_payload`, whose feeds then teach their layouts for the next time.
    """
    c = _codec(byte_order)
    if type(data) is bytes:
        payload = read_by_layouts(c, data)
        if payload is not None:
            return payload
    payload = walk_payload(data, byte_order)
    learn_layouts(c, payload)
    return payload


def read_by_layouts(c: _Codec, data: bytes) -> Payload | None:
    """The payload, if every feed has a compiled layout and the bytes end with the last one;
    else ``None`` (nothing is raised here: the walker words the errors)."""
    try:
        magic, timestamp, channel_id, feed_count = c.head.unpack_from(data, 0)
    except struct.error:
        return None
    if magic != PAYLOAD_MAGIC:
        return None
    hints = c.layouts.hints
    feeds: list[FeedUpdate] = []
    off = 14
    for _ in range(feed_count):
        candidates = hints.get(data[off + 4 : off + 6])
        if candidates is None:
            return None
        for read, size in candidates:
            try:
                feed = read(data, off)
            except struct.error:  # the data ends inside this layout
                continue
            if feed is not None:
                feeds.append(feed)
                off += size
                break
        else:
            return None
    if off != len(data):
        return None
    return Payload(timestamp, feeds, channel_id)


def learn_layouts(c: _Codec, payload: Payload) -> None:
    """Compile the layouts of a walked payload's feeds (each at most once)."""
    for feed in payload.feeds:
        signature = signature_of(feed)
        if signature is not None:
            c.layouts.learn(signature)


def walk_payload(data: bytes, byte_order: ByteOrder) -> Payload:
    """Decode a binary payload value by value: the general decoder, for any input.

    It reads whatever the bytes hold and words every error with its offset.
    :func:`decode_payload` goes through it for payloads whose feed layouts are not
    compiled yet, and for every payload that is malformed.
    """
    c = _codec(byte_order)
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ProtocolError(f"payload: expected bytes, got {type(data).__name__}")
    n = len(data)
    if n < 14:
        raise ProtocolError(f"payload too short: {n} bytes, the header alone needs 14")
    magic, timestamp, channel_id, feed_count = c.head.unpack_from(data, 0)
    if magic != PAYLOAD_MAGIC:
        raise ProtocolError(
            f"bad payload magic at offset 0: {magic} ({byte_order}-endian), expected {PAYLOAD_MAGIC}"
        )
    off = 14
    feeds: list[FeedUpdate] = []
    i64, u64, u16, i16 = c.i64.unpack_from, c.u64.unpack_from, c.u16.unpack_from, c.i16.unpack_from
    for feed_index in range(feed_count):
        if off + 5 > n:
            raise ProtocolError(
                f"payload truncated at offset {off}: feed {feed_index} of {feed_count} "
                f"needs a 5-byte header, {n - off} bytes left"
            )
        feed_id, prop_count = c.feed_head.unpack_from(data, off)
        off += 5
        values: list[Any] = list(_NO_VALUES)
        props: list[Property] = []
        for _ in range(prop_count):
            if off >= n:
                raise ProtocolError(
                    f"payload truncated at offset {off}: feed {feed_id} announces "
                    f"{prop_count} properties, {len(props)} present"
                )
            prop = PROPERTY_BY_ID.get(data[off])
            if prop is None:
                raise ProtocolError(
                    f"unknown property id {data[off]} at offset {off} (feed {feed_id}); "
                    "the rest of this payload cannot be decoded"
                )
            off += 1
            kind = KIND_BY_PROPERTY[prop]
            try:
                if kind == I64_NULLABLE:
                    (v,) = i64(data, off)
                    off += 8
                    value: Any = v or None
                elif kind in (FLAG_I64, FLAG_U64):
                    flag = data[off]
                    off += 1
                    if flag:
                        (value,) = (i64 if kind == FLAG_I64 else u64)(data, off)
                        off += 8
                    else:
                        value = None
                elif kind == U16:
                    (value,) = u16(data, off)
                    off += 2
                elif kind == I16:
                    (value,) = i16(data, off)
                    off += 2
                else:  # SESSION
                    (code,) = i16(data, off)
                    off += 2
                    session = MARKET_SESSION_BY_CODE.get(code)
                    value = session.value if session is not None else str(code)
            except (struct.error, IndexError):
                raise ProtocolError(
                    f"payload truncated at offset {off}: value of property {prop.value} "
                    f"(feed {feed_id}) runs past the end ({n} bytes)"
                ) from None
            values[PROPERTY_IDS[prop]] = value
            props.append(prop)
        feeds.append(new_feed(feed_id, *values, tuple(props)))
    if off != n:
        raise ProtocolError(f"payload has {n - off} unexpected trailing bytes at offset {off}")
    return Payload(timestamp_us=timestamp, feeds=feeds, channel_id=channel_id)


def _check_range(value: int, lo: int, hi: int, what: str) -> int:
    if type(value) is not int or not lo <= value <= hi:
        raise ProtocolError(f"{what} = {value!r} does not fit the wire type (range {lo}..{hi})")
    return value


def encode_payload(payload: Payload, byte_order: ByteOrder) -> bytes:
    """Encode a payload in the binary layout of PROTOCOL.md, in the given byte order."""
    c = _codec(byte_order)
    if payload.channel_id is None:
        raise ProtocolError("a binary payload needs a channel_id")
    if len(payload.feeds) > 255:
        raise ProtocolError(f"a payload holds at most 255 feeds, not {len(payload.feeds)}")
    out = [
        c.head.pack(
            PAYLOAD_MAGIC,
            _check_range(payload.timestamp_us, 0, U64_MAX, "timestamp_us"),
            _check_range(payload.channel_id, 0, 255, "channel_id"),
            len(payload.feeds),
        )
    ]
    for feed in payload.feeds:
        props = feed.wire_properties()
        if len(props) > 255:
            raise ProtocolError(f"feed {feed.feed_id} has more than 255 properties")
        out.append(c.feed_head.pack(_check_range(feed.feed_id, 0, U32_MAX, "feed_id"), len(props)))
        for prop in props:
            attr = PROPERTY_ATTRS[prop]
            value = getattr(feed, attr)
            kind = KIND_BY_PROPERTY[prop]
            out.append(bytes((PROPERTY_IDS[prop],)))
            if kind == I64_NULLABLE:
                out.append(
                    c.i64.pack(0 if value is None else _check_range(value, I64_MIN, I64_MAX, attr))
                )
            elif kind in (FLAG_I64, FLAG_U64):
                if value is None:
                    out.append(b"\x00")
                else:
                    lo, hi = (I64_MIN, I64_MAX) if kind == FLAG_I64 else (0, U64_MAX)
                    out.append(b"\x01")
                    out.append(
                        (c.i64 if kind == FLAG_I64 else c.u64).pack(
                            _check_range(value, lo, hi, attr)
                        )
                    )
            elif kind == U16:
                out.append(
                    c.u16.pack(_check_range(0 if value is None else value, 0, U16_MAX, attr))
                )
            elif kind == I16:
                out.append(
                    c.i16.pack(_check_range(0 if value is None else value, I16_MIN, I16_MAX, attr))
                )
            else:
                out.append(c.i16.pack(_session_code(value)))
    return b"".join(out)


def _session_code(value: str | None) -> int:
    if value is None:
        return 0
    code = MARKET_SESSION_CODES.get(value)
    if code is not None:
        return code
    try:
        code = int(value)
    except ValueError:
        raise ProtocolError(f"unknown market session {value!r}") from None
    return _check_range(code, I16_MIN, I16_MAX, "market_session")


# ---------------------------------------------------------------------------------
# JSON ``parsed`` object
# ---------------------------------------------------------------------------------

# The longest decimal spelling of a wire integer: "-9223372036854775808" (i64 min) and
# "18446744073709551615" (u64 max) both have 20 characters. Longer strings are refused
# before ``int()`` runs, so a megabyte of digits costs nothing and the error stays short.
_MAX_INT_CHARS: Final = 20


class BadValue(ProtocolError):
    """A JSON value of the wrong type or range; the text says why, the caller adds where.

    Internal to the protocol layer: decoders catch it and raise :class:`ProtocolError`
    with the field path, building that path only when something is wrong (the hot path
    formats no strings). It derives from ProtocolError so that even a missed catch
    stays inside the documented exception.
    """


def _short(number: int) -> str:
    text = str(number)
    digits = len(text) - (text[0] == "-")
    return text if digits <= 24 else f"{text[:20]}... ({digits} digits)"


def int_value(value: Any, lo: int, hi: int) -> int:
    """An integer given as a JSON number or a decimal string, range-checked.

    Strings must be plain ASCII decimal (an optional ``-``, then digits): ``int()`` alone
    would also take ``" 1"``, ``"1_000"``, ``"+1"`` and non-ASCII digits, none of which
    the server sends. Raises :class:`BadValue`.
    """
    if type(value) is int:
        result = value
    elif type(value) is str:
        if len(value) > _MAX_INT_CHARS:
            raise BadValue(f"a string of {len(value)} characters is too long for an integer")
        # isdigit() is true for non-ASCII digits too, hence isascii().
        if not (value.isdigit() or (value[:1] == "-" and value[1:].isdigit())) or not (
            value.isascii()
        ):
            raise BadValue(f"{value!r} is not a decimal integer")
        result = int(value)
    else:
        raise BadValue(f"expected an integer (number or string), got {value!r:.40}")
    if lo <= result <= hi:
        return result
    raise BadValue(f"{_short(result)} is out of range {lo}..{hi}")


def _int_at(value: Any, where: str, lo: int, hi: int) -> int:
    try:
        return int_value(value, lo, hi)
    except BadValue as exc:
        raise ProtocolError(f"{where}: {exc}") from None


# Integer properties: wire name -> (property id, lo, hi, property). The id is also the
# index of the value among FeedUpdate's property fields. marketSession, a string, is
# handled on its own.
_JSON_INT_PROPS: Final[dict[str, tuple[int, int, int, Property]]] = {
    p.value: (
        PROPERTY_IDS[p],
        *{
            I64_NULLABLE: (I64_MIN, I64_MAX),
            FLAG_I64: (I64_MIN, I64_MAX),
            FLAG_U64: (0, U64_MAX),
            U16: (0, U16_MAX),
            I16: (I16_MIN, I16_MAX),
        }[KIND_BY_PROPERTY[p]],
        p,
    )
    for p in Property
    if p is not Property.MARKET_SESSION
}
_SESSION_KEY: Final = Property.MARKET_SESSION.value
_SESSION_ID: Final = PROPERTY_IDS[Property.MARKET_SESSION]

# PROTOCOL.md's "JSON (parsed) value" column: these are strings, the rest numbers.
_JSON_STRING_PROPS: Final = frozenset(
    {Property.PRICE, Property.BEST_BID_PRICE, Property.BEST_ASK_PRICE, Property.EMA_PRICE}
)


def _feed_from_json(obj: Any) -> FeedUpdate:
    """One ``priceFeeds`` element, or :class:`BadValue` whose text starts with the key path.

    This runs for every feed of every JSON update, so the common cases (a number in
    range, a string of ASCII digits) are checked inline; everything else, including
    every error, goes through :func:`int_value`, which says what was wrong.
    """
    if type(obj) is not dict:
        raise BadValue(f": expected an object, got {type(obj).__name__}")
    values: list[Any] = list(_NO_VALUES)
    props: list[Property] = []
    feed_id: int | None = None
    key = ""
    try:
        for key, value in obj.items():
            if value is None:
                continue  # null means absent
            spec = _JSON_INT_PROPS.get(key)
            if spec is not None:
                index, lo, hi, prop = spec
                if type(value) is int and lo <= value <= hi:
                    values[index] = value
                elif (
                    type(value) is str
                    and len(value) <= _MAX_INT_CHARS
                    and value.isdigit()
                    and value.isascii()
                    and lo <= (number := int(value)) <= hi
                ):
                    values[index] = number
                else:
                    values[index] = int_value(value, lo, hi)
                props.append(prop)
            elif key == "priceFeedId":
                feed_id = int_value(value, 0, U32_MAX)
            elif key == _SESSION_KEY:
                if type(value) is not str:
                    raise BadValue(f"expected a session name string, got {value!r:.40}")
                values[_SESSION_ID] = value
                props.append(Property.MARKET_SESSION)
            # any other key is a field newer than this library: tolerated
    except BadValue as exc:
        raise BadValue(f".{key}: {exc}") from None
    if feed_id is None:
        raise BadValue(": missing priceFeedId")
    return new_feed(feed_id, *values, tuple(props))


def feed_from_json_obj(obj: Any, where: str = "priceFeeds[]") -> FeedUpdate:
    """Decode one element of ``parsed.priceFeeds``; unknown keys are ignored."""
    try:
        return _feed_from_json(obj)
    except BadValue as exc:
        raise ProtocolError(f"{where}{exc}") from None


def payload_from_json_obj(obj: Any) -> Payload:
    """Decode a ``parsed`` object: ``{"timestampUs": "...", "priceFeeds": [...]}``."""
    if type(obj) is not dict:
        raise ProtocolError(f"parsed: expected an object, got {type(obj).__name__}")
    try:
        raw_ts = obj["timestampUs"]
        raw_feeds = obj["priceFeeds"]
    except KeyError as exc:
        raise ProtocolError(f"parsed: missing field {exc.args[0]!r}") from None
    timestamp = _int_at(raw_ts, "parsed.timestampUs", 0, U64_MAX)
    if type(raw_feeds) is not list:
        raise ProtocolError(f"parsed.priceFeeds: expected a list, got {type(raw_feeds).__name__}")
    feeds: list[FeedUpdate] = []
    append = feeds.append
    try:
        for f in raw_feeds:
            append(_feed_from_json(f))
    except BadValue as exc:
        # The failing feed is the one after the last appended.
        raise ProtocolError(f"parsed.priceFeeds[{len(feeds)}]{exc}") from None
    # The parsed object carries no channel (PROTOCOL.md); unknown fields are ignored.
    return Payload(timestamp_us=timestamp, feeds=feeds, channel_id=None)


def feed_to_json_obj(feed: FeedUpdate) -> dict[str, Any]:
    """One ``priceFeeds`` element; absent values are left out, as the server does."""
    out: dict[str, Any] = {"priceFeedId": feed.feed_id}
    for prop in feed.wire_properties():
        value = getattr(feed, PROPERTY_ATTRS[prop])
        if value is None:
            continue
        out[prop.value] = str(value) if prop in _JSON_STRING_PROPS else value
    return out


def payload_to_json_obj(payload: Payload) -> dict[str, Any]:
    """The ``parsed`` object of a JSON ``streamUpdated`` (``timestampUs`` as a string)."""
    return {
        "timestampUs": str(payload.timestamp_us),
        "priceFeeds": [feed_to_json_obj(f) for f in payload.feeds],
    }


__all__: Sequence[str] = [
    "PAYLOAD_MAGIC",
    "ByteOrder",
    "FeedUpdate",
    "Payload",
    "decode_payload",
    "encode_payload",
    "feed_from_json_obj",
    "feed_to_json_obj",
    "payload_from_json_obj",
    "payload_to_json_obj",
]
