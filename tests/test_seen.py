"""The dedup memory: a key is remembered for at least the TTL (at most a fifth longer)
and while among the last ``size`` keys (a tenth more at most), driven by a fake clock."""

from __future__ import annotations

import pytest

from pylazer_sync.seen import SeenFrames


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _run_for(seen: SeenFrames, clock: Clock, seconds: float, step: float = 0.01) -> None:
    """Let time pass with the dedup thread's per-batch tick."""
    end = clock.now + seconds
    while clock.now < end:
        clock.now += step
        seen.tick()


def test_a_key_is_remembered_for_at_least_the_ttl_and_at_most_a_fifth_longer() -> None:
    clock = Clock()
    seen = SeenFrames(ttl=10.0, size=1_000_000, timer=clock)
    seen.add(1)
    _run_for(seen, clock, 9.99)
    assert seen.seen(1)  # still within the TTL
    _run_for(seen, clock, 2.1)
    assert not seen.seen(1)  # forgotten by 1.2 x TTL
    assert len(seen) == 0  # and its memory released


@pytest.mark.parametrize("step", [0.001, 0.5, 3.0])
def test_never_forgotten_before_the_ttl_whatever_the_batch_rhythm(step: float) -> None:
    clock = Clock()
    seen = SeenFrames(ttl=10.0, size=1_000_000, timer=clock)
    added: dict[int, float] = {}
    for key in range(400):
        seen.add(key)
        added[key] = clock.now
        _run_for(seen, clock, step, step)
        for old, at in added.items():
            if clock.now - at < 10.0:
                assert seen.seen(old), (old, clock.now - at)
            elif clock.now - at > 12.0 + step:
                assert not seen.seen(old), (old, clock.now - at)


def test_the_size_bound_forgets_the_oldest_first() -> None:
    clock = Clock()
    seen = SeenFrames(ttl=10.0, size=1000, timer=clock)
    for key in range(5000):
        seen.add(key)
    assert len(seen) <= 1100  # the size bound, and a generation filling
    assert all(seen.seen(k) for k in range(5000 - 1000, 5000))  # the newest 1000 are kept
    assert not any(seen.seen(k) for k in range(3000))  # the oldest are gone


def test_a_key_added_again_after_it_expired_is_remembered_anew() -> None:
    clock = Clock()
    seen = SeenFrames(ttl=1.0, size=100, timer=clock)
    seen.add(7)
    _run_for(seen, clock, 1.5)
    assert not seen.seen(7)
    seen.add(7)
    _run_for(seen, clock, 0.5)  # its old generation is purged meanwhile: the new entry stays
    assert seen.seen(7)


def test_a_tiny_size_still_works() -> None:
    seen = SeenFrames(ttl=10.0, size=1, timer=Clock())
    seen.add(1)
    assert seen.seen(1)
    seen.add(2)
    assert seen.seen(2) and not seen.seen(1)
