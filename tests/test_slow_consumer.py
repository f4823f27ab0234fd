"""A reader slower than the stream, under both overflow policies.

Two simulator processes send the ``real_time`` channel at 500 updates/s over two
connections; the reader takes one message every 10 ms (100/s, five times too slow) for
``PYLAZER_SLOW_SECONDS`` (default 8) per policy. The client's memory is sampled all along
(the simulators run in their own processes, so this process's RSS is the client's).

- ``drop_oldest``: the buffer stays at its capacity, every eviction is counted
  (``delivered == received + dropped + still queued``), and what the reader gets stays
  fresh: its age is bounded by the buffer's length, not by how long the reader has lagged.
- ``block``: nothing is dropped by the client; the buffers stay within their bounds while
  the stream pushes back (the lag grows instead: that is the policy); every unique frame
  is delivered once the reader catches up.
"""

from __future__ import annotations

import time

import pytest
from chaos_support import Consumer, Monitor, env_seconds, median, sim_processes
from client_support import FAST_BACKOFF, TOKEN, library_threads, thread_baseline, wait_for

import pylazer_sync as pl
from pylazer_sync.client import _INBOUND_PER_CONNECTION
from pylazer_sync.connection import MAX_BATCH

SECONDS = env_seconds("PYLAZER_SLOW_SECONDS", 8.0)
RATE_HZ = 500
CAPACITY = 100
PER_MESSAGE = 0.01  # the reader's work per message: 100 messages/s at most
MB = 1 << 20


@pytest.mark.timeout(SECONDS + 240)  # the run itself, plus start-up and checks
@pytest.mark.parametrize("policy", ["drop_oldest", "block"])
def test_slow_consumer(policy: str) -> None:
    baseline = thread_baseline()
    with sim_processes(2, seed=3, token=TOKEN, extra_args=("--rate", str(RATE_HZ))) as sims:
        client = pl.LazerClient(
            TOKEN,
            endpoints=[s.url for s in sims],
            num_connections=2,
            timeout=3.0,
            backoff=FAST_BACKOFF,
            channel_capacity=CAPACITY,
            overflow=policy,  # type: ignore[arg-type]
            start_timeout=30,
        )
        monitor = Monitor(client, interval=0.1, baseline=baseline)
        consumer = Consumer(client, per_message=PER_MESSAGE)
        try:
            client.start()
            sub = client.subscribe(
                price_feed_ids=[1, 2], properties=["price", "exponent"], channel="real_time"
            )
            assert client.wait_connected(2, timeout=30)
            monitor.start()
            consumer.start()
            started = time.monotonic()
            wait_for(lambda: time.monotonic() - started >= SECONDS, SECONDS + 5, "the run")
            depths = client.stats()
            held = sum(c["frames"] for c in depths["connections"]) - depths["frames"]
            stream_end = time.time()
            # The stream ends; the reader catches up at full speed.
            for sim in sims:
                sim.kill()
            wait_for(lambda: client.stats()["open_connections"] == 0, 10, "all down")
            consumer.per_message = 0.0

            def caught_up() -> bool:
                s = client.stats()
                read = sum(c["frames"] for c in s["connections"])
                return (
                    read == s["frames"]
                    and s["inbound_depth"] == 0
                    and s["queue_depth"] == 0
                    and len(consumer.received) + s["dropped"] == s["delivered"]
                )

            wait_for(caught_up, 30, "the reader to catch up")
            stats = client.stats()
        finally:
            monitor.stop(check=False)
            consumer.stop(check=False)
            client.close()
        monitor.stop()
        consumer.stop()
        assert library_threads(baseline) == []

    samples = monitor.samples
    assert len(samples) > 20
    # Memory: flat after the buffers filled (the first quarter), whatever the policy.
    warm = [s.rss for s in samples[len(samples) // 4 : len(samples) // 2]]
    late = [s.rss for s in samples[3 * len(samples) // 4 :]]
    growth = median(late) - median(warm)  # type: ignore[arg-type]
    assert growth < 20 * MB, f"RSS grew {growth / MB:.1f} MB"
    # Stats add up: frames = unique + duplicates; every unique frame was queued, and
    # every queued one was read or counted as dropped.
    assert stats["frames"] == stats["unique"] + stats["duplicates"], stats
    assert stats["unique"] == stats["delivered"], stats
    assert stats["delivered"] == len(consumer.received) + stats["dropped"], stats
    assert depths["queue_depth"] <= CAPACITY
    updates = consumer.updates(sub)
    stamps = [u.timestamp_us or 0 for _, u in updates]
    assert len(stamps) == len(set(stamps)), "an update delivered twice"
    # (Not asserted: order. An update one endpoint skipped comes later from the other.)
    ages = [at - (u.timestamp_us or 0) / 1e6 for at, u in updates]
    slow_part = [age for age, (at, _) in zip(ages, updates, strict=True) if at < stream_end]
    first, last = (
        slow_part[len(slow_part) // 4 : len(slow_part) // 2],
        slow_part[-len(slow_part) // 4 :],
    )
    if policy == "drop_oldest":
        # Five times too slow: about four of every five updates were dropped, counted.
        assert stats["dropped"] > 0.5 * stats["unique"], stats
        # Fresh: the age is the buffer's length (CAPACITY updates at RATE_HZ: 0.2 s) plus
        # the reader's own pace, and does not grow while the reader lags.
        assert median(last) < 1.0, median(last)
        assert median(last) < median(first) + 0.5, (median(first), median(last))
    else:
        assert stats["dropped"] == 0
        # Back-pressure: the lag grows instead, while memory stays bounded (above).
        assert median(last) > median(first)
        # Frames read but not yet deduplicated: at most the inbound queue's batches.
        assert depths["inbound_depth"] <= _INBOUND_PER_CONNECTION * 2
        assert held <= _INBOUND_PER_CONNECTION * 2 * MAX_BATCH, held
    print(
        f"slow consumer ({policy}): {stats['unique']} unique, {len(consumer.received)} read, "
        f"{stats['dropped']} dropped; age {median(first):.2f} -> {median(last):.2f} s; "
        f"RSS {median(warm) / MB:.1f} -> {median(late) / MB:.1f} MB"  # type: ignore[arg-type]
    )
