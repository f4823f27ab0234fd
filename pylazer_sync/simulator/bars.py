"""The simulator's history service: OHLC bars computed from its own updates.

A bar of a channel holds the prices of that channel's ticks within it, exactly as the
stream sends them (the same market model, the same tick grid): open is the first tick's
price, close the last's, high and low the extremes. So bars from ``/v1/{channel}/history``
and bars built from a live subscription to that channel agree to the last digit. Ticks
without a price (a thin feed below its minimum publishers) are skipped; a bar without any
priced tick is left out, as the service leaves out empty bars. The current bar holds the
ticks up to now.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Final

from ..errors import InvalidRequestError
from ..ohlc import bar_start, next_bar, resolution
from ..protocol import Channel
from .market import Catalogue, MarketModel
from .updates import channel_period_us

MAX_BARS: Final = 10_000
"""Bars one request may ask for (clients page longer ranges)."""
MAX_TICKS: Final = 3_000_000
"""Ticks one request may make the simulator price (a bound on its work, about 30 s)."""


def channel_of(name: str) -> Channel:
    """The channel a ``/v1/{channel}/history`` path names (by name or id)."""
    for channel in Channel:
        if channel.value == name:
            return channel
    ids = {"1": Channel.REAL_TIME, "2": Channel.FIXED_RATE_50MS, "3": Channel.FIXED_RATE_200MS}
    ids["4"] = Channel.FIXED_RATE_1000MS
    if name in ids:
        return ids[name]
    raise InvalidRequestError(f"unknown channel {name!r}")


def udf_history(
    catalogue: Catalogue,
    market: MarketModel,
    channel: Channel,
    query: Mapping[str, str],
    now_us: int,
    real_time_period_us: int,
) -> dict[str, Any]:
    """The UDF answer (``s``, ``t``, ``o``, ``h``, ``l``, ``c``) to one history request."""
    symbol = query.get("symbol", "")
    wanted = symbol.lower()
    info = next((f for f in catalogue if f.symbol.lower() == wanted), None)
    if info is None:
        return {"s": "error", "errmsg": f"unknown symbol {symbol!r}"}
    try:
        res = resolution(query.get("resolution", ""))
        first, last = int(query["from"]), int(query["to"])
    except (KeyError, ValueError, InvalidRequestError) as exc:
        return {"s": "error", "errmsg": f"bad request: {exc}"}
    if last < first:
        return {"s": "error", "errmsg": "to is before from"}
    period = channel_period_us(channel, real_time_period_us)
    last = min(last, now_us // 1_000_000)
    starts = []
    cursor = bar_start(first, res)
    if cursor < first:
        cursor = next_bar(cursor, res)  # bars whose open time is in [from, to]
    while cursor <= last:
        starts.append(cursor)
        cursor = next_bar(cursor, res)
        if len(starts) > MAX_BARS:
            return {"s": "error", "errmsg": f"more than {MAX_BARS} bars: ask for less"}
    if not starts:
        return {"s": "no_data"}
    span_us = (next_bar(starts[-1], res) - starts[0]) * 1_000_000
    if span_us // period > MAX_TICKS:
        return {"s": "error", "errmsg": "range too long for this channel: ask for less"}
    out: dict[str, list[Any]] = {"t": [], "o": [], "h": [], "l": [], "c": []}
    for start in starts:
        lo = start * 1_000_000
        hi = min(next_bar(start, res) * 1_000_000, now_us + 1)
        prices: list[Decimal] = []
        tick = -(-lo // period) * period  # the first tick at or after the bar's open
        while tick < hi:
            values = market.feed_update(info.feed_id, tick)
            if values.price is not None:
                prices.append(Decimal(values.price).scaleb(info.exponent))
            tick += period
        if prices:
            out["t"].append(start)
            for key, value in zip(
                "ohlc", (prices[0], max(prices), min(prices), prices[-1]), strict=True
            ):
                out[key].append(float(value))  # JSON numbers, as the service writes them
    if not out["t"]:
        return {"s": "no_data"}
    return {"s": "ok", **out}
