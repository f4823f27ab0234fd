"""Several base URLs for one service: which to try, when to move on, when to give up.

The rules (the README's "REST calls" section says the same):

1. Every call tries the service's base URLs in order, starting with the one that answered
   last (so a dead first URL costs one failed attempt, not one per call).
2. It moves on to the next URL when no server answered (connection refused or reset, DNS
   failure, TLS failure, timeout), when one answered HTTP 5xx or 429, or when the answer
   could not be decoded: another replica may do better.
3. Any other HTTP error (400 bad request, 401/403 token, 404) ends the call at once: it
   is the request, not the server, that is wrong, and every replica would say the same.
4. A round in which every URL failed is repeated after a wait, up to ``retries`` more
   times; the waits follow the client's reconnection :class:`~pylazer_sync.config.Backoff`
   (0.5 s, 0.75 s, ... randomized by +/-50 % by default), through tenacity, as the stream's
   reconnections do. A round in which every URL answered, but nothing decodable, is not
   repeated: the :class:`~pylazer_sync.errors.ProtocolError` is raised at once.
5. Then the call raises :class:`~pylazer_sync.errors.RestError` listing each URL's last
   failure (``status``: the HTTP status, if every URL answered the same one).

All the calls are reads, so repeating one is harmless.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

import tenacity

from ..config import Backoff
from ..errors import LazerError, ProtocolError, RestError

logger = logging.getLogger("pylazer_sync.rest")

_T = TypeVar("_T")


def is_transient(exc: LazerError) -> bool:
    """Whether another URL (or a later attempt) may succeed where this failure happened."""
    if isinstance(exc, ProtocolError):
        return True
    if isinstance(exc, RestError):
        return exc.status is None or exc.status >= 500 or exc.status == 429
    return False


class _RoundFailed(Exception):
    """Every URL of one round failed transiently (tenacity retries on this)."""


class Failover:
    """Runs one request against a service's base URLs by the rules above.

    Args:
        urls: the base URLs, most preferred first (at least one).
        what: the service's name in messages (``"prices"``, ``"catalogue"``, ...).
        retries: rounds repeated after a first round in which every URL failed.
        backoff: the waits between rounds.
    """

    def __init__(self, urls: Sequence[str], what: str, retries: int, backoff: Backoff) -> None:
        if not urls:
            raise ValueError("Failover needs at least one URL")
        self.urls = tuple(urls)
        self.what = what
        self.retries = retries
        self.backoff = backoff
        self._lock = threading.Lock()
        self._preferred = 0  # index of the URL that answered last

    def __repr__(self) -> str:
        return f"Failover({self.what!r}, urls={list(self.urls)!r}, retries={self.retries})"

    def call(self, attempt: Callable[[str], _T]) -> _T:
        """``attempt(base_url)`` on one URL after the other until one succeeds.

        ``attempt`` raises library errors; :func:`is_transient` ones move on, others
        propagate at once.
        """
        failures: dict[str, LazerError] = {}
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.retries + 1),
            wait=self.backoff.strategy(),
            retry=tenacity.retry_if_exception_type(_RoundFailed),
            before_sleep=lambda state: logger.warning(
                "REST %s: no URL answered (round %d of %d); trying again",
                self.what,
                state.attempt_number,
                self.retries + 1,
            ),
            reraise=True,
        )
        try:
            result: _T = retrying(self._round, attempt, failures)
        except _RoundFailed:
            raise self._give_up(failures) from None
        return result

    def _round(self, attempt: Callable[[str], _T], failures: dict[str, LazerError]) -> _T:
        with self._lock:
            start = self._preferred
        count = len(self.urls)
        undecodable: list[ProtocolError] = []  # the round's failures, while all are these
        for step in range(count):
            index = (start + step) % count
            url = self.urls[index]
            try:
                result = attempt(url)
            except LazerError as exc:
                if not is_transient(exc):
                    raise
                failures[url] = exc
                if isinstance(exc, ProtocolError) and len(undecodable) == step:
                    undecodable.append(exc)
                if count > 1:
                    logger.info("REST %s: %s failed (%s); trying the next URL", self.what, url, exc)
                continue
            with self._lock:
                self._preferred = index
            return result
        if len(undecodable) == count:
            raise undecodable[-1]  # every URL answered: waiting will not make it decodable
        raise _RoundFailed

    def _give_up(self, failures: dict[str, LazerError]) -> LazerError:
        errors = list(failures.values())
        rounds = self.retries + 1
        detail = "; ".join(str(failures[u]) for u in self.urls if u in failures)
        if len(self.urls) == 1:
            message = f"{detail} (tried {rounds} times)" if rounds > 1 else detail
        else:
            message = (
                f"{self.what}: none of the {len(self.urls)} URLs answered "
                f"({rounds} rounds): {detail}"
            )
        statuses = {e.status for e in errors if isinstance(e, RestError)}
        return RestError(message, status=statuses.pop() if len(statuses) == 1 else None)
