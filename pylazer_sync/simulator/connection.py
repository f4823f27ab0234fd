"""One client connection of the simulator: its outgoing queue, writer, pings and faults.

Everything that leaves the server for a connection (responses, updates, pings, garbage)
goes through one queue and one writer task, so the per-connection faults apply to all of
it in one place: a delay holds every frame back by the same time, a stall stops them all.
Everything here runs on the simulator's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
import time
from dataclasses import dataclass
from typing import Final

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from .updates import Frame, Shape

logger = logging.getLogger(__name__)

# The writer gives other tasks a turn after this many frames sent without waiting; a
# socket that keeps accepting data would otherwise let one busy connection starve the rest.
_YIELD_EVERY: Final = 64
# A rate flood drops (and counts) frames for a connection with this much unsent data.
_MAX_UNSENT: Final = 4 << 20


class _Ping:
    """Queue marker: send a WebSocket ping here."""


PING: Final = _Ping()


@dataclass(frozen=True)
class ConnectionInfo:
    """A snapshot of one open connection, for tests that target a connection."""

    conn_id: int
    remote: tuple[str, int] | None
    connected_at: float
    subscription_ids: tuple[int, ...]
    stalled: bool
    delay: float
    frames_sent: int
    frames_dropped: int


class SimConnection:
    """A connected client: its subscriptions and the task that writes to it."""

    def __init__(
        self, conn_id: int, ws: ServerConnection, queue_size: int, ping_interval: float | None
    ) -> None:
        self.conn_id = conn_id
        self.ws = ws
        self.ping_interval = ping_interval
        self.connected_at = time.time()
        # subscription id -> (shape, tick period in microseconds)
        self.subscriptions: dict[int, tuple[Shape, int]] = {}
        self.queue: asyncio.Queue[tuple[float, Frame | _Ping]] = asyncio.Queue(queue_size)
        self.stalled = False
        self.delay = 0.0
        self.frames_sent = 0
        self.frames_dropped = 0
        # Frames offered and not yet fully handled by the writer: while any is, a flood
        # frame must queue behind it instead of overtaking it.
        self._pending = 0
        self._resumed = asyncio.Event()
        self._resumed.set()
        self._tasks: list[asyncio.Task[None]] = []
        self.flood_tasks: dict[int, asyncio.Task[None]] = {}
        self.handler_task = asyncio.current_task()
        self._warned_full = False

    def start(self) -> None:
        """Start the writer and, if pings are on, the pinger."""
        self._tasks.append(asyncio.create_task(self._writer(), name=f"sim-writer-{self.conn_id}"))
        if self.ping_interval is not None:
            self._tasks.append(
                asyncio.create_task(self._pinger(), name=f"sim-pinger-{self.conn_id}")
            )

    def cancel_tasks(self) -> None:
        """Stop writing to this connection (when it is gone)."""
        for task in [*self._tasks, *self.flood_tasks.values()]:
            task.cancel()
        self._tasks.clear()
        self.flood_tasks.clear()

    def info(self) -> ConnectionInfo:
        """A snapshot for the caller's thread."""
        remote = self.ws.remote_address
        return ConnectionInfo(
            conn_id=self.conn_id,
            remote=(str(remote[0]), int(remote[1])) if remote else None,
            connected_at=self.connected_at,
            subscription_ids=tuple(self.subscriptions),
            stalled=self.stalled,
            delay=self.delay,
            frames_sent=self.frames_sent,
            frames_dropped=self.frames_dropped,
        )

    # -- sending ------------------------------------------------------------------

    def offer(self, frame: Frame | _Ping) -> None:
        """Queue a frame without waiting. A stalled connection sends nothing, and a client
        too slow to take a full queue loses frames: both are counted, never silent."""
        if self.stalled:
            self.frames_dropped += 1
            return
        try:
            self.queue.put_nowait((asyncio.get_running_loop().time(), frame))
            self._pending += 1
        except asyncio.QueueFull:
            self.frames_dropped += 1
            if not self._warned_full:
                self._warned_full = True
                logger.warning(
                    "connection %d: outgoing queue full (%d frames), dropping frames; "
                    "the client does not keep up",
                    self.conn_id,
                    self.queue.maxsize,
                )

    async def _writer(self) -> None:
        loop = asyncio.get_running_loop()
        streak = 0
        try:
            while True:
                queued_at, item = await self.queue.get()
                try:
                    if self.delay > 0:
                        wait = queued_at + self.delay - loop.time()
                        if wait > 0:
                            await asyncio.sleep(wait)
                            streak = 0
                    if self.stalled:
                        self.frames_dropped += 1
                        continue
                    if isinstance(item, _Ping):
                        # The pong is not awaited: a late or missing pong is the client's
                        # business here, and a stalled client would pile up waiters.
                        await self.ws.ping()
                    else:
                        await self.ws.send(item)
                    self.frames_sent += 1
                finally:
                    self._pending -= 1
                    self.queue.task_done()
                streak += 1
                if streak >= _YIELD_EVERY:
                    streak = 0
                    await asyncio.sleep(0)
        except ConnectionClosed:
            pass

    async def _pinger(self) -> None:
        assert self.ping_interval is not None
        while True:
            await asyncio.sleep(self.ping_interval)
            if not self.stalled:
                self.offer(PING)

    # -- flood frames: pre-built WebSocket frames written straight to the transport ---
    # Skipping websockets' send() is what lets one event loop feed several connections at
    # hundreds of thousands of frames per second. It is safe because every write here and
    # every write of websockets is a run of whole frames, on the same event loop.

    def write_raw(self, data: bytes | memoryview, frames: int) -> bool:
        """Write ``frames`` whole, already framed WebSocket frames; False (nothing
        written) once the connection is closing."""
        if self.ws.transport.is_closing() or self.ws.protocol.state is not State.OPEN:
            return False
        self.ws.transport.write(data)
        self.frames_sent += frames
        return True

    async def drain(self) -> None:
        """Wait while the transport's write buffer is above websockets' write limit
        (back-pressure from a client that reads slower than the flood)."""
        await self.ws.drain()

    async def wait_resumed(self) -> None:
        """Wait for the end of a stall."""
        await self._resumed.wait()

    def send_now(self, frame: Frame, raw: bytes) -> None:
        """Send a rate-flood frame at once (``raw`` is ``frame`` already framed), unless
        a delay, a stall or frames queued before it send it the queue's way."""
        if self.delay > 0 or self.stalled or self._pending:
            self.offer(frame)
            return
        if self.ws.transport.get_write_buffer_size() > _MAX_UNSENT:
            self.frames_dropped += 1  # a client that does not read: bounded memory
            return
        self.write_raw(raw, 1)

    # -- faults -------------------------------------------------------------------

    def stall(self) -> None:
        """Send nothing more, pings included, and stop reading, so the client's pings
        and close frames go unanswered too: the TCP connection stays open but dead."""
        if self.stalled:
            return
        self.stalled = True
        self._resumed.clear()
        self.ws.transport.pause_reading()

    def resume(self) -> None:
        """End a stall. What would have been sent meanwhile is lost, as after a hang."""
        if not self.stalled:
            return
        self.stalled = False
        self._resumed.set()
        self.ws.transport.resume_reading()

    def abort(self) -> None:
        """Reset the TCP connection: SO_LINGER (on, 0 s) makes close() send an RST."""
        transport = self.ws.transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError as exc:  # already closed: nothing to reset
                logger.debug("connection %d: SO_LINGER failed: %s", self.conn_id, exc)
        transport.abort()

    async def close(self, code: int, reason: str, timeout: float) -> None:
        """Close cleanly (close handshake), resetting the connection if the client does
        not answer in time."""
        self.resume()
        with contextlib.suppress(asyncio.TimeoutError, ConnectionClosed):
            await asyncio.wait_for(self.ws.close(code, reason), timeout)
        if self.ws.protocol.state is not State.CLOSED:
            self.abort()
