"""Client settings: validation at construction, the backoff sequence, secret handling."""

from __future__ import annotations

import itertools
import pickle
import random

import pytest

import pylazer_sync as pl
from pylazer_sync.config import Backoff, BackoffTimer, ClientConfig, Secret, check_endpoint


def _revealed(config: ClientConfig) -> str | None:
    return None if config.secret is None else config.secret.reveal()


def test_token_from_argument_then_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTH_LAZER_TOKEN", "from-env")
    assert _revealed(ClientConfig(None)) == "from-env"
    assert _revealed(ClientConfig("from-arg")) == "from-arg"
    assert _revealed(pl.LazerClient().config) == "from-env"


def test_missing_token_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYTH_LAZER_TOKEN", raising=False)
    with pytest.raises(pl.InvalidRequestError, match="PYTH_LAZER_TOKEN"):
        pl.LazerClient()
    # One remote endpoint among loopback ones still needs it.
    with pytest.raises(pl.InvalidRequestError, match="PYTH_LAZER_TOKEN"):
        pl.LazerClient(endpoints=["ws://127.0.0.1:1/v1/stream", "wss://example.com/v1/stream"])


def test_no_token_is_needed_when_every_endpoint_is_on_this_machine(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The library's rule, the same as the command line's: loopback needs no token."""
    monkeypatch.delenv("PYTH_LAZER_TOKEN", raising=False)
    client = pl.LazerClient(endpoints=["ws://127.0.0.1:1/v1/stream", "ws://localhost:2/x"])
    assert client.config.secret is None
    monkeypatch.setenv("PYTH_LAZER_TOKEN", "env-token")  # given anyway: it is used
    assert _revealed(pl.LazerClient(endpoints=["ws://127.0.0.1:1/v1/stream"]).config) == (
        "env-token"
    )


def test_defaults_are_defined_once_on_client_config() -> None:
    """LazerClient's signature shows ClientConfig's defaults, and builds the same config."""
    import dataclasses
    import inspect

    signature = inspect.signature(pl.LazerClient.__init__).parameters
    for field in dataclasses.fields(ClientConfig):
        assert signature[field.name].default == field.default, field.name
    built, direct = pl.LazerClient("t").config, ClientConfig("t")
    for field in dataclasses.fields(ClientConfig):
        if field.name != "token":  # a Secret compares by identity
            assert getattr(built, field.name) == getattr(direct, field.name), field.name


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"endpoints": []}, "at least one endpoint"),
        ({"num_connections": 0}, "num_connections"),
        ({"num_connections": True}, "num_connections"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": -1.0}, "timeout"),
        ({"channel_capacity": 0}, "channel_capacity"),
        ({"dedup_ttl": 0}, "dedup_ttl"),
        ({"dedup_size": 0}, "dedup_size"),
        ({"overflow": "drop_newest"}, "overflow"),
        ({"endpoints": ["http://example.com/v1/stream"]}, "not a ws:// or wss:// URL"),
        ({"endpoints": ["ws://example.com/v1/stream"]}, "clear text"),
        ({"max_frame_size": 0}, "max_frame_size"),
        # Absurd values: refused at once instead of taking minutes or hanging later.
        ({"num_connections": 10**6}, "num_connections: 1000000 is more than the maximum, 32"),
        ({"num_connections": 33}, "maximum"),
        ({"timeout": float("inf")}, "timeout"),
        ({"timeout": float("nan")}, "timeout"),
        ({"start_timeout": 10**7}, "start_timeout"),
        ({"dedup_ttl": "10"}, "dedup_ttl"),
        ({"backoff": 5}, "backoff: 5 is not a pylazer_sync.Backoff"),
        ({"ssl_context": "yes"}, "ssl_context"),
        ({"channel_capacity": 1.5}, "channel_capacity"),
    ],
)
def test_bad_settings_fail_at_construction(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(pl.InvalidRequestError, match=match) as info:
        pl.LazerClient("t", **kwargs)  # type: ignore[arg-type]
    assert isinstance(info.value, ValueError)


def test_the_largest_allowed_values_build_quickly() -> None:
    client = pl.LazerClient("t", num_connections=32, timeout=86_400, start_timeout=86_400)
    assert len(client.stats()["connections"]) == 32
    client.close()


def test_plain_ws_allowed_to_loopback_and_with_allow_insecure() -> None:
    for url in ("ws://127.0.0.1:1/v1/stream", "ws://localhost:1/v1/stream", "ws://[::1]:1/x"):
        assert check_endpoint(url, allow_insecure=False) == url
    assert check_endpoint("ws://10.0.0.1/v1/stream", allow_insecure=True)
    with pytest.raises(pl.InvalidRequestError):
        check_endpoint("ws://10.0.0.1/v1/stream", allow_insecure=False)


def test_default_endpoints_and_round_robin() -> None:
    config = ClientConfig("t", num_connections=4)
    assert config.endpoints == pl.DEFAULT_ENDPOINTS
    assert len(config.endpoints) == 3
    assert [config.endpoint_for(i) for i in range(4)] == [
        pl.DEFAULT_ENDPOINTS[0],
        pl.DEFAULT_ENDPOINTS[1],
        pl.DEFAULT_ENDPOINTS[2],
        pl.DEFAULT_ENDPOINTS[0],
    ]


def test_secret_never_shows() -> None:
    secret = Secret("s3cr3t-token")
    assert "s3cr3t" not in repr(secret)
    assert "s3cr3t" not in str(secret)
    assert "s3cr3t" not in repr(ClientConfig("s3cr3t-token"))
    with pytest.raises(TypeError):
        pickle.dumps(secret)


@pytest.mark.parametrize(
    ("token", "text", "scrubbed"),
    [
        # A long token goes wherever it appears.
        ("abcdefghijklmnop", "Bearer abcdefghijklmnop", "Bearer ***"),
        ("abcdefghijklmnop", "x-abcdefghijklmnop-y", "x-***-y"),
        ("abcdefghijklmnop", "zzabcdefghijklmnopzz", "zz***zz"),
        # A short one only where it stands alone: ordinary words are never mangled.
        ("t", "ConnectionRefusedError: [Errno 111] Connection refused", None),
        ("local", "ws://localhost:8765/v1/stream", None),
        ("local", "token local was refused", "token *** was refused"),
        ("t", "Authorization: Bearer t", "Authorization: Bearer ***"),
        ("s3cr3t", '{"token":"s3cr3t"}', '{"token":"***"}'),
    ],
)
def test_secret_scrub_removes_the_token_and_nothing_else(
    token: str, text: str, scrubbed: str | None
) -> None:
    assert Secret(token).scrub(text) == (text if scrubbed is None else scrubbed)


def test_backoff_matches_the_rust_client_shape() -> None:
    backoff = Backoff()
    assert (backoff.initial, backoff.multiplier, backoff.randomization) == (0.5, 1.5, 0.5)
    assert (backoff.max_interval, backoff.reset_after) == (60.0, 10.0)
    wait = backoff.strategy(random.Random(7))
    timer = BackoffTimer(Backoff(randomization=0.0), timeout=5.0)
    delays = [timer.next_delay(None) for _ in range(14)]
    # Without randomization: 0.5, 0.75, 1.125, ... capped at 60, never giving up.
    assert delays[:3] == pytest.approx([0.5, 0.75, 1.125])
    assert delays[-1] == 60.0
    assert all(b >= a for a, b in itertools.pairwise(delays))
    assert wait is not None


def test_backoff_randomization_stays_within_bounds() -> None:
    timer = BackoffTimer(Backoff(initial=1.0, multiplier=1.0), timeout=5.0)
    samples = [timer.next_delay(None) for _ in range(500)]
    assert min(samples) >= 0.5 and max(samples) <= 1.5
    assert max(samples) - min(samples) > 0.5  # it really is randomized


def test_backoff_resets_after_a_long_lived_connection() -> None:
    timer = BackoffTimer(Backoff(randomization=0.0, reset_after=10.0), timeout=5.0)
    for _ in range(5):
        timer.next_delay(None)
    assert timer.next_delay(3.0) > 0.5  # short-lived: keeps growing
    assert timer.next_delay(10.5) == pytest.approx(0.5)  # lived > 10 s and > timeout: reset


def test_backoff_reset_needs_to_outlive_the_timeout_too() -> None:
    timer = BackoffTimer(Backoff(randomization=0.0, reset_after=1.0), timeout=5.0)
    for _ in range(3):
        timer.next_delay(None)
    assert timer.next_delay(2.0) > 0.5  # lived > reset_after but not > timeout
    assert timer.next_delay(5.5) == pytest.approx(0.5)


@pytest.mark.parametrize(
    "kwargs",
    [{"initial": 0}, {"multiplier": 0.5}, {"randomization": 1.0}, {"max_interval": -1}],
)
def test_bad_backoff_is_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="backoff"):
        Backoff(**kwargs)
