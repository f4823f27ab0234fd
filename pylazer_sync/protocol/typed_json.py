"""Typed JSON decoding with msgspec: the fast path for well-formed ``streamUpdated`` frames.

msgspec decodes JSON straight into :class:`msgspec.Struct` types, checking types and
integer ranges in C, where ``json.loads`` builds dicts that Python code then walks key by
key. The general decoders (``messages.py``, ``payload.py``) stay the reference: they
accept everything the protocol allows and word every error. The fast path only ever says
"here is the result" or "not sure", and "not sure" sends the frame to the general path,
so a frame decodes to the same message, or fails with the same :class:`ProtocolError`,
either way. ``tests/test_protocol_fastpath.py`` holds the two to that.

Two things keep msgspec from accepting what the general path refuses:

- **Shapes.** Integers are decoded in msgspec's lax mode, which takes ``"123"`` as 123
  (the server's spelling of prices and timestamps) but also ``1.0``, ``"1e3"`` and
  ``"null"``, which the protocol refuses. So a frame is decoded this way only when its
  *shape* (its text with every digit and minus sign taken out, and the data of embedded
  envelopes emptied) is one that the general decoder has already decoded: a text of a
  known shape has dots, exponents and nulls exactly where the known good one had none,
  the same keys in the same order, the same nesting. The shape also gives what a Struct
  cannot: the key order of each feed, which :attr:`FeedUpdate.properties` keeps (the
  encoders write it back). A subscription has a handful of shapes (one per feed count
  and property set); the first update of each goes through the general path.
- **Digit runs.** A shape cannot see how many digits there are: a run longer than
  Python's int conversion limit makes ``json.loads`` refuse the text even in an unknown
  field, where msgspec skips it. :func:`digits_within_limit` keeps such texts out.
"""

from __future__ import annotations

import functools
import re
import sys
import threading
from collections.abc import Callable
from typing import Annotated, Any, Final, Literal

import msgspec
from msgspec import Meta, Struct
from msgspec.structs import astuple

from .payload import FeedUpdate, Payload, new_feed
from .types import (
    I16_MAX,
    I16_MIN,
    I64_MAX,
    I64_MIN,
    PROPERTY_ATTRS,
    U16_MAX,
    U32_MAX,
    Property,
)

# msgspec's integer bounds must fit an int64: a u64 above 2**63 - 1 (a timestamp in the
# year 294,000, or a huge subscription id) fails here and the general path takes it.
_I64 = Annotated[int, Meta(ge=I64_MIN, le=I64_MAX)]
_U64 = Annotated[int, Meta(ge=0, le=I64_MAX)]
_U32 = Annotated[int, Meta(ge=0, le=U32_MAX)]
_U16 = Annotated[int, Meta(ge=0, le=U16_MAX)]
_I16 = Annotated[int, Meta(ge=I16_MIN, le=I16_MAX)]


class ParsedFeed(Struct, rename="camel", forbid_unknown_fields=True, gc=False):
    """One ``priceFeeds`` element: the feed id, then the 13 properties in id order, as
    FeedUpdate's positional fields. Unknown keys are refused here (the general path
    ignores them): that makes a feed's keys exactly those of its shape (see
    :func:`plan_shape`)."""

    price_feed_id: _U32
    price: _I64 | None = None
    best_bid_price: _I64 | None = None
    best_ask_price: _I64 | None = None
    publisher_count: _U16 | None = None
    exponent: _I16 | None = None
    confidence: _I64 | None = None
    funding_rate: _I64 | None = None
    funding_timestamp: _U64 | None = None
    funding_rate_interval: _U64 | None = None
    market_session: str | None = None
    ema_price: _I64 | None = None
    ema_confidence: _I64 | None = None
    feed_update_timestamp: _U64 | None = None


assert ParsedFeed.__struct_fields__ == ("price_feed_id", *(PROPERTY_ATTRS[p] for p in Property)), (
    "ParsedFeed's fields must be the feed id, then the properties in id order (as FeedUpdate's)"
)


class Parsed(Struct, rename="camel"):
    """The ``parsed`` object (or a JSON envelope's data)."""

    timestamp_us: _U64
    price_feeds: list[ParsedFeed]


class Embedded(Struct):
    """An envelope embedded in JSON: ``{"encoding": "hex"|"base64", "data": "..."}``."""

    encoding: str
    data: str


class StreamUpdated(Struct, rename="camel"):
    """A ``streamUpdated`` message."""

    type: Literal["streamUpdated"]
    subscription_id: int | str  # a string is checked by the caller
    parsed: Parsed | None = None
    evm: Embedded | None = None
    solana: Embedded | None = None
    le_ecdsa: Embedded | None = None
    le_unsigned: Embedded | None = None


_MESSAGE: Final = msgspec.json.Decoder(StreamUpdated, strict=False)
_PARSED: Final = msgspec.json.Decoder(Parsed, strict=False)

_DIGITS_AND_MINUS: Final = b"0123456789-"

# Python's limit on the digits of an int conversion (0: none; at least 640 where there is
# one); Python versions without the limit have no such function.
_int_digits_limit: Final[Callable[[], int]] = getattr(sys, "get_int_max_str_digits", lambda: 0)
_MIN_INT_DIGITS_LIMIT: Final = 640


@functools.lru_cache(maxsize=4)
def _digit_run(limit: int) -> re.Pattern[bytes]:
    return re.compile(rb"[0-9]{%d}" % (limit + 1))


def digits_within_limit(text: bytes) -> bool:
    """Whether no digit run in ``text`` is past Python's int conversion limit."""
    if len(text) <= _MIN_INT_DIGITS_LIMIT:  # the common case: no run can be that long
        return True
    limit = _int_digits_limit()
    return not (limit and len(text) > limit and _digit_run(limit).search(text))


def decode_stream_updated(frame: bytes) -> StreamUpdated | None:
    """The typed ``streamUpdated`` message of a frame, or ``None``.

    Lax: use it only together with the frame's shape (:func:`message_shape`).
    """
    if len(frame) > _MIN_INT_DIGITS_LIMIT and not digits_within_limit(frame):
        return None
    try:
        return _MESSAGE.decode(frame)
    except (msgspec.DecodeError, RecursionError):  # ValidationError is a DecodeError
        return None


def decode_by_shape(frame: bytes) -> tuple[StreamUpdated, bytes, Any] | None:
    """A frame's typed message, its shape and the shape's plan (:meth:`ShapePlans.get`),
    or ``None`` if msgspec does not take the frame (or the fast path pauses). The hot
    path: one call per frame. The caller reports a frame it then decodes with the general
    decoder (:meth:`ShapePlans.missed`)."""
    plans = PLANS
    if plans.pause:  # a stream of ever new shapes: see ShapePlans
        plans.pause -= 1
        return None
    plans.lookups += 1
    message = decode_stream_updated(frame)
    if message is None:
        plans.missed()
        return None
    if (
        message.evm is None
        and message.solana is None
        and message.le_ecdsa is None
        and message.le_unsigned is None
    ):
        shape = frame.translate(None, _DIGITS_AND_MINUS)
    else:
        shape = message_shape(frame, message)
    return message, shape, plans._plans.get(shape, UNKNOWN)  # plans.get, one call less


def message_shape(frame: bytes, message: StreamUpdated) -> bytes:
    """The shape of a frame: digits and minus signs taken out, envelope data emptied.

    In plain JSON, ``"data":"X"`` is always the key ``data`` with the string X, so
    emptying it touches nothing else; the envelopes' bytes are checked by their own
    decoders, and vary with every update.
    """
    for envelope in (message.evm, message.solana, message.le_ecdsa, message.le_unsigned):
        if envelope is not None:
            frame = frame.replace(b'"data":"%s"' % envelope.data.encode(), b'"data":""')
    return frame.translate(None, _DIGITS_AND_MINUS)


def text_shape(text: bytes) -> bytes:
    """The shape of a JSON text without envelopes (a JSON envelope's data)."""
    return text.translate(None, _DIGITS_AND_MINUS)


# ---------------------------------------------------------------------------------
# Plans: what the general decoder made of one text of a shape
# ---------------------------------------------------------------------------------

Plan = tuple[tuple[Property, ...], ...]
"""Per feed of the ``parsed`` object, its properties in key order (empty: no parsed)."""

UNKNOWN: Final[Any] = object()
"""A shape not seen yet (distinct from ``None``: a shape left to the general path)."""

_PROPERTY_KEYS: Final = frozenset(p.value.encode() for p in Property)
# In plain JSON (no backslash) a quoted string followed by a colon is a key, except that
# a string starting with a colon may add a bogus match made of structural characters
# (never a property name; if it holds a digit, the shape is left out, which is safe).
_KEY: Final = re.compile(rb'"([^"]*)"[ \t\n\r]*:')
# Deeper than this, ``json.loads`` and msgspec could disagree near the recursion limit.
_MAX_NESTING: Final = 64
_BRACKETS_ONLY: Final = bytes(c for c in range(256) if c not in b"[]{}")


def _nesting_within(text: bytes, limit: int) -> bool:
    """Whether brackets in ``text`` nest at most ``limit`` deep (each pass strips the
    innermost pairs; brackets inside strings may make it say no, never wrongly yes)."""
    brackets = text.translate(None, _BRACKETS_ONLY)
    for _ in range(limit):
        if not brackets:
            return True
        inner = brackets.replace(b"[]", b"").replace(b"{}", b"")
        if inner == brackets:
            return False
        brackets = inner
    return not brackets


def plan_shape(text: bytes, shape: bytes, payload: Payload | None) -> Plan | None:
    """The plan of a shape, from one text of it that the general decoder decoded (to
    ``payload``, its parsed object), or ``None`` if the shape must stay with the general
    decoder.

    A text of the same shape differs only in digits and minus signs, and msgspec refuses
    unknown keys in feeds. So if every key here is free of digits and minus signs (else a
    key could turn into, or out of, a property name) and each property key is the only one
    of its name in its feed (the count below), another text of the shape has the same
    property keys in the same places. A shape with a ``null`` is left out (null means
    absent), and so is deep nesting. So is a shape with a backslash (an escape could
    spell a digit, hidden from the shape) or outside ASCII (a digit put between the bytes
    of a UTF-8 character keeps the shape; msgspec does not check UTF-8 in what it skips).
    The caller checks the plan by decoding with it.
    """
    if (
        b"null" in shape
        or b"\\" in shape
        or not shape.isascii()
        or not _nesting_within(shape, _MAX_NESTING)
    ):
        return None
    keys = _KEY.findall(text)
    if any(key.translate(None, _DIGITS_AND_MINUS) != key for key in keys):
        return None
    feeds = payload.feeds if payload is not None else []
    if sum(key in _PROPERTY_KEYS for key in keys) != sum(len(f.properties) for f in feeds):
        return None  # a property key twice, or one outside a feed: not worth the doubt
    return tuple(f.properties for f in feeds)


def build_payload(parsed: Parsed, plan: Plan) -> Payload | None:
    """The payload of a typed ``parsed`` object of a planned shape, or ``None``."""
    feeds = parsed.price_feeds
    if len(feeds) != len(plan):
        return None
    out: list[FeedUpdate] = []
    append = out.append
    # zip without strict=: the lengths are equal, and strict= costs a third of a microsecond.
    for feed, props in zip(feeds, plan):  # noqa: B905
        append(new_feed(*astuple(feed), props))
    return Payload(parsed.timestamp_us, out, None)


def same_payload(a: Payload | None, b: Payload | None) -> bool:
    """Equal, and the same wire order of properties in every feed (equality ignores it)."""
    if a is None or b is None:
        return a is b
    return a == b and [f.properties for f in a.feeds] == [f.properties for f in b.feeds]


class ShapePlans:
    """Plans by shape, shared by every decoding thread; bounded in bytes.

    Shapes come from subscriptions, a handful each; a shape is remembered only after the
    general decoder decoded a text of it, so inputs that fail add nothing, and however
    many shapes pass, the plans never hold more than about ``max_bytes``.

    A stream whose shapes keep changing (an unknown field with a new name in every frame,
    say) would pay the fast path's attempt and the learning on top of the general decoder
    for every frame. So the frames that end in the general decoder are counted: when more
    than one in four of the last frames did, the next ``pause_frames`` frames go straight
    to the general decoder (today's cost), and then the fast path tries again.
    """

    def __init__(
        self,
        max_shape: int = 1 << 16,
        max_bytes: int = 1 << 20,
        window_misses: int = 128,
        pause_frames: int = 1 << 14,
    ) -> None:
        self.max_shape = max_shape
        self.max_bytes = max_bytes
        self.window_misses = window_misses
        self.pause_frames = pause_frames
        self._plans: dict[bytes, Plan | None] = {}
        self._bytes = 0
        self._lock = threading.Lock()
        # Counted without a lock: approximate under threads, which is all a pause needs.
        self.lookups = 0  # frames that tried the fast path
        self.pause = 0  # frames left to send straight to the general decoder
        self._misses = 0
        self._window_start = 0

    def get(self, shape: bytes) -> Any:
        """The plan of a shape (a tuple), ``None`` (general path) or :data:`UNKNOWN`."""
        return self._plans.get(shape, UNKNOWN)

    def missed(self) -> None:
        """A frame that tried the fast path ended in the general decoder."""
        self._misses += 1
        if self._misses >= self.window_misses:
            if self.lookups - self._window_start < 4 * self._misses:
                self.pause = self.pause_frames
            self._misses = 0
            self._window_start = self.lookups

    def remember(self, shape: bytes, plan: Plan | None) -> None:
        if len(shape) > self.max_shape:
            return
        with self._lock:
            if self._bytes + len(shape) > self.max_bytes:
                self._plans.clear()
                self._bytes = 0
            if shape not in self._plans:
                self._bytes += len(shape)
            self._plans[shape] = plan

    def clear(self) -> None:
        with self._lock:
            self._plans.clear()
            self._bytes = 0
        self.pause = self._misses = 0
        self._window_start = self.lookups

    def __len__(self) -> int:
        return len(self._plans)


PLANS: Final = ShapePlans()


def fast_payload(data: bytes, general: Callable[[bytes], Payload]) -> Payload:
    """Decode a JSON ``parsed`` object (a JSON envelope's data): by its shape's plan if
    known, else with ``general`` (which raises on malformed input), learning the shape."""
    plans = PLANS
    if plans.pause:
        plans.pause -= 1
        return general(data)
    if type(data) is not bytes or not digits_within_limit(data):
        return general(data)
    plans.lookups += 1
    shape = text_shape(data)
    plan = plans.get(shape)
    if type(plan) is tuple:
        try:
            payload = build_payload(_PARSED.decode(data), plan)
        except (msgspec.DecodeError, RecursionError):
            payload = None
        if payload is not None:
            return payload
    plans.missed()
    result = general(data)
    if plan is UNKNOWN:
        learned = plan_shape(data, shape, result)
        if learned is not None:  # check it by decoding this very text with it
            try:
                built = build_payload(_PARSED.decode(data), learned)
            except (msgspec.DecodeError, RecursionError):
                built = None
            if not same_payload(built, result):
                learned = None
        plans.remember(shape, learned)
    return result


__all__ = [
    "PLANS",
    "UNKNOWN",
    "Embedded",
    "Parsed",
    "ParsedFeed",
    "Plan",
    "StreamUpdated",
    "build_payload",
    "decode_by_shape",
    "decode_stream_updated",
    "digits_within_limit",
    "fast_payload",
    "message_shape",
    "plan_shape",
    "same_payload",
]
