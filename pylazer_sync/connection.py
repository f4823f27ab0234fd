"""One WebSocket connection: connect, (re)subscribe, read frames, push them, back off, repeat.

Each :class:`Connection` owns one thread and one socket at a time. It never exits on
an exception and never spins: every failure path closes the socket and waits per the
backoff before the next attempt. Raw frames go to the inbound queue untouched; the
dedup thread decides what they mean.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import socket
import threading
import time
from collections.abc import Callable
from enum import Enum
from typing import Any

import websocket

from . import transport
from .config import BackoffTimer, ClientConfig
from .protocol import SubscribeRequest, UnsubscribeRequest
from .subscriptions import SubscriptionRegistry
from .worker import Worker

logger = logging.getLogger("pylazer_sync")

# Items on the inbound queue: (connection index, [(is_text, raw frame bytes), ...]).
# Frames travel in batches: one queue operation per batch instead of per frame.
Frame = tuple[bool, bytes]
InboundItem = tuple[int, list[Frame]]

_OPCODE_CLOSE = websocket.ABNF.OPCODE_CLOSE
_PUT_SLICE = 0.25
# A batch is handed over when the socket has no more bytes ready (so a frame never waits
# for network I/O) or when it reaches this size (so a flood does not delay the first
# frames of a batch by more than this many frames' parsing).
MAX_BATCH = 128


class ConnectionState(str, Enum):
    """Where a connection is in its life cycle (as shown by ``stats()``)."""

    IDLE = "idle"
    CONNECTING = "connecting"
    OPEN = "open"
    BACKOFF = "backoff"
    AUTH_FAILED = "auth_failed"
    CLOSED = "closed"

    def __str__(self) -> str:
        return self.value


class _ConnectionLost(Exception):
    """Internal: the current socket is finished; the text says why."""


def _interrupt(ws: websocket.WebSocket) -> None:
    """Wake a thread blocked reading ``ws``, also during the handshake (when websocket-
    client's own ``abort()`` does nothing yet); best effort, the socket may be gone."""
    sock = ws.sock
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def scrub(text: str, secret: str) -> str:
    """Remove a secret from a text before it reaches a log line, stats or an exception."""
    return text.replace(secret, "***") if secret else text


class Connection(Worker):
    """A resilient connection to one endpoint, run by its own daemon thread.

    Args:
        index: this connection's number (connection i uses endpoint i % len(endpoints)).
        config: the client's validated settings.
        inbound: where raw frames go, as :data:`InboundItem` tuples.
        subscriptions: the client's active subscriptions, re-sent on every connect.
        on_state: called (from this thread) on every state change.
        stop: set by the client to end the thread.
    """

    def __init__(
        self,
        index: int,
        config: ClientConfig,
        inbound: queue.Queue[Any],
        subscriptions: SubscriptionRegistry,
        on_state: Callable[[Connection], None],
        stop: threading.Event,
    ) -> None:
        self.index = index
        self.endpoint = config.endpoint_for(index)
        self._config = config
        self._inbound = inbound
        self._subscriptions = subscriptions
        self._on_state = on_state
        self._stop = stop
        self._backoff = BackoffTimer(config.backoff, config.timeout)
        # Guards the socket, `state` transitions to/from OPEN and `_sent_ids`, so a
        # subscription made while this connection opens is sent exactly once.
        self._lock = threading.Lock()
        self._ws: websocket.WebSocket | None = None
        self._sent_ids: set[int] = set()
        self._socket_open = False  # counts disconnects of sockets that were opened
        self.state = ConnectionState.IDLE
        # Statistics: written only by this connection's thread.
        self.connects = 0
        self.disconnects = 0
        self.frames = 0
        self.bytes = 0
        self.last_frame_at: float | None = None
        self.last_error: str | None = None
        self.last_status: int | None = None
        self.opened_at: float | None = None
        super().__init__(f"pylazer-conn-{index}")

    # -- control, from the client's threads ----------------------------------------

    def abort(self) -> None:
        """Close the current socket at once (used by close(); unblocks a pending read)."""
        with self._lock:
            ws = self._ws
        if ws is not None:
            _interrupt(ws)

    def send_subscribe(self, request: SubscribeRequest) -> None:
        """Send a subscription if this connection is open and has not sent it yet."""
        assert request.subscription_id is not None
        with self._lock:
            if self.state is ConnectionState.OPEN and request.subscription_id not in self._sent_ids:
                self._send_locked(request.to_json())
                self._sent_ids.add(request.subscription_id)

    def send_unsubscribe(self, subscription_id: int) -> None:
        """Send an unsubscribe if this connection is open and carries the subscription."""
        with self._lock:
            if self.state is ConnectionState.OPEN and subscription_id in self._sent_ids:
                self._send_locked(UnsubscribeRequest(subscription_id).to_json())
                self._sent_ids.discard(subscription_id)

    def _send_locked(self, text: str) -> None:
        ws = self._ws
        if ws is None:
            return
        try:
            ws.send(text)
        except Exception as exc:
            # The reader will see the broken socket and reconnect, re-sending everything.
            logger.info("connection %d: send failed (%s); it will reconnect", self.index, exc)
            with contextlib.suppress(Exception):
                ws.abort()

    def stats(self) -> dict[str, Any]:
        """Plain-data statistics of this connection."""
        now = time.monotonic()
        return {
            "index": self.index,
            "endpoint": self.endpoint,
            "state": self.state.value,
            "connects": self.connects,
            "disconnects": self.disconnects,
            "frames": self.frames,
            "bytes": self.bytes,
            "seconds_since_last_frame": (
                None if self.last_frame_at is None else round(now - self.last_frame_at, 3)
            ),
            "last_error": self.last_error,
        }

    def __repr__(self) -> str:
        return (
            f"Connection(index={self.index}, endpoint={self.endpoint!r}, state={self.state.value})"
        )

    # -- the thread ------------------------------------------------------------------

    def _set_state(self, state: ConnectionState) -> None:
        self.state = state
        try:
            self._on_state(self)
        except Exception:  # a bug in a listener must not kill the connection
            logger.exception("connection %d: state listener failed", self.index)

    def _run(self) -> None:
        token = self._config.token.reveal()
        while not self._stop.is_set():
            lifetime: float | None = None
            failure: Exception | None = None
            self.last_status = None
            self._set_state(ConnectionState.CONNECTING)
            try:
                ws = self._connect(token)
            except Exception as exc:  # every failure means: back off and try again
                failure = exc
            else:
                opened = time.monotonic()
                try:
                    self._open(ws)
                    self._read_until_lost(ws)
                except Exception as exc:
                    failure = exc
                lifetime = time.monotonic() - opened
                if failure is not None:
                    # The reason first: stats never show a disconnect without its cause.
                    self._record_failure(failure, token)
                    failure = None
                self._close(ws)
            if failure is not None:
                self._record_failure(failure, token)
            if self._stop.is_set():
                break
            delay = self._backoff.next_delay(lifetime)
            if self.state is not ConnectionState.AUTH_FAILED:
                self._set_state(ConnectionState.BACKOFF)
            logger.debug("connection %d: reconnecting in %.2f s", self.index, delay)
            self._stop.wait(delay)
        self._set_state(ConnectionState.CLOSED)

    def _describe(self, exc: Exception) -> tuple[str, ConnectionState]:
        """What went wrong, in one line, and the state it leaves the connection in."""
        if isinstance(exc, _ConnectionLost):
            return str(exc), ConnectionState.BACKOFF
        if isinstance(exc, websocket.WebSocketBadStatusException):
            self.last_status = exc.status_code
            if exc.status_code in (401, 403):
                return (
                    f"HTTP {exc.status_code}: the server refused the access token"
                    + (" (not entitled)" if exc.status_code == 403 else ""),
                    ConnectionState.AUTH_FAILED,
                )
            return f"HTTP {exc.status_code} on the WebSocket upgrade", ConnectionState.BACKOFF
        return f"{type(exc).__name__}: {exc}", ConnectionState.BACKOFF

    def _record_failure(self, exc: Exception, token: str) -> None:
        text, state = self._describe(exc)
        self.last_error = scrub(text, token)[:500]
        if self._stop.is_set():
            return
        level = logging.ERROR if state is ConnectionState.AUTH_FAILED else logging.WARNING
        logger.log(level, "connection %d to %s: %s", self.index, self.endpoint, self.last_error)
        self._set_state(state)

    def _connect(self, token: str) -> websocket.WebSocket:
        sslopt: dict[str, Any] = {}
        if self._config.ssl_context is not None:
            sslopt["context"] = self._config.ssl_context
        ws = websocket.WebSocket(sslopt=sslopt, skip_utf8_validation=True, enable_multithread=True)
        with self._lock:
            self._ws = ws  # so abort() can interrupt a slow handshake
        if self._stop.is_set():
            raise _ConnectionLost("client closing")
        # Each read of the handshake has the timeout, but a server trickling header lines
        # could stretch the whole upgrade forever: a deadline closes the socket instead.
        timeout = self._config.timeout
        expired = threading.Event()

        def expire() -> None:
            expired.set()
            _interrupt(ws)

        deadline = threading.Timer(timeout, expire)
        deadline.name = f"pylazer-handshake-{self.index}"
        deadline.daemon = True
        deadline.start()
        try:
            ws.connect(
                self.endpoint,
                header=[f"Authorization: Bearer {token}"],
                timeout=timeout,
                redirect_limit=0,  # a redirect would resend the token to wherever it points
            )
        except Exception:
            if expired.is_set():
                raise _ConnectionLost(
                    f"connecting and the WebSocket handshake took longer than {timeout} s"
                ) from None
            raise
        finally:
            deadline.cancel()
        if expired.is_set():  # it fired just as the handshake finished
            raise _ConnectionLost(f"the WebSocket handshake took longer than {timeout} s")
        return ws

    def _open(self, ws: websocket.WebSocket) -> None:
        with self._lock:
            self._sent_ids.clear()
            self._socket_open = True
            self.connects += 1
            self.opened_at = time.monotonic()
            self.last_frame_at = self.opened_at
            self.state = ConnectionState.OPEN
            for request in self._subscriptions.snapshot():
                assert request.subscription_id is not None
                ws.send(request.to_json())
                self._sent_ids.add(request.subscription_id)
        logger.info("connection %d: open to %s", self.index, self.endpoint)
        self._set_state(ConnectionState.OPEN)

    def _close(self, ws: websocket.WebSocket) -> None:
        with self._lock:
            was_open = self._socket_open
            self._socket_open = False
            self._ws = None
            self._sent_ids.clear()
            if self.state is ConnectionState.OPEN:
                self.state = ConnectionState.BACKOFF
        if was_open:
            self.disconnects += 1
        try:
            ws.abort()
            ws.close(timeout=0)
        except Exception:  # already broken: nothing more to release
            pass

    def _read_until_lost(self, ws: websocket.WebSocket) -> None:
        """Read frames until the socket fails, stalls past the timeout, or the client stops.

        Frames come in batches (see :class:`transport.FrameReader`), each handed on as it
        is: the per-frame work here is none, so the counters are updated per batch. A
        batch is always complete before the reader waits for the network again, so no
        frame waits for network I/O.
        """
        index = self.index
        timeout = self._config.timeout
        read_batch = transport.FrameReader(ws, self._config.max_frame_size, MAX_BATCH).read_batch
        push = self._push
        monotonic = time.monotonic
        stop = self._stop
        while not stop.is_set():
            try:
                frames, size, control = read_batch()
            except websocket.WebSocketTimeoutException:
                raise _ConnectionLost(
                    f"no frame for {timeout} s (not even a ping): connection stalled"
                ) from None
            except websocket.WebSocketConnectionClosedException:
                raise _ConnectionLost("connection closed by the peer") from None
            except transport.FrameTooLarge as exc:
                raise _ConnectionLost(str(exc)) from None
            except OSError as exc:
                raise _ConnectionLost(f"socket error: {exc}") from None
            self.last_frame_at = monotonic()  # any frame, pings included, proves life
            if frames:
                self.frames += len(frames)
                self.bytes += size
                push((index, frames))
            elif control is not None and control[0] == _OPCODE_CLOSE:
                raise _ConnectionLost("the server closed the connection")

    def _push(self, item: InboundItem) -> None:
        try:
            self._inbound.put_nowait(item)
            return
        except queue.Full:
            pass
        # Back-pressure: the dedup thread is behind; wait, but stay stoppable.
        while not self._stop.is_set():
            try:
                self._inbound.put(item, timeout=_PUT_SLICE)
                return
            except queue.Full:
                continue
