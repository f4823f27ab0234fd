"""Flood mode: updates as fast as connections take them, or at a fixed rate.

For benchmarks, whose measurements are only worth something if the source is never the
bottleneck. Sending each frame through ``websockets``' ``send`` costs tens of
microseconds of Python per frame per connection (~50-80k frames/s to one connection,
~11-26k/s each to four), less than a client that deduplicates four connections can
take. So the two modes write pre-built WebSocket frames straight to each connection's
asyncio transport:

* Unlimited (no rate): a :class:`FloodRing` per subscription shape holds ``ring_size``
  frames with distinct timestamps, encoded once, lazily, by whichever connection first
  needs them, and kept already framed (server frames are unmasked: opcode byte, length,
  payload) in one contiguous buffer. Every connection starts at frame 0 and goes round
  the ring, so all connections carry the same byte sequence and a client's
  deduplication works across them. Later rounds are the first with the timestamps
  moved on (one ``bytes.join``, no encoding), so no frame ever repeats. Frames leave in
  chunks of ``chunk_bytes`` (whole frames only), with the transport's flow control as
  back-pressure: millions of frames per second from one Python thread.
* Rate (``rate_hz``): a :class:`FloodTicker` per shape encodes each frame once at its
  tick and writes it to every connection at once. Its timestamp is either the tick's
  nominal time (``stamp="schedule"``: exactly ``1 / rate`` apart) or the wall-clock time
  at which it is written (``stamp="send"``: what a latency measurement needs, since the
  event loop's timers wake up to a millisecond late). Per-connection delays and stalls
  apply to these frames, so one connection can be the slow path of a redundancy test.

Connections of one ring move in near lockstep: none runs more than ``max_lead`` frames
ahead of the slowest (stalled ones aside). A real server sends every update to every
connection at the same time; without the bound, connections that a client reads at
slightly different speeds would drift apart until their copies of an update fall out of
the client's dedup window and every copy counts as a new update.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import logging
from array import array
from typing import Final, Literal

from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame as WsFrame
from websockets.frames import Opcode

from ..errors import InvalidRequestError
from ..protocol import DeliveryFormat, Payload
from .connection import SimConnection
from .updates import Frame, Shape, UpdateEncoder, now_us

logger = logging.getLogger(__name__)

FloodStamp = Literal["schedule", "send"]
FLOOD_STAMPS: Final = ("schedule", "send")

# Frames encoded per step while a ring fills: ~10 ms of the loop for JSON frames, so a
# first pass round the ring never blocks the other connections for long.
_FILL_STEP: Final = 1024


def _base(now: int, period: int, span: int) -> int:
    """A multiple of ``period`` at or before ``now`` such that the first pass,
    ``base + 1 .. base + span``, holds no whole second, where fixed-rate ticks sit: so
    flood frames and ticks can be told apart by timestamp. Falls back to the latest
    multiple when no recent one fits (a span of a second or more)."""
    latest = now // period * period
    for k in range(64):
        base = latest - k * period
        if span < 1_000_000 and base % 1_000_000 + span < 1_000_000:
            return base
    return latest


def ws_frame(frame: Frame) -> bytes:
    """A message as the bytes of one unmasked server frame (text for str, binary for bytes)."""
    if isinstance(frame, str):
        return WsFrame(Opcode.TEXT, frame.encode()).serialize(mask=False)
    return WsFrame(Opcode.BINARY, frame).serialize(mask=False)


class FloodRing:
    """The frames of an unlimited flood of one shape, and the positions of its senders.

    Frames carry the prices of the start (a flood measures the pipe, not the market
    model) and distinct timestamps, ``step_us`` apart round the ring. Round ("pass") ``p``
    differs from round 0 only in the upper digits (JSON) or upper bytes (binary) of each
    timestamp: the ring's timestamps are laid out as ``base + p * period + 1 + i * step_us``
    with ``period`` a power of ten (or of 256) above the ring's span, so a pass is the
    first pass with one fixed-size field replaced in every frame, and is built with one
    ``bytes.join`` instead of re-encoding. So frames stay distinct for ever, also for a
    client whose dedup cache only has a time limit (the TypeScript SDK keeps every frame
    for 10 s, which a repeating ring of any affordable size would defeat). Shapes whose
    frames cannot be patched that way (signed formats: the signature covers the
    timestamp) go round the same ring again, which is still new to a client whose dedup
    cache is smaller than the ring (100,000 frames by default for ours).
    """

    def __init__(
        self,
        encoder: UpdateEncoder,
        shape: Shape,
        start_us: int,
        step_us: int,
        size: int,
        max_lead: int | None,
        chunk_bytes: int,
    ) -> None:
        self.encoder = encoder
        self.shape = shape
        self.step_us = step_us
        self.size = size
        self.max_lead = max_lead
        self.chunk_bytes = chunk_bytes
        self.feeds = encoder.feeds_at(shape, start_us)
        span = size * step_us + 1
        self._decimal = shape.delivery_format is DeliveryFormat.JSON
        if self._decimal:  # the timestamp is a decimal string: patch its upper digits
            self._low_width = len(str(span - 1))
            self.period: int = 10**self._low_width
        else:  # a u64 (little-endian in unsigned envelopes): patch its upper bytes
            self._low_width = max(1, ((span - 1).bit_length() + 7) // 8)
            self.period = 256**self._low_width
        self.base = _base(start_us, self.period, span)
        # The framed frames back to back, and where each starts (offsets[i]) and the last
        # ends (offsets[generated]); where each frame's timestamp field to patch starts.
        self._buffer = bytearray()
        self._offsets = array("Q", [0])
        self._marks: array[int] | None = array("Q")
        # Once complete: the first pass, and the bytes between the patched fields.
        self._first: bytes | None = None
        self._pieces: list[bytes] | None = None
        self._passes: dict[int, bytes] = {}
        # sender -> (its connection, frames handed to the transport so far)
        self._senders: dict[object, tuple[SimConnection, int]] = {}
        self._waiters: list[asyncio.Future[None]] = []

    @property
    def generated(self) -> int:
        """Frames encoded so far (at most ``size``)."""
        return len(self._offsets) - 1

    @property
    def patched(self) -> bool | None:
        """Whether later passes get fresh timestamps (None until the ring is complete)."""
        return None if self._first is None else self._pieces is not None

    def timestamp(self, position: int) -> int:
        """The timestamp of the frame at ``position`` (counting round the ring), for a
        patched ring; for an unpatched one, that of pass 0."""
        passes, index = divmod(position, self.size)
        if self._pieces is None and self._first is not None:
            passes = 0
        return self.base + passes * self.period + 1 + index * self.step_us

    def _encode(self, t_us: int) -> bytes:
        frame = self.encoder.encode(self.shape, Payload(t_us, self.feeds, self.shape.channel_id))
        return ws_frame(frame)

    def _field(self, t_us: int) -> tuple[bytes, slice]:
        """The whole timestamp as it appears in a frame, and where in it the part that
        changes from round to round is (the upper digits, or the upper bytes)."""
        if self._decimal:
            text = str(t_us).encode()
            return text, slice(0, len(text) - self._low_width)
        return t_us.to_bytes(8, "little"), slice(self._low_width, 8)

    def _upper(self, passes: int) -> bytes:
        """The patched field of round ``passes``."""
        full, upper = self._field(self.base + passes * self.period + 1)
        return full[upper]

    def _fill(self, upto: int) -> None:
        """Encode frames up to index ``upto`` (exclusive, at most ``size``)."""
        upto = min(upto, self.size)
        for i in range(self.generated, upto):
            t_us = self.base + 1 + i * self.step_us
            framed = self._encode(t_us)
            marks = self._marks
            if marks is not None:
                full, upper = self._field(t_us)
                where = framed.find(full)
                if where < 0 or framed.find(full, where + 1) >= 0:
                    self._marks = None  # not exactly once: cannot patch
                else:
                    marks.append(len(self._buffer) + where + upper.start)
            self._buffer += framed
            self._offsets.append(len(self._buffer))
        if self.generated == self.size and self._first is None:
            self._complete()

    def _complete(self) -> None:
        first = self._first = bytes(self._buffer)
        self._buffer = bytearray()
        self._passes[0] = first
        marks = self._marks
        self._marks = None
        if marks is None:
            return
        width = len(self._upper(0))
        pieces = [first[: marks[0]]]  # a ring has at least one frame, hence one mark
        pieces += [first[a + width : b] for a, b in itertools.pairwise(marks)]
        pieces.append(first[marks[-1] + width :])
        self._pieces = pieces
        # Trust the patching only where it gives exactly what the encoder would.
        for index in {0, self.size // 2, self.size - 1}:
            start, end = self._offsets[index], self._offsets[index + 1]
            expected = self._encode(self.base + self.period + 1 + index * self.step_us)
            if self._pass(1)[start:end] != expected:
                logger.info(
                    "flood: subscription %d's frames cannot be re-stamped; the ring repeats",
                    self.shape.subscription_id,
                )
                self._pieces = None
                break
        self._passes = {0: first}

    def _pass(self, passes: int) -> bytes:
        """The frames of round ``passes`` (built once, kept while a sender needs them)."""
        blob = self._passes.get(passes)
        if blob is not None:
            return blob
        assert self._first is not None
        if self._pieces is None:
            return self._first
        oldest = min((pos // self.size for _, pos in self._senders.values()), default=passes)
        for old in [p for p in self._passes if p < min(oldest, passes)]:
            del self._passes[old]
        blob = self._passes[passes] = self._upper(passes).join(self._pieces)
        return blob

    def chunk(self, position: int) -> tuple[bytes | memoryview, int]:
        """The whole frames from ``position`` (counting round the ring) up to about
        ``chunk_bytes`` long, without crossing the end of the ring; and how many."""
        passes, start = divmod(position, self.size)
        offsets = self._offsets
        if self._first is None and (
            start >= self.generated or offsets[-1] - offsets[start] < self.chunk_bytes
        ):
            # One step at a time: a short chunk now, more encoded for the next one.
            self._fill(max(start + 1, self.generated + _FILL_STEP))
        end = bisect.bisect_right(offsets, offsets[start] + self.chunk_bytes, lo=start + 1) - 1
        end = min(max(end, start + 1), self.generated)
        if self._first is not None:
            blob = self._pass(passes)
            return memoryview(blob)[offsets[start] : offsets[end]], end - start
        return bytes(self._buffer[offsets[start] : offsets[end]]), end - start

    # -- lockstep -----------------------------------------------------------------

    def join(self, key: object, conn: SimConnection) -> None:
        """Register a sender at position 0."""
        self._senders[key] = (conn, 0)

    def leave(self, key: object) -> None:
        """Forget a sender (its connection is gone or unsubscribed)."""
        self._senders.pop(key, None)
        self._wake()

    def advance(self, key: object, position: int) -> None:
        """Record a sender's progress and let the senders waiting for it go on."""
        conn, _ = self._senders[key]
        self._senders[key] = (conn, position)
        self._wake()

    def _wake(self) -> None:
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._waiters.clear()

    async def wait_turn(self, position: int) -> None:
        """Wait while ``position`` is more than ``max_lead`` frames ahead of the slowest
        sender that is not stalled."""
        if self.max_lead is None:
            return
        while True:
            slowest = min(
                (pos for conn, pos in self._senders.values() if not conn.stalled),
                default=position,
            )
            if position - slowest <= self.max_lead:
                return
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            await waiter


async def ring_sender(conn: SimConnection, ring: FloodRing) -> None:
    """Send ``ring``'s frames on ``conn`` from frame 0, round and round, as fast as the
    socket takes them (the transport's flow control) and the lockstep allows."""
    # What is already queued (the "subscribed" answer, for one) goes out first.
    await conn.queue.join()
    key = object()
    ring.join(key, conn)
    position = 0
    try:
        while True:
            if conn.stalled:
                await conn.wait_resumed()
            await ring.wait_turn(position)
            data, count = ring.chunk(position)
            if not conn.write_raw(data, count):
                return  # closing: the handler cleans up
            position += count
            ring.advance(key, position)
            await conn.drain()
            # drain() returns at once while the socket keeps up: give the other
            # connections (and this one's request handler) a turn.
            await asyncio.sleep(0)
    except ConnectionClosed:
        pass
    finally:
        ring.leave(key)


class FloodTicker:
    """A rate-limited flood of one shape: one encoding per tick, written to every member
    connection at once (delayed or stalled ones through their queue)."""

    def __init__(
        self,
        encoder: UpdateEncoder,
        shape: Shape,
        rate_hz: float,
        step_us: int,
        stamp: FloodStamp,
    ) -> None:
        self.encoder = encoder
        self.shape = shape
        self.rate_hz = rate_hz
        self.step_us = step_us
        self.stamp = stamp
        self.start_us = now_us()
        self.feeds = encoder.feeds_at(shape, self.start_us)
        self.members: dict[object, SimConnection] = {}
        self.generated = 0
        self.task = asyncio.create_task(
            self._run(), name=f"sim-flood-ticker-{shape.subscription_id}"
        )

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        period = 1.0 / self.rate_hz
        shape, channel_id = self.shape, self.shape.channel_id
        tick = 0
        while True:
            wait = started + tick * period - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            # Late ticks (timer granularity, pauses) are all sent, not skipped: the rate
            # holds on average, and "schedule" timestamps stay exactly 1 / rate apart.
            if self.members:
                t_us = now_us() if self.stamp == "send" else self.start_us + tick * self.step_us
                try:
                    frame = self.encoder.encode(shape, Payload(t_us, self.feeds, channel_id))
                except Exception:  # a bug here must not kill the ticker silently
                    logger.exception("flood: cannot encode subscription %d", shape.subscription_id)
                    return
                self.generated += 1
                raw = ws_frame(frame)
                for conn in list(self.members.values()):
                    conn.send_now(frame, raw)
            tick += 1

    def close(self) -> None:
        """Stop ticking."""
        self.task.cancel()


async def ticker_member(conn: SimConnection, ticker: FloodTicker) -> None:
    """Keep ``conn`` among ``ticker``'s members until cancelled."""
    await conn.queue.join()  # the "subscribed" answer first
    key = object()
    ticker.members[key] = conn
    try:
        await asyncio.get_running_loop().create_future()  # until cancelled
    finally:
        ticker.members.pop(key, None)


class Flood:
    """A flood in progress: its settings and its sources by shape."""

    def __init__(
        self,
        encoder: UpdateEncoder,
        rate_hz: float | None,
        *,
        ring_size: int,
        max_lead: int | None,
        chunk_bytes: int,
        stamp: FloodStamp,
    ) -> None:
        if rate_hz is not None and not rate_hz > 0:
            raise InvalidRequestError(f"rate_hz must be > 0 or None, got {rate_hz!r}")
        self.encoder = encoder
        self.rate_hz = rate_hz
        # Unlimited: timestamps 1 us apart, distinct round the whole ring.
        self.step_us = 1 if rate_hz is None else max(1, round(1_000_000 / rate_hz))
        self.ring_size = ring_size
        self.max_lead = max_lead
        self.chunk_bytes = chunk_bytes
        self.stamp = stamp
        self.rings: dict[Shape, FloodRing] = {}
        self.tickers: dict[Shape, FloodTicker] = {}

    @property
    def generated(self) -> int:
        """Frames encoded so far, every shape together."""
        return sum(r.generated for r in self.rings.values()) + sum(
            t.generated for t in self.tickers.values()
        )

    def start(self, conn: SimConnection, shape: Shape) -> asyncio.Task[None]:
        """Start flooding ``conn`` with ``shape``'s updates; cancel the task to stop."""
        name = f"sim-flood-{conn.conn_id}-{shape.subscription_id}"
        if self.rate_hz is None:
            ring = self.rings.get(shape)
            if ring is None:
                ring = FloodRing(
                    self.encoder,
                    shape,
                    now_us(),
                    self.step_us,
                    self.ring_size,
                    self.max_lead,
                    self.chunk_bytes,
                )
                self.rings[shape] = ring
            return asyncio.create_task(ring_sender(conn, ring), name=name)
        ticker = self.tickers.get(shape)
        if ticker is None:
            ticker = FloodTicker(self.encoder, shape, self.rate_hz, self.step_us, self.stamp)
            self.tickers[shape] = ticker
        return asyncio.create_task(ticker_member(conn, ticker), name=name)

    def close(self) -> None:
        """Stop the tickers (the per-connection tasks are the connections' to cancel)."""
        for ticker in self.tickers.values():
            ticker.close()
        self.tickers.clear()
        self.rings.clear()


__all__ = [
    "FLOOD_STAMPS",
    "Flood",
    "FloodRing",
    "FloodStamp",
    "FloodTicker",
    "ring_sender",
    "ticker_member",
    "ws_frame",
]
