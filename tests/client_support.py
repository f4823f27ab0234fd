"""Shared helpers for the client tests: simulators as endpoints, bounded collection loops."""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from collections.abc import Callable, Iterator

import pylazer_sync as pl
from pylazer_sync.simulator import Simulator

TOKEN = "test-token-6f1d2c"  # a distinctive string, so a leak is easy to find
FAST_BACKOFF = pl.Backoff(initial=0.05, multiplier=1.5, randomization=0.5, max_interval=0.5)
FAST_BACKOFF_MAX = 0.5 * 1.5  # max_interval with the randomization's upper bound


@contextlib.contextmanager
def simulators(n: int = 3, seed: int = 1, **kwargs: object) -> Iterator[list[Simulator]]:
    """``n`` simulators with the same seed: redundant endpoints sending identical frames."""
    sims: list[Simulator] = []
    try:
        for _ in range(n):
            sims.append(Simulator(seed=seed, **kwargs).start())  # type: ignore[arg-type]
        yield sims
    finally:
        for sim in sims:
            sim.stop()


def make_client(sims: list[Simulator], **kwargs: object) -> pl.LazerClient:
    options: dict[str, object] = {
        "endpoints": [s.url for s in sims],
        "num_connections": 4,
        "timeout": 2.0,
        "backoff": FAST_BACKOFF,
        "start_timeout": 20.0,
    }
    options.update(kwargs)
    return pl.LazerClient(TOKEN, **options)  # type: ignore[arg-type]


def collect_updates(
    client: pl.LazerClient,
    count: int,
    timeout: float = 20.0,
    on_message: Callable[[pl.Message], None] | None = None,
) -> list[pl.StreamUpdate]:
    """Receive until ``count`` stream updates arrived; other messages go to ``on_message``."""
    deadline = time.monotonic() + timeout
    updates: list[pl.StreamUpdate] = []
    while len(updates) < count:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"only {len(updates)} of {count} updates within {timeout} s")
        msg = client.recv(timeout=remaining)
        if isinstance(msg, pl.StreamUpdate):
            updates.append(msg)
        elif on_message is not None:
            on_message(msg)
    return updates


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Bounded wait for a condition that has no event of its own (polls every 10 ms)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


def assert_contiguous(timestamps: list[int], period_us: int) -> None:
    """Every tick once, in order, none missing: what one connection promises."""
    gaps = [(a, b) for a, b in itertools.pairwise(timestamps) if b - a != period_us]
    assert not gaps, f"missing or repeated ticks: {gaps[:5]}"


def assert_exactly_once(timestamps: list[int], period_us: int) -> None:
    """Every tick exactly once, none missing, in whatever order they came: what several
    connections promise (a copy one endpoint skipped may come later from another)."""
    repeated = sorted({t for t in timestamps if timestamps.count(t) > 1})
    assert not repeated, f"ticks delivered more than once: {repeated[:5]}"
    assert_contiguous(sorted(timestamps), period_us)


ANSWER_TYPES = (pl.Subscribed, pl.SubscribedWithIgnoredFeeds, pl.Unsubscribed, pl.SubscriptionError)


def answers_until_settled(client: pl.LazerClient, barrier_id: int) -> list[pl.Message]:
    """Every answer delivered from now on, once every connection has answered every
    request (so a test can say "exactly once" without waiting for silence).

    When ``awaiting_answers`` is 0 every copy of every answer has been matched; a barrier
    subscription's answer then comes after anything those copies could have delivered
    (one dedup thread, one FIFO), so what is read up to it is all there is.
    """
    wait_for(lambda: client.stats()["awaiting_answers"] == 0, 20, "every answer")
    client.subscribe(price_feed_ids=[1], properties=["price"], subscription_id=barrier_id)
    answers: list[pl.Message] = []
    deadline = time.monotonic() + 20
    while pl.Subscribed(barrier_id) not in answers:
        message = client.recv(timeout=max(0.01, deadline - time.monotonic()))
        if isinstance(message, ANSWER_TYPES):
            answers.append(message)
    client.unsubscribe(barrier_id)
    return answers[:-1]


# Threads that are not the library's: the tests' own helpers (named test-*) and an
# in-process simulator's (its server thread and asyncio's executor threads).
_NOT_LIBRARY_THREADS = ("test-", "pylazer-sync-simulator", "asyncio_")


def thread_baseline() -> frozenset[int]:
    """Idents of the threads alive now: what :func:`library_threads` leaves out."""
    return frozenset(t.ident for t in threading.enumerate() if t.ident is not None)


def library_threads(baseline: frozenset[int]) -> list[threading.Thread]:
    """Every live thread started since ``baseline`` that is not a test's or a simulator's:
    whatever threads the library started, under any name (a timer thread per connection
    attempt, say, would show up here)."""
    return [
        t
        for t in threading.enumerate()
        if t.ident not in baseline and not t.name.startswith(_NOT_LIBRARY_THREADS)
    ]


def expected_thread_names(num_connections: int) -> list[str]:
    """The threads a running client has: one per connection and the dedup thread."""
    return sorted([f"pylazer-conn-{i}" for i in range(num_connections)] + ["pylazer-dedup"])
