"""Client settings: defaults, the reconnection backoff, and validation at construction.

Every knob has a default and says why it has it. A bad value fails in the caller's
line with an :class:`~pylazer_sync.errors.InvalidRequestError` (a ``ValueError``).
"""

from __future__ import annotations

import ipaddress
import os
import random
import ssl
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Final, Literal
from urllib.parse import urlsplit, urlunsplit

import tenacity
from tenacity.wait import wait_base

from .errors import InvalidRequestError

DEFAULT_ENDPOINTS: Final = (
    "wss://pyth-lazer-0.dourolabs.app/v1/stream",
    "wss://pyth-lazer-1.dourolabs.app/v1/stream",
    "wss://pyth-lazer-2.dourolabs.app/v1/stream",
)
"""Production stream endpoints; Lazer advises connecting to all of them at once."""

DEFAULT_REST_URL: Final = "https://pyth-lazer-0.dourolabs.app"
"""Base URL of the REST calls ``/v1/latest_price`` and ``/v1/price``."""
DEFAULT_HISTORY_URL: Final = "https://history.pyth-lazer.dourolabs.app"
"""Base URL of the metadata service (``/history/v1/symbols``)."""

TOKEN_ENV_VAR: Final = "PYTH_LAZER_TOKEN"

OverflowPolicy = Literal["block", "drop_oldest"]


class Secret:
    """A string that never shows itself in a repr, a log line or an exception."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret itself: only for the Authorization header."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("a Secret is not picklable")  # keeps tokens out of pickles and caches


class _RandomizedWait(wait_base):
    """Multiply another wait by a random factor in [1 - r, 1 + r], as Rust's ``backoff`` does.

    tenacity's own jitter strategies add a bounded offset; Lazer's reference client
    randomizes multiplicatively, so the spread grows with the interval.
    """

    def __init__(self, inner: wait_base, randomization: float, rng: random.Random) -> None:
        self.inner = inner
        self.randomization = randomization
        self.rng = rng

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        base = self.inner(retry_state)
        return base * (1.0 + self.randomization * (2.0 * self.rng.random() - 1.0))


@dataclass(frozen=True)
class Backoff:
    """Exponential reconnection backoff, the same shape as the official Rust client's.

    The n-th wait after consecutive failures is ``initial * multiplier**(n-1)``, capped at
    ``max_interval``, then randomized by +/- ``randomization``; it never gives up. The
    sequence starts again after a connection that lived longer than ``reset_after``
    seconds (and longer than the read timeout), so a flapping endpoint backs off while
    a long-lived one that drops reconnects at once.
    """

    initial: float = 0.5
    """First wait in seconds: short, because endpoints restart one at a time."""
    multiplier: float = 1.5
    """Growth per consecutive failure."""
    randomization: float = 0.5
    """Spread of each wait (0.5 = anywhere in 50%..150%), so clients do not reconnect in step."""
    max_interval: float = 60.0
    """Longest wait between attempts."""
    reset_after: float = 10.0
    """A connection that lived this long resets the backoff."""

    def __post_init__(self) -> None:
        _positive(self.initial, "backoff.initial")
        _positive(self.max_interval, "backoff.max_interval")
        _positive(self.reset_after, "backoff.reset_after")
        if self.multiplier < 1.0:
            raise InvalidRequestError(f"backoff.multiplier: {self.multiplier!r} must be >= 1")
        if not 0.0 <= self.randomization < 1.0:
            raise InvalidRequestError(
                f"backoff.randomization: {self.randomization!r} must be in [0, 1)"
            )

    def strategy(self, rng: random.Random | None = None) -> wait_base:
        """The tenacity wait strategy computing each delay from the attempt number."""
        inner = tenacity.wait_exponential(
            multiplier=self.initial, exp_base=self.multiplier, max=self.max_interval
        )
        return _RandomizedWait(inner, self.randomization, rng or random.Random())


class BackoffTimer:
    """Tracks consecutive failures of one connection and answers "how long to wait now"."""

    def __init__(self, backoff: Backoff, timeout: float) -> None:
        self._strategy = backoff.strategy()
        self._reset_after = max(backoff.reset_after, timeout)
        # tenacity's strategies read only the attempt number from the retry state.
        self._state = tenacity.RetryCallState(None, None, (), {})  # type: ignore[arg-type]

    def next_delay(self, connection_lifetime: float | None) -> float:
        """The wait before the next attempt; a long-lived connection resets the sequence."""
        if connection_lifetime is not None and connection_lifetime > self._reset_after:
            self._state.attempt_number = 1
        delay = float(self._strategy(self._state))
        self._state.attempt_number += 1
        return delay


def _positive(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise InvalidRequestError(f"{name}: {value!r} must be a positive number")
    return float(value)


def is_loopback(host: str) -> bool:
    """Whether a URL host is this machine (where a token in clear text cannot leak)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def rest_url_for(stream_endpoint: str) -> str:
    """The REST base URL of a stream endpoint: same host, ``https``/``http``, no path."""
    parts = urlsplit(stream_endpoint)
    scheme = "https" if parts.scheme == "wss" else "http"
    return urlunsplit((scheme, parts.netloc, "", "", ""))


def check_url(url: str, what: str, secure: str, plain: str, allow_insecure: bool) -> str:
    """Validate a URL that the token is sent to: the ``secure`` scheme, or the ``plain``
    one only to loopback (unless ``allow_insecure``), since the token would travel in
    clear text."""
    if not isinstance(url, str):
        raise InvalidRequestError(f"{what}: {url!r} is not a URL string")
    parts = urlsplit(url)
    if parts.scheme not in (plain, secure) or not parts.hostname:
        raise InvalidRequestError(f"{what}: {url!r} is not a {plain}:// or {secure}:// URL")
    if parts.scheme == plain and not allow_insecure and not is_loopback(parts.hostname):
        raise InvalidRequestError(
            f"{what}: {url!r} is plain {plain}:// to a non-loopback host; the token would "
            f"travel in clear text. Use {secure}://, or pass allow_insecure=True if you must."
        )
    return url


def check_endpoint(url: str, allow_insecure: bool) -> str:
    """Validate one stream endpoint URL: ``wss://``, or ``ws://`` to loopback only."""
    return check_url(url, "endpoints", "wss", "ws", allow_insecure)


@dataclass(frozen=True)
class ClientConfig:
    """Everything a :class:`~pylazer_sync.LazerClient` needs, validated once.

    Build it through ``LazerClient(...)``'s keyword arguments; see there for each knob.
    """

    token: Secret
    endpoints: tuple[str, ...] = DEFAULT_ENDPOINTS
    num_connections: int = 4
    timeout: float = 5.0
    backoff: Backoff = field(default_factory=Backoff)
    channel_capacity: int = 1000
    dedup_ttl: float = 10.0
    dedup_size: int = 100_000
    overflow: OverflowPolicy = "block"
    start_timeout: float = 30.0
    allow_insecure: bool = False
    ssl_context: ssl.SSLContext | None = None
    max_frame_size: int = 1 << 20
    on_all_down: Callable[[], None] | None = None
    snapshot_only: bool = False
    rest_url: str = DEFAULT_REST_URL
    history_url: str = DEFAULT_HISTORY_URL

    @classmethod
    def build(
        cls,
        token: str | None,
        *,
        endpoints: Iterable[str] | None = None,
        num_connections: int = 4,
        timeout: float = 5.0,
        backoff: Backoff | None = None,
        channel_capacity: int = 1000,
        dedup_ttl: float = 10.0,
        dedup_size: int = 100_000,
        overflow: OverflowPolicy = "block",
        start_timeout: float = 30.0,
        allow_insecure: bool = False,
        ssl_context: ssl.SSLContext | None = None,
        ca_file: str | None = None,
        max_frame_size: int = 1 << 20,
        on_all_down: Callable[[], None] | None = None,
        snapshot_only: bool = False,
        rest_url: str | None = None,
        history_url: str | None = None,
    ) -> ClientConfig:
        """Validate every knob and resolve the token (argument, else ``PYTH_LAZER_TOKEN``)."""
        if token is None:
            token = os.environ.get(TOKEN_ENV_VAR)
        if token is None or token == "":
            raise InvalidRequestError(
                f"no access token: pass token=... or set the {TOKEN_ENV_VAR} environment variable"
            )
        if not isinstance(token, str):
            raise InvalidRequestError(f"token: expected a string, got {type(token).__name__}")
        if any(c in token for c in "\r\n"):
            raise InvalidRequestError("token: contains a line break")  # would split the header
        eps = tuple(DEFAULT_ENDPOINTS if endpoints is None else endpoints)
        if isinstance(endpoints, str):
            eps = (endpoints,)
        if not eps:
            raise InvalidRequestError("endpoints: at least one endpoint must be given")
        eps = tuple(check_endpoint(e, allow_insecure) for e in eps)
        if (
            isinstance(num_connections, bool)
            or not isinstance(num_connections, int)
            or num_connections < 1
        ):
            raise InvalidRequestError(
                f"num_connections: {num_connections!r} must be an integer >= 1"
            )
        for name, value in (
            ("channel_capacity", channel_capacity),
            ("dedup_size", dedup_size),
            ("max_frame_size", max_frame_size),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidRequestError(f"{name}: {value!r} must be an integer >= 1")
        if overflow not in ("block", "drop_oldest"):
            raise InvalidRequestError(f"overflow: {overflow!r}; expected 'block' or 'drop_oldest'")
        if ssl_context is not None and ca_file is not None:
            raise InvalidRequestError("pass either ssl_context or ca_file, not both")
        if ca_file is not None:
            try:
                ssl_context = ssl.create_default_context(cafile=ca_file)
            except (OSError, ssl.SSLError) as exc:
                raise InvalidRequestError(f"ca_file: cannot load {ca_file!r}: {exc}") from None
        if on_all_down is not None and not callable(on_all_down):
            raise InvalidRequestError("on_all_down: must be callable")
        if rest_url is None:
            rest_url = DEFAULT_REST_URL if endpoints is None else rest_url_for(eps[0])
        if history_url is None:
            history_url = DEFAULT_HISTORY_URL if endpoints is None else rest_url
        return cls(
            token=Secret(token),
            endpoints=eps,
            num_connections=num_connections,
            timeout=_positive(timeout, "timeout"),
            backoff=backoff if backoff is not None else Backoff(),
            channel_capacity=channel_capacity,
            dedup_ttl=_positive(dedup_ttl, "dedup_ttl"),
            dedup_size=dedup_size,
            overflow=overflow,
            start_timeout=_positive(start_timeout, "start_timeout"),
            allow_insecure=bool(allow_insecure),
            ssl_context=ssl_context,
            max_frame_size=max_frame_size,
            on_all_down=on_all_down,
            snapshot_only=bool(snapshot_only),
            rest_url=rest_url,
            history_url=history_url,
        )

    def endpoint_for(self, connection_index: int) -> str:
        """Connection i uses endpoint i % len(endpoints), as in the Rust client."""
        return self.endpoints[connection_index % len(self.endpoints)]
