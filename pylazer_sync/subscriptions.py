"""The set of active subscriptions, shared by the client (writer) and connections (readers).

Every connection re-sends every active subscription when it (re)connects, so this
registry is the single source of truth for "what should this client be receiving".
"""

from __future__ import annotations

import itertools
import threading

from .errors import InvalidRequestError
from .protocol import SubscribeRequest


class SubscriptionRegistry:
    """Active subscriptions by id, in the order they were made; safe from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._active: dict[int, SubscribeRequest] = {}
        self._ids = itertools.count(1)

    def add(self, request: SubscribeRequest) -> SubscribeRequest:
        """Record a subscription, assigning a fresh id when it has none; returns it with its id."""
        with self._lock:
            if request.subscription_id is None:
                sub_id = next(self._ids)
                while sub_id in self._active:
                    sub_id = next(self._ids)
                request = request.with_id(sub_id)
            elif request.subscription_id in self._active:
                raise InvalidRequestError(
                    f"subscription_id: {request.subscription_id} is already active; "
                    "unsubscribe it first or leave the id out to get a fresh one"
                )
            assert request.subscription_id is not None
            self._active[request.subscription_id] = request
            return request

    def remove(self, subscription_id: int) -> SubscribeRequest:
        """Forget a subscription; raises InvalidRequestError if it is not active."""
        with self._lock:
            try:
                return self._active.pop(subscription_id)
            except KeyError:
                raise InvalidRequestError(
                    f"subscription_id: {subscription_id!r} is not an active subscription"
                ) from None

    def snapshot(self) -> list[SubscribeRequest]:
        """The active subscriptions, oldest first."""
        with self._lock:
            return list(self._active.values())

    def get(self, subscription_id: int) -> SubscribeRequest | None:
        """One active subscription, or None."""
        with self._lock:
            return self._active.get(subscription_id)

    def __len__(self) -> int:
        with self._lock:
            return len(self._active)
