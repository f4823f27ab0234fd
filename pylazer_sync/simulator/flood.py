"""Flood mode: updates as fast as connections take them, one encoding per frame.

For benchmarks. A :class:`FloodSource` per subscription shape makes frames on demand and
keeps the most recent ones, so every connection with that shape sends the same bytes
while the source encodes each frame once; :func:`flood_sender` feeds one connection.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from typing import Final

from websockets.exceptions import ConnectionClosed

from ..protocol import Payload
from .connection import SimConnection
from .updates import Frame, Shape, UpdateEncoder

# A sender gives other tasks a turn after this many frames sent without waiting.
_YIELD_EVERY: Final = 64


@dataclass
class Flood:
    """The settings of a flood in progress and its sources by shape."""

    rate_hz: float | None
    step_us: int
    sources: dict[Shape, FloodSource] = field(default_factory=dict)


class FloodSource:
    """Flood-mode frames of one shape: distinct timestamps, the prices of the start.

    Frame ``i`` carries timestamp ``start_us + i * step_us``. Frames are made on demand
    by whichever connection first needs them and kept for the others (the last
    ``window`` frames), so N connections cost one encoding per frame, and a connection
    slower than the others by more than the window skips ahead (counted).
    """

    def __init__(
        self, encoder: UpdateEncoder, shape: Shape, start_us: int, step_us: int, window: int
    ) -> None:
        self.encoder = encoder
        self.shape = shape
        self.start_us = start_us
        self.step_us = step_us
        self.window = window
        # Market values frozen at the start: a flood measures the pipe, not the model.
        self.feeds = encoder.feeds_at(shape, start_us)
        self._frames: deque[Frame] = deque(maxlen=window)
        self._first = 0  # index of self._frames[0]
        self.generated = 0

    @property
    def head(self) -> int:
        """Index of the next frame to be generated."""
        return self._first + len(self._frames)

    def get(self, index: int) -> tuple[int, Frame]:
        """Frame ``index`` (generating it if new), or the oldest kept one if ``index`` has
        already left the window; returns the index actually served."""
        if index < self._first:
            index = self._first
        while index >= self.head:
            t_us = self.start_us + self.head * self.step_us
            frame = self.encoder.encode(
                self.shape, Payload(t_us, self.feeds, self.shape.channel_id)
            )
            if len(self._frames) == self.window:
                self._first += 1
            self._frames.append(frame)
            self.generated += 1
        return index, self._frames[index - self._first]


async def flood_sender(conn: SimConnection, source: FloodSource, rate_hz: float | None) -> None:
    """Send ``source``'s frames on ``conn`` from its newest on, as fast as the socket
    takes them (or at ``rate_hz``); a sender left behind by the window skips (counted)."""
    loop = asyncio.get_running_loop()
    # What is already queued (the "subscribed" answer, for one) goes out first.
    await conn.queue.join()
    index = first = source.head
    started = loop.time()
    streak = 0
    try:
        while True:
            if rate_hz is not None:
                wait = started + (index - first) / rate_hz - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                    streak = 0
            served, frame = source.get(index)
            conn.frames_dropped += served - index
            await conn.send_flood(frame)
            index = served + 1
            streak += 1
            if streak >= _YIELD_EVERY:
                streak = 0
                await asyncio.sleep(0)
    except ConnectionClosed:
        pass
