"""REST helpers: the latest price, the price at a time, and the symbols catalogue.

Built on the standard library's ``urllib.request``: three small JSON calls do not
justify another dependency, and it verifies TLS certificates with the system's CAs
(or a given ``ssl.SSLContext``). Answers are decoded by the protocol layer into the
same types as the stream; failures are mapped to the library's exceptions here, at
one border.
"""

from __future__ import annotations

import json
import reprlib
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from .config import DEFAULT_HISTORY_URL, DEFAULT_REST_URL, Secret, check_url
from .errors import AuthenticationError, InvalidRequestError, ProtocolError, RestError
from .protocol import StreamUpdate, SubscribeRequest
from .protocol.messages import parse_json_update
from .protocol.types import U64_MAX

_MAX_ANSWER = 64 << 20  # the symbols list is a few MB in production; refuse anything absurd


@dataclass(frozen=True)
class SymbolInfo:
    """One feed of the metadata catalogue (``GET /history/v1/symbols``)."""

    feed_id: int
    name: str
    symbol: str
    description: str
    asset_type: str
    exponent: int
    min_publishers: int | None = None
    min_channel: str | None = None
    state: str | None = None
    schedule: str | None = None
    cmc_id: int | None = None
    hermes_id: str | None = None
    interval: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_json_obj(cls, obj: Any) -> SymbolInfo:
        """Decode one catalogue entry; unknown fields are kept in ``raw``."""
        if not isinstance(obj, dict):
            raise ProtocolError(f"symbols: expected an object per entry, got {reprlib.repr(obj)}")
        try:
            return cls(
                feed_id=int(obj["pyth_lazer_id"]),
                name=str(obj.get("name", "")),
                symbol=str(obj["symbol"]),
                description=str(obj.get("description", "")),
                asset_type=str(obj.get("asset_type", "")),
                exponent=int(obj.get("exponent", 0)),
                min_publishers=_opt_int(obj.get("min_publishers")),
                min_channel=_opt_str(obj.get("min_channel")),
                state=_opt_str(obj.get("state")),
                schedule=_opt_str(obj.get("schedule")),
                cmc_id=_opt_int(obj.get("cmc_id")),
                hermes_id=_opt_str(obj.get("hermes_id")),
                interval=_opt_str(obj.get("interval")),
                raw=obj,
            )
        except (KeyError, TypeError, ValueError, OverflowError, RecursionError) as exc:
            raise ProtocolError(
                f"symbols: malformed entry ({exc!r}): {reprlib.repr(obj)}"
            ) from None


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


class RestClient:
    """Blocking calls to the Lazer REST API with bearer auth and a timeout.

    Args:
        token: the access token (sent only in the ``Authorization`` header); None sends
            no header (for a server on this machine, such as the simulator).
        rest_url: base URL of ``/v1/latest_price`` and ``/v1/price``.
        history_url: base URL of ``/history/v1/symbols``.
        timeout: seconds for each call (connect and read).
        ssl_context: TLS trust for ``https`` (default: the system's CAs).
        allow_insecure: allow plain ``http`` to a non-loopback host.
    """

    def __init__(
        self,
        token: str | Secret | None,
        *,
        rest_url: str = DEFAULT_REST_URL,
        history_url: str = DEFAULT_HISTORY_URL,
        timeout: float = 10.0,
        ssl_context: ssl.SSLContext | None = None,
        allow_insecure: bool = False,
    ) -> None:
        self._token = token if isinstance(token, Secret) or token is None else Secret(token)
        for url in (rest_url, history_url):
            check_url(url, "REST URL", "https", "http", allow_insecure)
        self.rest_url = rest_url.rstrip("/")
        self.history_url = history_url.rstrip("/")
        self.timeout = timeout
        self._ssl_context = ssl_context or ssl.create_default_context()

    def __repr__(self) -> str:
        return f"RestClient(rest_url={self.rest_url!r}, history_url={self.history_url!r})"

    def latest_price(
        self, request: SubscribeRequest | None = None, /, **fields: Any
    ) -> StreamUpdate:
        """The latest update for a subscription's feeds and properties.

        Takes a :class:`SubscribeRequest` or its fields as keywords (validated as for
        ``subscribe``). The answer is a :class:`StreamUpdate` with ``subscription_id`` 0.
        """
        params = _params(request, fields)
        return parse_json_update(self._post("/v1/latest_price", params))

    def price(
        self, timestamp_us: int, request: SubscribeRequest | None = None, /, **fields: Any
    ) -> StreamUpdate:
        """The update in force at ``timestamp_us`` (microseconds since the epoch)."""
        if isinstance(timestamp_us, bool) or not isinstance(timestamp_us, int):
            raise InvalidRequestError(f"timestamp_us: expected an integer, got {timestamp_us!r}")
        if not 0 <= timestamp_us <= U64_MAX:
            raise InvalidRequestError(f"timestamp_us: {timestamp_us} is out of range")
        params = {**_params(request, fields), "timestamp": timestamp_us}
        return parse_json_update(self._post("/v1/price", params))

    def symbols(self, query: str | None = None, asset_type: str | None = None) -> list[SymbolInfo]:
        """The feeds catalogue, filtered by a text ``query`` and/or an ``asset_type``."""
        args = {k: v for k, v in (("query", query), ("asset_type", asset_type)) if v}
        url = f"{self.history_url}/history/v1/symbols" + (f"?{urlencode(args)}" if args else "")
        body = self._call(urllib.request.Request(url, method="GET"))
        try:
            entries = json.loads(body)
        except (ValueError, RecursionError) as exc:
            raise ProtocolError(f"symbols: the answer is not JSON: {exc}") from None
        if not isinstance(entries, list):
            raise ProtocolError("symbols: expected a JSON array")
        return [SymbolInfo.from_json_obj(e) for e in entries]

    def _post(self, path: str, params: Mapping[str, Any]) -> bytes:
        data = json.dumps(params).encode()
        request = urllib.request.Request(
            self.rest_url + path,
            data=data,
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        return self._call(request)

    def _call(self, request: urllib.request.Request) -> bytes:
        if self._token is not None:
            request.add_unredirected_header("Authorization", f"Bearer {self._token.reveal()}")
        request.add_header("Accept", "application/json")
        with (
            _mapped_errors(request.full_url, self._token),
            urllib.request.urlopen(
                request, timeout=self.timeout, context=self._ssl_context
            ) as response,
        ):
            body: bytes = response.read(_MAX_ANSWER + 1)
        if len(body) > _MAX_ANSWER:
            raise RestError(f"{request.full_url}: answer larger than {_MAX_ANSWER} bytes")
        return body


def _params(request: SubscribeRequest | None, fields: Mapping[str, Any]) -> dict[str, Any]:
    if request is None:
        if "properties" not in fields:
            raise InvalidRequestError("properties: required (e.g. ['price', 'exponent'])")
        request = SubscribeRequest(**fields)
    elif fields:
        raise InvalidRequestError("pass either a SubscribeRequest or keyword fields, not both")
    return request.params()


@contextmanager
def _mapped_errors(url: str, token: Secret | None) -> Iterator[None]:
    """Translate urllib's exceptions into the library's, naming the URL (never the token)."""
    try:
        yield
    except urllib.error.HTTPError as exc:
        detail = exc.read(2000).decode("utf-8", "replace").strip()
        if token is not None:
            detail = token.scrub(detail)  # an error page may echo the request's headers
        if exc.code in (401, 403):
            raise AuthenticationError(
                f"{url}: HTTP {exc.code}, the server refused the access token: {detail}"
            ) from None
        if exc.code == 400:
            raise InvalidRequestError(f"{url}: HTTP 400: {detail}") from None
        raise RestError(f"{url}: HTTP {exc.code}: {detail}") from None
    except urllib.error.URLError as exc:
        raise RestError(f"{url}: {exc.reason}") from None
    except TimeoutError as exc:
        raise RestError(f"{url}: timed out ({exc})") from None
    except (OSError, ssl.SSLError) as exc:
        raise RestError(f"{url}: {exc}") from None
