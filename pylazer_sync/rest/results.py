"""Typed answers of the REST calls that are not price updates: the guardian set upgrade
and the service state.

``GuardianSetUpgrade`` follows the Rust protocol's ``api::SignedGuardianSetUpgrade``
(snake_case fields, byte strings in hex without ``0x``). ``ServiceState`` is the
protobuf ``State`` message of ``pyth_lazer_publisher_sdk`` in its JSON mapping (field
names in lowerCamelCase, 64-bit integers as strings, durations as ``"0.200s"``, times
in RFC 3339, enums by name); the original snake_case names are accepted too, as protobuf
JSON parsers do. The parts this module types are the ones a consumer reads; everything
is in ``raw``.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Final

from ..errors import ProtocolError
from ..protocol.crypto import evm_address, keccak256, secp256k1_recover


@dataclass(frozen=True)
class GuardianSetUpgrade:
    """A signed upgrade of the guardian (multisig) key set, while one is in progress.

    ``body`` is the serialized VAA body for on-chain assembly; ``signature`` the 65-byte
    ``r || s || v`` ECDSA signature over its digest (Keccak-256 of Keccak-256 of the body,
    as Wormhole signs VAA bodies).
    """

    current_guardian_set_index: int
    new_guardian_set_index: int
    new_guardian_keys: tuple[bytes, ...]
    body: bytes
    signature: bytes
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def digest(self) -> bytes:
        """The 32 bytes the signature signs."""
        return keccak256(keccak256(self.body))

    def signer_address(self) -> str:
        """The Ethereum address (``0x`` + 40 hex) the signature recovers to (extra
        ``verify``); compare it with the current guardian set's keys."""
        if len(self.signature) != 65:
            raise ProtocolError(f"guardian set upgrade: signature of {len(self.signature)} bytes")
        # secp256k1_recover hashes what it is given once more: the body's single hash in,
        # the double hash signed.
        point = secp256k1_recover(self.signature[:64], self.signature[64], keccak256(self.body))
        return evm_address(point.format(compressed=False))

    @classmethod
    def from_json_obj(cls, obj: Any) -> GuardianSetUpgrade:
        """Decode the JSON object of ``GET /v1/guardian_set_upgrade``."""
        if not isinstance(obj, dict):
            raise ProtocolError(f"guardian set upgrade: expected an object, got {_kind(obj)}")
        try:
            keys = obj["new_guardian_keys"]
            if not isinstance(keys, list):
                raise ValueError("new_guardian_keys: expected a list")
            return cls(
                current_guardian_set_index=_u32(obj["current_guardian_set_index"]),
                new_guardian_set_index=_u32(obj["new_guardian_set_index"]),
                new_guardian_keys=tuple(_hex(k) for k in keys),
                body=_hex(obj["body"]),
                signature=_hex(obj["signature"]),
                raw=obj,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ProtocolError(f"guardian set upgrade: malformed ({exc!s})") from None


STATE_PARTS: Final = (
    "publishers",
    "feeds",
    "governance_sources",
    "feature_flags",
    "exchanges",
)
"""What ``state()`` may ask for (``GetStateParams`` in the Rust client); none: all."""


@dataclass(frozen=True)
class StateFeed:
    """A feed as the state service describes it (``State.feeds[]``)."""

    feed_id: int
    symbol: str | None = None
    exponent: int | None = None
    min_publishers: int | None = None
    min_channel: str | None = None
    """``real_time`` or ``fixed_rate@<N>ms``, as the stream names channels."""
    state: str | None = None
    """``STABLE``, ``COMING_SOON``, ``INACTIVE``, ``BETA``, ``EXPIRED`` or a newer name."""
    kind: str | None = None
    """``PRICE`` or ``FUNDING_RATE``."""
    metadata: Mapping[str, Any] = field(default_factory=dict)
    """The feed's metadata values (a protobuf ``DynamicValue.Map``) as a plain dict."""
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class StatePublisher:
    """A publisher as the state service describes it (``State.publishers[]``)."""

    publisher_id: int
    name: str | None = None
    is_active: bool | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class ServiceState:
    """A snapshot of the service's state (``GET /v1/state``); parts not asked for are empty."""

    shard_id: int | None
    shard_name: str | None
    shard_group: str | None
    last_sequence_no: int | None
    last_timestamp: datetime | None
    feeds: tuple[StateFeed, ...]
    publishers: tuple[StatePublisher, ...]
    feature_flags: tuple[str, ...]
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def feed(self, feed_id: int) -> StateFeed | None:
        """The feed with this id, or ``None``."""
        return next((f for f in self.feeds if f.feed_id == feed_id), None)

    @classmethod
    def from_json_obj(cls, obj: Any) -> ServiceState:
        """Decode a ``State`` in protobuf's JSON mapping (either field-name style)."""
        if not isinstance(obj, dict):
            raise ProtocolError(f"state: expected an object, got {_kind(obj)}")
        try:
            feeds = tuple(_state_feed(f) for f in _get(obj, "feeds", []) if isinstance(f, dict))
            publishers = tuple(
                StatePublisher(
                    publisher_id=_req_int(_get(p, "publisher_id")),
                    name=_opt_str(_get(p, "name")),
                    is_active=_opt_bool(_get(p, "is_active")),
                    raw=p,
                )
                for p in _get(obj, "publishers", [])
                if isinstance(p, dict)
            )
            flags = tuple(f for f in _get(obj, "feature_flags", []) if isinstance(f, str))
            return cls(
                shard_id=_opt_int(_get(obj, "shard_id")),
                shard_name=_opt_str(_get(obj, "shard_name")),
                shard_group=_opt_str(_get(obj, "shard_group")),
                last_sequence_no=_opt_int(_get(obj, "last_sequence_no")),
                last_timestamp=_timestamp(_get(obj, "last_timestamp")),
                feeds=feeds,
                publishers=publishers,
                feature_flags=flags,
                raw=obj,
            )
        except (TypeError, ValueError, AttributeError, binascii.Error) as exc:
            raise ProtocolError(f"state: malformed ({exc!s})") from None


def dynamic_value(value: Any) -> Any:
    """A protobuf ``DynamicValue`` (JSON mapping) as a plain Python value: strings,
    numbers, booleans, bytes, lists and dicts; durations and times stay their text."""
    if not isinstance(value, dict):
        return value
    for name, convert in (
        ("string_value", str),
        ("double_value", float),
        ("uint_value", int),
        ("int_value", int),
        ("bool_value", bool),
        ("duration_value", str),
        ("timestamp_value", str),
    ):
        found = _get(value, name)
        if found is not None:
            return convert(found)
    raw = _get(value, "bytes_value")
    if raw is not None:
        return base64.b64decode(raw)
    items = _get(value, "list")
    if isinstance(items, dict):
        return [dynamic_value(v) for v in items.get("items", [])]
    mapping = _get(value, "map")
    if isinstance(mapping, dict):
        return dynamic_map(mapping)
    return value


def dynamic_map(value: Any) -> dict[str, Any]:
    """A protobuf ``DynamicValue.Map`` (``{"items": [{"key", "value"}]}``) as a dict."""
    if not isinstance(value, dict):
        return {}
    items = value.get("items")
    if not isinstance(items, list):
        return {}
    return {
        item["key"]: dynamic_value(item.get("value"))
        for item in items
        if isinstance(item, dict) and isinstance(item.get("key"), str)
    }


def _state_feed(f: dict[str, Any]) -> StateFeed:
    metadata = dynamic_map(_get(f, "metadata", {}))
    return StateFeed(
        feed_id=_req_int(_get(f, "feed_id")),
        symbol=_opt_str(_get(f, "symbol")),
        exponent=_opt_int(_get(f, "exponent")),
        min_publishers=_opt_int(_get(f, "min_publishers")),
        min_channel=_proto_channel(_get(f, "min_channel")),
        state=_opt_str(_get(f, "state")),
        kind=_opt_str(_get(f, "kind")),
        metadata=metadata,
        raw=f,
    )


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _get(obj: Mapping[str, Any], name: str, default: Any = None) -> Any:
    """A field by its JSON name (lowerCamelCase) or its proto name (snake_case)."""
    camel = _camel(name)
    if camel in obj:
        return obj[camel]
    return obj.get(name, default)


def _opt_int(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"expected an integer, got {value!r}")
    return int(value)  # proto JSON writes 64-bit integers as strings


def _req_int(value: Any) -> int:
    number = _opt_int(value)
    if number is None:
        raise ValueError("an id is missing")
    return number


def _opt_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _opt_bool(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def _timestamp(value: Any) -> datetime | None:
    """An RFC 3339 time (``google.protobuf.Timestamp`` in JSON), to the microsecond."""
    if not isinstance(value, str):
        return None
    match = re.fullmatch(
        r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)", value
    )
    if match is None:
        return None
    whole, fraction, zone = match.groups()
    moment = datetime.fromisoformat(whole + ("+00:00" if zone == "Z" else zone))
    micros = int(((fraction or "") + "000000")[:6])
    return moment.replace(microsecond=micros).astimezone(timezone.utc)


def _proto_channel(value: Any) -> str | None:
    """A ``Channel`` message (``{"rate": "0.200s"}`` or ``{"realTime": {}}``) named as
    the stream names channels."""
    if not isinstance(value, dict):
        return None
    if "realTime" in value or "real_time" in value:
        return "real_time"
    rate = value.get("rate")
    if isinstance(rate, str):
        match = re.fullmatch(r"(\d+)(?:\.(\d{1,9}))?s", rate)
        if match:
            ms = int(match.group(1)) * 1000 + int(((match.group(2) or "") + "000")[:3])
            return f"fixed_rate@{ms}ms"
    return None


def _u32(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << 32:
        raise ValueError(f"expected a u32, got {value!r}")
    return value


def _hex(value: Any) -> bytes:
    if not isinstance(value, str):
        raise ValueError(f"expected a hex string, got {type(value).__name__}")
    text = value[2:] if value[:2] in ("0x", "0X") else value
    return bytes.fromhex(text)


def _kind(obj: Any) -> str:
    return type(obj).__name__
