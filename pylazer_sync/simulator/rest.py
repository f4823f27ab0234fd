"""The simulator's REST endpoints: prices, reductions, the catalogue, the service state.

:class:`RestApi` answers a request (method, target, headers, body) with a status and a
body, as the production services do (router, API service and history service, all on
one port here). Two carriers bring it requests over HTTP/1.1: :class:`RestServer` on a
port of its own (``Simulator.rest_url``), and :func:`stream_port_connection` on the
stream port itself.

Why the stream port too: production serves REST on the stream endpoint's host, so a
client derives its REST URL from the stream URL (``wss://host/v1/stream`` ->
``https://host``, see :func:`pylazer_sync.config.rest_url_for`). A client pointed at a
simulator's stream URL with no REST URL must therefore find REST on that same port.

Why a small HTTP reader of our own: ``websockets`` answers plain HTTP only for requests
without a body, and the price endpoints are POSTs with a JSON body; on the stream port
the connection looks at the request line first and keeps a REST request for itself. The
standard library's ``http.server`` would need threads of its own, where this runs on the
simulator's event loop with everything else; one request per connection, no chunked
bodies, no keep-alive, which every HTTP client handles.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection

from ..errors import InvalidRequestError, LazerError
from ..protocol import (
    EvmMessage,
    JsonBinaryEncoding,
    LeEcdsaMessage,
    LeUnsignedMessage,
    Payload,
    SolanaMessage,
    StreamUpdate,
    encode_payload,
    stream_update_to_json_obj,
)
from ..protocol.messages import parse_json_update
from ..protocol.types import U64_MAX
from .bars import channel_of, udf_history
from .market import Catalogue, MarketModel
from .reference import GuardianSet, search, state_json, symbol_entry
from .updates import UpdateEncoder, channel_period_us, now_us, resolve, validate_rest_params

logger = logging.getLogger(__name__)

_MAX_HEAD: Final = 64 * 1024
_MAX_BODY: Final = 1 << 20
_READ_TIMEOUT: Final = 10.0

ROUTES: Final = frozenset(
    {
        "/v1/latest_price",
        "/v1/price",
        "/v1/reduce_price",
        "/v1/guardian_set_upgrade",
        "/v1/symbols",
        "/v1/state",
        "/history/v1/symbols",
    }
)
"""The fixed paths the REST endpoints answer (anything else on the stream port is
WebSocket's, but the per-channel history paths, see :func:`is_rest_path`)."""

_CHANNEL_PATH: Final = re.compile(r"/v1/[a-z_0-9@]+/history")

Body = Any  # a JSON-ready value (answered as JSON) or a str (answered as plain text)
Handler = Callable[[str, Mapping[str, list[str]], bytes], tuple[int, Body]]

_STATE_PARTS: Final = ("publishers", "feeds", "governance_sources", "feature_flags", "exchanges")


def is_rest_path(path: str) -> bool:
    """Whether a request for ``path`` is REST's (on the stream port: not the upgrade's)."""
    return path in ROUTES or _CHANNEL_PATH.fullmatch(path) is not None


class RestApi:
    """The REST endpoints' logic, free of HTTP plumbing.

    Every request is counted per path (:attr:`requests`); :meth:`set_outage` makes
    the endpoints answer an error status instead, for failover tests.
    """

    def __init__(
        self,
        catalogue: Catalogue,
        encoder: UpdateEncoder,
        token: str | None,
        real_time_period_us: int,
    ) -> None:
        self.catalogue = catalogue
        self.encoder = encoder
        self._token = token.encode() if token is not None else None
        self.real_time_period_us = real_time_period_us
        self.requests: Counter[str] = Counter()
        self.guardians = GuardianSet(encoder.keys)
        self.guardian_upgrade: dict[str, Any] | None = None
        self._outage: tuple[int, frozenset[str] | None] | None = None
        self._routes: dict[str, tuple[str, Handler]] = {
            "/v1/latest_price": ("POST", self._latest_price),
            "/v1/price": ("POST", self._price),
            "/v1/reduce_price": ("POST", self._reduce_price),
            "/v1/guardian_set_upgrade": ("GET", self._guardian_set_upgrade),
            "/v1/symbols": ("GET", self._symbols),
            "/history/v1/symbols": ("GET", self._legacy_symbols),
            "/v1/state": ("GET", self._state),
        }

    @property
    def market(self) -> MarketModel:
        """The market the answers come from."""
        return self.encoder.market

    def set_outage(self, status: int | None, paths: Iterable[str] | None = None) -> None:
        """Answer ``status`` (e.g. 503) to every request (or to those for ``paths``) from
        now on; ``None`` ends the outage."""
        if status is None:
            self._outage = None
        else:
            self._outage = (int(status), None if paths is None else frozenset(paths))

    def _authorized(self, headers: Mapping[str, str]) -> bool:
        if self._token is None:
            return True
        header = headers.get("authorization")
        return header is not None and hmac.compare_digest(header.encode(), b"Bearer " + self._token)

    def handle(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, Body]:
        """Answer one request; ``headers`` keys are lower case."""
        url = urlsplit(target)
        self.requests[url.path] += 1
        outage = self._outage
        if outage is not None and (outage[1] is None or url.path in outage[1]):
            return outage[0], f"simulated outage: HTTP {outage[0]}"
        route = self._routes.get(url.path)
        if route is None and _CHANNEL_PATH.fullmatch(url.path):
            route = ("GET", self._history)
        if route is None:
            return HTTPStatus.NOT_FOUND, f"no such endpoint: {url.path}"
        if method != route[0]:
            return HTTPStatus.METHOD_NOT_ALLOWED, f"{url.path} takes {route[0]}, not {method}"
        if not self._authorized(headers):
            return HTTPStatus.UNAUTHORIZED, "missing or invalid bearer token"
        try:
            return route[1](url.path, parse_qs(url.query), body)
        except InvalidRequestError as exc:
            return HTTPStatus.BAD_REQUEST, str(exc)

    def _params(self, body: bytes) -> dict[str, Any]:
        try:
            params = json.loads(body)
        except (ValueError, RecursionError) as exc:
            raise InvalidRequestError(f"request body is not valid JSON: {exc}") from None
        if not isinstance(params, dict):
            raise InvalidRequestError("request body: expected a JSON object")
        return params

    # -- prices ------------------------------------------------------------------------

    def _update_at(self, params: dict[str, Any], t_us: int | None) -> tuple[int, Body]:
        request = validate_rest_params(params)
        resolution = resolve(request, self.catalogue)
        if resolution.shape is None:
            raise InvalidRequestError(resolution.error or "invalid request")
        shape = resolution.shape
        period = channel_period_us(shape.channel, self.real_time_period_us)
        # The update the channel sent last at (or before) that time.
        t = (t_us if t_us is not None else now_us()) // period * period
        return HTTPStatus.OK, self.encoder.json_update(shape, t)

    def _latest_price(self, path: str, query: Mapping[str, list[str]], body: bytes) -> Any:
        return self._update_at(self._params(body), None)

    def _price(self, path: str, query: Mapping[str, list[str]], body: bytes) -> Any:
        params = self._params(body)
        timestamp = params.pop("timestamp", None)
        if (
            not isinstance(timestamp, int)
            or isinstance(timestamp, bool)
            or not 0 <= timestamp <= U64_MAX
        ):
            raise InvalidRequestError(
                f"timestamp: expected microseconds since the epoch (u64), got {timestamp!r}"
            )
        if timestamp > now_us():
            raise InvalidRequestError(f"timestamp: {timestamp} is in the future")
        return self._update_at(params, timestamp)

    def _reduce_price(self, path: str, query: Mapping[str, list[str]], body: bytes) -> Any:
        """Keep some feeds of a signed update, re-signed with the simulator's own keys;
        only updates it signed itself are taken."""
        params = self._params(body)
        payload, ids = params.get("payload"), params.get("priceFeedIds")
        if not isinstance(payload, dict):
            raise InvalidRequestError("payload: expected a JSON update object")
        if (
            not isinstance(ids, list)
            or not ids
            or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids)
            or len(set(ids)) != len(ids)
        ):
            raise InvalidRequestError("priceFeedIds: expected a non-empty list of distinct ids")
        try:
            update = parse_json_update(json.dumps(payload))
            signed = self._own_payload(update)
        except LazerError as exc:
            raise InvalidRequestError(f"payload: {exc}") from None
        reference = signed if signed is not None else update.parsed
        if reference is None:
            raise InvalidRequestError("payload: holds neither a signed envelope nor parsed data")
        held = [f.feed_id for f in reference.feeds]
        missing = [i for i in ids if i not in held]
        if missing:
            raise InvalidRequestError(f"priceFeedIds: {missing} are not in the update ({held})")

        def keep(p: Payload) -> Payload:
            return Payload(p.timestamp_us, [f for f in p.feeds if f.feed_id in ids], p.channel_id)

        keys = self.encoder.keys
        evm = solana = le_ecdsa = le_unsigned = None
        if signed is not None:
            kept = keep(signed)
            little = encode_payload(kept, "little")
            if update.evm is not None:
                evm = keys.sign_evm(encode_payload(kept, "big"))
            if update.solana is not None:
                solana = keys.sign_solana(little)
            if update.le_ecdsa is not None:
                le_ecdsa = keys.sign_le_ecdsa(little)
            if update.le_unsigned is not None:
                le_unsigned = LeUnsignedMessage(little)
        parsed = keep(update.parsed) if update.parsed is not None else None
        reduced = StreamUpdate(0, parsed, evm, solana, le_ecdsa, le_unsigned)
        encodings = [
            v.get("encoding")
            for k, v in payload.items()
            if k in ("evm", "solana", "leEcdsa", "leUnsigned") and isinstance(v, dict)
        ]
        encoding = JsonBinaryEncoding(encodings[0]) if encodings else JsonBinaryEncoding.BASE64
        out = stream_update_to_json_obj(reduced, encoding)
        del out["type"], out["subscriptionId"]
        return HTTPStatus.OK, out

    def _own_payload(self, update: StreamUpdate) -> Payload | None:
        """The payload every envelope of ``update`` carries, if the simulator signed them
        (``None``: no envelope); raises if a signature is someone else's or they differ."""
        keys = self.encoder.keys
        found: list[Payload] = []
        for envelope in update.messages:
            if isinstance(envelope, SolanaMessage):
                envelope.verify(trusted_signers=[keys.solana_public_key])
            elif isinstance(envelope, EvmMessage):
                envelope.verify(trusted_signers=[keys.evm_address])
            elif isinstance(envelope, LeEcdsaMessage):
                envelope.verify(trusted_signers=[keys.le_ecdsa_public_key])
            elif not isinstance(envelope, LeUnsignedMessage):
                continue
            found.append(envelope.decode_payload())
        if any(p != found[0] for p in found[1:]):
            raise InvalidRequestError("the update's envelopes carry different payloads")
        return found[0] if found else None

    def _guardian_set_upgrade(self, path: str, query: Mapping[str, list[str]], body: bytes) -> Any:
        return HTTPStatus.OK, self.guardian_upgrade

    # -- catalogue and state -------------------------------------------------------

    def _symbols(self, path: str, query: Mapping[str, list[str]], body: bytes) -> Any:
        args = {k: v[0] for k, v in query.items() if v}
        return HTTPStatus.OK, [symbol_entry(f) for f in search(self.catalogue, args)]

    def _legacy_symbols(self, path: str, query: Mapping[str, list[str]], body: bytes) -> Any:
        args = {k: v[0] for k, v in query.items() if v}
        feeds = self.catalogue.search(args.get("query", ""), args.get("asset_type", ""))
        return HTTPStatus.OK, [f.metadata() for f in feeds]

    def _history(self, path: str, query: Mapping[str, list[str]], body: bytes) -> Any:
        channel = channel_of(path.split("/")[2])
        args = {k: v[0] for k, v in query.items() if v}
        answer = udf_history(
            self.catalogue, self.market, channel, args, now_us(), self.real_time_period_us
        )
        return HTTPStatus.OK, answer

    def _state(self, path: str, query: Mapping[str, list[str]], body: bytes) -> Any:
        flags = {k: v[0].lower() == "true" for k, v in query.items() if v}
        parts = [p for p in _STATE_PARTS if flags.get("all") or flags.get(p)]
        return HTTPStatus.OK, state_json(self.catalogue, self.market, now_us(), parts)


class RestServer:
    """HTTP/1.1 transport for :class:`RestApi`, one request per connection."""

    def __init__(self, api: RestApi) -> None:
        self.api = api
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.Task[None]] = set()

    async def start(self, host: str, port: int) -> int:
        """Listen; returns the port (useful with port 0)."""
        self._server = await asyncio.start_server(self._serve, host, port, limit=_MAX_HEAD)
        bound: int = self._server.sockets[0].getsockname()[1]
        return bound

    async def close(self) -> None:
        """Stop listening and end the requests in progress."""
        if self._server is not None:
            self._server.close()
        for task in list(self._clients):
            task.cancel()
        if self._clients:
            await asyncio.wait(self._clients, timeout=1.0)
        if self._server is not None:
            try:
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
            except asyncio.TimeoutError:
                logger.warning("simulator REST server did not close in time")

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._clients.add(task)
        try:
            status, body = await asyncio.wait_for(self._read_and_handle(reader), _READ_TIMEOUT)
            await self._respond(writer, status, body)
        except (asyncio.TimeoutError, ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._clients.discard(task)
            writer.close()

    async def _read_and_handle(self, reader: asyncio.StreamReader) -> tuple[int, Body]:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError:
            return HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "request head too large"
        parsed = parse_head(head)
        if isinstance(parsed, tuple):
            return parsed
        body = await reader.readexactly(parsed.length) if parsed.length else b""
        return answer(self.api, parsed, body)

    async def _respond(self, writer: asyncio.StreamWriter, status: int, body: Body) -> None:
        writer.write(encode_response(status, body))
        await writer.drain()


@dataclass(frozen=True)
class RequestHead:
    """An HTTP request line and headers (names in lower case), and the body's length."""

    method: str
    target: str
    headers: dict[str, str]
    length: int


def parse_head(head: bytes) -> RequestHead | tuple[int, Body]:
    """Parse a request head (up to and including the blank line), or say what is wrong
    with it as the answer to send."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        return HTTPStatus.BAD_REQUEST, "malformed request line"
    method, target, _ = parts
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, sep, value = line.partition(":")
            if not sep:
                return HTTPStatus.BAD_REQUEST, f"malformed header line {line[:40]!r}"
            headers[name.strip().lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return HTTPStatus.LENGTH_REQUIRED, "chunked bodies are not supported"
    try:
        length = int(headers.get("content-length", "0"))
    except ValueError:
        return HTTPStatus.BAD_REQUEST, "bad Content-Length"
    if not 0 <= length <= _MAX_BODY:
        return HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "request body too large"
    return RequestHead(method, target, headers, length)


def answer(api: RestApi, head: RequestHead, body: bytes) -> tuple[int, Body]:
    """The API's answer to a whole request (logged at debug level, without headers)."""
    status, result = api.handle(head.method, head.target, head.headers, body)
    logger.debug("REST %s %s -> %d", head.method, head.target.split("?", 1)[0], status)
    return status, result


def encode_response(status: int, body: Body) -> bytes:
    """A whole HTTP/1.1 response that closes the connection."""
    if isinstance(body, str):
        data, kind = (body + "\n").encode(), "text/plain; charset=utf-8"
    else:
        data, kind = json.dumps(body, separators=(",", ":")).encode(), "application/json"
    phrase = HTTPStatus(status).phrase
    head = (
        f"HTTP/1.1 {status} {phrase}\r\nContent-Type: {kind}\r\n"
        f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + data


def _is_rest_request_line(line: bytes) -> bool:
    parts = line.split(b" ")
    return len(parts) == 3 and is_rest_path(parts[1].split(b"?", 1)[0].decode("latin-1"))


def stream_port_connection(api: RestApi) -> type[ServerConnection]:
    """A ``websockets`` connection class (``serve(create_connection=...)``) that also
    answers the REST routes on the stream port.

    It looks at the request line before websockets does: a request for a REST path
    (:func:`is_rest_path`) is read whole, answered from ``api`` and the connection closed (the
    WebSocket handshake, still waiting for its request, then ends without a word); any
    other request, the stream's upgrade above all, goes to websockets untouched. After
    that first decision every byte goes straight to websockets.
    """

    class StreamPortConnection(ServerConnection):
        _rest_deciding = True  # until the request line is known
        _rest_pending = b""  # bytes held back meanwhile (and a REST request's bytes)
        _rest_done = False  # a REST answer was sent; ignore anything more

        def data_received(self, data: bytes) -> None:
            if not self._rest_deciding:
                super().data_received(data)
                return
            if self._rest_done:
                return
            pending = self._rest_pending + data
            line_end = pending.find(b"\r\n")
            if line_end < 0 and len(pending) <= _MAX_HEAD:
                self._rest_pending = pending  # not even a request line yet
                return
            if line_end < 0 or not _is_rest_request_line(pending[:line_end]):
                self._rest_deciding = False
                self._rest_pending = b""
                super().data_received(pending)
                return
            self._rest_pending = pending
            result = self._rest_answer(pending)
            if result is not None:
                self._rest_done = True
                self._rest_pending = b""
                self.transport.write(encode_response(*result))
                self.transport.close()  # sends what is written first

        def _rest_answer(self, pending: bytes) -> tuple[int, Body] | None:
            """The answer once the whole request is here (None: wait for more)."""
            head_end = pending.find(b"\r\n\r\n")
            if head_end > _MAX_HEAD or (head_end < 0 and len(pending) > _MAX_HEAD):
                return HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "request head too large"
            if head_end < 0:
                return None
            head = parse_head(pending[: head_end + 4])
            if isinstance(head, tuple):
                return head
            body = pending[head_end + 4 :]
            if len(body) < head.length:
                return None
            return answer(api, head, body[: head.length])

    return StreamPortConnection
