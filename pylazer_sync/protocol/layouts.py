"""Precompiled byte layouts of binary feeds: one ``struct`` unpack per feed, not one per value.

A subscription fixes the property list of its feeds, so every feed of every update has
the same byte layout (up to the flags of the funding and feedUpdateTimestamp values).
The general walker in ``payload.py`` reads a feed value by value, which costs a Python
loop turn per property. Once a payload has decoded through the walker, each of its
feeds' layouts is compiled here into one :class:`struct.Struct` and one small reader
function; later feeds with the same layout are read with a single ``unpack_from``.

A reader checks everything that decides the layout (the property count, every property
id, every flag) against the bytes it unpacked and returns ``None`` on any difference; the
caller then walks that payload, which reads whatever the bytes hold and words each error.
So a layout can only be used where it is exact, and a stale or wrong one costs a walk,
never a wrong value.
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Callable
from typing import Any, Final

from .types import (
    MARKET_SESSION_BY_CODE,
    PROPERTY_ATTRS,
    PROPERTY_BY_ID,
    PROPERTY_IDS,
    Property,
)

# Kinds of binary property values (PROTOCOL.md's "binary value" column).
I64_NULLABLE, U16, I16, FLAG_I64, FLAG_U64, SESSION = range(6)

KIND_BY_PROPERTY: Final[dict[Property, int]] = {
    Property.PRICE: I64_NULLABLE,
    Property.BEST_BID_PRICE: I64_NULLABLE,
    Property.BEST_ASK_PRICE: I64_NULLABLE,
    Property.PUBLISHER_COUNT: U16,
    Property.EXPONENT: I16,
    Property.CONFIDENCE: I64_NULLABLE,
    Property.FUNDING_RATE: FLAG_I64,
    Property.FUNDING_TIMESTAMP: FLAG_U64,
    Property.FUNDING_RATE_INTERVAL: FLAG_U64,
    Property.MARKET_SESSION: SESSION,
    Property.EMA_PRICE: I64_NULLABLE,
    Property.EMA_CONFIDENCE: I64_NULLABLE,
    Property.FEED_UPDATE_TIMESTAMP: FLAG_U64,
}

# struct codes of the value that follows the property id (and the flag, if any).
_VALUE_CODE: Final = {
    I64_NULLABLE: "q",
    U16: "H",
    I16: "h",
    FLAG_I64: "q",
    FLAG_U64: "Q",
    SESSION: "h",
}

# Session code -> name, as the walker spells it (an unknown code becomes its decimal string).
SESSION_NAMES: Final[dict[int, str]] = {c: s.value for c, s in MARKET_SESSION_BY_CODE.items()}

# At most this many layouts are kept per byte order (a subscription needs a handful).
# Inputs that differ only in their bytes never add one: layouts are learned from payloads
# that decoded, so the cache is bounded by the shapes seen, not the inputs.
MAX_LAYOUTS: Final = 64
# Layouts tried per (property count, first property id): feeds of one payload may differ
# in their funding flags.
_CANDIDATES: Final = 4

Reader = Callable[[bytes, int], Any]
"""A compiled layout: ``read(data, offset)`` -> a FeedUpdate, or ``None`` if the bytes there
do not have this layout. Raises ``struct.error`` when the data ends before the layout does."""

# (property id, flag) per property; the flag is None for unflagged kinds, else 0 or 1.
Signature = tuple[tuple[int, int | None], ...]


def _reader_source(signature: Signature) -> tuple[str, str]:
    """The struct format (without byte order) and the body of the reader for a signature.

    Generated code, as ``dataclasses`` and ``namedtuple`` do: a reader that unpacks, checks
    and builds a feed in one expression per step is what makes this faster than the
    walker; a table-driven loop would be the walker again. Only integers and names chosen
    here go into the source, never input bytes.
    """
    fmt = ["IB"]
    fields = ["feed_id", "count"]
    checks = ["count"]
    slots = ["None"] * len(Property)
    for i, (prop_id, flag) in enumerate(signature):
        kind = KIND_BY_PROPERTY[PROPERTY_BY_ID[prop_id]]
        fmt.append("B")
        fields.append(f"k{i}")
        checks.append(f"k{i}")
        if flag is not None:
            fmt.append("B")
            fields.append(f"f{i}")
            checks.append(f"f{i}")
            if not flag:
                slots[prop_id] = "None"
                continue
        fmt.append(_VALUE_CODE[kind])
        fields.append(f"v{i}")
        if kind == I64_NULLABLE:
            slots[prop_id] = f"v{i} or None"  # binary 0 means absent
        elif kind == SESSION:
            slots[prop_id] = f"sessions.get(v{i}) or str(v{i})"
        else:
            slots[prop_id] = f"v{i}"
    body = (
        "def read(data, off):\n"
        f"    ({', '.join(fields)},) = unpack_from(data, off)\n"
        f"    if ({', '.join(checks)},) != expected:\n"
        "        return None\n"
        f"    return new_feed(feed_id, {', '.join(slots)}, props)\n"
    )
    return "".join(fmt), body


def compile_layout(
    prefix: str, signature: Signature, new_feed: Callable[..., Any]
) -> tuple[Reader, int]:
    """The reader and the byte size of one feed layout (``prefix`` is ``<`` or ``>``)."""
    fmt, body = _reader_source(signature)
    layout = struct.Struct(prefix + fmt)
    expected = [len(signature)]
    for prop_id, flag in signature:
        expected.append(prop_id)
        if flag is not None:
            expected.append(flag)
    namespace: dict[str, Any] = {
        "unpack_from": layout.unpack_from,
        "expected": tuple(expected),
        "new_feed": new_feed,
        "props": tuple(PROPERTY_BY_ID[prop_id] for prop_id, _ in signature),
        "sessions": SESSION_NAMES,
    }
    exec(body, namespace)  # the source is built above from integers and fixed names only
    reader: Reader = namespace["read"]
    return reader, layout.size


def signature_of(feed: Any) -> Signature | None:
    """The layout signature of a decoded feed, or ``None`` if it cannot have a layout.

    A flagged value is present (flag 1) exactly when the decoded value is not ``None``.
    Feeds without properties, or with a property twice (the walker keeps the last value),
    are left to the walker.
    """
    properties: tuple[Property, ...] = feed.properties
    if not properties or len(set(properties)) != len(properties):
        return None
    out: list[tuple[int, int | None]] = []
    for prop in properties:
        kind = KIND_BY_PROPERTY[prop]
        if kind in (FLAG_I64, FLAG_U64):
            out.append(
                (PROPERTY_IDS[prop], 0 if getattr(feed, PROPERTY_ATTRS[prop]) is None else 1)
            )
        else:
            out.append((PROPERTY_IDS[prop], None))
    return tuple(out)


class LayoutCache:
    """The compiled layouts of one byte order, found by (property count, first property id).

    Shared by every thread that decodes (the dedup thread, user code): lookups are plain
    dict reads, and the few writes replace whole entries under a lock.
    """

    __slots__ = ("_by_signature", "_lock", "hints", "new_feed", "prefix")

    def __init__(self, prefix: str, new_feed: Callable[..., Any]) -> None:
        self.prefix = prefix
        self.new_feed = new_feed
        # The two bytes after a feed id (property count, first property id) -> candidates.
        self.hints: dict[bytes, tuple[tuple[Reader, int], ...]] = {}
        self._by_signature: dict[Signature, tuple[Reader, int]] = {}
        self._lock = threading.Lock()

    def learn(self, signature: Signature) -> None:
        """Compile (once) the layout of a feed that decoded, and make it the first candidate."""
        key = bytes((len(signature), signature[0][0]))
        known = self.hints.get(key)
        if known and known[0] is self._by_signature.get(signature):
            return  # already the first candidate: the common case, without the lock
        with self._lock:
            entry = self._by_signature.get(signature)
            if entry is None:
                if len(self._by_signature) >= MAX_LAYOUTS:
                    self._by_signature.clear()
                    self.hints = {}
                entry = compile_layout(self.prefix, signature, self.new_feed)
                self._by_signature[signature] = entry
            others = tuple(c for c in self.hints.get(key, ()) if c is not entry)
            self.hints[key] = (entry, *others)[:_CANDIDATES]

    def __len__(self) -> int:
        return len(self._by_signature)
