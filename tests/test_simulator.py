"""The simulator speaks PROTOCOL.md: handshake, responses, channels, delivery, REST, CLI.

Driven by a plain websocket-client connection and decoded with the protocol layer.
Waits are bounded receives or the simulator's own wait helpers, never sleeps.
"""

from __future__ import annotations

import base64
import itertools
import json
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import websocket
from test_simulator_support import WsClient, decode, subscribe_request

from pylazer_sync import AuthenticationError, LazerClient
from pylazer_sync.config import rest_url_for
from pylazer_sync.protocol import (
    EvmMessage,
    JsonMessage,
    LeEcdsaMessage,
    LeUnsignedMessage,
    ServerError,
    Signer,
    SolanaMessage,
    StreamUpdate,
    Subscribed,
    SubscribedWithIgnoredFeeds,
    SubscriptionError,
    Unsubscribed,
    decode_message,
    encode_payload,
)
from pylazer_sync.simulator import Catalogue, MarketModel, Simulator
from pylazer_sync.simulator.__main__ import build_arg_parser

TOKEN = "s3cret-token"
ALL_PROPERTIES = [
    "price",
    "bestBidPrice",
    "bestAskPrice",
    "publisherCount",
    "exponent",
    "confidence",
    "fundingRate",
    "fundingTimestamp",
    "fundingRateInterval",
    "marketSession",
    "emaPrice",
    "emaConfidence",
    "feedUpdateTimestamp",
]
ALL_FORMATS = ["evm", "solana", "leEcdsa", "leUnsigned"]


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with Simulator(seed=7, token=TOKEN, ping_interval=0.2) as s:
        yield s


@pytest.fixture
def client(sim: Simulator) -> Iterator[WsClient]:
    with WsClient(sim.url, TOKEN) as c:
        yield c


def trusted(sim: Simulator) -> dict[str, Any]:
    return {
        "solana": [sim.solana_public_key],
        "evm": [sim.evm_address],
        "leEcdsa": [sim.le_ecdsa_public_key],
    }


def verify_envelopes(update: StreamUpdate, sim: Simulator) -> None:
    """Every signed envelope verifies against the simulator's identities, and every
    envelope carries the same payload as the others."""
    t = trusted(sim)
    payloads = []
    if update.solana is not None:
        assert update.solana.verify(t["solana"]) == sim.trusted_signers()["solana"]
        payloads.append(update.solana.decode_payload())
    if update.evm is not None:
        assert update.evm.verify(t["evm"]) == sim.evm_address
        payloads.append(update.evm.decode_payload())
    if update.le_ecdsa is not None:
        assert update.le_ecdsa.verify(t["leEcdsa"]) == sim.trusted_signers()["leEcdsa"]
        payloads.append(update.le_ecdsa.decode_payload())
    if update.le_unsigned is not None:
        payloads.append(update.le_unsigned.decode_payload())
    assert all(p == payloads[0] for p in payloads)
    if update.parsed is not None and payloads:
        assert update.parsed.timestamp_us == payloads[0].timestamp_us
        assert update.parsed.feeds == payloads[0].feeds


# -- handshake ------------------------------------------------------------------------


def test_token_required_refuses_with_401(sim: Simulator) -> None:
    for header in (None, ["Authorization: Bearer wrong"], [f"Authorization: {TOKEN}"]):
        with pytest.raises(websocket.WebSocketBadStatusException) as info:
            websocket.create_connection(sim.url, header=header, timeout=5)
        assert info.value.status_code == 401
    with WsClient(sim.url, TOKEN) as ok:
        ok.send(subscribe_request(1))
        assert ok.recv() == Subscribed(1)


def test_without_token_anyone_connects() -> None:
    with Simulator(seed=1) as open_sim, WsClient(open_sim.url) as c:
        c.send(subscribe_request(5))
        assert c.recv() == Subscribed(5)


def test_unknown_path_is_404(sim: Simulator) -> None:
    url = sim.url.replace("/v1/stream", "/v2/other")
    with pytest.raises(websocket.WebSocketBadStatusException) as info:
        websocket.create_connection(url, header=[f"Authorization: Bearer {TOKEN}"], timeout=5)
    assert info.value.status_code == 404


def test_identities_come_from_the_seed(sim: Simulator) -> None:
    signer = Signer.from_seed(7)
    assert sim.solana_public_key == signer.solana_public_key
    assert sim.evm_address == signer.evm_address
    assert sim.le_ecdsa_public_key == signer.le_ecdsa_public_key
    assert sim.trusted_signers() == {
        "solana": signer.solana_public_key.hex(),
        "evm": signer.evm_address,
        "leEcdsa": signer.le_ecdsa_public_key.hex(),
    }


def test_signer_signs_deterministically_with_cached_keys() -> None:
    payload = b"\x75\xd3\xc7\x93" + bytes(range(40))
    first, second = Signer.from_seed("abc"), Signer.from_seed("abc")
    first.sign_solana(payload)  # builds and caches the key objects of the first only
    assert first.sign_solana(payload) == second.sign_solana(payload)
    assert first.sign_evm(payload) == second.sign_evm(payload)
    assert first.sign_le_ecdsa(payload) == second.sign_le_ecdsa(payload)
    assert first.sign_evm(payload).verify([first.evm_address]) == first.evm_address


# -- responses ------------------------------------------------------------------------


def test_every_response_type(client: WsClient) -> None:
    client.send(subscribe_request(1))
    assert client.recv() == Subscribed(1)
    update = client.updates(1, 1)[0]
    assert [f.feed_id for f in update.feeds] == [1, 2]

    client.send(subscribe_request(1, channel="fixed_rate@200ms"))
    dup = client.recv_until(lambda m: not isinstance(m, StreamUpdate))
    assert isinstance(dup, SubscriptionError) and dup.subscription_id == 1
    assert "already in use" in dup.error

    client.send(subscribe_request(2, properties=[]))
    err = client.recv_until(lambda m: not isinstance(m, StreamUpdate))
    assert isinstance(err, SubscriptionError) and err.subscription_id == 2
    assert "properties" in err.error

    client.send(subscribe_request(3, priceFeedIds=[1, 99999]))
    err = client.recv_until(lambda m: not isinstance(m, StreamUpdate))
    assert isinstance(err, SubscriptionError) and "99999" in err.error

    client.send(
        subscribe_request(
            4, priceFeedIds=[1, 99999, 302, 11], channel="real_time", ignoreInvalidFeeds=True
        )
    )
    ignored = client.recv_until(lambda m: not isinstance(m, StreamUpdate))
    assert ignored == SubscribedWithIgnoredFeeds(
        subscription_id=4,
        subscribed_feed_ids=(1,),
        unknown_ids=(99999,),
        unknown_symbols=(),
        unsupported_channels=(302,),
        unstable=(11,),
    )

    client.send(subscribe_request(5, priceFeedIds=[99998], ignoreInvalidFeeds=True))
    err = client.recv_until(lambda m: not isinstance(m, StreamUpdate))
    assert isinstance(err, SubscriptionError) and err.subscription_id == 5

    client.send(
        subscribe_request(6, symbols=["Crypto.ETH/USD", "Crypto.NOPE/USD"], ignoreInvalidFeeds=True)
    )
    ignored = client.recv_until(lambda m: not isinstance(m, StreamUpdate))
    assert isinstance(ignored, SubscribedWithIgnoredFeeds)
    assert ignored.subscribed_feed_ids == (2,) and ignored.unknown_symbols == ("Crypto.NOPE/USD",)

    for sub_id in (1, 4, 6):
        client.send({"type": "unsubscribe", "subscriptionId": sub_id})
        assert client.recv_until(lambda m: not isinstance(m, StreamUpdate)) == Unsubscribed(sub_id)
    client.send({"type": "unsubscribe", "subscriptionId": 1})
    err = client.recv_until(lambda m: not isinstance(m, StreamUpdate))
    assert isinstance(err, SubscriptionError) and "does not exist" in err.error

    client.send("{not json")
    err = client.recv()
    assert isinstance(err, ServerError) and "JSON" in err.error
    client.send({"type": "subscrbe", "subscriptionId": 9})
    err = client.recv()
    assert isinstance(err, ServerError) and "subscrbe" in err.error
    client.send({"subscriptionId": 9})
    assert isinstance(client.recv(), ServerError)
    client.send("[1, 2]")
    assert isinstance(client.recv(), ServerError)
    client.ws.send_binary(b'{"type":"subscribe"}')
    err = client.recv()
    assert isinstance(err, ServerError) and "binary" in err.error


def test_symbols_resolve_to_ids_and_requests_are_recorded(sim: Simulator, client: WsClient) -> None:
    before = len(sim.requests(type="subscribe"))
    client.send(
        subscribe_request(
            1, symbols=["Crypto.BTC/USD", "FX.EUR/USD"], properties=["price", "exponent"]
        )
    )
    assert client.recv() == Subscribed(1)
    update = client.updates(1, 1)[0]
    assert [f.feed_id for f in update.feeds] == [1, 100]
    assert update.feeds[1].exponent == -5
    records = sim.wait_for_requests(before + 1, type="subscribe")
    assert records[-1].message is not None
    assert records[-1].message["symbols"] == ["Crypto.BTC/USD", "FX.EUR/USD"]


def test_pings_are_sent(sim: Simulator, client: WsClient) -> None:
    # ping_interval is 0.2 s: a ping arrives even without any subscription.
    opcode, _ = client.recv_control_or_data(timeout=3.0)
    assert opcode == websocket.ABNF.OPCODE_PING


# -- channels -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rate_hz", "expected_rt_period"), [(1000.0, 1_000), (200.0, 5_000)], ids=["1kHz", "200Hz"]
)
def test_channels_tick_on_wall_clock_multiples(rate_hz: float, expected_rt_period: int) -> None:
    periods = {
        "real_time": expected_rt_period,
        "fixed_rate@1ms": 1_000,
        "fixed_rate@50ms": 50_000,
        "fixed_rate@200ms": 200_000,
    }
    if rate_hz == 1000.0:
        periods["fixed_rate@1000ms"] = 1_000_000
    channel_ids = {
        "real_time": 1,
        "fixed_rate@1ms": 1,
        "fixed_rate@50ms": 2,
        "fixed_rate@200ms": 3,
        "fixed_rate@1000ms": 4,
    }
    wanted = {"fixed_rate@1000ms": 3, "fixed_rate@200ms": 6, "fixed_rate@50ms": 10}
    with Simulator(seed=3, rate_hz=rate_hz) as s, WsClient(s.url) as c:
        names = list(periods)
        for sub_id, channel in enumerate(names, start=1):
            c.send(
                subscribe_request(
                    sub_id,
                    priceFeedIds=[1],
                    properties=["price"],
                    formats=["leUnsigned"],
                    deliveryFormat="binary",
                    parsed=False,
                    channel=channel,
                )
            )
        stamps: dict[str, list[int]] = {n: [] for n in names}
        ids: dict[str, set[int]] = {n: set() for n in names}

        def enough() -> bool:
            return all(len(stamps[n]) >= wanted.get(n, 200) for n in names)

        while not enough():
            msg = c.recv(timeout=3.0)
            if isinstance(msg, StreamUpdate):
                name = names[msg.subscription_id - 1]
                assert msg.le_unsigned is not None
                payload = msg.le_unsigned.decode_payload()
                stamps[name].append(payload.timestamp_us)
                ids[name].add(payload.channel_id or 0)
    for name, period in periods.items():
        ts = stamps[name]
        assert all(t % period == 0 for t in ts), name
        gaps = [b - a for a, b in itertools.pairwise(ts)]
        assert all(g > 0 and g % period == 0 for g in gaps), (name, gaps)
        # Ticks may be skipped under load, but most follow one period after the other.
        assert sum(g == period for g in gaps) >= 0.8 * len(gaps), (name, gaps)
        assert ids[name] == {channel_ids[name]}


# -- delivery -------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["hex", "base64"])
def test_json_delivery_with_signed_envelopes(
    sim: Simulator, client: WsClient, encoding: str
) -> None:
    client.send(
        subscribe_request(
            1, formats=ALL_FORMATS, jsonBinaryEncoding=encoding, properties=ALL_PROPERTIES
        )
    )
    assert client.recv() == Subscribed(1)
    opcode, raw = client.recv_raw()
    assert opcode == websocket.ABNF.OPCODE_TEXT
    obj = json.loads(raw)
    assert list(obj) == [
        "type",
        "subscriptionId",
        "parsed",
        "evm",
        "solana",
        "leEcdsa",
        "leUnsigned",
    ]
    for name in ALL_FORMATS:
        assert obj[name]["encoding"] == encoding
        data = obj[name]["data"]
        envelope = bytes.fromhex(data) if encoding == "hex" else base64.b64decode(data)
        decode_message(envelope)
    update = client.updates(1, 1)[0]
    verify_envelopes(update, sim)
    assert update.parsed is not None and update.timestamp_us is not None
    for feed in update.parsed.feeds:
        expected = sim.market.feed_update(feed.feed_id, update.timestamp_us)
        assert feed.price == expected.price and feed.ema_price == expected.ema_price


def test_json_delivery_parsed_off(client: WsClient) -> None:
    client.send(subscribe_request(1, parsed=False, formats=["leUnsigned"]))
    assert client.recv() == Subscribed(1)
    _, raw = client.recv_raw()
    obj = json.loads(raw)
    assert "parsed" not in obj and obj["leUnsigned"]["encoding"] == "base64"


def test_binary_delivery_every_format(sim: Simulator, client: WsClient) -> None:
    client.send(
        subscribe_request(
            1,
            priceFeedIds=[1, 7, 500],
            formats=["leUnsigned", "evm", "leEcdsa", "solana"],
            deliveryFormat="binary",
            properties=ALL_PROPERTIES,
            channel="fixed_rate@50ms",
        )
    )
    assert client.recv() == Subscribed(1)
    opcode, raw = client.recv_raw()
    assert opcode == websocket.ABNF.OPCODE_BINARY
    assert raw[:4] == bytes.fromhex("7377881b")
    assert int.from_bytes(raw[4:12], "big") == 1
    update = client.updates(1, 1)[0]
    kinds = [type(m) for m in update.messages]
    # Requested formats in order, then the parsed JSON envelope.
    assert kinds == [LeUnsignedMessage, EvmMessage, LeEcdsaMessage, SolanaMessage, JsonMessage]
    verify_envelopes(update, sim)
    assert update.evm is not None and update.solana is not None
    payload = update.solana.decode_payload()
    assert payload.channel_id == 2
    assert encode_payload(payload, "big") == update.evm.payload


def test_every_property_served_with_absent_values(sim: Simulator, client: WsClient) -> None:
    feeds = [1, 7, 10, 100, 300, 500]
    client.send(
        subscribe_request(1, priceFeedIds=feeds, properties=ALL_PROPERTIES, formats=["solana"])
    )
    assert client.recv() == Subscribed(1)
    for update in client.updates(1, 3):
        assert update.timestamp_us is not None and update.solana is not None
        binary = update.solana.decode_payload()
        for feed, bin_feed in zip(update.feeds, binary.feeds, strict=True):
            expected = sim.market.feed_update(feed.feed_id, update.timestamp_us)
            assert feed == expected  # JSON: absent values left out
            assert bin_feed == expected  # binary: absent values as 0 / cleared flag
            assert feed.exponent is not None and feed.publisher_count is not None
            assert feed.feed_update_timestamp is not None
            assert feed.feed_update_timestamp <= update.timestamp_us
            funding = feed.feed_id == 500
            assert (feed.funding_rate is not None) is funding
            assert (feed.funding_timestamp is not None) is funding
            assert (feed.funding_rate_interval is not None) is funding
            assert (feed.best_bid_price is not None) is (
                feed.feed_id in (1, 300) and feed.price is not None
            )
            assert feed.market_session in (
                "regular",
                "preMarket",
                "postMarket",
                "overNight",
                "closed",
            )


def test_market_model_covers_absent_and_carried_values() -> None:
    model = MarketModel(Catalogue.default(), seed=11)
    start = 1_800_000_000_000_000  # microseconds, a Friday evening (UTC)
    btc = [model.feed_update(1, start + i * 1_000) for i in range(200)]
    fresh = [u for i, u in enumerate(btc) if u.feed_update_timestamp == start + i * 1_000]
    assert 0 < len(fresh) < len(btc)  # some ticks fresh, some carried forward
    assert all(u.best_bid_price < u.price < u.best_ask_price for u in btc)  # type: ignore[operator]
    thin = [model.feed_update(10, start + i * 1_000_000) for i in range(100)]
    assert any(u.price is None for u in thin) and any(u.price is not None for u in thin)
    assert all(u.publisher_count is not None for u in thin)
    # The same seed gives the same market, another seed another one.
    again = MarketModel(Catalogue.default(), seed=11)
    assert again.feed_update(1, start) == btc[0]
    assert MarketModel(Catalogue.default(), seed=12).feed_update(1, start) != btc[0]
    # Weekends: FX and equities close and carry their last price forward.
    saturday = start + 24 * 3_600_000_000
    fx = [model.feed_update(100, saturday + i * 60_000_000) for i in range(3)]
    assert {u.market_session for u in fx} == {"closed"}
    assert len({(u.price, u.feed_update_timestamp) for u in fx}) == 1
    assert fx[0].feed_update_timestamp is not None and fx[0].feed_update_timestamp < saturday
    sessions = {
        model.feed_update(300, start + i * 3_600_000_000).market_session for i in range(-96, 0)
    }
    assert {"regular", "preMarket", "postMarket", "overNight"} <= sessions


def test_market_sessions_filter(client: WsClient) -> None:
    # Crypto trades in the regular session around the clock; FX is closed some of the time.
    client.send(
        subscribe_request(1, priceFeedIds=[1, 2], marketSessions=["regular"], properties=["price"])
    )
    assert client.recv() == Subscribed(1)
    assert [f.feed_id for f in client.updates(1, 1)[0].feeds] == [1, 2]


# -- byte identity --------------------------------------------------------------------


def test_same_seed_same_bytes_across_instances() -> None:
    requests = [
        subscribe_request(
            1, priceFeedIds=[1, 2, 500], formats=ALL_FORMATS, deliveryFormat="binary",
            properties=ALL_PROPERTIES, channel="fixed_rate@50ms",
        ),
        subscribe_request(
            2, priceFeedIds=[6, 300], formats=["solana", "evm"], jsonBinaryEncoding="hex",
            properties=ALL_PROPERTIES, channel="fixed_rate@50ms",
        ),
    ]  # fmt: skip
    with Simulator(seed=99) as a, Simulator(seed=99) as b, Simulator(seed=98) as other:
        clients = [WsClient(a.url), WsClient(a.url), WsClient(b.url), WsClient(other.url)]
        try:
            frames: list[dict[tuple[int, int], bytes]] = []
            for c in clients:
                for r in requests:
                    c.send(r)
            for c in clients:
                seen: dict[tuple[int, int], bytes] = {}
                while len(seen) < 8:
                    opcode, raw = c.recv_raw()
                    msg = decode(opcode, raw)
                    if isinstance(msg, StreamUpdate) and msg.timestamp_us is not None:
                        seen[(msg.subscription_id, msg.timestamp_us)] = raw
                frames.append(seen)
            stats = a.stats()
            # Two connections, two subscriptions each, the same two shapes: one encoding
            # per shape and tick, sent twice.
            assert stats["frames_encoded"] <= 2 * stats["ticks"]
            assert stats["frames_sent"] >= 1.5 * stats["frames_encoded"]
        finally:
            for c in clients:
                c.close()
    same_a, same_a2, same_b, different = frames
    common = set(same_a) & set(same_a2) & set(same_b) & set(different)
    assert common, "the four connections should share some ticks"
    for key in common:
        assert same_a[key] == same_a2[key] == same_b[key]
        assert same_a[key] != different[key]


# -- REST -----------------------------------------------------------------------------


@pytest.fixture(params=["rest port", "stream port"])
def rest_base(request: pytest.FixtureRequest, sim: Simulator) -> str:
    """Where REST is asked: the REST port, or the stream port, where a client that
    derives its REST URL from the stream URL (as in production) looks for it."""
    if request.param == "stream port":
        return rest_url_for(sim.url)
    assert sim.rest_url is not None
    return sim.rest_url


def _http(
    base: str, method: str, path: str, body: Any = None, token: str | None = TOKEN
) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, method=method)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_rest_latest_price_and_price(sim: Simulator, rest_base: str) -> None:
    params = {
        "priceFeedIds": [1, 2],
        "properties": ["price", "exponent"],
        "formats": ["solana", "evm"],
        "channel": "fixed_rate@200ms",
        "jsonBinaryEncoding": "hex",
    }
    status, body = _http(rest_base, "POST", "/v1/latest_price", params)
    assert status == 200
    assert list(body) == ["parsed", "evm", "solana"]
    ts = int(body["parsed"]["timestampUs"])
    assert ts % 200_000 == 0
    update = StreamUpdate(0, None, solana=decode_message(bytes.fromhex(body["solana"]["data"])))  # type: ignore[arg-type]
    verify_envelopes(update, sim)

    at = ts - 3_600_000_000 + 123_456
    status, body = _http(rest_base, "POST", "/v1/price", {**params, "timestamp": at})
    assert status == 200
    assert int(body["parsed"]["timestampUs"]) == at // 200_000 * 200_000
    expected = sim.market.feed_update(1, at // 200_000 * 200_000)
    assert body["parsed"]["priceFeeds"][0]["price"] == str(expected.price)

    assert _http(rest_base, "POST", "/v1/price", params)[0] == 400  # no timestamp
    assert _http(rest_base, "POST", "/v1/latest_price", {**params, "properties": []})[0] == 400
    assert (
        _http(rest_base, "POST", "/v1/latest_price", {**params, "priceFeedIds": [424242]})[0] == 400
    )
    assert _http(rest_base, "POST", "/v1/latest_price", params, token=None)[0] == 401
    assert _http(rest_base, "GET", "/v1/latest_price")[0] == 405
    assert _http(rest_base, "GET", "/nope")[0] == 404


def test_rest_symbols(sim: Simulator, rest_base: str) -> None:
    status, body = _http(rest_base, "GET", "/history/v1/symbols")
    assert status == 200 and len(body) == len(sim.catalogue)
    btc = next(f for f in body if f["symbol"] == "Crypto.BTC/USD")
    for key in (
        "pyth_lazer_id", "name", "symbol", "description", "asset_type", "exponent",
        "min_publishers", "min_channel", "state", "schedule",
    ):  # fmt: skip
        assert key in btc
    assert btc["pyth_lazer_id"] == 1 and btc["exponent"] == -8
    status, body = _http(rest_base, "GET", "/history/v1/symbols?query=btc&asset_type=crypto")
    assert [f["pyth_lazer_id"] for f in body] == [1]
    status, body = _http(rest_base, "GET", "/history/v1/symbols?asset_type=funding-rate")
    assert {f["pyth_lazer_id"] for f in body} == {500, 501, 502}
    assert all("interval" in f for f in body)
    assert _http(rest_base, "GET", "/history/v1/symbols", token="bad")[0] == 401


def test_the_stream_port_serves_rest_and_websocket_side_by_side(sim: Simulator) -> None:
    base = rest_url_for(sim.url)
    assert base != sim.rest_url  # a port of its own stays, for REST alone
    with WsClient(sim.url, TOKEN) as ws:
        ws.send(subscribe_request(1))
        assert ws.recv() == Subscribed(1)
        # REST in the middle of a stream, on the same port: neither disturbs the other.
        assert _http(base, "GET", "/history/v1/symbols?query=btc")[0] == 200
        assert isinstance(ws.recv(), StreamUpdate)
    # Anything but the REST routes is the WebSocket server's, as before.
    assert _http(base, "GET", "/v1/stream")[0] == 426  # an upgrade is required
    assert _http(base, "GET", "/nope")[0] == 404
    # A request cut short ends the connection (as on the REST port); one too large is
    # answered; neither hangs.
    assert _raw(sim.port, b"POST /v1/latest_price HTTP/1.1\r\nContent-Length: 9\r\n\r\n{") == b""
    big = b"GET /history/v1/symbols HTTP/1.1\r\nX: " + b"a" * 70_000 + b"\r\n\r\n"
    assert _raw(sim.port, big).startswith(b"HTTP/1.1 431 ")


def _raw(port: int, request: bytes) -> bytes:
    """Send raw bytes, half-close, and read the answer to the end (bounded)."""
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_a_client_pointed_at_the_stream_url_finds_rest() -> None:
    # No rest_url: the client derives it from the endpoint, as against production.
    with Simulator(seed=7, token=TOKEN) as s:
        client = LazerClient(TOKEN, endpoints=[s.url], num_connections=1)
        assert client.config.rest_url == (rest_url_for(s.url),)
        (btc,) = [e for e in client.symbols("btc") if e.symbol == "Crypto.BTC/USD"]
        update = client.latest_price(price_feed_ids=[btc.feed_id], properties=["price"])
        assert [f.feed_id for f in update.feeds] == [btc.feed_id]
        with pytest.raises(AuthenticationError):
            LazerClient("wrong", endpoints=[s.url]).symbols()


# -- command line ---------------------------------------------------------------------


def test_help_documents_every_option() -> None:
    parser = build_arg_parser()
    text = parser.format_help()
    for action in parser._actions:
        for option in action.option_strings:
            assert option in text
        if action.option_strings and action.dest != "help":
            assert action.help, action.option_strings
    for option in ("--host", "--port", "--token", "--seed", "--rate", "--flood", "--flood-rate"):
        assert option in text


def test_command_line_prints_url_and_identities_and_serves() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "pylazer_sync.simulator", "--port", "0", "--seed", "5"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdin is not None
        lines = [proc.stdout.readline() for _ in range(6)]
        url = lines[0].split()[-1]
        assert url.startswith("ws://127.0.0.1:") and url.endswith("/v1/stream")
        signer = Signer.from_seed(5)
        text = "".join(lines)
        assert signer.solana_public_key.hex() in text
        assert signer.evm_address in text
        assert signer.le_ecdsa_public_key.hex() in text
        with WsClient(url) as c:
            c.send(subscribe_request(1))
            assert c.recv() == Subscribed(1)
            proc.stdin.write("status\n")
            proc.stdin.flush()
            assert proc.stdout.readline().startswith("ok:")
        proc.stdin.write("quit\n")
        proc.stdin.flush()
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("option", ["--port", "--rest-port"])
def test_command_line_that_cannot_listen_says_so_in_one_line(option: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "pylazer_sync.simulator", option, str(port), "--no-control"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    role = "REST" if option == "--rest-port" else "stream"
    assert result.stderr.splitlines() == [
        f"python -m pylazer_sync.simulator: error: cannot listen on 127.0.0.1:{port} "
        f"({role} port): Address already in use"
    ]


def test_a_simulator_that_cannot_listen_leaves_no_port_open() -> None:
    # The REST port fails after the stream port listened: start() closes that one again,
    # so the same stream port can be listened on at once.
    with Simulator(rest_port=None) as first:
        port = first.port
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        failed = Simulator(port=port, rest_port=taken.getsockname()[1])
        with pytest.raises(OSError, match=r"\(REST port\)"):
            failed.start()
    assert not failed.running
    with Simulator(port=port, rest_port=None) as again:
        assert again.port == port


def test_token_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    secret = "never-log-me-42"
    with Simulator(token=secret) as s:
        with WsClient(s.url, secret) as c:
            c.send(subscribe_request(1))
            assert c.recv() == Subscribed(1)
        with pytest.raises(websocket.WebSocketBadStatusException):
            websocket.create_connection(s.url, header=["Authorization: Bearer nope"], timeout=5)
        assert secret not in repr(s)
    assert "Authorization" in caplog.text  # the headers are logged, the token is not
    assert secret not in caplog.text
