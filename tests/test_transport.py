"""The reader's batches over real sockets: what it hands on before it waits, the limits,
the dead-connection timeout, a closed peer, and the connection's statistics.

The byte-for-byte agreement with websocket-client's parser is the property in
``test_transport_differential.py``; these pin the promises a differential test cannot
see: when the reader blocks, and what the connection thread makes of its batches.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
import websocket
from client_support import FAST_BACKOFF, TOKEN, wait_for
from test_security import RawServer, accept_upgrade, frame_header, hold_open
from test_transport_differential import client_frames

import pylazer_sync as pl
from pylazer_sync import transport
from pylazer_sync.protocol.messages import encode_binary_update, encode_server_message

PING, PONG = websocket.ABNF.OPCODE_PING, websocket.ABNF.OPCODE_PONG
# Long enough that a reader waiting for bytes it does not need is a failure, not a delay.
STALL = 5.0


def frame(payload: bytes, opcode: int = 0x1, fin: bool = True) -> bytes:
    return frame_header(opcode, len(payload), fin) + payload


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, websocket.WebSocket]]:
    """The server's end of a socket pair, and websocket-client's ``WebSocket`` on the
    other end (as after its handshake), reads timing out after :data:`STALL` seconds."""
    server, client = socket.socketpair()
    client.settimeout(STALL)
    ws = websocket.WebSocket(skip_utf8_validation=True, enable_multithread=True)
    ws.sock = client
    ws.connected = True
    yield server, ws
    server.close()
    client.close()


def test_whole_frames_are_handed_on_before_the_reader_waits_for_the_rest(
    pair: tuple[socket.socket, websocket.WebSocket],
) -> None:
    """Three whole frames and half of a fourth: the three come back at once (a reader
    that waited for the fourth would time out instead), the fourth when it is complete."""
    server, ws = pair
    reader = transport.FrameReader(ws, 1 << 20, 128)
    fourth = frame(b"d" * 300)
    server.sendall(frame(b"a") + frame(b"bb", 0x2) + frame(b"c" * 200) + fourth[:100])
    assert reader.read_batch() == transport.Batch(
        [(True, b"a"), (False, b"bb"), (True, b"c" * 200)], 203, None
    )
    server.sendall(fourth[100:] + frame(b"e"))
    assert reader.read_batch() == transport.Batch([(True, b"d" * 300), (True, b"e")], 301, None)


def test_a_frame_for_websocket_client_waits_until_the_frames_before_it_are_handed_on(
    pair: tuple[socket.socket, websocket.WebSocket],
) -> None:
    """A ping after two data frames, the pong's frame header cut in two: the data frames
    first, then the ping (answered with a pong), then the frames after it."""
    server, ws = pair
    reader = transport.FrameReader(ws, 1 << 20, 128)
    ping = frame(b"are you there", PING)
    server.sendall(frame(b"one") + frame(b"two") + ping[:1])
    assert reader.read_batch().frames == [(True, b"one"), (True, b"two")]
    server.sendall(ping[1:] + frame(b"three"))
    assert reader.read_batch() == transport.Batch([], 0, (PING, b"are you there"))
    assert reader.read_batch().frames == [(True, b"three")]
    server.settimeout(STALL)
    assert client_frames(server.recv(1024)) == [(PONG, b"are you there")]


def test_plain_frames_never_reach_websocket_clients_parser(
    pair: tuple[socket.socket, websocket.WebSocket],
) -> None:
    """The fast path takes the stream's frames (whole, or cut by the end of a read);
    websocket-client's parser is called for the one frame it leaves (a masked one)."""
    server, ws = pair
    reader = transport.FrameReader(ws, 1 << 20, 128)
    parsed: list[int] = []
    recv_frame = ws.frame_buffer.recv_frame

    def counting_recv_frame() -> websocket.ABNF:
        frame = recv_frame()
        parsed.append(frame.opcode)
        return frame

    ws.frame_buffer.recv_frame = counting_recv_frame  # type: ignore[method-assign]
    long = frame(b"x" * 1000)
    server.sendall(frame(b"a") + long[:10])
    assert reader.read_batch().frames == [(True, b"a")]
    server.sendall(long[10:500])
    server.sendall(long[500:])  # the frame is completed from two more reads
    assert reader.read_batch().frames == [(True, b"x" * 1000)]
    assert parsed == []
    masked = bytes([0x81, 0x80 | 2]) + b"\0\0\0\0" + b"hi"
    server.sendall(masked + frame(b"after"))
    assert reader.read_batch().frames == [(True, b"hi"), (True, b"after")]
    assert parsed == [0x1]


def test_batches_hold_at_most_max_batch_frames(
    pair: tuple[socket.socket, websocket.WebSocket],
) -> None:
    server, ws = pair
    reader = transport.FrameReader(ws, 1 << 20, 128)
    server.sendall(b"".join(frame(b"%d" % i) for i in range(300)))
    sizes = [len(reader.read_batch().frames) for _ in range(3)]
    assert sizes == [128, 128, 44]


@pytest.mark.parametrize(
    ("announced", "limit"),
    [(1 << 40, 1 << 20), (70_000, 65_536), (200, 100), (126, 125)],
    ids=["64-bit", "just-over-64k", "16-bit", "one-over"],
)
def test_an_oversized_frame_is_refused_at_its_header(
    pair: tuple[socket.socket, websocket.WebSocket], announced: int, limit: int
) -> None:
    """The header and a few bytes, the connection held open: refused at once (a reader
    that waited for the payload would time out after STALL seconds instead), after the
    frames before it."""
    server, ws = pair
    reader = transport.FrameReader(ws, limit, 128)
    server.sendall(frame(b"before") + frame_header(0x1, announced) + bytes(16))
    assert reader.read_batch().frames == [(True, b"before")]
    started = time.monotonic()
    with pytest.raises(transport.FrameTooLarge, match=f"a frame of {announced} bytes"):
        reader.read_batch()
    assert time.monotonic() - started < STALL


def test_fragments_adding_up_past_the_limit_are_refused_as_they_arrive(
    pair: tuple[socket.socket, websocket.WebSocket],
) -> None:
    server, ws = pair
    reader = transport.FrameReader(ws, 100, 128)
    server.sendall(frame(bytes(60), 0x2, fin=False) + frame(b"", PING))
    assert reader.read_batch().control == (PING, b"")
    server.sendall(frame(bytes(60), 0x0, fin=False))  # 120 > 100: no need for the rest
    with pytest.raises(transport.FrameTooLarge, match="fragmented message of more than 120"):
        reader.read_batch()


@pytest.mark.parametrize("before", [b"", frame(b"x" * 300)[:7]], ids=["between", "mid-frame"])
def test_silence_raises_websocket_clients_timeout(
    pair: tuple[socket.socket, websocket.WebSocket], before: bytes
) -> None:
    server, ws = pair
    ws.sock.settimeout(0.3)
    reader = transport.FrameReader(ws, 1 << 20, 128)
    server.sendall(frame(b"last") + before)
    assert reader.read_batch().frames == [(True, b"last")]
    with pytest.raises(websocket.WebSocketTimeoutException):
        reader.read_batch()


@pytest.mark.parametrize("before", [b"", frame(b"x" * 300)[:7]], ids=["between", "mid-frame"])
def test_a_closed_peer_raises_websocket_clients_closed_exception(
    pair: tuple[socket.socket, websocket.WebSocket], before: bytes
) -> None:
    server, ws = pair
    reader = transport.FrameReader(ws, 1 << 20, 128)
    server.sendall(frame(b"last") + before)
    server.shutdown(socket.SHUT_WR)
    assert reader.read_batch().frames == [(True, b"last")]
    with pytest.raises(websocket.WebSocketConnectionClosedException):
        reader.read_batch()


# -- through the client ------------------------------------------------------------------


def test_connection_statistics_count_every_message_and_pings_prove_life() -> None:
    """Messages the fast path takes and ones websocket-client parses (masked, fragmented
    with a ping between, longer than 64 KiB) all count in ``frames`` and ``bytes`` and
    arrive in order; once only pings come, ``seconds_since_last_frame`` stays small."""
    texts = [
        encode_server_message(pl.Subscribed(1)).encode(),
        b'{"type": "subscribed", "subscriptionId": 2' + b" " * 70_000 + b"}",
        encode_server_message(pl.Subscribed(3)).encode(),
        encode_server_message(pl.Subscribed(4)).encode(),
        encode_server_message(pl.Subscribed(5)).encode(),
    ]
    binary = encode_binary_update(6, [])
    masked = bytes([0x81, 0x80 | len(texts[2])]) + b"\0\0\0\0" + texts[2]
    stream = (
        frame(texts[0])
        + frame(texts[1])
        + masked
        + frame(texts[3][:4], fin=False)
        + frame(b"", PING)
        + frame(texts[3][4:], 0x0)
        + frame(binary, 0x2)
        + frame(texts[4])
    )

    def serve(i: int, sock: socket.socket, head: bytes) -> None:
        accept_upgrade(sock, head)
        for at in range(0, len(stream), 5000):  # many reads, frames cut at their ends
            sock.sendall(stream[at : at + 5000])
        hold_open(sock)  # a ping every 0.2 s

    with (
        RawServer(serve) as raw,
        pl.LazerClient(TOKEN, endpoints=[raw.url], num_connections=1, backoff=FAST_BACKOFF) as c,
    ):
        received = [c.recv(timeout=10) for _ in range(6)]
        assert received[:4] == [pl.Subscribed(i) for i in range(1, 5)]
        assert isinstance(received[4], pl.StreamUpdate)
        assert received[4].subscription_id == 6
        assert received[5] == pl.Subscribed(5)
        conn = c.stats()["connections"][0]
        assert conn["frames"] == 6
        assert conn["bytes"] == sum(map(len, texts)) + len(binary)
        last_data = time.monotonic()

        def only_pings_for_a_while() -> bool:
            seconds = c.stats()["connections"][0]["seconds_since_last_frame"]
            return time.monotonic() - last_data > 1.0 and seconds is not None and seconds < 0.8

        wait_for(only_pings_for_a_while, 15, "pings to keep the connection's last frame fresh")
        assert c.stats()["connections"][0]["frames"] == 6
        with pytest.raises(pl.RecvTimeout):  # pings are not messages
            c.recv(timeout=0.05)
