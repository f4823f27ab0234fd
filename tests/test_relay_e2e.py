"""End to end, in processes: three simulator processes (redundant endpoints), two relay
processes with the same subscriptions writing into one stream, three consumers and a
direct LazerClient reading the same endpoints.

- One relay is killed with SIGKILL mid-stream: the other carries on.
- Redis is killed mid-stream and started again (an append-only file fsynced at every
  write, so it comes back with what it acknowledged): the relays keep their Lazer
  connections, back off and catch up; the consumers reconnect and continue.

Either way, each consumer receives every update exactly once, byte for byte what the
direct client received, over the whole window both cover (the faults inside it), and
the stream's numbering has no gap. Duration of each phase: ``PYLAZER_RELAY_SECONDS``
(default 1.5 s, the CI run).
"""

from __future__ import annotations

import collections
import time
from collections.abc import Iterator
from typing import Any

import pytest
from chaos_support import Consumer, SimProcess, env_seconds, sim_processes
from client_support import FAST_BACKOFF, TOKEN, wait_for
from relay_support import (
    SHARED_REDIS_URL,
    cleaned_stream,
    raw_redis,
    redis_server,
    relay_processes,
    require_redis,
)
from test_relay import (
    BINARY_SUB,
    JSON_SUB,
    by_subscription,
    common_window,
    frames_in,
    stable_request,
)

import pylazer_sync as pl
from pylazer_sync.relay import RelayConsumer

PHASE_SECONDS = env_seconds("PYLAZER_RELAY_SECONDS", 1.5)
RATE_HZ = 200  # the simulators' real_time rate
UPDATES_PER_SECOND = RATE_HZ + 20  # real_time + fixed_rate@50ms
pytestmark = pytest.mark.timeout(120 + 4 * PHASE_SECONDS)


@pytest.fixture(scope="module")
def sims() -> Iterator[list[SimProcess]]:
    with sim_processes(3, seed=13, extra_args=("--rate", str(RATE_HZ))) as running:
        yield running


def relay_config(sims: list[SimProcess], redis_url: str, stream: str) -> dict[str, Any]:
    return {
        "endpoints": [s.url for s in sims],
        "redis_url": redis_url,
        "stream": stream,
        "subscriptions": [JSON_SUB, BINARY_SUB],
        "relay": {"redis_timeout": 1.0},
    }


class Readers:
    """Three consumers and a direct client, each read by a background thread."""

    def __init__(self, sims: list[SimProcess], redis_url: str, stream: str) -> None:
        self.direct = pl.LazerClient(
            TOKEN,
            endpoints=[s.url for s in sims],
            num_connections=3,
            timeout=2.0,
            backoff=FAST_BACKOFF,
        )
        for fields in (JSON_SUB, BINARY_SUB):
            self.direct.subscribe(stable_request(fields))
        backoff = pl.Backoff(initial=0.05, max_interval=0.3)
        self.consumers = [
            RelayConsumer(redis_url, stream, start="0", backoff=backoff, redis_timeout=1.0)
            for _ in range(3)
        ]
        self.readers: list[Consumer] = []

    def start(self) -> None:
        self.direct.start()
        for c in self.consumers:
            c.start()
        self.readers = [Consumer(c).start() for c in [self.direct, *self.consumers]]  # type: ignore[arg-type]

    def least(self) -> int:
        """Updates received by the slowest consumer."""
        return min(len(r.updates()) for r in self.readers[1:])

    def wait_for_more(self, count: int, what: str) -> None:
        target = self.least() + count
        wait_for(lambda: self.least() >= target, 30.0 + PHASE_SECONDS * 4, what)

    def close(self) -> None:
        for r in self.readers:
            r.stop(check=False)
        for c in self.consumers:
            c.close()
        self.direct.close()


def check_exactly_once_and_complete(readers: Readers, stream_entries: list[Any]) -> None:
    direct = [u for _, u in readers.readers[0].updates()]
    direct_by_sub = by_subscription(direct)
    for reader, consumer in zip(readers.readers[1:], readers.consumers, strict=True):
        assert not reader.errors, reader.errors
        got = [u for _, u in reader.updates()]
        counts = collections.Counter(u.frame for u in got)
        assert max(counts.values()) == 1, "an update reached a consumer twice"
        assert len(got) == len(stream_entries)
        for sub_id, ours in by_subscription(got).items():
            lo, hi = common_window(ours, direct_by_sub[sub_id])
            mine, theirs = frames_in(ours, lo, hi), frames_in(direct_by_sub[sub_id], lo, hi)
            missing = len(set(theirs) - set(mine))
            assert mine == theirs, f"subscription {sub_id}: {missing} updates missing"
        stats = consumer.stats()
        assert stats["missed"] == 0 and stats["stream_resets"] == 0
        assert stats["foreign_entries"] == 0 and stats["decode_errors"] == 0
    seqs = [int(fields[b"seq"]) for _, fields in stream_entries]
    assert seqs == list(range(1, len(seqs) + 1))


def drain(readers: Readers, redis_url: str, stream: str) -> list[Any]:
    """Wait for every consumer to hold the whole stream and the direct client to have
    passed its newest update; returns the stream's entries."""
    entries = raw_redis(redis_url).xrange(stream)
    wait_for(lambda: readers.least() >= len(entries), 30.0, "the consumers to catch up")
    newest = max(int(f[b"ts"]) for _, f in entries)
    wait_for(
        lambda: max((u.timestamp_us or 0) for _, u in readers.readers[0].updates()) > newest,
        30.0,
        "the direct client to pass the stream's newest update",
    )
    return entries


def test_two_relays_three_consumers_one_relay_killed_mid_stream(sims: list[SimProcess]) -> None:
    require_redis()
    phase = int(UPDATES_PER_SECOND * PHASE_SECONDS)
    with cleaned_stream(SHARED_REDIS_URL, "e2e-kill") as stream:
        readers = Readers(sims, SHARED_REDIS_URL, stream)
        try:
            readers.start()
            config = relay_config(sims, SHARED_REDIS_URL, stream)
            with relay_processes([config, config]) as relays:
                readers.wait_for_more(phase, "updates from both relays")
                relays[0].kill()
                readers.wait_for_more(phase, "updates from the surviving relay")
                survivor = relays[1].stop()
            entries = drain(readers, SHARED_REDIS_URL, stream)
            check_exactly_once_and_complete(readers, entries)
        finally:
            readers.close()
    # Both wrote: the survivor met the other's appends, and did not write them all.
    assert survivor["duplicates"] > 0
    assert 0 < survivor["appended"] < len(entries)
    assert survivor["dropped"] == survivor["expired"] == survivor["unsent"] == 0


def test_two_relays_three_consumers_redis_restarted_mid_stream(sims: list[SimProcess]) -> None:
    phase = int(UPDATES_PER_SECOND * PHASE_SECONDS)
    with redis_server(persistent=True) as server:
        server.start()
        stream = "pltest:e2e-restart"
        readers = Readers(sims, server.url, stream)
        try:
            readers.start()
            config = relay_config(sims, server.url, stream)
            with relay_processes([config, config]) as relays:
                readers.wait_for_more(phase, "updates before the restart")
                server.kill()
                outage_started = time.monotonic()
                killed_us = int(time.time() * 1e6)
                wait_for(
                    lambda: all(c.stats()["read_errors"] > 0 for c in readers.consumers),
                    20.0,
                    "the consumers to notice",
                )
                # Keep Redis away for a while (the relays hold what arrives meanwhile).
                wait_for(
                    lambda: time.monotonic() - outage_started > PHASE_SECONDS,
                    10.0 + PHASE_SECONDS,
                    "the outage",
                )
                restarted_us = int(time.time() * 1e6)
                server.start()
                readers.wait_for_more(2 * phase, "updates after the restart")
                final = [r.stop() for r in relays]
            entries = drain(readers, server.url, stream)
            check_exactly_once_and_complete(readers, entries)
            # The updates made while Redis was away reached the consumers too.
            during = [
                u
                for _, u in readers.readers[1].updates()
                if killed_us < (u.timestamp_us or 0) < restarted_us
            ]
        finally:
            readers.close()
    for stats in final:
        assert stats["append_errors"] > 0, "the relay never saw Redis go"
        assert [c["connects"] for c in stats["client"]["connections"]] == [1, 1, 1]
        assert stats["dropped"] == stats["expired"] == stats["unsent"] == 0
    assert sum(s["appended"] for s in final) == len(entries)
    assert len(during) >= RATE_HZ * PHASE_SECONDS / 2
