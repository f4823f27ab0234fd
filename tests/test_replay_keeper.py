"""The newest signed update for contracts: ``client.latest_update()`` and examples/keeper.py,
against a live simulator and against replays of the example recording."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest
from cli_support import ROOT, run
from client_support import collect_updates, wait_for

import pylazer_sync as pl
from pylazer_sync.recording import read_recording
from pylazer_sync.simulator import Simulator
from pylazer_sync.snapshot import LatestSnapshot

KEEPER = str(ROOT / "examples" / "keeper.py")
EXAMPLE = ROOT / "examples" / "recording"


def _update(sub_id: int, timestamp_us: int) -> pl.StreamUpdate:
    return pl.StreamUpdate(sub_id, pl.Payload(timestamp_us, [pl.FeedUpdate(1, price=timestamp_us)]))


def test_the_snapshot_keeps_the_newest_update_of_each_subscription() -> None:
    snapshot = LatestSnapshot()
    assert snapshot.latest_update() is None and snapshot.latest_update(1) is None
    newer, older, other = _update(1, 2_000), _update(1, 1_000), _update(2, 1_500)
    snapshot.update_many([newer, other, older])  # an older timestamp never replaces a newer
    assert snapshot.latest_update(1) is newer and snapshot.latest_update(2) is other
    assert snapshot.latest_update() is newer  # of any subscription: the newest timestamp
    same_time = _update(1, 2_000)
    snapshot.update(same_time)  # equal timestamps: the later arrival wins, as for feeds
    assert snapshot.latest_update(1) is same_time
    assert snapshot.latest_update(3) is None


def test_latest_update_holds_the_newest_whole_signed_update_without_reading_the_queue() -> None:
    with Simulator(seed=8) as sim:
        signers = sim.trusted_signers()
        with pl.LazerClient("t", endpoints=[sim.url], num_connections=2) as client:
            evm = client.subscribe(
                price_feed_ids=[1, 2], properties=["price", "exponent"], formats=["evm"],
                delivery_format="binary", parsed=False, channel="fixed_rate@50ms",
            )  # fmt: skip
            solana = client.subscribe(
                price_feed_ids=[6], properties=["price"], formats=["solana"],
                channel="fixed_rate@200ms",
            )  # fmt: skip
            wait_for(lambda: client.latest_update(solana) is not None, 20.0, "an update")
            latest = client.latest_update(evm)
            assert latest is not None and latest.subscription_id == evm
            assert latest.evm is not None and latest.evm.verify([signers["evm"]])
            assert [f.feed_id for f in latest.feeds] == [1, 2]
            newest_solana = client.latest_update(solana)
            assert newest_solana is not None and newest_solana.solana is not None
            # latest_update took nothing from the queue: the same update is still in it.
            seen: list[pl.StreamUpdate] = []
            while not any(u is latest for u in seen):
                seen += collect_updates(client, 1)
                assert len(seen) < 1_000, "the update kept as latest never came out of recv()"
            for update in seen:
                newest = client.latest_update(update.subscription_id)
                assert newest is not None
                assert (newest.timestamp_us or 0) >= (update.timestamp_us or 0)


def test_keeper_prints_calldata_of_trusted_fresh_updates() -> None:
    result = run([sys.executable, KEEPER, "--simulator", "--count", "2", "--interval", "0.2"])
    assert result.returncode == 0, result.stderr
    calldata = [line.split()[1] for line in result.stdout.splitlines() if "calldata" in line]
    assert len(calldata) == 2 and all(c.startswith("0x2a22999a") for c in calldata)  # EVM magic
    assert "2 checks, 0 refused" in result.stderr
    # The calldata is a whole EVM envelope that verifies against the simulator's signer.
    envelope = pl.decode_message(bytes.fromhex(calldata[0][2:]))
    assert isinstance(envelope, pl.protocol.EvmMessage)
    assert envelope.verify([Simulator(seed=1).trusted_signers()["evm"]])


@pytest.fixture(scope="module")
def replay_url() -> Iterator[str]:
    """The example recording, looping at its original pace: a steady, old, signed stream."""
    with Simulator(replay=EXAMPLE, replay_loop=True) as sim:
        yield sim.url


def test_keeper_refuses_a_stale_update_and_an_untrusted_signer(replay_url: str) -> None:
    recorded_signer = Simulator(seed="example").trusted_signers()["evm"]
    stale = run(
        [sys.executable, KEEPER, "--endpoint", replay_url, "--trusted-evm", recorded_signer,
         "--count", "1"],
        PYTH_LAZER_TOKEN="t",
    )  # fmt: skip
    assert stale.returncode == 1
    assert "REFUSED" in stale.stdout and "stale:" in stale.stdout
    assert f"signer {recorded_signer}" in stale.stdout  # the signature itself was fine
    stranger = Simulator(seed="stranger").trusted_signers()["evm"]
    untrusted = run(
        [sys.executable, KEEPER, "--endpoint", replay_url, "--trusted-evm", stranger,
         "--count", "1", "--max-age", "1e12"],
        PYTH_LAZER_TOKEN="t",
    )  # fmt: skip
    assert untrusted.returncode == 1
    assert f"untrusted signer {recorded_signer}" in untrusted.stdout


def test_keeper_on_a_replay_sends_the_recorded_envelope(replay_url: str) -> None:
    recorded_signer = Simulator(seed="example").trusted_signers()["evm"]
    result = run(
        [sys.executable, KEEPER, "--endpoint", replay_url, "--trusted-evm", recorded_signer,
         "--count", "1", "--max-age", "1e12"],
        PYTH_LAZER_TOKEN="t",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    (calldata,) = [line.split()[1] for line in result.stdout.splitlines() if "calldata" in line]
    recorded = {
        u.evm.encode().hex()
        for u in read_recording(EXAMPLE)
        if u.evm is not None and u.parsed is None  # the binary, EVM-only subscription
    }
    assert calldata[2:] in recorded
