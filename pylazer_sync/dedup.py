"""The dedup thread: drop frames already seen, decode each unique frame once, deliver.

Every connection carries the same subscriptions, so each update arrives once per
connection, byte for byte identical. Deduplicating on the raw bytes before decoding
means N connections cost N reads but one decode. Seen frames are kept for ``dedup_ttl``
seconds in a ``cachetools.TTLCache`` bounded by ``dedup_size`` entries.
"""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeAlias

from cachetools import TTLCache

from .buffer import MessageBuffer
from .errors import ProtocolError
from .protocol import ServerMessage, StreamUpdate, decode_frame
from .snapshot import LatestSnapshot
from .worker import Worker

logger = logging.getLogger("pylazer_sync")

STOP: Final = object()
"""Put on the inbound queue to end the dedup thread."""

_ERROR_LOG_INTERVAL = 5.0


@dataclass(frozen=True, slots=True)
class FrameError:
    """A frame that could not be decoded; delivered in place of a message, and counted.

    The stream goes on: the same update usually arrives intact on another connection.
    ``error`` says what was wrong (and where, for binary frames).
    """

    connection: int
    endpoint: str
    error: str
    size: int
    is_text: bool


Message: TypeAlias = ServerMessage | FrameError
"""Everything ``recv()`` can return."""


class Deduplicator(Worker):
    """Owns the TTL cache and the dedup counters; run by one daemon thread."""

    def __init__(
        self,
        inbound: queue.Queue[Any],
        output: MessageBuffer[Message],
        endpoints: Sequence[str],
        ttl: float,
        size: int,
        snapshot: LatestSnapshot,
        queue_updates: bool = True,
    ) -> None:
        self._inbound = inbound
        self._output = output
        self._endpoints = endpoints
        # Keys are 64-bit hashes of the raw frames, as the Rust client keys its cache by a
        # 64-bit hash: cheaper to look up than the frames themselves (no byte comparison
        # on a hit) and ~25 MB less held for a full cache. Two different frames share a
        # key with odds of about size / 2**64 per frame (~5e-15 at the default size).
        self._seen: TTLCache[int, bool] = TTLCache(maxsize=size, ttl=ttl, timer=time.monotonic)
        self._snapshot = snapshot
        self._queue_updates = queue_updates
        # Counters: written only by the dedup thread.
        self.frames = 0
        self.unique = 0
        self.duplicates = 0
        self.decode_errors = 0
        self.delivered = 0
        self._last_error_log = 0.0
        self._errors_since_log = 0
        super().__init__("pylazer-dedup")

    @property
    def cache_size(self) -> int:
        """Frames currently remembered."""
        return len(self._seen)

    def _run(self) -> None:
        get = self._inbound.get
        queue_updates = self._queue_updates
        while True:
            item = get()
            if item is STOP:
                return
            connection, frames = item
            batch: list[Message] = []
            updates: list[StreamUpdate] = []
            for is_text, data in frames:
                try:
                    message = self._handle(connection, is_text, data)
                except Exception:  # a bug here must not end the stream
                    logger.exception("dedup: unexpected error handling a frame")
                    continue
                if message is None:
                    continue
                if type(message) is StreamUpdate:
                    updates.append(message)
                    if not queue_updates:
                        continue
                batch.append(message)
            # The snapshot first: it stays fresh even while the buffer waits for a reader.
            if updates:
                self._snapshot.update_many(updates)
            # One hand-over per batch of frames (see MessageBuffer.put_many).
            if batch:
                self.delivered += self._output.put_many(batch)

    def _handle(self, connection: int, is_text: bool, data: bytes) -> Message | None:
        """The message a frame carries, decoded once, or None if it is a duplicate."""
        self.frames += 1
        seen = self._seen
        key = hash(data)
        if key in seen:
            self.duplicates += 1
            return None
        seen[key] = True
        self.unique += 1
        try:
            return decode_frame(data, is_text)
        except ProtocolError as exc:
            return self._frame_error(connection, is_text, data, str(exc))

    def _frame_error(self, connection: int, is_text: bool, data: bytes, text: str) -> FrameError:
        self.decode_errors += 1
        self._errors_since_log += 1
        endpoint = self._endpoints[connection % len(self._endpoints)]
        now = time.monotonic()
        if now - self._last_error_log >= _ERROR_LOG_INTERVAL:
            logger.warning(
                "undecodable %s frame of %d bytes from connection %d (%s): %s "
                "[%d such frame(s) since the last report]",
                "text" if is_text else "binary",
                len(data),
                connection,
                endpoint,
                text,
                self._errors_since_log,
            )
            self._last_error_log = now
            self._errors_since_log = 0
        return FrameError(connection, endpoint, text, len(data), is_text)
