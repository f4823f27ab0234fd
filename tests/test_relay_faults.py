"""The relay and its consumer when things go wrong: bad URLs, refused AUTH, TLS, wrong key
types, foreign entries, Redis unreachable at start or gone mid-stream, a full backlog;
and the Redis password kept out of every message, repr, stats and log line.

Tests that stop Redis run a ``redis-server`` of their own on a free port and kill it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from client_support import FAST_BACKOFF, TOKEN, assert_contiguous, simulators, wait_for
from relay_support import (
    SHARED_REDIS_URL,
    RedisServer,
    cleaned_stream,
    raw_redis,
    redis_server,
    require_redis,
)
from test_relay import BINARY_SUB, JSON_SUB, SIM_RATE_HZ, collect, make_relay
from test_security import self_signed_cert

import pylazer_sync as pl
from pylazer_sync.relay import Relay, RelayConsumer
from pylazer_sync.relay._redis import RedisStore
from pylazer_sync.relay.entries import OutgoingEntry
from pylazer_sync.relay.store import Retention

PASSWORD = "redis-pw-9c41e7"  # distinctive, so that a leak is easy to find
BACKOFF = pl.Backoff(initial=0.05, multiplier=1.5, randomization=0.5, max_interval=0.3)


@pytest.fixture
def stream() -> Iterator[str]:
    require_redis()
    with cleaned_stream(SHARED_REDIS_URL, "faults") as name:
        yield name


def assert_secret_free(*texts: object) -> None:
    for text in texts:
        assert PASSWORD not in str(text), f"the password leaked: {text!s:.300}"


# -- bad settings -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "kwargs", "expected"),
    [
        ("http://127.0.0.1:6379/0", {}, "not a redis://"),
        ("127.0.0.1:6379", {}, "not a redis://"),
        ("redis://:6379/0", {}, "needs a host"),
        ("redis://127.0.0.1:99999/0", {}, "valid port"),
        ("redis://127.0.0.1:6379/x", {}, "database must be a number"),
        ("rediss://h.example:6380/0?ssl_cert_reqs=none", {}, "options after '?'"),
        (f"redis://:{PASSWORD}@db.example:6379/0", {}, "travel in clear text"),
        ("redis://db.example:6379/0", {"redis_password": PASSWORD}, "travel in clear text"),
        (f"redis://:{PASSWORD}@127.0.0.1/0", {"redis_password": "x"}, "not both"),
        ("redis://127.0.0.1:6379/0", {"redis_ca_file": "/tmp/ca.pem"}, "only applies to rediss"),
        ("unix://", {}, "no socket path"),
    ],
)
def test_bad_redis_settings_fail_at_construction_without_the_password(
    url: str, kwargs: dict[str, Any], expected: str
) -> None:
    with pytest.raises(pl.InvalidRequestError, match=expected) as info:
        RelayConsumer(url, **kwargs)
    assert_secret_free(info.value)
    with pytest.raises(pl.InvalidRequestError, match=expected):
        Relay(token=TOKEN, redis_url=url, **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"stream": ""}, "stream"),
        ({"stream": "a{b}"}, "braces"),
        ({"start": "latest"}, "start"),
        ({"start": 5}, "start"),
        ({"channel_capacity": 0}, "channel_capacity"),
        ({"overflow": "drop_newest"}, "overflow"),
        ({"subscription_ids": []}, "subscription_ids"),
    ],
)
def test_bad_consumer_settings_fail_at_construction(kwargs: dict[str, Any], expected: str) -> None:
    with pytest.raises(pl.InvalidRequestError, match=expected):
        RelayConsumer(SHARED_REDIS_URL, **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"seen_ttl": 0}, "seen_ttl"),
        ({"max_backlog": 0}, "max_backlog"),
        ({"batch_size": 100_000}, "batch_size"),
        ({"max_len": 0}, "max_len"),
        ({"max_age": float("nan")}, "max_age"),
    ],
)
def test_bad_relay_settings_fail_at_construction(kwargs: dict[str, Any], expected: str) -> None:
    with pytest.raises(pl.InvalidRequestError, match=expected):
        Relay(token=TOKEN, **kwargs)


def test_relay_takes_a_client_or_its_settings_not_both() -> None:
    client = pl.LazerClient(TOKEN, endpoints=["ws://127.0.0.1:1/v1/stream"])
    try:
        with pytest.raises(pl.InvalidRequestError, match="not both"):
            Relay(client, num_connections=2)
        with pytest.raises(pl.InvalidRequestError, match="snapshot_only"):
            Relay(
                pl.LazerClient(TOKEN, endpoints=["ws://127.0.0.1:1/v1/stream"], snapshot_only=True)
            )
    finally:
        client.close()


# -- the key holds something else -----------------------------------------------------------


def test_a_key_of_another_type_is_refused_at_start_before_any_lazer_connection(
    stream: str,
) -> None:
    raw_redis(SHARED_REDIS_URL).set(stream, "not a stream")
    with simulators(1, rate_hz=SIM_RATE_HZ, rest_port=None) as sims:
        relay = make_relay(sims, stream)
        with pytest.raises(pl.RelayStreamError, match="holds a string"):
            relay.start()
        assert relay.closed
        assert all(c["connects"] == 0 for c in relay.client.stats()["connections"])
    with pytest.raises(pl.RelayStreamError, match="holds a string"):
        RelayConsumer(SHARED_REDIS_URL, stream).start()


def test_a_counter_key_that_is_not_a_number_is_refused(stream: str) -> None:
    raw_redis(SHARED_REDIS_URL).set(f"{{{stream}}}:seq", "abc")
    store = RedisStore(SHARED_REDIS_URL, stream)
    with pytest.raises(pl.RelayStreamError, match="counter"):
        store.check(writing=True)
    store.close()


def test_foreign_entries_are_refused_by_a_relay_and_counted_by_a_consumer(stream: str) -> None:
    r = raw_redis(SHARED_REDIS_URL)
    r.xadd(stream, {"event": "order", "qty": "3"})
    with pytest.raises(pl.RelayStreamError, match="not written by a pylazer_sync relay"):
        RedisStore(SHARED_REDIS_URL, stream).check(writing=True)
    with simulators(1, rate_hz=SIM_RATE_HZ, rest_port=None) as sims:
        with pytest.raises(pl.RelayStreamError, match="stream of its own"):
            make_relay(sims, stream).start()
        with RelayConsumer(SHARED_REDIS_URL, stream, start="0") as consumer:
            first = consumer.recv(timeout=10.0)
            assert isinstance(first, pl.UndecodableFrame)
            assert "not written by a pylazer_sync relay" in first.error
            assert first.connection == -1 and stream in first.endpoint
            # A relay writing into a stream of its own alongside does not disturb it;
            # here, a relay's entry appended after the foreign one is read normally.
            other = f"{stream}:ok"
            relay = make_relay(sims, other)
            relay.subscribe(**JSON_SUB)
            try:
                with relay, RelayConsumer(SHARED_REDIS_URL, other, start="0") as good:
                    update = collect(good, 1)[0]
                r.xadd(stream, dict(r.xrange(other, count=1)[0][1]))
            finally:
                RedisStore(SHARED_REDIS_URL, other).delete()
            second = consumer.recv(timeout=10.0)
            assert isinstance(second, pl.StreamUpdate) and second.frame == update.frame
            stats = consumer.stats()
            assert stats["foreign_entries"] == 1 and stats["decode_errors"] == 0
            assert stats["delivered"] == 2


# -- Redis unreachable at start ------------------------------------------------------------


def test_unreachable_redis_at_start_gives_a_connect_error_after_the_start_timeout() -> None:
    server = RedisServer()  # a free port nobody listens on
    url = f"redis://:{PASSWORD}@127.0.0.1:{server.port}/0"
    consumer = RelayConsumer(url, start_timeout=0.5, backoff=BACKOFF)
    with pytest.raises(pl.RelayConnectError) as info:
        consumer.start()
    assert f"127.0.0.1:{server.port}" in str(info.value)
    assert isinstance(info.value, pl.ConnectError)
    assert consumer.closed
    relay = Relay(
        token=TOKEN,
        endpoints=["ws://127.0.0.1:1/v1/stream"],
        redis_url=url,
        start_timeout=0.5,
        backoff=BACKOFF,
    )
    with pytest.raises(pl.RelayConnectError) as relay_info:
        relay.start()
    assert relay.closed and all(c["connects"] == 0 for c in relay.client.stats()["connections"])
    assert_secret_free(info.value, relay_info.value, repr(consumer), repr(relay))
    server.close()


# -- AUTH --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def auth_server() -> Iterator[RedisServer]:
    with redis_server("--requirepass", PASSWORD) as server:
        server.start(ready=lambda: raw_redis(server.url, password=PASSWORD).ping())
        admin = raw_redis(server.url, password=PASSWORD)
        admin.acl_setuser(
            "relayer", enabled=True, passwords=[f"+{PASSWORD}"], keys=["*"], commands=["+@all"]
        )
        admin.acl_setuser(
            "reader", enabled=True, passwords=[f"+{PASSWORD}"], keys=["*"],
            commands=["+@read", "+ping", "+client", "+hello", "+multi", "+exec"],
        )  # fmt: skip
        yield server


@pytest.mark.parametrize(
    "credentials",
    [
        {"redis_password": "wrong-password"},
        {},
        {"redis_username": "relayer", "redis_password": "wrong"},
        {"redis_username": "nobody", "redis_password": PASSWORD},
    ],
    ids=["wrong-password", "no-password", "wrong-user-password", "unknown-user"],
)
def test_refused_auth_is_a_typed_error_at_start(
    auth_server: RedisServer, credentials: dict[str, str]
) -> None:
    consumer = RelayConsumer(auth_server.url, start_timeout=5.0, **credentials)
    with pytest.raises(pl.RelayAuthError) as info:
        consumer.start()
    assert isinstance(info.value, pl.AuthenticationError)
    relay = Relay(token=TOKEN, redis_url=auth_server.url, start_timeout=5.0, **credentials)
    with pytest.raises(pl.RelayAuthError):
        relay.start()
    assert_secret_free(info.value)


def test_password_and_acl_user_work_and_never_show(
    auth_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    url_with_password = auth_server.url.replace("redis://", f"redis://relayer:{PASSWORD}@")
    with (
        cleaned_stream(auth_server.url, "auth", password=PASSWORD) as stream,
        simulators(1, rate_hz=SIM_RATE_HZ, rest_port=None) as sims,
    ):
        relay = make_relay(sims, stream, redis_url=url_with_password)
        relay.subscribe(**JSON_SUB)
        with (
            relay,
            RelayConsumer(auth_server.url, stream, start="0", redis_password=PASSWORD) as consumer,
        ):
            assert len(collect(consumer, 5)) == 5
            texts = [repr(relay), repr(consumer), relay.stats(), consumer.stats()]
            assert "relayer:***@" in repr(relay)
        # The read-only user may read but not append: the relay says so at start.
        reader = RelayConsumer(
            auth_server.url, stream, start="0", redis_username="reader", redis_password=PASSWORD
        )
        with reader:
            assert isinstance(reader.recv(timeout=10.0), pl.StreamUpdate)
        denied = make_relay(
            sims,
            stream,
            redis_url=auth_server.url,
            redis_username="reader",
            redis_password=PASSWORD,
        )
        with pytest.raises(pl.RelayAuthError, match="permission") as info:
            denied.start()
    assert_secret_free(*texts, info.value, caplog.text)


# -- TLS ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RedisServer, str]]:
    directory = tmp_path_factory.mktemp("redis-tls")
    cert, key = self_signed_cert(directory, "localhost")
    with redis_server(
        "--tls-cert-file", cert, "--tls-key-file", key, "--tls-ca-cert-file", cert,
        "--tls-auth-clients", "no", "--bind", "127.0.0.1 127.0.0.2", tls=True,
    ) as server:  # fmt: skip
        server.start(ready=lambda: raw_redis(server.url, ssl_ca_certs=cert).ping())
        yield server, cert


def test_rediss_verifies_the_certificate(
    tls_server: tuple[RedisServer, str], tmp_path: Path
) -> None:
    server, cert = tls_server
    with cleaned_stream(server.url, "tls", ca_file=cert) as stream:
        store = RedisStore(server.url, stream, ca_file=cert)
        store.check(writing=True)
        filler = OutgoingEntry("0" * 32, b"\x00" * 16, False, 1, 1)
        assert store.append([filler], 60.0, Retention()).appended == 1
        store.close()
        with RelayConsumer(server.url, stream, start="0", redis_ca_file=cert) as consumer:
            assert isinstance(consumer.recv(timeout=10.0), pl.UndecodableFrame)  # our filler entry
        # Without the CA, or with the CA of another name, the handshake fails: at once,
        # as a typed error (retrying cannot cure a certificate).
        other_cert, _ = self_signed_cert(tmp_path, "other.example")
        for ca in (None, other_cert):
            consumer = RelayConsumer(server.url, stream, redis_ca_file=ca, start_timeout=60.0)
            with pytest.raises(pl.RelayConnectError, match="did not verify"):
                consumer.start()
        # The certificate names localhost and 127.0.0.1; another name for the same
        # server fails the host name check.
        wrong_name = server.url.replace("127.0.0.1", "127.0.0.2")
        consumer = RelayConsumer(wrong_name, stream, redis_ca_file=cert, start_timeout=60.0)
        with pytest.raises(pl.RelayConnectError):
            consumer.start()


# -- Redis gone mid-stream ----------------------------------------------------------------------


def test_redis_gone_mid_stream_the_relay_keeps_its_connections_holds_and_catches_up(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Redis killed (its data lost) and started again: the relay's Lazer connections
    never drop, it backs off and retries, then appends what it held: the new stream holds
    every real_time tick from the outage on, once. The consumer reconnects, sees that
    the stream started over (counted), and reads on."""
    caplog.set_level(logging.WARNING)
    with (
        redis_server() as server,
        simulators(2, rate_hz=SIM_RATE_HZ, rest_port=None) as sims,
    ):
        server.start()
        stream = "pltest:outage"
        relay = make_relay(sims, stream, redis_url=server.url, backoff=BACKOFF, redis_timeout=1.0)
        relay.subscribe(**BINARY_SUB)
        consumer = RelayConsumer(server.url, stream, start="0", backoff=BACKOFF, redis_timeout=1.0)
        with relay, consumer:
            collect(consumer, 20)
            server.kill()
            wait_for(lambda: relay.stats()["append_errors"] >= 2, 20.0, "failed appends")
            wait_for(lambda: relay.stats()["backlog"] >= 50, 20.0, "a backlog")
            held = relay.stats()["backlog"]
            server.start()
            wait_for(lambda: relay.stats()["backlog"] < 20, 30.0, "the backlog to drain")
            after = collect(consumer, held)
            stats = relay.stats()
            consumer_stats = consumer.stats()
        entries = raw_redis(server.url).xrange(stream)
    assert stats["client"]["open_connections"] == 2
    assert [c["connects"] for c in stats["client"]["connections"]] == [1, 1]
    assert stats["dropped"] == 0 and stats["expired"] == 0
    assert stats["updates"] == stats["appended"] + stats["duplicates"] + stats["backlog"]
    # The new stream: every tick once, 1 ms / SIM_RATE_HZ apart, none missing.
    ticks = sorted(int(f[b"ts"]) for _, f in entries)
    assert_contiguous(ticks, int(1_000_000 / SIM_RATE_HZ))
    assert len(ticks) >= held
    assert consumer_stats["stream_resets"] == 1 and consumer_stats["read_errors"] >= 1
    assert all(u.frame is not None for u in after)
    assert "appending failed" in caplog.text and "Redis is back" in caplog.text


def test_a_full_backlog_drops_the_oldest_counted_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    with (
        redis_server() as server,
        simulators(1, rate_hz=SIM_RATE_HZ, rest_port=None) as sims,
    ):
        server.start()
        relay = make_relay(
            sims, "pltest:full", redis_url=server.url, backoff=BACKOFF, redis_timeout=1.0,
            max_backlog=30, batch_size=10,
        )  # fmt: skip
        relay.subscribe(**BINARY_SUB)
        relay.start()
        try:
            wait_for(lambda: relay.stats()["appended"] > 0, 20.0, "a first append")
            server.kill()
            wait_for(lambda: relay.stats()["dropped"] >= 20, 20.0, "drops")
            stats = relay.stats()
            assert stats["backlog"] <= 30 + 10
        finally:
            relay.close(timeout=0.5)  # Redis still away: what is held is counted as unsent
        final = relay.stats()
    assert "relay backlog full" in caplog.text and "not appended" in caplog.text
    assert final["unsent"] > 0 and final["backlog"] == 0
    assert final["updates"] == (
        final["appended"] + final["duplicates"] + final["expired"] + final["dropped"]
        + final["unsent"]
    )  # fmt: skip


def test_updates_held_longer_than_the_seen_window_are_dropped_not_written_twice(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    seen_ttl = 1.0  # held longer than 0.75 s: another relay's seen-key may be gone
    with (
        redis_server() as server,
        simulators(1, rate_hz=SIM_RATE_HZ, rest_port=None) as sims,
    ):
        server.start()
        relay = make_relay(
            sims, "pltest:expired", redis_url=server.url, backoff=BACKOFF, redis_timeout=1.0,
            seen_ttl=seen_ttl,
        )  # fmt: skip
        relay.subscribe(**BINARY_SUB)
        with relay:
            wait_for(lambda: relay.stats()["appended"] > 0, 20.0, "a first append")
            server.kill()
            killed_at = time.monotonic()
            # The outage must outlast the hold limit: waiting for time itself here.
            wait_for(lambda: time.monotonic() - killed_at > seen_ttl, 10.0, "a long outage")
            server.start()
            wait_for(lambda: relay.stats()["expired"] > 0, 20.0, "expired updates")
            wait_for(lambda: relay.stats()["backlog"] < 20, 20.0, "the backlog to drain")
            stats = relay.stats()
    assert stats["updates"] >= stats["appended"] + stats["expired"]
    assert "held longer than" in caplog.text


# -- life cycle ---------------------------------------------------------------------------------


def test_relay_life_cycle_close_run_and_a_client_passed_in(stream: str) -> None:
    never_started = Relay(token=TOKEN, endpoints=["ws://127.0.0.1:1/v1/stream"])
    never_started.close()
    never_started.close()
    with pytest.raises(pl.ClientClosed):
        never_started.start()
    with simulators(1, rate_hz=SIM_RATE_HZ, rest_port=None) as sims:
        client = pl.LazerClient(
            TOKEN, endpoints=[sims[0].url], num_connections=1, backoff=FAST_BACKOFF
        )
        relay = Relay(client, redis_url=SHARED_REDIS_URL, stream=stream)
        relay.subscribe(**JSON_SUB)
        runner = threading.Thread(target=relay.run, name="test-relay-run")
        runner.start()
        wait_for(lambda: relay.stats()["appended"] >= 3, 20.0, "appends")
        relay.close()
        runner.join(15.0)
        assert not runner.is_alive()
        assert relay.closed and not client.closed  # a client passed in stays the caller's
        assert relay.stats()["closed"]
        client.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("pylazer-relay")]
