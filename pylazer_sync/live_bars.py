"""OHLC bars that start from history and go on with the live stream (``frames.live_frame``).

A :class:`LiveBars` subscribes to its feeds on one channel, fetches the finished bars of
the last ``history`` from the history service, and then folds every update it reads from
the client into bars of the same resolution: open is the bar's first price, close its
last, high and low the extremes. The history service computes its bars from the same
channel's updates, so a bar built live equals the bar the service gives for it later.

Two joins need care, and get it:

- Updates already counted in a history bar are not counted again: the live bars start
  at the bar after the last history bar, and updates older than that are skipped.
- The first live bar began before the subscription did, so its first updates are missing
  here. It is marked ``partial`` and, once the stream has moved past it (the service has
  the whole bar), it is fetched from the history service and replaced.
"""

from __future__ import annotations

import datetime as _dt
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final

from .errors import InvalidRequestError, LazerError
from .ohlc import (
    DEFAULT_CHANNEL,
    Bar,
    Numbers,
    Resolution,
    _pandas,
    bar_start,
    fetch_bars,
    resolution,
)
from .protocol import StreamUpdate

if TYPE_CHECKING:
    import pandas as pd

    from .client import LazerClient
    from .rest import RestClient

OTHER_MESSAGES_KEPT: Final = 1000
"""Messages of other subscriptions read meanwhile that :attr:`LiveBars.other` keeps."""


@dataclass
class _Series:
    """One feed's bars, oldest first, and where live folding stands."""

    feed_id: int
    symbol: str
    bars: dict[int, Bar]
    sources: dict[int, str]
    counts: dict[int, int]  # live updates folded into each bar
    live_from_s: int  # updates before this second are history's
    partial: int | None  # the open time of the first live bar while it lacks its start


class LiveBars:
    """Bars of some feeds, from history, extended by the live stream.

    Made by :func:`pylazer_sync.frames.live_frame`. It reads the client's message queue
    (``recv_many``) in :meth:`update`: give it a client of its own, or look at
    :attr:`other` for what else arrived (the last :data:`OTHER_MESSAGES_KEPT`).
    """

    def __init__(
        self,
        client: LazerClient,
        feeds: Sequence[int | str],
        history: _dt.timedelta,
        resolution_: str | Resolution = "1m",
        channel: str = DEFAULT_CHANNEL,
        numbers: Numbers = "decimal",
    ) -> None:
        if numbers not in ("decimal", "float"):
            raise InvalidRequestError(f"numbers: {numbers!r}; expected 'decimal' or 'float'")
        self.client = client
        self.resolution = resolution(resolution_)
        if self.resolution.seconds is None:
            raise InvalidRequestError("live bars: months vary in length; use 1w or shorter")
        self.channel = channel
        self.numbers = numbers
        self.other: deque[Any] = deque(maxlen=OTHER_MESSAGES_KEPT)
        rest: RestClient = client.rest
        ids = _feed_ids(rest, feeds)
        # Subscribe first, then ask for history: nothing between the two is missed.
        self.subscription_id = client.subscribe(
            price_feed_ids=[fid for fid, _ in ids],
            properties=["price", "exponent"],
            channel=channel,
        )
        now_s = time.time_ns() // 1_000_000_000
        current = bar_start(now_s, self.resolution)
        start_us = (current * 1_000_000) - history // _dt.timedelta(microseconds=1)
        self._series: dict[int, _Series] = {}
        for fid, symbol in ids:
            bars = (
                fetch_bars(
                    rest, symbol, start_us, current * 1_000_000 - 1, self.resolution, channel
                )
                if start_us < current * 1_000_000
                else []
            )
            self._series[fid] = _Series(
                feed_id=fid,
                symbol=symbol,
                bars={b.time_s: b for b in bars},
                sources=dict.fromkeys((b.time_s for b in bars), "history"),
                counts={},
                live_from_s=current,
                partial=current,
            )

    def __repr__(self) -> str:
        names = ", ".join(s.symbol for s in self._series.values())
        return f"LiveBars({names}, {self.resolution.name}, {self.channel})"

    @property
    def symbols(self) -> list[str]:
        """The feeds' symbols, in the order given."""
        return [s.symbol for s in self._series.values()]

    def update(self, timeout: float = 0.0) -> pd.DataFrame:
        """Fold in whatever updates the client has queued (waiting up to ``timeout`` for a
        first one) and return :attr:`frame`."""
        for message in self.client.recv_many(timeout=timeout):
            if (
                isinstance(message, StreamUpdate)
                and message.subscription_id == self.subscription_id
            ):
                self.add(message)
            else:
                self.other.append(message)
        self._repair()
        return self.frame

    def add(self, update: StreamUpdate) -> None:
        """Fold one update of the subscription into its feeds' bars."""
        stamp = update.timestamp_us
        if stamp is None:
            return
        second = stamp // 1_000_000
        for feed in update.feeds:
            series = self._series.get(feed.feed_id)
            if series is None or second < series.live_from_s:
                continue
            price = feed.real("price")
            if price is None:
                continue
            start = bar_start(second, self.resolution)
            bar = series.bars.get(start)
            series.bars[start] = (
                Bar(start, price, price, price, price)
                if bar is None
                else replace(bar, high=max(bar.high, price), low=min(bar.low, price), close=price)
            )
            series.sources.setdefault(start, "live")
            series.counts[start] = series.counts.get(start, 0) + 1

    def _repair(self) -> None:
        """Fetch the first live bar from history once the stream has gone past it."""
        for series in self._series.values():
            partial = series.partial
            if partial is None or max(series.bars, default=partial) <= partial:
                continue
            try:
                bars = fetch_bars(
                    self.client.rest,
                    series.symbol,
                    partial * 1_000_000,
                    partial * 1_000_000,
                    self.resolution,
                    self.channel,
                )
            except LazerError:
                continue  # the live approximation stays until the next update() succeeds
            for bar in bars:
                if bar.time_s == partial:
                    series.bars[partial] = bar
                    series.sources[partial] = "history"
            series.partial = None

    @property
    def frame(self) -> pd.DataFrame:
        """Every bar so far: index (``symbol``, ``time``), columns ``open``, ``high``,
        ``low``, ``close`` (exact ``Decimal``, or floats with ``numbers="float"``),
        ``source``: ``history``, ``live``, or ``partial`` (a first live bar that lacks its
        start, until the history service's copy replaces it), and ``updates``: how many
        live updates went into the bar."""
        pdm = _pandas()
        rows: list[dict[str, Any]] = []
        as_number = float if self.numbers == "float" else _same
        for series in self._series.values():
            for start in sorted(series.bars):
                bar = series.bars[start]
                source = series.sources[start]
                if start == series.partial:
                    source = "partial"
                rows.append(
                    {
                        "symbol": series.symbol,
                        "time": pdm.Timestamp(start, unit="s", tz="UTC"),
                        "open": as_number(bar.open),
                        "high": as_number(bar.high),
                        "low": as_number(bar.low),
                        "close": as_number(bar.close),
                        "source": source,
                        "updates": series.counts.get(start, 0),
                    }
                )
        columns = ["symbol", "time", "open", "high", "low", "close", "source", "updates"]
        frame: pd.DataFrame = pdm.DataFrame(rows, columns=columns).set_index(["symbol", "time"])
        frame.attrs.update(resolution=self.resolution.name, channel=self.channel)
        return frame

    def close(self) -> None:
        """Stop the live subscription (the client stays open)."""
        self.client.unsubscribe(self.subscription_id)


def _same(value: Decimal) -> Decimal:
    return value


def _feed_ids(rest: RestClient, feeds: Iterable[int | str]) -> list[tuple[int, str]]:
    """(feed id, symbol) of each feed given by id or symbol, from the catalogue."""
    wanted = list(feeds)
    if not wanted:
        raise InvalidRequestError("feeds: at least one feed id or symbol must be given")
    catalogue = rest.symbols()
    by_id = {e.feed_id: e.symbol for e in catalogue}
    by_symbol = {e.symbol: e.feed_id for e in catalogue}
    out: list[tuple[int, str]] = []
    for feed in wanted:
        if isinstance(feed, str) and feed in by_symbol:
            out.append((by_symbol[feed], feed))
        elif isinstance(feed, int) and not isinstance(feed, bool) and feed in by_id:
            out.append((feed, by_id[feed]))
        else:
            raise InvalidRequestError(
                f"feed {feed!r} is not in the catalogue ({len(catalogue)} feeds at "
                f"{catalogue.source}); see client.symbols()"
            )
    return out
