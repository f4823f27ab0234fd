"""Scale-out: one set of Lazer connections feeding many consumers, through Redis Streams.

::

 endpoints ==> Relay A (LazerClient) --+                         +--> RelayConsumer (recv())
                                       +--> Redis stream -------+--> RelayConsumer
 endpoints ==> Relay B (LazerClient) --+    (each update once:   +--> RelayConsumer
                                             atomic seen-key check + XADD)

- :class:`Relay` runs a :class:`~pylazer_sync.LazerClient` and appends every unique
  update (its raw frame) to a stream; two relays with the same subscriptions write each
  update once between them.
- :class:`RelayConsumer` reads the stream back with the ``LazerClient`` interface
  (``recv``, ``recv_many``, iteration, ``latest``, ``stats``, ``close``).

Needs the ``redis`` extra (``pip install 'pylazer-sync[redis]'``) and Redis 7.0 or newer.
Design, retention, bounds and figures: the README, "Scale-out through Redis".
"""

from ..errors import RelayAuthError, RelayConnectError, RelayError, RelayStreamError
from .consumer import RelayConsumer
from .entries import stable_subscription_id
from .relay import Relay
from .store import DEFAULT_REDIS_URL, DEFAULT_STREAM, Retention, StartPosition

__all__ = [
    "DEFAULT_REDIS_URL",
    "DEFAULT_STREAM",
    "Relay",
    "RelayAuthError",
    "RelayConnectError",
    "RelayConsumer",
    "RelayError",
    "RelayStreamError",
    "Retention",
    "StartPosition",
    "stable_subscription_id",
]
