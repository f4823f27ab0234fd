"""What every recording format needs to know about an update, beyond its typed fields."""

from __future__ import annotations

import struct
from typing import Final

from ..protocol import JsonMessage, StreamUpdate, encode_server_message
from ..protocol.payload import PAYLOAD_MAGIC

# The binary payload starts with its magic (u32), the timestamp (u64) and the channel id
# (u8) (PROTOCOL.md, "Payload"): the channel is byte 12 in either byte order.
_PAYLOAD_MAGICS: Final = (struct.pack("<I", PAYLOAD_MAGIC), struct.pack(">I", PAYLOAD_MAGIC))
_CHANNEL_OFFSET: Final = 12


def channel_id_of(update: StreamUpdate) -> int | None:
    """The update's channel id: its payload's, else a signed payload's, else ``None``.

    JSON delivery's ``parsed`` object carries no channel, but every signed envelope of the
    same update does; its byte is read in place, without decoding the payload again.
    """
    payload = update.payload
    if payload is not None and payload.channel_id is not None:
        return payload.channel_id
    for message in update.messages:
        if isinstance(message, JsonMessage):
            continue
        raw = message.payload
        if len(raw) > _CHANNEL_OFFSET and raw[:4] in _PAYLOAD_MAGICS:
            return raw[_CHANNEL_OFFSET]
    return None


def frame_of(update: StreamUpdate) -> tuple[bytes, bool]:
    """The WebSocket frame the update came in, and whether it was a text frame.

    An update built otherwise (from REST, or read from jsonl) gets the JSON text frame
    that encodes it, so that every recorded update has a frame to decode and replay.
    """
    if update.frame is not None:
        return update.frame, update.frame_is_text
    return encode_server_message(update).encode(), True
