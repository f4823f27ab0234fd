"""pylazer_sync: a threaded, blocking Python client for the Pyth Lazer (Pyth Pro) price stream."""

from . import protocol
from .client import LazerClient
from .config import DEFAULT_ENDPOINTS, Backoff
from .connection import ConnectionState
from .dedup import Message, UndecodableFrame
from .errors import (
    AuthenticationError,
    ClientClosed,
    ClientNotStarted,
    ConnectError,
    InvalidRequestError,
    LazerError,
    MissingDependencyError,
    ProtocolError,
    RecvTimeout,
    RestError,
    SignatureError,
)
from .protocol import (
    Channel,
    DeliveryFormat,
    FeedUpdate,
    Format,
    JsonBinaryEncoding,
    MarketSession,
    Payload,
    Property,
    ServerError,
    StreamUpdate,
    Subscribed,
    SubscribedWithIgnoredFeeds,
    SubscribeRequest,
    SubscriptionError,
    UnknownMessage,
    Unsubscribed,
    decode_binary_update,
    decode_message,
    parse_server_message,
)
from .rest import RestClient, SymbolInfo
from .snapshot import LatestFeed

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_ENDPOINTS",
    "AuthenticationError",
    "Backoff",
    "Channel",
    "ClientClosed",
    "ClientNotStarted",
    "ConnectError",
    "ConnectionState",
    "DeliveryFormat",
    "FeedUpdate",
    "Format",
    "InvalidRequestError",
    "JsonBinaryEncoding",
    "LatestFeed",
    "LazerClient",
    "LazerError",
    "MarketSession",
    "Message",
    "MissingDependencyError",
    "Payload",
    "Property",
    "ProtocolError",
    "RecvTimeout",
    "RestClient",
    "RestError",
    "ServerError",
    "SignatureError",
    "StreamUpdate",
    "SubscribeRequest",
    "Subscribed",
    "SubscribedWithIgnoredFeeds",
    "SubscriptionError",
    "SymbolInfo",
    "UndecodableFrame",
    "UnknownMessage",
    "Unsubscribed",
    "__version__",
    "decode_binary_update",
    "decode_message",
    "parse_server_message",
    "protocol",
]
