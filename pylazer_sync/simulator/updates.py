"""From a subscription and a tick to the exact bytes production would send.

:func:`resolve` checks a subscribe request against the catalogue (as the server does) and
turns it into a :class:`Shape`: everything that decides the bytes of an update. Two
connections with equal shapes get byte-identical frames, so the server groups them and
:class:`UpdateEncoder` encodes (and signs) once per shape and tick. All wire encoding is
the protocol layer's; this module only chooses what goes into the update.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeAlias

from ..errors import InvalidRequestError
from ..protocol import (
    Channel,
    DeliveryFormat,
    Envelope,
    EvmMessage,
    FeedUpdate,
    Format,
    JsonBinaryEncoding,
    JsonMessage,
    LeEcdsaMessage,
    LeUnsignedMessage,
    Payload,
    Property,
    Signer,
    SolanaMessage,
    StreamUpdate,
    SubscribedWithIgnoredFeeds,
    SubscribeRequest,
    encode_binary_update,
    encode_payload,
    encode_server_message,
    stream_update_to_json_obj,
)
from ..protocol.types import CHANNEL_IDS, PROPERTY_ATTRS
from .market import Catalogue, FeedInfo, MarketModel

logger = logging.getLogger(__name__)

Frame: TypeAlias = str | bytes
"""A WebSocket message: ``str`` goes out as a text frame, ``bytes`` as a binary frame."""

_FIXED_PERIODS_US: Final = {
    Channel.FIXED_RATE_1MS: 1_000,
    Channel.FIXED_RATE_50MS: 50_000,
    Channel.FIXED_RATE_200MS: 200_000,
    Channel.FIXED_RATE_1000MS: 1_000_000,
}
MAX_FEEDS_PER_SUBSCRIPTION: Final = 255  # the payload's feed count is a u8


def now_us() -> int:
    """Wall-clock time in microseconds since the Unix epoch (the tick clock)."""
    return time.time_ns() // 1_000


def channel_period_us(channel: Channel, real_time_period_us: int) -> int:
    """The tick period of a channel; ``real_time`` ticks at the simulator's rate."""
    if channel is Channel.REAL_TIME:
        return real_time_period_us
    return _FIXED_PERIODS_US[channel]


@dataclass(frozen=True)
class Shape:
    """Everything that decides the bytes of a subscription's updates (hashable)."""

    subscription_id: int
    feed_ids: tuple[int, ...]
    properties: tuple[Property, ...]
    formats: tuple[Format, ...]
    delivery_format: DeliveryFormat
    json_binary_encoding: JsonBinaryEncoding
    parsed: bool
    channel: Channel
    market_sessions: frozenset[str] | None

    @property
    def channel_id(self) -> int:
        """The channel id written into binary payloads."""
        return CHANNEL_IDS[self.channel]


@dataclass(frozen=True)
class Resolution:
    """The outcome of checking a subscription against the catalogue."""

    shape: Shape | None
    # The message to answer with: Subscribed is implied when it is None and shape is set.
    ignored: SubscribedWithIgnoredFeeds | None
    error: str | None


def resolve(request: SubscribeRequest, catalogue: Catalogue) -> Resolution:
    """Check feeds, channel support and stability as production does.

    Without ``ignoreInvalidFeeds`` any invalid feed refuses the subscription; with it, the
    valid feeds are kept and the rest reported, unless none is valid.
    """
    sub_id = request.subscription_id if request.subscription_id is not None else 0
    unknown_ids: list[int] = []
    unknown_symbols: list[str] = []
    unsupported: list[int] = []
    unstable: list[int] = []
    valid: list[int] = []
    channel_id = CHANNEL_IDS[request.channel]
    found: list[FeedInfo] = []
    for fid in request.price_feed_ids or ():
        by_id = catalogue.get(fid)
        if by_id is None:
            unknown_ids.append(fid)
        else:
            found.append(by_id)
    for symbol in request.symbols or ():
        by_symbol = catalogue.by_symbol(symbol)
        if by_symbol is None:
            unknown_symbols.append(symbol)
        else:
            found.append(by_symbol)
    for info in found:
        fid = info.feed_id
        if CHANNEL_IDS[info.min_channel] > channel_id:
            unsupported.append(fid)
        elif info.state != "stable":
            unstable.append(fid)
        elif fid not in valid:  # two symbols may name the same feed
            valid.append(fid)
    problems: list[str] = []
    if unknown_ids:
        problems.append(f"unknown price feed ids: {unknown_ids}")
    if unknown_symbols:
        problems.append(f"unknown symbols: {unknown_symbols}")
    if unsupported:
        problems.append(f"price feeds {unsupported} are not available on channel {request.channel}")
    if unstable:
        problems.append(f"price feeds {unstable} are not stable yet")
    if problems and not request.ignore_invalid_feeds:
        return Resolution(None, None, "; ".join(problems))
    if not valid:
        return Resolution(None, None, "no valid price feeds: " + "; ".join(problems))
    if len(valid) > MAX_FEEDS_PER_SUBSCRIPTION:
        return Resolution(
            None, None, f"too many price feeds: {len(valid)} (at most {MAX_FEEDS_PER_SUBSCRIPTION})"
        )
    shape = Shape(
        subscription_id=sub_id,
        feed_ids=tuple(valid),
        properties=request.properties,
        formats=request.formats,
        delivery_format=request.delivery_format,
        json_binary_encoding=request.json_binary_encoding,
        parsed=request.parsed,
        channel=request.channel,
        market_sessions=(
            frozenset(s.value for s in request.market_sessions)
            if request.market_sessions is not None
            else None
        ),
    )
    ignored = None
    if problems:
        ignored = SubscribedWithIgnoredFeeds(
            subscription_id=sub_id,
            subscribed_feed_ids=tuple(valid),
            unknown_ids=tuple(unknown_ids),
            unknown_symbols=tuple(unknown_symbols),
            unsupported_channels=tuple(unsupported),
            unstable=tuple(unstable),
        )
    return Resolution(shape, ignored, None)


def select(update: FeedUpdate, properties: Sequence[Property]) -> FeedUpdate:
    """The feed reduced to the requested properties, in the requested (wire) order."""
    values = {PROPERTY_ATTRS[p]: getattr(update, PROPERTY_ATTRS[p]) for p in properties}
    return FeedUpdate(update.feed_id, **values, properties=tuple(properties))


class UpdateEncoder:
    """Builds the frame of a shape at a tick: market values, envelopes, signatures."""

    def __init__(self, market: MarketModel, keys: Signer) -> None:
        self.market = market
        self.keys = keys

    def feeds_at(self, shape: Shape, t_us: int) -> list[FeedUpdate]:
        """The shape's feeds at ``t_us``, filtered by its market sessions if it has any."""
        feeds = [
            select(self.market.feed_update(fid, t_us), shape.properties) for fid in shape.feed_ids
        ]
        if shape.market_sessions is not None:
            sessions = shape.market_sessions
            # select() may have dropped marketSession: filter on the full values.
            feeds = [
                f
                for f in feeds
                if self.market.feed_update(f.feed_id, t_us).market_session in sessions
            ]
        return feeds

    def envelopes(self, shape: Shape, payload: Payload) -> dict[Format, Envelope]:
        """One envelope per requested format, each payload encoded once per byte order."""
        out: dict[Format, Envelope] = {}
        little: bytes | None = None
        for fmt in shape.formats:
            if fmt is Format.EVM:
                out[fmt] = self.keys.sign_evm(encode_payload(payload, "big"))
                continue
            if little is None:
                little = encode_payload(payload, "little")
            if fmt is Format.SOLANA:
                out[fmt] = self.keys.sign_solana(little)
            elif fmt is Format.LE_ECDSA:
                out[fmt] = self.keys.sign_le_ecdsa(little)
            else:
                out[fmt] = LeUnsignedMessage(little)
        return out

    def stream_update(self, shape: Shape, payload: Payload) -> StreamUpdate:
        """The update as the protocol layer's :class:`StreamUpdate` (JSON delivery order)."""
        env = self.envelopes(shape, payload)
        evm, sol, lee, leu = (env.get(f) for f in Format)
        assert evm is None or isinstance(evm, EvmMessage)
        assert sol is None or isinstance(sol, SolanaMessage)
        assert lee is None or isinstance(lee, LeEcdsaMessage)
        assert leu is None or isinstance(leu, LeUnsignedMessage)
        return StreamUpdate(
            shape.subscription_id,
            payload if shape.parsed else None,
            evm=evm,
            solana=sol,
            le_ecdsa=lee,
            le_unsigned=leu,
        )

    def encode(self, shape: Shape, payload: Payload) -> Frame:
        """The frame for a payload: a JSON text frame or a binary frame.

        Binary frames carry the envelopes in the order the formats were requested, then
        the ``parsed`` JSON envelope if ``parsed`` is on.
        """
        if shape.delivery_format is DeliveryFormat.JSON:
            return encode_server_message(
                self.stream_update(shape, payload), shape.json_binary_encoding
            )
        messages: list[Envelope] = list(self.envelopes(shape, payload).values())
        if shape.parsed:
            messages.append(JsonMessage.from_payload(payload))
        return encode_binary_update(shape.subscription_id, messages)

    def frame(self, shape: Shape, t_us: int) -> Frame | None:
        """The frame of ``shape`` at tick ``t_us``, or ``None`` if the session filter left
        no feed to send."""
        feeds = self.feeds_at(shape, t_us)
        if not feeds:
            return None
        return self.encode(shape, Payload(t_us, feeds, shape.channel_id))

    def json_update(self, shape: Shape, t_us: int) -> dict[str, Any]:
        """A REST "JsonUpdate": the ``streamUpdated`` body without type and subscription id."""
        payload = Payload(t_us, self.feeds_at(shape, t_us), shape.channel_id)
        obj = stream_update_to_json_obj(
            self.stream_update(shape, payload), shape.json_binary_encoding
        )
        del obj["type"], obj["subscriptionId"]
        return obj


def validate_rest_params(params: Any) -> SubscribeRequest:
    """A REST body (subscribe parameters without type and id) as a request; raises
    :class:`InvalidRequestError` like the stream does."""
    if not isinstance(params, dict):
        raise InvalidRequestError("request body: expected a JSON object")
    return SubscribeRequest.from_params(params, subscription_id=0)
