"""Client settings: defaults, the reconnection backoff, and validation at construction.

Every knob has a default and says why it has it. A bad value fails in the caller's
line with an :class:`~pylazer_sync.errors.InvalidRequestError` (a ``ValueError``).
"""

from __future__ import annotations

import ipaddress
import math
import os
import random
import re
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass
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

DEFAULT_REST_URLS: Final = (
    "https://pyth-lazer-0.dourolabs.app",
    "https://pyth-lazer-1.dourolabs.app",
    "https://pyth-lazer-2.dourolabs.app",
)
"""Base URLs of the router's REST calls (``/v1/latest_price``, ``/v1/price``,
``/v1/reduce_price``, ``/v1/guardian_set_upgrade``): the stream hosts, failed over in turn."""
DEFAULT_REST_URL: Final = DEFAULT_REST_URLS[0]
"""The first of :data:`DEFAULT_REST_URLS` (the official TypeScript SDK's only one)."""
DEFAULT_API_URL: Final = "https://pyth.dourolabs.app"
"""Base URL of the API service: the feeds catalogue, ``/v1/symbols``."""
DEFAULT_HISTORY_URL: Final = "https://history.pyth-lazer.dourolabs.app"
"""Base URL of the history service: ``/v1/state``, OHLC bars, and the catalogue's old
location ``/history/v1/symbols``."""

TOKEN_ENV_VAR: Final = "PYTH_LAZER_TOKEN"

MAX_CONNECTIONS: Final = 32
"""Upper bound of ``num_connections``. Each connection is a thread, a socket and one more
copy of every frame to read and hash; Lazer has three endpoints and its SDKs use four
connections, so beyond a few dozen more connections add cost and no redundancy (and a
token's connection limit would refuse them anyway)."""

MAX_SECONDS: Final = 86_400.0
"""Upper bound of every duration setting (one day): a longer wait is indistinguishable
from "forever" and overflows some platforms' timers."""

OverflowPolicy = Literal["block", "drop_oldest"]


# Characters that can be part of a bearer token (RFC 6750's b64token, plus '_'/'.').
_TOKEN_CHARS: Final = r"A-Za-z0-9\-._~+/="
# A secret this long is replaced wherever it appears; a shorter one only where it stands
# alone, so that a one-letter test token does not turn "ConnectionRefusedError" into
# "Connec***ionRefusedError" (no real token is that short).
_SCRUB_ANYWHERE_LENGTH: Final = 12


class Secret:
    """A string that never shows itself in a repr, a log line or an exception."""

    __slots__ = ("_pattern", "_value")

    def __init__(self, value: str) -> None:
        self._value = value
        if len(value) >= _SCRUB_ANYWHERE_LENGTH:
            self._pattern = re.compile(re.escape(value))
        else:
            self._pattern = re.compile(
                rf"(?<![{_TOKEN_CHARS}]){re.escape(value)}(?![{_TOKEN_CHARS}])"
            )

    def reveal(self) -> str:
        """The secret itself: only for the Authorization header."""
        return self._value

    def scrub(self, text: str) -> str:
        """``text`` with every occurrence of the secret replaced by ``***``.

        The one place where text that may hold the secret (an error page echoing the
        request, an exception naming a URL) is cleaned before it is logged, stored in
        stats or raised; ordinary words are never mangled.
        """
        return self._pattern.sub("***", text) if self._value else text

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
        _seconds(self.initial, "backoff.initial")
        _seconds(self.max_interval, "backoff.max_interval")
        _seconds(self.reset_after, "backoff.reset_after")
        if not _is_number(self.multiplier) or not 1.0 <= self.multiplier <= 100.0:
            raise InvalidRequestError(
                f"backoff.multiplier: {self.multiplier!r} must be in [1, 100]"
            )
        if not _is_number(self.randomization) or not 0.0 <= self.randomization < 1.0:
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


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _seconds(value: object, name: str) -> float:
    """A duration setting: a finite number of seconds in (0, MAX_SECONDS]."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
        if 0 < seconds <= MAX_SECONDS:  # NaN and infinity fail here too
            return seconds
    raise InvalidRequestError(
        f"{name}: {value!r} must be a number of seconds > 0 and <= {MAX_SECONDS:g}"
    )


def _count(value: object, name: str, maximum: int | None = None) -> int:
    """A size or count setting: an integer >= 1 (and <= ``maximum``)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidRequestError(f"{name}: {value!r} must be an integer >= 1")
    if maximum is not None and value > maximum:
        raise InvalidRequestError(f"{name}: {value!r} is more than the maximum, {maximum}")
    return value


def check_wait(timeout: object, name: str = "timeout") -> float | None:
    """A timeout argument of a blocking call: None (wait for ever) or seconds >= 0."""
    if timeout is None:
        return None
    if isinstance(timeout, (int, float)) and not isinstance(timeout, bool):
        seconds = float(timeout)
        if not math.isnan(seconds) and seconds >= 0:
            return min(seconds, MAX_SECONDS)
    raise InvalidRequestError(f"{name}: {timeout!r} must be None or a number of seconds >= 0")


def is_loopback(host: str) -> bool:
    """Whether a URL host is this machine (where a token in clear text cannot leak)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def rest_url_for(stream_endpoint: str) -> str:
    """The REST base URL of a stream endpoint: same host and port, ``https``/``http``, no
    path (production serves REST on the stream hosts; the simulator answers REST on its
    stream port too, so a client pointed at it finds REST with no extra setting)."""
    parts = urlsplit(stream_endpoint)
    scheme = "https" if parts.scheme == "wss" else "http"
    return urlunsplit((scheme, parts.netloc, "", "", ""))


def rest_urls(
    endpoints: Sequence[str],
    rest_url: str | Sequence[str] | None = None,
    history_url: str | Sequence[str] | None = None,
    api_url: str | Sequence[str] | None = None,
) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """The REST base URLs ``(rest, api, history)`` of a client of ``endpoints``, each a
    tuple to fail over along: the given ones; else production's for the production
    endpoints; else derived from every endpoint (:func:`rest_url_for`), with the
    catalogue and history at the same places. The catalogue defaults to the history
    URLs when those are given."""
    production = tuple(endpoints) == DEFAULT_ENDPOINTS

    def given(value: str | Sequence[str] | None) -> tuple[str, ...] | None:
        if value is None:
            return None
        return (value,) if isinstance(value, str) else tuple(value)

    derived = tuple(dict.fromkeys(rest_url_for(e) for e in endpoints))
    rest = given(rest_url) or (DEFAULT_REST_URLS if production else derived)
    history = given(history_url) or ((DEFAULT_HISTORY_URL,) if production else rest)
    api = given(api_url) or given(history_url) or ((DEFAULT_API_URL,) if production else rest)
    return rest, api, history


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


def _set(config: object, name: str, value: object) -> None:
    object.__setattr__(config, name, value)  # normalizing a frozen dataclass in __post_init__


@dataclass(frozen=True)
class ClientConfig:
    """Every setting of a :class:`~pylazer_sync.LazerClient`, validated at construction.

    The defaults below are the only place they are written: ``LazerClient``'s signature
    refers to them, and a test checks the README's configuration table against them.
    Each knob is described in ``LazerClient``'s docstring. A bad value raises
    :class:`~pylazer_sync.InvalidRequestError` (a ``ValueError``) naming the knob.
    """

    token: Secret | str | None = None
    endpoints: Sequence[str] | str = DEFAULT_ENDPOINTS
    num_connections: int = 4
    timeout: float = 5.0
    backoff: Backoff = Backoff()
    channel_capacity: int = 1000
    dedup_ttl: float = 10.0
    dedup_size: int = 100_000
    overflow: OverflowPolicy = "block"
    start_timeout: float = 30.0
    allow_insecure: bool = False
    ssl_context: ssl.SSLContext | None = None
    ca_file: str | None = None
    max_frame_size: int = 1 << 20
    on_all_down: Callable[[], None] | None = None
    snapshot_only: bool = False
    rest_url: str | Sequence[str] | None = None
    history_url: str | Sequence[str] | None = None
    api_url: str | Sequence[str] | None = None
    rest_retries: int = 2
    symbols_cache: str | None = None
    symbols_max_age: float | None = None

    def __post_init__(self) -> None:
        endpoints = self.endpoints
        eps = (endpoints,) if isinstance(endpoints, str) else tuple(endpoints)
        if not eps:
            raise InvalidRequestError("endpoints: at least one endpoint must be given")
        eps = tuple(check_endpoint(e, bool(self.allow_insecure)) for e in eps)
        _set(self, "endpoints", eps)
        _set(self, "token", resolve_token(self.token, eps))
        _count(self.num_connections, "num_connections", MAX_CONNECTIONS)
        for name in ("timeout", "dedup_ttl", "start_timeout"):
            _set(self, name, _seconds(getattr(self, name), name))
        for name in ("channel_capacity", "dedup_size", "max_frame_size"):
            _count(getattr(self, name), name)
        if not isinstance(self.backoff, Backoff):
            raise InvalidRequestError(
                f"backoff: {self.backoff!r} is not a pylazer_sync.Backoff (e.g. Backoff(initial=1.0))"
            )
        if self.overflow not in ("block", "drop_oldest"):
            raise InvalidRequestError(
                f"overflow: {self.overflow!r}; expected 'block' or 'drop_oldest'"
            )
        if self.ssl_context is not None and not isinstance(self.ssl_context, ssl.SSLContext):
            raise InvalidRequestError(f"ssl_context: {self.ssl_context!r} is not an ssl.SSLContext")
        if self.ssl_context is not None and self.ca_file is not None:
            raise InvalidRequestError("pass either ssl_context or ca_file, not both")
        if self.ca_file is not None:
            try:
                _set(self, "ssl_context", ssl.create_default_context(cafile=self.ca_file))
            except (OSError, ssl.SSLError, TypeError) as exc:
                raise InvalidRequestError(f"ca_file: cannot load {self.ca_file!r}: {exc}") from None
        if self.on_all_down is not None and not callable(self.on_all_down):
            raise InvalidRequestError("on_all_down: must be callable")
        for name in ("allow_insecure", "snapshot_only"):
            _set(self, name, bool(getattr(self, name)))
        rest, api, history = rest_urls(eps, self.rest_url, self.history_url, self.api_url)
        for name, urls in (("rest_url", rest), ("api_url", api), ("history_url", history)):
            if not urls or not all(isinstance(u, str) for u in urls):
                raise InvalidRequestError(f"{name}: expected a URL or a list of URLs")
            for url in urls:
                check_url(url, name, "https", "http", bool(self.allow_insecure))
            _set(self, name, urls)
        retries = self.rest_retries
        if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= 100:
            raise InvalidRequestError(f"rest_retries: {retries!r} must be an integer from 0 to 100")
        if self.symbols_cache is not None:
            if not isinstance(self.symbols_cache, (str, os.PathLike)):
                raise InvalidRequestError(f"symbols_cache: {self.symbols_cache!r} is not a path")
            _set(self, "symbols_cache", os.fspath(self.symbols_cache))
        max_age = self.symbols_max_age
        if max_age is not None and not (_is_number(max_age) and 0 <= max_age < math.inf):
            raise InvalidRequestError(f"symbols_max_age: {max_age!r} must be None or seconds >= 0")

    @property
    def secret(self) -> Secret | None:
        """The access token (None when every endpoint is on this machine and none was given)."""
        token = self.token
        assert token is None or isinstance(token, Secret)  # __post_init__ made it so
        return token

    def endpoint_for(self, connection_index: int) -> str:
        """Connection i uses endpoint i % len(endpoints), as in the Rust client."""
        return self.endpoints[connection_index % len(self.endpoints)]


def resolve_token(token: object, endpoints: Sequence[str]) -> Secret | None:
    """The token argument, else ``$PYTH_LAZER_TOKEN``; optional only for loopback endpoints.

    The same rule holds for the library and the command line: a simulator (or any
    endpoint) on this machine needs no token, and none is sent to it then; anything else
    needs one.
    """
    if isinstance(token, Secret):
        return token
    if token is None:
        token = os.environ.get(TOKEN_ENV_VAR) or None
    if token is None or token == "":
        if all(is_loopback(urlsplit(e).hostname or "") for e in endpoints):
            return None
        raise InvalidRequestError(
            f"no access token: pass token=... or set the {TOKEN_ENV_VAR} environment variable "
            "(only endpoints on this machine may be used without one)"
        )
    if not isinstance(token, str):
        raise InvalidRequestError(f"token: expected a string, got {type(token).__name__}")
    if any(c in token for c in "\r\n"):
        raise InvalidRequestError("token: contains a line break")  # would split the header
    return Secret(token)
