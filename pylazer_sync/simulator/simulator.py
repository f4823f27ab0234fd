"""``Simulator``: a local Lazer endpoint in a background thread, driven from blocking code.

The server runs on its own asyncio event loop in one daemon thread. The methods here are
called from any other thread: they hand the work to the loop and wait for it (bounded),
so when a fault method returns, the fault is in effect. Waiting for something to happen
(connections, requests) blocks on a condition the loop notifies, never on a sleep.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable, Coroutine, Iterable
from types import TracebackType
from typing import Any, Final, TypeVar

from ..errors import InvalidRequestError, SimulatorError
from ..protocol import Signer
from .connection import ConnectionInfo
from .faults import GarbageKind
from .flood import FloodStamp
from .market import Catalogue, MarketModel, seed_to_int
from .replay import Replay, ReplayService, load_replay
from .rest import RestApi
from .server import (
    RefuseMode,
    RequestRecord,
    ServerSettings,
    SimulatorServer,
)
from .updates import UpdateEncoder

logger = logging.getLogger(__name__)

_T = TypeVar("_T")
_CALL_TIMEOUT: Final = 10.0


class Simulator:
    """A Lazer-compatible WebSocket server (and REST endpoints) for tests and demos.

    Use it as a context manager, which starts it on a free port and stops it cleanly::

        with Simulator(seed=1, token="secret") as sim:
            ws = websocket.create_connection(sim.url, header=[f"Authorization: Bearer {sim.token}"])
            ...
            sim.drop_all(abrupt=True)          # fault injection
            sim.wait_for_connections(1, 5.0)   # the client reconnected

    Args:
        host: interface to listen on.
        port: WebSocket port; 0 picks a free one. :meth:`restart` keeps the port.
        token: if set, upgrades without ``Authorization: Bearer <token>`` get HTTP 401
            (REST calls too); if ``None``, anyone may connect.
        seed: decides prices and signing keys: two simulators with the same seed send
            byte-identical frames for the same subscription and tick.
        rate_hz: the ``real_time`` channel's tick rate (default 1000 Hz: every 1 ms).
        ping_interval: seconds between WebSocket pings (default 2 s, well inside the 5 s
            dead-connection timeout of the official SDKs); ``None`` sends none.
        rest_port: port of the REST endpoints; 0 picks a free one, ``None`` disables them.
        catalogue: the feeds to offer (default :meth:`Catalogue.default`).
        queue_size: frames queued per connection before a slow client loses frames.
        close_timeout: seconds a clean close waits for the client's close frame.
        flood: start in flood mode (see :meth:`flood`), at ``flood_rate_hz`` if given.
        flood_ring: distinct frames an unlimited flood goes round (default 200,000: more
            than a client's dedup cache, so a frame that comes round again is new to it).
        flood_max_lead: frames one connection of an unlimited flood may run ahead of the
            slowest other (default 20,000; ``None``: no bound), so that connections stay
            within the client's dedup window of each other, as with a real server.
        flood_stamp: timestamps of a flood at a rate: ``"schedule"`` (the ticks' nominal
            times, exactly 1 / rate apart) or ``"send"`` (the wall-clock time at which
            each frame is written: for latency measurements).
        replay: serve a recording (a path, see :mod:`pylazer_sync.recording`, or a loaded
            :class:`~pylazer_sync.simulator.replay.Replay` to share between simulators)
            instead of the market model: a subscription that asks for what was recorded
            receives the recorded frames under its own id, envelopes byte for byte; any
            other gets a ``subscriptionError`` saying what the recording holds (see
            ``replay.py``). The REST endpoints still serve the market model.
        replay_speed: how much faster than recorded to play (1: original pacing);
            ``None``: as fast as each connection takes the frames.
        replay_loop: play the recording again from its start when it ends, for ever.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        token: str | None = None,
        seed: int | str = 0,
        rate_hz: float = 1000.0,
        ping_interval: float | None = 2.0,
        rest_port: int | None = 0,
        catalogue: Catalogue | None = None,
        queue_size: int = 10_000,
        close_timeout: float = 1.0,
        flood: bool = False,
        flood_rate_hz: float | None = None,
        flood_ring: int = 200_000,
        flood_max_lead: int | None = 20_000,
        flood_stamp: FloodStamp = "schedule",
        replay: str | os.PathLike[str] | Replay | None = None,
        replay_speed: float | None = 1.0,
        replay_loop: bool = False,
    ) -> None:
        if replay is not None and flood:
            raise InvalidRequestError("a replaying simulator serves its recording: no flood mode")
        if replay_speed is not None and not replay_speed > 0:
            raise InvalidRequestError(f"replay_speed must be > 0 or None, got {replay_speed!r}")
        self._settings = ServerSettings(
            host=host,
            port=port,
            token=token,
            rate_hz=rate_hz,
            ping_interval=ping_interval,
            rest_port=rest_port,
            queue_size=queue_size,
            close_timeout=close_timeout,
            flood=flood,
            flood_rate_hz=flood_rate_hz,
            flood_ring=flood_ring,
            flood_max_lead=flood_max_lead,
            flood_stamp=flood_stamp,
        )
        self.seed = seed
        self.replay = None if replay is None else load_replay(replay)
        """The recording served (``None``: the market model's ticks)."""
        self.replay_speed = replay_speed
        self.replay_loop = replay_loop
        self.catalogue = catalogue if catalogue is not None else Catalogue.default()
        self.market = MarketModel(self.catalogue, seed)
        self.signer = Signer.from_seed(seed)
        self._keys = self.signer
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: SimulatorServer | None = None
        self._stop_event: asyncio.Event | None = None
        self._port = port
        self._rest_port = rest_port
        # Kept across restarts, so resubscription after a restart can be checked and
        # connection ids never repeat.
        self._requests: list[RequestRecord] = []
        self._conn_ids = itertools.count(1)

    def __repr__(self) -> str:
        state = f"url={self.url!r}" if self.running else "stopped"
        return f"Simulator({state}, seed={self.seed!r}, auth={self.token is not None})"

    # -- identity -----------------------------------------------------------------

    @property
    def token(self) -> str | None:
        """The bearer token clients must present (``None``: no authentication)."""
        return self._settings.token

    @property
    def host(self) -> str:
        """The interface the simulator listens on."""
        return self._settings.host

    @property
    def port(self) -> int:
        """The WebSocket port (known once started; kept across restarts)."""
        return self._port

    @property
    def rest_port(self) -> int | None:
        """The REST port (``None`` if the REST endpoints are disabled)."""
        return self._rest_port

    @property
    def url(self) -> str:
        """The stream endpoint, ``ws://HOST:PORT/v1/stream``."""
        return f"ws://{_url_host(self.host)}:{self._port}/v1/stream"

    @property
    def rest_url(self) -> str | None:
        """Base URL of the REST endpoints (``None`` if disabled)."""
        if self._rest_port is None:
            return None
        return f"http://{_url_host(self.host)}:{self._rest_port}"

    @property
    def rate_hz(self) -> float:
        """The ``real_time`` tick rate."""
        return self._settings.rate_hz

    @property
    def solana_public_key(self) -> bytes:
        """The 32-byte Ed25519 key in (and behind) every Solana envelope."""
        return self._keys.solana_public_key

    @property
    def evm_address(self) -> str:
        """The Ethereum address EVM signatures recover to (lowercase ``0x`` hex)."""
        return self._keys.evm_address

    @property
    def le_ecdsa_public_key(self) -> bytes:
        """The 33-byte compressed secp256k1 key LeEcdsa signatures recover to."""
        return self._keys.le_ecdsa_public_key

    def trusted_signers(self) -> dict[str, str]:
        """The signer identities by format, as hex strings (what a client should trust).

        When replaying, the recorded signers, of the formats the recording holds.
        """
        if self.replay is not None:
            return self.replay.signers()
        return {
            "solana": self.solana_public_key.hex(),
            "evm": self.evm_address,
            "leEcdsa": self.le_ecdsa_public_key.hex(),
        }

    # -- lifecycle ----------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether the server thread is up."""
        return self._thread is not None and self._thread.is_alive()

    def start(self, timeout: float = 10.0) -> Simulator:
        """Start listening in a background thread; returns when the port is bound.

        Raises ``OSError`` if the port cannot be bound, ``RuntimeError`` if already running.
        """
        if self.running:
            raise SimulatorError("the simulator is already running")
        ready = threading.Event()
        failure: list[BaseException] = []
        settings = self._replace_ports()

        def run() -> None:
            try:
                asyncio.run(self._main(settings, ready))
            except BaseException as exc:  # reported to start(), or logged if after it
                if not ready.is_set():
                    failure.append(exc)
                    ready.set()
                else:
                    logger.exception("simulator thread failed")

        self._thread = threading.Thread(target=run, name="pylazer-sync-simulator", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise TimeoutError(f"the simulator did not start within {timeout} s")
        if failure:
            self._thread.join(timeout)
            self._thread = None
            raise failure[0]
        logger.info("simulator listening on %s", self.url)
        return self

    def _replace_ports(self) -> ServerSettings:
        from dataclasses import replace

        return replace(self._settings, port=self._port, rest_port=self._rest_port)

    async def _main(self, settings: ServerSettings, ready: threading.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        encoder = UpdateEncoder(self.market, self._keys)
        server = SimulatorServer(
            settings,
            self.catalogue,
            encoder,
            self._cond,
            seed=seed_to_int(self.seed),
            requests=self._requests,
            conn_ids=self._conn_ids,
            replay=None
            if self.replay is None
            else ReplayService(self.replay, self.catalogue, self.replay_speed, self.replay_loop),
        )
        await server.start()
        self._server = server
        self._port = server.port
        self._rest_port = server.rest_port
        ready.set()
        try:
            await self._stop_event.wait()
        finally:
            await server.shutdown()
            with self._cond:
                self._cond.notify_all()

    def stop(self, timeout: float = 10.0) -> None:
        """Close every connection, stop listening and join the thread (idempotent)."""
        thread, loop, stop_event = self._thread, self._loop, self._stop_event
        if thread is None:
            return
        if loop is not None and stop_event is not None and thread.is_alive():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(stop_event.set)
        thread.join(timeout)
        if thread.is_alive():
            raise SimulatorError(f"the simulator thread did not stop within {timeout} s")
        self._thread = self._loop = self._server = self._stop_event = None

    def restart(self) -> None:
        """Stop (dropping every connection) and start again on the same ports."""
        self.stop()
        self.start()

    def __enter__(self) -> Simulator:
        if not self.running:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- bridge to the loop -------------------------------------------------------

    def _loop_and_server(self) -> tuple[asyncio.AbstractEventLoop, SimulatorServer]:
        loop, server = self._loop, self._server
        if loop is None or server is None or not self.running:
            raise SimulatorError("the simulator is not running")
        if threading.current_thread() is self._thread:
            raise SimulatorError("Simulator methods block: call them from another thread")
        return loop, server

    def _call(self, fn: Callable[[SimulatorServer], _T]) -> _T:
        """Run ``fn(server)`` on the loop and return its result."""
        loop, server = self._loop_and_server()

        async def run() -> _T:
            return fn(server)

        return asyncio.run_coroutine_threadsafe(run(), loop).result(_CALL_TIMEOUT)

    def _acall(self, fn: Callable[[SimulatorServer], Coroutine[Any, Any, _T]]) -> _T:
        """Run the coroutine ``fn(server)`` on the loop and return its result."""
        loop, server = self._loop_and_server()
        return asyncio.run_coroutine_threadsafe(fn(server), loop).result(_CALL_TIMEOUT)

    # -- observation --------------------------------------------------------------

    @property
    def connection_count(self) -> int:
        """How many WebSocket connections are open now."""
        with self._cond:
            return len(self._server.connections) if self._server is not None else 0

    @property
    def accepting(self) -> bool:
        """Whether new connections are accepted now (see :meth:`refuse_connections`)."""
        with self._cond:
            return self._server is not None and self._server.accepting

    def connections(self) -> list[ConnectionInfo]:
        """Snapshots of the open connections (ids for the per-connection faults)."""
        return self._call(lambda s: s.connection_infos())

    def connection_ids(self) -> list[int]:
        """The ids of the open connections, ascending."""
        with self._cond:
            return sorted(self._server.connections) if self._server is not None else []

    def requests(self, type: str | None = None, conn_id: int | None = None) -> list[RequestRecord]:
        """Requests received so far (every connection, oldest first), optionally only of
        one ``type`` (``"subscribe"``...) or one connection. Survives restarts."""
        with self._cond:
            records = list(self._requests)
        return [
            r
            for r in records
            if (type is None or r.type == type) and (conn_id is None or r.conn_id == conn_id)
        ]

    def stats(self) -> dict[str, Any]:
        """Counters as plain data: connections, refused handshakes, ticks, frames..."""
        return self._call(lambda s: s.stats())

    def wait_until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Block until ``predicate()`` is true, re-checking whenever the server's state
        changes (connections, requests, subscriptions, accepting); ``TimeoutError`` after
        ``timeout``.

        The predicate runs under the simulator's lock: keep it to quick reads such as
        :attr:`connection_count`, :attr:`accepting`, :meth:`connection_ids` and
        :meth:`requests` (not :meth:`connections`, :meth:`stats` or the fault methods,
        which wait for the server's thread).
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"condition not met within {timeout} s")
                self._cond.wait(remaining)

    def wait_for_connections(self, n: int, timeout: float = 5.0) -> None:
        """Block until exactly ``n`` connections are open."""
        try:
            self.wait_until(lambda: self._count_locked() == n, timeout)
        except TimeoutError:
            raise TimeoutError(
                f"expected {n} open connections within {timeout} s, have {self.connection_count}"
            ) from None

    def _count_locked(self) -> int:
        return len(self._server.connections) if self._server is not None else 0

    def wait_for_requests(
        self, n: int, type: str | None = None, timeout: float = 5.0, conn_id: int | None = None
    ) -> list[RequestRecord]:
        """Block until at least ``n`` requests (of ``type``, on ``conn_id``, if given)
        have arrived; returns them."""

        def matching() -> list[RequestRecord]:
            return [
                r
                for r in self._requests
                if (type is None or r.type == type) and (conn_id is None or r.conn_id == conn_id)
            ]

        try:
            self.wait_until(lambda: len(matching()) >= n, timeout)
        except TimeoutError:
            raise TimeoutError(
                f"expected {n} {type or ''} requests within {timeout} s, got {len(matching())}"
            ) from None
        with self._cond:
            return matching()

    # -- faults -------------------------------------------------------------------

    def drop_all(self, abrupt: bool = False, code: int = 1001, wait: bool = True) -> int:
        """Drop every connection: a clean close (``code``, default 1001 "going away"), or
        with ``abrupt`` a TCP reset (SO_LINGER 0). Returns how many were dropped.

        With ``wait`` (the default) it returns once they are gone, which for a clean
        close means once each client answered the close frame (or ``close_timeout``
        passed, after which it is reset); with ``wait=False`` as soon as the close frames
        are sent, for clients that only answer when they next read.
        """
        return self._acall(lambda s: s.drop(None, abrupt, code, wait))

    def drop(self, conn_id: int, abrupt: bool = False, code: int = 1001, wait: bool = True) -> None:
        """Drop one connection (see :meth:`drop_all`)."""
        self._acall(lambda s: s.drop([conn_id], abrupt, code, wait))

    def stall(self, conn_id: int | None = None) -> int:
        """Keep the TCP connection open but send nothing at all, pings included, and
        read nothing (one connection, or every open one); :meth:`resume` ends it."""
        return self._call(lambda s: s.stall(_ids(conn_id)))

    def resume(self, conn_id: int | None = None) -> int:
        """End a stall (frames that fell due meanwhile are not sent)."""
        return self._call(lambda s: s.resume(_ids(conn_id)))

    def delay_connection(self, conn_id: int | None, seconds: float) -> int:
        """Hold back every frame of one connection (``None``: every open one) by
        ``seconds``, pings included: a slow path. ``0`` ends it."""
        return self._call(lambda s: s.delay(_ids(conn_id), seconds))

    def refuse_connections(self, seconds: float | None = None, mode: RefuseMode = "close") -> None:
        """Refuse new connections (open ones stay): ``"close"`` stops listening, so
        clients get "connection refused"; ``"503"`` answers the upgrade with HTTP 503.
        With ``seconds``, accept again after that long; else until :meth:`accept_connections`.
        The REST endpoints stay up."""
        self._acall(lambda s: s.refuse(seconds, mode))

    def accept_connections(self) -> None:
        """Accept new connections again (same port)."""
        self._acall(lambda s: s.accept())

    def send_garbage(self, kind: GarbageKind, conn_id: int | None = None) -> int:
        """Send one malformed frame to one connection (or every open one). ``kind``:
        ``random_binary``, ``invalid_json``, ``unknown_type`` (valid JSON, unknown
        ``type``), ``truncated_envelope`` (an envelope shorter than it says),
        ``unknown_envelope`` (unknown format magic), ``truncated_frame`` (a frame shorter
        than its message length says)."""
        return self._call(lambda s: s.garbage(kind, _ids(conn_id)))

    def flood(self, rate_hz: float | None = None) -> None:
        """Flood mode, for benchmarks: instead of ticks, send every subscription's updates
        as fast as each connection takes them (or ``rate_hz`` per subscription). Frames
        have distinct timestamps and the prices of the moment the flood started; one
        encoding per frame, shared by every connection.

        Without a rate, every connection goes round the same ring of ``flood_ring``
        frames from its first (timestamps 1 us apart), written to the socket in large
        chunks, in near lockstep with the other connections (``flood_max_lead``); the
        first round encodes (signed formats cost a signature per frame, tens of
        microseconds), later rounds only copy. Per-connection delays do not apply.

        With a rate, each frame is written to every connection at its tick, stamped per
        ``flood_stamp``; delays and stalls apply, so :meth:`delay_connection` makes one
        connection the slow path."""
        self._call(lambda s: s.flood(rate_hz))

    def stop_flood(self) -> None:
        """Back to normal ticks."""
        self._call(lambda s: s.stop_flood())

    # -- REST ---------------------------------------------------------------------

    def _rest_api(self, server: SimulatorServer) -> RestApi:
        if server.rest_api is None:
            raise SimulatorError("this simulator serves no REST (rest_port=None)")
        return server.rest_api

    def rest_outage(self, status: int | None = 503, paths: Iterable[str] | None = None) -> None:
        """Answer every REST request (or those for ``paths``, e.g. ``["/v1/symbols"]``)
        with HTTP ``status`` from now on, on both ports; ``None`` ends the outage."""
        self._call(lambda s: self._rest_api(s).set_outage(status, paths))

    def rest_requests(self) -> dict[str, int]:
        """How many REST requests arrived per path (outages included), since the start."""
        return self._call(lambda s: dict(self._rest_api(s).requests))

    def start_guardian_set_upgrade(self, new_keys: list[bytes] | None = None) -> dict[str, Any]:
        """Put a guardian set upgrade in progress (set 0, the simulator's EVM signer, to set
        1: ``new_keys``, 20-byte addresses, default one derived key); returns its JSON as
        ``/v1/guardian_set_upgrade`` now answers it."""

        def start(s: SimulatorServer) -> dict[str, Any]:
            api = self._rest_api(s)
            api.guardian_upgrade = api.guardians.upgrade(time.time_ns() // 1000, new_keys)
            return api.guardian_upgrade

        return self._call(start)

    def end_guardian_set_upgrade(self) -> None:
        """No upgrade in progress any more (``/v1/guardian_set_upgrade`` answers ``null``)."""

        def end(s: SimulatorServer) -> None:
            self._rest_api(s).guardian_upgrade = None

        self._call(end)


def _ids(conn_id: int | None) -> list[int] | None:
    return None if conn_id is None else [conn_id]


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
