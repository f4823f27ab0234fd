"""Relay: a LazerClient's unique updates, appended once each to a Redis stream.

::

 LazerClient.recv_many() --> reader thread --> backlog --> writer thread --> store.append()
   (deduplicated updates,     (raw frame,       (bounded,     (batches, retried      (atomic: seen-key
    redundant connections)     digest, stamp)    drop oldest)   with backoff)          check + XADD + trim)

The relay sits on top of the client: it calls ``recv_many()`` like any script and never
touches the client's threads. The reader keeps draining the client whatever Redis does,
so the Lazer connections never stall; while Redis is slow or away, updates wait in the
backlog, whose bound (``max_backlog``) caps the relay's memory. Beyond it the oldest are
dropped, counted and logged.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Iterable
from types import TracebackType
from typing import Any, Final

import tenacity

from ..client import LazerClient
from ..config import Backoff
from ..dedup import Message, UndecodableFrame
from ..errors import ClientClosed, InvalidRequestError, RelayError
from ..protocol import (
    ServerError,
    StreamUpdate,
    Subscribed,
    SubscribedWithIgnoredFeeds,
    SubscribeRequest,
    SubscriptionError,
    Unsubscribed,
)
from ..ratelog import RateLimitedWarning
from ..worker import Worker
from ._retry import is_relay_error, is_transient, retrying
from .entries import OutgoingEntry, stable_subscription_id
from .store import DEFAULT_REDIS_URL, DEFAULT_STREAM, Retention, Store, open_store

logger = logging.getLogger("pylazer_sync.relay")

_SLICE: Final = 0.25  # waits are cut into slices so close() is seen quickly
_READ_BATCH: Final = 1000
_CLOSE_DRAIN: Final = 5.0  # how long close() lets the writer append what is left
_JOIN_TIMEOUT: Final = 5.0
# The relay never appends an update it has held longer than this share of seen_ttl:
# the other relay's seen-key for it may have expired by then, and appending it again
# would write it twice. The rest of the TTL covers the other relay's own append delay.
_MAX_HOLD_SHARE: Final = 0.75

_Item = tuple[float, OutgoingEntry]  # (monotonic time taken from the client, entry)


class _Backlog:
    """The bounded FIFO between the relay's reader and writer.

    Hand-written on a deque and a Condition because the oldest item must be dropped
    atomically as a new one comes in, which ``queue.Queue`` cannot do.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: collections.deque[_Item] = collections.deque()
        self._cond = threading.Condition()
        self.dropped = 0
        self._warn_drops = RateLimitedWarning()

    def __len__(self) -> int:
        return len(self._items)

    def put_many(self, taken_at: float, entries: Iterable[OutgoingEntry]) -> None:
        with self._cond:
            items = self._items
            items.extend((taken_at, e) for e in entries)
            excess = len(items) - self.capacity
            for _ in range(excess):
                items.popleft()
            self._cond.notify()
        if excess > 0:
            self._count_drops(excess)

    def _count_drops(self, count: int) -> None:
        self.dropped += count
        self._warn_drops(
            "relay backlog full (%d updates; Redis slow or away): dropped the oldest, %d in total",
            self.capacity,
            self.dropped,
        )

    def take(self, max_items: int, timeout: float) -> list[_Item]:
        """Up to ``max_items``, waiting up to ``timeout`` for the first; [] if none."""
        with self._cond:
            if not self._items:
                self._cond.wait(timeout)
            items = self._items
            return [items.popleft() for _ in range(min(max_items, len(items)))]


class _Thread(Worker):
    def __init__(self, name: str, target: Any) -> None:
        self._target = target
        super().__init__(name)

    def _run(self) -> None:
        self._target()


class Relay:
    """Runs a :class:`~pylazer_sync.LazerClient` and appends every unique update to a
    Redis stream, once, for any number of :class:`RelayConsumer` s.

    ::

        with Relay(token="...", redis_url="redis://127.0.0.1:6379/0") as relay:
            relay.subscribe(price_feed_ids=[1, 2], properties=["price", "exponent"],
                            channel="real_time")
            relay.run()   # until Ctrl-C (or start() and carry on: it runs in threads)

    Run two relays (two processes, two machines) with the same subscriptions into the
    same stream for high availability: the stream holds each update once, and it keeps
    flowing while either runs. See the README, "Scale-out through Redis".

    Args:
        client: a :class:`~pylazer_sync.LazerClient` to relay (the relay starts it and
            reads it: read it nowhere else; you close it). Leave it out to have the relay build and own one from
            ``client_options`` (``token``, ``endpoints``, ``num_connections``, ...: the
            :class:`~pylazer_sync.LazerClient` keywords).
        redis_url: ``redis://host:port/db``, ``rediss://`` (TLS, certificates checked),
            or ``unix:///path.sock``; a user and password may be in it, or below.
        stream: the stream key (default ``pylazer:updates``). The relay also keeps
            ``{stream}:seq`` (entry numbering) and short-lived ``{stream}:seen:*`` keys.
        redis_password / redis_username: Redis AUTH (a password, or an ACL user and
            its password). The password is never shown in any message, repr or stats.
        redis_ca_file: CA certificates to verify a ``rediss://`` server with.
        redis_allow_insecure: allow a password over plain ``redis://`` to another host.
        redis_timeout: seconds for connecting to Redis and for each command.
        max_len: entries the stream keeps at least (``MAXLEN ~``; None: no bound).
        max_age: seconds of entries the stream keeps at least (``MINID ~``; None: no
            bound). With both, whichever keeps less wins.
        seen_ttl: seconds a seen-key lives (default 120). Two relays write an update
            once as long as neither holds it longer than 3/4 of this before appending it;
            the relay drops (counts and logs as ``expired``) what it held longer.
        max_backlog: updates held while Redis is slow or away (default 100,000: about
            100 s at 1,000 updates/s, ~40 MB of JSON frames); beyond it the oldest are
            dropped, counted and logged.
        batch_size: updates appended per script call (default 500).
        backoff: waits between attempts while Redis fails (default: the client's).
        start_timeout: how long :meth:`start` retries an unreachable Redis.
    """

    def __init__(
        self,
        client: LazerClient | None = None,
        *,
        redis_url: str = DEFAULT_REDIS_URL,
        stream: str = DEFAULT_STREAM,
        redis_password: str | None = None,
        redis_username: str | None = None,
        redis_ca_file: str | None = None,
        redis_allow_insecure: bool = False,
        redis_timeout: float = 5.0,
        max_len: int | None = 1_000_000,
        max_age: float | None = None,
        seen_ttl: float = 120.0,
        max_backlog: int = 100_000,
        batch_size: int = 500,
        backoff: Backoff | None = None,
        start_timeout: float = 30.0,
        **client_options: Any,
    ) -> None:
        if client is not None and client_options:
            raise InvalidRequestError(
                "pass either a LazerClient or its settings, not both "
                f"(got {', '.join(sorted(client_options))})"
            )
        if client is not None and not isinstance(client, LazerClient):
            raise InvalidRequestError(f"client: expected a LazerClient, got {client!r}")
        _check_positive(seen_ttl, "seen_ttl")
        _check_positive(redis_timeout, "redis_timeout")
        _check_positive(start_timeout, "start_timeout")
        _check_count(max_backlog, "max_backlog", 1, 1 << 40)
        _check_count(batch_size, "batch_size", 1, 10_000)
        self._retention = Retention(max_len, max_age)
        self._seen_ttl = float(seen_ttl)
        self._max_hold = self._seen_ttl * _MAX_HOLD_SHARE
        self._batch_size = batch_size
        self._start_timeout = float(start_timeout)
        self._backoff = backoff if backoff is not None else Backoff()
        self._store: Store = open_store(
            redis_url,
            stream,
            password=redis_password,
            username=redis_username,
            ca_file=redis_ca_file,
            allow_insecure=redis_allow_insecure,
            timeout=float(redis_timeout),
        )
        self._owns_client = client is None
        self._client = client if client is not None else LazerClient(**client_options)
        if self._client.config.snapshot_only:
            raise InvalidRequestError("client: a snapshot_only client queues no updates to relay")
        self._backlog = _Backlog(max_backlog)
        self._lock = threading.Lock()
        self._stop = threading.Event()  # set by close(): the reader ends, the writer drains
        self._abort = threading.Event()  # set when the drain is over: the writer ends
        self._started = False
        self._closed = False
        self._reader = _Thread("pylazer-relay-read", self._read_loop)
        self._writer = _Thread("pylazer-relay-write", self._write_loop)
        # Counters: each written by one thread (reader: updates, frame_errors, skipped;
        # writer: the rest).
        self._updates = 0
        self._frame_errors = 0
        self._skipped = 0
        self._appended = 0
        self._duplicates = 0
        self._expired = 0
        self._unsent = 0
        self._append_errors = 0
        self._in_hand = 0
        self._stream_length: int | None = None
        self._connected = False
        self._last_error: str | None = None
        self._failing_since: float | None = None
        self._warn_failure = RateLimitedWarning()
        self._warn_expiry = RateLimitedWarning()

    # -- life cycle ------------------------------------------------------------------

    def start(self, wait: bool = True) -> Relay:
        """Check Redis, start the client and the relay's two threads; returns self.

        Raises :class:`~pylazer_sync.RelayAuthError` (credentials refused),
        :class:`~pylazer_sync.RelayStreamError` (the key is no stream of ours), or
        :class:`~pylazer_sync.RelayConnectError` (Redis unreachable for
        ``start_timeout``) before any Lazer connection is opened; then whatever the
        client's own ``start(wait)`` raises. On any of them the relay is closed.
        Calling it again is a no-op.
        """
        with self._lock:
            if self._closed:
                raise ClientClosed("the relay is closed; create a new one")
            if self._started:
                return self
            try:
                self._check_store()
                self._client.start(wait=wait)
            except BaseException:
                self._closed = True
                self._close_client()
                self._store.close()
                raise
            self._started = True
            self._reader.start()
            self._writer.start()
        logger.info("relaying into %s", self._store.name)
        return self

    def _check_store(self) -> None:
        for attempt in retrying(
            self._backoff,
            self._stop,
            is_transient,
            self._log_start_retry,
            timeout=self._start_timeout,
        ):
            with attempt:
                state = self._store.check(writing=True)
        self._stream_length = state.length
        self._connected = True

    def _log_start_retry(self, state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        logger.warning("Redis not reachable yet, retrying: %s", exc)

    def run(self) -> None:
        """Start (if needed) and relay until :meth:`close` is called from another thread
        or Ctrl-C; the relay is closed on the way out (Ctrl-C then propagates)."""
        self.start()
        try:
            while not self._stop.wait(_SLICE):  # slices: Ctrl-C is seen at once
                pass
        finally:
            self.close()

    def close(self, timeout: float = _CLOSE_DRAIN) -> None:
        """Stop reading, append what the backlog holds (for up to ``timeout`` seconds:
        Redis may be away), and stop; idempotent. What could not be appended is counted
        as ``unsent`` and logged. A client the relay built is closed; a client passed in
        is left open."""
        self._stop.set()  # first, without the lock: it also ends a start() in progress
        self._close_client()
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if self._started:
            self._reader.join(_JOIN_TIMEOUT)
            if not self._writer.join(timeout):
                self._abort.set()
                self._writer.join(_JOIN_TIMEOUT)
        self._abort.set()
        left = len(self._backlog)
        if left:
            self._unsent += len(self._backlog.take(left, 0))
            logger.warning("relay closed with %d update(s) not appended (Redis away)", left)
        self._store.close()

    def _close_client(self) -> None:
        if self._owns_client:
            self._client.close()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    @property
    def client(self) -> LazerClient:
        """The client being relayed (to subscribe, or to look at its ``stats()``)."""
        return self._client

    def __enter__(self) -> Relay:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- subscriptions -----------------------------------------------------------------

    def subscribe(self, request: SubscribeRequest | None = None, /, **fields: Any) -> int:
        """Subscribe the client, with an id computed from the subscription when none is
        given (:func:`stable_subscription_id`), so that every relay with the same
        subscription receives byte-identical frames. Same arguments as
        :meth:`LazerClient.subscribe <pylazer_sync.LazerClient.subscribe>`."""
        if request is None:
            if "properties" not in fields:
                raise InvalidRequestError("properties: required (e.g. ['price', 'exponent'])")
            request = SubscribeRequest(**fields)
        elif fields:
            raise InvalidRequestError(
                "pass either a SubscribeRequest or keyword fields, not both "
                f"(got {', '.join(sorted(fields))})"
            )
        elif not isinstance(request, SubscribeRequest):
            raise InvalidRequestError(f"request: expected a SubscribeRequest, got {request!r}")
        if request.subscription_id is None:
            request = request.with_id(stable_subscription_id(request))
        return self._client.subscribe(request)

    # -- the reader: client -> backlog ---------------------------------------------------

    def _read_loop(self) -> None:
        recv_many = self._client.recv_many
        backlog = self._backlog
        while not self._stop.is_set():
            try:
                batch = recv_many(_READ_BATCH, _SLICE)
            except ClientClosed:
                if not self._stop.is_set():
                    logger.warning("relay: its client was closed; nothing more to relay")
                return
            except Exception:  # a bug must not end the relay
                logger.exception("relay: unexpected error reading the client")
                self._stop.wait(_SLICE)
                continue
            if not batch:
                continue
            entries: list[OutgoingEntry] = []
            for message in batch:
                if type(message) is StreamUpdate:
                    entry = OutgoingEntry.from_update(message)
                    if entry is not None:
                        entries.append(entry)
                    else:
                        self._skipped += 1
                else:
                    self._note(message)
            if entries:
                self._updates += len(entries)
                backlog.put_many(time.monotonic(), entries)

    def _note(self, message: Message) -> None:
        """What the relay does with the client's other messages: say them."""
        if isinstance(message, UndecodableFrame):
            self._frame_errors += 1  # the client has logged it
        elif isinstance(message, (SubscriptionError, ServerError)):
            logger.warning("relay: the server answered %r", message)
        elif isinstance(message, SubscribedWithIgnoredFeeds):
            logger.warning("relay: subscribed, some feeds ignored: %r", message)
        elif isinstance(message, (Subscribed, Unsubscribed)):
            logger.info("relay: %r", message)
        else:
            logger.debug("relay: ignoring %r", message)

    # -- the writer: backlog -> store ----------------------------------------------------

    def _write_loop(self) -> None:
        backlog = self._backlog
        while not self._abort.is_set():
            items = backlog.take(self._batch_size, _SLICE)
            if not items:
                if self._stop.is_set():
                    return  # closing and nothing left
                continue
            try:
                self._append(items)
            except Exception:  # a bug must not end the relay
                logger.exception("relay: unexpected error appending %d update(s)", len(items))
                self._unsent += len(items)

    def _append(self, items: list[_Item]) -> None:
        pending = items
        self._in_hand = len(items)
        try:
            for attempt in retrying(
                self._backoff, self._abort, is_relay_error, self._on_append_failure
            ):
                with attempt:
                    pending = self._drop_expired(pending)
                    if not pending:
                        return
                    result = self._store.append(
                        [entry for _, entry in pending], self._seen_ttl, self._retention
                    )
        except RelayError:  # aborted while Redis was failing (close)
            self._unsent += len(pending)
            return
        finally:
            self._in_hand = 0
        self._appended += result.appended
        self._duplicates += len(pending) - result.appended
        self._stream_length = result.length
        self._connected = True
        if self._failing_since is not None:
            logger.warning(
                "Redis is back after %.1f s: appending again (%d update(s) waiting)",
                time.monotonic() - self._failing_since,
                len(self._backlog),
            )
            self._failing_since = None

    def _drop_expired(self, pending: list[_Item]) -> list[_Item]:
        limit = time.monotonic() - self._max_hold
        if pending[0][0] >= limit:  # the oldest is recent: the common case
            return pending
        kept = [item for item in pending if item[0] >= limit]
        expired = len(pending) - len(kept)
        self._expired += expired
        self._warn_expiry(
            "relay: dropped %d update(s) held longer than %.1f s (3/4 of seen_ttl): another "
            "relay's seen-keys for them may have expired, and appending them could write "
            "them twice (%d such in total)",
            expired,
            self._max_hold,
            self._expired,
        )
        return kept

    def _on_append_failure(self, state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        self._append_errors += 1
        self._connected = False
        self._last_error = str(exc)
        if self._failing_since is None:
            self._failing_since = time.monotonic()
        self._warn_failure(
            "relay: appending failed (%s); retrying, %d update(s) waiting",
            exc,
            len(self._backlog) + self._in_hand,
        )

    # -- observing ---------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Plain-data statistics of the relay, with its client's under ``client``.

        ``updates`` (taken from the client) == ``appended`` + ``duplicates`` (already
        appended by another relay) + ``expired`` + ``dropped`` (backlog overflow) +
        ``unsent`` (left at close) + ``backlog``, at any quiet moment.
        """
        return {
            "stream": self._store.name,
            "connected": self._connected,
            "updates": self._updates,
            "appended": self._appended,
            "duplicates": self._duplicates,
            "expired": self._expired,
            "dropped": self._backlog.dropped,
            "unsent": self._unsent,
            "backlog": len(self._backlog) + self._in_hand,
            "append_errors": self._append_errors,
            "last_error": self._last_error,
            "stream_length": self._stream_length,
            "frame_errors": self._frame_errors,
            "closed": self._closed,
            "client": self._client.stats(),
        }

    def __repr__(self) -> str:
        status = "closed" if self._closed else ("running" if self._started else "not started")
        return f"<Relay {status}: {self._store.name}>"


def _check_positive(value: float, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise InvalidRequestError(f"{name}: {value!r} must be a positive number")


def _check_count(value: int, name: str, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise InvalidRequestError(f"{name}: {value!r} must be an integer in {lo}..{hi}")
