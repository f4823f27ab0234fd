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
from .dial import DeadlineExceeded, dial
from .pipeline import Inbound, InboundItem
from .protocol import SubscribeRequest, UnsubscribeRequest
from .subscriptions import RequestKind, SubscriptionRegistry
from .worker import Worker

logger = logging.getLogger("pylazer_sync")

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


def _interrupt(sock: socket.socket) -> None:
    """Wake a thread blocked on ``sock``: reading, connecting, or in the TLS or WebSocket
    handshake (when websocket-client's own ``abort()`` does nothing yet); best effort,
    the socket may be gone."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


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
        inbound: Inbound,
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
        # Guards the socket, `state` transitions to/from OPEN, `_epoch` and `_sent`, so a
        # subscription made while this connection opens is sent exactly once per socket.
        self._lock = threading.Lock()
        self._ws: websocket.WebSocket | None = None
        self._sock: socket.socket | None = None  # the socket of the current attempt
        self._epoch = 0  # numbers the sockets this connection opens
        self._sent: dict[int, int] = {}  # subscription id -> generation sent on this socket
        self._socket_open = False  # counts disconnects of sockets that were opened
        self.state = ConnectionState.IDLE
        # Statistics: written only by this connection's thread.
        self.connects = 0
        self.disconnects = 0
        self.frames = 0
        self.bytes = 0
        self.last_frame_at: float | None = None
        self.last_error: str | None = None
        self.attempts = 0
        """Connection attempts that ended (opened or failed)."""
        self.last_status: int | None = None
        """The HTTP status that refused the last attempt that ended, else None."""
        self.opened_at: float | None = None
        super().__init__(f"pylazer-conn-{index}")

    # -- control, from the client's threads ----------------------------------------

    def abort(self) -> None:
        """Close the current socket at once (used by close()): unblocks a pending read,
        a TCP connect, or a TLS or WebSocket handshake in progress."""
        with self._lock:
            sock = self._sock
        if sock is not None:
            _interrupt(sock)

    def _on_socket(self, sock: socket.socket) -> None:
        """The dialer's socket exists: from now on abort() can interrupt it."""
        with self._lock:
            self._sock = sock

    def send_subscribe(self, request: SubscribeRequest, generation: int) -> None:
        """Send a subscription if this connection is open and has not sent it on this socket."""
        sub_id = request.subscription_id
        assert sub_id is not None
        with self._lock:
            if self.state is ConnectionState.OPEN and self._sent.get(sub_id) != generation:
                self._subscriptions.sent(
                    self.index, self._epoch, sub_id, RequestKind.SUBSCRIBE, generation
                )
                self._send_locked(request.to_json())
                self._sent[sub_id] = generation

    def send_unsubscribe(self, subscription_id: int, generation: int) -> None:
        """Send an unsubscribe if this connection is open and carries the subscription."""
        with self._lock:
            if self.state is ConnectionState.OPEN and subscription_id in self._sent:
                self._subscriptions.sent(
                    self.index, self._epoch, subscription_id, RequestKind.UNSUBSCRIBE, generation
                )
                self._send_locked(UnsubscribeRequest(subscription_id).to_json())
                del self._sent[subscription_id]

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
        while not self._stop.is_set():
            lifetime: float | None = None
            failure: Exception | None = None
            self._set_state(ConnectionState.CONNECTING)
            try:
                ws = self._connect()
            except Exception as exc:  # every failure means: back off and try again
                failure = exc
            else:
                self.last_status = None
                self.attempts += 1
                opened = time.monotonic()
                try:
                    self._open(ws)
                    self._read_until_lost(ws)
                except Exception as exc:
                    failure = exc
                lifetime = time.monotonic() - opened
                if failure is not None:
                    # The reason first: stats never show a disconnect without its cause.
                    self._record_failure(failure)
                    failure = None
                self._close(ws)
            if failure is not None:
                self.last_status = None  # _record_failure sets it for an HTTP refusal
                self.attempts += 1
                self._record_failure(failure)
            with self._lock:
                self._sock = None
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

    def _record_failure(self, exc: Exception) -> None:
        if self._stop.is_set():  # close() ended it: not a fault, nothing to report
            return
        text, state = self._describe(exc)
        secret = self._config.secret
        self.last_error = (secret.scrub(text) if secret is not None else text)[:500]
        level = logging.ERROR if state is ConnectionState.AUTH_FAILED else logging.WARNING
        logger.log(level, "connection %d to %s: %s", self.index, self.endpoint, self.last_error)
        self._set_state(state)

    def _connect(self) -> websocket.WebSocket:
        if self._stop.is_set():
            raise _ConnectionLost("client closing")
        secret = self._config.secret
        header = [] if secret is None else [f"Authorization: Bearer {secret.reveal()}"]
        timeout = self._config.timeout
        try:
            return dial(
                self.endpoint,
                header=header,
                timeout=timeout,
                ssl_context=self._config.ssl_context,
                on_socket=self._on_socket,
                cancelled=self._stop.is_set,
            )
        except DeadlineExceeded:
            raise _ConnectionLost(
                f"connecting and the WebSocket handshake took longer than {timeout} s"
            ) from None

    def _open(self, ws: websocket.WebSocket) -> None:
        with self._lock:
            self._ws = ws
            self._sent.clear()
            self._epoch += 1
            self._socket_open = True
            self.connects += 1
            self.opened_at = time.monotonic()
            self.last_frame_at = self.opened_at
            self.state = ConnectionState.OPEN
            for request, generation in self._subscriptions.snapshot():
                sub_id = request.subscription_id
                assert sub_id is not None
                self._subscriptions.sent(
                    self.index, self._epoch, sub_id, RequestKind.SUBSCRIBE, generation
                )
                ws.send(request.to_json())
                self._sent[sub_id] = generation
        logger.info("connection %d: open to %s", self.index, self.endpoint)
        self._set_state(ConnectionState.OPEN)

    def _close(self, ws: websocket.WebSocket) -> None:
        with self._lock:
            was_open = self._socket_open
            self._socket_open = False
            self._ws = None
            self._sent.clear()
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
        epoch = self._epoch
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
                push((index, epoch, frames))
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
