"""Argument types: each turns one option's text into a value, or says in one line what
is wrong with it (argparse then exits with status 2)."""

from __future__ import annotations

import argparse
import datetime as _dt
import re
from urllib.parse import urlsplit

from ..protocol import Format, Property
from ..protocol.types import PROPERTY_BY_NAME, U32_MAX


def comma_list(text: str) -> list[str]:
    """``a,b,c`` -> ``["a", "b", "c"]`` (blanks dropped; at least one item)."""
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise argparse.ArgumentTypeError("expected a comma-separated list")
    return items


def feed_ids(text: str) -> list[int]:
    """Comma-separated feed ids: integers from 0 to 2**32 - 1 (u32 on the wire)."""
    ids = []
    for item in comma_list(text):
        if not item.isdigit() or int(item) > U32_MAX:
            raise argparse.ArgumentTypeError(
                f"{item!r} is not a feed id: feed ids are integers from 0 to {U32_MAX}"
            )
        ids.append(int(item))
    return ids


def _url(text: str, schemes: tuple[str, str], example: str) -> str:
    # Only the form is checked here, so that a URL without a scheme is named as such
    # before anything else; the library checks the rest (a token never goes in clear text).
    parts = urlsplit(text)
    if parts.scheme not in schemes or not parts.hostname:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a {schemes[0]}:// or {schemes[1]}:// URL (e.g. {example})"
        )
    return text


def stream_url(text: str) -> str:
    """A stream endpoint: ``wss://`` (or ``ws://``) with a host."""
    return _url(text, ("ws", "wss"), "wss://pyth-lazer-0.dourolabs.app/v1/stream")


def http_url(text: str) -> str:
    """A REST base URL: ``https://`` (or ``http://``) with a host."""
    return _url(text, ("http", "https"), "https://pyth-lazer-0.dourolabs.app")


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


def start_position(text: str) -> str | _dt.datetime:
    """Where a ``--from-redis`` reader starts: ``$``, ``0``, an entry id, or a time."""
    if text == "$" or re.fullmatch(r"\d+-\d+|0", text):
        return text
    try:
        return _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc) + _dt.timedelta(
            microseconds=timestamp_us(text)
        )
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected $ (new updates), 0 (all the stream holds), an entry id "
            "(1700000000000-0) or an ISO 8601 time"
        ) from None
