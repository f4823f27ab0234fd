"""A warning that repeats at most every few seconds and says how often it was held back.

Drops and undecodable frames can come by the thousand per second; one log line per
event would flood the log and slow the thread that reports them.
"""

from __future__ import annotations

import logging
import math
import time

logger = logging.getLogger("pylazer_sync")


class RateLimitedWarning:
    """Log a WARNING for an event at most once per ``interval`` seconds, counting the rest.

    Used by one thread each (the buffer's producer, the dedup thread): not thread-safe.
    """

    def __init__(self, interval: float = 5.0) -> None:
        self._interval = interval
        self._last = -math.inf
        self._since_last = 0

    def __call__(self, message: str, *args: object) -> None:
        """Count one event; log ``message % args`` if the last report is old enough."""
        self._since_last += 1
        now = time.monotonic()
        if now - self._last < self._interval:
            return
        logger.warning(
            message + " [%d such event(s) since the last report]", *args, self._since_last
        )
        self._last = now
        self._since_last = 0
