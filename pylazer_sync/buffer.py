"""The bounded output buffer between the dedup thread and ``recv()``.

Hand-written on a ``deque`` and one ``Condition`` rather than ``queue.Queue`` because
the overflow policy ``drop_oldest`` must evict and insert atomically, and
``recv_many`` must take a whole batch under one lock acquisition; ``queue.Queue``
offers neither.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

from .config import OverflowPolicy
from .errors import ClientClosed, RecvTimeout
from .ratelog import RateLimitedWarning

T = TypeVar("T")

# Waits are cut into slices so a blocked recv() in the main thread reacts to Ctrl-C
# at once on every platform; a slice ends early as soon as a message arrives.
_WAIT_SLICE = 0.25


class MessageBuffer(Generic[T]):
    """A bounded FIFO with an overflow policy, closeable, safe for many producers/consumers."""

    def __init__(
        self, capacity: int, policy: OverflowPolicy, on_drop: Callable[[T], None] | None = None
    ) -> None:
        self.capacity = capacity
        self.policy = policy
        self._items: deque[T] = deque()
        self._lock = threading.Lock()
        self._not_empty = threading.Condition(self._lock)
        self._not_full = threading.Condition(self._lock)
        self._closed = False
        self._on_drop = on_drop
        self.dropped = 0
        """Messages evicted by ``drop_oldest`` (read without a lock: a single int is atomic)."""
        self.blocked_puts = 0
        """Times the producer had to wait for room under ``block``."""
        self._warn_drop = RateLimitedWarning()

    def __len__(self) -> int:
        return len(self._items)

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def put(self, item: T) -> bool:
        """Add an item, applying the overflow policy; returns False once the buffer is closed."""
        with self._lock:
            if self._closed:
                return False
            items = self._items
            if len(items) >= self.capacity:
                if self.policy == "drop_oldest":
                    evicted = items.popleft()
                    self._count_drop(evicted)
                else:
                    self.blocked_puts += 1
                    while len(items) >= self.capacity and not self._closed:
                        self._not_full.wait(_WAIT_SLICE)
                    if self._closed:
                        return False
            items.append(item)
            self._not_empty.notify()
            return True

    def put_many(self, batch: list[T]) -> int:
        """Add several items under one lock and one wake-up; returns how many were added.

        The dedup thread hands over a whole batch this way: waking the reader once per
        batch instead of once per message saves a thread switch (and a GIL hand-off) per
        message, which cost more than decoding it. Under ``block`` it waits for room as
        often as needed; it returns early, with fewer, once the buffer is closed.
        """
        with self._lock:
            if self._closed:
                return 0
            items = self._items
            if self.policy == "drop_oldest":
                items.extend(batch)
                for _ in range(len(items) - self.capacity):
                    self._count_drop(items.popleft())
                self._not_empty.notify(len(batch))
                return len(batch)
            added = 0
            while added < len(batch):
                room = self.capacity - len(items)
                if room > 0:
                    part = batch[added : added + room]
                    items.extend(part)
                    added += len(part)
                    self._not_empty.notify(len(part))
                    continue
                self.blocked_puts += 1
                while len(items) >= self.capacity and not self._closed:
                    self._not_full.wait(_WAIT_SLICE)
                if self._closed:
                    break
            return added

    def _count_drop(self, evicted: T) -> None:
        self.dropped += 1
        if self._on_drop is not None:
            self._on_drop(evicted)
        self._warn_drop(
            "output buffer full (capacity %d): dropped the oldest message, %d in total; "
            "read faster or raise channel_capacity",
            self.capacity,
            self.dropped,
        )

    def _wait_for_items(self, timeout: float | None) -> None:
        """Wait (lock held) until an item is there; raise on close or timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._items:
            if self._closed:
                raise ClientClosed("the client is closed")
            if deadline is None:
                self._not_empty.wait(_WAIT_SLICE)
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RecvTimeout(f"no message within {timeout} s")
            self._not_empty.wait(min(remaining, _WAIT_SLICE))

    def get(self, timeout: float | None = None) -> T:
        """Take the oldest item, waiting up to ``timeout`` seconds (None: forever).

        Raises :class:`ClientClosed` once closed and :class:`RecvTimeout` on timeout.
        """
        with self._lock:
            if self._closed:
                raise ClientClosed("the client is closed")
            self._wait_for_items(timeout)
            item = self._items.popleft()
            self._not_full.notify()
            return item

    def get_many(self, max_items: int, timeout: float | None = None) -> list[T]:
        """Take up to ``max_items``, waiting up to ``timeout`` for the first; [] on timeout."""
        with self._lock:
            if self._closed:
                raise ClientClosed("the client is closed")
            try:
                self._wait_for_items(timeout)
            except RecvTimeout:
                return []
            items = self._items
            n = min(max_items, len(items))
            batch = [items.popleft() for _ in range(n)]
            self._not_full.notify_all()
            return batch

    def close(self) -> None:
        """Wake every waiter; later gets raise ClientClosed, later puts are refused."""
        with self._lock:
            self._closed = True
            self._items.clear()
            self._not_empty.notify_all()
            self._not_full.notify_all()
