"""Stream updates as data: pandas DataFrames over updates, snapshots and recordings.

"How do I analyse what I received?":

* :func:`updates_frame` / :func:`latest_frame` turn updates (or the client's latest-value
  snapshot) into a tidy :class:`pandas.DataFrame`, one row per feed update.
* :func:`read_parquet` loads a Parquet recording (one file or a directory of them, see
  :class:`~pylazer_sync.recording.ParquetRecorder`) into the same layout, filtered by feed
  and time as it is read.
* :func:`live_frame` starts OHLC bars from the history service and extends them with the
  live stream (see :mod:`pylazer_sync.live_bars`; :func:`pylazer_sync.history` for bars
  alone).
* :func:`read_recording`, :func:`read_jsonl` and :func:`write_jsonl` come from
  :mod:`pylazer_sync.recording` (re-exported here): recordings read back as the very same
  typed :class:`~pylazer_sync.StreamUpdate` objects, signed envelopes included.

pandas is imported only when a DataFrame is asked for, so this module (and the jsonl
helpers) work without the ``pandas`` extra; pyarrow only when Parquet is read.
"""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Final, Literal

from .errors import InvalidRequestError, MissingDependencyError
from .protocol import FeedUpdate, StreamUpdate
from .protocol.types import PRICE_LIKE_ATTRS, PROPERTY_ATTRS, Property
from .recording import (
    JsonlReader,
    feed_to_jsonl_obj,
    read_jsonl,
    read_recording,
    update_from_jsonl_obj,
    update_to_jsonl_obj,
    write_jsonl,
)
from .recording.columns import PROPERTY_COLUMNS, pyarrow, schema
from .recording.reader import parquet_files

if TYPE_CHECKING:
    import pandas as pd

    from .client import LazerClient
    from .live_bars import LiveBars
    from .rest import SymbolInfo

Numbers = Literal["decimal", "float"]
"""How price-like values appear in a DataFrame: exact ``Decimal`` objects or ``float``."""

SymbolsLike = Mapping[int, str] | Iterable["SymbolInfo"]
"""Feed id -> symbol, as a mapping or as the list ``client.symbols()`` returns."""

TimeLike = _dt.datetime | str | int
"""A moment: a datetime (naive means UTC), an ISO 8601 string, or microseconds since the epoch."""

# Property attributes in property-id order: the DataFrame's column order.
_VALUE_ATTRS: Final = tuple(PROPERTY_ATTRS[p] for p in Property)
# Integer properties that are timestamps in microseconds: shown as UTC datetimes.
_TIMESTAMP_ATTRS: Final = frozenset({"feed_update_timestamp", "funding_timestamp"})
# Integer properties shown as nullable integers (a feed may lack a value).
_NULLABLE_INT_ATTRS: Final = ("publisher_count", "exponent", "funding_rate_interval")
_FIRST_COLUMNS: Final = ["timestamp", "subscription_id", "feed_id", "symbol"]


def _updates_only(messages: Iterable[Any]) -> Iterator[StreamUpdate]:
    # Callers pass what recv_many() returns; Subscribed & co. have no rows.
    for m in messages:
        if isinstance(m, StreamUpdate):
            yield m


# ---------------------------------------------------------------------------------
# DataFrames (pandas, imported on first use)
# ---------------------------------------------------------------------------------


def _pandas() -> Any:
    try:
        import pandas
    except ImportError as exc:
        raise MissingDependencyError(
            "DataFrames need pandas: pip install 'pylazer-sync[pandas]'"
        ) from exc
    return pandas


def symbol_map(symbols: SymbolsLike | None) -> dict[int, str]:
    """Feed id -> symbol from a mapping or from ``SymbolInfo`` entries (``client.symbols()``)."""
    if symbols is None:
        return {}
    if isinstance(symbols, Mapping):
        return {int(k): str(v) for k, v in symbols.items()}
    return {info.feed_id: info.symbol for info in symbols}


def _utc(timestamp_us: int) -> _dt.datetime:
    return _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc) + _dt.timedelta(
        microseconds=timestamp_us
    )


def _feed_row(feed: FeedUpdate, numbers: Numbers) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for attr in _VALUE_ATTRS:
        value = getattr(feed, attr)
        if value is None:
            continue
        if attr in PRICE_LIKE_ATTRS:
            real = feed.real(attr)
            if real is not None:  # without an exponent the mantissa is all there is
                value = float(real) if numbers == "float" else real
        elif attr in _TIMESTAMP_ATTRS:
            value = _utc(value)
        row[attr] = value
    return row


def _frame(rows: list[dict[str, Any]], first: list[str], numbers: Numbers) -> pd.DataFrame:
    pdm = _pandas()
    present = {k for row in rows for k in row}
    columns = first + [a for a in _VALUE_ATTRS if a in present]
    frame = pdm.DataFrame(rows, columns=columns)
    for column in ("timestamp", "received_at", *_TIMESTAMP_ATTRS):
        if column in frame:
            frame[column] = pdm.to_datetime(frame[column], utc=True)
    for attr in _NULLABLE_INT_ATTRS:
        if attr in frame:
            frame[attr] = frame[attr].astype("Int64")  # nullable: a feed may lack a value
    if numbers == "float":
        for attr in PRICE_LIKE_ATTRS & set(frame.columns):
            frame[attr] = pdm.to_numeric(frame[attr]).astype("float64")
    result: pd.DataFrame = frame
    return result


def _check_numbers(numbers: str) -> Numbers:
    if numbers not in ("decimal", "float"):
        raise InvalidRequestError(f"numbers: {numbers!r}; expected 'decimal' or 'float'")
    return numbers  # type: ignore[return-value]


def updates_frame(
    updates: Iterable[Any],
    symbols: SymbolsLike | None = None,
    numbers: Numbers = "decimal",
) -> pd.DataFrame:
    """A tidy DataFrame: one row per feed per stream update, in arrival order.

    Columns: ``timestamp`` (the update's time as a UTC datetime), ``subscription_id``,
    ``feed_id``, ``symbol`` (from ``symbols``, else missing), then one column per
    property present, named as on :class:`~pylazer_sync.FeedUpdate`. Price-like values
    are real values (mantissa x 10^exponent): exact ``Decimal`` objects by default, since
    a float cannot hold every price, or ``float64`` with ``numbers="float"`` for plotting
    and fast arithmetic. Timestamps in microseconds become UTC datetimes.

    ``updates`` may hold any messages (what ``recv_many()`` returns, or
    :func:`read_jsonl`'s iterator, :func:`read_recording`): only stream updates make rows.
    """
    numbers = _check_numbers(numbers)
    names = symbol_map(symbols)
    rows: list[dict[str, Any]] = []
    for update in _updates_only(updates):
        ts = update.timestamp_us
        when = None if ts is None else _utc(ts)
        for feed in update.feeds:
            rows.append(
                {
                    "timestamp": when,
                    "subscription_id": update.subscription_id,
                    "feed_id": feed.feed_id,
                    "symbol": names.get(feed.feed_id),
                    **_feed_row(feed, numbers),
                }
            )
    return _frame(rows, _FIRST_COLUMNS, numbers)


def latest_frame(
    client: LazerClient,
    symbols: SymbolsLike | None = None,
    numbers: Numbers = "decimal",
) -> pd.DataFrame:
    """The client's latest value of every feed, one row per feed, indexed by ``feed_id``.

    Read at call time from :meth:`~pylazer_sync.LazerClient.latest_prices`, without
    touching the ``recv()`` queue, so a notebook cell can ask "what is it now?" whenever
    it likes. Columns as in :func:`updates_frame`, plus ``received_at`` (when this client
    decoded the update, a UTC datetime).
    """
    numbers = _check_numbers(numbers)
    names = symbol_map(symbols)
    rows: list[dict[str, Any]] = []
    for feed_id, latest in sorted(client.latest_prices().items()):
        rows.append(
            {
                "feed_id": feed_id,
                "symbol": names.get(feed_id),
                "timestamp": _utc(latest.timestamp_us),
                "received_at": _dt.datetime.fromtimestamp(latest.received_at, _dt.timezone.utc),
                "subscription_id": latest.subscription_id,
                **_feed_row(latest.feed, numbers),
            }
        )
    frame = _frame(
        rows, ["feed_id", "symbol", "timestamp", "received_at", "subscription_id"], numbers
    )
    indexed: pd.DataFrame = frame.set_index("feed_id")
    return indexed


# ---------------------------------------------------------------------------------
# Parquet recordings (pyarrow and pandas)
# ---------------------------------------------------------------------------------


def _moment_us(value: TimeLike, name: str) -> int:
    """Microseconds since the epoch of a datetime, ISO string or integer."""
    if isinstance(value, bool):
        raise InvalidRequestError(f"{name}: expected a datetime, ISO string or microseconds")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            value = _dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise InvalidRequestError(f"{name}: {value!r} is not an ISO 8601 time") from None
    if not isinstance(value, _dt.datetime):
        raise InvalidRequestError(f"{name}: expected a datetime, ISO string or microseconds")
    if value.tzinfo is None:
        value = value.replace(tzinfo=_dt.timezone.utc)
    delta = value - _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _real_column(pa: Any, mantissas: Any, exponents: Any, numbers: Numbers) -> Any:
    """Real values of a price-like column: mantissa x 10^exponent, row by row.

    Floats are one correctly rounded division (or product) per row, so they equal
    ``float(FeedUpdate.real(...))`` whenever the mantissa fits a double exactly. Decimals
    are built per exponent by Arrow: the mantissa reinterpreted as a decimal of scale
    ``-exponent`` is exactly the real value. A row without an exponent keeps its mantissa.
    """
    import numpy as np

    pdm = _pandas()
    valid_exp = exponents.is_valid().to_numpy(zero_copy_only=False)
    if numbers == "float":
        m = mantissas.cast(pa.float64()).to_numpy(zero_copy_only=False)
        e = exponents.fill_null(0).cast(pa.int64()).to_numpy(zero_copy_only=False)
        scale = np.power(10.0, np.abs(e).astype(np.float64))
        return np.where(e < 0, m / scale, m * scale)
    out = np.empty(len(mantissas), dtype=object)
    out[:] = mantissas.to_numpy(zero_copy_only=False)  # the mantissas where no exponent
    exps = exponents.to_numpy(zero_copy_only=False)
    for exponent in pdm.unique(exps[valid_exp]):
        rows = np.flatnonzero(valid_exp & (exps == exponent))
        chunk = mantissas.take(pa.array(rows))
        as_decimal = chunk.cast(pa.decimal128(38, 0)).view(pa.decimal128(38, -int(exponent)))
        out[rows] = as_decimal.to_numpy(zero_copy_only=False)
    out[~mantissas.is_valid().to_numpy(zero_copy_only=False)] = np.nan  # as updates_frame
    return out


def read_parquet(
    path_or_dir: str | os.PathLike[str],
    feeds: Iterable[int] | None = None,
    start: TimeLike | None = None,
    end: TimeLike | None = None,
    numbers: Numbers = "decimal",
    *,
    symbols: SymbolsLike | None = None,
) -> pd.DataFrame:
    """A Parquet recording (a file, or a directory of them) as a DataFrame in the
    :func:`updates_frame` layout: the same columns, types and values, in recorded order.

    ``feeds`` (feed ids) and ``start`` <= timestamp < ``end`` are applied while reading:
    pyarrow skips every file and row group whose statistics exclude them, so a slice of
    a long recording costs about the slice. ``numbers="float"`` is several times faster
    than exact decimals on large recordings. Needs the ``parquet`` and ``pandas`` extras.
    """
    numbers = _check_numbers(numbers)
    pdm = _pandas()
    pa = pyarrow()
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    files = parquet_files(path_or_dir)
    # The schema given up front: pyarrow need not open every file to unify schemas.
    dataset = ds.dataset([str(f) for f in files], schema=schema(), format="parquet")
    utc = pa.timestamp("us", tz="UTC")
    condition = pc.field("feed_id").is_valid()
    if feeds is not None:
        condition &= pc.field("feed_id").isin(pa.array(sorted(set(feeds)), pa.uint32()))
    if start is not None:
        condition &= pc.field("timestamp") >= pa.scalar(_moment_us(start, "start"), utc)
    if end is not None:
        condition &= pc.field("timestamp") < pa.scalar(_moment_us(end, "end"), utc)
    columns = ["timestamp", "subscription_id", "feed_id", *PROPERTY_COLUMNS]
    table = dataset.to_table(columns=columns, filter=condition)
    names = symbol_map(symbols)
    data: dict[str, Any] = {
        "timestamp": table.column("timestamp").to_pandas(),
        "subscription_id": table.column("subscription_id").cast(pa.int64()).to_numpy(),
        "feed_id": table.column("feed_id").cast(pa.int64()).to_numpy(),
    }
    feed_ids = data["feed_id"]
    data["symbol"] = [names.get(f) for f in feed_ids.tolist()] if names else [None] * len(feed_ids)
    exponents = table.column("exponent").combine_chunks()
    for attr in PROPERTY_COLUMNS:
        column = table.column(attr).combine_chunks()
        if column.null_count == len(column):
            continue  # as updates_frame, a property without any value has no column
        if attr in PRICE_LIKE_ATTRS:
            data[attr] = _real_column(pa, column, exponents, numbers)
        elif attr in _NULLABLE_INT_ATTRS:
            data[attr] = column.cast(pa.int64()).to_pandas(
                types_mapper={pa.int64(): pdm.Int64Dtype()}.get
            )
        else:
            data[attr] = column.to_pandas()
    frame: pd.DataFrame = pdm.DataFrame(data)
    if not names:
        frame["symbol"] = frame["symbol"].astype(object)
    return frame


__all__ = [
    "JsonlReader",
    "Numbers",
    "SymbolsLike",
    "TimeLike",
    "feed_to_jsonl_obj",
    "latest_frame",
    "read_jsonl",
    "read_parquet",
    "read_recording",
    "symbol_map",
    "update_from_jsonl_obj",
    "update_to_jsonl_obj",
    "updates_frame",
    "write_jsonl",
]


# ---------------------------------------------------------------------------------
# Live bars: history, then the stream
# ---------------------------------------------------------------------------------


def live_frame(
    client: LazerClient,
    feeds: Iterable[int | str],
    history: _dt.timedelta = _dt.timedelta(hours=1),
    resolution: str = "1m",
    channel: str = "fixed_rate@200ms",
    numbers: Numbers = "decimal",
) -> LiveBars:
    """OHLC bars of ``feeds`` (ids or symbols) that start with the last ``history`` of
    bars from the history service and go on with the live stream.

    It subscribes ``client`` (started) to the feeds' ``price`` and ``exponent`` on
    ``channel``; each ``update()`` folds in what the client has queued and returns the
    DataFrame (index ``symbol``, ``time``; ``open``, ``high``, ``low``, ``close``,
    ``source``), also at ``.frame``. Bars built live equal the service's bars of the same
    channel; the first live bar, begun before the subscription, is replaced by the
    service's once it is complete. It reads the client's queue: other messages are kept
    in ``.other``. See :class:`pylazer_sync.live_bars.LiveBars`.
    """
    from .live_bars import LiveBars

    return LiveBars(client, list(feeds), history, resolution, channel, numbers)
