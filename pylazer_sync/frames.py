"""Stream updates as data: pandas DataFrames, and jsonl recordings that read back exactly.

Two jobs that meet at the same question, "how do I analyse what I received?":

* :func:`updates_frame` / :func:`latest_frame` turn updates (or the client's latest-value
  snapshot) into a tidy :class:`pandas.DataFrame`, one row per feed update. pandas is
  imported only when one of them is called, so this module (and the jsonl helpers)
  work without the ``pandas`` extra.
* :func:`update_to_jsonl_obj` / :func:`write_jsonl` / :func:`read_jsonl` record updates
  as JSON lines (``pylazer-sync stream --output jsonl`` writes the same format) and read
  them back into the very same typed :class:`~pylazer_sync.StreamUpdate` objects,
  signed envelopes included, so a recording can be re-verified or re-analysed later.

The jsonl format, one object per line::

    {"subscription_id": 1, "timestamp_us": 1718000000200000, "channel_id": 3, "parsed": true,
     "feeds": [{"feed_id": 1, "price": 6500012345678, "exponent": -8, ...,
                "real": {"price": "65000.12345678", ...}}],
     "solana": "b9011a82...", "evm": "2a22999a...", "leEcdsa": "...", "leUnsigned": "..."}

Property values are the integer mantissas (or the session name) under their snake_case
names, in the order they came on the wire; ``real`` repeats the price-like ones as exact
decimal strings for readers that do not want to scale; each envelope is the hex of its
bytes, present only if the update carried it. ``parsed`` says whether the update had a
``parsed`` object (JSON delivery, or a JSON envelope in binary delivery); ``channel_id``
is there only when known. Readers must ignore keys they do not know.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from decimal import Decimal
from typing import IO, TYPE_CHECKING, Any, Final, Literal

from .errors import InvalidRequestError, MissingDependencyError, ProtocolError
from .protocol import (
    EvmMessage,
    FeedUpdate,
    LeEcdsaMessage,
    LeUnsignedMessage,
    Payload,
    SolanaMessage,
    StreamUpdate,
    decode_message,
)
from .protocol.types import PRICE_LIKE_ATTRS, PROPERTY_ATTRS, Property

if TYPE_CHECKING:
    import pandas as pd

    from .client import LazerClient
    from .rest import SymbolInfo

Numbers = Literal["decimal", "float"]
"""How price-like values appear in a DataFrame: exact ``Decimal`` objects or ``float``."""

SymbolsLike = Mapping[int, str] | Iterable["SymbolInfo"]
"""Feed id -> symbol, as a mapping or as the list ``client.symbols()`` returns."""

# (wire name in the record, StreamUpdate attribute, envelope class)
_ENVELOPES: Final = (
    ("evm", "evm", EvmMessage),
    ("solana", "solana", SolanaMessage),
    ("leEcdsa", "le_ecdsa", LeEcdsaMessage),
    ("leUnsigned", "le_unsigned", LeUnsignedMessage),
)
_PROPERTY_BY_ATTR: Final[dict[str, Property]] = {a: p for p, a in PROPERTY_ATTRS.items()}
# Property attributes in property-id order: the DataFrame's column order.
_VALUE_ATTRS: Final = tuple(PROPERTY_ATTRS[p] for p in Property)
# Integer properties that are timestamps in microseconds: shown as UTC datetimes.
_TIMESTAMP_ATTRS: Final = frozenset({"feed_update_timestamp", "funding_timestamp"})


# ---------------------------------------------------------------------------------
# jsonl recordings (no pandas needed)
# ---------------------------------------------------------------------------------


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
    payload = update.payload
    if payload is not None and payload.channel_id is not None:
        out["channel_id"] = payload.channel_id
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
            channel_id=channel_id if isinstance(channel_id, int) else None,
        )
    return StreamUpdate(sub_id, parsed, **envelopes)


def _updates_only(messages: Iterable[Any]) -> Iterator[StreamUpdate]:
    # Callers pass what recv_many() returns; Subscribed & co. have no rows.
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


def read_jsonl(source: str | os.PathLike[str] | IO[str]) -> Iterator[StreamUpdate]:
    """The updates of a recording, in order, as typed :class:`~pylazer_sync.StreamUpdate`\\ s.

    Lazy, so a long recording is never held in memory at once. Blank lines are skipped;
    a malformed line raises :class:`~pylazer_sync.ProtocolError` naming its line number.
    """
    if isinstance(source, (str, os.PathLike)):
        with open(source, encoding="utf-8") as f:
            yield from read_jsonl(f)
        return
    for number, line in enumerate(source, 1):
        if not line.strip():
            continue
        try:
            update = update_from_jsonl_obj(json.loads(line))
        except (ValueError, RecursionError) as exc:  # JSONDecodeError and ProtocolError alike
            raise ProtocolError(f"line {number}: {exc}") from None
        yield update


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
    for attr in ("publisher_count", "exponent", "funding_rate_interval"):
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
    :func:`read_jsonl`'s iterator): only stream updates make rows.
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
    return _frame(rows, ["timestamp", "subscription_id", "feed_id", "symbol"], numbers)


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


__all__ = [
    "Numbers",
    "SymbolsLike",
    "feed_to_jsonl_obj",
    "latest_frame",
    "read_jsonl",
    "symbol_map",
    "update_from_jsonl_obj",
    "update_to_jsonl_obj",
    "updates_frame",
    "write_jsonl",
]
