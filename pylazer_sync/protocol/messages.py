"""Server -> client messages: JSON text frames and binary update frames.

:func:`parse_server_message` turns a JSON frame into a typed message and
:func:`decode_binary_update` a binary frame into a :class:`StreamUpdate`. A
:class:`StreamUpdate` looks the same whichever delivery format the subscription used:
``parsed`` (the decoded ``parsed`` object or JSON envelope), the envelopes by format,
and :attr:`StreamUpdate.payload` / :attr:`StreamUpdate.feeds` for the common case.
The encoders at the bottom are the exact inverses; the simulator sends with them.
"""

from __future__ import annotations

import base64
import binascii
import json
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypeAlias

from ..errors import ProtocolError
from .envelopes import (
    Envelope,
    EvmMessage,
    JsonMessage,
    LeEcdsaMessage,
    LeUnsignedMessage,
    SolanaMessage,
    decode_message,
)
from .payload import (
    BadValue,
    FeedUpdate,
    Payload,
    int_value,
    payload_from_json_obj,
    payload_to_json_obj,
)
from .typed_json import (
    PLANS,
    UNKNOWN,
    Embedded,
    Plan,
    StreamUpdated,
    build_payload,
    decode_by_shape,
    plan_shape,
    same_payload,
)
from .types import U32_MAX, U64_MAX, JsonBinaryEncoding

BINARY_UPDATE_MAGIC: Final = 461928307

_U32_LE = struct.Struct("<I")
_U64_BE = struct.Struct(">Q")
_U16_BE = struct.Struct(">H")


@dataclass(frozen=True, slots=True)
class Subscribed:
    """The server accepted a subscription."""

    subscription_id: int


@dataclass(frozen=True, slots=True)
class SubscribedWithIgnoredFeeds:
    """The server accepted a subscription with ``ignoreInvalidFeeds`` and left some feeds out."""

    subscription_id: int
    subscribed_feed_ids: tuple[int, ...]
    unknown_ids: tuple[int, ...]
    unknown_symbols: tuple[str, ...]
    unsupported_channels: tuple[int, ...]
    unstable: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Unsubscribed:
    """The server ended a subscription."""

    subscription_id: int


@dataclass(frozen=True, slots=True)
class SubscriptionError:
    """The server refused a subscription; ``error`` says why."""

    subscription_id: int
    error: str


@dataclass(frozen=True, slots=True)
class ServerError:
    """The server could not handle a request (malformed JSON, unknown request type, ...)."""

    error: str


@dataclass(frozen=True, slots=True)
class UnknownMessage:
    """A JSON message of a ``type`` this library does not know; ``raw`` is the whole object."""

    type: str
    raw: dict[str, Any] = field(compare=False, repr=False)  # may be huge, or nested deep


_ENVELOPE_FIELDS: Final = (
    ("evm", "evm", EvmMessage),
    ("solana", "solana", SolanaMessage),
    ("leEcdsa", "le_ecdsa", LeEcdsaMessage),
    ("leUnsigned", "le_unsigned", LeUnsignedMessage),
)


class StreamUpdate:
    """One update of a subscription, whichever delivery format carried it.

    Attributes:
        subscription_id: the subscription this update belongs to.
        parsed: the decoded ``parsed`` object (JSON delivery) or JSON envelope (binary
            delivery), or ``None`` if the subscription asked for neither.
        evm, solana, le_ecdsa, le_unsigned: the envelopes of the requested formats, or
            ``None``; each keeps its raw ``payload`` bytes for on-chain use and checks its
            signature with ``verify()``.
        messages: every envelope as delivered (binary order; JSON delivery: evm,
            solana, leEcdsa, leUnsigned).
        payload: ``parsed`` if present, else the first envelope's payload, decoded when
            the update was decoded (so a malformed payload fails there, once).
        frame: the raw WebSocket frame this update was decoded from (text frames as their
            UTF-8 bytes), byte for byte as received, or ``None`` if it was built otherwise
            (REST, jsonl). Recordings and the relay keep it, so a consumer decodes and
            verifies exactly what the client received. Not part of equality.
        frame_is_text: whether :attr:`frame` was a text (JSON) frame.
    """

    __slots__ = (
        "evm",
        "frame",
        "frame_is_text",
        "le_ecdsa",
        "le_unsigned",
        "messages",
        "parsed",
        "payload",
        "solana",
        "subscription_id",
    )

    def __init__(
        self,
        subscription_id: int,
        parsed: Payload | None = None,
        evm: EvmMessage | None = None,
        solana: SolanaMessage | None = None,
        le_ecdsa: LeEcdsaMessage | None = None,
        le_unsigned: LeUnsignedMessage | None = None,
        messages: tuple[Envelope, ...] | None = None,
    ) -> None:
        self.subscription_id = subscription_id
        self.parsed = parsed
        self.evm = evm
        self.solana = solana
        self.le_ecdsa = le_ecdsa
        self.le_unsigned = le_unsigned
        if messages is None:
            # Spelled out: this runs for every update, and a generator costs more here.
            if evm is None and solana is None and le_ecdsa is None and le_unsigned is None:
                messages = ()
            else:
                messages = tuple([m for m in (evm, solana, le_ecdsa, le_unsigned) if m is not None])
        self.messages = messages
        payload = parsed
        if payload is None:
            for m in messages:
                if not isinstance(m, JsonMessage):
                    payload = m.decode_payload()
                    break
        self.payload: Payload | None = payload
        self.frame: bytes | None = None
        self.frame_is_text = False

    @property
    def feeds(self) -> list[FeedUpdate]:
        """The feeds of :attr:`payload` (empty if the update carries no payload at all)."""
        return self.payload.feeds if self.payload is not None else []

    @property
    def timestamp_us(self) -> int | None:
        """When the update was made, in microseconds since the Unix epoch."""
        return self.payload.timestamp_us if self.payload is not None else None

    def feed(self, feed_id: int) -> FeedUpdate | None:
        """The update of one feed, or ``None`` if this update does not carry it."""
        return self.payload.feed(feed_id) if self.payload is not None else None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, StreamUpdate):
            return NotImplemented
        return (
            self.subscription_id == other.subscription_id
            and self.parsed == other.parsed
            and self.evm == other.evm
            and self.solana == other.solana
            and self.le_ecdsa == other.le_ecdsa
            and self.le_unsigned == other.le_unsigned
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        formats = [name for name, attr, _ in _ENVELOPE_FIELDS if getattr(self, attr) is not None]
        feeds = ", ".join(
            f"{f.feed_id}: {f.real('price') if f.exponent is not None and f.price is not None else f.price}"
            for f in self.feeds[:4]
        )
        more = ", ..." if len(self.feeds) > 4 else ""
        return (
            f"StreamUpdate(subscription_id={self.subscription_id}, timestamp_us={self.timestamp_us}, "
            f"feeds={{{feeds}{more}}}, formats={formats})"
        )

    def _repr_html_(self) -> str:
        """A table for Jupyter: one row per feed, real values where the exponent is known."""
        from html import escape

        cols = [
            "feed_id", "price", "best_bid_price", "best_ask_price", "confidence", "exponent",
            "publisher_count", "market_session", "feed_update_timestamp",
        ]  # fmt: skip
        head = "".join(f"<th>{c}</th>" for c in cols)
        rows = []
        for f in self.feeds:
            cells = []
            for c in cols:
                value: Any = getattr(f, c)
                if (
                    c in ("price", "best_bid_price", "best_ask_price", "confidence")
                    and value is not None
                ):
                    value = f.real(c) if f.exponent is not None else value
                cells.append(f"<td>{escape('' if value is None else str(value))}</td>")
            rows.append(f"<tr>{''.join(cells)}</tr>")
        return (
            f"<p>StreamUpdate subscription {self.subscription_id}, timestamp_us {self.timestamp_us}</p>"
            f"<table><tr>{head}</tr>{''.join(rows)}</table>"
        )


ServerMessage: TypeAlias = (
    Subscribed
    | SubscribedWithIgnoredFeeds
    | Unsubscribed
    | SubscriptionError
    | ServerError
    | StreamUpdate
    | UnknownMessage
)


# ---------------------------------------------------------------------------------
# Decoding
# ---------------------------------------------------------------------------------


def _int(value: Any, where: str, hi: int = U64_MAX) -> int:
    if type(value) is int and 0 <= value <= hi:
        return value  # the common case, without a call
    try:
        return int_value(value, 0, hi)
    except BadValue as exc:
        raise ProtocolError(f"{where}: {exc}") from None


def _require(obj: dict[str, Any], key: str, kind: str) -> Any:
    try:
        return obj[key]
    except KeyError:
        raise ProtocolError(f"{kind} message: missing field {key!r}") from None


def _error_text(obj: dict[str, Any], kind: str) -> str:
    text = obj.get("error", obj.get("message"))
    if text is None:
        raise ProtocolError(f"{kind} message: missing field 'error' (or 'message')")
    return text if isinstance(text, str) else json.dumps(text)


def _int_list(value: Any, where: str, hi: int = U32_MAX) -> tuple[int, ...]:
    if value is None:
        return ()
    if type(value) is not list:
        raise ProtocolError(f"{where}: expected a list, got {type(value).__name__}")
    return tuple(_int(v, f"{where}[{i}]", hi) for i, v in enumerate(value))


def _str_list(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if type(value) is not list or not all(type(v) is str for v in value):
        raise ProtocolError(f"{where}: expected a list of strings")
    return tuple(value)


def _embedded_envelope(value: Any, field_name: str) -> bytes:
    """Decode ``{"encoding": "hex"|"base64", "data": "..."}`` to the envelope bytes."""
    if type(value) is not dict:
        raise ProtocolError(f"{field_name}: expected an object with encoding and data")
    encoding, data = value.get("encoding"), value.get("data")
    if type(data) is not str:
        raise ProtocolError(f"{field_name}.data: expected a string, got {data!r:.40}")
    return _envelope_bytes(encoding, data, field_name)


def _envelope_bytes(encoding: Any, data: str, field_name: str) -> bytes:
    try:
        if encoding == "base64":
            return base64.b64decode(data, validate=True)
        if encoding == "hex":
            return bytes.fromhex(data)
    except (binascii.Error, ValueError) as exc:
        raise ProtocolError(f"{field_name}.data: invalid {encoding}: {exc}") from None
    raise ProtocolError(
        f"{field_name}.encoding: unknown encoding {encoding!r}; expected hex or base64"
    )


def _stream_update_from_json(obj: dict[str, Any]) -> StreamUpdate:
    sub_id = _int(_require(obj, "subscriptionId", "streamUpdated"), "subscriptionId")
    raw_parsed = obj.get("parsed")
    parsed = payload_from_json_obj(raw_parsed) if raw_parsed is not None else None
    envelopes: dict[str, Any] = {}
    for wire_name, attr, cls in _ENVELOPE_FIELDS:
        value = obj.get(wire_name)
        if value is None:
            continue
        message = decode_message(_embedded_envelope(value, wire_name))
        if not isinstance(message, cls):
            raise ProtocolError(
                f"{wire_name}: carries a {type(message).__name__}, expected {cls.__name__}"
            )
        envelopes[attr] = message
    return StreamUpdate(sub_id, parsed, **envelopes)


def _from_json_obj(obj: Any) -> ServerMessage:
    if type(obj) is not dict:
        raise ProtocolError(f"server message: expected a JSON object, got {type(obj).__name__}")
    kind = obj.get("type")
    if kind == "streamUpdated":
        return _stream_update_from_json(obj)
    if kind == "subscribed":
        return Subscribed(_int(_require(obj, "subscriptionId", kind), "subscriptionId"))
    if kind == "unsubscribed":
        return Unsubscribed(_int(_require(obj, "subscriptionId", kind), "subscriptionId"))
    if kind == "subscriptionError":
        return SubscriptionError(
            _int(_require(obj, "subscriptionId", kind), "subscriptionId"), _error_text(obj, kind)
        )
    if kind == "error":
        return ServerError(_error_text(obj, kind))
    if kind == "subscribedWithInvalidFeedIdsIgnored":
        ignored = obj.get("ignoredInvalidFeedIds") or {}
        if type(ignored) is not dict:
            raise ProtocolError("ignoredInvalidFeedIds: expected an object")
        where = "ignoredInvalidFeedIds."
        return SubscribedWithIgnoredFeeds(
            subscription_id=_int(_require(obj, "subscriptionId", kind), "subscriptionId"),
            subscribed_feed_ids=_int_list(obj.get("subscribedFeedIds"), "subscribedFeedIds"),
            unknown_ids=_int_list(ignored.get("unknownIds"), where + "unknownIds"),
            unknown_symbols=_str_list(ignored.get("unknownSymbols"), where + "unknownSymbols"),
            unsupported_channels=_int_list(
                ignored.get("unsupportedChannels"), where + "unsupportedChannels"
            ),
            unstable=_int_list(ignored.get("unstable"), where + "unstable"),
        )
    if type(kind) is not str:
        raise ProtocolError(f"server message: missing or non-string 'type' ({kind!r:.40})")
    return UnknownMessage(kind, obj)


# ``json.loads(s)`` is ``JSONDecoder.decode``: two whitespace regex matches around the
# C scanner. A frame from the server has no surrounding whitespace, so calling the
# scanner directly saves about a microsecond per update (a third of the JSON cost).
# Anything unusual (whitespace, trailing data, bytes, errors) goes through json.loads,
# which accepts or rejects exactly as before and words the error.
# (scan_once is an instance attribute that typeshed does not declare, hence vars().)
_scan_once: Final[Callable[[str, int], tuple[Any, int]]] = vars(json.JSONDecoder())["scan_once"]


def _loads(text: str | bytes) -> Any:
    if type(text) is bytes:
        # Frames arrive as bytes (UTF-8 is checked here, not by the transport). Invalid
        # UTF-8 falls through to json.loads, which raises the error the caller reports.
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            return json.loads(text)
    if type(text) is str:
        try:
            obj, end = _scan_once(text, 0)
        except Exception:  # StopIteration, JSONDecodeError, RecursionError: see json.loads
            pass
        else:
            if end == len(text):
                return obj
    return json.loads(text)


def parse_server_message(text: str | bytes) -> ServerMessage:
    """Decode one JSON text frame from the server into a typed message.

    Unknown ``type`` values give :class:`UnknownMessage`; anything malformed raises
    :class:`ProtocolError` saying what was wrong.

    A ``streamUpdated`` frame of a shape decoded before is decoded with msgspec
    (``typed_json.py``); everything else, and every error, goes through
    :func:`parse_server_message_general`. Both give the same result.
    """
    if type(text) is bytes:
        frame = text
    elif type(text) is str and text.isascii():
        frame = text.encode()
    else:
        return parse_server_message_general(text)
    found = decode_by_shape(frame)
    if found is None:
        return parse_server_message_general(text)
    # A streamUpdated frame that msgspec decoded: trusted only for a shape that the
    # general path decoded before (typed_json.py says why).
    message, shape, plan = found
    if type(plan) is tuple:
        update = _update_from_typed(message, plan)
        if update is not None:
            return update
    PLANS.missed()
    result = parse_server_message_general(text)
    if plan is UNKNOWN and type(result) is StreamUpdate:
        learned = plan_shape(frame, shape, result.parsed)
        if learned is not None:  # check it by decoding this very frame with it
            update = _update_from_typed(message, learned)
            if update is None or update != result or not same_payload(update.parsed, result.parsed):
                learned = None
        PLANS.remember(shape, learned)
    return result


def _update_from_typed(message: StreamUpdated, plan: Plan) -> StreamUpdate | None:
    """The update a typed message of a planned shape holds, or ``None`` if anything is off
    (the general path then decides, and words the error if there is one)."""
    sub_id = message.subscription_id
    if type(sub_id) is not int or not 0 <= sub_id <= U64_MAX:
        try:
            sub_id = _int(sub_id, "subscriptionId")
        except ProtocolError:
            return None
    parsed: Payload | None = None
    if message.parsed is not None:
        parsed = build_payload(message.parsed, plan)
        if parsed is None:
            return None
    elif plan:
        return None
    if (
        message.evm is None
        and message.solana is None
        and message.le_ecdsa is None
        and message.le_unsigned is None
    ):
        return StreamUpdate(sub_id, parsed)
    try:
        envelopes: dict[str, Any] = {}
        for wire_name, attr, cls in _ENVELOPE_FIELDS:
            value: Embedded | None = getattr(message, attr)
            if value is not None:
                envelope = decode_message(_envelope_bytes(value.encoding, value.data, wire_name))
                if not isinstance(envelope, cls):
                    return None
                envelopes[attr] = envelope
        return StreamUpdate(sub_id, parsed, **envelopes)
    except ProtocolError:
        return None


def parse_server_message_general(text: str | bytes) -> ServerMessage:
    """:func:`parse_server_message` with ``json.loads`` and dicts, for any input: the
    reference for the typed fast path, and what words every error."""
    try:
        obj = _loads(text)
    except (ValueError, RecursionError, TypeError) as exc:
        # UnicodeDecodeError and JSONDecodeError are both ValueErrors; TypeError is a
        # frame that is neither str nor bytes.
        raise ProtocolError(f"server message is not valid JSON: {exc}") from None
    try:
        return _from_json_obj(obj)
    except RecursionError:  # JSON that only just parsed, then dumped or shown in an error
        raise ProtocolError("server message: nested too deeply") from None


def decode_binary_update(data: bytes) -> StreamUpdate:
    """Decode a binary update frame: magic, subscription id (u64 BE), then messages,
    each a u16 BE length and one envelope (PROTOCOL.md, "binary frames")."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ProtocolError(f"binary frame: expected bytes, got {type(data).__name__}")
    n = len(data)
    if n < 12:
        raise ProtocolError(f"binary frame too short: {n} bytes, the header needs 12")
    (magic,) = _U32_LE.unpack_from(data, 0)
    if magic != BINARY_UPDATE_MAGIC:
        raise ProtocolError(
            f"bad binary frame magic at offset 0: {magic} (bytes {bytes(data[:4]).hex()}), "
            f"expected {BINARY_UPDATE_MAGIC}"
        )
    (sub_id,) = _U64_BE.unpack_from(data, 4)
    off = 12
    messages: list[Envelope] = []
    while off < n:
        if off + 2 > n:
            raise ProtocolError(
                f"binary frame truncated at offset {off}: a message length needs 2 bytes"
            )
        (length,) = _U16_BE.unpack_from(data, off)
        off += 2
        end = off + length
        if end > n:
            raise ProtocolError(
                f"binary frame truncated: message at offset {off} announces {length} bytes, "
                f"{n - off} left"
            )
        messages.append(decode_message(data[off:end]))
        off = end
    return stream_update_from_envelopes(sub_id, messages)


def stream_update_from_envelopes(
    subscription_id: int, messages: Sequence[Envelope]
) -> StreamUpdate:
    """Build a :class:`StreamUpdate` from the envelopes of a binary frame."""
    parsed: Payload | None = None
    by_attr: dict[str, Any] = {}
    for m in messages:
        attr = _ATTR_BY_TYPE.get(type(m))
        if attr is None:  # a subclass, or not an envelope: as the isinstance chain did
            attr = next(
                (a for cls, a in _ATTR_BY_TYPE.items() if isinstance(m, cls)), "le_unsigned"
            )
        if attr == "parsed":
            if parsed is None:
                parsed = m.decode_payload()
        elif attr not in by_attr:
            by_attr[attr] = m
    return StreamUpdate(subscription_id, parsed, messages=tuple(messages), **by_attr)


# The first envelope of each type fills its attribute; JSON envelopes give ``parsed``.
_ATTR_BY_TYPE: Final[dict[type, str]] = {
    JsonMessage: "parsed",
    EvmMessage: "evm",
    SolanaMessage: "solana",
    LeEcdsaMessage: "le_ecdsa",
    LeUnsignedMessage: "le_unsigned",
}


def decode_frame(frame: str | bytes, is_text: bool | None = None) -> ServerMessage:
    """Decode one WebSocket frame: text frames as JSON, binary frames as update frames.

    ``is_text`` defaults to "is it a ``str``"; pass it when text frames arrive as bytes.
    """
    if is_text is None:
        is_text = isinstance(frame, str)
    if is_text:
        message = parse_server_message(frame)
        if type(message) is StreamUpdate:
            if type(frame) is not bytes:
                frame = frame.encode() if isinstance(frame, str) else bytes(frame)
            message.frame = frame
            message.frame_is_text = True
        return message
    if isinstance(frame, str):
        raise ProtocolError("a binary frame must be bytes, not str")
    update = decode_binary_update(frame)
    update.frame = bytes(frame)
    return update


# ---------------------------------------------------------------------------------
# Encoding (the simulator and the tests use these)
# ---------------------------------------------------------------------------------


def _compact(obj: dict[str, Any]) -> str:
    return json.dumps(obj, separators=(",", ":"))


def _encode_bytes(data: bytes, encoding: JsonBinaryEncoding | str) -> dict[str, str]:
    enc = JsonBinaryEncoding(encoding)
    text = base64.b64encode(data).decode() if enc is JsonBinaryEncoding.BASE64 else data.hex()
    return {"encoding": enc.value, "data": text}


def stream_update_to_json_obj(
    update: StreamUpdate, encoding: JsonBinaryEncoding | str = JsonBinaryEncoding.BASE64
) -> dict[str, Any]:
    """The JSON ``streamUpdated`` object, fields in a stable order."""
    out: dict[str, Any] = {"type": "streamUpdated", "subscriptionId": update.subscription_id}
    if update.parsed is not None:
        out["parsed"] = payload_to_json_obj(update.parsed)
    for wire_name, attr, _ in _ENVELOPE_FIELDS:
        message = getattr(update, attr)
        if message is not None:
            out[wire_name] = _encode_bytes(message.encode(), encoding)
    return out


def encode_server_message(
    message: ServerMessage, encoding: JsonBinaryEncoding | str = JsonBinaryEncoding.BASE64
) -> str:
    """The JSON text frame for a server message (compact, stable field order)."""
    if isinstance(message, StreamUpdate):
        return _compact(stream_update_to_json_obj(message, encoding))
    if isinstance(message, Subscribed):
        return _compact({"type": "subscribed", "subscriptionId": message.subscription_id})
    if isinstance(message, Unsubscribed):
        return _compact({"type": "unsubscribed", "subscriptionId": message.subscription_id})
    if isinstance(message, SubscriptionError):
        return _compact(
            {
                "type": "subscriptionError",
                "subscriptionId": message.subscription_id,
                "error": message.error,
            }
        )
    if isinstance(message, ServerError):
        return _compact({"type": "error", "error": message.error})
    if isinstance(message, SubscribedWithIgnoredFeeds):
        return _compact(
            {
                "type": "subscribedWithInvalidFeedIdsIgnored",
                "subscriptionId": message.subscription_id,
                "subscribedFeedIds": list(message.subscribed_feed_ids),
                "ignoredInvalidFeedIds": {
                    "unknownIds": list(message.unknown_ids),
                    "unknownSymbols": list(message.unknown_symbols),
                    "unsupportedChannels": list(message.unsupported_channels),
                    "unstable": list(message.unstable),
                },
            }
        )
    return _compact(message.raw)


def encode_binary_update(subscription_id: int, messages: Sequence[Envelope | bytes]) -> bytes:
    """A binary update frame carrying the given envelopes (or pre-encoded envelope bytes)."""
    if not 0 <= subscription_id <= U64_MAX:
        raise ProtocolError(f"subscription id {subscription_id} does not fit a u64")
    parts = [_U32_LE.pack(BINARY_UPDATE_MAGIC), _U64_BE.pack(subscription_id)]
    for m in messages:
        raw = m if isinstance(m, bytes) else m.encode()
        if len(raw) > 0xFFFF:
            raise ProtocolError(f"an envelope of {len(raw)} bytes does not fit a u16 length")
        parts.append(_U16_BE.pack(len(raw)))
        parts.append(raw)
    return b"".join(parts)


def encode_stream_update_binary(update: StreamUpdate) -> bytes:
    """A binary frame for a :class:`StreamUpdate` (its ``messages``, in order)."""
    return encode_binary_update(update.subscription_id, update.messages)


def parse_json_update(text: str | bytes, subscription_id: int = 0) -> StreamUpdate:
    """Decode a REST "JsonUpdate" (a ``streamUpdated`` body without ``type`` and
    ``subscriptionId``, as ``/v1/latest_price`` and ``/v1/price`` answer) into a
    :class:`StreamUpdate`; REST answers belong to no subscription, hence id 0."""
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(f"JSON update is not valid JSON: {exc}") from None
    if type(obj) is not dict:
        raise ProtocolError(f"JSON update: expected an object, got {type(obj).__name__}")
    try:
        return _stream_update_from_json({**obj, "subscriptionId": subscription_id})
    except RecursionError:  # JSON that only just parsed, then shown in an error
        raise ProtocolError("JSON update: nested too deeply") from None
