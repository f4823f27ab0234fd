"""The dedup thread: drop frames already seen, decode each unique frame once, deliver.

Every connection carries the same subscriptions, so each update arrives once per
connection, byte for byte identical. Deduplicating on the raw bytes before decoding
means N connections cost N reads but one decode. Seen frames are remembered for
``dedup_ttl`` seconds and among the last ``dedup_size`` frames (:mod:`.seen`: generations
of keys whose lifetimes a ``cachetools.TTLCache`` decides).

The server's answers to subscribe/unsubscribe requests are the exception: their bytes
carry only the subscription id, so a second ``subscribe(7)`` is answered with the very
bytes of the first. They are matched to the request they answer instead
(:class:`~pylazer_sync.subscriptions.SubscriptionRegistry.answer`), so each call's
answer is delivered exactly once, whatever its age.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, TypeAlias

from .buffer import MessageBuffer
from .errors import ProtocolError
from .pipeline import STOP, Inbound
from .protocol import ServerMessage, StreamUpdate, decode_frame
from .ratelog import RateLimitedWarning
from .seen import SeenFrames
from .snapshot import LatestSnapshot
from .subscriptions import ANSWER_TYPES, SubscriptionRegistry
from .worker import Worker

logger = logging.getLogger("pylazer_sync")

_UNMATCHED: Final = b"unmatched answer"


@dataclass(frozen=True, slots=True)
class UndecodableFrame:
    """A message, not an exception: a frame that could not be decoded, delivered by
    ``recv()`` in its place and counted in ``stats()["decode_errors"]``.

    The stream goes on: the same update usually arrives intact on another connection.
    ``error`` says what was wrong (and where, for binary frames).
    """

    connection: int
    endpoint: str
    error: str
    size: int
    is_text: bool


Message: TypeAlias = ServerMessage | UndecodableFrame
"""Everything ``recv()`` can return."""


class Deduplicator(Worker):
    """Owns the TTL cache and the dedup counters; run by one daemon thread."""

    def __init__(
        self,
        inbound: Inbound,
        output: MessageBuffer[Message],
        endpoints: Sequence[str],
        ttl: float,
        size: int,
        snapshot: LatestSnapshot,
        subscriptions: SubscriptionRegistry,
        queue_updates: bool = True,
    ) -> None:
        self._inbound = inbound
        self._output = output
        self._endpoints = endpoints
        # Keys are 64-bit hashes of the raw frames, as the Rust client keys its cache by a
        # 64-bit hash: cheaper to look up than the frames themselves (no byte comparison
        # on a hit) and ~25 MB less held for a full cache. Two different frames share a
        # key with odds of about size / 2**64 per frame (~5e-15 at the default size).
        self._seen = SeenFrames(ttl, size)
        self._snapshot = snapshot
        self._subscriptions = subscriptions
        self._queue_updates = queue_updates
        self._warn_undecodable = RateLimitedWarning()
        # Counters: written only by the dedup thread.
        self.frames = 0
        self.unique = 0
        self.duplicates = 0
        self.decode_errors = 0
        self.delivered = 0
        super().__init__("pylazer-dedup")

    @property
    def cache_size(self) -> int:
        """Frames currently remembered (read from other threads by ``stats()``: a dict's
        size, which reading never changes)."""
        return len(self._seen)

    def _run(self) -> None:
        get = self._inbound.get
        seen = self._seen.index  # membership is "seen" (SeenFrames.seen without a call)
        tick = self._seen.tick
        queue_updates = self._queue_updates
        while True:
            item = get()
            if item is STOP:
                return
            tick()
            connection, epoch, frames = item
            batch: list[Message] = []
            updates: list[StreamUpdate] = []
            duplicates = 0
            # The per-frame path, spelled out in the loop (a call per frame cost more
            # than the lookup): a duplicate pays its hash and one cache lookup.
            for is_text, data in frames:
                key = hash(data)
                if key in seen:
                    duplicates += 1
                    continue
                try:
                    message = self._unique(connection, epoch, is_text, data, key)
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
            self.frames += len(frames)
            self.duplicates += duplicates
            # The snapshot first: it stays fresh even while the buffer waits for a reader.
            if updates:
                self._snapshot.update_many(updates)
            # One hand-over per batch of frames (see MessageBuffer.put_many).
            if batch:
                self.delivered += self._output.put_many(batch)

    def _unique(
        self, connection: int, epoch: int, is_text: bool, data: bytes, key: int
    ) -> Message | None:
        """The message of a frame not seen before, decoded once (None: a copy of an
        answer already delivered). A unique frame pays one insert."""
        seen = self._seen
        try:
            message = decode_frame(data, is_text)
        except ProtocolError as exc:
            seen.add(key)
            self.unique += 1
            return self._undecodable(connection, is_text, data, str(exc))
        if type(message) in ANSWER_TYPES:
            # Not remembered by its bytes: every copy is matched to its request.
            deliver = self._subscriptions.answer(connection, epoch, message)  # type: ignore[arg-type]
            if deliver is None:  # no request of ours explains it: dedup it by its bytes
                key = hash((_UNMATCHED, data))
                deliver = not seen.seen(key)
                if deliver:
                    seen.add(key)
            if not deliver:
                self.duplicates += 1
                return None
        else:
            seen.add(key)
        self.unique += 1
        return message

    def _undecodable(
        self, connection: int, is_text: bool, data: bytes, text: str
    ) -> UndecodableFrame:
        self.decode_errors += 1
        endpoint = self._endpoints[connection % len(self._endpoints)]
        self._warn_undecodable(
            "undecodable %s frame of %d bytes from connection %d (%s): %s",
            "text" if is_text else "binary",
            len(data),
            connection,
            endpoint,
            text,
        )
        return UndecodableFrame(connection, endpoint, text, len(data), is_text)
