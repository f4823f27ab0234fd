"""The Parquet layout of a recording: one row per feed per update, typed columns.

Columns, in this order:

* ``timestamp``: the update's time (UTC, microseconds); ``received_at``: when the recorder
  took it (UTC, microseconds);
* ``subscription_id`` (uint64), ``channel_id`` (uint8, null if unknown), ``feed_id`` (uint32);
* one column per property, named as on :class:`~pylazer_sync.FeedUpdate`: integer
  mantissas (int64), ``publisher_count`` (uint16), ``exponent`` (int16),
  ``funding_rate_interval`` (uint64), ``market_session`` (string), timestamps
  (``funding_timestamp``, ``feed_update_timestamp``) as UTC timestamps; null where the
  update had no value;
* ``frame`` (binary) and ``frame_is_text`` (bool): the raw WebSocket frame the update came
  in, on the update's first row only (null on the others), so that the recording decodes,
  verifies and replays exactly what was received.

No number is stored as a string. An update without feeds has one row with a null
``feed_id``. Everything here needs pyarrow (the ``parquet`` extra), imported on first use.
"""

from __future__ import annotations

import logging
import operator
import time
from collections.abc import Callable
from typing import Any, Final

from ..errors import MissingDependencyError
from ..protocol import Property, StreamUpdate
from ..protocol.types import PROPERTY_ATTRS
from .updates import channel_id_of, frame_of

logger = logging.getLogger(__name__)

FORMAT_KEY: Final = b"pylazer_sync.recording"
FORMAT_VERSION: Final = b"1"
"""Schema metadata that marks a file as a recording of this layout (and its version)."""

PROPERTY_COLUMNS: Final = tuple(PROPERTY_ATTRS[p] for p in Property)
"""The property columns, in property-id order (as ``updates_frame`` orders them)."""
TIMESTAMP_COLUMNS: Final = frozenset({"funding_timestamp", "feed_update_timestamp"})
FEED_COLUMNS: Final = ("feed_id", *PROPERTY_COLUMNS)


def pyarrow() -> Any:
    """The pyarrow module, or :class:`~pylazer_sync.MissingDependencyError` naming the extra."""
    try:
        import pyarrow
        import pyarrow.compute
        import pyarrow.parquet  # submodules: imported here for the callers' pa.parquet
    except ImportError as exc:
        raise MissingDependencyError(
            "Parquet recordings need pyarrow: pip install 'pylazer-sync[parquet]'"
        ) from exc
    return pyarrow


def _property_type(pa: Any, attr: str) -> Any:
    if attr in TIMESTAMP_COLUMNS:
        return pa.timestamp("us", tz="UTC")
    special = {
        "publisher_count": pa.uint16(),
        "exponent": pa.int16(),
        "funding_rate_interval": pa.uint64(),
        "market_session": pa.string(),
    }
    return special.get(attr, pa.int64())


def schema() -> Any:
    """The Arrow schema (``pyarrow.Schema``) of a recording file."""
    pa = pyarrow()
    utc = pa.timestamp("us", tz="UTC")
    fields = [
        pa.field("timestamp", utc),
        pa.field("received_at", utc),
        pa.field("subscription_id", pa.uint64()),
        pa.field("channel_id", pa.uint8()),
        pa.field("feed_id", pa.uint32()),
        *(pa.field(attr, _property_type(pa, attr)) for attr in PROPERTY_COLUMNS),
        pa.field("frame", pa.binary()),
        pa.field("frame_is_text", pa.bool_()),
    ]
    return pa.schema(fields, metadata={FORMAT_KEY: FORMAT_VERSION})


_feed_values: Final[Callable[[Any], tuple[Any, ...]]] = operator.attrgetter(*FEED_COLUMNS)
_NO_FEED: Final = (None,) * len(FEED_COLUMNS)


class RowBuffer:
    """Rows of updates on their way to a file, kept as plain Python lists.

    Adding an update is a few list appends (the per-feed values come out of one
    ``attrgetter`` call); the columns are built by Arrow, in C, when the rows are taken.
    """

    def __init__(self) -> None:
        self._schema = schema()
        self._clear()

    def _clear(self) -> None:
        self._timestamp: list[int | None] = []
        self._received: list[int] = []
        self._subscription: list[int] = []
        self._channel: list[int | None] = []
        self._feeds: list[tuple[Any, ...]] = []
        self._frame: list[bytes | None] = []
        self._is_text: list[bool | None] = []
        self.updates = 0

    @property
    def rows(self) -> int:
        """Rows buffered."""
        return len(self._feeds)

    def add(self, update: StreamUpdate, received_at: float | None = None) -> None:
        """Buffer the rows of one update (``received_at``: ``time.time()`` if not given)."""
        payload = update.payload
        feeds = payload.feeds if payload is not None else []
        n = len(feeds) or 1
        frame, is_text = frame_of(update)
        received_us = int((time.time() if received_at is None else received_at) * 1_000_000)
        self._timestamp.extend([payload.timestamp_us if payload is not None else None] * n)
        self._received.extend([received_us] * n)
        self._subscription.extend([update.subscription_id] * n)
        self._channel.extend([channel_id_of(update)] * n)
        if feeds:
            self._feeds.extend([_feed_values(f) for f in feeds])
        else:
            self._feeds.append(_NO_FEED)
        self._frame.append(frame)
        self._is_text.append(is_text)
        if n > 1:
            self._frame.extend([None] * (n - 1))
            self._is_text.extend([None] * (n - 1))
        self.updates += 1

    def take(self) -> Any:
        """The buffered rows as a ``pyarrow.Table`` of the recording's schema; the buffer is emptied."""
        pa = pyarrow()
        columns: dict[str, list[Any]] = {
            "timestamp": self._timestamp,
            "received_at": self._received,
            "subscription_id": self._subscription,
            "channel_id": self._channel,
        }
        transposed = list(zip(*self._feeds, strict=True)) or [()] * len(FEED_COLUMNS)
        columns.update(zip(FEED_COLUMNS, (list(c) for c in transposed), strict=True))
        columns["frame"] = self._frame
        columns["frame_is_text"] = self._is_text
        arrays = [_array(pa, columns[f.name], f) for f in self._schema]
        self._clear()
        return pa.Table.from_arrays(arrays, schema=self._schema)


def _array(pa: Any, values: list[Any], field: Any) -> Any:
    try:
        return pa.array(values, type=field.type)
    except (OverflowError, pa.ArrowInvalid):
        # A value outside the column's type (a u64 funding timestamp past year 2262, say):
        # left null here; the frame column keeps it exactly. Rare, so checked only now.
        kept = [v if _fits(pa, v, field.type) else None for v in values]
        logger.warning("recording: values outside %s left null in column %s", field.type, field)
        return pa.array(kept, type=field.type)


def _fits(pa: Any, value: Any, type_: Any) -> bool:
    try:
        pa.scalar(value, type=type_)
    except (OverflowError, pa.ArrowInvalid):
        return False
    return True
