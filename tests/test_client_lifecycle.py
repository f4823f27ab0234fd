"""The client's life cycle: answers, start/close from anywhere, threads, clear errors.

Each test here failed before the fixes of issue 10 (a code review and a new user's trial).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from client_support import (
    ANSWER_TYPES,
    FAST_BACKOFF,
    TOKEN,
    answers_until_settled,
    collect_updates,
    expected_thread_names,
    library_threads,
    make_client,
    simulators,
    thread_baseline,
    wait_for,
)

import pylazer_sync as pl
from pylazer_sync.simulator import Simulator


def _next_answer(client: pl.LazerClient, timeout: float = 20.0) -> pl.Message:
    deadline = time.monotonic() + timeout
    while True:
        message = client.recv(timeout=max(0.01, deadline - time.monotonic()))
        if isinstance(message, ANSWER_TYPES):
            return message


def test_every_answer_to_every_call_arrives_exactly_once() -> None:
    with simulators(3) as sims, make_client(sims, num_connections=3) as client:
        assert client.wait_connected(3, timeout=10)
        subscription = {"price_feed_ids": [1], "properties": ["price"], "subscription_id": 7}
        client.subscribe(**subscription)  # type: ignore[arg-type]
        assert _next_answer(client) == pl.Subscribed(7)
        client.unsubscribe(7)
        assert _next_answer(client) == pl.Unsubscribed(7)
        client.subscribe(**subscription)  # type: ignore[arg-type]  # the same bytes as the first
        assert _next_answer(client) == pl.Subscribed(7)
        # A refusal, twice: the refused subscription is forgotten, so the id is free again.
        for _ in range(2):
            client.subscribe(price_feed_ids=[987_654], properties=["price"], subscription_id=8)
            answer = _next_answer(client)
            assert isinstance(answer, pl.SubscriptionError) and answer.subscription_id == 8
            wait_for(lambda: client.stats()["awaiting_answers"] == 0, 20, "the refusals")
        assert [s.subscription_id for s in client.subscriptions()] == [7]
        stats = client.stats()
        assert stats["subscriptions"] == 1 and stats["subscriptions_refused"] == 2
        # Nothing more arrives for any of those calls: each answer came exactly once.
        assert answers_until_settled(client, barrier_id=99) == []
        assert client.stats()["duplicates"] >= 2 * 5  # the other connections' copies


def test_a_reconnect_resubscribes_silently_at_any_age() -> None:
    """Re-subscriptions after reconnects answer the same subscribe() call: nothing new
    reaches recv(), even once the raw-frame dedup has long forgotten the first answer."""
    with simulators(2) as sims, make_client(sims, num_connections=2, dedup_ttl=0.2) as client:
        sub = client.subscribe(price_feed_ids=[1], properties=["price"], channel="fixed_rate@50ms")
        assert _next_answer(client) == pl.Subscribed(sub)
        collect_updates(client, 10)  # 0.5 s: far past dedup_ttl
        for sim in sims:
            sim.drop_all(abrupt=True)
        wait_for(
            lambda: all(c["connects"] >= 2 for c in client.stats()["connections"]),
            20,
            "both connections to reconnect",
        )
        for sim in sims:
            sim.wait_for_requests(2, type="subscribe", timeout=20)  # re-sent on each
        assert answers_until_settled(client, barrier_id=99) == []
        collect_updates(client, 3)  # and the subscription lives on


def test_close_from_the_on_all_down_callback_stops_everything(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="pylazer_sync")
    errors: list[BaseException] = []
    closed_in_callback = threading.Event()
    clients: list[pl.LazerClient] = []

    def on_all_down() -> None:
        try:
            clients[0].close()
        except BaseException as exc:
            errors.append(exc)
        closed_in_callback.set()

    with simulators(1) as sims:
        baseline = thread_baseline()
        client = make_client(sims, num_connections=2, on_all_down=on_all_down)
        clients.append(client)
        client.start()
        assert client.wait_connected(2, timeout=10)
        sims[0].refuse_connections()
        sims[0].drop_all(abrupt=True)
        assert closed_in_callback.wait(20)
        assert errors == []
        assert client.closed
        wait_for(lambda: library_threads(baseline) == [], 10, "every thread to end")
    assert "callback failed" not in caplog.text
    assert "cannot join" not in caplog.text


@contextlib.contextmanager
def _hanging_endpoint() -> Iterator[str]:
    """A loopback listener whose accept queue is full: a new TCP connect to it hangs."""
    listener = socket.socket()
    fillers: list[socket.socket] = []
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        for _ in range(8):
            filler = socket.socket()
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(("127.0.0.1", port))
            fillers.append(filler)
        probe = socket.socket()
        probe.settimeout(0.5)
        with pytest.raises(OSError):  # the premise: a connect really hangs there
            probe.connect(("127.0.0.1", port))
        probe.close()
        yield f"ws://127.0.0.1:{port}/v1/stream"
    finally:
        for s in [*fillers, listener]:
            s.close()


def test_close_interrupts_a_hanging_tcp_connect_and_no_thread_per_attempt() -> None:
    with _hanging_endpoint() as url:
        baseline = thread_baseline()
        client = pl.LazerClient(TOKEN, endpoints=[url], num_connections=2, timeout=60.0)
        client.start(wait=False)
        wait_for(
            lambda: all(c["state"] == "connecting" for c in client.stats()["connections"]),
            10,
            "both connections to be connecting",
        )
        # While both connect: one thread per connection and the dedup thread, no more
        # (each attempt used to start a pylazer-handshake-N timer thread).
        assert sorted(t.name for t in library_threads(baseline)) == expected_thread_names(2)
        started = time.monotonic()
        client.close()
        took = time.monotonic() - started
        # The connect timeout is 60 s: close() did not wait for it.
        assert took < 10, f"close() took {took:.1f} s"
        assert library_threads(baseline) == []
        # A clean close is not a fault: no connection reports an error.
        assert [c["last_error"] for c in client.stats()["connections"]] == [None, None]


def _start_racing_close(client: pl.LazerClient) -> list[BaseException | None]:
    """start() in another thread and close() here, released at the same instant."""
    barrier = threading.Barrier(2)
    outcome: list[BaseException | None] = []

    def start() -> None:
        barrier.wait()
        try:
            client.start(wait=False)
            outcome.append(None)
        except pl.ClientClosed as exc:
            outcome.append(exc)

    starter = threading.Thread(target=start, name="test-starter")
    starter.start()
    barrier.wait()
    client.close()
    starter.join(10)
    assert not starter.is_alive()
    return outcome


def test_close_racing_start_never_leaves_a_thread_behind() -> None:
    with _hanging_endpoint() as url:
        baseline = thread_baseline()
        for _ in range(25):
            client = pl.LazerClient(TOKEN, endpoints=[url], num_connections=2, timeout=60.0)
            outcome = _start_racing_close(client)
            # Whoever won, once both returned no thread of the client is left.
            assert library_threads(baseline) == []
            assert client.closed and len(outcome) == 1


def test_a_never_started_client_fails_fast_and_says_how_to_start() -> None:
    with simulators(1) as sims:
        client = make_client(sims)
        client.subscribe(price_feed_ids=[1], properties=["price"])  # allowed before start()
        for call in (
            lambda: client.recv(),
            lambda: client.recv(timeout=3),
            lambda: client.recv_many(),
            lambda: client.recv_many(timeout=None),
            lambda: iter(client),
        ):
            with pytest.raises(pl.ClientNotStarted, match=r"client\.start\(\)") as info:
                call()
            assert isinstance(info.value, pl.LazerError)
        client.close()
        with pytest.raises(pl.ClientClosed):
            client.recv(timeout=1)


def test_recv_many_takes_what_is_queued_without_waiting() -> None:
    """By default recv_many() never blocks: a notebook cell returns at once."""
    with simulators(1) as sims, make_client(sims, num_connections=1) as client:
        results: list[list[pl.Message]] = []
        reader = threading.Thread(target=lambda: results.append(client.recv_many()))
        reader.start()
        reader.join(10)
        assert not reader.is_alive() and results == [[]]  # nothing subscribed: nothing queued
        client.subscribe(price_feed_ids=[1], properties=["price"], channel="fixed_rate@50ms")
        wait_for(lambda: client.stats()["queue_depth"] >= 3, 20, "a few queued messages")
        taken = client.recv_many()
        assert len(taken) >= 3 and isinstance(taken[0], pl.Subscribed)


@pytest.mark.parametrize("timeout", ["1", float("nan"), -1, True])
def test_bad_timeouts_are_refused_with_a_clear_error(timeout: object) -> None:
    with simulators(1) as sims, make_client(sims, num_connections=1) as client:
        for call in (client.recv, lambda t: client.recv_many(timeout=t)):
            with pytest.raises(pl.InvalidRequestError, match="timeout"):
                call(timeout)  # type: ignore[operator]
        with pytest.raises(pl.InvalidRequestError, match="max_messages"):
            client.recv_many(max_messages="10")  # type: ignore[arg-type]


def test_authentication_failure_is_decided_by_each_connections_last_attempt() -> None:
    """Retries so fast that connections are almost always mid-attempt: the refusal is
    still seen, from each connection's last finished attempt (it used to need every
    connection to show 401 at the same instant, and timed out as a ConnectError)."""
    with Simulator(seed=1, token="the-right-token") as sim:
        client = pl.LazerClient(
            TOKEN,
            endpoints=[sim.url],
            num_connections=4,
            backoff=pl.Backoff(initial=0.001, multiplier=1.0, max_interval=0.001),
            start_timeout=30,
        )
        with pytest.raises(pl.AuthenticationError, match="HTTP 401"):
            client.start()
        assert client.closed


def test_a_clean_close_reports_no_fault() -> None:
    with simulators(1) as sims:
        client = make_client(sims, num_connections=2, backoff=FAST_BACKOFF).start()
        client.subscribe(price_feed_ids=[1], properties=["price"], channel="fixed_rate@50ms")
        collect_updates(client, 2)
        client.close()
        stats = client.stats()
        assert [c["last_error"] for c in stats["connections"]] == [None, None]
        assert [c["state"] for c in stats["connections"]] == ["closed", "closed"]


def test_stats_from_another_thread_never_disturbs_the_dedup_thread(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """stats() reads the dedup cache's size; with cachetools 8, len() of a TTLCache
    expires entries, which changed the cache under the dedup thread (a KeyError there,
    and frames != unique + duplicates). Many expiries and a stats() loop make it likely."""
    caplog.set_level(logging.ERROR, logger="pylazer_sync")
    stop = threading.Event()
    calls = [0]

    def hammer(client: pl.LazerClient) -> None:
        while not stop.is_set():
            client.stats()
            calls[0] += 1

    with simulators(2) as sims, make_client(sims, num_connections=3, dedup_ttl=0.01) as client:
        client.subscribe(price_feed_ids=[1, 2], properties=["price"], channel="real_time")
        reader = threading.Thread(target=hammer, args=(client,), name="test-stats")
        reader.start()
        try:
            collect_updates(client, 300, timeout=60)
        finally:
            stop.set()
            reader.join(10)
        assert calls[0] > 100
        for sim in sims:
            sim.refuse_connections()
            sim.drop_all(abrupt=True)
        wait_for(lambda: client.stats()["open_connections"] == 0, 20, "all down")

        def drained() -> bool:
            s = client.stats()
            return sum(c["frames"] for c in s["connections"]) == s["frames"]

        wait_for(drained, 20, "the pipeline to drain")
        stats = client.stats()
        assert stats["frames"] == stats["unique"] + stats["duplicates"], stats
    assert "unexpected error" not in caplog.text


def test_reading_the_dedup_cache_size_never_changes_the_cache() -> None:
    """The deterministic half of the test above: the size read by stats() must not
    expire entries (that is the dedup thread's job, and only its)."""
    import queue

    from pylazer_sync.buffer import MessageBuffer
    from pylazer_sync.dedup import Deduplicator
    from pylazer_sync.snapshot import LatestSnapshot
    from pylazer_sync.subscriptions import SubscriptionRegistry

    dedup = Deduplicator(
        queue.Queue(),
        MessageBuffer(10, "block"),
        ["ws://127.0.0.1:1/v1/stream"],
        ttl=0.001,
        size=10,
        snapshot=LatestSnapshot(),
        subscriptions=SubscriptionRegistry(),
    )
    data = b"not json"
    assert isinstance(dedup._unique(0, 1, True, data, hash(data)), pl.UndecodableFrame)
    inserted = time.monotonic()
    wait_for(lambda: time.monotonic() > inserted + 0.01, 1, "the entry to expire")
    assert [dedup.cache_size for _ in range(3)] == [1, 1, 1]  # reading expires nothing
    dedup._seen.tick()  # the dedup thread's own per-batch step does
    assert dedup.cache_size == 0
