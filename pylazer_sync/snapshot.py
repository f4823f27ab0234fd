"""The newest value of every feed, and the newest whole update of every subscription, kept
as updates arrive: for "what is BTC now?" and "which signed update do I send on chain?".

The dedup thread writes it for every unique update before the update is queued for
``recv()``, so it is fresh even when nobody reads the queue (see the overflow policy
notes in ``LazerClient``'s docstring). Readers get copies; no lock is held while they
look at them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from .protocol import FeedUpdate, StreamUpdate


@dataclass(frozen=True, slots=True)
class LatestFeed:
    """The newest update of one feed: its values, when it was made and when it arrived."""

    feed: FeedUpdate
    timestamp_us: int
    """The update's timestamp (microseconds since the Unix epoch)."""
    subscription_id: int
    received_at: float
    """``time.time()`` when the client decoded it."""

    @property
    def feed_id(self) -> int:
        """The feed's id."""
        return self.feed.feed_id

    def real(self, name: str = "price") -> Decimal | None:
        """Exact real value of a price-like field (see :meth:`FeedUpdate.real`)."""
        return self.feed.real(name)


class LatestSnapshot:
    """Thread-safe map feed id -> :class:`LatestFeed`, one writer, any number of readers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # feed id -> (feed, timestamp_us, subscription_id, received_at): plain tuples on the
        # per-update path; LatestFeed objects are built only when someone asks.
        self._feeds: dict[int, tuple[FeedUpdate, int, int, float]] = {}
        # subscription id -> (newest update, its timestamp_us)
        self._updates: dict[int, tuple[StreamUpdate, int]] = {}

    def update(self, update: StreamUpdate) -> None:
        """Record every feed of an update (an older timestamp never replaces a newer one)."""
        self.update_many((update,))

    def update_many(self, updates: Iterable[StreamUpdate]) -> None:
        """Record several updates under one lock (the dedup thread's batches)."""
        now = time.time()
        feeds = self._feeds
        whole = self._updates
        with self._lock:
            for update in updates:
                payload = update.payload
                if payload is None:
                    continue
                ts = payload.timestamp_us
                sub = update.subscription_id
                newest = whole.get(sub)
                if newest is None or newest[1] <= ts:
                    whole[sub] = (update, ts)
                for feed in payload.feeds:
                    current = feeds.get(feed.feed_id)
                    if current is None or current[1] <= ts:
                        feeds[feed.feed_id] = (feed, ts, sub, now)

    def get(self, feed_id: int) -> LatestFeed | None:
        """The newest update of one feed, or None if none arrived yet."""
        with self._lock:
            entry = self._feeds.get(feed_id)
        return None if entry is None else LatestFeed(*entry)

    def all(self) -> dict[int, LatestFeed]:
        """A copy of the whole snapshot, by feed id."""
        with self._lock:
            entries = list(self._feeds.items())
        return {feed_id: LatestFeed(*entry) for feed_id, entry in entries}

    def latest_update(self, subscription_id: int | None = None) -> StreamUpdate | None:
        """The newest whole update of one subscription (``None``: of any subscription),
        or ``None`` if none arrived yet. Updates are immutable once decoded: no copy."""
        with self._lock:
            if subscription_id is not None:
                entry = self._updates.get(subscription_id)
                return None if entry is None else entry[0]
            newest = max(self._updates.values(), key=lambda e: e[1], default=None)
        return None if newest is None else newest[0]
