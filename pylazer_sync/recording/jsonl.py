"""jsonl recordings: one JSON object per update, read back as the same typed updates.

``pylazer-sync stream --output jsonl`` writes this format too. One object per line::

    {"subscription_id": 1, "timestamp_us": 1718000000200000, "channel_id": 3, "parsed": true,
     "feeds": [{"feed_id": 1, "price": 6500012345678, "exponent": -8, ...,
                "real": {"price": "65000.12345678", ...}}],
     "solana": "b9011a82...", "evm": "2a22999a...", "leEcdsa": "...", "leUnsigned": "..."}

Property values are the integer mantissas (or the session name) under their snake_case
names, in the order they came on the wire; ``real`` repeats the price-like ones as exact
decimal strings for readers that do not want to scale; each envelope is the hex of its
bytes, present only if the update carried it. ``parsed`` says whether the update had a
``parsed`` object (JSON delivery, or a JSON envelope in binary delivery); ``channel_id``
is the update's channel whenever its payload or a signed payload says it. Readers must
ignore keys they do not know.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Generator, Iterable, Iterator
from decimal import Decimal
from typing import IO, Any, Final, Literal

from ..errors import InvalidRequestError, ProtocolError
from ..protocol import (
    EvmMessage,
    FeedUpdate,
    LeEcdsaMessage,
    LeUnsignedMessage,
    Payload,
    SolanaMessage,
    StreamUpdate,
    decode_message,
)
from ..protocol.types import PROPERTY_ATTRS, Property
from .updates import channel_id_of

logger = logging.getLogger(__name__)

OnError = Literal["raise", "skip"]
"""What :func:`read_jsonl` does with a bad line: raise, or skip it and count it."""

# (wire name in the record, StreamUpdate attribute, envelope class)
_ENVELOPES: Final = (
    ("evm", "evm", EvmMessage),
    ("solana", "solana", SolanaMessage),
    ("leEcdsa", "le_ecdsa", LeEcdsaMessage),
    ("leUnsigned", "le_unsigned", LeUnsignedMessage),
)
_PROPERTY_BY_ATTR: Final[dict[str, Property]] = {a: p for p, a in PROPERTY_ATTRS.items()}
# A skipping reader keeps the messages of this many bad lines (the count has them all).
_KEPT_ERRORS: Final = 100


def _plain(value: Decimal) -> str:
    """A decimal without an exponent (``0.00000012``, not ``1.2E-7``): easy to read and parse."""
    return format(value, "f")


def feed_to_jsonl_obj(feed: FeedUpdate) -> dict[str, Any]:
    """One feed of a record: ``feed_id``, the values by snake_case name, then ``real``."""
    out: dict[str, Any] = {"feed_id": feed.feed_id}
    for prop in feed.wire_properties():
        attr = PROPERTY_ATTRS[prop]
        value = getattr(feed, attr)
        if value is not None:
            out[attr] = value
    real = {name: _plain(v) for name, v in feed.real_values().items()}
    if real:
        out["real"] = real
    return out


def update_to_jsonl_obj(update: StreamUpdate) -> dict[str, Any]:
    """The record of one update (see the module docstring for the format)."""
    out: dict[str, Any] = {
        "subscription_id": update.subscription_id,
        "timestamp_us": update.timestamp_us,
    }
    channel_id = channel_id_of(update)
    if channel_id is not None:
        out["channel_id"] = channel_id
    out["parsed"] = update.parsed is not None
    out["feeds"] = [feed_to_jsonl_obj(f) for f in update.feeds]
    for name, attr, _ in _ENVELOPES:
        envelope = getattr(update, attr)
        if envelope is not None:
            out[name] = envelope.encode().hex()
    return out


def _feed_from_jsonl_obj(obj: Any, where: str) -> FeedUpdate:
    if not isinstance(obj, dict):
        raise ProtocolError(f"{where}: expected an object")
    kwargs: dict[str, Any] = {}
    order: list[Property] = []
    for key, value in obj.items():
        prop = _PROPERTY_BY_ATTR.get(key)
        if prop is None:
            continue  # feed_id, real, or a key newer than this reader
        if prop is Property.MARKET_SESSION:
            ok = isinstance(value, str)
        else:
            ok = isinstance(value, int) and not isinstance(value, bool)
        if not ok:
            raise ProtocolError(f"{where}.{key}: unexpected value {value!r:.40}")
        kwargs[key] = value
        order.append(prop)
    feed_id = obj.get("feed_id")
    if not isinstance(feed_id, int) or isinstance(feed_id, bool):
        raise ProtocolError(f"{where}: missing or bad feed_id")
    return FeedUpdate(feed_id, **kwargs, properties=tuple(order))


def update_from_jsonl_obj(obj: Any) -> StreamUpdate:
    """Rebuild the typed update from a record; envelopes are decoded from their bytes.

    Raises :class:`~pylazer_sync.ProtocolError` saying what is wrong with the record.
    """
    if not isinstance(obj, dict):
        raise ProtocolError(f"record: expected a JSON object, got {type(obj).__name__}")
    sub_id = obj.get("subscription_id")
    if not isinstance(sub_id, int) or isinstance(sub_id, bool):
        raise ProtocolError("record: missing or bad subscription_id")
    envelopes: dict[str, Any] = {}
    for name, attr, cls in _ENVELOPES:
        text = obj.get(name)
        if text is None:
            continue
        try:
            raw = bytes.fromhex(text)
        except (TypeError, ValueError):
            raise ProtocolError(f"record: {name} is not a hex string") from None
        message = decode_message(raw)
        if not isinstance(message, cls):
            raise ProtocolError(f"record: {name} holds a {type(message).__name__}")
        envelopes[attr] = message
    parsed: Payload | None = None
    if obj.get("parsed", True):
        timestamp = obj.get("timestamp_us")
        feeds = obj.get("feeds")
        if not isinstance(timestamp, int) or not isinstance(feeds, list):
            raise ProtocolError("record: a parsed update needs timestamp_us and feeds")
        channel_id = obj.get("channel_id")
        parsed = Payload(
            timestamp_us=timestamp,
            feeds=[_feed_from_jsonl_obj(f, f"feeds[{i}]") for i, f in enumerate(feeds)],
            # A parsed object from the wire has no channel; with envelopes, channel_id is
            # theirs. Without envelopes it can only have come from the parsed payload.
            channel_id=channel_id if isinstance(channel_id, int) and not envelopes else None,
        )
    return StreamUpdate(sub_id, parsed, **envelopes)


def _updates_only(messages: Iterable[Any]) -> Iterator[StreamUpdate]:
    # Callers pass what recv_many() returns; Subscribed & co. are not recorded.
    for m in messages:
        if isinstance(m, StreamUpdate):
            yield m


def write_jsonl(updates: Iterable[Any], dest: str | os.PathLike[str] | IO[str]) -> int:
    """Append one line per stream update to a file (path or open text file); other
    messages are skipped. Returns the number of lines written."""
    if isinstance(dest, (str, os.PathLike)):
        with open(dest, "a", encoding="utf-8") as f:
            return write_jsonl(updates, f)
    count = 0
    for update in _updates_only(updates):
        dest.write(json.dumps(update_to_jsonl_obj(update), separators=(",", ":")) + "\n")
        count += 1
    return count


class JsonlReader(Iterator[StreamUpdate]):
    """The updates of a jsonl recording, lazily, in order; what :func:`read_jsonl` returns.

    With ``on_error="skip"`` a bad line (a truncated last line after a crash, a line
    damaged by hand) is skipped and counted in :attr:`skipped`, and its error kept in
    :attr:`errors` (the first hundred); with ``"raise"`` (the default) it raises
    :class:`~pylazer_sync.ProtocolError` naming the line.
    """

    def __init__(self, source: str | os.PathLike[str] | IO[str], on_error: OnError) -> None:
        if on_error not in ("raise", "skip"):
            raise InvalidRequestError(f"on_error: {on_error!r}; expected 'raise' or 'skip'")
        self._source = source
        self._on_error = on_error
        self._name = os.fspath(source) if isinstance(source, (str, os.PathLike)) else None
        self.skipped = 0
        """Bad lines skipped so far."""
        self.errors: list[str] = []
        """What was wrong with the first skipped lines (``"line 7: ..."``)."""
        self._updates = self._read()

    def __next__(self) -> StreamUpdate:
        return next(self._updates)

    def __iter__(self) -> JsonlReader:
        return self

    def close(self) -> None:
        """Close the file now (it is closed at the end of the iteration anyway)."""
        self._updates.close()

    def _read(self) -> Generator[StreamUpdate, None, None]:
        if isinstance(self._source, (str, os.PathLike)):
            with open(self._source, encoding="utf-8", errors="replace") as f:
                yield from self._parse(f)
        else:
            yield from self._parse(self._source)
        if self.skipped:
            logger.warning(
                "%s: skipped %d bad line(s); first: %s",
                self._name or "jsonl recording",
                self.skipped,
                self.errors[0],
            )

    def _parse(self, lines: Iterable[str]) -> Iterator[StreamUpdate]:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                update = update_from_jsonl_obj(json.loads(line))
            except (ValueError, RecursionError) as exc:  # JSONDecodeError and ProtocolError
                where = f"{self._name}, line {number}" if self._name else f"line {number}"
                if self._on_error == "raise":
                    raise ProtocolError(
                        f"{where}: {exc} (read_jsonl(..., on_error='skip') skips bad lines)"
                    ) from None
                self.skipped += 1
                if len(self.errors) < _KEPT_ERRORS:
                    self.errors.append(f"{where}: {exc}")
                continue
            yield update


def read_jsonl(
    source: str | os.PathLike[str] | IO[str], on_error: OnError = "raise"
) -> JsonlReader:
    """The updates of a recording, in order, as typed :class:`~pylazer_sync.StreamUpdate`\\ s.

    Lazy, so a long recording is never held in memory at once. Blank lines are skipped;
    a malformed line raises :class:`~pylazer_sync.ProtocolError` naming its line number,
    or with ``on_error="skip"`` is skipped and counted (``reader.skipped``), so that a
    recording whose last line was cut by a crash still loads::

        reader = read_jsonl("prices.jsonl", on_error="skip")
        df = updates_frame(reader)
        print(reader.skipped, reader.errors[:1])
    """
    return JsonlReader(source, on_error)


__all__ = [
    "JsonlReader",
    "OnError",
    "feed_to_jsonl_obj",
    "read_jsonl",
    "update_from_jsonl_obj",
    "update_to_jsonl_obj",
    "write_jsonl",
]
