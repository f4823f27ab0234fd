"""The client through faults: failover, outages, stalls, garbage, bad tokens, overflow."""

from __future__ import annotations

import logging
import threading
import time

import pytest
from client_support import (
    FAST_BACKOFF_MAX,
    TOKEN,
    assert_contiguous,
    assert_exactly_once,
    collect_updates,
    expected_thread_names,
    library_threads,
    make_client,
    simulators,
    thread_baseline,
    wait_for,
)

import pylazer_sync as pl
from pylazer_sync.client import _INBOUND_PER_CONNECTION
from pylazer_sync.connection import MAX_BATCH
from pylazer_sync.simulator import GARBAGE_KINDS, Simulator

MARGIN = 5.0  # scheduling slack on a loaded 2-core machine


def _subscribe_50ms(client: pl.LazerClient, delivery: str = "json") -> int:
    return client.subscribe(
        price_feed_ids=[1, 2],
        properties=["price", "exponent"],
        channel="fixed_rate@50ms",
        delivery_format=delivery,
    )


@pytest.mark.parametrize("abrupt", [False, True])
def test_failover_loses_no_update_and_the_endpoint_is_rejoined(abrupt: bool) -> None:
    with simulators(3) as sims, make_client(sims, num_connections=4) as client:
        sub = _subscribe_50ms(client)
        assert client.wait_connected(4, timeout=10)
        for sim in sims:
            sim.wait_for_requests(1, type="subscribe", timeout=10)
        before = collect_updates(client, 10)
        # Endpoint 0 (connections 0 and 3) goes down hard and stays down for a while.
        sims[0].refuse_connections()
        sims[0].drop_all(abrupt=abrupt)
        during = collect_updates(client, 20)
        stats = client.stats()
        assert [c["state"] != "open" for c in stats["connections"]] == [True, False, False, True]
        assert_exactly_once([u.timestamp_us or 0 for u in before + during], 50_000)
        # It comes back: both connections reconnect and subscribe again.
        subscribes_before = len(sims[0].requests(type="subscribe"))
        sims[0].accept_connections()
        sims[0].wait_for_requests(subscribes_before + 2, type="subscribe", timeout=30)
        assert client.wait_connected(4, timeout=30)
        after = collect_updates(client, 10)
        assert_exactly_once([u.timestamp_us or 0 for u in before + during + after], 50_000)
        resent = sims[0].requests(type="subscribe")[subscribes_before:]
        assert {r.message["subscriptionId"] for r in resent if r.message} == {sub}
        conns = client.stats()["connections"]
        assert conns[0]["connects"] >= 2 and conns[3]["connects"] >= 2
        assert conns[0]["disconnects"] >= 1


def test_all_endpoints_down_then_back_resumes_and_signals_once() -> None:
    downs: list[float] = []
    all_down = threading.Event()

    def on_all_down() -> None:
        downs.append(time.monotonic())
        all_down.set()

    with (
        simulators(3) as sims,
        make_client(sims, num_connections=3, on_all_down=on_all_down) as client,
    ):
        sub = _subscribe_50ms(client)
        collect_updates(client, 5)
        for sim in sims:
            sim.refuse_connections()
            sim.drop_all(abrupt=True)
        assert all_down.wait(10)
        assert client.stats()["open_connections"] == 0
        # Let a few reconnection attempts fail while everything is down.
        wait_for(
            lambda: all(
                c["connects"] == 1 and c["state"] != "open" for c in client.stats()["connections"]
            ),
            10,
            "every connection to be down",
        )
        counts = [len(s.requests(type="subscribe")) for s in sims]
        back = time.monotonic()
        for sim in sims:
            sim.accept_connections()
        # The stream resumes within one backoff step and the read timeout.
        update = collect_updates(client, 1, timeout=FAST_BACKOFF_MAX + 2.0 + MARGIN)[0]
        assert update.subscription_id == sub
        resumed = time.monotonic() - back
        for sim, before in zip(sims, counts, strict=True):
            sim.wait_for_requests(before + 1, type="subscribe", timeout=10)
        assert len(downs) == 1  # the signal fired once for the one outage
        assert client.stats()["all_down_events"] == 1
        assert resumed < FAST_BACKOFF_MAX + 2.0 + MARGIN


def test_a_stalled_connection_is_replaced_within_the_timeout() -> None:
    timeout = 1.0
    with simulators(1) as sims, make_client(sims, num_connections=2, timeout=timeout) as client:
        _subscribe_50ms(client)
        collect_updates(client, 3)
        victim = sims[0].connection_ids()[0]
        stalled_at = time.monotonic()
        sims[0].stall(victim)
        wait_for(
            lambda: any(c["disconnects"] >= 1 for c in client.stats()["connections"]),
            timeout + MARGIN,
            "the stalled connection to be dropped",
        )
        detected = time.monotonic() - stalled_at
        assert detected >= timeout * 0.9  # not before the timeout...
        assert client.wait_connected(2, timeout=FAST_BACKOFF_MAX + MARGIN)
        errors = [c["last_error"] or "" for c in client.stats()["connections"]]
        assert any("stalled" in e for e in errors), errors
        # The stream went on meanwhile and goes on now.
        collect_updates(client, 5)


@pytest.mark.parametrize("kind", sorted(GARBAGE_KINDS))
def test_garbage_frames_are_counted_and_the_stream_goes_on(kind: str) -> None:
    with simulators(1) as sims:
        baseline = thread_baseline()
        with make_client(sims, num_connections=2) as client:
            _subscribe_50ms(client, delivery="binary")
            collect_updates(client, 2)
            sent = sims[0].send_garbage(kind)  # type: ignore[arg-type]
            assert sent == 2
            others: list[pl.Message] = []
            collect_updates(client, 10, on_message=others.append)
            stats = client.stats()
            if kind == "unknown_type":
                assert any(isinstance(m, pl.UnknownMessage) for m in others)
                assert stats["decode_errors"] == 0
            else:
                errors = [m for m in others if isinstance(m, pl.UndecodableFrame)]
                assert errors and all(e.error for e in errors)
                assert stats["decode_errors"] == len(errors) >= 1
            # No thread died of it, and none was added: exactly the two readers and the dedup.
            assert sorted(t.name for t in library_threads(baseline)) == expected_thread_names(2)
            assert stats["open_connections"] == 2


def test_bad_token_fails_start_quickly_without_a_busy_loop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="pylazer_sync")
    with Simulator(seed=1, token="the-right-token") as sim:
        client = pl.LazerClient(
            TOKEN, endpoints=[sim.url], num_connections=3, backoff=pl.Backoff(initial=0.2)
        )
        started = time.monotonic()
        with pytest.raises(pl.AuthenticationError) as info:
            client.start(timeout=20)
        elapsed = time.monotonic() - started
        assert "401" in str(info.value)
        assert TOKEN not in str(info.value) and TOKEN not in repr(info.value)
        assert client.closed
        assert elapsed < 20  # it gave up on the auth answer, not on the start timeout
        refused = sim.stats()["handshakes_refused"]
        # Three connections, each refused once or a few times: no tight retry loop.
        assert isinstance(refused, int) and 3 <= refused <= 12, refused
    assert TOKEN not in caplog.text


def test_a_token_from_the_environment_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTH_LAZER_TOKEN", "env-token-abc")
    with (
        Simulator(seed=1, token="env-token-abc") as sim,
        pl.LazerClient(endpoints=[sim.url], num_connections=1) as client,
    ):
        assert client.stats()["open_connections"] == 1


@pytest.mark.parametrize("delivery", ["json", "binary"])
def test_overflow_block_holds_memory_bounded_and_loses_nothing(delivery: str) -> None:
    capacity = 20
    with (
        simulators(2) as sims,
        make_client(sims, num_connections=2, channel_capacity=capacity) as client,
    ):
        _subscribe_50ms(client, delivery)
        collect_updates(client, 1)
        # The reader stops; the buffer fills and stays at its capacity.
        wait_for(lambda: client.stats()["queue_depth"] >= capacity, 20, "the buffer to fill")

        def frames_read() -> int:
            return sum(c["frames"] for c in client.stats()["connections"])

        # The connections keep reading into the bounded inbound queue meanwhile, until it
        # is full; then they stop reading and TCP pushes back on the server.
        first = frames_read()
        wait_for(lambda: frames_read() >= first + 20, 20, "more frames to be read")
        # What the client holds: the recv() queue, and frames read but not yet taken by
        # the dedup thread, at most the inbound queue's batches of at most MAX_BATCH.
        held_bound = _INBOUND_PER_CONNECTION * 2 * MAX_BATCH
        for _ in range(20):
            stats = client.stats()
            held = frames_read() - stats["frames"]
            assert stats["queue_depth"] == capacity
            assert stats["dropped"] == 0
            assert stats["inbound_depth"] <= _INBOUND_PER_CONNECTION * 2
            assert 0 <= held <= held_bound, (held, held_bound)
        # Reading again: everything comes, nothing missing, nothing twice.
        updates = collect_updates(client, capacity + 20)
        assert_exactly_once([u.timestamp_us or 0 for u in updates], 50_000)


def test_overflow_drop_oldest_keeps_the_newest_and_counts_drops(
    caplog: pytest.LogCaptureFixture,
) -> None:
    capacity = 5
    with (
        simulators(1) as sims,
        make_client(
            sims, num_connections=1, channel_capacity=capacity, overflow="drop_oldest"
        ) as client,
    ):
        _subscribe_50ms(client)
        collect_updates(client, 1)
        wait_for(lambda: client.stats()["dropped"] >= 10, 20, "drops")
        batch = client.recv_many(100, timeout=1)
        stamps = [m.timestamp_us or 0 for m in batch if isinstance(m, pl.StreamUpdate)]
        assert len(batch) <= capacity
        assert_contiguous(stamps, 50_000)
        # The buffered updates are the freshest: the newest is at most a few ticks old.
        assert time.time() * 1e6 - stamps[-1] < 1_000_000
        stats = client.stats()
        assert stats["dropped"] >= 10
        assert stats["unique"] >= stats["dropped"] + len(batch)
    assert "dropped" in caplog.text  # every drop is logged (rate-limited) too
