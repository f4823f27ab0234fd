"""Retrying calls to the store with backoff (tenacity), for the relay and the consumer.

Every wait is an ``Event.wait``, so ``close()`` ends it at once; nothing spins.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import tenacity

from ..config import Backoff
from ..errors import RelayConnectError, RelayError
from .store import PermanentConnectError

RetryHook = Callable[[tenacity.RetryCallState], None]


def is_transient(exc: BaseException) -> bool:
    """Worth retrying at start: the store is unreachable, not misconfigured."""
    return isinstance(exc, RelayConnectError) and not isinstance(exc, PermanentConnectError)


def is_relay_error(exc: BaseException) -> bool:
    """Worth retrying once running: any failure of the store (a thread never dies of one;
    each is counted and logged by the hook)."""
    return isinstance(exc, RelayError)


def retrying(
    backoff: Backoff,
    abort: threading.Event,
    retry_if: Callable[[BaseException], bool],
    before_sleep: RetryHook | None = None,
    timeout: float | None = None,
) -> tenacity.Retrying:
    """A tenacity loop: retries what ``retry_if`` accepts with the backoff's waits, until
    it succeeds, ``abort`` is set or ``timeout`` seconds have passed; then re-raises the
    last error."""
    deadline = None if timeout is None else time.monotonic() + timeout

    def stop(_: tenacity.RetryCallState) -> bool:
        return abort.is_set() or (deadline is not None and time.monotonic() >= deadline)

    def sleep(seconds: float) -> None:
        if deadline is not None:
            seconds = min(seconds, max(0.0, deadline - time.monotonic()))
        abort.wait(seconds)

    return tenacity.Retrying(
        retry=tenacity.retry_if_exception(retry_if),
        wait=backoff.strategy(),
        stop=stop,
        sleep=sleep,
        before_sleep=before_sleep,
        reraise=True,
    )
