"""Names and numbers of the Lazer protocol: channels, formats, properties, sessions.

Every enum derives from ``str`` so its members compare equal to the wire strings
and plain strings are accepted wherever an enum is expected.
"""

from __future__ import annotations

from enum import Enum
from typing import Final


class Channel(str, Enum):
    """How often the server sends updates for a subscription."""

    REAL_TIME = "real_time"
    FIXED_RATE_1MS = "fixed_rate@1ms"
    FIXED_RATE_50MS = "fixed_rate@50ms"
    FIXED_RATE_200MS = "fixed_rate@200ms"
    FIXED_RATE_1000MS = "fixed_rate@1000ms"

    def __str__(self) -> str:
        return self.value


class Format(str, Enum):
    """A signed (or unsigned) binary envelope format the server can attach to updates."""

    EVM = "evm"
    SOLANA = "solana"
    LE_ECDSA = "leEcdsa"
    LE_UNSIGNED = "leUnsigned"

    def __str__(self) -> str:
        return self.value


class DeliveryFormat(str, Enum):
    """Whether updates arrive as JSON text frames or binary frames."""

    JSON = "json"
    BINARY = "binary"

    def __str__(self) -> str:
        return self.value


class JsonBinaryEncoding(str, Enum):
    """How binary envelopes are embedded in JSON delivery."""

    BASE64 = "base64"
    HEX = "hex"

    def __str__(self) -> str:
        return self.value


class MarketSession(str, Enum):
    """Trading session of a feed's market; the binary code is the index in this list."""

    REGULAR = "regular"
    PRE_MARKET = "preMarket"
    POST_MARKET = "postMarket"
    OVER_NIGHT = "overNight"
    CLOSED = "closed"

    def __str__(self) -> str:
        return self.value


class Property(str, Enum):
    """A per-feed property that a subscription may ask for; the value is the wire name."""

    PRICE = "price"
    BEST_BID_PRICE = "bestBidPrice"
    BEST_ASK_PRICE = "bestAskPrice"
    PUBLISHER_COUNT = "publisherCount"
    EXPONENT = "exponent"
    CONFIDENCE = "confidence"
    FUNDING_RATE = "fundingRate"
    FUNDING_TIMESTAMP = "fundingTimestamp"
    FUNDING_RATE_INTERVAL = "fundingRateInterval"
    MARKET_SESSION = "marketSession"
    EMA_PRICE = "emaPrice"
    EMA_CONFIDENCE = "emaConfidence"
    FEED_UPDATE_TIMESTAMP = "feedUpdateTimestamp"

    def __str__(self) -> str:
        return self.value

    @property
    def id(self) -> int:
        """The property id used in binary payloads."""
        return PROPERTY_IDS[self]

    @property
    def attr(self) -> str:
        """The snake_case attribute name on :class:`~pylazer_sync.protocol.FeedUpdate`."""
        return PROPERTY_ATTRS[self]


# Binary property ids, in the order of PROTOCOL.md's table (the enum's order).
PROPERTY_IDS: Final[dict[Property, int]] = {p: i for i, p in enumerate(Property)}
PROPERTY_BY_ID: Final[dict[int, Property]] = {i: p for p, i in PROPERTY_IDS.items()}


def _snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in name)


PROPERTY_ATTRS: Final[dict[Property, str]] = {p: _snake(p.value) for p in Property}

# Every spelling a user may pass for a property: wire name, snake_case name, enum name.
PROPERTY_BY_NAME: Final[dict[str, Property]] = {
    **{p.value: p for p in Property},
    **{PROPERTY_ATTRS[p]: p for p in Property},
    **{p.name: p for p in Property},
}

# Channel ids in binary payloads. Newer servers send real_time and fixed_rate@1ms as id 1.
CHANNEL_IDS: Final[dict[Channel, int]] = {
    Channel.REAL_TIME: 1,
    Channel.FIXED_RATE_1MS: 1,
    Channel.FIXED_RATE_50MS: 2,
    Channel.FIXED_RATE_200MS: 3,
    Channel.FIXED_RATE_1000MS: 4,
}
CHANNEL_BY_ID: Final[dict[int, Channel]] = {
    1: Channel.REAL_TIME,
    2: Channel.FIXED_RATE_50MS,
    3: Channel.FIXED_RATE_200MS,
    4: Channel.FIXED_RATE_1000MS,
}

MARKET_SESSION_BY_CODE: Final[dict[int, MarketSession]] = dict(enumerate(MarketSession))
MARKET_SESSION_CODES: Final[dict[str, int]] = {s.value: i for i, s in enumerate(MarketSession)}

# Price-like properties: their real value is mantissa x 10^exponent.
PRICE_LIKE_ATTRS: Final[frozenset[str]] = frozenset(
    {
        "price",
        "best_bid_price",
        "best_ask_price",
        "confidence",
        "funding_rate",
        "ema_price",
        "ema_confidence",
    }
)

U16_MAX: Final = 2**16 - 1
U32_MAX: Final = 2**32 - 1
U64_MAX: Final = 2**64 - 1
I16_MIN: Final = -(2**15)
I16_MAX: Final = 2**15 - 1
I64_MIN: Final = -(2**63)
I64_MAX: Final = 2**63 - 1
