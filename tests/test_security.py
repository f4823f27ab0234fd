"""Security: the token never shows, certificates are verified, plain text only to loopback,
frames are bounded, and redirects never carry the token elsewhere.

Local servers stand in for hostile or misconfigured ones: a TLS proxy with a self-signed
certificate in front of a simulator, and a hand-written TCP server (:class:`RawServer`)
that answers WebSocket upgrades and HTTP requests byte by byte, so a test can send what
no well-behaved server would (a frame header announcing a terabyte, endless fragments,
a redirect, an error page that echoes the request).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import hashlib
import ipaddress
import json
import logging
import pickle
import re
import socket
import ssl
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from chaos_support import rss_bytes
from cli_support import cli
from client_support import FAST_BACKOFF, TOKEN, collect_updates, make_client, simulators, wait_for
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import pylazer_sync as pl
from pylazer_sync.rest import RestClient
from pylazer_sync.simulator import GARBAGE_KINDS, Simulator

WRONG_TOKEN = "wrong-token-93be1a"  # a secret too: never shown either
SECRETS = (TOKEN, WRONG_TOKEN)


def assert_no_secret(*texts: object) -> None:
    for text in texts:
        s = text if isinstance(text, str) else repr(text)
        for secret in SECRETS:
            assert secret not in s, f"a token shows in: {s[:300]}"


def exception_texts(exc: BaseException) -> list[str]:
    """Everything an exception can show: str, repr, the whole formatted chain."""
    return [str(exc), repr(exc), "".join(traceback.format_exception(exc))]


# -- local servers -----------------------------------------------------------------------

_WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class RawServer:
    """A TCP server on loopback that reads one HTTP request head per connection and hands
    the socket to ``handler(index, sock, head)``, in a thread per connection."""

    def __init__(self, handler: Callable[[int, socket.socket, bytes], None]) -> None:
        self.handler = handler
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.heads: list[bytes] = []
        self.errors: list[BaseException] = []
        self._socks: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._closed = threading.Event()
        self._accept_thread = threading.Thread(target=self._accept, name="raw-server", daemon=True)
        self._accept_thread.start()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/stream"

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            self._socks.append(sock)
            index = len(self._socks) - 1
            t = threading.Thread(target=self._serve, args=(index, sock), daemon=True)
            self._threads.append(t)
            t.start()

    def _serve(self, index: int, sock: socket.socket) -> None:
        try:
            sock.settimeout(10)
            head = b""
            while b"\r\n\r\n" not in head and len(head) < 65536:
                chunk = sock.recv(4096)
                if not chunk:
                    return
                head += chunk
            self.heads.append(head)
            self.handler(index, sock, head)
        except OSError:
            pass  # the client went away: that is what most tests here expect
        except BaseException as exc:
            self.errors.append(exc)
        finally:
            with contextlib.suppress(OSError):
                sock.close()

    def close(self) -> None:
        self._closed.set()
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        self.listener.close()
        for sock in self._socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()
        for t in [self._accept_thread, *self._threads]:
            t.join(10)
        assert not any(t.is_alive() for t in self._threads), "raw server threads hang"
        assert not self.errors, self.errors

    def __enter__(self) -> RawServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def accept_upgrade(sock: socket.socket, head: bytes) -> None:
    """Answer a WebSocket upgrade request with 101."""
    match = re.search(rb"(?i)sec-websocket-key:\s*(\S+)", head)
    assert match is not None, head
    accept = base64.b64encode(hashlib.sha1(match.group(1) + _WS_GUID).digest())
    sock.sendall(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
    )


def frame_header(opcode: int, length: int, fin: bool = True) -> bytes:
    """A server-to-client (unmasked) frame header announcing ``length`` payload bytes."""
    first = (0x80 if fin else 0) | opcode
    if length < 126:
        return bytes([first, length])
    if length < 1 << 16:
        return bytes([first, 126]) + length.to_bytes(2, "big")
    return bytes([first, 127]) + length.to_bytes(8, "big")


def hold_open(sock: socket.socket, seconds: float = 30.0) -> None:
    """Keep a connection alive with pings until the client closes it (or ``seconds``)."""
    deadline = time.monotonic() + seconds
    sock.settimeout(0.2)
    while time.monotonic() < deadline:
        sock.sendall(frame_header(0x9, 0))
        try:
            if sock.recv(65536) == b"":
                return
        except TimeoutError:
            continue


def self_signed_cert(directory: Path, name: str = "localhost") -> tuple[str, str]:
    """A self-signed certificate for ``name`` (and 127.0.0.1): (cert file, key file)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.timezone.utc)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(name)]
                + (
                    [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                    if name == "localhost"
                    else []
                )
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    cert_path = directory / f"{name}-cert.pem"
    key_path = directory / f"{name}-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(cert_path), str(key_path)


@contextlib.contextmanager
def tls_proxy(target_port: int, cert: str, key: str) -> Iterator[int]:
    """A TLS-terminating TCP proxy on loopback in front of ``target_port``; yields its port."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    ready = threading.Event()
    state: dict[str, object] = {}

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        with contextlib.suppress(Exception):
            writer.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", target_port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
        stop = asyncio.Event()
        state["port"] = server.sockets[0].getsockname()[1]
        state["stop"] = stop
        state["loop"] = asyncio.get_running_loop()
        ready.set()
        async with server:
            await stop.wait()

    thread = threading.Thread(target=lambda: asyncio.run(main()), name="tls-proxy", daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        yield int(state["port"])  # type: ignore[call-overload]
    finally:
        loop = state["loop"]
        assert isinstance(loop, asyncio.AbstractEventLoop)
        loop.call_soon_threadsafe(state["stop"].set)  # type: ignore[attr-defined]
        thread.join(10)


# -- the token -------------------------------------------------------------------------------


def test_token_never_appears_in_logs_reprs_exceptions_or_stats(
    caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    """A whole session at DEBUG on the root logger: connect, stream, reconnect, garbage,
    a stall, REST calls and REST errors, a bad token, an unreachable endpoint, close."""
    caplog.set_level(logging.DEBUG)
    texts: list[object] = []
    with simulators(2, token=TOKEN) as sims:
        client = make_client(sims, num_connections=2, timeout=1.0, rest_url=sims[0].rest_url)
        texts += [client, client.config, str(client.config.token), client.config.token]
        with client:
            sub = client.subscribe(
                price_feed_ids=[1, 2],
                properties=["price", "exponent"],
                channel="fixed_rate@50ms",
                formats=["solana", "evm"],
                delivery_format="binary",
            )
            others: list[pl.Message] = []
            texts += collect_updates(client, 3, on_message=others.append)
            sims[0].drop_all(abrupt=True)
            sims[1].drop_all()
            assert client.wait_connected(2, timeout=10)
            for kind in GARBAGE_KINDS:
                sims[0].send_garbage(kind)  # type: ignore[arg-type]
            sims[1].stall()
            wait_for(
                lambda: sum(c["disconnects"] for c in client.stats()["connections"]) >= 3,
                15,
                "the stalled connection to be replaced",
            )
            texts += collect_updates(client, 10, on_message=others.append)
            texts += others
            assert any(isinstance(m, pl.UndecodableFrame) for m in others)
            texts += [client.latest_price(price_feed_ids=[1], properties=["price"])]
            texts += client.symbols("BTC")
            for bad_call in (
                lambda: client.latest_price(price_feed_ids=[99999999], properties=["price"]),
                lambda: client.price(-1, price_feed_ids=[1], properties=["price"]),
                lambda: client.subscribe(price_feed_ids=[], properties=["price"]),
            ):
                with pytest.raises(pl.LazerError) as info:
                    bad_call()
                texts += exception_texts(info.value)
            client.unsubscribe(sub)
            stats = client.stats()
            texts += [stats, json.dumps(stats), client._core.connections, client._core.rest]
        with pytest.raises(pl.ClientClosed) as closed:
            client.recv(timeout=1)
        texts += exception_texts(closed.value)
        texts += [client, client.stats()]

        # A wrong token: refused on the stream and on REST; neither token shows.
        bad = pl.LazerClient(
            WRONG_TOKEN, endpoints=[s.url for s in sims], num_connections=2, backoff=FAST_BACKOFF
        )
        with pytest.raises(pl.AuthenticationError) as auth:
            bad.start(timeout=20)
        texts += [*exception_texts(auth.value), bad, bad.stats()]
        rest = RestClient(WRONG_TOKEN, rest_url=str(sims[0].rest_url))
        with pytest.raises(pl.AuthenticationError) as rest_auth:
            rest.latest_price(price_feed_ids=[1], properties=["price"])
        texts += [*exception_texts(rest_auth.value), rest]

    # An unreachable endpoint (the simulators are gone now).
    gone = pl.LazerClient(TOKEN, endpoints=[sims[0].url], num_connections=1, backoff=FAST_BACKOFF)
    with pytest.raises(pl.ConnectError) as connect:
        gone.start(timeout=1.0)
    texts += [*exception_texts(connect.value), gone]
    # Pickling would put the token in a file: refused, without showing it.
    with pytest.raises(TypeError) as pickled:
        pickle.dumps(client.config)
    texts += exception_texts(pickled.value)

    out, err = capfd.readouterr()
    assert_no_secret(*texts, caplog.text, out, err)
    for record in caplog.records:
        assert_no_secret(record.getMessage(), vars(record))
    # The session did log: connections, reconnects, stalls, undecodable frames...
    assert "stalled" in caplog.text and "undecodable" in caplog.text
    assert "Authorization" in caplog.text  # the simulator logs the header, redacted


def test_cli_output_never_shows_the_token() -> None:
    with Simulator(seed=1, token=TOKEN) as sim:
        common = ["--endpoint", sim.url]
        stream = [
            "stream",
            *common,
            "--feeds",
            "1,2",
            "--channel",
            "fixed_rate@50ms",
            "--count",
            "5",
            "--stats",
            "--log-level",
            "DEBUG",
        ]
        runs = [
            cli(*stream, "--token", TOKEN, "--output", "jsonl"),
            cli(*stream, PYTH_LAZER_TOKEN=TOKEN),  # from the environment, as a table
            cli(*stream, "--token", WRONG_TOKEN),  # refused: exit 3
            cli(*stream, PYTH_LAZER_TOKEN=WRONG_TOKEN),
            cli(
                "latest", *common, "--feeds", "1", "--rest-url", str(sim.rest_url), "--token", TOKEN
            ),
            cli(
                "latest",
                *common,
                "--feeds",
                "1",
                "--rest-url",
                str(sim.rest_url),
                "--log-level",
                "DEBUG",
                PYTH_LAZER_TOKEN=WRONG_TOKEN,
            ),
            cli("symbols", "--history-url", str(sim.rest_url), "--token", TOKEN),
            cli(
                "symbols",
                "--history-url",
                str(sim.rest_url),
                "--log-level",
                "DEBUG",
                PYTH_LAZER_TOKEN=WRONG_TOKEN,
            ),
        ]
    codes = [r.returncode for r in runs]
    assert codes == [0, 0, 3, 3, 0, 3, 0, 3], [(r.returncode, r.stderr[-300:]) for r in runs]
    assert runs[0].stdout.count("\n") >= 5
    for r in runs:
        assert_no_secret(r.stdout, r.stderr)


# -- TLS ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[str, str]]:
    directory = tmp_path_factory.mktemp("certs")
    return {
        "localhost": self_signed_cert(directory, "localhost"),
        "other": self_signed_cert(directory, "other.example"),
    }


def _tls_client(port: int, **kwargs: object) -> pl.LazerClient:
    return pl.LazerClient(
        TOKEN,
        endpoints=[f"wss://localhost:{port}/v1/stream"],
        num_connections=1,
        backoff=FAST_BACKOFF,
        timeout=5.0,
        **kwargs,  # type: ignore[arg-type]
    )


def test_wss_with_a_self_signed_certificate_fails_verification_unless_its_ca_is_given(
    certs: dict[str, tuple[str, str]],
) -> None:
    cert, key = certs["localhost"]
    with Simulator(seed=1, token=TOKEN) as sim, tls_proxy(sim.port, cert, key) as port:
        # Default trust (the system's CAs): refused.
        with pytest.raises(pl.ConnectError) as info:
            _tls_client(port).start(timeout=3)
        text = str(info.value)
        assert "certificate verify failed" in text.lower(), text
        assert_no_secret(*exception_texts(info.value))
        # The certificate as CA file, or in an SSL context: accepted, and the stream flows.
        for options in (
            {"ca_file": cert},
            {"ssl_context": ssl.create_default_context(cafile=cert)},
        ):
            with _tls_client(port, **options) as client:
                client.subscribe(
                    price_feed_ids=[1], properties=["price"], channel="fixed_rate@50ms"
                )
                assert collect_updates(client, 3)
                assert client.stats()["connections"][0]["endpoint"].startswith("wss://")


def test_wss_certificate_for_another_host_fails_even_with_its_ca(
    certs: dict[str, tuple[str, str]],
) -> None:
    cert, key = certs["other"]
    with Simulator(seed=1, token=TOKEN) as sim, tls_proxy(sim.port, cert, key) as port:
        with pytest.raises(pl.ConnectError) as info:
            _tls_client(port, ca_file=cert).start(timeout=3)
        text = str(info.value).lower()
        assert "certificate verify failed" in text and "hostname mismatch" in text, text
        assert_no_secret(*exception_texts(info.value))


def test_rest_over_https_verifies_the_certificate(certs: dict[str, tuple[str, str]]) -> None:
    cert, key = certs["localhost"]
    with Simulator(seed=1, token=TOKEN) as sim:
        assert sim.rest_port is not None
        with tls_proxy(sim.rest_port, cert, key) as port:
            url = f"https://localhost:{port}"
            with pytest.raises(pl.RestError) as info:
                RestClient(TOKEN, rest_url=url, timeout=5).latest_price(
                    price_feed_ids=[1], properties=["price"]
                )
            assert "certificate verify failed" in str(info.value).lower()
            assert_no_secret(*exception_texts(info.value))
            trusted = ssl.create_default_context(cafile=cert)
            update = RestClient(TOKEN, rest_url=url, ssl_context=trusted).latest_price(
                price_feed_ids=[1], properties=["price"]
            )
            assert update.feeds[0].feed_id == 1


# -- plain text only to loopback ----------------------------------------------------------------

NON_LOOPBACK = [
    "ws://pyth-lazer-0.dourolabs.app/v1/stream",
    "ws://10.0.0.1:8080/v1/stream",
    "ws://0.0.0.0:8080/v1/stream",
    "ws://[2001:db8::1]/v1/stream",
    "ws://localhost.evil.example/v1/stream",
    "ws://127.0.0.1@evil.example/v1/stream",  # userinfo: the host is evil.example
    "WS://EXAMPLE.COM/v1/stream",
]
LOOPBACK = [
    "ws://localhost:1/v1/stream",
    "ws://LOCALHOST:1/v1/stream",
    "ws://127.0.0.1:1/v1/stream",
    "ws://127.1.2.3:1/v1/stream",
    "ws://[::1]:1/v1/stream",
]


@pytest.mark.parametrize("url", NON_LOOPBACK)
def test_plain_ws_to_a_non_loopback_host_is_refused_without_allow_insecure(url: str) -> None:
    with pytest.raises(pl.InvalidRequestError, match="clear text"):
        pl.LazerClient(TOKEN, endpoints=[url])
    client = pl.LazerClient(TOKEN, endpoints=[url], allow_insecure=True)  # never started
    assert client.config.endpoints == (url,)
    client.close()


@pytest.mark.parametrize("url", LOOPBACK)
def test_plain_ws_to_loopback_is_allowed(url: str) -> None:
    pl.LazerClient(TOKEN, endpoints=[url]).close()


@pytest.mark.parametrize(
    "url", ["http://example.com", "http://10.0.0.1:80", "http://[2001:db8::1]"]
)
def test_plain_http_rest_to_a_non_loopback_host_is_refused(url: str) -> None:
    with pytest.raises(pl.InvalidRequestError, match="clear text"):
        RestClient(TOKEN, rest_url=url)
    with pytest.raises(pl.InvalidRequestError, match="clear text"):
        pl.LazerClient(TOKEN, endpoints=["ws://127.0.0.1:1/v1/stream"], rest_url=url)
    RestClient(TOKEN, rest_url=url, allow_insecure=True)


# -- redirects never carry the token ------------------------------------------------------------


def test_a_websocket_redirect_never_carries_the_token_elsewhere() -> None:
    """An endpoint that answers the upgrade with a redirect (to another server, even a
    plain-text one) must not make the client send its token there."""
    with RawServer(
        lambda i, sock, head: accept_upgrade(sock, head) or hold_open(sock, 5)
    ) as target:

        def redirect(i: int, sock: socket.socket, head: bytes) -> None:
            sock.sendall(
                b"HTTP/1.1 302 Found\r\nLocation: " + target.url.encode() + b"\r\n"
                b"Content-Length: 0\r\n\r\n"
            )

        with RawServer(redirect) as origin:
            client = pl.LazerClient(
                TOKEN, endpoints=[origin.url], num_connections=1, backoff=FAST_BACKOFF
            )
            try:
                with pytest.raises(pl.ConnectError) as info:
                    client.start(timeout=2)
            finally:
                client.close()
            assert len(origin.heads) >= 1
            assert TOKEN.encode() in origin.heads[0]  # the endpoint itself gets the token
            assert_no_secret(*exception_texts(info.value))
        assert not any(TOKEN.encode() in head for head in target.heads), target.heads


def test_a_rest_redirect_never_carries_the_token_elsewhere() -> None:
    def answer(i: int, sock: socket.socket, head: bytes) -> None:
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n[]")

    with RawServer(answer) as target:

        def redirect(i: int, sock: socket.socket, head: bytes) -> None:
            location = f"http://127.0.0.1:{target.port}/history/v1/symbols".encode()
            sock.sendall(
                b"HTTP/1.1 302 Found\r\nLocation: " + location + b"\r\n"
                b"Content-Length: 0\r\nConnection: close\r\n\r\n"
            )

        with RawServer(redirect) as origin:
            rest = RestClient(TOKEN, history_url=f"http://127.0.0.1:{origin.port}", timeout=5)
            with contextlib.suppress(pl.LazerError):
                rest.symbols()
            assert TOKEN.encode() in origin.heads[0]
        assert not any(TOKEN.encode() in head for head in target.heads), target.heads


def test_a_rest_error_page_that_echoes_the_request_does_not_leak_the_token() -> None:
    """Some proxies answer errors with the request they got, headers included."""

    def echo(i: int, sock: socket.socket, head: bytes) -> None:
        status = [b"500 Internal Server Error", b"401 Unauthorized", b"400 Bad Request"][i % 3]
        sock.sendall(
            b"HTTP/1.1 "
            + status
            + b"\r\nContent-Length: "
            + str(len(head)).encode()
            + b"\r\nConnection: close\r\n\r\n"
            + head
        )

    with RawServer(echo) as server:
        rest = RestClient(TOKEN, rest_url=f"http://127.0.0.1:{server.port}", timeout=5)
        for _ in range(3):
            with pytest.raises(pl.LazerError) as info:
                rest.latest_price(price_feed_ids=[1], properties=["price"])
            assert "Bearer" in str(info.value)  # the echo is shown...
            assert_no_secret(*exception_texts(info.value))  # ...but not the token


# -- frame size ----------------------------------------------------------------------------------


def test_max_frame_size_has_a_sane_default_and_is_validated() -> None:
    client = pl.LazerClient(TOKEN, endpoints=["ws://127.0.0.1:1/v1/stream"])
    assert client.config.max_frame_size == 1 << 20
    client.close()
    for bad in (0, -1, 1.5, True, "1"):
        with pytest.raises(pl.InvalidRequestError, match="max_frame_size"):
            pl.LazerClient(TOKEN, endpoints=["ws://127.0.0.1:1/v1/stream"], max_frame_size=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("announced", "limit"),
    [(1 << 40, None), ((1 << 20) + 1, None), (100_000, 65_536)],
    ids=["a-terabyte", "one-byte-over-the-default", "over-a-small-limit"],
)
def test_an_oversized_frame_drops_the_connection_before_its_payload_is_read(
    announced: int, limit: int | None
) -> None:
    """The first connection to the raw endpoint gets a frame header announcing more than
    the limit (and only 1 KiB of payload: a client that waited for the rest would hang);
    it must be dropped at once, counted, reconnected, while the stream goes on."""

    def serve(i: int, sock: socket.socket, head: bytes) -> None:
        accept_upgrade(sock, head)
        if i == 0:
            sock.sendall(frame_header(0x2, announced) + bytes(1024))
        hold_open(sock)

    options = {} if limit is None else {"max_frame_size": limit}
    rss_before = rss_bytes()
    with (
        RawServer(serve) as raw,
        Simulator(seed=1, token=TOKEN) as sim,
        pl.LazerClient(
            TOKEN,
            endpoints=[raw.url, sim.url],
            num_connections=2,
            timeout=3.0,
            backoff=FAST_BACKOFF,
            **options,  # type: ignore[arg-type]
        ) as client,
    ):
        client.subscribe(price_feed_ids=[1], properties=["price"], channel="fixed_rate@50ms")
        wait_for(
            lambda: (
                client.stats()["connections"][0]["connects"] >= 2
                and client.stats()["connections"][0]["state"] == "open"
            ),
            10,
            "the raw endpoint's connection to be dropped and opened again",
        )
        conn = client.stats()["connections"][0]
        expected = f"a frame of {announced} bytes exceeds max_frame_size {limit or 1 << 20}"
        assert conn["last_error"] == expected, conn
        assert conn["disconnects"] == 1
        assert conn["bytes"] < 4096  # the announced payload was never read
        updates = collect_updates(client, 5)
        assert [u.timestamp_us for u in updates] == sorted({u.timestamp_us for u in updates})
    assert rss_bytes() - rss_before < 64 << 20


def test_a_fragmented_message_over_the_limit_is_refused_while_it_arrives() -> None:
    """Every fragment is small, the message they make is not: the client must give up as
    soon as the fragments it has add up to more than ``max_frame_size``, not after the
    whole message (here: 16 MiB in 4 KiB fragments, never finished) was assembled."""
    limit = 64 * 1024
    fragment = bytes(4096)
    sent: list[int] = []

    def serve(i: int, sock: socket.socket, head: bytes) -> None:
        accept_upgrade(sock, head)
        if i > 0:
            hold_open(sock)
            return
        total = 0
        sock.sendall(frame_header(0x2, len(fragment), fin=False) + fragment)
        while total < 16 << 20:  # never a final fragment
            sock.sendall(frame_header(0x0, len(fragment), fin=False) + fragment)
            total += len(fragment)
            sent.append(total)

    with (
        RawServer(serve) as raw,
        pl.LazerClient(
            TOKEN,
            endpoints=[raw.url],
            num_connections=1,
            timeout=5.0,
            backoff=FAST_BACKOFF,
            max_frame_size=limit,
            start_timeout=10,
        ) as client,
    ):
        # At once when refused as it arrives; a client that joins everything first takes
        # far longer (quadratic copying) or waits for the end forever.
        wait_for(lambda: client.stats()["connections"][0]["disconnects"] >= 1, 5, "a disconnect")
        conn = client.stats()["connections"][0]
        assert "max_frame_size" in (conn["last_error"] or ""), conn
        # Refused while arriving: far less than the 16 MiB was taken in (the kernel's
        # socket buffers hold a few MiB at most).
        assert sent[-1] < 12 << 20, sent[-1]


def test_fragmented_messages_within_the_limit_are_delivered_whole() -> None:
    """The other side of the limit on fragments: a message in fragments is joined and
    delivered, and the next one (whole or in fragments) is not mixed up with it."""
    first = pl.protocol.encode_server_message(pl.Subscribed(5)).encode()
    second = pl.protocol.encode_server_message(pl.Subscribed(6)).encode()
    third = pl.protocol.encode_server_message(pl.Subscribed(7)).encode()  # no duplicate

    def serve(i: int, sock: socket.socket, head: bytes) -> None:
        accept_upgrade(sock, head)
        a, b, c = first[:5], first[5:12], first[12:]
        sock.sendall(
            frame_header(0x1, len(a), fin=False) + a
            + frame_header(0x9, 0)  # a ping between fragments is allowed
            + frame_header(0x0, len(b), fin=False) + b
            + frame_header(0x0, len(c)) + c
            + frame_header(0x1, len(second)) + second
            + frame_header(0x1, 3, fin=False) + third[:3]
            + frame_header(0x0, len(third) - 3) + third[3:]
        )  # fmt: skip
        hold_open(sock)

    with (
        RawServer(serve) as raw,
        pl.LazerClient(
            TOKEN, endpoints=[raw.url], num_connections=1, backoff=FAST_BACKOFF, max_frame_size=64
        ) as client,
    ):
        try:
            received = [client.recv(timeout=5) for _ in range(3)]
        except pl.RecvTimeout:
            raise AssertionError(client.stats()) from None
        assert received == [pl.Subscribed(5), pl.Subscribed(6), pl.Subscribed(7)]
        assert client.stats()["connections"][0]["disconnects"] == 0


def test_a_handshake_that_never_ends_is_abandoned_within_the_timeout() -> None:
    """A server that answers the upgrade one header line at a time, forever, passes every
    per-read timeout; the handshake as a whole must still give up after ``timeout``."""
    stop = threading.Event()

    def trickle(i: int, sock: socket.socket, head: bytes) -> None:
        sock.sendall(b"HTTP/1.1 101 Switching Protocols\r\n")
        n = 0
        while not stop.is_set() and n < 400:  # bounded: at most ~20 s
            try:
                sock.sendall(f"X-Slow-{n}: header\r\n".encode())
            except OSError:
                return  # the client gave up and closed the socket
            n += 1
            stop.wait(0.05)

    timeout = 1.0
    with RawServer(trickle) as raw:
        client = pl.LazerClient(
            TOKEN, endpoints=[raw.url], num_connections=1, timeout=timeout, backoff=FAST_BACKOFF
        )
        started = time.monotonic()
        try:
            with pytest.raises(pl.ConnectError) as info:
                client.start(timeout=timeout * 3 + 2)
        finally:
            stop.set()
            client.close()
        assert "handshake took longer than 1.0 s" in str(info.value)
        assert time.monotonic() - started < timeout * 3 + 5
        assert TOKEN not in str(info.value)
    assert not [t for t in threading.enumerate() if t.name.startswith("pylazer-handshake")]
