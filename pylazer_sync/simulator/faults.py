"""Malformed frames for the garbage fault: what a robust client must survive.

Each kind breaks one layer of the format, so a client's tests can check that it drops
the bad frame, counts it, and keeps the connection: the WebSocket frame itself is always
valid, what is inside is not.
"""

from __future__ import annotations

import json
import random
import struct
from typing import Final, Literal, get_args

from ..errors import InvalidRequestError
from ..protocol import (
    FeedUpdate,
    LeUnsignedMessage,
    Payload,
    Property,
    encode_binary_update,
    encode_payload,
)
from .updates import Frame, now_us

GarbageKind = Literal[
    "random_binary",
    "invalid_json",
    "unknown_type",
    "truncated_envelope",
    "unknown_envelope",
    "truncated_frame",
]
GARBAGE_KINDS: Final[tuple[str, ...]] = get_args(GarbageKind)


def garbage_frame(kind: str, sub_id: int, rng: random.Random) -> Frame:
    """One malformed frame of the given kind, naming subscription ``sub_id`` where the
    format has a subscription id. Raises ``ValueError`` for an unknown kind."""
    if kind not in GARBAGE_KINDS:
        raise InvalidRequestError(f"unknown garbage kind {kind!r}; expected one of {GARBAGE_KINDS}")
    if kind == "random_binary":
        return rng.randbytes(64)
    if kind == "invalid_json":
        return f'{{"type":"streamUpdated","subscriptionId":{sub_id},"parsed":{{"timestampUs":'
    if kind == "unknown_type":
        return json.dumps(
            {"type": "simulatorNotice", "subscriptionId": sub_id, "note": "unknown type"},
            separators=(",", ":"),
        )
    if kind == "unknown_envelope":
        # A message whose format magic (0xdeadbeef) no client knows.
        return encode_binary_update(sub_id, [struct.pack("<I", 0xDEADBEEF) + bytes(16)])
    feed = FeedUpdate(1, price=1, properties=(Property.PRICE,))
    envelope = LeUnsignedMessage(encode_payload(Payload(now_us(), [feed], 1), "little"))
    if kind == "truncated_envelope":
        # The frame is consistent; the envelope inside announces more payload than it has.
        return encode_binary_update(sub_id, [envelope.encode()[:-5]])
    # truncated_frame: the frame announces a message longer than what follows.
    return encode_binary_update(sub_id, [envelope])[:-5]
