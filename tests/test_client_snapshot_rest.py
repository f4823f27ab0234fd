"""The latest-value snapshot and the REST helpers, against the simulator."""

from __future__ import annotations

import time

import pytest
from client_support import TOKEN, collect_updates, make_client, simulators, wait_for

import pylazer_sync as pl
from pylazer_sync.simulator import Simulator


def test_latest_stays_fresh_without_recv_under_drop_oldest() -> None:
    with (
        simulators(1) as sims,
        make_client(sims, num_connections=1, overflow="drop_oldest", channel_capacity=2) as client,
    ):
        assert client.latest(1) is None
        client.subscribe(
            price_feed_ids=[1, 2], properties=["price", "exponent"], channel="fixed_rate@50ms"
        )
        wait_for(lambda: client.stats()["dropped"] >= 5, 20, "the unread buffer to overflow")
        # Nobody called recv(), yet the snapshot follows the stream.
        first = client.latest(1)
        assert first is not None
        wait_for(
            lambda: (
                (latest := client.latest(1)) is not None
                and latest.timestamp_us > first.timestamp_us
            ),
            10,
            "a newer snapshot",
        )
        latest = client.latest(1)
        assert latest is not None
        assert time.time() * 1e6 - latest.timestamp_us < 2_000_000
        assert latest.real("price") == latest.feed.real("price") is not None
        assert set(client.latest_prices()) == {1, 2}


def test_snapshot_only_mode_queues_no_updates_but_keeps_answers() -> None:
    with simulators(1) as sims, make_client(sims, num_connections=1, snapshot_only=True) as client:
        sub = client.subscribe(price_feed_ids=[1], properties=["price"], channel="fixed_rate@50ms")
        assert client.recv(timeout=10) == pl.Subscribed(sub)
        wait_for(lambda: client.stats()["unique"] >= 6, 20, "updates")
        assert client.latest(1) is not None
        with pytest.raises(pl.RecvTimeout):
            client.recv(timeout=0.3)
        assert client.stats()["dropped"] == 0


def test_snapshot_keeps_the_newest_across_subscriptions() -> None:
    """Two subscriptions carry feed 1 at different rates: after every update read, the
    snapshot of each feed is at least as new as the newest update read for it, whichever
    subscription brought it (the 1 s subscription's ticks never set it back)."""
    with simulators(1) as sims, make_client(sims, num_connections=1) as client:
        fast = client.subscribe(
            price_feed_ids=[1, 2], properties=["price"], channel="fixed_rate@50ms"
        )
        slow = client.subscribe(
            price_feed_ids=[1], properties=["price"], channel="fixed_rate@1000ms"
        )
        newest: dict[int, int] = {}
        slow_updates = 0
        while slow_updates < 2:
            (update,) = collect_updates(client, 1, timeout=30)
            slow_updates += update.subscription_id == slow
            for feed in update.feeds:
                newest[feed.feed_id] = max(newest.get(feed.feed_id, 0), update.timestamp_us or 0)
            for feed_id, ts in newest.items():
                latest = client.latest(feed_id)
                assert latest is not None and latest.timestamp_us >= ts, (feed_id, latest, ts)
        assert client.latest(2).subscription_id == fast  # type: ignore[union-attr]
        assert client.latest(1).subscription_id in (fast, slow)  # type: ignore[union-attr]


def test_rest_latest_price_price_and_symbols() -> None:
    with (
        Simulator(seed=5, token=TOKEN) as sim,
        pl.LazerClient(
            TOKEN, endpoints=[sim.url], num_connections=1, rest_url=sim.rest_url
        ) as client,
    ):
        btc = client.symbols(query="BTC/USD")
        assert any(s.symbol == "Crypto.BTC/USD" for s in btc)
        crypto = client.symbols(asset_type="crypto")
        assert crypto and all(s.asset_type == "crypto" for s in crypto)
        update = client.latest_price(
            symbols=["Crypto.BTC/USD"], properties=["price", "exponent"], formats=["solana"]
        )
        assert isinstance(update, pl.StreamUpdate)
        assert update.subscription_id == 0
        assert update.feeds[0].real("price") is not None
        assert update.solana is not None
        assert update.solana.verify(trusted_signers=[sim.solana_public_key])
        at = int(time.time() * 1e6) - 10_000_000
        past = client.price(
            at, price_feed_ids=[1], properties=["price"], channel="fixed_rate@200ms"
        )
        assert past.timestamp_us is not None and at - 200_000 < past.timestamp_us <= at
        with pytest.raises(pl.InvalidRequestError):
            client.latest_price(price_feed_ids=[], properties=["price"])  # refused before sending
        with pytest.raises(pl.InvalidRequestError, match="400"):
            client.latest_price(price_feed_ids=[424242], properties=["price"])  # refused by server


def test_rest_bad_token_and_unreachable_map_to_library_errors() -> None:
    with Simulator(seed=5, token="right") as sim:
        rest = pl.RestClient(
            "wrong-token-xyz", rest_url=sim.rest_url or "", history_url=sim.rest_url or ""
        )
        with pytest.raises(pl.AuthenticationError) as info:
            rest.symbols()
        assert "wrong-token-xyz" not in str(info.value)
        url = sim.rest_url or ""
    with pytest.raises(pl.RestError):
        pl.RestClient("t", rest_url=url, history_url=url, timeout=2).symbols()
    with pytest.raises(pl.InvalidRequestError, match="clear text"):
        pl.RestClient("t", rest_url="http://example.com")
