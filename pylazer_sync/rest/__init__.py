"""REST calls of Pyth Lazer (Pro): prices, reductions, the catalogue, the service state.

One module, one job: :mod:`._http` makes one HTTP exchange (and maps its errors),
:mod:`.failover` decides which base URL to try and when to give up, :mod:`.symbols`
decodes the catalogue, :mod:`.catalogue_cache` keeps it on disk, :mod:`.results` types
the other answers, and :mod:`.client` puts the calls together.
"""

from .client import RestClient, SymbolList, timestamp_us
from .failover import Failover
from .results import GuardianSetUpgrade, ServiceState, StateFeed, StatePublisher
from .symbols import (
    CorporateAction,
    FeedState,
    InstrumentType,
    MarketSessionInfo,
    SymbolInfo,
    decode_symbols,
    parse_duration_us,
)

__all__ = [
    "CorporateAction",
    "Failover",
    "FeedState",
    "GuardianSetUpgrade",
    "InstrumentType",
    "MarketSessionInfo",
    "RestClient",
    "ServiceState",
    "StateFeed",
    "StatePublisher",
    "SymbolInfo",
    "SymbolList",
    "decode_symbols",
    "parse_duration_us",
    "timestamp_us",
]
