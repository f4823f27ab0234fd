"""What the simulator's REST services say about themselves: the catalogue in the API
service's ``/v1/symbols`` shape, the state snapshot of ``/v1/state``, and the guardian
set and its upgrade.

All of it comes from the simulator's own catalogue, market and keys, so a test can check
an answer against the simulator that gave it. Shapes follow the official sources: the
Rust protocol's ``SymbolMetadata`` (every field written, ``null`` when absent) with the
client's ``market_session_schedule`` beside it and the reference data Pyth documents
(instrument type, market sessions, corporate actions, expiration, groups); protobuf's JSON
mapping of ``State`` (lowerCamelCase names, 64-bit integers as strings, RFC 3339 times,
``"0.200s"`` durations, enum names); ``SignedGuardianSetUpgrade`` (hex without ``0x``).
"""

from __future__ import annotations

import base64
import re
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Final

from ..protocol import MarketSession
from ..protocol.crypto import (
    derive_key,
    evm_address,
    keccak256,
    secp256k1_public_key,
    secp256k1_sign,
)
from ..protocol.signer import Signer
from .market import Catalogue, FeedInfo, MarketModel

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=timezone.utc)
_TZ: Final = "America/New_York"
_WEEKDAYS: Final = 5

# Session schedules in Pythnet's format ("TZ;Mon,Tue,...,Sun;holidays"), as the market
# model opens and closes them (market.py's _session_at).
_EQUITY_SESSIONS: Final = {
    "regular": ",".join(["0930-1600"] * _WEEKDAYS + ["C", "C"]),
    "pre_market": ",".join(["0400-0930"] * _WEEKDAYS + ["C", "C"]),
    "post_market": ",".join(["1600-2000"] * _WEEKDAYS + ["C", "C"]),
    "over_night": ",".join(["0000-0400&2000-2400"] * 4 + ["0000-0400", "C", "2000-2400"]),
}


def session_schedules(info: FeedInfo) -> dict[str, str]:
    """The feed's schedule per market session (``market_session_schedule``)."""
    if info.sessions == "equity":
        return {name: f"{_TZ};{days};" for name, days in _EQUITY_SESSIONS.items()}
    return {"regular": info.schedule}


def instrument_type(info: FeedInfo) -> str:
    """The feed's instrument type: as set, else ``rate`` for funding feeds, else ``spot``."""
    if info.instrument_type is not None:
        return info.instrument_type
    return "rate" if info.is_funding else "spot"


def _iso(t_us: int) -> str:
    moment = _EPOCH + timedelta(microseconds=t_us)
    return moment.isoformat().replace("+00:00", "Z")


def _humantime(us: int) -> str:
    for unit, size in (("h", 3_600_000_000), ("m", 60_000_000), ("s", 1_000_000)):
        if us % size == 0:
            return f"{us // size}{unit}"
    return f"{us}us"


def symbol_entry(info: FeedInfo) -> dict[str, Any]:
    """The feed as one element of ``GET /v1/symbols``."""
    schedules = session_schedules(info)
    quote = info.symbol.rsplit("/", 1)[1] if "/" in info.symbol else None
    ticker = info.symbol.split(".")[-1].split("/")[0]
    return {
        "pyth_lazer_id": info.feed_id,
        "name": info.name,
        "symbol": info.symbol,
        "description": info.description,
        "asset_type": info.asset_type,
        "exponent": info.exponent,
        "cmc_id": info.cmc_id,
        "funding_rate_interval": (
            None if info.funding_interval_us is None else _humantime(info.funding_interval_us)
        ),
        "min_publishers": info.min_publishers,
        "min_channel": info.min_channel.value,
        "state": info.state,
        "hermes_id": info.hermes_id,
        "quote_currency": quote,
        "nasdaq_symbol": ticker if info.symbol.startswith("Equity.US.") else None,
        "schedule": info.schedule,
        "instrument_type": instrument_type(info),
        "market_session_schedule": schedules,
        "market_sessions": {
            name: {"schedule": schedule, "state": info.state, "min_pub": info.min_publishers}
            for name, schedule in schedules.items()
        },
        "corporate_actions": [
            {
                "event_type": kind,
                "activation": {"us_equity_ex_date": {"ex_date": ex_date}},
                "adjustment_factor_numerator": numerator,
                "adjustment_factor_denominator": denominator,
            }
            for kind, ex_date, numerator, denominator in info.corporate_actions
        ],
        "expiration_time": None if info.expiration_us is None else _iso(info.expiration_us),
        "groups": list(info.groups),
    }


def search(catalogue: Catalogue, args: Mapping[str, str]) -> list[FeedInfo]:
    """The feeds the catalogue query parameters select (``query``, ``asset_type``,
    ``instrument_type``), as the service filters them."""
    feeds = catalogue.search(args.get("query", ""), args.get("asset_type", ""))
    wanted = args.get("instrument_type", "").lower()
    return [f for f in feeds if not wanted or instrument_type(f) == wanted]


# -- /v1/state ------------------------------------------------------------------------

_SESSION_NAMES: Final = {s.value: s.name for s in MarketSession}  # "preMarket" -> "PRE_MARKET"


def _proto_channel(info: FeedInfo) -> dict[str, Any]:
    match = re.fullmatch(r"fixed_rate@(\d+)ms", info.min_channel.value)
    if match is None:
        return {"realTime": {}}
    ms = int(match.group(1))
    return {"rate": f"{ms // 1000}.{ms % 1000:03d}s"}


def _dynamic_map(values: Mapping[str, Any]) -> dict[str, Any]:
    """A ``DynamicValue.Map`` in protobuf JSON."""
    items = []
    for key, value in values.items():
        item: dict[str, Any]
        if isinstance(value, bool):
            item = {"boolValue": value}
        elif isinstance(value, int):
            item = {"intValue": str(value)}
        elif isinstance(value, bytes):
            item = {"bytesValue": base64.b64encode(value).decode()}
        else:
            item = {"stringValue": str(value)}
        items.append({"key": key, "value": item})
    return {"items": items}


def publishers(catalogue: Catalogue) -> list[tuple[int, str]]:
    """The simulated publishers: as many as the busiest feed ever has."""
    count = max((f.publishers[1] for f in catalogue), default=0)
    return [(i, f"sim-publisher-{i}") for i in range(1, count + 1)]


def state_json(
    catalogue: Catalogue, market: MarketModel, t_us: int, parts: Iterable[str]
) -> dict[str, Any]:
    """``GET /v1/state``: the shard, and the parts asked for (feeds with their aggregate
    at ``t_us``, publishers, feature flags; no governance sources or exchanges)."""
    wanted = set(parts)
    out: dict[str, Any] = {
        "shardId": 1,
        "lastSequenceNo": str(t_us // 1000),
        "lastTimestamp": _iso(t_us),
        "shardName": "shard1.simulator.pyth-lazer",
        "shardGroup": "simulator.pyth-lazer",
        "minRate": "0.001s",
    }
    if "feeds" in wanted:
        out["feeds"] = [_state_feed(info, market, t_us) for info in catalogue]
    if "publishers" in wanted:
        out["publishers"] = [
            {"publisherId": pid, "name": name, "isActive": True}
            for pid, name in publishers(catalogue)
        ]
    if "feature_flags" in wanted:
        out["featureFlags"] = []
    if "governance_sources" in wanted:
        out["governanceSources"] = []
    if "exchanges" in wanted:
        out["exchanges"] = []
    return out


def _state_feed(info: FeedInfo, market: MarketModel, t_us: int) -> dict[str, Any]:
    values = market.feed_update(info.feed_id, t_us)
    aggregate: dict[str, Any] = {
        "publisherCount": str(values.publisher_count),
        "exponent": info.exponent,
        "marketSession": _SESSION_NAMES.get(str(values.market_session), "REGULAR"),
    }
    for name, value in (
        ("price", values.price),
        ("bestBidPrice", values.best_bid_price),
        ("bestAskPrice", values.best_ask_price),
        ("confidence", values.confidence),
    ):
        if value is not None:
            aggregate[name] = str(value)
    if values.feed_update_timestamp is not None:
        aggregate["feedUpdateTimestamp"] = _iso(values.feed_update_timestamp)
    return {
        "feedId": info.feed_id,
        "symbol": info.symbol,
        "exponent": info.exponent,
        "minPublishers": info.min_publishers,
        "minChannel": _proto_channel(info),
        "state": info.state.upper(),
        "kind": "FUNDING_RATE" if info.is_funding else "PRICE",
        "isEnabledInShard": True,
        "metadata": _dynamic_map(
            {"name": info.name, "description": info.description, "asset_type": info.asset_type}
        ),
        "aggregatedData": aggregate,
    }


# -- guardian sets ---------------------------------------------------------------------

_CORE_MODULE: Final = b"\x00" * 28 + b"Core"
_GOVERNANCE_EMITTER: Final = b"\x00" * 31 + b"\x04"
_UPGRADE_ACTION: Final = 2


@dataclass(frozen=True)
class GuardianSet:
    """The simulator's guardian set: index 0 is its own secp256k1 key (the EVM signer)."""

    signer: Signer

    @property
    def current_keys(self) -> list[bytes]:
        """The current set's 20-byte addresses."""
        return [bytes.fromhex(self.signer.evm_address[2:])]

    def upgrade(self, t_us: int, new_keys: list[bytes] | None = None) -> dict[str, Any]:
        """A signed upgrade from set 0 to set 1 (``SignedGuardianSetUpgrade``): a Wormhole
        guardian-set-upgrade VAA body, signed by the current guardian over its double
        Keccak-256. ``new_keys`` default: one key derived from the simulator's own."""
        if new_keys is None:
            private = derive_key(self.signer.secp256k1_private_key, "guardian-1")
            uncompressed = secp256k1_public_key(private, compressed=False)
            new_keys = [bytes.fromhex(evm_address(uncompressed)[2:])]
        payload = (
            _CORE_MODULE
            + struct.pack(">BHIB", _UPGRADE_ACTION, 0, 1, len(new_keys))
            + b"".join(new_keys)
        )
        body = (
            struct.pack(">IIH", t_us // 1_000_000, 0, 1)
            + _GOVERNANCE_EMITTER
            + struct.pack(">QB", t_us // 1000, 32)
            + payload
        )
        signature, recovery_id = secp256k1_sign(self.signer.secp256k1_private_key, keccak256(body))
        return {
            "current_guardian_set_index": 0,
            "new_guardian_set_index": 1,
            "new_guardian_keys": [k.hex() for k in new_keys],
            "body": body.hex(),
            "signature": (signature + bytes((recovery_id,))).hex(),
        }
