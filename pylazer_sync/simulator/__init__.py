"""A local Lazer endpoint: the production protocol, deterministic prices, real signatures.

``Simulator`` serves ``ws://HOST:PORT/v1/stream`` (and the REST endpoints) from a
background thread, byte-compatible with production, so this library's client, the
official SDKs or any WebSocket tool can connect to it unchanged. It also injects the
faults a resilient client must survive: dropped connections, stalls, outages, garbage,
slow paths and floods. ``python -m pylazer_sync.simulator --help`` runs it standalone.

Needs the ``simulator`` extra: ``pip install 'pylazer-sync[simulator]'``.
"""

from __future__ import annotations

from ..errors import MissingDependencyError

try:
    import websockets  # noqa: F401  (checked here to name the extra in the error)
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise MissingDependencyError(
        "the simulator needs the websockets library; "
        "install it with: pip install 'pylazer-sync[simulator]'"
    ) from exc

from .connection import ConnectionInfo
from .faults import GARBAGE_KINDS, GarbageKind
from .market import Catalogue, FeedInfo, MarketModel
from .replay import Replay
from .server import RefuseMode, RequestRecord
from .simulator import Simulator

__all__ = [
    "GARBAGE_KINDS",
    "Catalogue",
    "ConnectionInfo",
    "FeedInfo",
    "GarbageKind",
    "MarketModel",
    "RefuseMode",
    "Replay",
    "RequestRecord",
    "Simulator",
]
