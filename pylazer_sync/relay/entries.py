"""What the relay stores per update, and how a consumer turns it back into a message.

One stream entry per unique update, whatever the engine::

    frame  the raw WebSocket frame, byte for byte as the client received it
    text   1 for a text (JSON) frame, 0 for a binary one
    ts     the update's timestamp in microseconds ("" if it carries no payload)
    sub    the subscription id
    seq    the entry's number in the stream, 1, 2, 3, ... (given by the store at append)

Only ``frame`` and ``text`` are needed to rebuild the message: the consumer decodes the
frame with the client's own decoder (:func:`~pylazer_sync.protocol.decode_frame`), so it
gets the same :class:`~pylazer_sync.StreamUpdate`, with envelopes whose signatures still
verify. Nothing is re-encoded and no value ever passes through a float. ``ts`` and
``sub`` are there to look at (``XRANGE`` in ``redis-cli``) and to filter on without
decoding; ``seq`` lets a consumer see exactly how many entries it missed when retention
trimmed them before it read them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from ..dedup import Message, UndecodableFrame
from ..errors import ProtocolError
from ..protocol import StreamUpdate, SubscribeRequest, decode_frame

FIELD_FRAME: Final = b"frame"
FIELD_TEXT: Final = b"text"
FIELD_TS: Final = b"ts"
FIELD_SUB: Final = b"sub"
FIELD_SEQ: Final = b"seq"

# JSON-safe (below 2**53), so JavaScript consumers of the same server read it exactly;
# 0 stays free for REST answers (which belong to no subscription).
_SUBSCRIPTION_ID_RANGE: Final = (1 << 53) - 1


def stable_subscription_id(request: SubscribeRequest) -> int:
    """A subscription id computed from the subscription itself (its wire parameters).

    Two relays with the same subscription get the same id, hence byte-identical frames
    from the endpoints, whatever order they subscribed in: their copies of an update
    can then be recognised as one. A digest of the canonical JSON, in 1 .. 2**53 - 1.
    """
    canonical = json.dumps(request.params(), sort_keys=True, separators=(",", ":"))
    digest = hashlib.blake2b(canonical.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % _SUBSCRIPTION_ID_RANGE + 1


def frame_digest(frame: bytes) -> str:
    """The name both relays give an update's seen-key: a 128-bit digest of its frame.

    A keyed, process-independent hash (Python's ``hash()`` differs per process); two
    different frames share a digest with odds of about 2**-128.
    """
    return hashlib.blake2b(frame, digest_size=16).hexdigest()


@dataclass(frozen=True, slots=True)
class OutgoingEntry:
    """One update on its way into the stream (what a relay holds in its backlog)."""

    digest: str
    frame: bytes
    is_text: bool
    timestamp_us: int | None
    subscription_id: int

    @classmethod
    def from_update(cls, update: StreamUpdate) -> OutgoingEntry | None:
        """The entry of an update, or None if it does not carry its raw frame."""
        frame = update.frame
        if frame is None:
            return None
        return cls(
            frame_digest(frame),
            frame,
            update.frame_is_text,
            update.timestamp_us,
            update.subscription_id,
        )

    def fields(self) -> tuple[bytes, bytes, bytes, bytes]:
        """frame, text, ts, sub as the store writes them (``seq`` is the store's)."""
        ts = b"" if self.timestamp_us is None else str(self.timestamp_us).encode()
        return (
            self.frame,
            b"1" if self.is_text else b"0",
            ts,
            str(self.subscription_id).encode(),
        )


@dataclass(frozen=True, slots=True)
class StoredEntry:
    """One entry read back from the stream. ``problem`` says why it is not one of ours
    (None for a relay's entry); the other fields are None when they could not be read."""

    entry_id: str
    frame: bytes | None
    is_text: bool
    subscription_id: int | None
    seq: int | None
    problem: str | None = None

    @classmethod
    def parse(cls, entry_id: str, fields: Mapping[bytes, bytes]) -> StoredEntry:
        """Read an entry's fields; a foreign entry is returned with its ``problem``."""
        frame = fields.get(FIELD_FRAME)
        text = fields.get(FIELD_TEXT)
        seq = _int_field(fields.get(FIELD_SEQ))
        sub = _int_field(fields.get(FIELD_SUB))
        problem = None
        if frame is None or text not in (b"0", b"1"):
            names = ", ".join(sorted(repr(k)[:40] for k in fields)[:6]) or "none"
            problem = (
                f"entry {entry_id} was not written by a pylazer_sync relay "
                f"(it needs the fields 'frame' and 'text'; it has {names})"
            )
        elif seq is None:
            problem = f"entry {entry_id} has no valid 'seq' field"
        return cls(entry_id, frame, text == b"1", sub, seq, problem)

    def message(self, source: str) -> Message:
        """The message this entry carries, decoded as the client decodes frames, or a
        :class:`~pylazer_sync.UndecodableFrame` (``connection`` -1, ``endpoint`` naming the
        stream and the entry) for a foreign entry or a frame that does not decode."""
        frame = self.frame
        if self.problem is not None or frame is None:
            return UndecodableFrame(
                -1, f"{source} entry {self.entry_id}", self.problem or "", len(frame or b""), False
            )
        try:
            return decode_frame(frame, self.is_text)
        except ProtocolError as exc:
            return UndecodableFrame(
                -1, f"{source} entry {self.entry_id}", str(exc), len(frame), self.is_text
            )


def _int_field(value: bytes | None) -> int | None:
    if value is None or not value.isdigit() or len(value) > 20:
        return None
    return int(value)
