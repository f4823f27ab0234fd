"""Argument types: each turns one option's text into a value, or says in one line what
is wrong with it (argparse then exits with status 2)."""

from __future__ import annotations

import argparse
import datetime as _dt

from ..protocol import Format, Property
from ..protocol.types import PROPERTY_BY_NAME


def comma_list(text: str) -> list[str]:
    """``a,b,c`` -> ``["a", "b", "c"]`` (blanks dropped; at least one item)."""
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise argparse.ArgumentTypeError("expected a comma-separated list")
    return items


def feed_ids(text: str) -> list[int]:
    """Comma-separated feed ids."""
    ids = []
    for item in comma_list(text):
        if not item.isdigit():
            raise argparse.ArgumentTypeError(f"{item!r} is not a feed id (a number)")
        ids.append(int(item))
    return ids


def properties(text: str) -> list[str]:
    """Comma-separated property names, wire (``bestBidPrice``) or snake_case."""
    items = comma_list(text)
    for item in items:
        if item not in PROPERTY_BY_NAME:
            known = ", ".join(p.value for p in Property)
            raise argparse.ArgumentTypeError(f"unknown property {item!r}; known: {known}")
    return items


def formats(text: str) -> list[str]:
    """Comma-separated envelope formats."""
    items = comma_list(text)
    known = [f.value for f in Format]
    for item in items:
        if item not in known:
            raise argparse.ArgumentTypeError(f"unknown format {item!r}; known: {', '.join(known)}")
    return items


def positive_int(text: str) -> int:
    """An integer >= 1."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return int(text)


def positive_float(text: str) -> float:
    """A number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


def trusted_signer(text: str) -> tuple[str, bytes]:
    """A signer identity, its kind told by its length: an EVM address (20 bytes), an
    Ed25519 key (32, Solana) or a compressed secp256k1 key (33, LeEcdsa)."""
    try:
        raw = bytes.fromhex(text.removeprefix("0x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not hex") from None
    kind = {20: "evm", 32: "solana", 33: "leEcdsa"}.get(len(raw))
    if kind is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} is {len(raw)} bytes; expected an EVM address (20 bytes), a Solana "
            "Ed25519 key (32) or a LeEcdsa compressed secp256k1 key (33)"
        )
    return kind, raw


def timestamp_us(text: str) -> int:
    """Microseconds since the epoch, or an ISO 8601 time (UTC unless it says otherwise)."""
    if text.isdigit():
        return int(text)
    try:
        when = _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither microseconds since the epoch nor an ISO 8601 time"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=_dt.timezone.utc)
    epoch = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
    return (when - epoch) // _dt.timedelta(microseconds=1)
