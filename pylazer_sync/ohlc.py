"""OHLC bars from Pyth Pro's history service, as pandas DataFrames.

The history service answers ``GET /v1/{channel}/history?symbol=&resolution=&from=&to=``
(on ``https://history.pyth-lazer.dourolabs.app``; ``from``/``to`` in Unix seconds,
bars whose open time is in ``[from, to]``) in TradingView's UDF shape: ``{"s": "ok",
"t": [...], "o": [...], "h": [...], "l": [...], "c": [...], "v": [...]}``, ``"s":
"no_data"`` for an empty range, ``"s": "error"`` with ``"errmsg"`` for a bad request.
:func:`history` pages through long ranges (a window of ``page_bars`` bars per request),
each request with the REST failover and retry rules, shows a ``tqdm`` progress bar for
long downloads, and keeps the prices exactly as the service wrote them (``Decimal``)
unless floats are asked for.

Bars are aligned as the service aligns them: to multiples of the resolution since the
epoch, days at 00:00 UTC, weeks on Mondays, months on the first (UTC).
"""

from __future__ import annotations

import calendar
import datetime as _dt
import importlib
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final, Literal

from .config import TOKEN_ENV_VAR
from .errors import InvalidRequestError, MissingDependencyError, ProtocolError
from .rest import RestClient, timestamp_us

if TYPE_CHECKING:
    import pandas as pd

    from .client import LazerClient

Numbers = Literal["decimal", "float"]


@dataclass(frozen=True)
class Resolution:
    """A bar size: its name here (``"1m"``), on the wire (``"1"``) and in seconds
    (``None`` for months, which vary)."""

    name: str
    wire: str
    seconds: int | None


RESOLUTIONS: Final = (
    Resolution("1s", "1S", 1),
    Resolution("5s", "5S", 5),
    Resolution("15s", "15S", 15),
    Resolution("30s", "30S", 30),
    Resolution("1m", "1", 60),
    Resolution("2m", "2", 120),
    Resolution("5m", "5", 300),
    Resolution("15m", "15", 900),
    Resolution("30m", "30", 1800),
    Resolution("1h", "60", 3600),
    Resolution("2h", "120", 7200),
    Resolution("4h", "240", 14400),
    Resolution("6h", "360", 21600),
    Resolution("12h", "720", 43200),
    Resolution("1d", "D", 86400),
    Resolution("1w", "W", 604800),
    Resolution("1M", "M", None),
)
"""The resolutions the service documents (1 minute to 1 month), and seconds (``1S``...,
TradingView's names, which the simulator serves; the service may not)."""

_BY_NAME: Final = {
    **{r.wire: r for r in RESOLUTIONS},
    **{r.name.lower(): r for r in RESOLUTIONS if r.name != "1M"},
    "1M": RESOLUTIONS[-1],
    "1D": RESOLUTIONS[-3],
    "1W": RESOLUTIONS[-2],
}
_MONDAY_OFFSET: Final = 4 * 86400  # 1970-01-01 was a Thursday; 1970-01-05 a Monday
DEFAULT_CHANNEL: Final = "fixed_rate@200ms"
"""The channel whose bars are asked for by default: every feed is offered on it."""
DEFAULT_PAGE_BARS: Final = 5000
"""Bars asked for per request: long ranges are fetched in pages of this many."""


def resolution(value: str | Resolution) -> Resolution:
    """A resolution by name (``"1m"``, ``"1h"``, ``"1d"``, ``"1M"``) or wire name (``"1"``,
    ``"60"``, ``"D"``, ``"M"``)."""
    if isinstance(value, Resolution):
        return value
    found = _BY_NAME.get(value) if isinstance(value, str) else None
    if found is None and isinstance(value, str):
        found = _BY_NAME.get(value.lower())
    if found is None:
        names = ", ".join(r.name for r in RESOLUTIONS)
        raise InvalidRequestError(f"resolution: {value!r}; expected one of {names}")
    return found


def bar_start(t_s: int, res: Resolution) -> int:
    """The open time (Unix seconds) of the bar that holds second ``t_s``."""
    if res.seconds is None:
        moment = _dt.datetime.fromtimestamp(t_s, _dt.timezone.utc)
        return calendar.timegm((moment.year, moment.month, 1, 0, 0, 0))
    if res.wire == "W":
        return (t_s - _MONDAY_OFFSET) // res.seconds * res.seconds + _MONDAY_OFFSET
    return t_s // res.seconds * res.seconds


def next_bar(start_s: int, res: Resolution) -> int:
    """The open time of the bar after the one opening at ``start_s``."""
    if res.seconds is not None:
        return start_s + res.seconds
    moment = _dt.datetime.fromtimestamp(start_s, _dt.timezone.utc)
    year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
    return calendar.timegm((year, month, 1, 0, 0, 0))


@dataclass(frozen=True)
class Bar:
    """One OHLC bar: open time (Unix seconds) and prices as the service wrote them."""

    time_s: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal | None = None


def decode_bars(body: bytes | str) -> list[Bar]:
    """A UDF history answer as bars (``no_data``: none); ``s: "error"`` is the request's
    fault (:class:`InvalidRequestError` with the service's text)."""
    try:
        obj = json.loads(body, parse_float=Decimal)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(f"history: the answer is not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise ProtocolError(f"history: expected an object, got {type(obj).__name__}")
    status = obj.get("s")
    if status == "no_data":
        return []
    if status == "error":
        raise InvalidRequestError(f"history: {obj.get('errmsg') or 'the service refused it'}")
    if status != "ok":
        raise ProtocolError(f"history: unknown status {status!r}")
    try:
        times = obj["t"]
        columns = [obj[k] for k in ("o", "h", "l", "c")]
        volumes = obj.get("v")
        if not all(isinstance(c, list) and len(c) == len(times) for c in [times, *columns]):
            raise ValueError("t, o, h, l and c must be lists of one length")
        if volumes is not None and (not isinstance(volumes, list) or len(volumes) != len(times)):
            volumes = None  # volume is optional: a malformed one is left out, not fatal
        return [
            Bar(
                int(times[i]),
                _number(columns[0][i]),
                _number(columns[1][i]),
                _number(columns[2][i]),
                _number(columns[3][i]),
                None if volumes is None or volumes[i] is None else _number(volumes[i]),
            )
            for i in range(len(times))
        ]
    except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
        raise ProtocolError(f"history: malformed bars ({exc})") from None


def _number(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, Decimal, str)):
        raise ValueError(f"{value!r} is not a number")
    number = Decimal(value)
    if not number.is_finite():
        raise ValueError(f"{value!r} is not a finite number")
    return number


def fetch_bars(
    rest: RestClient,
    symbol: str,
    start_us: int,
    end_us: int,
    res: Resolution,
    channel: str = DEFAULT_CHANNEL,
    page_bars: int = DEFAULT_PAGE_BARS,
    progress: bool | None = None,
) -> list[Bar]:
    """Every bar of ``symbol`` from the one holding ``start_us`` to the one holding
    ``end_us``, in time order, fetched ``page_bars`` at a time (each page by the REST
    failover rules); ``progress`` (None: for three pages or more, on a terminal or in
    Jupyter) shows a tqdm bar."""
    if end_us < start_us:
        raise InvalidRequestError("history: end is before start")
    first = bar_start(start_us // 1_000_000, res)
    last = end_us // 1_000_000
    windows: list[tuple[int, int]] = []
    cursor = first
    while cursor <= last:
        stop = cursor
        for _ in range(page_bars):
            stop = next_bar(stop, res)
            if stop > last:
                break
        windows.append((cursor, min(stop - 1, last)))
        cursor = stop
    path = f"/v1/{channel}/history"
    bars: dict[int, Bar] = {}
    with _progress(len(windows), symbol, progress) as advance:
        for lo, hi in windows:
            query = {"symbol": symbol, "resolution": res.wire, "from": str(lo), "to": str(hi)}
            for bar in rest.get_history(path, query, decode_bars):
                if first <= bar.time_s <= last:
                    bars[bar.time_s] = bar
            advance()
    return [bars[t] for t in sorted(bars)]


class _progress:
    """A tqdm bar over ``total`` pages, or nothing."""

    def __init__(self, total: int, label: str, show: bool | None) -> None:
        if show is None:
            interactive = "ipykernel" in sys.modules or sys.stderr.isatty()
            show = total >= 3 and interactive
        self._bar: Any = None
        if show:
            try:
                tqdm = importlib.import_module("tqdm.auto").tqdm
            except ImportError:
                tqdm = None  # the bar is a nicety: no tqdm, no bar
            if tqdm is not None:
                self._bar = tqdm(total=total, desc=f"history {label}", unit="page", leave=False)

    def __enter__(self) -> Callable[[], None]:
        return self._advance

    def _advance(self) -> None:
        if self._bar is not None:
            self._bar.update(1)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.close()


def bars_frame(bars: Sequence[Bar], numbers: Numbers = "decimal", **attrs: Any) -> pd.DataFrame:
    """Bars as a DataFrame: a UTC ``DatetimeIndex`` named ``time`` (the bar's open time);
    ``open``, ``high``, ``low``, ``close`` (and ``volume`` where the service gives it) as
    ``Decimal`` or, with ``numbers="float"``, floats. ``attrs`` go to ``DataFrame.attrs``."""
    pdm = _pandas()
    if numbers not in ("decimal", "float"):
        raise InvalidRequestError(f"numbers: {numbers!r}; expected 'decimal' or 'float'")
    convert: Callable[[Decimal], Any] = float if numbers == "float" else (lambda d: d)
    columns = ["open", "high", "low", "close"]
    data: dict[str, list[Any]] = {
        name: [convert(getattr(b, name)) for b in bars] for name in columns
    }
    if any(b.volume is not None for b in bars):
        data["volume"] = [None if b.volume is None else convert(b.volume) for b in bars]
    index = pdm.to_datetime([b.time_s for b in bars], unit="s", utc=True).rename("time")
    frame: pd.DataFrame = pdm.DataFrame(
        data, index=index, dtype="float64" if numbers == "float" else object
    )
    frame.attrs.update(attrs)
    return frame


def _pandas() -> Any:
    try:
        import pandas
    except ImportError as exc:
        raise MissingDependencyError(
            "history DataFrames need pandas: pip install 'pylazer-sync[pandas]'"
        ) from exc
    return pandas


TimeArg = _dt.datetime | str | int


def moment_us(value: TimeArg, name: str) -> int:
    """Microseconds since the epoch: an aware datetime (a pandas ``Timestamp`` is one), an
    ISO 8601 string (UTC unless it says otherwise; a bare date is midnight UTC), or an
    integer in microseconds. A naive datetime is refused: UTC or local time?"""
    if isinstance(value, str):
        text = value.strip()
        if text[-1:] in ("Z", "z"):
            text = text[:-1] + "+00:00"
        try:
            moment = _dt.datetime.fromisoformat(text)
        except ValueError:
            raise InvalidRequestError(f"{name}: {value!r} is not an ISO 8601 time") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=_dt.timezone.utc)
        return timestamp_us(moment, name)
    return timestamp_us(value, name)


def rest_for(
    client: LazerClient | RestClient | None,
    token: str | None = None,
    history_url: str | Sequence[str] | None = None,
    api_url: str | Sequence[str] | None = None,
) -> RestClient:
    """The REST client to ask: the given client's, else one of production's services (or
    the given URLs) with ``token`` or ``$PYTH_LAZER_TOKEN`` (the history service itself
    needs none)."""
    if isinstance(client, RestClient):
        return client
    if client is not None:
        return client.rest
    return RestClient(
        token or os.environ.get(TOKEN_ENV_VAR) or None,
        history_url=history_url,
        api_url=api_url,
    )


def symbol_of(rest: RestClient, symbol_or_feed: str | int) -> str:
    """The symbol to ask the history service for: a symbol as given; a feed id looked up
    in the catalogue (:class:`InvalidRequestError` if it is not there)."""
    if isinstance(symbol_or_feed, str):
        if not symbol_or_feed:
            raise InvalidRequestError("symbol: empty")
        return symbol_or_feed
    if isinstance(symbol_or_feed, bool) or not isinstance(symbol_or_feed, int):
        raise InvalidRequestError(
            f"symbol_or_feed: expected a symbol or a feed id, got {symbol_or_feed!r}"
        )
    catalogue = rest.symbols()
    for info in catalogue:
        if info.feed_id == symbol_or_feed:
            return info.symbol
    raise InvalidRequestError(
        f"feed {symbol_or_feed} is not in the catalogue ({len(catalogue)} feeds at "
        f"{catalogue.source}); see client.symbols()"
    )


def history(
    symbol_or_feed: str | int,
    start: TimeArg | _dt.timedelta,
    end: TimeArg | None = None,
    resolution: str = "1m",
    *,
    channel: str = DEFAULT_CHANNEL,
    numbers: Numbers = "decimal",
    client: LazerClient | RestClient | None = None,
    token: str | None = None,
    history_url: str | Sequence[str] | None = None,
    api_url: str | Sequence[str] | None = None,
    progress: bool | None = None,
    page_bars: int = DEFAULT_PAGE_BARS,
) -> pd.DataFrame:
    """OHLC bars of a feed (a symbol such as ``"Crypto.BTC/USD"``, or a feed id looked up
    in the catalogue) from ``start`` to ``end`` (default: now), as a DataFrame.

    ``start`` and ``end``: aware datetimes, ISO 8601 strings (UTC unless they say
    otherwise) or microseconds since the epoch; ``start`` may also be a ``timedelta``
    before ``end``. ``resolution``: ``"1m"``, ``"5m"``, ``"1h"``, ``"1d"``, ``"1w"``,
    ``"1M"``... (see :data:`RESOLUTIONS`). The index is the bars' open times (UTC); the
    columns ``open``, ``high``, ``low``, ``close`` (and ``volume`` where the service gives
    one) hold exact ``Decimal`` values, or floats with ``numbers="float"`` (for ``.plot()``
    and ``.resample()``). Long ranges are fetched ``page_bars`` bars per request, each with
    the REST failover and retries, with a progress bar (``progress``: None shows one for
    three pages or more on a terminal or in Jupyter).

    The service is asked through ``client`` (a :class:`~pylazer_sync.LazerClient` or
    :class:`~pylazer_sync.RestClient`: its URLs, token and failover), else production's
    history service (``history_url``) with ``token`` / ``$PYTH_LAZER_TOKEN`` if set.
    Raises :class:`InvalidRequestError` for a feed id the catalogue does not know or a
    request the service refuses, :class:`RestError` when it cannot be reached.
    """
    res = _resolution(resolution)
    if isinstance(page_bars, bool) or not isinstance(page_bars, int) or page_bars < 1:
        raise InvalidRequestError(f"page_bars: {page_bars!r} must be an integer >= 1")
    end_us = moment_us(end, "end") if end is not None else _now_us()
    if isinstance(start, _dt.timedelta):
        start_us = end_us - start // _dt.timedelta(microseconds=1)
    else:
        start_us = moment_us(start, "start")
    rest = rest_for(client, token, history_url, api_url)
    symbol = symbol_of(rest, symbol_or_feed)
    bars = fetch_bars(rest, symbol, start_us, end_us, res, channel, page_bars, progress)
    return bars_frame(bars, numbers, symbol=symbol, resolution=res.name, channel=channel)


def _resolution(value: str | Resolution) -> Resolution:
    return resolution(value)  # history()'s argument of that name hides the function


def _now_us() -> int:
    return time.time_ns() // 1000


__all__ = [
    "RESOLUTIONS",
    "Bar",
    "Resolution",
    "bar_start",
    "bars_frame",
    "decode_bars",
    "fetch_bars",
    "history",
    "moment_us",
    "next_bar",
    "resolution",
]
