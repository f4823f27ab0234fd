"""How bytes reach websocket-client: a read-buffering socket and a frame-size limit.

Why a wrapper (measured on a 2-core machine, loopback, 146-byte frames): websocket-client
reads every frame with three ``sock.recv()`` calls (2-byte header, 2-byte length, payload),
and each call releases the GIL. With several reader threads that turns into a GIL convoy:
a bare reader fell from ~89,000 frames/s on one connection to ~12,900 frames/s *per
connection* with four. Serving those small reads from one large kernel read lets a thread
parse hundreds of frames per GIL hand-off: ~35,000 frames/s per connection with four
(~141,000 in total), and ~146,000 on one. The wrapper keeps the real socket's timeout, so
"no bytes for ``timeout`` seconds" still raises websocket-client's timeout exception, and
it works the same over TLS.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable
from typing import Any

from websocket._abnf import frame_buffer

_READ_SIZE = 256 * 1024


class FrameTooLarge(Exception):
    """A frame header announced more bytes than ``max_frame_size``."""


class BufferedSocket:
    """Serve websocket-client's small reads from one big ``recv`` of the real socket.

    ``on_refill`` runs just before the wrapper blocks in the kernel: the reader uses it to
    hand over the frames it has parsed so far, so no complete frame waits for network I/O.
    Everything but ``recv`` is delegated to the real socket (plain or ``ssl.SSLSocket``).
    """

    __slots__ = ("_buf", "_pos", "_sock", "on_refill")

    def __init__(
        self, sock: socket.socket | ssl.SSLSocket, on_refill: Callable[[], None] | None = None
    ) -> None:
        self._sock = sock
        self._buf = b""
        self._pos = 0
        self.on_refill = on_refill

    def recv(self, n: int) -> bytes:
        """Up to ``n`` bytes; blocks (with the real socket's timeout) only when empty."""
        buf = self._buf
        pos = self._pos
        avail = len(buf) - pos
        if avail <= 0:
            if self.on_refill is not None:
                self.on_refill()
            # A timeout or error leaves the wrapper's state untouched; b"" means EOF.
            buf = self._sock.recv(_READ_SIZE)
            if not buf:
                return buf
            pos = 0
            avail = len(buf)
            self._buf = buf
        if n >= avail:
            self._buf = b""
            self._pos = 0
            return buf[pos:] if pos else buf
        self._pos = pos + n
        # Must be bytes: websocket-client silently stops on anything else.
        return buf[pos : pos + n]

    # websocket-client calls these on every read: keep them off the __getattr__ path,
    # which cost ~20% of the frame rate when measured.
    def gettimeout(self) -> float | None:
        """The real socket's timeout."""
        return self._sock.gettimeout()

    def settimeout(self, timeout: float | None) -> None:
        """Set the real socket's timeout."""
        self._sock.settimeout(timeout)

    def pending(self) -> int:
        """Bytes readable without I/O (like ``SSLSocket.pending``, plus our own buffer)."""
        inner = getattr(self._sock, "pending", None)
        return len(self._buf) - self._pos + (inner() if inner is not None else 0)

    def __getattr__(self, name: str) -> Any:  # send, fileno, shutdown, close, ...
        return getattr(self._sock, name)


class LimitedFrameBuffer(frame_buffer):
    """websocket-client's frame parser, refusing a frame as soon as its header announces
    more than ``max_size`` bytes, before any of the payload is read into memory."""

    def __init__(self, recv_fn: Callable[[int], bytes], max_size: int) -> None:
        super().__init__(recv_fn, skip_utf8_validation=True)
        self.max_size = max_size

    def recv_length(self) -> None:
        """Read the length field, then apply the limit."""
        super().recv_length()
        if self.length is not None and self.length > self.max_size:
            raise FrameTooLarge(
                f"a frame of {self.length} bytes exceeds max_frame_size {self.max_size}"
            )


def install(ws: Any, max_frame_size: int, on_refill: Callable[[], None]) -> BufferedSocket:
    """Wrap an open ``websocket.WebSocket``'s socket and limit its frame size.

    Call after every (re)connect: ``connect()`` replaces ``ws.sock``. The handshake reads
    its answer byte by byte, so no frame bytes are left behind in the old socket.
    """
    wrapped = BufferedSocket(ws.sock, on_refill)
    ws.sock = wrapped
    ws.frame_buffer = LimitedFrameBuffer(ws.frame_buffer.recv, max_frame_size)
    return wrapped
