"""Replay: simulators serving the example recording (examples/recording/) to real clients.

The recording was made by ``examples/make_recording.py`` from a simulator with the seed
``example``; the simulators here use other seeds, so every signature that verifies against
the recorded signers was served byte for byte from the recording.
"""

from __future__ import annotations

import importlib.util
import json
import re
import struct
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import websocket
from cli_support import ROOT, running
from client_support import collect_updates

import pylazer_sync as pl
from pylazer_sync.recording import read_recording, write_jsonl
from pylazer_sync.simulator import Replay, Simulator

EXAMPLE = ROOT / "examples" / "recording"


def _example_subscriptions() -> list[dict[str, Any]]:
    spec = importlib.util.spec_from_file_location(
        "make_recording", ROOT / "examples" / "make_recording.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    subscriptions: list[dict[str, Any]] = module.SUBSCRIPTIONS
    return subscriptions


SUBSCRIPTIONS = _example_subscriptions()
# Keys only (never started); the recording holds Solana and EVM envelopes.
RECORDED_SIGNERS = {
    kind: signer
    for kind, signer in Simulator(seed="example").trusted_signers().items()
    if kind in ("solana", "evm")
}


@pytest.fixture(scope="module")
def recorded() -> list[pl.StreamUpdate]:
    return list(read_recording(EXAMPLE))


@pytest.fixture(scope="module")
def replay() -> Replay:
    return Replay.load(EXAMPLE)


def by_subscription(updates: list[pl.StreamUpdate], sub_id: int) -> list[pl.StreamUpdate]:
    return [u for u in updates if u.subscription_id == sub_id]


def assert_same_update(got: pl.StreamUpdate, expected: pl.StreamUpdate) -> None:
    assert got.parsed == expected.parsed
    assert got.messages == expected.messages  # every envelope, in order, byte for byte
    assert got.evm is not None
    got.evm.verify(trusted_signers=[RECORDED_SIGNERS["evm"]])
    if got.solana is not None:
        got.solana.verify(trusted_signers=[RECORDED_SIGNERS["solana"]])


def test_the_example_recording_holds_both_subscriptions(
    recorded: list[pl.StreamUpdate], replay: Replay
) -> None:
    assert len(by_subscription(recorded, 1)) >= 40 and len(by_subscription(recorded, 2)) >= 40
    assert len(replay.streams) == 2
    assert replay.signers() == RECORDED_SIGNERS
    assert replay.frame_count == len(recorded)


def test_a_client_receives_the_recorded_updates_under_its_own_ids(
    recorded: list[pl.StreamUpdate], replay: Replay
) -> None:
    with Simulator(seed=5, replay=replay, replay_speed=None) as sim:
        assert sim.trusted_signers() == RECORDED_SIGNERS
        with pl.LazerClient("t", endpoints=[sim.url], num_connections=1) as client:
            ids = [
                client.subscribe(**s, subscription_id=100 + i) for i, s in enumerate(SUBSCRIPTIONS)
            ]
            got = collect_updates(client, len(recorded), timeout=30.0)
    for recorded_id, new_id in zip((1, 2), ids, strict=True):
        expected = by_subscription(recorded, recorded_id)
        received = by_subscription(got, new_id)
        assert len(received) == len(expected)
        for g, e in zip(received, expected, strict=True):
            assert_same_update(g, e)


def _raw_frames(url: str, request: dict[str, Any], count: int) -> list[str | bytes]:
    ws = websocket.create_connection(url, timeout=20)
    try:
        ws.send(json.dumps({"type": "subscribe", **request}))
        answer = json.loads(ws.recv())
        assert answer == {"type": "subscribed", "subscriptionId": request["subscriptionId"]}
        return [ws.recv() for _ in range(count)]
    finally:
        ws.close()


def _wire(subscription: dict[str, Any], sub_id: int) -> dict[str, Any]:
    request = pl.SubscribeRequest(**subscription, subscription_id=sub_id)
    wire: dict[str, Any] = request.to_wire()
    return wire


def test_frames_are_byte_identical_but_for_the_subscription_id(
    recorded: list[pl.StreamUpdate], replay: Replay
) -> None:
    json_frames = [u.frame for u in by_subscription(recorded, 1)]
    binary_frames = [u.frame for u in by_subscription(recorded, 2)]
    with Simulator(replay=replay, replay_speed=None, replay_loop=True) as sim:
        texts = _raw_frames(sim.url, _wire(SUBSCRIPTIONS[0], 9), len(json_frames) + 3)
        binaries = _raw_frames(sim.url, _wire(SUBSCRIPTIONS[1], 2**40 + 7), len(binary_frames))
    for text, original in zip(texts, json_frames + json_frames[:3], strict=True):
        assert isinstance(text, str) and original is not None
        assert text.encode() == original.replace(b'"subscriptionId":1,', b'"subscriptionId":9,')
    for data, original in zip(binaries, binary_frames, strict=True):
        assert isinstance(data, bytes) and original is not None
        assert data[4:12] == struct.pack(">Q", 2**40 + 7)
        assert data[:4] + data[12:] == original[:4] + original[12:]


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"price_feed_ids": [1, 2]}, "feeds"),
        ({"properties": ["price", "exponent"]}, "properties"),
        ({"formats": ["solana"]}, "formats"),
        ({"channel": "fixed_rate@50ms"}, "channel"),
        ({"delivery_format": "binary"}, "delivery"),
        ({"json_binary_encoding": "hex"}, "jsonBinaryEncoding"),
    ],
)
def test_a_subscription_the_recording_does_not_hold_is_refused_saying_what_it_holds(
    replay: Replay, change: dict[str, Any], named: str
) -> None:
    with Simulator(replay=replay) as sim, pl.LazerClient("t", endpoints=[sim.url]) as client:
        sub_id = client.subscribe(**{**SUBSCRIPTIONS[0], **change})
        message = client.recv(timeout=20.0)
    assert isinstance(message, pl.SubscriptionError) and message.subscription_id == sub_id
    assert f"differs in {named}" in message.error
    assert "the recording holds: [feeds [1, 2, 6], properties price,bestBidPrice" in message.error
    assert "formats evm,solana, channel fixed_rate@200ms, delivery json" in message.error


def test_binary_formats_must_come_in_the_recorded_order(replay: Replay) -> None:
    binary = {**SUBSCRIPTIONS[1], "formats": ["evm", "solana"]}
    with Simulator(replay=replay) as sim, pl.LazerClient("t", endpoints=[sim.url]) as client:
        client.subscribe(**binary)
        message = client.recv(timeout=20.0)
    assert isinstance(message, pl.SubscriptionError) and "differs in formats" in message.error


def test_replay_simulators_act_as_redundant_endpoints(
    recorded: list[pl.StreamUpdate], replay: Replay
) -> None:
    expected = by_subscription(recorded, 2)
    sims = [Simulator(seed=s, replay=replay, replay_speed=10).start() for s in (1, 2)]
    try:
        with pl.LazerClient("t", endpoints=[s.url for s in sims], num_connections=2) as client:
            client.wait_connected(2, timeout=20)
            client.subscribe(**SUBSCRIPTIONS[1])
            started = time.monotonic()
            got = collect_updates(client, len(expected), timeout=30.0)
            elapsed = time.monotonic() - started
            stats = client.stats()
    finally:
        for sim in sims:
            sim.stop()
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):  # one connection alone would do the same
        assert_same_update(g, e)
    assert stats["duplicates"] >= len(expected) // 2  # both endpoints sent the frames
    # The original pacing, ten times faster: never faster than the recorded spacing allows.
    span_s = (expected[-1].timestamp_us or 0) - (expected[0].timestamp_us or 0)
    assert elapsed >= 0.9 * span_s / 1e6 / 10


def test_a_jsonl_recording_replays_too(recorded: list[pl.StreamUpdate], tmp_path: Path) -> None:
    path = tmp_path / "example.jsonl"
    write_jsonl(recorded, path)
    sim = Simulator(replay=path, replay_speed=None)
    with sim, pl.LazerClient("t", endpoints=[sim.url]) as client:
        client.subscribe(**SUBSCRIPTIONS[0])
        got = collect_updates(client, len(by_subscription(recorded, 1)), timeout=30.0)
    for g, e in zip(got, by_subscription(recorded, 1), strict=True):
        assert g.parsed == e.parsed and g.evm == e.evm and g.solana == e.solana
        assert g.evm is not None and g.evm.verify(trusted_signers=[RECORDED_SIGNERS["evm"]])


def test_replay_settings_and_files_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="flood"):
        Simulator(replay=EXAMPLE, flood=True)
    with pytest.raises(ValueError, match="replay_speed"):
        Simulator(replay=EXAMPLE, replay_speed=0)
    with pytest.raises(pl.RecordingError, match="no recording at"):
        Simulator(replay=tmp_path / "missing")
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(pl.RecordingError, match="holds no update"):
        Simulator(replay=tmp_path / "empty.jsonl")


@pytest.fixture
def replaying_process() -> Iterator[tuple[str, list[str]]]:
    args = [sys.executable, "-m", "pylazer_sync.simulator", "--replay", str(EXAMPLE),
            "--speed", "max", "--loop", "--no-control", "--no-rest"]  # fmt: skip
    with running(args) as proc:
        url = proc.wait_for_line(lambda line: line.startswith("stream: ")).split()[1]
        proc.wait_for_line(lambda line: line.startswith("leEcdsa") or "evm signer" in line)
        yield url, proc.seen


def test_the_command_line_replays_and_names_the_recorded_signers(
    replaying_process: tuple[str, list[str]], recorded: list[pl.StreamUpdate]
) -> None:
    url, banner = replaying_process
    text = "".join(banner)
    assert re.search(r"replay: .*recording, \d+ frames, speed max, looping", text)
    assert f"evm signer (recorded): {RECORDED_SIGNERS['evm']}" in text
    with pl.LazerClient("t", endpoints=[url], num_connections=1) as client:
        client.subscribe(**SUBSCRIPTIONS[1])
        got = collect_updates(client, 5, timeout=30.0)
    for g, e in zip(got, by_subscription(recorded, 2), strict=False):
        assert_same_update(g, e)
