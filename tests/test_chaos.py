"""Chaos: three simulator processes killed, restarted, stalled, delayed and garbled at
random while a client with four connections reads a fixed-rate channel.

What is checked, against a recorded timeline of every fault and a 20 ms sampling of the
client's connection states:

- exactly once: no tick is ever delivered twice, and every tick is delivered at which some
  connection was open to an endpoint that was healthy (not killed, restarting, dropping
  or stalled) from ``PRE`` seconds before the tick to ``POST`` seconds after it (plus the
  endpoint's injected delay, if any): the margins are the subscription's round trip and
  the send/read latency, so a tick right at a transition is not demanded;
- recovery: after every full outage (all three endpoints killed) the stream resumes within
  the backoff's longest wait + the connect timeout + a scheduling margin, and after every
  fault each endpoint has an open connection again within the same bound;
- threads: exactly ``num_connections + 1`` client threads alive in every sample, none
  after ``close()``;
- stats: ``frames == unique + duplicates``; every unique frame was delivered
  (``overflow="block"``), ``decode_errors`` equals the ``UndecodableFrame`` messages received,
  and once the endpoints are gone the connections' frame counts add up to ``frames``.

Duration: ``PYLAZER_CHAOS_SECONDS`` (default 30, the CI run; e.g. 600 by hand). The random
schedule is seeded from ``PYLAZER_CHAOS_SEED`` (default: random, printed).
"""

from __future__ import annotations

import bisect
import collections
import os
import random
import time
from dataclasses import dataclass

import pytest
from chaos_support import Consumer, Monitor, SimProcess, env_seconds, sim_processes, start_all
from client_support import TOKEN, library_threads, thread_baseline, wait_for

import pylazer_sync as pl
from pylazer_sync.simulator.faults import GARBAGE_KINDS

CHAOS_SECONDS = env_seconds("PYLAZER_CHAOS_SECONDS", 30.0)
CHANNEL = "fixed_rate@50ms"
PERIOD_US = 50_000
NUM_CONNECTIONS = 4
TIMEOUT = 1.5  # dead-connection detection (pings every 0.5 s)
BACKOFF = pl.Backoff(initial=0.05, multiplier=1.5, randomization=0.5, max_interval=0.5)
BACKOFF_MAX = BACKOFF.max_interval * (1 + BACKOFF.randomization)
MARGIN = 3.0  # scheduling slack on a loaded 2-core machine
RECOVERY_BOUND = BACKOFF_MAX + TIMEOUT + MARGIN
PRE = 0.3  # a connection must be open this long before a tick (subscribe round trip)
POST = 0.3  # ...and this long after it (scheduler lateness, send and read)

# Faults that make an endpoint unhealthy while in effect; the others do not.
HEALTH_FAULTS = frozenset({"kill", "restart", "drop", "drop abrupt", "stall", "refuse 503"})
GARBAGE = sorted(GARBAGE_KINDS)  # every kind the simulator knows, from its own list


@dataclass
class Fault:
    endpoint: int
    kind: str
    start: float  # time.time() just before the fault was injected
    end: float = float("inf")  # when it was over (the endpoint healthy again)
    delay: float = 0.0
    outage: bool = False  # part of a full outage of every endpoint


class Chaos:
    """Injects faults into the simulators and records when each was in effect."""

    def __init__(self, sims: list[SimProcess], rng: random.Random) -> None:
        self.sims = sims
        self.rng = rng
        self.faults: list[Fault] = []
        self.active: dict[int, tuple[float, Fault]] = {}  # endpoint -> (due end, fault)
        self.outages: list[tuple[float, float]] = []  # (all down, first endpoint back)

    def inject(self, endpoint: int) -> None:
        sim = self.sims[endpoint]
        kind = self.rng.choice(
            ["kill", "restart", "drop", "drop abrupt", "stall", "delay", "garbage", "refuse 503"]
        )
        fault = Fault(endpoint, kind, time.time())
        self.faults.append(fault)
        if kind == "kill":
            sim.kill()
            self.active[endpoint] = (time.monotonic() + self.rng.uniform(0.3, 3.0), fault)
        elif kind in ("restart", "drop", "drop abrupt"):
            sim.command(kind)
            fault.end = time.time()
        elif kind == "stall":
            sim.command("stall")
            self.active[endpoint] = (time.monotonic() + self.rng.uniform(0.3, 3.0), fault)
        elif kind == "delay":
            fault.delay = round(self.rng.uniform(0.05, 0.6), 3)  # below TIMEOUT
            sim.command(f"delay all {fault.delay}")
            self.active[endpoint] = (time.monotonic() + self.rng.uniform(0.5, 4.0), fault)
        elif kind == "garbage":
            sim.command(f"garbage {self.rng.choice(GARBAGE)}")
            fault.end = time.time()
        else:  # refuse 503: HTTP 503 to new upgrades, and drop the open connections
            sim.command("refuse 503")
            sim.command("drop")
            self.active[endpoint] = (time.monotonic() + self.rng.uniform(0.3, 3.0), fault)

    def end(self, endpoint: int) -> None:
        _, fault = self.active.pop(endpoint)
        sim = self.sims[endpoint]
        if fault.kind == "kill":
            sim.start()
        elif fault.kind == "stall":
            sim.command("resume")
        elif fault.kind == "delay":
            sim.command("delay all 0")
        elif fault.kind == "refuse 503":
            sim.command("accept")
        fault.end = time.time()

    def end_due(self) -> None:
        now = time.monotonic()
        for endpoint, (due, _) in list(self.active.items()):
            if due <= now:
                self.end(endpoint)

    def end_all(self) -> None:
        for endpoint in list(self.active):
            self.end(endpoint)

    def full_outage(self) -> None:
        """Kill every endpoint, wait, start them all again."""
        self.end_all()
        start = time.time()
        faults = [Fault(i, "kill", start, outage=True) for i in range(len(self.sims))]
        self.faults += faults
        for sim in self.sims:
            sim.kill()
        time.sleep(self.rng.uniform(1.0, 2.5))  # the outage itself (by design, not a sync)
        start_all(self.sims)
        for fault, sim in zip(faults, self.sims, strict=True):
            fault.end = sim.ready_at
        self.outages.append((start, min(s.ready_at for s in self.sims)))

    def run(self, seconds: float) -> None:
        """Random faults for ``seconds``, with full outages at 1/3 and 2/3 of the time."""
        t0 = time.monotonic()
        outages_at = [t0 + seconds / 3, t0 + 2 * seconds / 3]
        while (now := time.monotonic()) < t0 + seconds:
            self.end_due()
            if outages_at and now >= outages_at[0]:
                outages_at.pop(0)
                self.full_outage()
                continue
            idle = [i for i in range(len(self.sims)) if i not in self.active]
            if idle:
                self.inject(self.rng.choice(idle))
            time.sleep(self.rng.uniform(0.1, 1.2))  # the pace of the chaos (by design)
        self.end_all()


# -- the analysis ----------------------------------------------------------------------


def open_intervals(monitor: Monitor, num_connections: int) -> list[tuple[float, float, int]]:
    """(first sample, last sample, connection) of every stretch a connection was seen open
    without reconnecting in between: a subset of the time it really was open."""
    out: list[tuple[float, float, int]] = []
    for c in range(num_connections):
        current: tuple[float, int] | None = None  # (first seen, connects)
        last_at = 0.0
        for s in monitor.samples:
            is_open = s.states[c] == "open"
            if current is not None and (not is_open or s.connects[c] != current[1]):
                out.append((current[0], last_at, c))
                current = None
            if is_open and current is None:
                current = (s.at, s.connects[c])
            last_at = s.at
        if current is not None:
            out.append((current[0], last_at, c))
    return out


def required_ticks(
    faults: list[Fault],
    intervals: list[tuple[float, float, int]],
    num_endpoints: int,
    first_us: int,
    last_us: int,
) -> list[int]:
    """The ticks some connection was in a position to deliver (see the module doc)."""
    unhealthy: dict[int, list[tuple[float, float]]] = collections.defaultdict(list)
    delays: dict[int, list[tuple[float, float, float]]] = collections.defaultdict(list)
    for f in faults:
        if f.kind in HEALTH_FAULTS:
            unhealthy[f.endpoint].append((f.start, f.end))
        elif f.kind == "delay":
            delays[f.endpoint].append((f.start, f.end, f.delay))
    out = []
    for t_us in range(first_us, last_us + 1, PERIOD_US):
        t = t_us / 1e6
        for a, b, c in intervals:
            e = c % num_endpoints
            extra = max(
                (d for s, en, d in delays[e] if s <= t + POST + d and en >= t - PRE), default=0.0
            )
            lo, hi = t - PRE, t + POST + extra
            if a > lo or b < hi:
                continue
            if any(s <= hi and en >= lo for s, en in unhealthy[e]):
                continue
            out.append(t_us)
            break
    return out


def describe_around(t_us: int, faults: list[Fault], monitor: Monitor) -> str:
    t = t_us / 1e6
    near = [f for f in faults if f.start - 3 <= t <= f.end + 3]
    samples = [s for s in monitor.samples if abs(s.at - t) <= 0.5]
    states = [
        (round(s.at - t, 3), s.states, s.connects) for s in samples[:: max(1, len(samples) // 8)]
    ]
    return f"tick {t_us}: faults {near}; states {states}"


@pytest.mark.timeout(CHAOS_SECONDS + 240)  # the run itself, plus start-up and checks
def test_chaos_exactly_once_recovery_threads_and_stats() -> None:
    seed = int(os.environ.get("PYLAZER_CHAOS_SEED") or random.randrange(1 << 30))
    print(f"chaos: seed {seed}, {CHAOS_SECONDS} s")
    rng = random.Random(seed)
    baseline = thread_baseline()
    with sim_processes(3, seed=7, token=TOKEN) as sims:
        all_down_calls: list[float] = []
        client = pl.LazerClient(
            TOKEN,
            endpoints=[s.url for s in sims],
            num_connections=NUM_CONNECTIONS,
            timeout=TIMEOUT,
            backoff=BACKOFF,
            start_timeout=30.0,
            on_all_down=lambda: all_down_calls.append(time.time()),
        )
        monitor = Monitor(client, baseline=baseline)
        consumer = Consumer(client)
        chaos = Chaos(sims, rng)
        try:
            client.start()
            sub = client.subscribe(
                price_feed_ids=[1, 2], properties=["price", "exponent"], channel=CHANNEL
            )
            assert client.wait_connected(NUM_CONNECTIONS, timeout=30)
            monitor.start()
            consumer.start()
            wait_for(lambda: len(consumer.updates(sub)) >= 5, 30, "the first updates")
            chaos_started = time.time()
            chaos.run(CHAOS_SECONDS)
            chaos_ended = time.time()
            # Calm again: every connection back, a few more ticks.
            assert client.wait_connected(NUM_CONNECTIONS, timeout=RECOVERY_BOUND + 10)
            settled = len(consumer.updates(sub))
            wait_for(lambda: len(consumer.updates(sub)) >= settled + 10, 30, "calm updates")
            # The endpoints go away for good: no more frames, the pipeline drains.
            for sim in sims:
                sim.kill()
            wait_for(lambda: client.stats()["open_connections"] == 0, 10, "all down")

            def drained() -> bool:
                s = client.stats()
                read = sum(c["frames"] for c in s["connections"])
                return read == s["frames"] and s["queue_depth"] == 0 and s["inbound_depth"] == 0

            wait_for(drained, 10, "the pipeline to drain")
            wait_for(
                lambda: len(consumer.received) == client.stats()["delivered"], 10, "the consumer"
            )
            stats = client.stats()
        finally:
            monitor.stop(check=False)
            client.close()
            consumer.stop(check=False)
        monitor.stop()
        consumer.stop()
        # close() joined every thread: none may be left.
        assert library_threads(baseline) == []

    # -- stats add up
    assert stats["frames"] == stats["unique"] + stats["duplicates"], stats
    assert stats["dropped"] == 0
    assert stats["unique"] == stats["delivered"], stats
    assert stats["decode_errors"] <= stats["unique"]
    frame_errors = [r for r in consumer.received if isinstance(r.message, pl.UndecodableFrame)]
    assert stats["decode_errors"] == len(frame_errors)
    garbage_sent = sum(f.kind == "garbage" for f in chaos.faults)

    # -- threads: exactly one per connection + the dedup thread, at every sample
    expected = tuple(
        sorted([f"pylazer-conn-{i}" for i in range(NUM_CONNECTIONS)] + ["pylazer-dedup"])
    )
    bad = [(s.at, s.client_threads) for s in monitor.samples if s.client_threads != expected]
    assert not bad, f"client threads differ from {expected}: {bad[:5]}"

    # -- exactly once
    updates = consumer.updates(sub)
    stamps = [u.timestamp_us or 0 for _, u in updates]
    counts = collections.Counter(stamps)
    dups = sorted(t for t, n in counts.items() if n > 1)
    assert not dups, f"{len(dups)} ticks delivered more than once: {dups[:10]}"
    assert all(t % PERIOD_US == 0 for t in stamps)
    first_us = int((chaos_started - 1) * 1e6) // PERIOD_US * PERIOD_US
    last_us = int((chaos_ended + 1) * 1e6) // PERIOD_US * PERIOD_US
    intervals = open_intervals(monitor, NUM_CONNECTIONS)
    required = required_ticks(chaos.faults, intervals, len(sims), first_us, last_us)
    delivered = set(stamps)
    missing = [t for t in required if t not in delivered]
    assert not missing, f"{len(missing)} deliverable ticks lost; first: " + "; ".join(
        describe_around(t, chaos.faults, monitor) for t in missing[:3]
    )

    # -- recovery after every full outage: the first update after the first endpoint is back
    arrivals = [at for at, _ in updates]
    recoveries = []
    for down, back in chaos.outages:
        i = bisect.bisect_right(arrivals, back)
        assert i < len(arrivals), f"no update after the outage {down}..{back}"
        recoveries.append(arrivals[i] - back)
    assert all(r <= RECOVERY_BOUND for r in recoveries), (recoveries, RECOVERY_BOUND)
    assert stats["all_down_events"] >= len(chaos.outages)
    assert len(all_down_calls) == stats["all_down_events"]

    # -- recovery of each endpoint after each fault: an open connection to it within the bound
    late = []
    for f in chaos.faults:
        if f.kind not in HEALTH_FAULTS or f.end >= chaos_ended:
            continue
        until = f.end + RECOVERY_BOUND
        conns = [c for c in range(NUM_CONNECTIONS) if c % len(sims) == f.endpoint]
        # Only if the endpoint stayed healthy long enough to be reconnected.
        if any(
            g.endpoint == f.endpoint and g.kind in HEALTH_FAULTS and f.end < g.start < until
            for g in chaos.faults
        ):
            continue
        ok = any(
            f.end <= s.at <= until and any(s.states[c] == "open" for c in conns)
            for s in monitor.samples
        )
        if not ok:
            late.append(f)
    assert not late, f"endpoints not reconnected within {RECOVERY_BOUND} s: {late[:5]}"

    kinds = collections.Counter(f.kind for f in chaos.faults)
    print(
        f"chaos: {len(chaos.faults)} faults {dict(kinds)}, {len(chaos.outages)} full outages "
        f"(recovered in {[round(r, 2) for r in recoveries]} s), {len(required)} ticks required "
        f"of {(last_us - first_us) // PERIOD_US + 1}, {len(delivered)} delivered, "
        f"garbage sent {garbage_sent}, stats { ({k: stats[k] for k in ('frames', 'unique', 'duplicates', 'decode_errors', 'delivered', 'all_down_events')}) }, "
        f"samples {len(monitor.samples)}"
    )
