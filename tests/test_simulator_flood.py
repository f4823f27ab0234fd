"""The simulator's flood modes: a ring of pre-framed frames, lockstep, and a rate flood.

What the benchmarks rely on: every connection of an unlimited flood carries the same byte
sequence from its first frame, distinct timestamps round the ring, connections in near
lockstep; a rate flood stamps frames at send time on request and honours per-connection
delays. Waits are bounded receives; nothing synchronises on a sleep.
"""

from __future__ import annotations

import asyncio
import itertools
import struct
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
import websocket
from test_simulator_support import WsClient, subscribe_request

from pylazer_sync.protocol import (
    Signer,
    StreamUpdate,
    Subscribed,
    SubscribeRequest,
    decode_binary_update,
    parse_server_message,
)
from pylazer_sync.simulator import Simulator
from pylazer_sync.simulator.__main__ import build_arg_parser, simulator_from_args
from pylazer_sync.simulator.flood import FloodRing, ws_frame
from pylazer_sync.simulator.market import Catalogue, MarketModel
from pylazer_sync.simulator.server import ServerSettings
from pylazer_sync.simulator.updates import UpdateEncoder, resolve

BINARY: dict[str, object] = {
    "priceFeedIds": [1],
    "properties": ["price", "bestBidPrice", "bestAskPrice", "exponent", "publisherCount"],
    "formats": ["leUnsigned"],
    "deliveryFormat": "binary",
    "parsed": False,
    "channel": "real_time",
}


@pytest.fixture
def ring_sim() -> Iterator[Simulator]:
    with Simulator(
        seed=3, ping_interval=None, rest_port=None, close_timeout=0.3, flood=True, flood_ring=500
    ) as s:
        yield s


def subscribed(sim: Simulator, **params: object) -> WsClient:
    c = WsClient(sim.url)
    c.send(subscribe_request(1, **params))
    assert c.recv() == Subscribed(1)
    return c


def frames(c: WsClient, n: int) -> list[bytes]:
    return [c.recv_raw()[1] for _ in range(n)]


def stamp(frame: bytes) -> int:
    ts = decode_binary_update(frame).timestamp_us
    assert ts is not None
    return ts


def test_every_connection_gets_the_same_bytes_from_the_first_ring_frame(
    ring_sim: Simulator,
) -> None:
    a = subscribed(ring_sim, **BINARY)
    first = frames(a, 1200)
    b = subscribed(ring_sim, **BINARY)  # joins later, still starts at frame 0
    assert frames(b, 1200) == first
    stamps = [stamp(f) for f in first]
    assert len(set(stamps)) == 1200  # distinct, also round the ring again ...
    ring = stamps[:500]
    assert {y - x for x, y in itertools.pairwise(ring)} == {1}  # ... 1 us apart in a round
    period = stamps[500] - stamps[0]
    assert period > 500 and stamps[500:1000] == [t + period for t in ring]
    # A later round is the first with only the timestamps changed.
    again = decode_binary_update(first[500])
    assert again.payload is not None and decode_binary_update(first[0]).payload is not None
    assert again.feeds == decode_binary_update(first[0]).feeds
    a.close()
    b.close()


def test_json_frames_above_125_bytes_are_framed_correctly(ring_sim: Simulator) -> None:
    params = {**BINARY, "formats": [], "deliveryFormat": "json", "parsed": True}
    c = subscribed(ring_sim, **params)
    for _ in range(600):
        opcode, data = c.recv_raw()
        assert opcode == websocket.ABNF.OPCODE_TEXT and len(data) > 125
        assert isinstance(parse_server_message(data.decode()), StreamUpdate)
    c.close()


def test_ws_frame_headers() -> None:
    assert ws_frame("ab") == b"\x81\x02ab"
    assert ws_frame(b"\x00" * 126)[:4] == b"\x82\x7e" + struct.pack("!H", 126)
    assert ws_frame(b"\x00" * 70_000)[:10] == b"\x82\x7f" + struct.pack("!Q", 70_000)


def _ring(max_lead: int | None, size: int = 5000, **params: object) -> FloodRing:
    catalogue = Catalogue.default()
    encoder = UpdateEncoder(MarketModel(catalogue, 0), Signer.from_seed(0))
    request = SubscribeRequest.from_wire(subscribe_request(1, **{**BINARY, **params}))
    shape = resolve(request, catalogue).shape
    assert shape is not None
    return FloodRing(encoder, shape, 1_700_000_000_000_000, 1, size, max_lead, 4096)


def _rounds(ring: FloodRing, rounds: int) -> list[bytes]:
    """Every chunk of the first ``rounds`` rounds, checked, as one byte string each round."""
    position, out = 0, [bytearray() for _ in range(rounds)]
    while position < rounds * ring.size:
        data, count = ring.chunk(position)
        assert count > 0 and (position % ring.size) + count <= ring.size
        assert len(data) <= 4096 or count == 1
        out[position // ring.size] += data
        position += count
    return [bytes(r) for r in out]


def _split(blob: bytes) -> list[bytes]:
    """The payloads of a run of small binary frames: 0x82, 7-bit length, payload."""
    parsed, pos = [], 0
    while pos < len(blob):
        assert blob[pos] == 0x82
        size = blob[pos + 1]
        parsed.append(blob[pos + 2 : pos + 2 + size])
        pos += 2 + size
    return parsed


def test_ring_chunks_are_whole_frames_and_later_rounds_are_restamped() -> None:
    ring = _ring(None)
    first, second, third = (_split(r) for r in _rounds(ring, 3))
    assert ring.generated == ring.size and ring.patched
    stamps = [stamp(f) for f in first]
    assert len(set(stamps)) == ring.size
    assert all(t % 1_000_000 for t in stamps)  # never on a whole second, where ticks are
    assert [stamp(f) for f in second] == [t + ring.period for t in stamps]
    assert [stamp(f) for f in third] == [t + 2 * ring.period for t in stamps]
    assert ring.timestamp(2 * ring.size + 7) == stamps[7] + 2 * ring.period
    # Exactly what the encoder makes for those timestamps, not just decodable.
    assert ws_frame(second[42]) == ring._encode(stamps[42] + ring.period)


def test_json_rounds_are_restamped_too() -> None:
    ring = _ring(None, size=300, formats=[], deliveryFormat="json", parsed=True)
    rounds = _rounds(ring, 2)
    assert ring.patched and rounds[0] != rounds[1] and len(rounds[0]) == len(rounds[1])
    assert ring.period == 1000  # the lowest three digits count frames in a round


def test_signed_frames_repeat_the_ring() -> None:
    ring = _ring(None, size=20, formats=["solana"])
    first, second = _rounds(ring, 2)
    assert ring.patched is False and first == second


def test_lockstep_holds_a_sender_that_runs_ahead() -> None:
    async def scenario() -> None:
        ring = _ring(max_lead=100)
        fast, slow, stalled = object(), object(), object()
        ring.join(fast, SimpleNamespace(stalled=False))  # type: ignore[arg-type]
        ring.join(slow, SimpleNamespace(stalled=False))  # type: ignore[arg-type]
        ring.join(stalled, SimpleNamespace(stalled=True))  # type: ignore[arg-type]
        ring.advance(fast, 150)
        await asyncio.wait_for(ring.wait_turn(100), 1)  # within the lead of the slowest
        waiting = asyncio.ensure_future(ring.wait_turn(150))
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(waiting), 0.05)
        ring.advance(slow, 50)  # the slowest catches up: the fast one may go on
        await asyncio.wait_for(waiting, 1)
        ring.leave(slow)
        ring.leave(fast)
        await asyncio.wait_for(ring.wait_turn(10_000), 1)  # a stalled sender holds no one
        await asyncio.wait_for(_ring(None).wait_turn(10**9), 1)  # no bound at all

    asyncio.run(scenario())


def test_rate_flood_stamps_at_send_and_delays_one_connection() -> None:
    with Simulator(
        seed=4,
        ping_interval=None,
        rest_port=None,
        close_timeout=0.3,
        flood_rate_hz=500,
        flood_stamp="send",
    ) as sim:
        fast = subscribed(sim, **BINARY)
        slow = subscribed(sim, **BINARY)
        slow_id = sim.connection_ids()[-1]
        assert sim.delay_connection(slow_id, 0.15) == 1
        marker = time.time_ns() // 1000

        def lags(c: WsClient, n: int) -> list[tuple[bytes, float]]:
            out: list[tuple[bytes, float]] = []
            while len(out) < n:
                data = c.recv_raw()[1]
                if stamp(data) > marker:
                    out.append((data, time.time() - stamp(data) / 1e6))
            return out

        quick = lags(fast, 50)
        late = lags(slow, 50)
        assert max(lag for _, lag in quick) < 0.15
        assert min(lag for _, lag in late) >= 0.15
        # The same frames on both: a client deduplicates them.
        assert {f for f, _ in quick} & {f for f, _ in late}
        stamps = [stamp(f) for f, _ in quick]
        assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
        fast.close()
        slow.close()


@pytest.mark.parametrize(
    ("field", "value"),
    [("flood_ring", 0), ("flood_max_lead", 0), ("flood_chunk_bytes", 0), ("flood_stamp", "x")],
)
def test_flood_settings_are_checked(field: str, value: Any) -> None:
    with pytest.raises(ValueError, match=field):
        ServerSettings(**{field: value})


def test_cli_flood_options() -> None:
    args = build_arg_parser().parse_args(
        ["--flood", "--flood-ring", "1000", "--flood-max-lead", "0", "--flood-stamp", "send"]
    )
    settings = simulator_from_args(args)._settings
    assert (settings.flood_ring, settings.flood_max_lead, settings.flood_stamp) == (
        1000,
        None,
        "send",
    )
