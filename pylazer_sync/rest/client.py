"""``RestClient``: every REST call of Pyth Lazer (Pro), with failover over base URLs.

Three services, each with its own base URLs (the official clients' defaults):

- the router (``pyth-lazer-{0,1,2}.dourolabs.app``, the stream hosts): ``POST
  /v1/latest_price``, ``POST /v1/price``, ``POST /v1/reduce_price``, ``GET
  /v1/guardian_set_upgrade``;
- the API service (``pyth.dourolabs.app``): ``GET /v1/symbols``, the feeds catalogue;
- the history service (``history.pyth-lazer.dourolabs.app``): ``GET /v1/state``, the OHLC
  bars (:mod:`pylazer_sync.ohlc`), and the catalogue's old location
  ``/history/v1/symbols``, used while the new one does not answer.

Each call fails over and retries by the rules of :mod:`.failover`; answers decode into
the library's types (a price update is the same :class:`StreamUpdate` the stream gives).
"""

from __future__ import annotations

import json
import logging
import numbers
import os
import ssl
import time
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any, Final, TypeVar
from urllib.parse import urlencode

from ..config import (
    DEFAULT_API_URL,
    DEFAULT_HISTORY_URL,
    DEFAULT_REST_URLS,
    Backoff,
    Secret,
    check_url,
)
from ..errors import InvalidRequestError, LazerError, ProtocolError, RestError
from ..protocol import JsonBinaryEncoding, StreamUpdate, SubscribeRequest
from ..protocol.messages import parse_json_update, stream_update_to_json_obj
from ..protocol.types import U64_MAX
from ._http import exchange
from .catalogue_cache import CatalogueCache
from .failover import Failover
from .results import STATE_PARTS, GuardianSetUpgrade, ServiceState
from .symbols import SymbolInfo, search

logger = logging.getLogger("pylazer_sync.rest")

_T = TypeVar("_T")

# The fields of the REST price requests (``LatestPriceRequest`` / ``PriceRequest`` in the
# Rust protocol): the subscription's, without the stream-only ones.
_PRICE_FIELDS: Final[tuple[str, ...]] = (
    "priceFeedIds",
    "symbols",
    "properties",
    "formats",
    "jsonBinaryEncoding",
    "parsed",
    "channel",
)
_STREAM_ONLY_FIELDS: Final = frozenset(
    {"deliveryFormat", "ignoreInvalidFeeds", "ignoreInvalidFeedIds", "marketSessions"}
)
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=timezone.utc)
_US: Final = timedelta(microseconds=1)

Urls = str | Sequence[str]
"""One base URL, or several to fail over between (most preferred first)."""


class SymbolList(list[SymbolInfo]):
    """The catalogue (a list of :class:`SymbolInfo`) and where it came from."""

    def __init__(
        self,
        entries: Iterable[SymbolInfo],
        source: str,
        fetched_at: float,
        from_cache: bool = False,
    ) -> None:
        super().__init__(entries)
        self.source = source
        """The URL it was fetched from (for a cached copy: the cache file's path)."""
        self.fetched_at = datetime.fromtimestamp(fetched_at, timezone.utc)
        """When the service gave it (UTC)."""
        self.from_cache = from_cache
        """Whether it was read from the disk cache instead of the service."""


def timestamp_us(at: object, name: str = "timestamp") -> int:
    """Microseconds since the epoch from an integer or a time-zone-aware ``datetime``
    (a pandas ``Timestamp`` is one); a naive ``datetime`` is refused, since it could be
    local time or UTC."""
    if isinstance(at, datetime):
        if at.tzinfo is None or at.utcoffset() is None:
            raise InvalidRequestError(
                f"{name}: {at!r} has no time zone, so it could be UTC or local time; "
                "pass an aware datetime, e.g. datetime(2025, 1, 2, tzinfo=timezone.utc)"
            )
        value = (at - _EPOCH) // _US
    elif isinstance(at, numbers.Integral) and not isinstance(at, bool):
        value = int(at)
    else:
        raise InvalidRequestError(
            f"{name}: expected microseconds since the epoch (an integer) or an aware "
            f"datetime, got {type(at).__name__}"
        )
    if not 0 <= value <= U64_MAX:
        raise InvalidRequestError(f"{name}: {value} microseconds is out of range")
    return value


def url_list(value: Urls, name: str, allow_insecure: bool) -> tuple[str, ...]:
    """Validated base URLs (``https``, or ``http`` to this machine), without their
    trailing slash and duplicates, in order."""
    items = [value] if isinstance(value, str) else list(value)
    if not items:
        raise InvalidRequestError(f"{name}: at least one URL must be given")
    out: list[str] = []
    for item in items:
        check_url(item, name, "https", "http", allow_insecure)
        url = item.rstrip("/")
        if url not in out:
            out.append(url)
    return tuple(out)


class RestClient:
    """Blocking calls to the Lazer REST services, with bearer auth, timeouts, failover
    and retries.

    Args:
        token: the access token (sent only in the ``Authorization`` header); None sends
            no header (for a server on this machine, such as the simulator).
        rest_url: base URL(s) of the router's calls (``latest_price``, ``price``,
            ``reduce_price``, ``guardian_set_upgrade``); default the three production hosts.
        history_url: base URL(s) of the history service (``state``, OHLC bars, and the
            catalogue's old location); default ``https://history.pyth-lazer.dourolabs.app``.
        api_url: base URL(s) of the catalogue, ``/v1/symbols``; default ``history_url`` when
            that is given, else ``https://pyth.dourolabs.app``.
        timeout: seconds for each attempt (connect and read).
        retries: rounds over all URLs repeated after a round that found no answer.
        backoff: the waits between those rounds (the stream's reconnection backoff).
        ssl_context: TLS trust for ``https`` (default: the system's CAs).
        allow_insecure: allow plain ``http`` to a non-loopback host.
        symbols_cache: a file to keep the catalogue in, answered from when the service
            cannot be reached (see :meth:`symbols`); None: no cache.
        symbols_max_age: seconds a cached catalogue is answered from without asking the
            service at all; None: always ask first.
    """

    def __init__(
        self,
        token: str | Secret | None,
        *,
        rest_url: Urls | None = None,
        history_url: Urls | None = None,
        api_url: Urls | None = None,
        timeout: float = 10.0,
        retries: int = 2,
        backoff: Backoff | None = None,
        ssl_context: ssl.SSLContext | None = None,
        allow_insecure: bool = False,
        symbols_cache: str | os.PathLike[str] | None = None,
        symbols_max_age: float | None = None,
    ) -> None:
        self._token = token if isinstance(token, Secret) or token is None else Secret(token)
        self.rest_urls = url_list(rest_url or DEFAULT_REST_URLS, "rest_url", allow_insecure)
        self.history_urls = url_list(
            history_url or DEFAULT_HISTORY_URL, "history_url", allow_insecure
        )
        self.api_urls = url_list(
            api_url or history_url or DEFAULT_API_URL, "api_url", allow_insecure
        )
        if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= 100:
            raise InvalidRequestError(f"retries: {retries!r} must be an integer from 0 to 100")
        self.timeout = timeout
        self.retries = retries
        backoff = backoff if backoff is not None else Backoff()
        self._prices = Failover(self.rest_urls, "prices", retries, backoff)
        self._catalogue = Failover(self.api_urls, "catalogue", retries, backoff)
        self._history = Failover(self.history_urls, "history", retries, backoff)
        self._ssl_context = ssl_context or ssl.create_default_context()
        self.symbols_cache = symbols_cache
        self.symbols_max_age = symbols_max_age

    @property
    def rest_url(self) -> str:
        """The first router URL."""
        return self.rest_urls[0]

    @property
    def history_url(self) -> str:
        """The first history-service URL."""
        return self.history_urls[0]

    @property
    def api_url(self) -> str:
        """The first catalogue URL."""
        return self.api_urls[0]

    def __repr__(self) -> str:
        return (
            f"RestClient(rest_url={list(self.rest_urls)!r}, api_url={list(self.api_urls)!r}, "
            f"history_url={list(self.history_urls)!r})"
        )

    # -- prices --------------------------------------------------------------------------

    def latest_price(
        self, request: SubscribeRequest | None = None, /, **fields: Any
    ) -> StreamUpdate:
        """The latest update for some feeds and properties (``POST /v1/latest_price``).

        Takes a :class:`SubscribeRequest` or its fields as keywords (validated as for
        ``subscribe``). The answer is a :class:`StreamUpdate` with ``subscription_id`` 0.
        """
        body = _price_body(request, fields)
        return self._post(self._prices, "/v1/latest_price", body, parse_json_update)

    def price(
        self, timestamp: int | datetime, request: SubscribeRequest | None = None, /, **fields: Any
    ) -> StreamUpdate:
        """The update in force at ``timestamp`` (``POST /v1/price``): microseconds since
        the epoch, or an aware ``datetime`` (naive ones are refused)."""
        at = timestamp_us(timestamp)
        body = {**_price_body(request, fields), "timestamp": at}
        return self._post(self._prices, "/v1/price", body, parse_json_update)

    def reduce_price(
        self,
        update: StreamUpdate | Mapping[str, Any],
        price_feed_ids: Iterable[int],
        *,
        encoding: JsonBinaryEncoding | str = JsonBinaryEncoding.HEX,
    ) -> StreamUpdate:
        """Shrink a signed update to some of its feeds (``POST /v1/reduce_price``).

        ``update`` is one received from the stream or from :meth:`latest_price` /
        :meth:`price` (or its JSON, a "JsonUpdate"); the answer holds only
        ``price_feed_ids``, re-signed by the service for every envelope format the
        update had: the same timestamp and values, fewer bytes for a contract to check.
        ``encoding`` is how the update's envelopes travel in the request.
        """
        ids = _feed_ids(price_feed_ids)
        if isinstance(update, StreamUpdate):
            _check_subset(update, ids)
            payload = stream_update_to_json_obj(update, JsonBinaryEncoding(encoding))
            del payload["type"], payload["subscriptionId"]
        elif isinstance(update, Mapping):
            payload = dict(update)
        else:
            raise InvalidRequestError(
                f"update: expected a StreamUpdate or its JSON, got {type(update).__name__}"
            )
        body = {"payload": payload, "priceFeedIds": ids}
        return self._post(self._prices, "/v1/reduce_price", body, parse_json_update)

    def guardian_set_upgrade(self) -> GuardianSetUpgrade | None:
        """The guardian set upgrade in progress, or ``None`` when there is none
        (``GET /v1/guardian_set_upgrade``)."""

        def decode(body: bytes) -> GuardianSetUpgrade | None:
            obj = _json(body, "guardian set upgrade")
            return None if obj is None else GuardianSetUpgrade.from_json_obj(obj)

        return self._get(self._prices, "/v1/guardian_set_upgrade", {}, decode)

    # -- the history service ----------------------------------------------------------

    def state(self, *parts: str) -> ServiceState:
        """A snapshot of the service's state (``GET /v1/state``, token needed): the
        ``parts`` named (``"feeds"``, ``"publishers"``, ``"governance_sources"``,
        ``"feature_flags"``, ``"exchanges"``), or all of them when none is named."""
        unknown = [p for p in parts if p not in STATE_PARTS]
        if unknown:
            raise InvalidRequestError(
                f"state: unknown part(s) {unknown}; expected some of {list(STATE_PARTS)}"
            )
        query = {"all": "false" if parts else "true"}
        query.update({p: "true" if p in parts else "false" for p in STATE_PARTS})
        return self._get(
            self._history,
            "/v1/state",
            query,
            lambda body: ServiceState.from_json_obj(_json(body, "state")),
        )

    def get_history(self, path: str, query: Mapping[str, str], decode: Callable[[bytes], _T]) -> _T:
        """``GET`` an answer from the history service by the failover rules, decoded by
        ``decode`` (which raises ``ProtocolError`` on an undecodable body); for
        :mod:`pylazer_sync.ohlc`."""
        return self._get(self._history, path, query, decode)

    # -- the catalogue ---------------------------------------------------------------

    def symbols(
        self,
        query: str | None = None,
        asset_type: str | None = None,
        *,
        instrument_type: str | None = None,
        cache: str | os.PathLike[str] | None = None,
        max_age: float | None = None,
        refresh: bool = False,
    ) -> SymbolList:
        """The feeds catalogue (``GET /v1/symbols``), filtered by a text ``query``, an
        ``asset_type`` and/or an ``instrument_type``.

        The API service's location first; while it does not answer (or answers 404), the
        history service's old ``/history/v1/symbols``. With a ``cache`` file (or the
        client's ``symbols_cache``), the whole catalogue is fetched and kept there and
        the filters are applied here; when neither location answers, the call answers
        from the file, however old, and logs a warning. A copy younger than ``max_age``
        seconds (or the client's ``symbols_max_age``) is answered from without asking,
        unless ``refresh``.
        """
        cache = cache if cache is not None else self.symbols_cache
        max_age = max_age if max_age is not None else self.symbols_max_age
        if cache is None:
            args = {"query": query, "asset_type": asset_type, "instrument_type": instrument_type}
            raw, source = self._fetch_catalogue({k: v for k, v in args.items() if v})
            return SymbolList(_decode_entries(raw), source, time.time())
        store = CatalogueCache(cache)
        cached = None
        if not refresh and max_age is not None:
            cached = store.load()
            if cached is not None and cached.age > max_age:
                cached = None
        if cached is None:
            try:
                raw, source = self._fetch_catalogue({})
            except (RestError, ProtocolError) as exc:
                cached = store.load()
                if cached is None:
                    note = f"{exc} (and no cached catalogue in {store.path})"
                    if isinstance(exc, RestError):
                        raise RestError(note, status=exc.status) from None
                    raise ProtocolError(note) from None
                logger.warning(
                    "symbols: the catalogue service did not answer (%s); answering from the "
                    "copy cached in %s, fetched %.0f s ago",
                    exc,
                    store.path,
                    cached.age,
                )
            else:
                entries = _decode_entries(raw)  # a catalogue that does not decode stays out
                store.save(raw, source)
                return SymbolList(
                    search(entries, query, asset_type, instrument_type), source, time.time()
                )
        return SymbolList(
            search(_decode_entries(cached.entries), query, asset_type, instrument_type),
            str(store.path),
            cached.fetched_at,
            from_cache=True,
        )

    def _fetch_catalogue(self, args: Mapping[str, str]) -> tuple[list[Any], str]:
        """The catalogue's JSON entries and the URL that gave them: the new location,
        else the old one."""
        try:
            return self._get_with_url(self._catalogue, "/v1/symbols", args, _json_array)
        except (RestError, ProtocolError) as new_exc:  # not an auth or request error
            try:
                found = self._get_with_url(self._history, "/history/v1/symbols", args, _json_array)
            except (RestError, ProtocolError) as old_exc:
                raise RestError(
                    f"symbols: no answer at {self.api_url}/v1/symbols ({new_exc}) nor at the "
                    f"old location {self.history_url}/history/v1/symbols ({old_exc})",
                    status=getattr(old_exc, "status", None),
                ) from None
            logger.info(
                "symbols: %s/v1/symbols did not answer (%s); used the old location %s",
                self.api_url,
                new_exc,
                found[1],
            )
            return found

    # -- plumbing ----------------------------------------------------------------------

    def _post(
        self,
        failover: Failover,
        path: str,
        body: Mapping[str, Any],
        decode: Callable[[bytes], _T],
    ) -> _T:
        data = json.dumps(body, separators=(",", ":")).encode()

        def attempt(base: str) -> _T:
            request = urllib.request.Request(
                base + path,
                data=data,
                method="POST",
                headers={"Content-Type": "application/json"},
            )
            return decode(self._call(request))

        return failover.call(attempt)

    def _get(
        self,
        failover: Failover,
        path: str,
        query: Mapping[str, str],
        decode: Callable[[bytes], _T],
    ) -> _T:
        return self._get_with_url(failover, path, query, decode)[0]

    def _get_with_url(
        self,
        failover: Failover,
        path: str,
        query: Mapping[str, str],
        decode: Callable[[bytes], _T],
    ) -> tuple[_T, str]:
        suffix = path + (f"?{urlencode(query)}" if query else "")

        def attempt(base: str) -> tuple[_T, str]:
            url = base + suffix
            return decode(self._call(urllib.request.Request(url, method="GET"))), url

        return failover.call(attempt)

    def _call(self, request: urllib.request.Request) -> bytes:
        """One HTTP exchange (the only place that touches the network)."""
        return exchange(request, self._token, self.timeout, self._ssl_context)


def _price_body(request: SubscribeRequest | None, fields: Mapping[str, Any]) -> dict[str, Any]:
    if request is None:
        if "properties" not in fields:
            raise InvalidRequestError("properties: required (e.g. ['price', 'exponent'])")
        request = SubscribeRequest(**fields)
    elif fields:
        raise InvalidRequestError("pass either a SubscribeRequest or keyword fields, not both")
    params = request.params()
    body: dict[str, Any] = {k: params[k] for k in _PRICE_FIELDS if k in params}
    body.update({k: v for k, v in request.extra.items() if k not in _STREAM_ONLY_FIELDS})
    return body


def _feed_ids(ids: Iterable[int]) -> list[int]:
    if isinstance(ids, (str, bytes)) or not isinstance(ids, Iterable):
        raise InvalidRequestError(f"price_feed_ids: expected a list of feed ids, got {ids!r}")
    out: list[int] = []
    for fid in ids:
        if isinstance(fid, bool) or not isinstance(fid, numbers.Integral):
            raise InvalidRequestError(f"price_feed_ids: {fid!r} is not a feed id (an integer)")
        if not 0 <= int(fid) < 1 << 32:
            raise InvalidRequestError(f"price_feed_ids: {fid} is out of range (a u32)")
        if int(fid) in out:
            raise InvalidRequestError(f"price_feed_ids: {fid} is given twice")
        out.append(int(fid))
    if not out:
        raise InvalidRequestError("price_feed_ids: at least one feed id must be given")
    return out


def _check_subset(update: StreamUpdate, ids: Sequence[int]) -> None:
    """Refuse before sending a reduction to feeds the update does not hold."""
    try:
        held = [f.feed_id for f in update.feeds]
    except LazerError:
        return  # undecodable here: let the service judge
    missing = [i for i in ids if i not in held]
    if missing:
        raise InvalidRequestError(
            f"price_feed_ids: {missing} not in the update, which holds feeds {held}"
        )


def _json(body: bytes, what: str) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(f"{what}: the answer is not JSON: {exc}") from None


def _json_array(body: bytes) -> list[Any]:
    entries = _json(body, "symbols")
    if not isinstance(entries, list):
        raise ProtocolError(f"symbols: expected a JSON array, got {type(entries).__name__}")
    return entries


def _decode_entries(entries: list[Any]) -> list[SymbolInfo]:
    return [SymbolInfo.from_json_obj(e) for e in entries]
