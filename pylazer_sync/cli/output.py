"""What the commands print: the price table, JSON lines, the columns of a request, and a
status line on a terminal."""

from __future__ import annotations

import datetime as _dt
import json
import os
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


def size(n: int) -> str:
    """A byte count for a person: ``512 B``, ``1.5 KiB``, ``23.4 MiB``, ``1.2 GiB``."""
    if n < 1024:
        return f"{n} B"
    value, unit = n / 1024, "KiB"
    for bigger in ("MiB", "GiB"):
        if value < 1024:
            break
        value, unit = value / 1024, bigger
    return f"{value:.1f} {unit}"


def _columns(out: TextIO) -> int:
    try:
        columns = os.get_terminal_size(out.fileno()).columns
    except (AttributeError, OSError, ValueError):
        columns = 0
    return columns or 80  # 0: a terminal that does not say its size


class StatusLine:
    """One line of status on a terminal, rewritten in place with ``\\r``.

    Only on a terminal: in a pipe or a log file, a line rewritten every half second
    would be a line of noise every half second, so there it shows nothing. Used from
    one thread at a time; :meth:`clear` it before printing anything else.
    """

    def __init__(self, out: TextIO) -> None:
        self._out = out
        try:
            self.enabled = out.isatty()
        except (AttributeError, ValueError):  # no isatty, or closed
            self.enabled = False
        self._width = 0  # characters of the status now on screen

    def show(self, text: str) -> None:
        """Replace the status with ``text`` (cut to the terminal's width: a line that
        wrapped could no longer be rewritten by ``\\r``)."""
        if not self.enabled:
            return
        text = text[: max(_columns(self._out) - 1, 1)]
        self._out.write(f"\r{text}{' ' * max(self._width - len(text), 0)}")
        self._out.flush()
        self._width = len(text)

    def clear(self) -> None:
        """Blank the status, so that an ordinary line can follow."""
        if self.enabled and self._width:
            self._out.write(f"\r{' ' * self._width}\r")
            self._out.flush()
            self._width = 0
