"""How bytes reach websocket-client: a buffered source for its frame parser, a size limit.

Why (measured on a 2-core machine, loopback, ~150-byte frames): websocket-client reads
every frame with three ``sock.recv()`` calls (2-byte header, 2-byte length, payload), and
each call releases the GIL. With several reader threads that turns into a GIL convoy: a
bare reader fell from ~89,000 frames/s on one connection to ~12,900 frames/s *per
connection* with four. Feeding the parser from one large kernel read lets a thread parse
hundreds of frames per GIL hand-off (~35,000 frames/s per connection with four), and
slicing whole reads straight from that buffer more than halves the parser's cost per
frame. websocket-client still does everything else: connecting, TLS, the handshake,
frame validation, pings, fragments, close; the socket keeps its timeout, so "no bytes for
``timeout`` seconds" still raises websocket-client's timeout exception, over TLS too.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable
from typing import Any

from websocket import ABNF, WebSocketProtocolException
from websocket import _socket as ws_socket
from websocket._abnf import frame_buffer

_READ_SIZE = 256 * 1024
_TEXT, _BINARY, _CONT = ABNF.OPCODE_TEXT, ABNF.OPCODE_BINARY, ABNF.OPCODE_CONT
_CLOSE, _PING, _PONG = ABNF.OPCODE_CLOSE, ABNF.OPCODE_PING, ABNF.OPCODE_PONG


class FrameTooLarge(Exception):
    """A frame header announced more bytes than ``max_frame_size``."""


class BufferedSource:
    """Serve websocket-client's frame parser from one big read of the real socket.

    Refills go through websocket-client's own ``_socket.recv``, so a read timeout raises
    its ``WebSocketTimeoutException`` and a closed peer its
    ``WebSocketConnectionClosedException``, exactly as without the buffer. ``on_refill``
    runs just before a refill may block: the reader uses it to hand over the frames it
    has parsed so far, so no complete frame waits for network I/O. Sending is untouched:
    it still goes straight to ``ws.sock``.
    """

    __slots__ = ("buf", "on_refill", "pos", "sock")

    def __init__(self, sock: socket.socket | ssl.SSLSocket, on_refill: Callable[[], None]) -> None:
        self.sock = sock
        self.buf = b""
        self.pos = 0
        self.on_refill = on_refill

    def recv(self, n: int) -> bytes:
        """Up to ``n`` bytes; blocks (with the socket's timeout) only when empty."""
        buf = self.buf
        pos = self.pos
        avail = len(buf) - pos
        if avail <= 0:
            self.on_refill()
            # A timeout or error leaves this buffer untouched; EOF raises.
            buf = ws_socket.recv(self.sock, _READ_SIZE)
            pos = 0
            avail = len(buf)
            self.buf = buf
        if n >= avail:
            self.buf = b""
            self.pos = 0
            return buf[pos:] if pos else buf
        self.pos = pos + n
        # Must be bytes: websocket-client silently stops on anything else.
        return buf[pos : pos + n]


class LimitedFrameBuffer(frame_buffer):
    """websocket-client's frame parser fed from a :class:`BufferedSource`.

    Two changes, both measured: ``recv_strict`` slices straight from the source when
    the whole read is already buffered (the parser's general path sums and joins lists
    for every 2-byte header read: 6.4 -> 2.6 us per 240-byte frame), and a frame whose
    header announces more than ``max_size`` bytes is refused before any of its payload
    is read into memory.
    """

    def __init__(self, source: BufferedSource, max_size: int) -> None:
        super().__init__(source.recv, skip_utf8_validation=True)
        self.source = source
        self.max_size = max_size
        # Bytes of the fragmented message being joined so far: websocket-client joins
        # fragments without a limit, so the bound must count them as they arrive.
        self._message_so_far = 0

    def recv_strict(self, bufsize: int) -> bytes:
        """Exactly ``bufsize`` bytes (the parser's contract)."""
        if not self.recv_buffer:  # no partial read pending in the parser itself
            source = self.source
            pos = source.pos
            end = pos + bufsize
            if end <= len(source.buf):
                source.pos = end
                return source.buf[pos:end]
        data: bytes = super().recv_strict(bufsize)
        return data

    def recv_length(self) -> None:
        """Read the length field, then apply the limit to the frame and to the message
        its fragments make so far."""
        super().recv_length()
        length = self.length or 0
        if length > self.max_size:
            raise FrameTooLarge(f"a frame of {length} bytes exceeds max_frame_size {self.max_size}")
        assert self.header is not None
        fin, opcode = self.header[0], self.header[4]
        if opcode >= 0x8:  # control frames may come between fragments; never joined
            return
        total = length if opcode != 0x0 else self._message_so_far + length
        if total > self.max_size:
            raise FrameTooLarge(
                f"a fragmented message of more than {total} bytes exceeds max_frame_size "
                f"{self.max_size}"
            )
        self._message_so_far = 0 if fin else total


def install(
    ws: Any, max_frame_size: int, on_refill: Callable[[], None]
) -> Callable[[], tuple[int, bytes]]:
    """Feed an open ``websocket.WebSocket``'s frame parser from a buffered source, and
    return the function that reads the next message: ``(opcode, data)``.

    Call after every (re)connect, on the new socket. The handshake reads its answer byte
    by byte, so no frame bytes are left behind in the socket's own buffers.

    The reader asks websocket-client's parser for frames itself rather than going
    through ``ws.recv_data()``: a whole text or binary frame, by far the common case, is
    returned as it is (0.7 us less per frame, measured); everything else (fragments,
    pings, pongs, close) is handled as ``WebSocket.recv_data_frame`` does, with
    websocket-client's own pieces.
    """
    frame_buffer = LimitedFrameBuffer(BufferedSource(ws.sock, on_refill), max_frame_size)
    ws.frame_buffer = frame_buffer
    recv_frame = frame_buffer.recv_frame
    fragments = ws.cont_frame

    def next_message() -> tuple[int, bytes]:
        while True:
            # Server frames are unmasked and UTF-8 is checked by the decoder: data is bytes.
            frame: Any = recv_frame()
            opcode = frame.opcode
            if opcode in (_TEXT, _BINARY) and frame.fin and not fragments.recving_frames:
                return opcode, frame.data
            if opcode in (_TEXT, _BINARY, _CONT):
                fragments.validate(frame)
                fragments.add(frame)
                if fragments.is_fire(frame):
                    opcode, joined = fragments.extract(frame)
                    return opcode, joined.data
            elif opcode == _CLOSE:
                ws.send_close()
                return opcode, frame.data
            elif opcode == _PING:
                if len(frame.data) >= 126:
                    raise WebSocketProtocolException("Ping message is too long")
                ws.pong(frame.data)
                return opcode, frame.data
            elif opcode == _PONG:
                return opcode, frame.data

    return next_message
