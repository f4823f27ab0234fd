"""The dedup thread's memory of the frames it has seen: a TTL and size bound per frame,
at the cost of a plain dict per frame.

A ``cachetools.TTLCache`` with one entry per frame was the first design, and it was
measured the largest cost of the whole client under a flood (2-core machine, 4
connections, JSON): an insert costs ~1.9 us (timer, expiry, linked list, LRU eviction
once full) and a lookup ~0.3 us, against ~0.13 and ~0.06 us for a dict; and its 100,000
linked-list nodes are objects the garbage collector traverses, so a full collection
took 60-100 ms (the GIL held all along) and collections took ~20 % of the process.

So frames are remembered in *generations*: the keys of the current generation go into
one ``dict`` (key -> generation number, ints only, so the collector never looks at
it); a generation is sealed when it is a tenth of the TTL old or holds a tenth of the
size bound, and the sealed ones live in a ``cachetools.TTLCache`` (``ttl`` =
``dedup_ttl``, ``maxsize`` = ``dedup_size`` frames, each generation weighing its number
of frames), which decides when each expires or is evicted, oldest first. A frame is thus
remembered for at least ``dedup_ttl`` seconds (at most a fifth longer) and while it is
among the last ``dedup_size`` frames (a tenth more at most), and each frame costs one
dict operation: a lookup for a duplicate, a lookup and an insert for a new one.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Final

from cachetools import TTLCache

_GENERATIONS: Final = 10
"""Generations per TTL (and per size bound): the granularity of the bounds."""


class SeenFrames:
    """Keys (64-bit hashes of frames) seen recently; used by one thread only.

    Args:
        ttl: seconds a key is remembered at least.
        size: keys remembered at most (a tenth more while a generation fills).
        timer: the clock (``time.monotonic``; tests give their own).
    """

    def __init__(self, ttl: float, size: int, timer: Callable[[], float] | None = None) -> None:
        self._timer = time.monotonic if timer is None else timer
        self._span = ttl / _GENERATIONS
        self._capacity = max(1, size // _GENERATIONS)
        # Sealed generations: number -> its keys. The TTLCache decides which live.
        self._sealed: TTLCache[int, list[int]] = TTLCache(
            maxsize=size, ttl=ttl, timer=self._timer, getsizeof=len
        )
        self._mirror: deque[tuple[int, list[int]]] = deque()  # what the index holds, oldest first
        self.index: dict[int, int] = {}
        """key -> generation number, of every key remembered now: ``key in index`` is
        :meth:`seen` without a call (the dedup loop's per-frame test). Read-only outside."""
        self._generation = 0
        self._current: list[int] = []
        self._started = self._timer()

    def __len__(self) -> int:
        """Keys remembered now (safe to read from another thread: a dict's size)."""
        return len(self.index)

    def seen(self, key: int) -> bool:
        """Whether ``key`` was added and is still remembered (forgotten generations leave
        the index in the same step that forgets them)."""
        return key in self.index

    def add(self, key: int) -> None:
        """Remember ``key`` (not :meth:`seen` yet)."""
        self.index[key] = self._generation
        current = self._current
        current.append(key)
        if len(current) >= self._capacity:
            self._seal()

    def tick(self) -> None:
        """Seal the current generation once it is old enough, and forget what expired;
        called once per batch of frames."""
        if self._timer() - self._started >= self._span:
            self._seal()

    def _seal(self) -> None:
        if self._current:
            # The TTLCache may evict older generations to make room (size bound).
            self._sealed[self._generation] = self._current
            self._mirror.append((self._generation, self._current))
            self._generation += 1
            self._current = []
        self._started = self._timer()
        self._sealed.expire()
        oldest = next(iter(self._sealed), self._generation)  # older ones are forgotten
        index = self.index
        mirror = self._mirror
        while mirror and mirror[0][0] < oldest:
            generation, keys = mirror.popleft()
            for key in keys:
                if index.get(key) == generation:  # not added again since
                    del index[key]
