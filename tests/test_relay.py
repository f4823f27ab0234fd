"""The relay and its consumer against the machine's Redis and in-process simulators:
exact frames, each update once from two relays, the LazerClient interface of the
consumer, retention, stable subscription ids.

Every test uses a stream name of its own and deletes it (with the relay's counter and
seen-keys) at the end. Faults, errors and secrets: test_relay_faults.py; relays in
processes of their own: test_relay_e2e.py.
"""

from __future__ import annotations

import collections
import datetime as dt
import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from client_support import FAST_BACKOFF, TOKEN, make_client, simulators, wait_for
from relay_support import SHARED_REDIS_URL, cleaned_stream, raw_redis, require_redis

import pylazer_sync as pl
from pylazer_sync.relay import Relay, RelayConsumer, stable_subscription_id
from pylazer_sync.relay._redis import RedisStore
from pylazer_sync.relay.entries import OutgoingEntry
from pylazer_sync.relay.store import Retention

# Two subscriptions: JSON text frames with signed envelopes, and binary frames.
JSON_SUB: dict[str, Any] = {
    "price_feed_ids": [1, 2],
    "properties": ["price", "exponent", "bestBidPrice"],
    "channel": "fixed_rate@50ms",
    "formats": ["solana", "evm"],
}
BINARY_SUB: dict[str, Any] = {
    "price_feed_ids": [1, 6],
    "properties": ["price", "exponent"],
    "channel": "real_time",
    "formats": ["leEcdsa"],
    "delivery_format": "binary",
    "parsed": False,
}
SIM_RATE_HZ = 200.0  # the real_time channel: enough updates to race, light on 2 cores


def stable_request(fields: dict[str, Any]) -> pl.SubscribeRequest:
    request = pl.SubscribeRequest(**fields)
    return request.with_id(stable_subscription_id(request))


@pytest.fixture
def stream(request: pytest.FixtureRequest) -> Iterator[str]:
    require_redis()
    label = re.sub(r"[^A-Za-z0-9]+", "-", request.node.name)[:40]
    with cleaned_stream(SHARED_REDIS_URL, label) as name:
        yield name


def make_relay(sims: Any, stream: str, **kwargs: Any) -> Relay:
    options: dict[str, Any] = {
        "token": TOKEN,
        "endpoints": [s.url for s in sims],
        "num_connections": len(sims),
        "timeout": 2.0,
        "backoff": FAST_BACKOFF,
        "redis_url": SHARED_REDIS_URL,
        "stream": stream,
    }
    options.update(kwargs)
    return Relay(**options)


def collect(source: Any, count: int, timeout: float = 20.0) -> list[pl.StreamUpdate]:
    """``count`` stream updates from a client or consumer (anything else fails the test)."""
    deadline = time.monotonic() + timeout
    out: list[pl.StreamUpdate] = []
    while len(out) < count:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"only {len(out)} of {count} updates within {timeout} s"
        for message in source.recv_many(1000, timeout=remaining):
            if isinstance(message, pl.StreamUpdate):
                out.append(message)
            elif not isinstance(message, (pl.Subscribed,)):
                raise AssertionError(f"unexpected message {message!r}")
    return out


def by_subscription(updates: list[pl.StreamUpdate]) -> dict[int, list[pl.StreamUpdate]]:
    out: dict[int, list[pl.StreamUpdate]] = collections.defaultdict(list)
    for u in updates:
        out[u.subscription_id].append(u)
    return out


def common_window(a: list[pl.StreamUpdate], b: list[pl.StreamUpdate]) -> tuple[int, int]:
    """The timestamps both lists cover (the first and last few left out: start/stop edges)."""
    ts_a = sorted(u.timestamp_us or 0 for u in a)
    ts_b = sorted(u.timestamp_us or 0 for u in b)
    return max(ts_a[2], ts_b[2]), min(ts_a[-3], ts_b[-3])


def frames_in(updates: list[pl.StreamUpdate], lo: int, hi: int) -> list[bytes]:
    return sorted(u.frame or b"" for u in updates if lo <= (u.timestamp_us or 0) <= hi)


# -- stable subscription ids ------------------------------------------------------------


def test_stable_subscription_id_depends_on_the_subscription_only() -> None:
    a = pl.SubscribeRequest(**JSON_SUB)
    same = pl.SubscribeRequest(
        **{**JSON_SUB, "properties": ["price", "exponent", "best_bid_price"]}
    )
    other = pl.SubscribeRequest(**{**JSON_SUB, "price_feed_ids": [1, 3]})
    ids = {stable_subscription_id(r) for r in (a, same, a.with_id(7))}
    assert len(ids) == 1  # snake_case or wire names, and any id already set: the same
    assert stable_subscription_id(other) not in ids
    assert all(1 <= i < 2**53 for i in ids | {stable_subscription_id(other)})


def test_relay_subscribe_uses_the_stable_id_and_keeps_an_explicit_one(stream: str) -> None:
    with simulators(1, rate_hz=SIM_RATE_HZ, rest_port=None) as sims:
        relay = make_relay(sims, stream)
        try:
            assert relay.subscribe(**JSON_SUB) == stable_subscription_id(
                pl.SubscribeRequest(**JSON_SUB)
            )
            assert relay.subscribe(**{**BINARY_SUB, "subscription_id": 42}) == 42
            assert [r.subscription_id for r in relay.client.subscriptions()][1] == 42
        finally:
            relay.close()


# -- exact frames ----------------------------------------------------------------------


def test_consumers_get_the_clients_frames_byte_for_byte_and_signatures_verify(
    stream: str,
) -> None:
    """One relay, a consumer, and a direct client on the same endpoints: over the window
    both cover, the consumer's frames are the direct client's, in both frame kinds, each
    once; its updates equal the client's and their signatures verify."""
    with simulators(2, rate_hz=SIM_RATE_HZ, rest_port=None) as sims:
        direct = make_client(sims, num_connections=2)
        relay = make_relay(sims, stream)
        consumer = RelayConsumer(SHARED_REDIS_URL, stream, start="0")
        try:
            for fields in (JSON_SUB, BINARY_SUB):
                direct.subscribe(stable_request(fields))
                relay.subscribe(**fields)
            direct.start()
            relay.start()
            consumer.start()
            got = collect(consumer, 300)
            newest = {
                k: max(u.timestamp_us or 0 for u in v) for k, v in by_subscription(got).items()
            }
            seen: list[pl.StreamUpdate] = []

            def caught_up() -> bool:
                batch = direct.recv_many(1000, timeout=0.1)
                seen.extend(m for m in batch if isinstance(m, pl.StreamUpdate))
                have = by_subscription(seen)
                return all(
                    k in have and max(u.timestamp_us or 0 for u in have[k]) >= ts
                    for k, ts in newest.items()
                )

            wait_for(caught_up, 20.0, "the direct client to reach the consumer's last update")
        finally:
            consumer.close()
            relay.close()
            direct.close()
    got_by_sub, seen_by_sub = by_subscription(got), by_subscription(seen)
    assert (
        set(got_by_sub)
        == set(seen_by_sub)
        == {stable_subscription_id(pl.SubscribeRequest(**f)) for f in (JSON_SUB, BINARY_SUB)}
    )
    counts = collections.Counter(u.frame for u in got)
    assert max(counts.values()) == 1, "a frame was delivered twice"
    for sub_id, ours in got_by_sub.items():
        lo, hi = common_window(ours, seen_by_sub[sub_id])
        assert frames_in(ours, lo, hi) == frames_in(seen_by_sub[sub_id], lo, hi)
        assert len(frames_in(ours, lo, hi)) >= 5
    direct_by_frame = {u.frame: u for u in seen}
    kinds = set()
    for u in got:
        kinds.add(u.frame_is_text)
        if u.frame in direct_by_frame:
            assert u == direct_by_frame[u.frame]
        if u.solana is not None:
            assert u.solana.verify(trusted_signers=[sims[0].solana_public_key])
            assert u.evm is not None and u.evm.verify(trusted_signers=[sims[0].evm_address])
        if u.le_ecdsa is not None:
            assert u.le_ecdsa.verify(trusted_signers=[sims[0].le_ecdsa_public_key])
    assert kinds == {True, False}


def test_entries_hold_the_raw_frame_and_fields_to_inspect(stream: str) -> None:
    with simulators(1, rate_hz=SIM_RATE_HZ, rest_port=None) as sims:
        relay = make_relay(sims, stream)
        relay.subscribe(**JSON_SUB)
        with relay, RelayConsumer(SHARED_REDIS_URL, stream, start="0") as consumer:
            update = collect(consumer, 1)[0]
            entry_id = consumer.position
    r = raw_redis(SHARED_REDIS_URL)
    ((got_id, fields),) = r.xrange(stream, entry_id, entry_id)
    assert got_id.decode() == entry_id
    assert fields[b"frame"] == update.frame
    assert fields[b"text"] == b"1"
    assert int(fields[b"ts"]) == update.timestamp_us
    assert int(fields[b"sub"]) == update.subscription_id
    assert int(fields[b"seq"]) >= 1
    assert set(fields) == {b"frame", b"text", b"ts", b"sub", b"seq"}
    # The seen-key of that frame exists, with a TTL (seen_ttl, 120 s by default).
    seen_keys = list(r.scan_iter(match=f"{{{stream}}}:seen:*", count=1000))
    assert seen_keys and 0 < r.pttl(seen_keys[0]) <= 120_000


# -- high availability: two relays, each update once ------------------------------------


def test_two_relays_on_the_same_subscriptions_write_each_update_once(stream: str) -> None:
    """Two relays (each its own client) race on every update; the stream holds each once,
    numbered 1..n without a gap, and both relays wrote some of it."""
    with simulators(2, rate_hz=SIM_RATE_HZ, rest_port=None) as sims:
        relays = [make_relay(sims, stream) for _ in range(2)]
        try:
            for relay in relays:
                relay.subscribe(**BINARY_SUB)
                relay.subscribe(**JSON_SUB)  # the other order in the other relay would do too
            for relay in relays:
                relay.start()
            wait_for(
                lambda: all(r.stats()["duplicates"] >= 50 for r in relays),
                30.0,
                "both relays to have met the other's appends",
            )
        finally:
            for relay in relays:
                relay.close()
    stats = [r.stats() for r in relays]
    entries = raw_redis(SHARED_REDIS_URL).xrange(stream)
    frames = collections.Counter(fields[b"frame"] for _, fields in entries)
    assert max(frames.values()) == 1, "an update was written twice"
    assert [int(fields[b"seq"]) for _, fields in entries] == list(range(1, len(entries) + 1))
    assert sum(s["appended"] for s in stats) == len(entries)
    for s in stats:
        assert s["appended"] > 0 and s["unsent"] == 0 and s["dropped"] == 0
        assert s["updates"] == s["appended"] + s["duplicates"] + s["expired"] + s["backlog"]


# -- the consumer: LazerClient's interface ------------------------------------------------


def test_consumer_has_the_clients_interface(stream: str) -> None:
    with simulators(1, rate_hz=SIM_RATE_HZ, rest_port=None) as sims:
        relay = make_relay(sims, stream)
        relay.subscribe(**JSON_SUB)
        with relay:
            consumer = RelayConsumer(SHARED_REDIS_URL, stream)
            assert "not started" in repr(consumer)
            with pytest.raises(pl.ClientNotStarted):
                consumer.recv(timeout=0.1)
            with pytest.raises(pl.ClientNotStarted):
                iter(consumer)
            with consumer:
                first = consumer.recv(timeout=10.0)
                assert isinstance(first, pl.StreamUpdate)
                assert len(consumer.recv_many(50, timeout=10.0)) >= 1
                for i, message in enumerate(consumer):
                    assert isinstance(message, pl.StreamUpdate)
                    if i == 3:
                        break
                latest = consumer.latest(1)
                assert latest is not None and latest.feed_id == 1
                assert set(consumer.latest_prices()) == {1, 2}
                assert consumer.latest(999) is None
                stats = consumer.stats()
                assert stats["entries"] == stats["delivered"] + stats["filtered"]
                assert stats["connected"] and stats["decode_errors"] == 0
                assert stats["position"] == consumer.position
            assert consumer.closed
            with pytest.raises(pl.ClientClosed):
                consumer.recv(timeout=1.0)
            assert list(consumer) == []
            assert not [t for t in threading.enumerate() if t.name == "pylazer-relay-consumer"]


def test_recv_times_out_as_the_client_does(stream: str) -> None:
    require_redis()
    with RelayConsumer(SHARED_REDIS_URL, stream) as consumer:
        with pytest.raises(pl.RecvTimeout):
            consumer.recv(timeout=0.3)
        assert consumer.recv_many(10, timeout=0.3) == []
        with pytest.raises(pl.InvalidRequestError):
            consumer.recv_many(0)


def test_a_new_consumer_resumes_after_the_position_of_the_last_without_gap_or_duplicate(
    stream: str,
) -> None:
    with simulators(1, rate_hz=SIM_RATE_HZ, rest_port=None) as sims:
        relay = make_relay(sims, stream)
        relay.subscribe(**BINARY_SUB)
        with relay:
            with RelayConsumer(SHARED_REDIS_URL, stream, start="0") as first:
                before = collect(first, 40)
                position = first.position
            assert position is not None
            with RelayConsumer(SHARED_REDIS_URL, stream, start=position) as second:
                after = collect(second, 40)
                assert second.stats()["missed"] == 0
    seqs = [int(f[b"seq"]) for _, f in raw_redis(SHARED_REDIS_URL).xrange(stream)]
    assert seqs == list(range(1, len(seqs) + 1))
    read = before + after  # in order, each entry once: the second began where the first ended
    assert [u.frame for u in read] == [
        f[b"frame"] for _, f in raw_redis(SHARED_REDIS_URL).xrange(stream, count=len(read))
    ]


def test_start_positions_new_only_everything_and_from_a_time(stream: str) -> None:
    store = RedisStore(SHARED_REDIS_URL, stream)
    store.check(writing=True)

    def append(n: int, start: int) -> None:
        entries = [
            OutgoingEntry(f"{start + i:032x}", b"x" * 12, False, start + i, 1) for i in range(n)
        ]
        store.append(entries, 60.0, Retention())

    append(5, 0)
    r = raw_redis(SHARED_REDIS_URL)
    last_ms = int(r.xrevrange(stream, count=1)[0][0].split(b"-")[0])
    middle = dt.datetime.fromtimestamp((last_ms + 1) / 1000, dt.timezone.utc)

    def redis_ms() -> int:
        seconds, micros = r.time()
        return int(seconds) * 1000 + int(micros) // 1000

    # Entry ids are Redis's clock in ms: the next entries must come after the middle.
    wait_for(lambda: redis_ms() > last_ms + 1, 5.0, "Redis's clock to pass the middle")
    with RelayConsumer(SHARED_REDIS_URL, stream, start="$") as new_only:
        append(3, 100)
        with RelayConsumer(SHARED_REDIS_URL, stream, start="0") as everything:
            assert len(collect_undecodable(everything, 8)) == 8
        with RelayConsumer(SHARED_REDIS_URL, stream, start=middle) as from_time:
            assert len(collect_undecodable(from_time, 3)) == 3
            with pytest.raises(pl.RecvTimeout):
                from_time.recv(timeout=0.3)
        assert len(collect_undecodable(new_only, 3)) == 3
    store.close()


def collect_undecodable(consumer: RelayConsumer, count: int) -> list[pl.UndecodableFrame]:
    """The entries of test_start_positions carry frames that do not decode: each arrives
    as a UndecodableFrame naming the entry (and is counted)."""
    out: list[pl.UndecodableFrame] = []
    deadline = time.monotonic() + 10.0
    while len(out) < count:
        message = consumer.recv(timeout=max(0.01, deadline - time.monotonic()))
        assert isinstance(message, pl.UndecodableFrame) and "entry" in message.endpoint
        out.append(message)
    assert consumer.stats()["decode_errors"] >= count
    return out


def test_consumer_filters_by_subscription_and_by_feed(stream: str) -> None:
    json_id = stable_subscription_id(pl.SubscribeRequest(**JSON_SUB))
    with simulators(1, rate_hz=SIM_RATE_HZ, rest_port=None) as sims:
        relay = make_relay(sims, stream)
        relay.subscribe(**JSON_SUB)
        relay.subscribe(**BINARY_SUB)
        with (
            relay,
            RelayConsumer(
                SHARED_REDIS_URL, stream, start="0", subscription_ids=[json_id]
            ) as by_sub,
            RelayConsumer(SHARED_REDIS_URL, stream, start="0", feed_ids=[6]) as by_feed,
        ):
            assert {u.subscription_id for u in collect(by_sub, 10)} == {json_id}
            assert all(u.feed(6) is not None for u in collect(by_feed, 30))
            wait_for(lambda: by_sub.stats()["filtered"] > 0, 10.0, "filtered entries")
            assert by_feed.stats()["filtered"] > 0
    with pytest.raises(pl.InvalidRequestError):
        RelayConsumer(SHARED_REDIS_URL, stream, feed_ids=["BTC"])  # type: ignore[list-item]


# -- retention ---------------------------------------------------------------------------


def _filler(n: int, offset: int = 0, size: int = 200) -> list[OutgoingEntry]:
    return [
        OutgoingEntry(f"{offset + i:032x}", bytes(size), False, offset + i, 1) for i in range(n)
    ]


def test_retention_by_length_keeps_at_least_max_len_and_trims_the_rest(stream: str) -> None:
    store = RedisStore(SHARED_REDIS_URL, stream)
    store.check(writing=True)
    for k in range(10):
        result = store.append(_filler(100, k * 100), 60.0, Retention(max_len=250))
    # MAXLEN ~ drops whole nodes of 100 entries: between 250 and 350 remain.
    assert 250 <= result.length < 350
    assert result.length == raw_redis(SHARED_REDIS_URL).xlen(stream)
    store.close()


def test_retention_by_age_trims_entries_older_than_max_age(stream: str) -> None:
    store = RedisStore(SHARED_REDIS_URL, stream)
    store.check(writing=True)
    store.append(_filler(300), 60.0, Retention(max_len=None, max_age=0.5))
    first = raw_redis(SHARED_REDIS_URL).xrange(stream, count=1)[0][0]

    def trimmed() -> bool:
        store.append(_filler(1, 10_000 + int(time.monotonic() * 1000)), 60.0, Retention(None, 0.5))
        remaining = raw_redis(SHARED_REDIS_URL).xrange(stream, count=1)
        return bool(remaining) and remaining[0][0] != first

    wait_for(trimmed, 10.0, "the first 300 entries to age out")
    store.close()
    with pytest.raises(pl.InvalidRequestError):
        Retention(max_len=0)
    with pytest.raises(pl.InvalidRequestError):
        Retention(max_age=-1.0)


def test_a_consumer_behind_retention_counts_exactly_what_it_missed(stream: str) -> None:
    """A reader that stops reading holds up its consumer (``block``); retention trims
    what it has not read yet; when it reads again, ``missed`` says exactly how many."""
    store = RedisStore(SHARED_REDIS_URL, stream)
    store.check(writing=True)
    store.append(_filler(20), 60.0, Retention(max_len=None))
    with RelayConsumer(
        SHARED_REDIS_URL, stream, start="0", channel_capacity=5, batch_size=5
    ) as consumer:
        # 5 entries in the buffer, 5 more in the reader's hand, waiting for room.
        wait_for(lambda: consumer.stats()["entries"] == 10, 10.0, "the reader to fill up")
        store.append(_filler(1000, 20), 60.0, Retention(max_len=100))
        first_seq = int(raw_redis(SHARED_REDIS_URL).xrange(stream, count=1)[0][1][b"seq"])
        assert first_seq > 11
        collect_undecodable(consumer, 15)
        assert consumer.stats()["missed"] == first_seq - 11
        assert consumer.stats()["stream_resets"] == 0
    store.close()


def test_duplicate_frames_in_one_append_or_within_the_ttl_are_written_once(stream: str) -> None:
    store = RedisStore(SHARED_REDIS_URL, stream)
    store.check(writing=True)
    a, b = _filler(2)
    assert store.append([a, a, b], 60.0, Retention()).appended == 2
    assert store.append([b, a], 60.0, Retention()).appended == 0
    assert raw_redis(SHARED_REDIS_URL).xlen(stream) == 2
    store.close()
