"""What the relay and its consumer need from a message store, whatever the engine.

Redis Streams is the one engine today (:mod:`._redis`, the only module that imports
redis-py). Another (NATS JetStream, Kafka) would be a module beside it implementing
:class:`Store`, chosen by its URL scheme in :func:`open_store`; nothing else changes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final, NamedTuple, Protocol
from urllib.parse import urlsplit

from ..errors import InvalidRequestError, RelayConnectError
from .entries import OutgoingEntry, StoredEntry

DEFAULT_REDIS_URL: Final = "redis://127.0.0.1:6379/0"
DEFAULT_STREAM: Final = "pylazer:updates"

StartPosition = str | datetime
"""Where a consumer starts: ``"$"`` (new entries only), ``"0"`` (everything retained),
an entry id (the entries after it), or a ``datetime`` (entries appended from then on)."""


@dataclass(frozen=True)
class Retention:
    """How much of the stream the store keeps; the relay trims at every append.

    Both bounds are approximate in Redis (``MAXLEN ~`` / ``MINID ~``: whole internal
    nodes of ~100 entries are dropped at once, which is what keeps trimming cheap), so
    the stream holds at least what is asked and at most about 100 entries more.
    """

    max_len: int | None = 1_000_000
    """Entries kept at least (None: no length bound)."""
    max_age: float | None = None
    """Seconds of entries kept at least, by the store's clock (None: no age bound)."""

    def __post_init__(self) -> None:
        if self.max_len is not None and (
            isinstance(self.max_len, bool) or not isinstance(self.max_len, int) or self.max_len < 1
        ):
            raise InvalidRequestError(f"max_len: {self.max_len!r} must be an integer >= 1 or None")
        if self.max_age is not None and (
            isinstance(self.max_age, bool)
            or not isinstance(self.max_age, (int, float))
            or not math.isfinite(self.max_age)
            or self.max_age <= 0
        ):
            raise InvalidRequestError(f"max_age: {self.max_age!r} must be seconds > 0 or None")


class PermanentConnectError(RelayConnectError):
    """A connection failure that retrying cannot cure (a TLS certificate that does not
    verify): ``start()`` reports it at once instead of after its timeout."""


class StreamState(NamedTuple):
    """The stream's end as a consumer or relay finds it at start."""

    last_id: str
    """Id of the newest entry ("0-0" if none)."""
    last_seq: int | None
    """``seq`` of the newest entry (what the next one follows), None if unknown."""
    length: int


class AppendResult(NamedTuple):
    appended: int
    """Entries written; the others were already there (the other relay's)."""
    length: int
    """The stream's length after the append (and the trim)."""


class Store(Protocol):
    """One stream in one store, as the relay and the consumer use it.

    Every method raises only :class:`~pylazer_sync.errors.RelayError` and its subclasses
    (``RelayConnectError`` for anything worth retrying), with texts that name the store
    by :attr:`name`, which never shows a password.
    """

    @property
    def name(self) -> str:
        """The store and stream, for messages: ``redis://host:6379/0 stream NAME``."""
        ...

    def check(self, writing: bool) -> StreamState:
        """Reach the store, check the stream key's type, and (``writing``) that its newest
        entry is one of ours; prepare what appends need."""
        ...

    def append(
        self, entries: Sequence[OutgoingEntry], seen_ttl: float, retention: Retention
    ) -> AppendResult:
        """Append each entry unless an entry with the same digest was appended within
        ``seen_ttl`` seconds (by anyone), atomically, then trim to ``retention``."""
        ...

    def validate_start(self, start: StartPosition) -> None:
        """Raise :class:`~pylazer_sync.InvalidRequestError` if ``start`` is not a start
        position this store understands (no I/O: called at construction)."""
        ...

    def start_after(self, start: StartPosition) -> tuple[str, int | None]:
        """The entry id to read after for a start position, and the ``seq`` of that
        entry when known (so that a gap right at the start is seen too)."""
        ...

    def read(self, after: str, count: int, block: float) -> list[StoredEntry]:
        """Up to ``count`` entries after the id ``after``, waiting up to ``block`` seconds
        for the first; [] if none came."""
        ...

    def close(self) -> None:
        """Close the connections; idempotent."""
        ...


def open_store(
    url: str,
    stream: str,
    *,
    password: str | None = None,
    username: str | None = None,
    ca_file: str | None = None,
    allow_insecure: bool = False,
    timeout: float = 5.0,
) -> Store:
    """The store a URL names (``redis://``, ``rediss://``, ``unix://``: Redis Streams).

    Raises :class:`~pylazer_sync.InvalidRequestError` for a URL or setting that cannot
    work, before anything is connected.
    """
    scheme = urlsplit(url).scheme if isinstance(url, str) else ""
    if scheme in ("redis", "rediss", "unix"):
        from ._redis import RedisStore

        return RedisStore(
            url,
            stream,
            password=password,
            username=username,
            ca_file=ca_file,
            allow_insecure=allow_insecure,
            timeout=timeout,
        )
    shown = url.split("@")[-1] if isinstance(url, str) else repr(url)  # never a password
    raise InvalidRequestError(f"redis_url: {shown!r} is not a redis://, rediss:// or unix:// URL")
