"""The feeds catalogue: one :class:`SymbolInfo` per feed, decoded from either location.

The API service's ``GET /v1/symbols`` (``https://pyth.dourolabs.app``) answers a JSON
array with one object per feed; the history service's older ``/history/v1/symbols``
answers a subset of the same fields. Field by field, as the official sources define them
(Rust ``pyth-lazer-protocol`` ``jrpc::SymbolMetadata`` and ``symbol_state::SymbolState``,
``pyth-lazer-client`` ``api_client::SymbolInfo``, the TypeScript SDK's
``SymbolResponse``) and as Pyth's reference-data documentation describes the rest
(instrument type, market sessions, corporate actions, expiration, groups).

Decoding is tolerant where the service may grow: a feed state or instrument type this
version does not know stays a plain string, a field it does not know stays in ``raw``,
and a known optional field in an unexpected shape becomes ``None`` (still in ``raw``),
so a new server never fails the call. Only an entry without its identity (feed id and
symbol) is an error.
"""

from __future__ import annotations

import json
import re
import reprlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from enum import Enum
from typing import Any, Final

from ..errors import ProtocolError


class FeedState(str, Enum):
    """A feed's state in the catalogue (``SymbolState`` in the Rust protocol).

    An unknown state (one added after this version) is kept as the plain string the
    service sent; compare with strings (``info.state == "stable"``) and both work.
    """

    STABLE = "stable"
    """Fully available."""
    COMING_SOON = "coming_soon"
    """Listed, not available yet; expected to become stable."""
    INACTIVE = "inactive"
    """Not available, and not expected to become stable again."""
    BETA = "beta"
    """Only available to permissioned consumers."""
    EXPIRED = "expired"
    """Reached its expiration (a settled future): the last value keeps being sent, no new
    aggregates; history stays available."""

    def __str__(self) -> str:
        return self.value


class InstrumentType(str, Enum):
    """What a feed prices within its market (``InstrumentType`` in the Rust protocol);
    an unknown type stays a plain string."""

    SPOT = "spot"
    RATE = "rate"
    FUTURE = "future"
    INDEX = "index"
    NAV = "nav"

    def __str__(self) -> str:
        return self.value


_STATES: Final = {s.value: s for s in FeedState}
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=timezone.utc)
_INSTRUMENTS: Final = {t.value: t for t in InstrumentType}


@dataclass(frozen=True)
class MarketSessionInfo:
    """One market session of a feed (``market_sessions`` entry): its schedule in Pythnet's
    format (``America/New_York;0930-1600,...;holidays``), its availability state and
    the publishers it needs."""

    schedule: str | None = None
    state: FeedState | str | None = None
    min_publishers: int | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class CorporateAction:
    """A corporate action that affects a feed's prices (a split, a reverse split...).

    ``kind`` is the service's name for it (``split``, ``reverse_split``, or a newer one);
    ``ex_date`` the day it takes effect; the adjustment factor is ``numerator /
    denominator`` (a 4-for-1 split: 4 / 1). Whatever else the service says is in ``raw``.
    """

    kind: str | None = None
    ex_date: date | None = None
    adjustment_numerator: int | None = None
    adjustment_denominator: int | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class SymbolInfo:
    """One feed of the catalogue (``GET /v1/symbols``, or the older
    ``/history/v1/symbols``).

    Identity and scaling: ``feed_id`` (``pyth_lazer_id``), ``symbol``
    (``Crypto.BTC/USD``), ``name``, ``description``, ``asset_type`` (``crypto``, ``fx``,
    ``equity``, ...), ``exponent``. Data quality: ``min_publishers``, ``min_channel``
    (the fastest channel offered, as the service names it), ``state``. Markets:
    ``schedule`` (the feed's overall schedule), ``market_session_schedule`` (session name
    -> schedule), ``market_sessions`` (session name -> :class:`MarketSessionInfo`).
    Classification: ``instrument_type``, ``quote_currency``, ``nasdaq_symbol``,
    ``cmc_id``, ``hermes_id``, ``groups`` (access groups; empty when none is needed).
    Derivatives: ``expiration`` (UTC), ``funding_rate_interval_us`` (funding feeds;
    ``interval`` is the service's text for it). ``corporate_actions``. Everything the
    service sent, known or not, is in ``raw``.
    """

    feed_id: int
    name: str
    symbol: str
    description: str
    asset_type: str
    exponent: int
    min_publishers: int | None = None
    min_channel: str | None = None
    state: FeedState | str | None = None
    schedule: str | None = None
    cmc_id: int | None = None
    hermes_id: str | None = None
    interval: str | None = None
    funding_rate_interval_us: int | None = None
    quote_currency: str | None = None
    nasdaq_symbol: str | None = None
    instrument_type: InstrumentType | str | None = None
    market_session_schedule: Mapping[str, str] = field(default_factory=dict)
    market_sessions: Mapping[str, MarketSessionInfo] = field(default_factory=dict)
    corporate_actions: tuple[CorporateAction, ...] = ()
    expiration: datetime | None = None
    groups: tuple[str, ...] = ()
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def is_stable(self) -> bool:
        """Whether the feed is fully available (state ``stable``)."""
        return self.state == FeedState.STABLE

    @classmethod
    def from_json_obj(cls, obj: Any) -> SymbolInfo:
        """Decode one catalogue entry; unknown fields are kept in ``raw``."""
        if not isinstance(obj, dict):
            raise ProtocolError(f"symbols: expected an object per entry, got {reprlib.repr(obj)}")
        try:
            feed_id = _int(obj.get("pyth_lazer_id"))
            symbol = obj.get("symbol")
            if feed_id is None or not 0 <= feed_id < 1 << 32 or not isinstance(symbol, str):
                raise ValueError("pyth_lazer_id (a u32) and symbol (a string) are required")
            interval = _str(obj.get("funding_rate_interval", obj.get("interval")))
            return cls(
                feed_id=feed_id,
                name=_str(obj.get("name")) or "",
                symbol=symbol,
                description=_str(obj.get("description")) or "",
                asset_type=_str(obj.get("asset_type")) or "",
                exponent=_int(obj.get("exponent")) or 0,
                min_publishers=_int(obj.get("min_publishers")),
                min_channel=_channel(obj.get("min_channel")),
                state=_state(obj.get("state")),
                schedule=_str(obj.get("schedule")),
                cmc_id=_int(obj.get("cmc_id")),
                hermes_id=_str(obj.get("hermes_id")),
                interval=interval,
                funding_rate_interval_us=parse_duration_us(interval),
                quote_currency=_str(obj.get("quote_currency")),
                nasdaq_symbol=_str(obj.get("nasdaq_symbol")),
                instrument_type=_instrument(obj.get("instrument_type")),
                market_session_schedule=_schedules(obj.get("market_session_schedule")),
                market_sessions=_sessions(obj.get("market_sessions")),
                corporate_actions=_corporate_actions(obj.get("corporate_actions")),
                expiration=_expiration(obj),
                groups=tuple(g for g in _list(obj.get("groups")) if isinstance(g, str)),
                raw=obj,
            )
        except (TypeError, ValueError, OverflowError, RecursionError) as exc:
            raise ProtocolError(f"symbols: malformed entry ({exc}): {_short_repr(obj)}") from None


def decode_symbols(body: bytes | str) -> list[SymbolInfo]:
    """Decode a whole catalogue answer (a JSON array of entries)."""
    try:
        entries = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(f"symbols: the answer is not JSON: {exc}") from None
    if not isinstance(entries, list):
        raise ProtocolError(f"symbols: expected a JSON array, got {type(entries).__name__}")
    return [SymbolInfo.from_json_obj(e) for e in entries]


def search(
    entries: Iterable[SymbolInfo],
    query: str | None = None,
    asset_type: str | None = None,
    instrument_type: str | None = None,
) -> list[SymbolInfo]:
    """The entries matching the service's filters, applied here (for a cached catalogue):
    ``query`` in the symbol, name or description, any case; ``asset_type`` and
    ``instrument_type`` equal, any case."""
    q = (query or "").lower()
    kind = (asset_type or "").lower()
    instrument = (instrument_type or "").lower()
    return [
        e
        for e in entries
        if (not kind or e.asset_type.lower() == kind)
        and (not instrument or str(e.instrument_type or "").lower() == instrument)
        and (not q or q in e.symbol.lower() or q in e.name.lower() or q in e.description.lower())
    ]


# -- tolerant field decoders: None (the value stays in raw) for anything unexpected --------

_DURATION_UNITS: Final = {
    "ns": 0.001,
    "us": 1,
    "µs": 1,
    "ms": 1_000,
    "s": 1_000_000,
    "sec": 1_000_000,
    "secs": 1_000_000,
    "second": 1_000_000,
    "seconds": 1_000_000,
    "m": 60_000_000,
    "min": 60_000_000,
    "mins": 60_000_000,
    "minute": 60_000_000,
    "minutes": 60_000_000,
    "h": 3_600_000_000,
    "hr": 3_600_000_000,
    "hrs": 3_600_000_000,
    "hour": 3_600_000_000,
    "hours": 3_600_000_000,
    "d": 86_400_000_000,
    "day": 86_400_000_000,
    "days": 86_400_000_000,
    "w": 604_800_000_000,
    "week": 604_800_000_000,
    "weeks": 604_800_000_000,
}
_DURATION_PART: Final = re.compile(r"\s*(\d+)\s*([a-zµ]+)\s*", re.I)


def parse_duration_us(text: str | None) -> int | None:
    """Microseconds in a humantime duration (``"8h"``, ``"1h 30m"``, ``"28800s"``), the
    form the Rust protocol serializes ``funding_rate_interval`` in; ``None`` if it is not one."""
    if not text:
        return None
    total = 0.0
    pos = 0
    while pos < len(text):
        match = _DURATION_PART.match(text, pos)
        if match is None or match.end() == pos:
            return None
        unit = _DURATION_UNITS.get(match.group(2)) or _DURATION_UNITS.get(match.group(2).lower())
        if unit is None:
            return None
        total += int(match.group(1)) * unit
        pos = match.end()
    return int(total)


def _short_repr(obj: Any) -> str:
    try:
        return reprlib.repr(obj)
    except RecursionError:
        return "<nested too deeply>"


def _int(value: Any) -> int | None:
    """An integer sent as a number or a string (both occur in Lazer's JSON)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"-?\d{1,20}", value.strip()):
        return int(value)
    return None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _state(value: Any) -> FeedState | str | None:
    if not isinstance(value, str):
        return None
    return _STATES.get(value.lower(), value)


def _instrument(value: Any) -> InstrumentType | str | None:
    if not isinstance(value, str):
        return None
    return _INSTRUMENTS.get(value.lower(), value)


def _channel(value: Any) -> str | None:
    """The channel as named on the wire; the newer protocol also names them by number."""
    if isinstance(value, str):
        return value
    number = _int(value)
    return None if number is None else str(number)


def _schedules(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {k: v for k, v in value.items() if isinstance(k, str) and isinstance(v, str)}


def _sessions(value: Any) -> dict[str, MarketSessionInfo]:
    if not isinstance(value, dict):
        return {}
    out: dict[str, MarketSessionInfo] = {}
    for name, session in value.items():
        if isinstance(name, str) and isinstance(session, dict):
            out[name] = MarketSessionInfo(
                schedule=_str(session.get("schedule")),
                state=_state(session.get("state")),
                min_publishers=_int(session.get("min_pub", session.get("min_publishers"))),
                raw=session,
            )
    return out


def _corporate_actions(value: Any) -> tuple[CorporateAction, ...]:
    out = []
    for action in _list(value):
        if not isinstance(action, dict):
            continue
        kind = _str(action.get("event_type", action.get("kind", action.get("type"))))
        activation = action.get("activation")
        ex_text = action.get("ex_date")
        if isinstance(activation, dict):
            us_equity = activation.get("us_equity_ex_date")
            if isinstance(us_equity, dict):
                ex_text = us_equity.get("ex_date", ex_text)
        out.append(
            CorporateAction(
                kind=kind.lower() if kind else None,
                ex_date=_date(ex_text),
                adjustment_numerator=_int(action.get("adjustment_factor_numerator")),
                adjustment_denominator=_int(action.get("adjustment_factor_denominator")),
                raw=action,
            )
        )
    return tuple(out)


def _date(value: Any) -> date | None:
    if not isinstance(value, str):
        return None
    try:
        return date.fromisoformat(value.strip()[:10])
    except ValueError:
        return None


def _expiration(obj: Mapping[str, Any]) -> datetime | None:
    """The expiration of a derivative: an ISO 8601 time (``Z`` or an offset; a bare date is
    midnight UTC) or a number of microseconds (or seconds) since the epoch."""
    value = next(
        (obj[k] for k in ("expiration_time", "expiration", "expiry_time") if obj.get(k)), None
    )
    if isinstance(value, str) and not re.fullmatch(r"\d+", value.strip()):
        text = value.strip()
        if text[-1:] in ("Z", "z"):
            text = text[:-1] + "+00:00"  # fromisoformat() takes "Z" from Python 3.11 on only
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            return None
        return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment
    number = _int(value)
    if number is None or number < 0:
        return None
    # Seconds up to the year 5138, else microseconds: Lazer counts time in microseconds.
    micros = number * 1_000_000 if number < 10**11 else number
    try:
        return _EPOCH + timedelta(microseconds=micros)
    except OverflowError:
        return None
