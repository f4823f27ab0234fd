"""The REST calls of the new clients (issue 18, item 4) and datetimes for ``price()``
(issue 21, item 10): ``reduce_price``, ``guardian_set_upgrade``, ``state``, and the
failover and retry rules over several base URLs, each through the public API against
simulators over real HTTP on loopback.

Decode tests use JSON shaped like the official repository's fixtures (rewritten by hand):
``router_client.rs``'s guardian set upgrade answers (an object, and ``null``),
``api.rs``'s ``SignedGuardianSetUpgrade`` serialization, and the TypeScript client test's
latest-price answer.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone

import pytest

import pylazer_sync as pl
from pylazer_sync.protocol.messages import parse_json_update
from pylazer_sync.simulator import Simulator
from tests.cli_support import refusing_port
from tests.client_support import FAST_BACKOFF, TOKEN

PROPS = ["price", "bestBidPrice", "exponent", "publisherCount"]
FORMATS = ["solana", "evm", "leEcdsa", "leUnsigned"]


@pytest.fixture(scope="module")
def sim() -> Simulator:
    with Simulator(seed=41, token=TOKEN) as s:
        yield s  # type: ignore[misc]


def _rest(*sims_or_urls: Simulator | str, **kwargs: object) -> pl.RestClient:
    urls = [s if isinstance(s, str) else str(s.rest_url) for s in sims_or_urls]
    options: dict[str, object] = {
        "rest_url": urls,
        "api_url": urls,
        "history_url": urls,
        "backoff": FAST_BACKOFF,
    }
    options.update(kwargs)
    return pl.RestClient(TOKEN, **options)  # type: ignore[arg-type]


# -- decoding, from fixtures shaped like the official ones -------------------------------


def test_guardian_set_upgrade_answers_shaped_like_router_client_rs_decode() -> None:
    signature = "".join(f"{i:02x}" for i in range(1, 66))
    obj = {
        "current_guardian_set_index": 1,
        "new_guardian_set_index": 2,
        "new_guardian_keys": ["aabbccdd"],
        "body": "deadbeef",
        "signature": signature,
    }
    upgrade = pl.GuardianSetUpgrade.from_json_obj(obj)
    assert (upgrade.current_guardian_set_index, upgrade.new_guardian_set_index) == (1, 2)
    assert upgrade.new_guardian_keys == (bytes.fromhex("aabbccdd"),)
    assert upgrade.body == b"\xde\xad\xbe\xef" and upgrade.signature == bytes(range(1, 66))
    # api.rs signed_guardian_set_upgrade_json_serialization: 20-byte keys, 65-byte signature.
    serialized = {
        "current_guardian_set_index": 4,
        "new_guardian_set_index": 5,
        "new_guardian_keys": ["11" * 20, "22" * 20],
        "body": "deadbeef",
        "signature": "aa" * 65,
    }
    upgrade = pl.GuardianSetUpgrade.from_json_obj(serialized)
    assert upgrade.new_guardian_keys == (b"\x11" * 20, b"\x22" * 20)
    for broken in ({**obj, "body": "xyz"}, {**obj, "new_guardian_set_index": -1}, [obj]):
        with pytest.raises(pl.ProtocolError, match="guardian set upgrade"):
            pl.GuardianSetUpgrade.from_json_obj(broken)


def test_a_latest_price_answer_shaped_like_the_typescript_test_decodes() -> None:
    # client.test.ts getLatestPrice(): a JsonUpdate without envelopes.
    update = parse_json_update(
        b'{"parsed": {"priceFeeds": [{"price": "50000", "priceFeedId": 1}], '
        b'"timestampUs": "1234567890"}}'
    )
    assert update.subscription_id == 0 and update.timestamp_us == 1234567890
    assert [(f.feed_id, f.price) for f in update.feeds] == [(1, 50000)]


# -- reduce_price -----------------------------------------------------------------------


def test_reduce_price_keeps_some_feeds_resigned_by_the_same_signer(sim: Simulator) -> None:
    rest = _rest(sim)
    full = rest.latest_price(
        price_feed_ids=[1, 2, 6], properties=PROPS, formats=FORMATS, channel="fixed_rate@200ms"
    )
    reduced = rest.reduce_price(full, [6, 1])
    assert [f.feed_id for f in reduced.feeds] == [1, 6]  # the update's order
    assert reduced.timestamp_us == full.timestamp_us
    full_by_id = {f.feed_id: f for f in full.feeds}
    assert all(f == full_by_id[f.feed_id] for f in reduced.feeds)  # same values
    trusted = sim.trusted_signers()
    for name in ("solana", "evm", "le_ecdsa"):
        before, after = getattr(full, name), getattr(reduced, name)
        assert after is not None and len(after.payload) < len(before.payload)
        signer = after.verify(trusted_signers=[trusted[{"le_ecdsa": "leEcdsa"}.get(name, name)]])
        assert signer == before.verify()  # the same signer as the original's
        payload = after.decode_payload()
        assert [f.feed_id for f in payload.feeds] == [1, 6]
        assert payload.timestamp_us == full.timestamp_us
        assert payload.channel_id == before.decode_payload().channel_id
    assert reduced.le_unsigned is not None
    assert [f.feed_id for f in reduced.le_unsigned.decode_payload().feeds] == [1, 6]
    # From the stream's JSON form too (a "JsonUpdate", base64 envelopes).
    as_json = pl.protocol.stream_update_to_json_obj(full, "base64")
    del as_json["type"], as_json["subscriptionId"]
    again = pl.LazerClient(TOKEN, endpoints=[sim.url]).reduce_price(as_json, [2])
    assert [f.feed_id for f in again.feeds] == [2]
    assert again.evm is not None and again.evm.verify(trusted_signers=[trusted["evm"]])


def test_reduce_price_refuses_what_it_cannot_do(sim: Simulator) -> None:
    rest = _rest(sim)
    update = rest.latest_price(price_feed_ids=[1, 2], properties=PROPS, formats=["solana"])
    for ids in ([7], [], [1, 1], ["1"]):
        with pytest.raises(pl.InvalidRequestError, match="price_feed_ids"):
            rest.reduce_price(update, ids)  # type: ignore[arg-type]
    # An update signed by someone else: the service will not re-sign it.
    with Simulator(seed=42, token=TOKEN) as other:
        foreign = _rest(other).latest_price(
            price_feed_ids=[1, 2], properties=PROPS, formats=["solana"]
        )
    with pytest.raises(pl.InvalidRequestError, match=r"HTTP 400.*untrusted"):
        rest.reduce_price(foreign, [1])


# -- guardian_set_upgrade and state ---------------------------------------------------


def test_guardian_set_upgrade_none_then_one_signed_by_the_current_guardian(
    sim: Simulator,
) -> None:
    client = pl.LazerClient(TOKEN, endpoints=[sim.url])
    assert client.guardian_set_upgrade() is None
    new_key = bytes(range(20))
    sim.start_guardian_set_upgrade([new_key])
    try:
        upgrade = client.guardian_set_upgrade()
    finally:
        sim.end_guardian_set_upgrade()
    assert upgrade is not None
    assert (upgrade.current_guardian_set_index, upgrade.new_guardian_set_index) == (0, 1)
    assert upgrade.new_guardian_keys == (new_key,)
    assert new_key in upgrade.body and len(upgrade.signature) == 65
    assert upgrade.signer_address() == sim.evm_address  # the current guardian set
    assert client.guardian_set_upgrade() is None


def test_state_answers_the_parts_asked_for(sim: Simulator) -> None:
    client = pl.LazerClient(TOKEN, endpoints=[sim.url])
    full = client.state()
    assert full.shard_id == 1 and full.shard_name and full.last_timestamp is not None
    assert abs(full.last_timestamp - datetime.now(timezone.utc)) < timedelta(minutes=1)
    assert sorted(f.feed_id for f in full.feeds) == sim.catalogue.ids
    btc = full.feed(1)
    assert btc is not None and btc.symbol == "Crypto.BTC/USD" and btc.state == "STABLE"
    assert btc.exponent == -8 and btc.min_channel == "real_time" and btc.kind == "PRICE"
    assert btc.metadata["asset_type"] == "crypto"
    spy = full.feed(302)
    assert spy is not None and spy.min_channel == "fixed_rate@200ms"
    funding = full.feed(500)
    assert funding is not None and funding.kind == "FUNDING_RATE"
    assert full.publishers and all(p.is_active for p in full.publishers)
    only = client.state("publishers")
    assert only.feeds == () and [p.publisher_id for p in only.publishers] == [
        p.publisher_id for p in full.publishers
    ]
    with pytest.raises(pl.InvalidRequestError, match="unknown part"):
        client.state("prices")
    with pytest.raises(pl.AuthenticationError):
        pl.RestClient("wrong", history_url=sim.rest_url).state()


# -- price(): datetimes (issue 21, item 10) -------------------------------------------


def test_price_takes_aware_datetimes_and_refuses_naive_ones(sim: Simulator) -> None:
    client = pl.LazerClient(TOKEN, endpoints=[sim.url])
    at = datetime.now(timezone.utc) - timedelta(minutes=5)
    at_us = (at - datetime(1970, 1, 1, tzinfo=timezone.utc)) // timedelta(microseconds=1)
    request = {"price_feed_ids": [1], "properties": ["price"], "channel": "fixed_rate@200ms"}
    by_datetime = client.price(at, **request)  # type: ignore[arg-type]
    by_int = client.price(at_us, **request)  # type: ignore[arg-type]
    assert by_datetime.timestamp_us == by_int.timestamp_us == at_us // 200_000 * 200_000
    # Another zone, the same instant.
    tokyo = at.astimezone(timezone(timedelta(hours=9)))
    assert client.price(tokyo, **request).timestamp_us == by_int.timestamp_us  # type: ignore[arg-type]
    with pytest.raises(pl.InvalidRequestError, match="no time zone"):
        client.price(datetime.now(), **request)  # type: ignore[arg-type]
    for bad in ("2025-01-01", 1.5, True, -1):
        with pytest.raises(pl.InvalidRequestError, match="timestamp"):
            client.price(bad, **request)  # type: ignore[arg-type]


# -- failover and retries ---------------------------------------------------------------


def test_connection_errors_and_5xx_fail_over_and_the_answering_url_is_kept(
    sim: Simulator,
) -> None:
    with Simulator(seed=41, token=TOKEN) as failing, refusing_port() as port:
        failing.rest_outage(503)
        rest = _rest(f"http://127.0.0.1:{port}", failing, sim, retries=0)
        before = sim.rest_requests().get("/v1/latest_price", 0)
        update = rest.latest_price(price_feed_ids=[1], properties=PROPS, formats=["evm"])
        assert update.evm is not None and update.evm.verify(trusted_signers=[sim.evm_address])
        assert failing.rest_requests()["/v1/latest_price"] == 1
        assert sim.rest_requests()["/v1/latest_price"] == before + 1
        # The next call goes straight to the URL that answered.
        rest.latest_price(price_feed_ids=[2], properties=PROPS)
        assert failing.rest_requests()["/v1/latest_price"] == 1
        assert sim.rest_requests()["/v1/latest_price"] == before + 2


def test_a_4xx_answer_is_not_failed_over(sim: Simulator) -> None:
    with Simulator(seed=41, token=TOKEN) as second:
        rest = _rest(sim, second)
        with pytest.raises(pl.InvalidRequestError, match="HTTP 400"):
            rest.latest_price(price_feed_ids=[424242], properties=PROPS)
        with pytest.raises(pl.AuthenticationError):
            wrong = pl.RestClient("wrong", rest_url=[str(sim.rest_url), str(second.rest_url)])
            wrong.latest_price(price_feed_ids=[1], properties=PROPS)
        assert "/v1/latest_price" not in second.rest_requests()


def test_rounds_are_retried_then_one_error_names_every_url(sim: Simulator) -> None:
    with Simulator(seed=41, token=TOKEN) as a, Simulator(seed=41, token=TOKEN) as b:
        a.rest_outage(503)
        b.rest_outage(500)
        rest = _rest(a, b, retries=2)
        with pytest.raises(pl.RestError) as info:
            rest.guardian_set_upgrade()
        text = str(info.value)
        assert "none of the 2 URLs answered (3 rounds)" in text
        assert f"{a.rest_url}/v1/guardian_set_upgrade: HTTP 503" in text
        assert f"{b.rest_url}/v1/guardian_set_upgrade: HTTP 500" in text
        assert info.value.status is None  # two different statuses
        assert a.rest_requests()["/v1/guardian_set_upgrade"] == 3
        assert b.rest_requests()["/v1/guardian_set_upgrade"] == 3


def test_a_service_that_comes_back_during_the_retries_answers(sim: Simulator) -> None:
    sim.rest_outage(503)
    slow = pl.Backoff(initial=0.3, multiplier=1.0, randomization=0.0, max_interval=0.3)
    rest = _rest(sim, retries=20, backoff=slow)
    result: list[object] = []
    caller = threading.Thread(target=lambda: result.append(rest.guardian_set_upgrade()))
    try:
        before = sim.rest_requests().get("/v1/guardian_set_upgrade", 0)
        caller.start()
        deadline = time.monotonic() + 30
        while sim.rest_requests().get("/v1/guardian_set_upgrade", 0) < before + 2:
            assert time.monotonic() < deadline, "the call did not retry"
            time.sleep(0.02)
    finally:
        sim.rest_outage(None)
    caller.join(30)
    assert not caller.is_alive() and result == [None]


def test_a_lazer_client_fails_over_rest_along_its_endpoints() -> None:
    with Simulator(seed=3, token=TOKEN) as a, Simulator(seed=3, token=TOKEN) as b:
        a.rest_outage(502)
        client = pl.LazerClient(TOKEN, endpoints=[a.url, b.url], backoff=FAST_BACKOFF)
        assert len(client.config.rest_url) == 2  # type: ignore[arg-type]
        update = client.latest_price(price_feed_ids=[1], properties=PROPS, formats=["solana"])
        assert update.solana is not None
        assert update.solana.verify(trusted_signers=[b.solana_public_key])
        assert len(client.symbols("crypto.btc")) == 1
        assert b.rest_requests()["/v1/latest_price"] == 1
        client.close()
