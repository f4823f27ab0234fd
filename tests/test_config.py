"""Client settings: validation at construction, the backoff sequence, secret handling."""

from __future__ import annotations

import itertools
import pickle
import random

import pytest

import pylazer_sync as pl
from pylazer_sync.config import Backoff, BackoffTimer, ClientConfig, Secret, check_endpoint


def test_token_from_argument_then_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTH_LAZER_TOKEN", "from-env")
    assert ClientConfig.build(None).token.reveal() == "from-env"
    assert ClientConfig.build("from-arg").token.reveal() == "from-arg"


def test_missing_token_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYTH_LAZER_TOKEN", raising=False)
    with pytest.raises(pl.InvalidRequestError, match="PYTH_LAZER_TOKEN"):
        pl.LazerClient()


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
    ],
)
def test_bad_settings_fail_at_construction(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        pl.LazerClient("t", **kwargs)  # type: ignore[arg-type]


def test_plain_ws_allowed_to_loopback_and_with_allow_insecure() -> None:
    for url in ("ws://127.0.0.1:1/v1/stream", "ws://localhost:1/v1/stream", "ws://[::1]:1/x"):
        assert check_endpoint(url, allow_insecure=False) == url
    assert check_endpoint("ws://10.0.0.1/v1/stream", allow_insecure=True)
    with pytest.raises(pl.InvalidRequestError):
        check_endpoint("ws://10.0.0.1/v1/stream", allow_insecure=False)


def test_default_endpoints_and_round_robin() -> None:
    config = ClientConfig.build("t", num_connections=4)
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
    assert "s3cr3t" not in repr(ClientConfig.build("s3cr3t-token"))
    with pytest.raises(TypeError):
        pickle.dumps(secret)


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
