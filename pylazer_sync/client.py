"""LazerClient: redundant connections, deduplication and a blocking ``recv()``.

::

 endpoint 0 -- Connection thread --+
 endpoint 1 -- Connection thread --+--> inbound queue --> Dedup thread --> MessageBuffer --> recv()
 endpoint 2 -- Connection thread --+    (raw frames)      (TTL cache,       (bounded,
   (connection i uses endpoint i % len)                    decode once)      overflow policy)

The client owns the queues, the threads and the subscription registry, and hands
them to the connections and the dedup thread; those two never talk to each other.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import ssl
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any

from .buffer import MessageBuffer
from .config import Backoff, ClientConfig, OverflowPolicy, check_wait
from .connection import Connection, ConnectionState
from .dedup import Deduplicator, Message
from .errors import (
    AuthenticationError,
    ClientClosed,
    ClientNotStarted,
    ConnectError,
    InvalidRequestError,
)
from .pipeline import STOP, Inbound
from .protocol import StreamUpdate, SubscribeRequest
from .protocol.requests import ChannelLike, FormatLike, PropertyLike
from .rest import GuardianSetUpgrade, RestClient, ServiceState, SymbolList
from .snapshot import LatestFeed, LatestSnapshot
from .subscriptions import SubscriptionRegistry

logger = logging.getLogger("pylazer_sync")

_JOIN_TIMEOUT = 5.0
_D = ClientConfig  # each setting's default is written once, on ClientConfig
# Batches of frames waiting for the dedup thread, per connection (each batch holds at
# most connection.MAX_BATCH frames). Bounded so a stuck reader under the "block" policy
# pushes back on the sockets instead of growing memory.
_INBOUND_PER_CONNECTION = 64


class _Core:
    """Everything the threads touch. The public client holds it; the threads never hold
    the client, so a client that is dropped without close() can be collected and closed."""

    def __init__(self, config: ClientConfig) -> None:
        self.config = config
        self.stop = threading.Event()
        # start() and close() take it, so close() never misses threads that start() is
        # starting. Reentrant: close() may run from a callback of a thread start() made.
        self.lifecycle = threading.RLock()
        self.subscriptions = SubscriptionRegistry()
        self.inbound: Inbound = queue.Queue(
            maxsize=_INBOUND_PER_CONNECTION * config.num_connections
        )
        self.output: MessageBuffer[Message] = MessageBuffer(
            config.channel_capacity, config.overflow
        )
        self.state_changed = threading.Condition()
        self.started = False
        self.closed = False
        self._open_count = 0
        self.all_down_count = 0
        self.connections = [
            Connection(i, config, self.inbound, self.subscriptions, self._on_state, self.stop)
            for i in range(config.num_connections)
        ]
        self.snapshot = LatestSnapshot()
        self.dedup = Deduplicator(
            self.inbound,
            self.output,
            config.endpoints,
            config.dedup_ttl,
            config.dedup_size,
            self.snapshot,
            self.subscriptions,
            queue_updates=not config.snapshot_only,
        )
        assert config.rest_url and config.history_url and config.api_url
        self.rest = RestClient(
            config.secret,
            rest_url=config.rest_url,
            history_url=config.history_url,
            api_url=config.api_url,
            timeout=config.timeout * 2,
            retries=config.rest_retries,
            backoff=config.backoff,
            ssl_context=config.ssl_context,
            allow_insecure=config.allow_insecure,
            symbols_cache=config.symbols_cache,
            symbols_max_age=config.symbols_max_age,
        )

    def _on_state(self, connection: Connection) -> None:
        """Called by connection threads on every state change."""
        fire = False
        with self.state_changed:
            open_now = sum(1 for c in self.connections if c.state is ConnectionState.OPEN)
            if self._open_count > 0 and open_now == 0 and not self.stop.is_set():
                fire = True
                self.all_down_count += 1
            self._open_count = open_now
            self.state_changed.notify_all()
        if fire:
            logger.warning("all %d connections are down; reconnecting", len(self.connections))
            callback = self.config.on_all_down
            if callback is not None:
                try:
                    callback()
                except Exception:
                    logger.exception("on_all_down callback failed")

    @property
    def open_count(self) -> int:
        return self._open_count

    def start(self) -> None:
        with self.lifecycle:
            if self.closed:
                raise ClientClosed("the client is closed; create a new one")
            if self.started:
                return
            self.started = True
            self.dedup.start()
            for c in self.connections:
                c.start()

    def close(self) -> None:
        """Stop everything; from any thread, the library's own included (a callback such
        as ``on_all_down`` runs in a connection thread, the GC finalizer anywhere)."""
        with self.lifecycle:
            if self.closed:
                return
            self.closed = True
            started = self.started
        self.stop.set()
        self.output.close()
        for c in self.connections:
            c.abort()
        with self.state_changed:
            self.state_changed.notify_all()
        # Unblock the dedup thread: drop queued frames if needed to make room for STOP.
        while True:
            try:
                self.inbound.put_nowait(STOP)
                break
            except queue.Full:
                with contextlib.suppress(queue.Empty):
                    self.inbound.get_nowait()
        if not started:
            return
        # A thread cannot join itself: when close() runs in one of ours, that thread
        # ends by itself as soon as the callback returns (the stop event is set).
        deadline = time.monotonic() + _JOIN_TIMEOUT
        for worker in (*self.connections, self.dedup):
            if not worker.is_current_thread():
                worker.join(max(0.0, deadline - time.monotonic()))
        stuck = [
            w.name for w in (*self.connections, self.dedup) if w.alive and not w.is_current_thread()
        ]
        if stuck:
            logger.warning("close(): threads still ending after %.0f s: %s", _JOIN_TIMEOUT, stuck)


class LazerClient:
    """A blocking client for the Pyth Lazer stream, for scripts and notebooks.

    ::

        with LazerClient(token="...") as client:
            client.subscribe(price_feed_ids=[1, 2], properties=["price", "exponent"])
            for msg in client:
                ...

    Every setting is keyword-only, checked at construction (a bad value raises
    :class:`InvalidRequestError` naming it); the defaults, shown in the signature, are
    defined once, on :class:`~pylazer_sync.config.ClientConfig`.

    Args:
        token: the access token; defaults to the ``PYTH_LAZER_TOKEN`` environment variable.
            It is sent only in the ``Authorization`` header and never shown anywhere. Not
            needed when every endpoint is on this machine (a local simulator): then no
            ``Authorization`` header is sent.
        endpoints: stream URLs; default the three production endpoints. Connection i
            uses endpoint i % len(endpoints).
        num_connections: redundant connections (as the official SDKs; at most
            :data:`~pylazer_sync.config.MAX_CONNECTIONS`); each update is delivered once,
            from whichever connection brings it first.
        timeout: seconds without any frame (pings included) after which a connection is
            considered dead and replaced (as the official SDKs). Also the deadline of one
            connection attempt: TCP connect, TLS and the WebSocket upgrade together.
        backoff: reconnection backoff (as the Rust client: exponential, randomized,
            capped, reset after a healthy connection); a :class:`Backoff`.
        channel_capacity: messages buffered for ``recv()``.
        dedup_ttl: seconds a seen frame is remembered (as the official SDKs).
        dedup_size: frames remembered at most (as the Rust client).
        overflow: what happens when the buffer is full: ``"block"`` (reading pauses and
            TCP pushes back on the server, as the Rust client) or ``"drop_oldest"`` (keep
            the freshest, count every drop in ``stats()``).
        start_timeout: how long :meth:`start` waits for a first open connection.
        allow_insecure: allow ``ws://`` to a non-loopback host (the token travels in clear).
        ssl_context / ca_file: TLS trust for ``wss://`` (default: the system's CAs;
            certificates are always verified).
        max_frame_size: frames larger than this many bytes drop the connection.
        on_all_down: called once each time the last open connection goes down (from a
            connection thread; it may call :meth:`close`).
        snapshot_only: keep only the :meth:`latest` snapshot and do not queue stream
            updates for ``recv()`` (for dashboards that only ever ask "what is it now?");
            other messages (``Subscribed``, errors, ...) are still queued.
        rest_url / api_url / history_url: base URL (or URLs, failed over in turn) of the
            router's REST calls (:meth:`latest_price`, :meth:`price`,
            :meth:`reduce_price`, :meth:`guardian_set_upgrade`), of the catalogue
            (:meth:`symbols`) and of the history service (:meth:`state`, OHLC bars). By
            default derived from the endpoints (production: the three stream hosts,
            ``https://pyth.dourolabs.app`` and ``https://history.pyth-lazer.dourolabs.app``).
        rest_retries: rounds over all of a service's URLs repeated after one that found
            no answer, with the ``backoff`` waits (see the README's REST section).
        symbols_cache / symbols_max_age: a file for the catalogue, answered from when the
            service cannot be reached, and how many seconds a cached copy is answered
            from without asking (see :meth:`symbols`).

    The latest-value snapshot (:meth:`latest`, :meth:`latest_prices`) is updated as each
    unique update is decoded, before it is queued. Under ``overflow="drop_oldest"`` or
    ``snapshot_only=True`` it stays fresh whether or not anyone calls ``recv()``; under
    ``"block"`` a reader that stops also stops the stream (back-pressure), so the snapshot
    is then at most ``channel_capacity`` updates ahead of the reader.
    """

    def __init__(
        self,
        token: str | None = None,
        *,
        endpoints: Sequence[str] | str = _D.endpoints,
        num_connections: int = _D.num_connections,
        timeout: float = _D.timeout,
        backoff: Backoff = _D.backoff,
        channel_capacity: int = _D.channel_capacity,
        dedup_ttl: float = _D.dedup_ttl,
        dedup_size: int = _D.dedup_size,
        overflow: OverflowPolicy = _D.overflow,
        start_timeout: float = _D.start_timeout,
        allow_insecure: bool = _D.allow_insecure,
        ssl_context: ssl.SSLContext | None = _D.ssl_context,
        ca_file: str | None = _D.ca_file,
        max_frame_size: int = _D.max_frame_size,
        on_all_down: Callable[[], None] | None = _D.on_all_down,
        snapshot_only: bool = _D.snapshot_only,
        rest_url: str | Sequence[str] | None = _D.rest_url,
        history_url: str | Sequence[str] | None = _D.history_url,
        api_url: str | Sequence[str] | None = _D.api_url,
        rest_retries: int = _D.rest_retries,
        symbols_cache: str | None = _D.symbols_cache,
        symbols_max_age: float | None = _D.symbols_max_age,
    ) -> None:
        config = ClientConfig(
            token=token,
            endpoints=endpoints,
            num_connections=num_connections,
            timeout=timeout,
            backoff=backoff,
            channel_capacity=channel_capacity,
            dedup_ttl=dedup_ttl,
            dedup_size=dedup_size,
            overflow=overflow,
            start_timeout=start_timeout,
            allow_insecure=allow_insecure,
            ssl_context=ssl_context,
            ca_file=ca_file,
            max_frame_size=max_frame_size,
            on_all_down=on_all_down,
            snapshot_only=snapshot_only,
            rest_url=rest_url,
            history_url=history_url,
            api_url=api_url,
            rest_retries=rest_retries,
            symbols_cache=symbols_cache,
            symbols_max_age=symbols_max_age,
        )
        self._core = _Core(config)
        # Closing on garbage collection and at interpreter exit: finalize holds the
        # core, not the client, so it does not keep the client alive.
        self._finalizer = weakref.finalize(self, self._core.close)

    @property
    def config(self) -> ClientConfig:
        """The validated settings (the token inside shows as ``***``)."""
        return self._core.config

    # -- life cycle --------------------------------------------------------------------

    def start(self, wait: bool = True, timeout: float | None = None) -> LazerClient:
        """Start the connection and dedup threads.

        With ``wait`` (the default) return once at least one connection is open. Raises
        :class:`AuthenticationError` as soon as the last attempt of every connection was
        refused with HTTP 401/403, or :class:`ConnectError` listing each endpoint's last
        failure if none opened within ``timeout`` (default ``start_timeout``). On either
        error the client is closed. Calling start() again is a no-op (it still waits
        with ``wait``).
        """
        wait_for = check_wait(timeout)
        self._core.start()
        if wait:
            self._wait_started(self._core.config.start_timeout if wait_for is None else wait_for)
        return self

    def _wait_started(self, timeout: float) -> None:
        core = self._core
        deadline = time.monotonic() + timeout
        status: list[int] | None = None
        with core.state_changed:
            while True:
                if core.closed:
                    raise ClientClosed("the client was closed while starting")
                if core.open_count > 0:
                    return
                conns = core.connections
                # Each connection's last attempt that ended decides, whatever the others
                # are doing at this moment (a slow endpoint may be mid-attempt).
                if all(c.attempts > 0 and c.last_status in (401, 403) for c in conns):
                    status = sorted({c.last_status for c in conns if c.last_status is not None})
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    status = None
                    break
                core.state_changed.wait(min(remaining, 0.25))
        failures = "; ".join(
            f"connection {c.index} to {c.endpoint}: {c.last_error or c.state.value}"
            for c in core.connections
        )
        self.close()
        if status is not None:
            raise AuthenticationError(
                f"every endpoint refused the access token (HTTP {', '.join(map(str, status))}); "
                f"check the token and its entitlements. {failures}"
            )
        raise ConnectError(f"no connection opened within {timeout} s. {failures}")

    def close(self) -> None:
        """Stop every thread and close every socket; idempotent, bounded in time.

        Safe from any thread, including the library's own (an ``on_all_down`` callback
        may call it); it returns promptly even while a connection is still connecting.
        """
        self._finalizer()

    @property
    def closed(self) -> bool:
        """Whether close() was called."""
        return self._core.closed

    def __enter__(self) -> LazerClient:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- subscriptions -----------------------------------------------------------------

    def subscribe(
        self,
        request: SubscribeRequest | None = None,
        /,
        *,
        price_feed_ids: Iterable[int] | None = None,
        symbols: Iterable[str] | None = None,
        properties: Iterable[PropertyLike] | None = None,
        channel: ChannelLike | None = None,
        formats: Iterable[FormatLike] | None = None,
        delivery_format: str | None = None,
        json_binary_encoding: str | None = None,
        parsed: bool | None = None,
        ignore_invalid_feeds: bool | None = None,
        market_sessions: Iterable[str] | None = None,
        subscription_id: int | None = None,
    ) -> int:
        """Subscribe on every connection (now and after every reconnect); returns the id.

        Pass a :class:`SubscribeRequest` or its fields as keyword arguments (``channel``
        defaults to ``fixed_rate@200ms``). The request is validated before anything is
        sent (:class:`InvalidRequestError`); the server's answer (``Subscribed`` or
        ``SubscriptionError``) arrives through ``recv()``. A fresh id is assigned when
        none is given. Safe to call from any thread, before or after ``start()``.
        """
        kwargs: dict[str, Any] = {
            k: v
            for k, v in {
                "price_feed_ids": price_feed_ids,
                "symbols": symbols,
                "properties": properties,
                "channel": channel,
                "formats": formats,
                "delivery_format": delivery_format,
                "json_binary_encoding": json_binary_encoding,
                "parsed": parsed,
                "ignore_invalid_feeds": ignore_invalid_feeds,
                "market_sessions": market_sessions,
                "subscription_id": subscription_id,
            }.items()
            if v is not None
        }
        if request is None:
            if properties is None:
                raise InvalidRequestError("properties: required (e.g. ['price', 'exponent'])")
            request = SubscribeRequest(**kwargs)
        elif kwargs:
            raise InvalidRequestError(
                "pass either a SubscribeRequest or keyword fields, not both "
                f"(got {', '.join(sorted(kwargs))})"
            )
        elif not isinstance(request, SubscribeRequest):
            raise InvalidRequestError(f"request: expected a SubscribeRequest, got {request!r}")
        core = self._core
        if core.closed:
            raise ClientClosed("the client is closed")
        request, generation = core.subscriptions.add(request)
        for c in core.connections:
            c.send_subscribe(request, generation)
        assert request.subscription_id is not None
        return request.subscription_id

    def unsubscribe(self, subscription_id: int) -> None:
        """Stop a subscription on every connection; later reconnects do not restore it.

        The server's ``Unsubscribed`` answer arrives through ``recv()``, once.
        """
        core = self._core
        generation = core.subscriptions.remove(subscription_id)
        for c in core.connections:
            c.send_unsubscribe(subscription_id, generation)

    def subscriptions(self) -> list[SubscribeRequest]:
        """The active subscriptions, oldest first (a refused one is no longer active)."""
        return self._core.subscriptions.requests()

    # -- receiving ---------------------------------------------------------------------

    def _require_started(self) -> None:
        core = self._core
        if not core.started and not core.closed:
            raise ClientNotStarted(
                "the client is not started, so no message can arrive: call client.start() "
                "first, or use `with LazerClient(...) as client:`"
            )

    def recv(self, timeout: float | None = None) -> Message:
        """The next message: a ``StreamUpdate``, ``Subscribed``, ``SubscriptionError``, ...

        Blocks up to ``timeout`` seconds (None: until a message arrives) and raises
        :class:`~pylazer_sync.RecvTimeout` (a ``TimeoutError``) when it passes, or
        :class:`ClientClosed` once the client is closed. Ctrl-C interrupts the wait.
        Raises :class:`ClientNotStarted` at once on a client that was never started.
        """
        if timeout is not None:
            timeout = check_wait(timeout)
        self._require_started()
        return self._core.output.get(timeout)

    def recv_many(self, max_messages: int = 1000, timeout: float | None = 0.0) -> list[Message]:
        """Up to ``max_messages`` messages at once: by default, what is queued right now
        (possibly ``[]``), without waiting, so a notebook cell never hangs.

        With ``timeout`` it waits up to that many seconds for a first message (None:
        until one arrives) and returns ``[]`` if none came. Cheaper per message than
        :meth:`recv` when the stream is fast. Raises :class:`ClientClosed` once closed and
        :class:`ClientNotStarted` on a client that was never started.
        """
        if isinstance(max_messages, bool) or not isinstance(max_messages, int) or max_messages < 1:
            raise InvalidRequestError(f"max_messages: {max_messages!r} must be an integer >= 1")
        timeout = check_wait(timeout)
        self._require_started()
        return self._core.output.get_many(max_messages, timeout)

    def __iter__(self) -> Iterator[Message]:
        """Messages as they arrive, blocking; the iteration ends when the client is closed.

        Raises :class:`ClientNotStarted` at once on a client that was never started.
        """
        self._require_started()
        return self._iterate()

    def _iterate(self) -> Iterator[Message]:
        get = self._core.output.get
        while True:
            try:
                yield get(None)
            except ClientClosed:
                return

    # -- the latest values ---------------------------------------------------------------

    def latest(self, feed_id: int) -> LatestFeed | None:
        """The newest update of one feed seen by this client (None if none yet).

        Does not touch the ``recv()`` queue: a notebook cell can ask at any time.
        """
        return self._core.snapshot.get(feed_id)

    def latest_prices(self) -> dict[int, LatestFeed]:
        """The newest update of every feed seen so far, by feed id (a copy).

        ``pylazer_sync.frames.latest_frame(client)`` gives the same as a DataFrame.
        """
        return self._core.snapshot.all()

    def latest_update(self, subscription_id: int | None = None) -> StreamUpdate | None:
        """The newest whole update of a subscription (``None``: of any), signed envelopes
        included, or ``None`` if none arrived yet: for a contract call, at any moment.

        Kept by the dedup thread like :meth:`latest` (an older timestamp never replaces a
        newer one) and without touching the ``recv()`` queue, so with
        ``snapshot_only=True`` a keeper needs no reader at all. Check the signer and the
        age (``timestamp_us``) before use: see ``examples/keeper.py``.
        """
        return self._core.snapshot.latest_update(subscription_id)

    # -- REST ------------------------------------------------------------------------------

    @property
    def rest(self) -> RestClient:
        """The REST client of this client's URLs, token and failover settings (for
        :func:`pylazer_sync.history` and other REST calls; it needs no started client)."""
        return self._core.rest

    def latest_price(
        self, request: SubscribeRequest | None = None, /, **fields: Any
    ) -> StreamUpdate:
        """Ask the REST API for the latest update of some feeds (no subscription needed).

        Same arguments as :meth:`subscribe`; returns a :class:`StreamUpdate` (id 0).
        """
        return self._core.rest.latest_price(request, **fields)

    def price(
        self, timestamp: int | datetime, request: SubscribeRequest | None = None, /, **fields: Any
    ) -> StreamUpdate:
        """Ask the REST API for the update in force at ``timestamp``: microseconds since
        the epoch or an aware ``datetime`` (a naive one is refused: UTC or local?)."""
        return self._core.rest.price(timestamp, request, **fields)

    def reduce_price(
        self, update: StreamUpdate | Mapping[str, Any], price_feed_ids: Iterable[int]
    ) -> StreamUpdate:
        """Shrink a signed update (from the stream or REST) to some of its feeds: the
        service re-signs it, same timestamp and values, for a cheaper contract call."""
        return self._core.rest.reduce_price(update, price_feed_ids)

    def guardian_set_upgrade(self) -> GuardianSetUpgrade | None:
        """The guardian (multisig) key set upgrade in progress, or ``None``."""
        return self._core.rest.guardian_set_upgrade()

    def state(self, *parts: str) -> ServiceState:
        """The service's state (``feeds``, ``publishers``, ...; all without ``parts``)."""
        return self._core.rest.state(*parts)

    def symbols(
        self,
        query: str | None = None,
        asset_type: str | None = None,
        *,
        instrument_type: str | None = None,
        cache: str | None = None,
        max_age: float | None = None,
        refresh: bool = False,
    ) -> SymbolList:
        """The feeds catalogue, filtered by text, asset type and/or instrument type; with
        a cache file, answered from it when the service cannot be reached (see
        :meth:`RestClient.symbols`)."""
        return self._core.rest.symbols(
            query,
            asset_type,
            instrument_type=instrument_type,
            cache=cache,
            max_age=max_age,
            refresh=refresh,
        )

    # -- observing ---------------------------------------------------------------------

    def wait_connected(self, count: int = 1, timeout: float | None = None) -> bool:
        """Block until at least ``count`` connections are open; False on timeout."""
        core = self._core
        timeout = check_wait(timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        with core.state_changed:
            while core.open_count < count:
                if core.closed:
                    return False
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                core.state_changed.wait(0.25 if remaining is None else min(remaining, 0.25))
            return True

    def stats(self) -> dict[str, Any]:
        """Plain-data statistics: per connection, and totals of the dedup and buffer stages.

        ``frames`` (data frames the dedup stage took from the connections; the connections'
        own ``frames`` may be ahead by what is in flight) == ``unique`` + ``duplicates``.
        Each unique frame is decoded once (``decode_errors`` of them failed and arrive as
        :class:`UndecodableFrame`) and put on the ``recv()`` queue, counted in ``delivered``
        (with ``snapshot_only``, stream updates only update the snapshot). ``dropped``
        counts what ``drop_oldest`` evicted from that queue, so at a quiet moment
        ``delivered`` == messages read + ``dropped`` + ``queue_depth``. The copies of an
        answer to a subscribe/unsubscribe request that other connections bring count as
        ``duplicates``; ``awaiting_answers`` counts requests sent and not yet answered,
        ``subscriptions_refused`` the subscriptions the server refused (and the client
        forgot).
        """
        core = self._core
        d = core.dedup
        conns = [c.stats() for c in core.connections]
        return {
            "connections": conns,
            "open_connections": core.open_count,
            "all_down_events": core.all_down_count,
            "frames": d.frames,
            "unique": d.unique,
            "duplicates": d.duplicates,
            "decode_errors": d.decode_errors,
            "delivered": d.delivered,
            "dropped": core.output.dropped,
            "queue_depth": len(core.output),
            "inbound_depth": core.inbound.qsize(),
            "dedup_cache_size": d.cache_size,
            "subscriptions": len(core.subscriptions),
            "subscriptions_refused": core.subscriptions.refused,
            "awaiting_answers": core.subscriptions.awaiting_answers(),
            "closed": core.closed,
        }

    def _repr_html_(self) -> str:
        """A table for Jupyter: one row per connection, then the totals (never the token)."""
        from html import escape

        stats = self.stats()
        cols = ("index", "endpoint", "state", "connects", "disconnects", "frames", "last_error")
        head = "".join(f"<th>{c}</th>" for c in cols)
        rows = "".join(
            "<tr>"
            + "".join(f"<td>{escape('' if c[k] is None else str(c[k]))}</td>" for k in cols)
            + "</tr>"
            for c in stats["connections"]
        )
        totals = ", ".join(
            f"{k} {stats[k]}"
            for k in ("frames", "unique", "duplicates", "decode_errors", "dropped", "queue_depth")
        )
        status = "closed" if stats["closed"] else f"{stats['open_connections']} open"
        return (
            f"<p><b>LazerClient</b> ({escape(status)}): {escape(totals)}</p>"
            f"<table><tr>{head}</tr>{rows}</table>"
        )

    def __repr__(self) -> str:
        core = self._core
        states = ", ".join(f"{c.endpoint}={c.state.value}" for c in core.connections)
        status = "closed" if core.closed else ("started" if core.started else "not started")
        return f"<LazerClient {status}: {states}>"
