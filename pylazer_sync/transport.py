"""How bytes reach the frames: one big read, a fast path for data frames, websocket-client.

Why (measured on a 2-core machine, loopback, ~240-byte frames): websocket-client reads
every frame with three ``sock.recv()`` calls (2-byte header, 2-byte length, payload), and
each call releases the GIL; with several reader threads that turns into a GIL convoy.
Reading 256 KiB at a time fixes that, but its parser still costs about 2 us of Python per
frame (a header tuple, an ``ABNF`` object, validation, the fragment bookkeeping), paid
once per connection for every update. So the reader splits the frames the stream is
made of, complete unmasked unfragmented text and binary frames under 64 KiB, straight
out of its buffer in one tight loop (about 0.2 us per frame), and returns them in
batches: the caller's per-frame work is a list it hands on whole.

websocket-client keeps everything else: connecting, TLS, proxies, the handshake, pings
and pongs, close, fragments, masked or reserved-bit frames, reserved opcodes, long
frames, and any frame whose header the fast path does not recognise. The fast path
stops at the first frame it does not take, and websocket-client's own parser reads that
frame from the same buffer, so the two never disagree about where a frame starts
(proved against websocket-client's parser by ``tests/test_transport_differential.py``).
Reads go through websocket-client's ``_socket.recv`` and the socket keeps its timeout,
so "no bytes for ``timeout`` seconds" raises its ``WebSocketTimeoutException`` and a
closed peer its ``WebSocketConnectionClosedException``, over TLS too.
"""

from __future__ import annotations

import socket
import ssl
from typing import Any, NamedTuple

from websocket import ABNF, WebSocketProtocolException
from websocket import _socket as ws_socket
from websocket._abnf import frame_buffer

from .pipeline import Frame

_READ_SIZE = 256 * 1024
_TEXT, _BINARY, _CONT = ABNF.OPCODE_TEXT, ABNF.OPCODE_BINARY, ABNF.OPCODE_CONT
_CLOSE, _PING, _PONG = ABNF.OPCODE_CLOSE, ABNF.OPCODE_PING, ABNF.OPCODE_PONG
# First header byte of a frame the fast path takes: FIN set, RSV bits clear, opcode.
_FIN_TEXT, _FIN_BINARY = 0x80 | _TEXT, 0x80 | _BINARY
# Longest payload with a 2-byte length field (the fast path's 4-byte header).
_MAX_SHORT_FRAME = 0xFFFF


class Batch(NamedTuple):
    """What one :meth:`FrameReader.read_batch` call read: at least one frame."""

    frames: list[Frame]
    """Data messages in arrival order (whole frames and joined fragments)."""
    size: int
    """Payload bytes of ``frames``."""
    control: tuple[int, bytes] | None
    """A ping, pong or close frame, as ``(opcode, payload)``, when the call read one
    (then ``frames`` is empty); already answered (pong, close) by websocket-client."""


class FrameTooLarge(Exception):
    """A frame header announced more bytes than ``max_frame_size``."""


class BufferedSource:
    """One big read of the real socket, served to websocket-client's frame parser.

    Refills go through websocket-client's own ``_socket.recv``, so a read timeout raises
    its ``WebSocketTimeoutException`` and a closed peer its
    ``WebSocketConnectionClosedException``, exactly as without the buffer; a failed
    refill leaves the buffer as it was. Sending is untouched: it still goes straight to
    ``ws.sock``.
    """

    __slots__ = ("buf", "pos", "sock")

    def __init__(self, sock: socket.socket | ssl.SSLSocket) -> None:
        self.sock = sock
        self.buf = b""
        self.pos = 0

    def read(self) -> bytes:
        """The next bytes from the socket (blocks, with the socket's timeout; never empty)."""
        data: bytes = ws_socket.recv(self.sock, _READ_SIZE)
        return data

    def recv(self, n: int) -> bytes:
        """Up to ``n`` bytes (the parser's ``recv``); blocks only when the buffer is empty."""
        buf = self.buf
        pos = self.pos
        avail = len(buf) - pos
        if avail <= 0:
            buf = self.read()
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


class FrameReader:
    """Reads an open ``websocket.WebSocket`` in batches: the fast path, then websocket-client.

    Create one after every (re)connect, on the new socket: it installs its buffered
    parser as ``ws.frame_buffer``. The handshake reads its answer byte by byte, so no
    frame bytes are left behind in the socket's own buffers.

    Args:
        ws: an open ``websocket.WebSocket`` (its ``sock``, ``cont_frame``, ``pong`` and
            ``send_close`` are used).
        max_frame_size: the largest frame, and the largest message its fragments may
            make; more is refused at the header with :class:`FrameTooLarge`.
        max_batch: at most this many frames per batch, so a flood does not hold back the
            first frames of a buffer while the rest are split.
    """

    __slots__ = ("_fast_max", "_fragments", "_max_batch", "_parser", "_source", "_ws")

    def __init__(self, ws: Any, max_frame_size: int, max_batch: int) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._ws = ws
        self._source = BufferedSource(ws.sock)
        self._parser = LimitedFrameBuffer(self._source, max_frame_size)
        ws.frame_buffer = self._parser
        self._fragments = ws.cont_frame
        # A frame over the limit is left to the parser, which refuses it at its header.
        self._fast_max = min(max_frame_size, _MAX_SHORT_FRAME)
        self._max_batch = max_batch

    def read_batch(self) -> Batch:
        """The next frames: blocks (with the socket's timeout) until at least one frame,
        data or control, is read.

        Never blocks, and never raises, while it holds frames it has read: those are
        returned first, so the caller hands them on before any wait for the network.
        Raises websocket-client's exceptions (timeout, closed, protocol errors),
        :class:`FrameTooLarge`, or ``OSError``.
        """
        source = self._source
        if source.pos >= len(source.buf):
            source.buf = source.read()
            source.pos = 0
        frames: list[Frame] = []
        if not self._fragments.recving_frames:
            size = self._split(frames, self._max_batch)
            if frames:
                return Batch(frames, size, None)
            size = self._complete_split_frame(frames)
            if frames:
                return Batch(frames, size + self._split(frames, self._max_batch - 1), None)
        # The frame at the head is one for websocket-client (or its header is cut).
        opcode, data = self._next_message()
        if opcode in (_TEXT, _BINARY):
            frames.append((opcode == _TEXT, data))
            # A message, whole or joined: no fragments are pending, the fast path goes on.
            return Batch(frames, len(data) + self._split(frames, self._max_batch - 1), None)
        return Batch(frames, 0, (opcode, data))

    def _split(self, frames: list[Frame], limit: int) -> int:
        """Append up to ``limit`` whole fast-path frames from the buffer to ``frames``;
        stop at the first other one. Returns their payload bytes.

        The hot loop: locals only, no call per frame but the slice and the append.
        """
        source = self._source
        buf = source.buf
        pos = source.pos
        end = len(buf)
        fast_max = self._fast_max
        append = frames.append
        size = 0
        for _ in range(limit):
            if pos + 2 > end:
                break
            length = buf[pos + 1]  # the mask bit is its top bit: a masked frame is >= 128
            if length < 126:
                start = pos + 2
            elif length == 126:
                if pos + 4 > end:
                    break
                length = buf[pos + 2] << 8 | buf[pos + 3]
                start = pos + 4
            else:  # a 64-bit length, or masked: websocket-client's
                break
            stop = start + length
            if stop > end or length > fast_max:
                break
            opcode = buf[pos]
            if opcode == _FIN_TEXT:
                append((True, buf[start:stop]))
            elif opcode == _FIN_BINARY:
                append((False, buf[start:stop]))
            else:
                break
            size += length
            pos = stop
        source.pos = pos
        return size

    def _complete_split_frame(self, frames: list[Frame]) -> int:
        """If the buffer ends inside a frame the fast path takes (its header whole, not
        all of its payload), read until it is complete, append it and return its length;
        otherwise 0. Blocks: call only while holding no frames.

        Only the frame's own bytes are joined, never the next read: with a big read the
        buffer mostly ends inside a frame (over TLS every 16 KiB record does), and going
        through websocket-client's parser for that frame costs more than the frames
        around it.
        """
        source = self._source
        buf = source.buf
        pos = source.pos
        if len(buf) - pos < 4:  # too short to tell: the header may be cut
            return 0
        opcode = buf[pos]
        length = buf[pos + 1]
        start = pos + 2
        if length == 126:
            length = buf[pos + 2] << 8 | buf[pos + 3]
            start = pos + 4
        elif length > 126:
            return 0
        if opcode not in (_FIN_TEXT, _FIN_BINARY) or length > self._fast_max:
            return 0
        missing = start + length - len(buf)
        assert missing > 0, "a whole frame the fast path takes was left in the buffer"
        parts = [buf[start:]]
        while True:
            data = source.read()  # an error here ends the connection, half a frame with it
            if len(data) >= missing:
                break
            parts.append(data)
            missing -= len(data)
        parts.append(data[:missing])
        source.buf = data
        source.pos = missing
        frames.append((opcode == _FIN_TEXT, b"".join(parts)))
        return length

    def _next_message(self) -> tuple[int, bytes]:
        """The next message websocket-client's own parser reads from the buffer, handled
        as ``WebSocket.recv_data_frame`` does: fragments joined (each checked against
        the limit at its header), pings answered, a close answered."""
        ws = self._ws
        fragments = self._fragments
        recv_frame = self._parser.recv_frame
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
