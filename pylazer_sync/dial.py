"""Opening one WebSocket within a deadline, interruptible from another thread at any step.

websocket-client's ``WebSocket.connect`` opens the TCP connection itself, inside a call
that nothing can interrupt: ``close()`` had to wait for the connect timeout (4-5 s
against a listener whose accept queue is full). Here the socket is created first and
handed to the caller (``on_socket``), and connects without blocking: once the connect
has been started, the caller's ``cancelled()`` is checked, and from then on shutting the
socket down (``close()`` does) ends the wait at once. (A blocking ``connect()`` cannot
be made safe that way: a shutdown that comes just before it starts is lost, and the
connect then hangs.) TLS is wrapped the same way; then websocket-client performs the
HTTP upgrade on that socket (its ``socket=`` option), with its own handshake code. The proxy settings it reads from the environment
still apply: its own helpers resolve the address and open the CONNECT tunnel.

The whole attempt (connect, TLS, upgrade) has one deadline, enforced by the thread
that dials, without a timer thread: each step's socket timeout is the time left, and
during the upgrade every read is given only the time left (a server trickling its header
lines one by one would pass any per-read timeout).
"""

from __future__ import annotations

import errno
import os
import selectors
import socket
import ssl
import time
from collections.abc import Callable
from typing import Any

import websocket
from websocket._http import _get_addrinfo_list, _tunnel, proxy_info
from websocket._socket import DEFAULT_SOCKET_OPTION
from websocket._url import parse_url


class DeadlineExceeded(Exception):
    """The attempt's deadline passed before the WebSocket was open."""


class _UpgradeSocket:
    """The socket as websocket-client sees it during the HTTP upgrade: each read waits at
    most until the attempt's deadline. Everything else goes to the real socket."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self._sock = sock
        self._deadline = deadline

    def recv(self, bufsize: int) -> bytes:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise DeadlineExceeded
        self._sock.settimeout(remaining)
        return self._sock.recv(bufsize)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def _remaining(deadline: float) -> float:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise DeadlineExceeded
    return remaining


def dial(
    url: str,
    *,
    header: list[str],
    timeout: float,
    ssl_context: ssl.SSLContext | None,
    on_socket: Callable[[socket.socket], None],
    cancelled: Callable[[], bool],
) -> websocket.WebSocket:
    """Open ``url`` within ``timeout`` seconds and return the open WebSocket.

    ``on_socket`` is called with each socket as soon as it exists (the TCP socket, then
    its TLS wrapper), before anything blocks on it: whoever sets what ``cancelled()``
    reads and then shuts that socket down ends the attempt with an ``OSError``. The
    returned WebSocket's socket has ``timeout`` as its read timeout. Raises
    :class:`DeadlineExceeded` when the deadline passes, and whatever websocket-client or
    the socket raise otherwise.
    """
    deadline = time.monotonic() + timeout
    hostname, port, _resource, is_secure = parse_url(url)
    addresses, need_tunnel, auth = _get_addrinfo_list(hostname, port, is_secure, proxy_info())
    if not addresses:
        raise websocket.WebSocketException(f"host not found: {hostname}:{port}")
    sock = _connect_tcp(addresses, deadline, on_socket, cancelled)
    try:
        if need_tunnel:
            sock.settimeout(_remaining(deadline))
            sock = _tunnel(sock, hostname, port, auth)
        if is_secure:
            context = ssl_context or ssl.create_default_context()
            tls = context.wrap_socket(sock, server_hostname=hostname, do_handshake_on_connect=False)
            on_socket(tls)
            if cancelled():  # a shutdown while it was wrapped went to the old socket
                raise ConnectionAbortedError("the client is closing")
            tls.settimeout(_remaining(deadline))
            tls.do_handshake()
            sock = tls
        ws = websocket.WebSocket(skip_utf8_validation=True, enable_multithread=True)
        ws.connect(
            url,
            socket=_UpgradeSocket(sock, deadline),
            header=header,
            timeout=timeout,
            redirect_limit=0,  # a redirect would resend the token to wherever it points
        )
    except (TimeoutError, websocket.WebSocketTimeoutException):
        sock.close()
        if time.monotonic() >= deadline:
            raise DeadlineExceeded from None
        raise
    except BaseException:
        sock.close()
        raise
    status = ws.getstatus()
    if status != 101:
        # A redirect that was not followed (redirect_limit=0): websocket-client before
        # 1.9 then marks the socket connected all the same. It is refused here, in every
        # version: following it would carry the token elsewhere.
        sock.close()
        raise websocket.WebSocketBadStatusException(
            f"Handshake status {status}: not upgraded (redirects are not followed)", status or 0
        )
    ws.sock = sock  # the deadline wrapper served the upgrade only
    sock.settimeout(timeout)  # from now on: "no frame for `timeout` seconds" is dead
    return ws


def _connect_tcp(
    addresses: list[Any],
    deadline: float,
    on_socket: Callable[[socket.socket], None],
    cancelled: Callable[[], bool],
) -> socket.socket:
    """Connect to the first address that accepts, as websocket-client's own ``_open_socket``."""
    error: Exception | None = None
    for family, kind, proto, _name, address in addresses:
        sock = socket.socket(family, kind, proto)
        on_socket(sock)
        try:
            for option in DEFAULT_SOCKET_OPTION:
                sock.setsockopt(*option)
            _connect_cancellably(sock, address, deadline, cancelled)
            return sock
        except OSError as exc:
            sock.close()
            if isinstance(exc, ConnectionAbortedError):
                raise
            error = exc
        except BaseException:
            sock.close()
            raise
    assert error is not None
    raise error


def _connect_cancellably(
    sock: socket.socket, address: Any, deadline: float, cancelled: Callable[[], bool]
) -> None:
    sock.setblocking(False)
    code = sock.connect_ex(address)
    if code not in (0, errno.EINPROGRESS):
        raise OSError(code, os.strerror(code))
    # The connect is under way: a shutdown from now on ends the wait below. One that
    # came before it would be lost, but it follows the cancellation, seen here.
    if cancelled():
        raise ConnectionAbortedError("the client is closing")
    if code == errno.EINPROGRESS:
        with selectors.DefaultSelector() as selector:
            selector.register(sock, selectors.EVENT_WRITE)
            if not selector.select(_remaining(deadline)):
                raise DeadlineExceeded
        code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code:
            raise OSError(code, os.strerror(code))
        if cancelled():
            raise ConnectionAbortedError("the client is closing")
    sock.setblocking(True)
