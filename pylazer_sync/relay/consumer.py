"""RelayConsumer: the updates a relay appended, read back with the LazerClient interface.

::

 Redis stream --XREAD--> reader thread --> MessageBuffer --> recv() / recv_many() / iteration
                         (decode once,     (bounded,
                          snapshot, seq)    overflow policy)

One thread reads the stream from the last entry it took (so a reconnect continues where
it stopped: no gap within retention, no duplicate), decodes each frame with the client's
own decoder, updates the latest-value snapshot and fills the same bounded buffer a
``LazerClient`` uses. A script moves from the endpoints to a relay by changing the line
that builds its client.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import Any, Final

import tenacity

from ..buffer import MessageBuffer
from ..config import Backoff, OverflowPolicy, check_wait
from ..dedup import Message, UndecodableFrame
from ..errors import ClientClosed, ClientNotStarted, InvalidRequestError, RelayError
from ..protocol import StreamUpdate
from ..ratelog import RateLimitedWarning
from ..snapshot import LatestFeed, LatestSnapshot
from ..worker import Worker
from ._retry import is_relay_error, is_transient, retrying
from .entries import StoredEntry
from .store import DEFAULT_REDIS_URL, DEFAULT_STREAM, StartPosition, Store, open_store

logger = logging.getLogger("pylazer_sync.relay")

_BLOCK: Final = 0.25  # seconds one XREAD waits: how soon close() is seen
_JOIN_TIMEOUT: Final = 5.0

_Item = tuple[str, Message]  # (entry id, message): recv() records the id it hands out


class _Reader(Worker):
    def __init__(self, consumer: RelayConsumer) -> None:
        self._consumer = consumer
        super().__init__("pylazer-relay-consumer")

    def _run(self) -> None:
        self._consumer._read_loop()


class RelayConsumer:
    """Reads a relay's stream, with the interface of :class:`~pylazer_sync.LazerClient`.

    ::

        with RelayConsumer("redis://127.0.0.1:6379/0") as client:   # was: LazerClient(...)
            for msg in client:
                ...                                 # the same StreamUpdate objects

    Messages are :class:`~pylazer_sync.StreamUpdate` s decoded from the very frames the
    relay's client received (their envelopes verify), or a
    :class:`~pylazer_sync.UndecodableFrame` (``connection`` -1) for an entry that is not a
    relay's or does not decode. ``Subscribed`` and other server answers stay with the
    relay.

    Args:
        redis_url: as :class:`Relay`'s (``redis://``, ``rediss://``, ``unix://``).
        stream: the stream key (default ``pylazer:updates``).
        start: ``"$"`` (default: entries appended from now on), ``"0"`` (everything the
            stream retains), an entry id (the entries after it: :attr:`position` of an
            earlier consumer resumes exactly where it stopped), or a ``datetime``
            (entries appended from that time on, by Redis's clock).
        subscription_ids / feed_ids: deliver only updates of these subscriptions /
            carrying at least one of these feeds (counted in ``filtered`` otherwise).
        redis_password, redis_username, redis_ca_file, redis_allow_insecure,
        redis_timeout: as :class:`Relay`'s.
        channel_capacity / overflow: the buffer for :meth:`recv`, as the client's.
            Under ``"block"`` (default) a reader that stops only pauses reading: the
            stream keeps the entries (within retention), nothing is lost.
        batch_size: entries taken per read (default 500).
        backoff: waits between attempts while Redis fails.
        start_timeout: how long :meth:`start` retries an unreachable Redis.
    """

    def __init__(
        self,
        redis_url: str = DEFAULT_REDIS_URL,
        stream: str = DEFAULT_STREAM,
        start: StartPosition = "$",
        *,
        subscription_ids: Iterable[int] | None = None,
        feed_ids: Iterable[int] | None = None,
        redis_password: str | None = None,
        redis_username: str | None = None,
        redis_ca_file: str | None = None,
        redis_allow_insecure: bool = False,
        redis_timeout: float = 5.0,
        channel_capacity: int = 1000,
        overflow: OverflowPolicy = "block",
        batch_size: int = 500,
        backoff: Backoff | None = None,
        start_timeout: float = 30.0,
    ) -> None:
        for name, value in (("redis_timeout", redis_timeout), ("start_timeout", start_timeout)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise InvalidRequestError(f"{name}: {value!r} must be a positive number")
        for name, count in (("channel_capacity", channel_capacity), ("batch_size", batch_size)):
            if isinstance(count, bool) or not isinstance(count, int) or count < 1:
                raise InvalidRequestError(f"{name}: {count!r} must be an integer >= 1")
        if overflow not in ("block", "drop_oldest"):
            raise InvalidRequestError(f"overflow: {overflow!r}; expected 'block' or 'drop_oldest'")
        self._subscription_ids = _id_set(subscription_ids, "subscription_ids")
        self._feed_ids = _id_set(feed_ids, "feed_ids")
        self._store: Store = open_store(
            redis_url,
            stream,
            password=redis_password,
            username=redis_username,
            ca_file=redis_ca_file,
            allow_insecure=redis_allow_insecure,
            # A read waits up to _BLOCK on the server before the reply: allow for it.
            timeout=float(redis_timeout) + _BLOCK,
        )
        self._store.validate_start(start)
        self._start = start
        self._batch_size = batch_size
        self._start_timeout = float(start_timeout)
        self._backoff = backoff if backoff is not None else Backoff()
        self._buffer: MessageBuffer[_Item] = MessageBuffer(channel_capacity, overflow)
        self._snapshot = LatestSnapshot()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._started = False
        self._closed = False
        self._reader = _Reader(self)
        # Written by the reader thread only (position: by whoever calls recv).
        self._after = "0-0"
        self._last_seq: int | None = None
        self._position: str | None = None
        self._entries = 0
        self._delivered = 0
        self._filtered = 0
        self._decode_errors = 0
        self._foreign = 0
        self._missed = 0
        self._resets = 0
        self._read_errors = 0
        self._connected = False
        self._last_error: str | None = None
        self._failing_since: float | None = None
        self._warn_foreign = RateLimitedWarning()
        self._warn_decode = RateLimitedWarning()
        self._warn_missed = RateLimitedWarning()
        self._warn_read = RateLimitedWarning()

    # -- life cycle ------------------------------------------------------------------

    def start(self) -> RelayConsumer:
        """Check the stream, find the start position and start reading; returns self.

        Raises :class:`~pylazer_sync.RelayAuthError`, :class:`~pylazer_sync.RelayStreamError`
        (the key is not a stream) or :class:`~pylazer_sync.RelayConnectError` (Redis
        unreachable for ``start_timeout``); the consumer is then closed. Calling it
        again is a no-op.
        """
        with self._lock:
            if self._closed:
                raise ClientClosed("the consumer is closed; create a new one")
            if self._started:
                return self
            try:
                for attempt in retrying(
                    self._backoff,
                    self._stop,
                    is_transient,
                    self._log_start_retry,
                    timeout=self._start_timeout,
                ):
                    with attempt:
                        self._store.check(writing=False)
                        self._after, self._last_seq = self._store.start_after(self._start)
            except BaseException:
                self._closed = True
                self._buffer.close()
                self._store.close()
                raise
            self._connected = True
            self._started = True
            self._reader.start()
        logger.info("reading %s after entry %s", self._store.name, self._after)
        return self

    def _log_start_retry(self, state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        logger.warning("Redis not reachable yet, retrying: %s", exc)

    def close(self) -> None:
        """Stop reading and wake every waiting ``recv()``; idempotent, bounded in time."""
        self._stop.set()  # first, without the lock: it also ends a start() in progress
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._buffer.close()
        if self._started:
            self._reader.join(_JOIN_TIMEOUT)
        self._store.close()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    @property
    def position(self) -> str | None:
        """Entry id of the last message :meth:`recv` / :meth:`recv_many` returned (None
        before the first): ``RelayConsumer(..., start=position)`` continues after it."""
        return self._position

    def __enter__(self) -> RelayConsumer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- receiving (the LazerClient interface) ---------------------------------------------

    def _require_started(self) -> None:
        if not self._started and not self._closed:
            raise ClientNotStarted(
                "the consumer is not started, so no message can arrive: call "
                "consumer.start() first, or use `with RelayConsumer(...) as consumer:`"
            )

    def recv(self, timeout: float | None = None) -> Message:
        """The next message (a ``StreamUpdate``, or an ``UndecodableFrame``), as
        ``LazerClient.recv``: raises :class:`~pylazer_sync.RecvTimeout` after ``timeout``,
        :class:`~pylazer_sync.ClientClosed` once closed and
        :class:`~pylazer_sync.ClientNotStarted` at once if never started; Ctrl-C
        interrupts the wait."""
        if timeout is not None:
            timeout = check_wait(timeout)
        self._require_started()
        entry_id, message = self._buffer.get(timeout)
        self._position = entry_id
        return message

    def recv_many(self, max_messages: int = 1000, timeout: float | None = 0.0) -> list[Message]:
        """Up to ``max_messages`` at once, as ``LazerClient.recv_many``: by default what
        is queued right now (possibly ``[]``); with ``timeout``, waits up to that long
        for a first message (None: until one arrives)."""
        if isinstance(max_messages, bool) or not isinstance(max_messages, int) or max_messages < 1:
            raise InvalidRequestError(f"max_messages: {max_messages!r} must be an integer >= 1")
        timeout = check_wait(timeout)
        self._require_started()
        items = self._buffer.get_many(max_messages, timeout)
        if not items:
            return []
        self._position = items[-1][0]
        return [message for _, message in items]

    def __iter__(self) -> Iterator[Message]:
        """Messages as they arrive, blocking; the iteration ends when the consumer is closed.
        Raises :class:`~pylazer_sync.ClientNotStarted` at once if never started."""
        self._require_started()
        return self._iterate()

    def _iterate(self) -> Iterator[Message]:
        get = self._buffer.get
        while True:
            try:
                entry_id, message = get(None)
            except ClientClosed:
                return
            self._position = entry_id
            yield message

    def latest(self, feed_id: int) -> LatestFeed | None:
        """The newest update of one feed read so far (None if none yet), as ``LazerClient``'s."""
        return self._snapshot.get(feed_id)

    def latest_prices(self) -> dict[int, LatestFeed]:
        """The newest update of every feed read so far, by feed id (a copy)."""
        return self._snapshot.all()

    # -- the reader thread -------------------------------------------------------------

    def _read_loop(self) -> None:
        store = self._store
        while not self._stop.is_set():
            try:
                for attempt in retrying(
                    self._backoff, self._stop, is_relay_error, self._on_read_failure
                ):
                    with attempt:
                        entries = store.read(self._after, self._batch_size, _BLOCK)
            except RelayError:  # closing while Redis was failing
                return
            except Exception:  # a bug must not end the consumer
                logger.exception("relay consumer: unexpected error reading")
                self._stop.wait(_BLOCK)
                continue
            if self._failing_since is not None:
                logger.warning(
                    "relay consumer: Redis is back after %.1f s; continuing after entry %s",
                    time.monotonic() - self._failing_since,
                    self._after,
                )
                self._failing_since = None
            self._connected = True
            if entries:
                try:
                    self._deliver(entries)
                except Exception:
                    logger.exception("relay consumer: unexpected error delivering")

    def _deliver(self, entries: list[StoredEntry]) -> None:
        source = self._store.name
        subscriptions, feeds = self._subscription_ids, self._feed_ids
        batch: list[_Item] = []
        updates: list[StreamUpdate] = []
        for entry in entries:
            self._entries += 1
            self._after = entry.entry_id
            self._check_seq(entry.seq)
            if entry.problem is not None:
                self._foreign += 1
                self._warn_foreign("relay consumer: %s", entry.problem)
                batch.append((entry.entry_id, entry.message(source)))
                continue
            if subscriptions is not None and entry.subscription_id not in subscriptions:
                self._filtered += 1
                continue
            message = entry.message(source)
            if type(message) is StreamUpdate:
                if feeds is not None and not any(f.feed_id in feeds for f in message.feeds):
                    self._filtered += 1
                    continue
                updates.append(message)
            elif isinstance(message, UndecodableFrame):
                self._decode_errors += 1
                self._warn_decode(
                    "relay consumer: undecodable %s: %s", message.endpoint, message.error
                )
            batch.append((entry.entry_id, message))
        if updates:
            self._snapshot.update_many(updates)
        if batch:
            self._delivered += self._buffer.put_many(batch)

    def _check_seq(self, seq: int | None) -> None:
        """Entries are numbered 1, 2, 3, ... as appended: a jump is entries that retention
        trimmed before this consumer read them; a step back, a stream that started over."""
        if seq is None:
            return
        last = self._last_seq
        self._last_seq = seq
        if last is None or seq == last + 1:
            return
        if seq > last + 1:
            self._missed += seq - last - 1
            self._warn_missed(
                "relay consumer: %d entries (numbers %d..%d) were trimmed before this consumer "
                "read them: it fell behind the stream's retention (%d missed in total)",
                seq - last - 1,
                last + 1,
                seq - 1,
                self._missed,
            )
        else:
            self._resets += 1
            logger.warning(
                "relay consumer: the stream's numbering went back from %d to %d: it was "
                "deleted, or Redis lost its data; entries appended in between are gone",
                last,
                seq,
            )

    def _on_read_failure(self, state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        self._read_errors += 1
        self._connected = False
        self._last_error = str(exc)
        if self._failing_since is None:
            self._failing_since = time.monotonic()
        self._warn_read("relay consumer: reading failed (%s); retrying", exc)

    # -- observing ---------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Plain-data statistics: entries read == ``delivered`` + ``filtered`` (+ what is
        being handed over); ``missed`` counts entries trimmed before they were read,
        ``stream_resets`` times the stream started over; ``dropped`` what
        ``overflow="drop_oldest"`` evicted from the ``recv()`` buffer."""
        return {
            "stream": self._store.name,
            "connected": self._connected,
            "entries": self._entries,
            "delivered": self._delivered,
            "filtered": self._filtered,
            "decode_errors": self._decode_errors,
            "foreign_entries": self._foreign,
            "missed": self._missed,
            "stream_resets": self._resets,
            "dropped": self._buffer.dropped,
            "queue_depth": len(self._buffer),
            "read_errors": self._read_errors,
            "last_error": self._last_error,
            "last_id": self._after,
            "position": self._position,
            "closed": self._closed,
        }

    def __repr__(self) -> str:
        status = "closed" if self._closed else ("started" if self._started else "not started")
        return f"<RelayConsumer {status}: {self._store.name}>"


def _id_set(values: Iterable[int] | None, name: str) -> frozenset[int] | None:
    if values is None:
        return None
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise InvalidRequestError(f"{name}: expected a list of integers, got {values!r}")
    ids = tuple(values)
    if not ids or any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in ids):
        raise InvalidRequestError(f"{name}: expected a non-empty list of integers >= 0")
    return frozenset(ids)
