"""The client end to end against simulators: real sockets, real threads."""

from __future__ import annotations

import logging
import threading
import time

import pytest
from client_support import (
    TOKEN,
    answers_until_settled,
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
from pylazer_sync.simulator import Simulator

PROPS = ["price", "best_bid_price", "best_ask_price", "exponent", "publisher_count"]


@pytest.mark.parametrize("delivery", ["json", "binary"])
def test_each_update_exactly_once_across_three_endpoints(delivery: str) -> None:
    with simulators(3) as sims, make_client(sims, num_connections=4) as client:
        sub = client.subscribe(
            price_feed_ids=[1, 2],
            properties=PROPS,
            channel="fixed_rate@50ms",
            formats=["solana", "evm", "leEcdsa"],
            delivery_format=delivery,
        )
        assert client.wait_connected(4, timeout=10)
        updates = collect_updates(client, 30)
        assert {u.subscription_id for u in updates} == {sub}
        # Exactly once; the order across connections is not promised (README, Guarantees).
        assert_exactly_once([u.timestamp_us or 0 for u in updates], 50_000)
        first = updates[0]
        assert [f.feed_id for f in first.feeds] == [1, 2]
        assert first.solana is not None and first.evm is not None and first.le_ecdsa is not None
        assert first.solana.verify(trusted_signers=[sims[0].solana_public_key])
        assert first.evm.verify(trusted_signers=[sims[0].evm_address])
        stats = client.stats()
        assert stats["duplicates"] > 0  # the same frames really came from several connections
        assert stats["frames"] == stats["unique"] + stats["duplicates"]
        assert stats["decode_errors"] == 0


def test_subscribed_answer_arrives_once_and_unsubscribe_stops_the_stream() -> None:
    with simulators(2) as sims, make_client(sims, num_connections=3) as client:
        seen: list[pl.Message] = []
        sub = client.subscribe(price_feed_ids=[1], properties=["price"], channel="fixed_rate@50ms")
        collect_updates(client, 3, on_message=seen.append)
        assert seen.count(pl.Subscribed(sub)) == 1
        client.unsubscribe(sub)
        for sim in sims:
            sim.wait_for_requests(1, type="unsubscribe", timeout=10)
        assert client.subscriptions() == []
        # After the unsubscribed answers, no further update of that subscription arrives.
        deadline = time.monotonic() + 10
        while True:
            msg = client.recv(timeout=max(0.0, deadline - time.monotonic()))
            if isinstance(msg, pl.Unsubscribed):
                break
        with pytest.raises(pl.RecvTimeout):
            while True:
                msg = client.recv(timeout=0.5)
                assert not isinstance(msg, pl.StreamUpdate), msg


def test_subscription_ids_are_assigned_and_subscriptions_made_before_start_are_sent() -> None:
    with simulators(1) as sims:
        client = make_client(sims, num_connections=2)
        try:
            first = client.subscribe(price_feed_ids=[1], properties=["price"])
            second = client.subscribe(
                pl.SubscribeRequest(symbols=["Crypto.ETH/USD"], properties=["price"])
            )
            assert (first, second) == (1, 2)
            with pytest.raises(pl.InvalidRequestError, match="already active"):
                client.subscribe(price_feed_ids=[1], properties=["price"], subscription_id=1)
            client.start()
            records = sims[0].wait_for_requests(4, type="subscribe", timeout=10)
            ids = sorted(r.message["subscriptionId"] for r in records if r.message)
            assert ids == [1, 1, 2, 2]  # each subscription once per connection
        finally:
            client.close()


def test_bad_subscription_parameters_fail_before_anything_is_sent() -> None:
    with simulators(1) as sims, make_client(sims, num_connections=1) as client:
        for kwargs, field in [
            ({"price_feed_ids": [], "properties": ["price"]}, "price_feed_ids"),
            ({"price_feed_ids": [1, 1], "properties": ["price"]}, "price_feed_ids"),
            ({"price_feed_ids": [1], "properties": ["price", "nope"]}, "nope"),
            ({"price_feed_ids": [1], "properties": ["price"], "channel": "fast"}, "channel"),
            (
                {"price_feed_ids": [1], "symbols": ["Crypto.BTC/USD"], "properties": ["price"]},
                "one of",
            ),
            ({"price_feed_ids": [1]}, "properties"),
        ]:
            with pytest.raises(ValueError, match=field):
                client.subscribe(**kwargs)  # type: ignore[arg-type]
        assert client.subscriptions() == []
        # A valid one goes through, and it is the only request the server ever saw.
        client.subscribe(price_feed_ids=[1], properties=["price"])
        records = sims[0].wait_for_requests(1, timeout=10)
        assert [r.type for r in records] == ["subscribe"]


def test_server_side_subscription_error_reaches_recv() -> None:
    with simulators(1) as sims, make_client(sims, num_connections=2) as client:
        # Both open first: a connection that opens after the refusal never sends it (a
        # refused subscription is forgotten).
        assert client.wait_connected(2, timeout=10)
        sub = client.subscribe(price_feed_ids=[987654], properties=["price"])
        msg = client.recv(timeout=10)
        assert isinstance(msg, pl.SubscriptionError)
        assert msg.subscription_id == sub
        assert "987654" in msg.error
        # Both connections sent the same refusal: once both are matched, nothing more came.
        assert answers_until_settled(client, barrier_id=99) == []
        refused = [
            r for r in sims[0].requests(type="subscribe") if r.message["subscriptionId"] == sub
        ]  # type: ignore[index]
        assert len(refused) == 2  # one per connection, each answered
        assert client.stats()["subscriptions_refused"] == 1


def test_recv_many_returns_batches_and_an_empty_list_on_timeout() -> None:
    with simulators(1) as sims, make_client(sims, num_connections=1) as client:
        assert client.recv_many(10, timeout=0.05) == []
        client.subscribe(price_feed_ids=[1], properties=["price"], channel="fixed_rate@50ms")
        got: list[pl.Message] = []
        deadline = time.monotonic() + 20
        while sum(isinstance(m, pl.StreamUpdate) for m in got) < 5:
            assert time.monotonic() < deadline
            batch = client.recv_many(100, timeout=5)
            assert len(batch) <= 100
            got.extend(batch)
        ts = [m.timestamp_us for m in got if isinstance(m, pl.StreamUpdate)]
        assert ts == sorted(ts) and len(set(ts)) == len(ts)
        with pytest.raises(ValueError):
            client.recv_many(0)


def test_close_stops_every_thread_and_recv_and_iteration_end() -> None:
    with simulators(2) as sims:
        baseline = thread_baseline()
        client = make_client(sims, num_connections=3).start()
        client.subscribe(price_feed_ids=[1], properties=["price"], channel="fixed_rate@50ms")
        collect_updates(client, 2)
        assert sorted(t.name for t in library_threads(baseline)) == expected_thread_names(3)
        iterated: list[pl.Message] = []
        iteration_done = threading.Event()

        def iterate() -> None:
            for msg in client:
                iterated.append(msg)
            iteration_done.set()

        reader = threading.Thread(target=iterate, name="test-reader")
        reader.start()
        wait_for(lambda: len(iterated) > 0, 10, "the iterating thread to receive")
        client.close()
        assert iteration_done.wait(10)
        reader.join(10)
        assert library_threads(baseline) == []
        with pytest.raises(pl.ClientClosed):
            client.recv(timeout=1)
        with pytest.raises(pl.ClientClosed):
            client.recv_many(10, timeout=1)
        assert list(client) == []
        client.close()  # idempotent
        assert client.closed and "closed" in repr(client)
        with pytest.raises(pl.ClientClosed):
            client.start()
        # The simulators see every connection go away.
        for sim in sims:
            sim.wait_for_connections(0, timeout=10)


def test_close_wakes_a_blocked_recv() -> None:
    with simulators(1) as sims:
        client = make_client(sims, num_connections=1).start()
        errors: list[BaseException] = []

        def blocked() -> None:
            try:
                client.recv()
            except pl.ClientClosed as exc:
                errors.append(exc)

        t = threading.Thread(target=blocked)
        t.start()
        client.close()
        t.join(10)
        assert not t.is_alive()
        assert len(errors) == 1


def test_a_dropped_client_is_closed_by_the_garbage_collector() -> None:
    import gc

    with simulators(1) as sims:
        baseline = thread_baseline()
        client = make_client(sims, num_connections=2).start()
        assert sorted(t.name for t in library_threads(baseline)) == expected_thread_names(2)
        del client
        gc.collect()
        wait_for(lambda: library_threads(baseline) == [], 10, "the client's threads to end")


def test_repr_and_stats_show_endpoints_and_states_never_the_token(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    with simulators(1) as sims, make_client(sims, num_connections=2) as client:
        assert client.wait_connected(2, timeout=10)
        text = repr(client)
        assert sims[0].url in text and "open" in text
        stats = client.stats()
        assert [c["state"] for c in stats["connections"]] == ["open", "open"]
        assert stats["open_connections"] == 2
        assert TOKEN not in text
        html = client._repr_html_()
        assert "<table>" in html and sims[0].url in html and TOKEN not in html
        assert TOKEN not in repr(stats)
        assert TOKEN not in repr(client.config)
    assert TOKEN not in caplog.text


def test_start_without_waiting_then_wait_connected() -> None:
    with simulators(1) as sims:
        client = make_client(sims, num_connections=2)
        try:
            assert client.start(wait=False) is client
            assert client.wait_connected(2, timeout=10)
        finally:
            client.close()
        assert client.wait_connected(1, timeout=0.1) is False


def test_unreachable_endpoints_give_connect_error_listing_each_failure() -> None:
    sim = Simulator(seed=1).start()
    url = sim.url
    sim.stop()  # nobody listens on that port now
    baseline = thread_baseline()
    client = pl.LazerClient(
        TOKEN, endpoints=[url], num_connections=2, backoff=pl.Backoff(initial=0.05), timeout=1.0
    )
    with pytest.raises(pl.ConnectError) as info:
        client.start(timeout=1.5)
    text = str(info.value)
    assert "connection 0" in text and "connection 1" in text and url in text
    assert "refused" in text.lower()
    assert TOKEN not in text
    assert client.closed
    wait_for(lambda: library_threads(baseline) == [], 10, "threads to end")
