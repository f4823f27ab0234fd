"""The simulator's WebSocket server: handshake, requests, tick scheduling and faults.

Runs entirely on one asyncio event loop (the :class:`~pylazer_sync.simulator.Simulator`'s
background thread). State that other threads read (open connections, the request log)
is changed only under the simulator's ``threading.Condition``, which is also notified on
every change, so tests wait for conditions instead of sleeping.

Ticks: one scheduler task per tick period, alive while some subscription uses it. At each
wall-clock multiple of the period it encodes every distinct subscription shape once and
queues the same frame object on every connection that has that shape.
"""

from __future__ import annotations

import asyncio
import hmac
import itertools
import json
import logging
import os
import random
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Final, Literal

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from ..errors import InvalidRequestError
from ..protocol import (
    ServerError,
    ServerMessage,
    Subscribed,
    SubscribeRequest,
    SubscriptionError,
    Unsubscribed,
    UnsubscribeRequest,
    encode_server_message,
)
from ..protocol.types import U64_MAX
from .connection import ConnectionInfo, SimConnection
from .faults import garbage_frame
from .flood import FLOOD_STAMPS, Flood, FloodStamp
from .market import Catalogue
from .replay import ReplayService
from .rest import RestApi, RestServer, stream_port_connection
from .updates import (
    Shape,
    UpdateEncoder,
    channel_period_us,
    now_us,
    resolve,
)

logger = logging.getLogger(__name__)

STREAM_PATH: Final = "/v1/stream"
RefuseMode = Literal["close", "503"]

# A late scheduler sends the missed ticks of at most this long (and at least
# _MIN_CATCH_UP_TICKS of them) and skips the rest, counted: enough to ride out the loop's
# 1 ms timer granularity and the pauses of Python's garbage collector, while a burst of
# stale real-time updates after a long stall would help no client.
_MAX_CATCH_UP_US: Final = 20_000
_MIN_CATCH_UP_TICKS: Final = 20


if TYPE_CHECKING:
    _LoggerAdapter = logging.LoggerAdapter[logging.Logger]
else:  # not subscriptable at run time before Python 3.11
    _LoggerAdapter = logging.LoggerAdapter


class _RedactingLogger(_LoggerAdapter):
    """websockets' own logger minus the secret: its debug log prints every request
    header, the bearer token included, and no log line may carry a secret."""

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        if len(args) == 2 and isinstance(args[0], str) and args[0].lower() == "authorization":
            args = (args[0], "<redacted>")
        super().log(level, msg, *args, **kwargs)


_WS_LOGGER: Final = _RedactingLogger(logging.getLogger("websockets.server"), {})


@dataclass(frozen=True)
class ServerSettings:
    """The knobs of one simulator (see :class:`~pylazer_sync.simulator.Simulator`)."""

    host: str = "127.0.0.1"
    port: int = 0
    token: str | None = field(default=None, repr=False)
    rate_hz: float = 1000.0
    ping_interval: float | None = 2.0
    rest_port: int | None = 0
    queue_size: int = 10_000
    close_timeout: float = 1.0
    flood: bool = False
    flood_rate_hz: float | None = None
    flood_ring: int = 200_000
    flood_max_lead: int | None = 20_000
    flood_chunk_bytes: int = 128 * 1024
    flood_stamp: FloodStamp = "schedule"

    def __post_init__(self) -> None:
        if not self.rate_hz > 0:
            raise InvalidRequestError(f"rate_hz must be > 0, got {self.rate_hz!r}")
        if self.ping_interval is not None and not self.ping_interval > 0:
            raise InvalidRequestError(
                f"ping_interval must be > 0 or None, got {self.ping_interval!r}"
            )
        if self.flood_rate_hz is not None and not self.flood_rate_hz > 0:
            raise InvalidRequestError(
                f"flood_rate_hz must be > 0 or None, got {self.flood_rate_hz!r}"
            )
        if self.queue_size < 1:
            raise InvalidRequestError(f"queue_size must be >= 1, got {self.queue_size!r}")
        if self.flood_ring < 1:
            raise InvalidRequestError(f"flood_ring must be >= 1, got {self.flood_ring!r}")
        if self.flood_max_lead is not None and self.flood_max_lead < 1:
            raise InvalidRequestError(
                f"flood_max_lead must be >= 1 or None, got {self.flood_max_lead!r}"
            )
        if self.flood_chunk_bytes < 1:
            raise InvalidRequestError(
                f"flood_chunk_bytes must be >= 1, got {self.flood_chunk_bytes!r}"
            )
        if self.flood_stamp not in FLOOD_STAMPS:
            raise InvalidRequestError(
                f"flood_stamp must be one of {', '.join(FLOOD_STAMPS)}, got {self.flood_stamp!r}"
            )

    @property
    def real_time_period_us(self) -> int:
        """The ``real_time`` tick period: 1 / rate, at least one microsecond."""
        return max(1, round(1_000_000 / self.rate_hz))


@dataclass(frozen=True)
class RequestRecord:
    """A request frame received from a client, as it arrived."""

    conn_id: int
    received_at: float
    text: str
    message: dict[str, Any] | None  # the JSON object, or None if it was not one

    @property
    def type(self) -> str | None:
        """The request's ``type`` field (``"subscribe"``, ``"unsubscribe"``, ...)."""
        kind = self.message.get("type") if self.message is not None else None
        return kind if isinstance(kind, str) else None


class SimulatorServer:
    """The server proper; every method runs on the simulator's event loop."""

    def __init__(
        self,
        settings: ServerSettings,
        catalogue: Catalogue,
        encoder: UpdateEncoder,
        cond: threading.Condition,
        *,
        seed: int = 0,
        requests: list[RequestRecord] | None = None,
        conn_ids: Iterator[int] | None = None,
        replay: ReplayService | None = None,
    ) -> None:
        self.settings = settings
        self.replay = replay  # serves a recording instead of the ticks (replay.py)
        self.catalogue = catalogue
        self.encoder = encoder
        self._cond = cond
        self._rng = random.Random(seed)
        self.connections: dict[int, SimConnection] = {}
        self.requests: list[RequestRecord] = requests if requests is not None else []
        self._conn_ids = conn_ids if conn_ids is not None else itertools.count(1)
        self.counters: dict[str, int] = dict.fromkeys(
            (
                "connections_accepted",
                "handshakes_refused",
                "ticks",
                "ticks_skipped",
                "frames_encoded",
            ),
            0,
        )
        self.port = settings.port
        self.rest_port = settings.rest_port
        # tick period (us) -> shape -> conn id -> connection
        self._by_period: dict[int, dict[Shape, dict[int, SimConnection]]] = {}
        self._schedulers: dict[int, asyncio.Task[None]] = {}
        self._ws_servers: list[Server] = []
        self._listening = False
        self._refuse_503 = False
        self._reopen_task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._rest: RestServer | None = None
        self.rest_api: RestApi | None = None  # the REST state (outages, counts, guardians)
        self._stream_connection: type[ServerConnection] | None = None
        self._flood: Flood | None = None
        self._token = settings.token.encode() if settings.token is not None else None

    # -- lifecycle ----------------------------------------------------------------

    async def start(self) -> None:
        """Listen on the WebSocket port (and the REST port, if enabled)."""
        rest_port = self.settings.rest_port
        if rest_port is not None:
            api = RestApi(
                self.catalogue, self.encoder, self.settings.token, self.settings.real_time_period_us
            )
            self._rest = RestServer(api)
            self.rest_api = api
            # REST answers on the stream port too, where clients derive it from the
            # stream URL as in production (see rest.py).
            self._stream_connection = stream_port_connection(api)
        host = self.settings.host
        try:
            await self._listen(self.settings.port)
        except OSError as exc:
            raise _cannot_listen(host, self.settings.port, "stream", exc) from None
        if self._rest is not None and rest_port is not None:
            try:
                self.rest_port = await self._rest.start(host, rest_port)
            except OSError as exc:
                await self.shutdown()  # the stream port is open: close it
                raise _cannot_listen(host, rest_port, "REST", exc) from None
        if self.settings.flood:
            self.flood(self.settings.flood_rate_hz)

    async def _listen(self, port: int) -> None:
        server = await serve(
            self._handler,
            self.settings.host,
            port,
            process_request=self._process_request,
            create_connection=self._stream_connection,
            # Our own pinger replaces websockets' keepalive so that a stall can stop it.
            ping_interval=None,
            close_timeout=self.settings.close_timeout,
            # Frames must be byte-identical across endpoints and cheap to send: no deflate.
            compression=None,
            max_size=1 << 20,
            logger=_WS_LOGGER,
        )
        self._ws_servers.append(server)
        self.port = server.sockets[0].getsockname()[1]
        self._listening = True

    async def shutdown(self) -> None:
        """Stop listening, close every connection, stop every task."""
        for task in self._schedulers.values():
            task.cancel()
        self._schedulers.clear()
        if self.replay is not None:
            self.replay.cancel_all()
        self.stop_flood()
        if self._reopen_task is not None:
            self._reopen_task.cancel()
        for server in self._ws_servers:
            server.server.close()  # stop accepting; connections are closed below
        self._listening = False
        if self._rest is not None:
            await self._rest.close()
        await self.drop(None, abrupt=False)
        if self._background:
            await asyncio.wait(self._background, timeout=self.settings.close_timeout + 1)
        for server in self._ws_servers:
            server.close(close_connections=False)
            try:
                await asyncio.wait_for(server.wait_closed(), self.settings.close_timeout + 1)
            except asyncio.TimeoutError:
                logger.warning("simulator: a listening server did not close in time")

    @property
    def accepting(self) -> bool:
        """Whether a new connection would be accepted now."""
        return self._listening and not self._refuse_503

    def _changed(self) -> None:
        """Wake the threads waiting on the simulator's condition."""
        with self._cond:
            self._cond.notify_all()

    # -- handshake ----------------------------------------------------------------

    def _authorized(self, header: str | None) -> bool:
        if self._token is None:
            return True
        expected = b"Bearer " + self._token
        return header is not None and hmac.compare_digest(header.encode(), expected)

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if self._refuse_503:
            self.counters["handshakes_refused"] += 1
            return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "endpoint unavailable\n")
        if request.path.split("?", 1)[0] != STREAM_PATH:
            return connection.respond(HTTPStatus.NOT_FOUND, f"not found; use {STREAM_PATH}\n")
        if not self._authorized(request.headers.get("Authorization")):
            self.counters["handshakes_refused"] += 1
            return connection.respond(HTTPStatus.UNAUTHORIZED, "missing or invalid bearer token\n")
        return None

    # -- connections and requests ----------------------------------------------------

    async def _handler(self, ws: ServerConnection) -> None:
        conn = SimConnection(
            next(self._conn_ids), ws, self.settings.queue_size, self.settings.ping_interval
        )
        with self._cond:
            self.connections[conn.conn_id] = conn
            self.counters["connections_accepted"] += 1
            self._cond.notify_all()
        logger.info("connection %d opened from %s", conn.conn_id, ws.remote_address)
        conn.start()
        try:
            async for message in ws:
                self._on_message(conn, message)
        except ConnectionClosed:
            pass
        finally:
            self._forget(conn)
            logger.info("connection %d closed", conn.conn_id)

    def _forget(self, conn: SimConnection) -> None:
        for sub_id in list(conn.subscriptions):
            self._unindex(conn, sub_id)
        conn.cancel_tasks()
        with self._cond:
            self.connections.pop(conn.conn_id, None)
            self._cond.notify_all()

    def _reply(self, conn: SimConnection, message: ServerMessage) -> None:
        conn.offer(encode_server_message(message))

    def _on_message(self, conn: SimConnection, message: str | bytes) -> None:
        text = message if isinstance(message, str) else message.decode("utf-8", "replace")
        obj: Any = None
        if isinstance(message, bytes):
            self._reply(conn, ServerError("binary frames are not accepted: send JSON text frames"))
        else:
            try:
                obj = json.loads(message)
            except (ValueError, RecursionError) as exc:
                self._reply(conn, ServerError(f"failed to parse the request as JSON: {exc}"))
            else:
                self._handle_request(conn, obj)
        # Recorded after handling, so a test that sees the record sees its effect too.
        with self._cond:
            self.requests.append(
                RequestRecord(
                    conn.conn_id, time.time(), text, obj if isinstance(obj, dict) else None
                )
            )
            self._cond.notify_all()

    def _handle_request(self, conn: SimConnection, obj: Any) -> None:
        if not isinstance(obj, dict):
            self._reply(conn, ServerError("a request must be a JSON object"))
            return
        kind = obj.get("type")
        if kind == "subscribe":
            self._subscribe(conn, obj)
        elif kind == "unsubscribe":
            self._unsubscribe(conn, obj)
        else:
            self._reply(
                conn,
                ServerError(
                    f"unknown request type {kind!r}: expected 'subscribe' or 'unsubscribe'"
                ),
            )

    def _subscribe(self, conn: SimConnection, obj: dict[str, Any]) -> None:
        raw_id = obj.get("subscriptionId")
        known_id = (
            raw_id
            if isinstance(raw_id, int) and not isinstance(raw_id, bool) and 0 <= raw_id <= U64_MAX
            else None
        )
        try:
            request = SubscribeRequest.from_wire(obj)
        except InvalidRequestError as exc:
            if known_id is None:
                self._reply(conn, ServerError(f"invalid subscribe request: {exc}"))
            else:
                self._reply(conn, SubscriptionError(known_id, str(exc)))
            return
        sub_id = request.subscription_id
        assert sub_id is not None
        if sub_id in conn.subscriptions:
            self._reply(
                conn, SubscriptionError(sub_id, f"subscription id {sub_id} is already in use")
            )
            return
        if self.replay is not None:
            self._reply(conn, self.replay.subscribe(conn, request))
            return
        resolution = resolve(request, self.catalogue)
        if resolution.shape is None:
            self._reply(conn, SubscriptionError(sub_id, resolution.error or "invalid"))
            return
        self._reply(conn, resolution.ignored or Subscribed(sub_id))
        self._index(conn, resolution.shape)
        if self._flood is not None:
            self._start_flood(conn, resolution.shape)

    def _unsubscribe(self, conn: SimConnection, obj: dict[str, Any]) -> None:
        try:
            request = UnsubscribeRequest.from_wire(obj)
        except InvalidRequestError as exc:
            self._reply(conn, ServerError(f"invalid unsubscribe request: {exc}"))
            return
        sub_id = request.subscription_id
        if sub_id not in conn.subscriptions:
            self._reply(conn, SubscriptionError(sub_id, f"subscription {sub_id} does not exist"))
            return
        self._unindex(conn, sub_id)
        self._reply(conn, Unsubscribed(sub_id))

    def _index(self, conn: SimConnection, shape: Shape) -> None:
        period = channel_period_us(shape.channel, self.settings.real_time_period_us)
        conn.subscriptions[shape.subscription_id] = (shape, period)
        self._by_period.setdefault(period, {}).setdefault(shape, {})[conn.conn_id] = conn
        if period not in self._schedulers:
            self._schedulers[period] = asyncio.create_task(
                self._scheduler(period), name=f"sim-ticks-{period}us"
            )

    def _unindex(self, conn: SimConnection, sub_id: int) -> None:
        shape, period = conn.subscriptions.pop(sub_id)
        if self.replay is not None:
            self.replay.cancel(conn.conn_id, sub_id)
        task = conn.flood_tasks.pop(sub_id, None)
        if task is not None:
            task.cancel()
        shapes = self._by_period.get(period, {})
        conns = shapes.get(shape, {})
        conns.pop(conn.conn_id, None)
        if not conns:
            shapes.pop(shape, None)
        if not shapes:
            self._by_period.pop(period, None)
            scheduler = self._schedulers.pop(period, None)
            if scheduler is not None:
                scheduler.cancel()

    # -- ticks --------------------------------------------------------------------

    async def _scheduler(self, period: int) -> None:
        # At least _MIN_CATCH_UP_TICKS: a slow channel (50 ms and up) rides out a stall
        # of the whole process (GC, a loaded machine) without losing a tick, as a
        # production endpoint under load delivers late rather than never.
        max_burst = max(_MIN_CATCH_UP_TICKS, _MAX_CATCH_UP_US // period)
        last = now_us() // period * period
        while True:
            now = now_us()
            due = last + period
            if due > now:
                await asyncio.sleep((due - now) / 1e6)
                continue
            latest = now // period * period
            count = (latest - due) // period + 1
            if self._flood is None:
                if count > max_burst:
                    self.counters["ticks_skipped"] += count - max_burst
                    due = latest - (max_burst - 1) * period
                for t in range(due, latest + 1, period):
                    self._emit(period, t)
            last = latest
            # Let the writers send what was just queued. Without this an overloaded
            # scheduler (encoding slower than the period) would never give up the loop.
            await asyncio.sleep(0)

    def _emit(self, period: int, t_us: int) -> None:
        self.counters["ticks"] += 1
        for shape, conns in self._by_period.get(period, {}).items():
            try:
                frame = self.encoder.frame(shape, t_us)
            except Exception:  # a bug here must not stop the ticks of every other shape
                logger.exception("simulator: cannot encode subscription %d", shape.subscription_id)
                continue
            if frame is None:
                continue
            self.counters["frames_encoded"] += 1
            for conn in conns.values():
                conn.offer(frame)

    # -- queries ------------------------------------------------------------------

    def connection_infos(self) -> list[ConnectionInfo]:
        """Snapshots of the open connections, by id."""
        return [self.connections[i].info() for i in sorted(self.connections)]

    def stats(self) -> dict[str, Any]:
        """Counters as plain data."""
        out: dict[str, Any] = dict(self.counters)
        out["connections"] = len(self.connections)
        out["accepting"] = self.accepting
        out["flooding"] = self._flood is not None
        out["frames_sent"] = sum(c.frames_sent for c in self.connections.values())
        out["frames_dropped"] = sum(c.frames_dropped for c in self.connections.values())
        if self._flood is not None:
            out["flood_frames_generated"] = self._flood.generated
        if self.replay is not None:
            out["replay_frames_sent"] = self.replay.frames_sent
        return out

    # -- faults -------------------------------------------------------------------

    def _targets(self, conn_ids: Iterable[int] | None) -> list[SimConnection]:
        if conn_ids is None:
            return [self.connections[i] for i in sorted(self.connections)]
        out = []
        for conn_id in conn_ids:
            conn = self.connections.get(conn_id)
            if conn is None:
                raise InvalidRequestError(f"no open connection with id {conn_id}")
            out.append(conn)
        return out

    async def drop(
        self, conn_ids: Iterable[int] | None, abrupt: bool, code: int = 1001, wait: bool = True
    ) -> int:
        """Close connections (close handshake, or TCP reset if ``abrupt``); with ``wait``,
        until their handlers have finished (a client that does not answer the close is
        reset after ``close_timeout``). Returns how many were dropped."""
        targets = self._targets(conn_ids)
        handlers = [c.handler_task for c in targets if c.handler_task is not None]
        if abrupt:
            for conn in targets:
                conn.abort()
        else:
            reason = "simulator: dropping the connection"
            closing = [
                asyncio.create_task(c.close(code, reason, self.settings.close_timeout))
                for c in targets
            ]
            self._background.update(closing)
            for task in closing:
                task.add_done_callback(self._background.discard)
            if not wait:
                # One turn of the loop: each close task sends its close frame.
                await asyncio.sleep(0)
                return len(targets)
            if closing:
                await asyncio.wait(closing)
        if wait and handlers:
            await asyncio.wait(handlers, timeout=self.settings.close_timeout + 1)
        return len(targets)

    def stall(self, conn_ids: Iterable[int] | None) -> int:
        """Stall connections (see :meth:`SimConnection.stall`)."""
        targets = self._targets(conn_ids)
        for conn in targets:
            conn.stall()
        return len(targets)

    def resume(self, conn_ids: Iterable[int] | None) -> int:
        """End stalls."""
        targets = self._targets(conn_ids)
        for conn in targets:
            conn.resume()
        return len(targets)

    def delay(self, conn_ids: Iterable[int] | None, seconds: float) -> int:
        """Hold back every frame of these connections by ``seconds`` (0 ends it)."""
        if seconds < 0:
            raise InvalidRequestError(f"delay must be >= 0 seconds, got {seconds!r}")
        targets = self._targets(conn_ids)
        for conn in targets:
            conn.delay = seconds
        return len(targets)

    async def refuse(self, seconds: float | None, mode: RefuseMode) -> None:
        """Refuse new connections: ``close`` stops listening (clients get "connection
        refused"), ``503`` answers the upgrade with HTTP 503. Open connections stay."""
        if mode not in ("close", "503"):
            raise InvalidRequestError(f"mode must be 'close' or '503', not {mode!r}")
        if self._reopen_task is not None:
            self._reopen_task.cancel()
            self._reopen_task = None
        if mode == "503":
            self._refuse_503 = True
        elif self._listening:
            self._ws_servers[-1].server.close()
            self._listening = False
        if seconds is not None:
            self._reopen_task = asyncio.create_task(self._reopen_after(seconds))
        self._changed()

    async def _reopen_after(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        self._reopen_task = None
        await self.accept()

    async def accept(self) -> None:
        """Accept new connections again, on the same port."""
        if self._reopen_task is not None and self._reopen_task is not asyncio.current_task():
            self._reopen_task.cancel()
            self._reopen_task = None
        self._refuse_503 = False
        if not self._listening:
            await self._listen(self.port)
        self._changed()

    def garbage(self, kind: str, conn_ids: Iterable[int] | None) -> int:
        """Send one malformed frame of the given kind to each target connection."""
        garbage_frame(kind, 0, self._rng)  # check the kind before touching anything
        targets = self._targets(conn_ids)
        for conn in targets:
            conn.offer(garbage_frame(kind, next(iter(conn.subscriptions), 1), self._rng))
        return len(targets)

    # -- flood --------------------------------------------------------------------

    def flood(self, rate_hz: float | None) -> None:
        """Replace the ticks with a flood: as fast as each connection takes them (or at
        ``rate_hz`` per subscription), frames with distinct timestamps (see flood.py)."""
        if self.replay is not None:
            raise InvalidRequestError("a replaying simulator serves its recording: no flood mode")
        settings = self.settings
        flood = Flood(
            self.encoder,
            rate_hz,
            ring_size=settings.flood_ring,
            max_lead=settings.flood_max_lead,
            chunk_bytes=settings.flood_chunk_bytes,
            stamp=settings.flood_stamp,
        )
        self.stop_flood()
        self._flood = flood
        for conn in self._targets(None):
            for shape, _ in conn.subscriptions.values():
                self._start_flood(conn, shape)

    def stop_flood(self) -> None:
        """Back to normal ticks."""
        for conn in self.connections.values():
            for task in conn.flood_tasks.values():
                task.cancel()
            conn.flood_tasks.clear()
        if self._flood is not None:
            self._flood.close()
        self._flood = None

    def _start_flood(self, conn: SimConnection, shape: Shape) -> None:
        assert self._flood is not None
        conn.flood_tasks[shape.subscription_id] = self._flood.start(conn, shape)


def _cannot_listen(host: str, port: int, what: str, exc: OSError) -> OSError:
    """A bind failure in one line that names the address and the port's role (asyncio's
    own message repeats the address as a tuple; a resolver error names neither)."""
    errno = exc.errno if isinstance(exc.errno, int) else None
    reason = os.strerror(errno) if errno is not None and errno > 0 else exc.strerror or str(exc)
    return OSError(errno, f"cannot listen on {host}:{port} ({what} port): {reason}")
