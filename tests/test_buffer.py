"""The bounded output buffer: overflow policies, timeouts, close, batches."""

from __future__ import annotations

import threading
import time

import pytest

from pylazer_sync.buffer import MessageBuffer
from pylazer_sync.errors import ClientClosed, RecvTimeout


def test_fifo_and_batches() -> None:
    buf: MessageBuffer[int] = MessageBuffer(10, "block")
    for i in range(5):
        assert buf.put(i)
    assert buf.get(0) == 0
    assert buf.get_many(3, 0) == [1, 2, 3]
    assert buf.get_many(10, 0) == [4]
    assert buf.get_many(10, 0.01) == []


def test_timeout_raises_a_timeout_error() -> None:
    buf: MessageBuffer[int] = MessageBuffer(1, "block")
    with pytest.raises(RecvTimeout) as info:
        buf.get(0.05)
    assert isinstance(info.value, TimeoutError)


def test_drop_oldest_keeps_the_newest_and_counts() -> None:
    dropped: list[int] = []
    buf: MessageBuffer[int] = MessageBuffer(3, "drop_oldest", on_drop=dropped.append)
    for i in range(10):
        assert buf.put(i)
    assert buf.dropped == 7
    assert dropped == [0, 1, 2, 3, 4, 5, 6]
    assert buf.get_many(10, 0) == [7, 8, 9]


def test_block_waits_for_room_and_resumes_in_order() -> None:
    buf: MessageBuffer[int] = MessageBuffer(2, "block")
    buf.put(0)
    buf.put(1)
    done = threading.Event()

    def producer() -> None:
        buf.put(2)
        done.set()

    t = threading.Thread(target=producer)
    t.start()
    # Held back while full: wait until the producer is really waiting for room (it
    # counts that before it waits), then check it has not got past put().
    deadline = time.monotonic() + 10
    while buf.blocked_puts == 0:
        assert time.monotonic() < deadline, "the producer never started waiting"
        time.sleep(0.001)
    assert not done.is_set() and len(buf) == 2
    assert buf.get(1) == 0
    assert done.wait(5)
    t.join(5)
    assert buf.get_many(10, 0) == [1, 2]
    assert buf.dropped == 0


def test_close_wakes_waiting_readers_and_writers() -> None:
    buf: MessageBuffer[int] = MessageBuffer(1, "block")
    buf.put(0)
    results: list[object] = []

    def blocked_writer() -> None:
        results.append(buf.put(1))

    writer = threading.Thread(target=blocked_writer)
    writer.start()
    empty: MessageBuffer[int] = MessageBuffer(1, "block")
    errors: list[BaseException] = []

    def blocked_reader() -> None:
        try:
            empty.get(None)
        except ClientClosed as exc:
            errors.append(exc)

    reader = threading.Thread(target=blocked_reader)
    reader.start()
    buf.close()
    empty.close()
    writer.join(5)
    reader.join(5)
    assert results == [False]
    assert len(errors) == 1
    with pytest.raises(ClientClosed):
        buf.get(0)
    with pytest.raises(ClientClosed):
        buf.get_many(5, 0)
    assert buf.put(3) is False


def test_put_many_block_waits_for_room_and_keeps_order() -> None:
    buf: MessageBuffer[int] = MessageBuffer(3, "block")
    done = threading.Event()
    added: list[int] = []

    def producer() -> None:
        added.append(buf.put_many(list(range(7))))
        done.set()

    t = threading.Thread(target=producer)
    t.start()
    got: list[int] = []
    while len(got) < 7:
        got.extend(buf.get_many(2, timeout=5))
    assert done.wait(5)
    t.join(5)
    assert got == list(range(7))
    assert added == [7]
    assert buf.blocked_puts >= 1 and buf.dropped == 0


def test_put_many_drop_oldest_keeps_the_newest_and_counts() -> None:
    dropped: list[int] = []
    buf: MessageBuffer[int] = MessageBuffer(4, "drop_oldest", on_drop=dropped.append)
    assert buf.put_many([0, 1, 2]) == 3
    assert buf.put_many([3, 4, 5, 6, 7]) == 5
    assert buf.get_many(10, 0) == [4, 5, 6, 7]
    assert dropped == [0, 1, 2, 3] and buf.dropped == 4


def test_put_many_stops_when_closed() -> None:
    buf: MessageBuffer[int] = MessageBuffer(2, "block")
    result: list[int] = []
    t = threading.Thread(target=lambda: result.append(buf.put_many([1, 2, 3, 4])))
    t.start()
    # Once the first two are in, the producer waits for room; closing ends the wait.
    deadline = 100
    while len(buf) < 2 and deadline:
        t.join(0.01)
        deadline -= 1
    buf.close()
    t.join(5)
    assert result == [2]
    assert buf.put_many([5]) == 0
