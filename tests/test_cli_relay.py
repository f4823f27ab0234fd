"""``pylazer-sync relay`` and ``pylazer-sync stream --from-redis``, run as a user would,
against a simulator and Redis (the machine's, or one of the test's own for AUTH)."""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Iterator

import pytest
from cli_support import cli, running
from relay_support import SHARED_REDIS_URL, cleaned_stream, raw_redis, redis_server, require_redis
from test_cli import assert_one_error_line

from pylazer_sync.frames import read_jsonl
from pylazer_sync.simulator import Simulator

PASSWORD = "cli-redis-pw-51b7c0"  # distinctive, so that a leak is easy to spot
RELAY = [sys.executable, "-m", "pylazer_sync", "relay"]


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with Simulator(seed=21, rest_port=None) as running_sim:
        yield running_sim


def relay_args(sim: Simulator, stream: str, *more: str) -> list[str]:
    return [
        *RELAY,
        *("--endpoint", sim.url, "--connections", "2", "--feeds", "1,2"),
        *("--channel", "fixed_rate@50ms", "--formats", "solana", "--stream", stream),
        *more,
    ]


def test_relay_appends_and_stream_from_redis_reads_verifies_and_records(sim: Simulator) -> None:
    require_redis()
    with cleaned_stream(SHARED_REDIS_URL, "cli") as stream:
        args = relay_args(sim, stream, "--status-every", "0.3", "--stats")
        with running(args) as relay:
            # A reader started after the relay reads from the stream's start ("0").
            recorded = cli(
                "stream", "--from-redis", SHARED_REDIS_URL, "--stream", stream,
                "--start", "0", "--count", "6", "--output", "jsonl",
            )  # fmt: skip
            assert recorded.returncode == 0, recorded.stderr
            verified = cli(
                "stream", "--from-redis", SHARED_REDIS_URL, "--stream", stream, "--start", "0",
                "--count", "3", "--verify", "--trusted-signer", sim.solana_public_key.hex(),
            )  # fmt: skip
            assert verified.returncode == 0, verified.stderr
            table = cli(
                "stream", "--from-redis", SHARED_REDIS_URL, "--stream", stream, "--count", "2",
                "--properties", "price,exponent", "--stats",
            )  # fmt: skip
            assert table.returncode == 0, table.stderr
            status, err = relay.terminate()
    assert status == 143, err
    assert "relaying into redis://127.0.0.1:6379/0 stream" in err
    assert "updates/s appended" in err and "Redis up" in err
    stats = json.loads(next(ln for ln in err.splitlines() if ln.startswith("stats: "))[7:])
    assert stats["appended"] > 0 and stats["dropped"] == 0 and stats["unsent"] == 0
    assert "Traceback" not in err
    # The jsonl recording holds 6 updates, each once, as the relay's client received them.
    updates = list(read_jsonl(io.StringIO(recorded.stdout)))
    assert len(updates) == 6 and len({u.timestamp_us for u in updates}) == 6
    assert "3 updates checked against the trusted signers, 0 failed" in verified.stderr
    header, *rows = table.stdout.strip().splitlines()
    assert header.split()[:4] == ["time", "(UTC)", "feed", "price"]
    assert len(rows) == 4  # 2 updates x 2 feeds
    consumer_stats = json.loads(
        next(ln for ln in table.stderr.splitlines() if ln.startswith("stats: "))[7:]
    )
    assert consumer_stats["delivered"] >= 2 and "stream" in consumer_stats


def test_command_line_errors_are_one_line_with_the_right_status() -> None:
    bad_url = cli(
        "relay", "--feeds", "1", "--endpoint", "ws://127.0.0.1:1", "--redis-url", "http://x"
    )
    assert bad_url.returncode == 2
    assert_one_error_line(bad_url.stderr, "not a redis://")
    symbols = cli("stream", "--from-redis", SHARED_REDIS_URL, "--symbols", "Crypto.BTC/USD")
    assert symbols.returncode == 2
    assert_one_error_line(symbols.stderr, "--feeds")
    nothing = cli("stream")
    assert nothing.returncode == 2
    assert_one_error_line(nothing.stderr, "--feeds --symbols is required")
    unreachable = cli(
        "stream", "--from-redis", "redis://127.0.0.1:1/0", "--connect-timeout", "0.5",
        "--count", "1",
    )  # fmt: skip
    assert unreachable.returncode == 4
    assert_one_error_line(unreachable.stderr, "127.0.0.1:1")


def test_redis_password_from_the_environment_and_refused_auth_never_shown(
    sim: Simulator,
) -> None:
    with redis_server("--requirepass", PASSWORD) as server:
        server.start(ready=lambda: raw_redis(server.url, password=PASSWORD).ping())
        stream = "pltest:cli-auth"
        with running(relay_args(sim, stream, "--redis-url", server.url, "--stats"),
                     PYLAZER_REDIS_PASSWORD=PASSWORD) as relay:  # fmt: skip
            read = cli(
                "stream", "--from-redis", server.url, "--stream", stream, "--start", "0",
                "--count", "2", PYLAZER_REDIS_PASSWORD=PASSWORD,
            )  # fmt: skip
            status, relay_err = relay.terminate()
        wrong_in_url = server.url.replace("redis://", f"redis://:{PASSWORD}x@")
        refused = cli("stream", "--from-redis", wrong_in_url, "--stream", stream, "--count", "1")
        refused_relay = cli(
            *relay_args(sim, stream, "--redis-url", server.url)[3:],
            PYLAZER_REDIS_PASSWORD="wrong",
        )
    assert read.returncode == 0, read.stderr
    assert status == 143, relay_err
    assert refused.returncode == 3 and refused_relay.returncode == 3
    assert_one_error_line(refused.stderr, "refused the credentials", ":***@")
    assert_one_error_line(refused_relay.stderr, "refused the credentials")
    for text in (read.stdout, read.stderr, relay_err, refused.stderr, refused_relay.stderr):
        assert PASSWORD not in text
