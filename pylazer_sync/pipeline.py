"""What travels from the connection threads to the dedup thread.

``connection.py`` and ``dedup.py`` never import each other; they meet only through the
inbound queue that ``client.py`` creates, and this module types what goes on it, so
mypy checks both ends of the hand-off.
"""

from __future__ import annotations

import queue
from enum import Enum
from typing import TypeAlias

Frame: TypeAlias = tuple[bool, bytes]
"""One data frame as read: (is it a text frame, its raw bytes)."""

InboundItem: TypeAlias = tuple[int, int, list[Frame]]
"""(connection index, socket epoch, frames). Frames travel in batches: one queue
operation per batch instead of per frame. The epoch numbers each socket a connection
opens, so the dedup thread can tell answers on a new socket from those on an old one."""


class Stop(Enum):
    """The sentinel type that ends the dedup thread."""

    STOP = "stop"


STOP = Stop.STOP
"""Put on the inbound queue to end the dedup thread."""

Inbound: TypeAlias = "queue.Queue[InboundItem | Stop]"
"""The queue between the connection threads and the dedup thread."""
