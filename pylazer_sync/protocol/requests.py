"""Client -> server requests: subscribe and unsubscribe, validated as the server does.

A :class:`SubscribeRequest` is checked when it is built, so a bad parameter fails in
the caller's line with an :class:`~pylazer_sync.errors.InvalidRequestError` naming the
field and value, before anything is sent. The simulator parses incoming requests with
:meth:`SubscribeRequest.from_wire`, so client and server apply the same rules.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final, Literal, TypeAlias, TypeVar

from ..errors import InvalidRequestError
from .types import (
    PROPERTY_BY_NAME,
    U32_MAX,
    U64_MAX,
    Channel,
    DeliveryFormat,
    Format,
    JsonBinaryEncoding,
    MarketSession,
    Property,
)

ChannelName = Literal[
    "real_time", "fixed_rate@1ms", "fixed_rate@50ms", "fixed_rate@200ms", "fixed_rate@1000ms"
]
FormatName = Literal["evm", "solana", "leEcdsa", "leUnsigned"]
DeliveryFormatName = Literal["json", "binary"]
EncodingName = Literal["base64", "hex"]
PropertyName = Literal[
    "price",
    "bestBidPrice",
    "bestAskPrice",
    "publisherCount",
    "exponent",
    "confidence",
    "fundingRate",
    "fundingTimestamp",
    "fundingRateInterval",
    "marketSession",
    "emaPrice",
    "emaConfidence",
    "feedUpdateTimestamp",
    "best_bid_price",
    "best_ask_price",
    "publisher_count",
    "funding_rate",
    "funding_timestamp",
    "funding_rate_interval",
    "market_session",
    "ema_price",
    "ema_confidence",
    "feed_update_timestamp",
]
MarketSessionName = Literal["regular", "preMarket", "postMarket", "overNight", "closed"]

ChannelLike: TypeAlias = Channel | ChannelName | str
FormatLike: TypeAlias = Format | FormatName | str
PropertyLike: TypeAlias = Property | PropertyName | str

DEFAULT_CHANNEL: Final = Channel.FIXED_RATE_200MS

# Every wire field of a subscribe request, old names included. ``extra`` may not carry
# these: they would overwrite the validated values in :meth:`SubscribeRequest.params`.
_WIRE_FIELDS: Final = frozenset(
    {
        "type", "subscriptionId", "priceFeedIds", "symbols", "properties", "formats", "chains",
        "deliveryFormat", "jsonBinaryEncoding", "parsed", "channel", "ignoreInvalidFeeds",
        "ignoreInvalidFeedIds", "marketSessions",
    }
)  # fmt: skip

_E = TypeVar("_E", Channel, Format, DeliveryFormat, JsonBinaryEncoding, MarketSession)


def _enum(cls: type[_E], value: Any, field_name: str) -> _E:
    try:
        return cls(value)
    except ValueError:
        choices = ", ".join(repr(m.value) for m in cls)
        raise InvalidRequestError(
            f"{field_name}: unknown value {value!r}; expected one of {choices}"
        ) from None


def _property(value: Any) -> Property:
    prop = PROPERTY_BY_NAME.get(value) if isinstance(value, str) else None
    if prop is None:
        choices = ", ".join(p.value for p in Property)
        raise InvalidRequestError(
            f"properties: unknown property {value!r}; expected one of {choices}"
        )
    return prop


def _unique(values: tuple[Any, ...], field_name: str) -> None:
    seen: set[Any] = set()
    for v in values:
        if v in seen:
            raise InvalidRequestError(f"{field_name}: duplicate value {getattr(v, 'value', v)!r}")
        seen.add(v)


def _as_tuple(value: Any, field_name: str) -> tuple[Any, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise InvalidRequestError(f"{field_name}: expected a list, got {value!r}")
    return tuple(value)


def _check_int(value: Any, lo: int, hi: int, field_name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise InvalidRequestError(f"{field_name}: {value!r} is not an integer in {lo}..{hi}")
    return int(value)


def _check_bool(value: Any, field_name: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidRequestError(f"{field_name}: expected true or false, got {value!r}")
    return value


@dataclass(frozen=True, init=False)
class SubscribeRequest:
    """A subscription: which feeds, which properties, how often, in which formats.

    Exactly one of ``price_feed_ids`` and ``symbols`` is given. Enum fields accept the
    enum members or their wire strings; properties accept wire names (``bestBidPrice``)
    or snake_case names (``best_bid_price``). The attributes read back normalised
    (tuples of enum members). ``subscription_id`` may be left ``None`` for
    :meth:`pylazer_sync.LazerClient.subscribe` to assign one. ``extra`` holds further
    wire fields sent as they are (for server options newer than this library).
    """

    properties: tuple[Property, ...]
    price_feed_ids: tuple[int, ...] | None
    symbols: tuple[str, ...] | None
    channel: Channel
    formats: tuple[Format, ...]
    delivery_format: DeliveryFormat
    json_binary_encoding: JsonBinaryEncoding
    parsed: bool
    ignore_invalid_feeds: bool
    market_sessions: tuple[MarketSession, ...] | None
    subscription_id: int | None
    extra: Mapping[str, Any] = field(compare=False, repr=False)

    def __init__(
        self,
        *,
        properties: Iterable[PropertyLike],
        price_feed_ids: Iterable[int] | None = None,
        symbols: Iterable[str] | None = None,
        channel: ChannelLike = DEFAULT_CHANNEL,
        formats: Iterable[FormatLike] = (),
        delivery_format: DeliveryFormat | DeliveryFormatName | str = DeliveryFormat.JSON,
        json_binary_encoding: JsonBinaryEncoding | EncodingName | str = JsonBinaryEncoding.BASE64,
        parsed: bool = True,
        ignore_invalid_feeds: bool = False,
        market_sessions: Iterable[MarketSession | MarketSessionName | str] | None = None,
        subscription_id: int | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        # The class is frozen to callers; its own constructor stores normalised values.
        def put(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        if (price_feed_ids is None) == (symbols is None):
            raise InvalidRequestError(
                "exactly one of price_feed_ids and symbols must be given"
                + (
                    f" (got price_feed_ids={price_feed_ids!r} and symbols={symbols!r})"
                    if price_feed_ids is not None
                    else ""
                )
            )
        put("price_feed_ids", None)
        put("symbols", None)
        if price_feed_ids is not None:
            ids = tuple(
                _check_int(i, 0, U32_MAX, "price_feed_ids")
                for i in _as_tuple(price_feed_ids, "price_feed_ids")
            )
            if not ids:
                raise InvalidRequestError("price_feed_ids: must not be empty")
            _unique(ids, "price_feed_ids")
            put("price_feed_ids", ids)
        else:
            syms = _as_tuple(symbols, "symbols")
            if not syms:
                raise InvalidRequestError("symbols: must not be empty")
            for s in syms:
                if not isinstance(s, str) or not s:
                    raise InvalidRequestError(f"symbols: {s!r} is not a non-empty string")
            _unique(syms, "symbols")
            put("symbols", syms)
        props = tuple(_property(p) for p in _as_tuple(properties, "properties"))
        if not props:
            raise InvalidRequestError("properties: must not be empty")
        _unique(props, "properties")
        put("properties", props)
        fmts = tuple(_enum(Format, f, "formats") for f in _as_tuple(formats, "formats"))
        _unique(fmts, "formats")
        put("formats", fmts)
        put("channel", _enum(Channel, channel, "channel"))
        put("delivery_format", _enum(DeliveryFormat, delivery_format, "delivery_format"))
        put(
            "json_binary_encoding",
            _enum(JsonBinaryEncoding, json_binary_encoding, "json_binary_encoding"),
        )
        put("parsed", _check_bool(parsed, "parsed"))
        put("ignore_invalid_feeds", _check_bool(ignore_invalid_feeds, "ignore_invalid_feeds"))
        sessions = None
        if market_sessions is not None:
            sessions = tuple(
                _enum(MarketSession, s, "market_sessions")
                for s in _as_tuple(market_sessions, "market_sessions")
            )
            _unique(sessions, "market_sessions")
        put("market_sessions", sessions)
        if subscription_id is not None:
            _check_int(subscription_id, 0, U64_MAX, "subscription_id")
        put("subscription_id", subscription_id)
        extra = dict(extra or {})
        for key in extra:
            if key in _WIRE_FIELDS:
                raise InvalidRequestError(
                    f"extra: {key!r} is a known field; pass it as its own argument"
                )
        put("extra", extra)

    def with_id(self, subscription_id: int) -> SubscribeRequest:
        """A copy carrying the given subscription id."""
        return replace(self, subscription_id=subscription_id)

    def params(self) -> dict[str, Any]:
        """The subscription parameters as wire JSON fields (no ``type``/``subscriptionId``).

        This is also the body of the REST ``latest_price`` and ``price`` calls.
        """
        out: dict[str, Any] = {}
        if self.price_feed_ids is not None:
            out["priceFeedIds"] = list(self.price_feed_ids)
        else:
            out["symbols"] = list(self.symbols or ())
        out["properties"] = [p.value for p in self.properties]
        out["formats"] = [f.value for f in self.formats]
        out["deliveryFormat"] = self.delivery_format.value
        out["jsonBinaryEncoding"] = self.json_binary_encoding.value
        out["parsed"] = self.parsed
        out["channel"] = self.channel.value
        out["ignoreInvalidFeeds"] = self.ignore_invalid_feeds
        if self.market_sessions is not None:
            out["marketSessions"] = [s.value for s in self.market_sessions]
        out.update(self.extra)
        return out

    def to_wire(self) -> dict[str, Any]:
        """The subscribe request as a JSON-ready dict, field names exactly as on the wire."""
        if self.subscription_id is None:
            raise InvalidRequestError("subscription_id: must be set before sending")
        return {"type": "subscribe", "subscriptionId": self.subscription_id, **self.params()}

    def to_json(self) -> str:
        """The subscribe request as the JSON text frame sent to the server."""
        return json.dumps(self.to_wire(), separators=(",", ":"))

    @classmethod
    def from_params(
        cls, params: Mapping[str, Any], subscription_id: int | None = None
    ) -> SubscribeRequest:
        """Build from wire JSON fields, accepting the older names ``chains`` and
        ``ignoreInvalidFeedIds``; unknown fields are kept in :attr:`extra`.
        Raises :class:`InvalidRequestError` on any rule the server enforces."""
        if not isinstance(params, Mapping):
            raise InvalidRequestError(
                f"request: expected a JSON object, got {type(params).__name__}"
            )
        if "properties" not in params:
            raise InvalidRequestError("properties: missing")
        if "channel" not in params:
            raise InvalidRequestError("channel: missing")
        formats = params.get("formats", params.get("chains", []))
        return cls(
            properties=params["properties"],
            price_feed_ids=params.get("priceFeedIds"),
            symbols=params.get("symbols"),
            channel=params["channel"],
            formats=formats if formats is not None else [],
            delivery_format=params.get("deliveryFormat", "json"),
            json_binary_encoding=params.get("jsonBinaryEncoding", "base64"),
            parsed=params.get("parsed", True),
            ignore_invalid_feeds=params.get(
                "ignoreInvalidFeeds", params.get("ignoreInvalidFeedIds", False)
            ),
            market_sessions=params.get("marketSessions"),
            subscription_id=subscription_id,
            extra={k: v for k, v in params.items() if k not in _WIRE_FIELDS},
        )

    @classmethod
    def from_wire(cls, obj: Mapping[str, Any]) -> SubscribeRequest:
        """Parse a subscribe request as the server receives it (with ``subscriptionId``)."""
        if not isinstance(obj, Mapping) or "subscriptionId" not in obj:
            raise InvalidRequestError("subscriptionId: missing")
        sub_id = _check_int(obj["subscriptionId"], 0, U64_MAX, "subscriptionId")
        return cls.from_params(obj, subscription_id=sub_id)


@dataclass(frozen=True)
class UnsubscribeRequest:
    """Stop a subscription on this connection."""

    subscription_id: int

    def __post_init__(self) -> None:
        _check_int(self.subscription_id, 0, U64_MAX, "subscription_id")

    def to_wire(self) -> dict[str, Any]:
        """The unsubscribe request as a JSON-ready dict."""
        return {"type": "unsubscribe", "subscriptionId": self.subscription_id}

    def to_json(self) -> str:
        """The unsubscribe request as the JSON text frame sent to the server."""
        return json.dumps(self.to_wire(), separators=(",", ":"))

    @classmethod
    def from_wire(cls, obj: Mapping[str, Any]) -> UnsubscribeRequest:
        """Parse an unsubscribe request as the server receives it."""
        if not isinstance(obj, Mapping) or "subscriptionId" not in obj:
            raise InvalidRequestError("subscriptionId: missing")
        return cls(_check_int(obj["subscriptionId"], 0, U64_MAX, "subscriptionId"))


Request: TypeAlias = SubscribeRequest | UnsubscribeRequest


def parse_request(text: str | bytes) -> Request:
    """Parse a client request frame (used by the simulator); raises InvalidRequestError."""
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise InvalidRequestError(f"request is not valid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise InvalidRequestError(f"request: expected a JSON object, got {type(obj).__name__}")
    kind = obj.get("type")
    if kind == "subscribe":
        return SubscribeRequest.from_wire(obj)
    if kind == "unsubscribe":
        return UnsubscribeRequest.from_wire(obj)
    raise InvalidRequestError(
        f"type: unknown request type {kind!r}; expected 'subscribe' or 'unsubscribe'"
    )
