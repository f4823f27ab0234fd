"""The simulator's fault injection and lifecycle, seen from a plain WebSocket client.

Each test has its own simulator. Absence checks ("nothing arrives") are bounded
receives that must time out; everything else waits on events, never on sleeps.
"""

from __future__ import annotations

import io
import itertools
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import websocket
from test_simulator_support import (
    ConnectionClosedByServer,
    WsClient,
    decode,
    subscribe_request,
)

from pylazer_sync.errors import ProtocolError
from pylazer_sync.protocol import (
    StreamUpdate,
    Subscribed,
    UnknownMessage,
    decode_binary_update,
    parse_server_message,
)
from pylazer_sync.simulator import GARBAGE_KINDS, Simulator
from pylazer_sync.simulator.__main__ import run_command


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(seed=5, ping_interval=0.1, close_timeout=0.3) as s:
        yield s


def subscribed_client(sim: Simulator, sub_id: int = 1, **params: object) -> WsClient:
    c = WsClient(sim.url)
    c.send(subscribe_request(sub_id, **params))
    assert c.recv() == Subscribed(sub_id)
    return c


def test_drop_all_clean_close(sim: Simulator) -> None:
    clients = [subscribed_client(sim), subscribed_client(sim)]
    sim.wait_for_connections(2)
    # These clients answer the close frame only when they read: do not wait for them.
    assert sim.drop_all(wait=False) == 2
    for c in clients:
        with pytest.raises(ConnectionClosedByServer) as info:
            while True:
                c.recv_raw(timeout=5)
        assert info.value.code == 1001
        c.close()
    sim.wait_for_connections(0)


def test_drop_all_abrupt_resets_tcp(sim: Simulator) -> None:
    c = subscribed_client(sim)
    sim.wait_for_connections(1)
    assert sim.drop_all(abrupt=True) == 1
    assert sim.connection_count == 0
    with pytest.raises((ConnectionResetError, websocket.WebSocketConnectionClosedException)):
        while True:
            c.recv_raw(timeout=5)
    c.ws.shutdown()


def test_drop_one_connection_by_id(sim: Simulator) -> None:
    a, b = subscribed_client(sim), subscribed_client(sim)
    first, second = sim.connection_ids()
    sim.drop(first, abrupt=True)
    sim.wait_for_connections(1)
    assert sim.connection_ids() == [second]
    assert isinstance(b.recv(), StreamUpdate)
    a.close()
    b.close()


def test_stall_sends_nothing_not_even_pings_then_resumes(sim: Simulator) -> None:
    c = subscribed_client(sim, channel="fixed_rate@50ms")
    c.updates(1, 1)
    (conn_id,) = sim.connection_ids()
    sim.stall(conn_id)
    stalled_at = time.time_ns() // 1000
    assert sim.connections()[0].stalled
    # What was already on the wire may still arrive; nothing made after the stall does,
    # and no ping either (the interval is 0.1 s) while we watch for 0.6 s.
    c.ws.ping(b"are you there")
    pings_before = c.pings
    with pytest.raises(TimeoutError):
        while True:
            opcode, raw = c.recv_raw(timeout=0.6)
            msg = decode(opcode, raw)
            assert isinstance(msg, StreamUpdate) and msg.timestamp_us is not None
            assert msg.timestamp_us < stalled_at
    assert c.pings == pings_before
    sim.resume(conn_id)
    update = c.updates(1, 1, timeout=3)[0]
    assert update.timestamp_us is not None and update.timestamp_us > stalled_at
    c.close()


def test_refuse_connections_closes_the_port_then_reopens(sim: Simulator) -> None:
    existing = subscribed_client(sim)
    sim.refuse_connections()
    with pytest.raises(ConnectionRefusedError):
        websocket.create_connection(sim.url, timeout=3)
    assert isinstance(existing.recv(), StreamUpdate)  # open connections stay
    sim.accept_connections()
    with WsClient(sim.url) as again:
        again.send(subscribe_request(2))
        assert again.recv() == Subscribed(2)
    existing.close()


def test_refuse_connections_for_a_while(sim: Simulator) -> None:
    sim.refuse_connections(seconds=0.3)
    with pytest.raises(ConnectionRefusedError):
        websocket.create_connection(sim.url, timeout=3)
    assert not sim.accepting
    sim.wait_until(lambda: sim.accepting, timeout=5)
    with WsClient(sim.url) as again:
        again.send(subscribe_request(2))
        assert again.recv() == Subscribed(2)


def test_refuse_connections_with_503(sim: Simulator) -> None:
    sim.refuse_connections(mode="503")
    with pytest.raises(websocket.WebSocketBadStatusException) as info:
        websocket.create_connection(sim.url, timeout=3)
    assert info.value.status_code == 503
    sim.accept_connections()
    WsClient(sim.url).close()


@pytest.mark.parametrize("kind", GARBAGE_KINDS)
def test_garbage(sim: Simulator, kind: str) -> None:
    c = subscribed_client(sim, channel="fixed_rate@50ms")
    assert sim.send_garbage(kind) == 1  # type: ignore[arg-type]
    while True:  # skip the regular updates queued before the garbage
        opcode, raw = c.recv_raw(timeout=3)
        try:
            msg = decode(opcode, raw)
        except ProtocolError as exc:
            error: ProtocolError | None = exc
            break
        if not isinstance(msg, StreamUpdate):
            error = None
            break
    if kind in ("invalid_json", "unknown_type"):
        assert opcode == websocket.ABNF.OPCODE_TEXT
        if kind == "invalid_json":
            assert error is not None and "not valid JSON" in str(error)
        else:
            assert isinstance(parse_server_message(raw.decode()), UnknownMessage)
    else:
        assert opcode == websocket.ABNF.OPCODE_BINARY
        expected = {
            "unknown_envelope": "unknown envelope format magic",
            "truncated_envelope": "payload length",
            "truncated_frame": "truncated",
            "random_binary": "",
        }[kind]
        assert error is not None and expected in str(error)
    # The connection goes on.
    assert isinstance(c.recv(timeout=3), StreamUpdate)
    c.close()


def test_garbage_kind_is_checked(sim: Simulator) -> None:
    with pytest.raises(ValueError, match="unknown garbage kind"):
        sim.send_garbage("nonsense")  # type: ignore[arg-type]


def test_delay_one_connection(sim: Simulator) -> None:
    fast = subscribed_client(sim, channel="fixed_rate@50ms")
    slow = subscribed_client(sim, channel="fixed_rate@50ms")
    slow_id = sim.connection_ids()[-1]
    assert sim.delay_connection(slow_id, 0.4) == 1
    marker = time.time_ns() // 1000

    def lag(c: WsClient) -> float:
        while True:
            update = c.updates(1, 1, timeout=5)[0]
            assert update.timestamp_us is not None
            if update.timestamp_us > marker:
                return time.time() - update.timestamp_us / 1e6

    # The fast one first: frames of the slow one only get later while they wait.
    assert lag(fast) < 0.4
    assert lag(slow) >= 0.4
    sim.delay_connection(slow_id, 0)
    fast.close()
    slow.close()


def test_flood_sends_distinct_frames_shared_by_connections(sim: Simulator) -> None:
    params: dict[str, object] = {
        "priceFeedIds": [1, 2, 6],
        "formats": ["leUnsigned"],
        "deliveryFormat": "binary",
        "channel": "fixed_rate@1000ms",
    }
    a, b = subscribed_client(sim, 1, **params), subscribed_client(sim, 1, **params)
    sim.flood()
    assert sim.stats()["flooding"]

    def collect(c: WsClient, n: int) -> list[bytes]:
        return [c.recv_raw()[1] for _ in range(n)]

    frames_a, frames_b = collect(a, 3000), collect(b, 3000)
    stamps = [decode_binary_update(f).timestamp_us for f in frames_a]
    assert len(set(frames_a)) == len(frames_a)  # all distinct
    flood_stamps = [t for t in stamps if t is not None and t % 1_000_000 != 0]
    assert len(flood_stamps) > 2900
    gaps = {y - x for x, y in itertools.pairwise(flood_stamps)}
    assert gaps == {1}
    assert set(frames_a) & set(frames_b)  # the same bytes reach both
    stats = sim.stats()
    # One encoding per frame, whichever connections send it.
    assert stats["flood_frames_generated"] < 0.75 * stats["frames_sent"]
    sim.stop_flood()
    # Back to ticks: a frame on a whole second comes (after whatever was in flight).
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        update = decode_binary_update(a.recv_raw(timeout=3)[1])
        if update.timestamp_us is not None and update.timestamp_us % 1_000_000 == 0:
            break
    else:
        pytest.fail("no normal tick after the flood")
    a.close()
    b.close()


def test_flood_at_a_rate(sim: Simulator) -> None:
    c = subscribed_client(sim, formats=["leUnsigned"], deliveryFormat="binary")
    sim.flood(rate_hz=2000)
    stamps = []
    for _ in range(200):
        update = decode_binary_update(c.recv_raw()[1])
        assert update.timestamp_us is not None
        stamps.append(update.timestamp_us)
    flood_stamps = [t for t in stamps if t % 50_000 != 0]
    gaps = {y - x for x, y in itertools.pairwise(flood_stamps)}
    assert gaps == {500}  # 1 / 2000 Hz
    c.close()


def test_restart_keeps_port_request_log_and_counts_ids(sim: Simulator) -> None:
    c = subscribed_client(sim)
    port = sim.port
    (first_id,) = sim.connection_ids()
    sim.restart()
    assert sim.port == port
    with pytest.raises(ConnectionClosedByServer):
        while True:
            c.recv_raw(timeout=5)
    c.close()
    again = subscribed_client(sim, 2)
    assert sim.connection_ids()[0] > first_id
    assert [r.message["subscriptionId"] for r in sim.requests(type="subscribe") if r.message] == [
        1,
        2,
    ]
    again.close()


def test_stop_is_clean_no_threads_no_port() -> None:
    before = set(threading.enumerate())
    s = Simulator(seed=1, close_timeout=0.3).start()
    c = WsClient(s.url)
    c.send(subscribe_request(1, channel="real_time"))
    port, rest_port = s.port, s.rest_port
    s.stop()
    assert set(threading.enumerate()) <= before
    assert not s.running and s.connection_count == 0
    for p in (port, rest_port):
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(("127.0.0.1", p))  # the ports are free again
    c.ws.shutdown()
    s.stop()  # idempotent
    with pytest.raises(RuntimeError):
        s.drop_all()


def test_wait_for_connections_times_out(sim: Simulator) -> None:
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        sim.wait_for_connections(3, timeout=0.2)
    assert time.monotonic() - started < 2


def test_start_on_busy_port_fails() -> None:
    with Simulator() as first, pytest.raises(OSError):
        Simulator(port=first.port).start()


def test_control_commands(sim: Simulator) -> None:
    out = io.StringIO()
    c = subscribed_client(sim)
    (conn_id,) = sim.connection_ids()
    for line in (
        "status",
        f"stall {conn_id}",
        f"resume {conn_id}",
        f"delay {conn_id} 0",
        "garbage unknown_type",
        "garbage nonsense",
        "refuse 503",
        "accept",
        "flood 100",
        "noflood",
        "bogus",
        "help",
        "",
    ):
        assert run_command(sim, line, out)
    assert not run_command(sim, "quit", out)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("ok: ({") and "error: unknown garbage kind" in out.getvalue()
    assert "unknown command 'bogus'" in out.getvalue()
    assert sim.accepting and not sim.stats()["flooding"]
    assert run_command(sim, "drop abrupt", out)
    sim.wait_for_connections(0)
    c.ws.shutdown()
