"""Soak: a long run at a high rate, with the client's RSS, threads and file descriptors
recorded over time; all must stay flat.

Three simulator processes send two ``real_time`` subscriptions (JSON and binary) at
1000 updates/s each to a client with four connections (8000 frames/s read, 2000 decoded
and delivered); every
``PYLAZER_SOAK_DROP_EVERY`` seconds (default 5) one endpoint drops its connections, so
the reconnect path runs over and over too (a leak per reconnect would show). Duration:
``PYLAZER_SOAK_SECONDS`` (default 20 in CI; e.g. 600 by hand).

Flat means: the median RSS of the last quarter is within 20 MB (or 20 %) of the median
of the second quarter (after warm-up: allocator pools, caches, the dedup cache filling
to its TTL); exactly five client threads at every sample; file descriptors back to
where they were.
"""

from __future__ import annotations

import time

import pytest
from chaos_support import Consumer, Monitor, Received, env_seconds, median, sim_processes
from client_support import FAST_BACKOFF, TOKEN, library_threads, thread_baseline, wait_for

import pylazer_sync as pl

SECONDS = env_seconds("PYLAZER_SOAK_SECONDS", 20.0)
DROP_EVERY = env_seconds("PYLAZER_SOAK_DROP_EVERY", 5.0)
RATE_HZ = 1000
NUM_CONNECTIONS = 4
MB = 1 << 20


@pytest.mark.timeout(SECONDS + 240)  # the run itself, plus start-up and checks
def test_soak_rss_threads_and_fds_stay_flat() -> None:
    baseline = thread_baseline()
    with sim_processes(3, seed=5, token=TOKEN, extra_args=("--rate", str(RATE_HZ))) as sims:
        client = pl.LazerClient(
            TOKEN,
            endpoints=[s.url for s in sims],
            num_connections=NUM_CONNECTIONS,
            timeout=3.0,
            backoff=FAST_BACKOFF,
            start_timeout=30,
        )
        monitor = Monitor(client, interval=0.25, baseline=baseline)
        # One byte per (subscription, tick), allocated up front so that the check itself
        # does not grow this process's memory: how often each tick was delivered.
        t0_us = (int(time.time()) - 60) * 1_000_000
        ticks = int(SECONDS + 300) * RATE_HZ
        seen = {1: bytearray(ticks), 2: bytearray(ticks)}
        counts = {"updates": 0, "dups": 0, "outside": 0}

        def on_message(record: Received) -> None:
            message = record.message
            if isinstance(message, pl.StreamUpdate):
                counts["updates"] += 1
                i = ((message.timestamp_us or 0) - t0_us) * RATE_HZ // 1_000_000
                slots = seen[message.subscription_id]
                if not 0 <= i < len(slots):
                    counts["outside"] += 1
                elif slots[i]:
                    counts["dups"] += 1
                else:
                    slots[i] = 1

        consumer = Consumer(client, keep=False, on_message=on_message)
        drops = 0
        try:
            client.start()
            client.subscribe(
                price_feed_ids=[1, 2],
                properties=["price", "exponent"],
                channel="real_time",
                subscription_id=1,
            )
            client.subscribe(
                subscription_id=2,
                price_feed_ids=[1],
                properties=["price"],
                channel="real_time",
                formats=["leUnsigned"],
                delivery_format="binary",
            )
            assert client.wait_connected(NUM_CONNECTIONS, timeout=30)
            consumer.start()
            monitor.start()
            started = time.monotonic()
            next_drop = started + DROP_EVERY
            while (now := time.monotonic()) < started + SECONDS:
                if now >= next_drop:
                    sims[drops % len(sims)].command("drop abrupt" if drops % 2 else "drop")
                    drops += 1
                    next_drop += DROP_EVERY
                time.sleep(min(0.1, max(0.0, started + SECONDS - now)))  # the run's pace
            assert client.wait_connected(NUM_CONNECTIONS, timeout=10)
            stats = client.stats()
        finally:
            monitor.stop(check=False)
            consumer.stop(check=False)
            client.close()
        monitor.stop()
        consumer.stop()
        assert library_threads(baseline) == []
        wait_for(lambda: monitor.sample().fds <= monitor.samples[0].fds, 10, "sockets closed")

    samples = monitor.samples
    assert len(samples) >= 40
    quarter = len(samples) // 4
    rss_warm = median([s.rss for s in samples[quarter : 2 * quarter]])
    rss_late = median([s.rss for s in samples[3 * quarter :]])
    growth = rss_late - rss_warm
    assert growth < max(20 * MB, 0.2 * rss_warm), f"RSS grew {growth / MB:.1f} MB"
    expected = sorted([f"pylazer-conn-{i}" for i in range(NUM_CONNECTIONS)] + ["pylazer-dedup"])
    assert all(list(s.client_threads) == expected for s in samples)
    fds_warm = median([s.fds for s in samples[quarter : 2 * quarter]])
    fds_late = median([s.fds for s in samples[3 * quarter :]])
    assert fds_late <= fds_warm + 2, (fds_warm, fds_late)
    assert stats["frames"] == stats["unique"] + stats["duplicates"], stats
    assert counts["dups"] == 0, f"{counts['dups']} updates delivered twice"
    assert counts["outside"] == 0
    rate = counts["updates"] / SECONDS
    assert rate > 0.5 * 2 * RATE_HZ, rate  # two subscriptions at RATE_HZ each
    print(
        f"soak {SECONDS:.0f} s: {counts['updates']} updates ({rate:.0f}/s), "
        f"{stats['frames']} frames, {drops} drops, RSS "
        f"{samples[0].rss / MB:.1f} / {rss_warm / MB:.1f} / {rss_late / MB:.1f} / "
        f"{samples[-1].rss / MB:.1f} MB (start / warm / late / end), fds {fds_warm} -> {fds_late}, "
        f"threads {sorted({s.threads for s in samples})}"
    )
    series = samples[:: max(1, len(samples) // 10)]
    print(
        "soak series (s, RSS MB, fds, threads):",
        [(round(s.at - samples[0].at), round(s.rss / MB, 1), s.fds, s.threads) for s in series],
    )
