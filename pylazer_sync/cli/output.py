"""What the commands print: the price table, JSON lines, and the columns of a request."""

from __future__ import annotations

import datetime as _dt
import json
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Final, TextIO

from ..errors import LazerError
from ..frames import update_to_jsonl_obj
from ..protocol import FeedUpdate, Property, StreamUpdate
from ..protocol.types import PRICE_LIKE_ATTRS, PROPERTY_ATTRS
from ..rest import SymbolInfo

if TYPE_CHECKING:
    from .verify import Verifier

_HEADINGS: Final = {
    "price": "price",
    "best_bid_price": "bid",
    "best_ask_price": "ask",
    "publisher_count": "pubs",
    "exponent": "expo",
    "confidence": "conf",
    "funding_rate": "funding",
    "funding_timestamp": "funding_time",
    "funding_rate_interval": "funding_every",
    "market_session": "session",
    "ema_price": "ema",
    "ema_confidence": "ema_conf",
    "feed_update_timestamp": "updated",
}


def _width(attr: str) -> int:
    if attr in PRICE_LIKE_ATTRS:
        return 15
    if attr in ("feed_update_timestamp", "funding_timestamp", "funding_rate_interval"):
        return 25 if attr == "funding_timestamp" else 14
    return max(len(_HEADINGS[attr]), 5)


def _utc(timestamp_us: int) -> _dt.datetime:
    return _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc) + _dt.timedelta(
        microseconds=timestamp_us
    )


def clock(timestamp_us: int | None, dated: bool = False) -> str:
    """``HH:MM:SS.mmm`` (UTC) of a timestamp in microseconds, after ``YYYY-MM-DD`` if
    ``dated``; ``-`` if unknown."""
    if timestamp_us is None:
        return "-"
    return _utc(timestamp_us).strftime("%Y-%m-%d %H:%M:%S.%f" if dated else "%H:%M:%S.%f")[:-3]


def _cell(feed: FeedUpdate, attr: str) -> str:
    value = getattr(feed, attr)
    if value is None:
        return "-"
    if attr in PRICE_LIKE_ATTRS:
        real = feed.real(attr)
        return str(value) if real is None else format(real, "f")
    if attr == "feed_update_timestamp":
        return clock(value)
    if attr == "funding_timestamp":
        return _utc(value).isoformat(timespec="seconds")
    if attr == "funding_rate_interval":
        return str(_dt.timedelta(microseconds=value))
    return str(value)


class Table:
    """Rows of feed values under a header printed once; columns are the asked properties.

    A feed is shown by its name in ``names`` (its symbol), else by its id. With
    ``dated``, the time column has the date too (a REST answer may be from any day).
    """

    def __init__(
        self,
        out: TextIO,
        attrs: Sequence[str],
        names: dict[int, str] | None = None,
        extra: Sequence[str] = (),
        dated: bool = False,
    ) -> None:
        self._out = out
        self._attrs = list(attrs)
        self._names = names or {}
        self._extra = list(extra)
        self._dated = dated
        self._time_width = 23 if dated else 12
        self._feed_width = max([16, *(len(name) for name in self._names.values())])
        self._header_done = False

    def _line(self, cells: Sequence[str]) -> str:
        time_cell, feed_cell, *values = cells
        n = len(self._attrs)
        parts = [f"{time_cell:<{self._time_width}}", f"{feed_cell:<{self._feed_width}}"]
        parts += [f"{v:>{_width(a)}}" for a, v in zip(self._attrs, values[:n], strict=True)]
        parts += values[n:]
        return "  ".join(parts).rstrip()

    def header(self) -> None:
        """Print the header (once)."""
        if not self._header_done:
            self._header_done = True
            cells = ["time (UTC)", "feed", *(_HEADINGS[a] for a in self._attrs), *self._extra]
            print(self._line(cells), file=self._out, flush=True)

    def update(self, update: StreamUpdate, extra: Sequence[str] = ()) -> None:
        """One row per feed of an update (``extra`` cells after the values)."""
        self.header()
        time_cell = clock(update.timestamp_us, self._dated)
        lines = []
        for feed in update.feeds:
            name = self._names.get(feed.feed_id, str(feed.feed_id))
            cells = [time_cell, name, *(_cell(feed, a) for a in self._attrs), *extra]
            lines.append(self._line(cells))
        if lines:
            print("\n".join(lines), file=self._out, flush=True)


def symbol_names(
    lookup: Callable[[str], Sequence[SymbolInfo]], symbols: Sequence[str]
) -> dict[int, str]:
    """Feed id -> symbol for the subscribed symbols, from the catalogue (``lookup`` is a
    REST ``symbols(query)``): the stream and the REST answers name feeds by id only.

    The table is worth having without the names: if the catalogue cannot be asked, a
    note says so and the table shows feed ids.
    """
    names: dict[int, str] = {}
    try:
        for symbol in symbols:
            names.update((e.feed_id, e.symbol) for e in lookup(symbol) if e.symbol == symbol)
    except LazerError as exc:
        print(f"note: feed ids are shown: the symbols catalogue failed: {exc}", file=sys.stderr)
    return names


def print_jsonl(out: TextIO, obj: Any) -> None:
    """One compact JSON object on one line."""
    print(json.dumps(obj, separators=(",", ":")), file=out, flush=True)


def columns(properties: Sequence[Property]) -> list[str]:
    """The table's value columns for a request's properties, in snake_case."""
    attrs = [PROPERTY_ATTRS[p] for p in properties]
    if Property.EXPONENT not in properties:
        print(
            "note: 'exponent' is not among the properties, so prices are raw mantissas",
            file=sys.stderr,
        )
    return attrs


def show_update(update: StreamUpdate, table: Table | None, verifier: Verifier | None) -> None:
    """Check an update (with ``--verify``), then print it as a table or a JSON line."""
    if verifier is not None:
        verifier.check(update)
    if table is not None:
        table.update(update)
    else:
        print_jsonl(sys.stdout, update_to_jsonl_obj(update))
